"""The localisation benchmark of `daam-store eval`: word maps scored against generated objects.

Names load on first use: the CLI reads the settings' defaults without importing torch.
"""

from daam_store._lazy import lazy_exports

_EXPORTS = {
    "TARGETS": "daam_store.evaluation.benchmark",
    "EvalSettings": "daam_store.evaluation.settings",
    "evaluate": "daam_store.evaluation.benchmark",
    "evaluation_items": "daam_store.evaluation.benchmark",
    "format_markdown": "daam_store.evaluation.report",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
