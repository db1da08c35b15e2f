"""Resumable training checkpoints: tensors, numbers and strings only (torch.load(weights_only=True))."""

from __future__ import annotations

from dataclasses import MISSING, asdict, fields
from pathlib import Path

import torch

from daam_store.errors import UserError
from daam_store.models.configs import unet_and_scheduler_configs

# The recipe fields that only choose the UNet's layout and the scheduler, each with its unet_and_scheduler_configs
# argument: compared by the configs they give, so that naming the family's own value resumes a run.
LAYOUT_ARGUMENTS = {
    "prediction_type": "prediction_type",
    "attention_heads": "attention_heads",
    "transformer_layers": "transformer_layers",
    "unet_levels": "levels",
}


def save_checkpoint(path: Path, recipe, state, modules: dict, ema, optimizer) -> None:
    payload = {
        "recipe": recipe.to_dict(),
        "state": asdict(state),
        "modules": {name: module.state_dict() for name, module in modules.items()},
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
    }
    partial = Path(path).with_suffix(".partial")
    torch.save(payload, partial)
    partial.replace(path)  # an interrupted save leaves the previous checkpoint intact


def load_checkpoint(path: Path, recipe, modules: dict, ema) -> dict:
    """Load weights into `modules` and `ema`; returns the saved state and optimizer state.

    The checkpoint must come from the same recipe; only the UNet step count may differ (to extend or
    shorten a run), and a layout field may name what the family does anyway (LAYOUT_ARGUMENTS).
    """
    payload = torch.load(path, map_location="cpu", weights_only=True)
    # A field added to Recipe after the checkpoint was written has its default there.
    defaults = {f.name: f.default for f in fields(recipe) if f.default is not MISSING}
    saved, wanted = defaults | dict(payload["recipe"]), recipe.to_dict()
    changed = sorted(k for k in wanted if saved.get(k) != wanted[k] and k != "unet_steps")
    changed = [k for k in changed if k not in _layout_fields_that_name_defaults(saved, wanted, changed)]
    changed += _removed_fields_set_to_another_layout(saved)
    if changed:
        raise UserError(
            f"checkpoint {path} was made with a different recipe ({', '.join(changed)}); "
            "use another --out or --no-resume"
        )
    for name, module in modules.items():
        module.load_state_dict(payload["modules"][name])
    ema.load_state_dict(payload["ema"])
    return {"state": payload["state"], "optimizer": payload["optimizer"], "recipe": payload["recipe"]}


def _removed_fields_set_to_another_layout(saved: dict) -> list[str]:
    """Recipe fields removed since, set in this checkpoint to a layout today's code does not build: `projection`
    (sessions 19-20; a 1x1 conv and a linear layer compute the same function) other than the one the family's UNet
    config builds stored the attention projections as weights of another shape."""
    own_projection = "linear" if _model_configs(saved)[0]["use_linear_projection"] else "conv"
    return ["projection"] if saved.get("projection") not in (None, own_projection) else []


def _layout_fields_that_name_defaults(saved: dict, wanted: dict, changed: list[str]) -> set[str]:
    """The changed layout fields that build the same model either way (e.g. the family's own prediction type,
    named or left out): all of them when the configs agree, else each whose saved value, put alone into the wanted
    recipe, leaves the wanted configs as they are. When no single field explains the difference, none is left out."""
    layout = {k for k in changed if k in LAYOUT_ARGUMENTS}
    wanted_configs = _model_configs(wanted)
    if _model_configs(saved) == wanted_configs:
        return layout
    named_defaults = {k for k in layout if _builds_same_configs(wanted | {k: saved[k]}, wanted_configs)}
    return named_defaults if named_defaults != layout else set()


def _builds_same_configs(recipe: dict, configs: tuple[dict, dict]) -> bool:
    try:
        return _model_configs(recipe) == configs
    except UserError:  # a mix no recipe could name (--unet-levels 4 in an SDXL one): another model
        return False


def _model_configs(recipe: dict) -> tuple[dict, dict]:
    layout = {argument: recipe[field] for field, argument in LAYOUT_ARGUMENTS.items()}
    return unet_and_scheduler_configs(recipe["family"], **layout)
