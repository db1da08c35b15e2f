"""What the store records about a model: where it came from, its family and a content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from daam_store.families import family_of


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str  # "builtin" | "local" | "hub" | "memory" (a pipeline built in code)
    location: str
    family: str  # a family's name (daam_store.families): "SD1", "SD2", "SDXL"
    revision: str  # content hash of the weights: the same name with other weights is another model
    resolution: int  # default image size in pixels
    prediction_type: str


def model_family(pipe) -> str:
    return family_of(pipe).name


def weights_hash(pipe, sample_tensors: int = 64) -> str:
    """A cheap fingerprint: shapes of all tensors plus the values of a few, hashed (not a full checksum)."""
    digest = hashlib.sha256()
    for component in family_of(pipe).weight_components:
        state = getattr(pipe, component).state_dict()
        names = sorted(state)
        for name in names:
            digest.update(f"{name}:{tuple(state[name].shape)}".encode())
        step = max(1, len(names) // sample_tensors)
        for name in names[::step]:
            values = state[name].detach().flatten()[:256].to(torch.float32).cpu().numpy()
            digest.update(values.tobytes())
    return digest.hexdigest()[:16]


def describe_pipeline(pipe, name: str | None = None) -> ModelInfo:
    source = getattr(pipe, "daam_source", None)
    resolution = pipe.unet.config.sample_size * pipe.vae_scale_factor
    return ModelInfo(
        name=name or (source.name if source else f"in-memory-{model_family(pipe).lower()}"),
        source=source.kind if source else "memory",
        location=source.location if source else "",
        family=model_family(pipe),
        revision=weights_hash(pipe),
        resolution=int(resolution),
        prediction_type=pipe.scheduler.config.get("prediction_type", "epsilon"),
    )
