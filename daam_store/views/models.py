"""The Models page: built-in models, families, registered models, registering one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from daam_store.access import Actor, Permission
from daam_store.errors import UserError
from daam_store.models.roots import require_allowed_model


def builtin_model_table() -> list[dict[str, str]]:
    """The built-in models and whether their weights are present (they are trained by a command), with the
    benchmark targets each meets by the default rule's maps and with the mid block averaged in."""
    from daam_store.evaluation.settings import MID_BLOCK_RESULTS
    from daam_store.models import BUILTIN_FAMILIES, ModelNotFoundError, resolve_model

    rows = []
    for name, family in BUILTIN_FAMILIES.items():
        try:
            folder = Path(resolve_model(name).location)
            status = f"ready ({folder})"
            met, met_with_mid_block = targets_met(folder / "evaluation.json"), targets_met(folder / MID_BLOCK_RESULTS)
        except ModelNotFoundError as error:
            status, met, met_with_mid_block = str(error), "", ""
        rows.append(
            {
                "name": name,
                "family": family,
                "benchmark targets met": met,
                "with the mid block in the maps": met_with_mid_block,
                "status": status,
            }
        )
    return rows


def targets_met(evaluation_file: Path) -> str:
    """'2 of 6: colour present, ...' from a model's `daam-store eval --json` results (its model card has them all)."""
    try:
        targets = json.loads(evaluation_file.read_text())["targets"]
    except (OSError, ValueError, KeyError, TypeError):
        return "not evaluated"
    met = [t["label"].removeprefix("adherence: ") for t in targets if t["met"]]
    return f"{len(met)} of {len(targets)}" + (f": {', '.join(met)}" if met else "")


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
