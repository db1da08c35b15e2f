"""Training the built-in models on the generated world (`daam-store train-builtin`)."""

from daam_store.training.bundle import bundle_to_folder, load_bundle, save_bundle
from daam_store.training.loop import TrainOptions, train_builtin
from daam_store.training.recipes import RECIPES, Recipe, get_recipe

__all__ = [
    "RECIPES",
    "Recipe",
    "TrainOptions",
    "bundle_to_folder",
    "get_recipe",
    "load_bundle",
    "save_bundle",
    "train_builtin",
]
