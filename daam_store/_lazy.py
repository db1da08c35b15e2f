"""Package attributes imported on first use (PEP 562).

A package whose `__init__` imported its torch-heavy modules up front would make every light import of one of
its submodules (`daam -h`, argument parsing) pay for torch; with these, only the names actually used load.
"""

from __future__ import annotations

from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]):
    """`__getattr__` and `__dir__` for `package`, whose public names live in the modules `exports` maps them to."""
    namespace = import_module(package).__dict__

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(exports[name]), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
