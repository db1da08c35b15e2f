"""Where local model folders may come from: $DAAM_STORE_MODEL_ROOTS, checked wherever a model is named
(the dashboard's pages, job submission, the worker that loads it)."""

from __future__ import annotations

import os
from pathlib import Path

from daam_store.errors import UserError

MODEL_ROOTS_VARIABLE = "DAAM_STORE_MODEL_ROOTS"


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
