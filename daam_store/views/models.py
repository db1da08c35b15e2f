"""The Models page: built-in models, families, registered models, registering one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from daam_store.access import Actor, Permission
from daam_store.errors import UserError

MODEL_ROOTS_VARIABLE = "DAAM_STORE_MODEL_ROOTS"


def builtin_model_table() -> list[dict[str, str]]:
    """The built-in models and whether their weights are present (they are trained by a command)."""
    from daam_store.models import BUILTIN_FAMILIES, ModelNotFoundError, resolve_model

    rows = []
    for name, family in BUILTIN_FAMILIES.items():
        try:
            status = f"ready ({resolve_model(name).location})"
        except ModelNotFoundError as error:
            status = str(error)
        rows.append({"name": name, "family": family, "status": status})
    return rows


def family_table() -> list[dict[str, str]]:
    """The model families daam-store traces, with the pipeline class that loads each."""
    from daam_store.families import families

    return [
        {"family": family.name, "pipeline": ", ".join(family.pipeline_class_names), "default maps": family.default_rule}
        for family in sorted(families(), key=lambda family: family.name)
    ]


def model_table(store) -> list[dict[str, object]]:
    """Every model in the store with how many generations it made."""
    from daam_store.store import queries

    with store.session() as session:
        models = queries.list_models(session)
    return [
        {
            "name": model.name,
            "family": model.family,
            "source": model.source,
            "location": model.location,
            "revision": model.revision,
            "resolution": model.resolution,
            "prediction": model.prediction_type,
            "generations": model.generations,
        }
        for model in models
    ]


def register_model(store, load_pipeline: Callable[[str], object], name: str, actor: Actor):
    """Load the model the user named (proving it works) and record it in the store; its ModelInfo."""
    from daam_store.models import describe_pipeline
    from daam_store.store import queries

    name = name.strip()
    if not name:
        raise UserError("enter a hub id (org/name) or the path of a local diffusers folder")
    actor.require(Permission.REGISTER_MODELS)
    require_allowed_model(name, team_mode=actor.team_mode)
    store.require_writable()  # before loading a model for nothing
    info = describe_pipeline(load_pipeline(name))
    with store.write_session() as session:
        queries.register_model(session, info)
    return info


def chosen_model(actor: Actor, listed: str, other: str = "") -> str:
    """The model a generation runs on: one from the list, or (filled in) another hub id or folder, which loads
    and records a new model: in team mode that is an admin's decision."""
    other = other.strip()
    if not other or other == listed:
        return listed
    actor.require(Permission.REGISTER_MODELS)
    return other


def model_roots(team_mode: bool = False) -> list[Path] | None:
    """The folders local models may come from ($DAAM_STORE_MODEL_ROOTS, os.pathsep-separated); None: any.
    Unset, a shared dashboard (team mode) allows none: its users must not load arbitrary server folders."""
    text = os.environ.get(MODEL_ROOTS_VARIABLE, "")
    roots = [Path(part).expanduser().resolve() for part in text.split(os.pathsep) if part]
    return roots or ([] if team_mode else None)


def require_allowed_model(name: str, team_mode: bool = False) -> None:
    """With model roots set (or in team mode), refuse any other folder, and with one message whatever the path
    is (missing, a system folder, unreadable): the page must not tell an outsider which server paths exist."""
    from daam_store.models import BUILTIN_MODELS

    roots = model_roots(team_mode)
    if roots is None or name in BUILTIN_MODELS:
        return
    try:
        path = Path(name).expanduser()
        local = path.exists()  # a relative org/name that exists is loaded as a folder, not from the hub
        inside = any(path.resolve().is_relative_to(root) for root in roots)  # resolved: no ../ or link escapes
    except (OSError, RuntimeError):  # RuntimeError: ~user for an unknown user
        local, inside = True, False
    if inside or (not local and _is_hub_id(name)):
        return
    raise UserError(f"{name!r} is neither a hub id (org/name) nor a folder under ${MODEL_ROOTS_VARIABLE}")


def _is_hub_id(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/", "~"))
