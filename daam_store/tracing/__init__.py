"""Hooking Stable Diffusion's cross-attention: `with trace(pipe) as tc: ...`."""

from daam_store.tracing.hooker import DiffusionHeatMapHooker, cross_attention_modules, trace

__all__ = ["DiffusionHeatMapHooker", "cross_attention_modules", "trace"]
