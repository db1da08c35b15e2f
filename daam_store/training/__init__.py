"""Training the built-in models on the generated world (`daam-store train-builtin`).

Names load on first use: the CLI reads the recipes' names without importing torch.
"""

from daam_store._lazy import lazy_exports

_EXPORTS = {
    "RECIPES": "daam_store.training.recipes",
    "Recipe": "daam_store.training.recipes",
    "TrainOptions": "daam_store.training.loop",
    "bundle_to_folder": "daam_store.training.bundle",
    "get_recipe": "daam_store.training.recipes",
    "load_bundle": "daam_store.training.bundle",
    "save_bundle": "daam_store.training.bundle",
    "train_builtin": "daam_store.training.loop",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
