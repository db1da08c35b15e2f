"""Model families: what the tracer needs to know about one kind of text-to-image pipeline.

A family answers five questions (the `Family` protocol below):
- which module is the denoiser, and which of its attention modules are the text cross-attention;
- which of those layers the default aggregation rule uses (the original DAAM's: not the UNet's mid block);
- how a layer is named for people ("up 1, 16x16");
- which tokenizer defines the prompt's words, and how many context positions the prompt gets;
- which pipeline classes it serves and which components define its weights.

Everything else (recording, aggregation, storage, the dashboard) is family-agnostic. Adding a family (SD3 or
Flux, whose joint attention differs) means one new module here, registered in `FAMILIES`.
"""

from __future__ import annotations

from typing import Protocol

import torch

from daam_store.errors import UserError


class Family(Protocol):
    name: str  # as stored and shown: "SD1", "SD2", "SDXL"
    default_rule: str  # in words: the layers the default aggregation averages
    pipeline_class_names: tuple[str, ...]  # model_index.json `_class_name`s this family loads
    weight_components: tuple[str, ...]  # pipeline components whose weights identify a model

    def matches(self, pipe) -> bool: ...

    def pipeline_class(self): ...

    def denoiser(self, pipe) -> torch.nn.Module: ...

    def cross_attention_layers(self, pipe) -> list[tuple[str, torch.nn.Module]]: ...

    def in_default_rule(self, layer_name: str, factor: int) -> bool: ...

    def layer_label(self, layer_name: str, grid: tuple[int, int]) -> str: ...

    def tokenizer(self, pipe): ...

    def context_tokens(self, pipe) -> int: ...


class UnsupportedPipelineError(UserError):
    """The pipeline belongs to no family daam-store can trace."""


def families() -> list[Family]:
    """Every registered family, the most specific first (SDXL's UNet also passes SD2's test)."""
    from daam_store.families.unet import SD1, SD2, SDXL

    return [SDXL, SD2, SD1]


def family_names() -> list[str]:
    return sorted(family.name for family in families())


def family_of(pipe) -> Family:
    for family in families():
        if family.matches(pipe):
            return family
    raise UnsupportedPipelineError(
        f"{type(pipe).__name__} is not a pipeline daam-store can trace; supported families: {', '.join(family_names())}"
    )


def family_for_class_name(class_name: str) -> Family:
    """The family that loads a folder whose model_index.json names `class_name`."""
    for family in families():
        if class_name in family.pipeline_class_names:
            return family
    supported = sorted({name for family in families() for name in family.pipeline_class_names})
    raise UnsupportedPipelineError(f"{class_name} pipelines cannot be traced; use one of: {', '.join(supported)}")
