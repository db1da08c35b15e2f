"""Model registry: built-in small models, hub ids and local folders.

Names load on first use, so reading `daam_store.models.configs` (the CLI's help, recipes) does not import torch.
"""

from daam_store._lazy import lazy_exports

_PIPELINES = "daam_store.models.pipelines"
_INFO = "daam_store.models.info"
_EXPORTS = {
    "ModelInfo": _INFO,
    "describe_pipeline": _INFO,
    "model_family": _INFO,
    "BUILTIN_FAMILIES": _PIPELINES,
    "BUILTIN_MODELS": _PIPELINES,
    "DEFAULT_MODEL": _PIPELINES,
    "ModelNotFoundError": _PIPELINES,
    "ModelSource": _PIPELINES,
    "build_random_pipeline": _PIPELINES,
    "load_clip_tokenizer": _PIPELINES,
    "load_pipeline": _PIPELINES,
    "resolve_model": _PIPELINES,
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
