"""Run the scripts in benchmarks/ from tests, in this process: a subprocess each would spend most of a smoke
test importing torch, diffusers and Streamlit again."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import random
import runpy
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(script: str):
    """A benchmark script as a module, for its functions (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), BENCHMARKS / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_benchmark(script: str, *arguments: str) -> str:
    """What `python benchmarks/SCRIPT ARGUMENTS` prints. The environment variables, import path and global
    random generators a script sets for itself are put back afterwards, so they do not reach the tests that run
    after it. If the script fails, what it printed until then goes to the test's captured output."""
    path = str(BENCHMARKS / script)
    output = io.StringIO()
    saved_path, saved_random = list(sys.path), (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        with (
            mock.patch.object(sys, "argv", [path, *arguments]),
            mock.patch.dict(os.environ),
            contextlib.redirect_stdout(output),
        ):
            runpy.run_path(path, run_name="__main__")
    except BaseException:
        sys.stdout.write(output.getvalue())
        raise
    finally:
        sys.path[:] = saved_path
        random.setstate(saved_random[0])
        np.random.set_state(saved_random[1])
        torch.set_rng_state(saved_random[2])
    return output.getvalue()
