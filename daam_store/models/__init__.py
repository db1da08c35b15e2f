"""Model registry: built-in small models, hub ids and local folders."""

from daam_store.models.info import ModelInfo, describe_pipeline, model_family
from daam_store.models.pipelines import (
    BUILTIN_FAMILIES,
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    ModelNotFoundError,
    ModelSource,
    build_random_pipeline,
    load_clip_tokenizer,
    load_pipeline,
    resolve_model,
)

__all__ = [
    "ModelInfo",
    "describe_pipeline",
    "model_family",
    "BUILTIN_FAMILIES",
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "ModelNotFoundError",
    "ModelSource",
    "build_random_pipeline",
    "load_clip_tokenizer",
    "load_pipeline",
    "resolve_model",
]
