"""daam-store: DAAM cross-attention heat maps for Stable Diffusion, stored and compared.

The public names load on first use, so `import daam_store.cli` does not import torch and `daam -h` answers
at once.
"""

from daam_store._lazy import lazy_exports

_EXPORTS = {
    "DiffusionHeatMapHooker": "daam_store.tracing",
    "GenerationExperiment": "daam_store.experiment",
    "GlobalHeatMap": "daam_store.heatmap",
    "UnknownWordError": "daam_store.heatmap",
    "WordHeatMap": "daam_store.heatmap",
    "set_seed": "daam_store.utils",
    "trace": "daam_store.tracing",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
