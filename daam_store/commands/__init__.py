"""Subcommands of `daam-store`: one module each, exposing `register(subparsers)`."""

import importlib

# Each name is a module in this package; a missing one is skipped until it lands.
COMMAND_MODULES = ["db", "io", "train", "evaluate", "sweep"]


def register_all(subparsers) -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
            continue
        module.register(subparsers)
