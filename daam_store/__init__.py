"""daam-store: DAAM cross-attention heat maps for Stable Diffusion, stored and compared."""

from daam_store.experiment import GenerationExperiment
from daam_store.heatmap import GlobalHeatMap, UnknownWordError, WordHeatMap
from daam_store.trace import DiffusionHeatMapHooker, trace
from daam_store.utils import set_seed

__all__ = [
    "DiffusionHeatMapHooker",
    "GenerationExperiment",
    "GlobalHeatMap",
    "UnknownWordError",
    "WordHeatMap",
    "set_seed",
    "trace",
]
