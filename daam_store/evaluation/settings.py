"""What `daam-store eval` runs: its settings and their checks (no torch here: the CLI's help reads the defaults)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from daam_store.errors import UserError
from daam_store.evaluation.metrics import DEFAULT_TAU

SPLITS = ("heldout", "train")
# beside a model's evaluation.json, the runs its card also reports (`--split train`, `--mid-block`)
TRAIN_RESULTS = "evaluation-train.json"
MID_BLOCK_RESULTS = "evaluation-mid-block.json"


@dataclass
class EvalSettings:
    n: int = 96  # images; every fourth has one object, the rest two
    steps: int = 25
    guidance: float = 5.0
    split: str = "heldout"
    batch_size: int = 8
    influence_n: int = 24  # images also regenerated with a word swapped and with other noise
    first_seed: int = 0
    tau: float = DEFAULT_TAU
    # average the UNet's mid block into the maps too (rule daam+mid); the default is the original DAAM's layers
    mid_block: bool = False

    def validate(self) -> None:
        if self.n < 1 or self.steps < 1 or self.batch_size < 1 or self.influence_n < 0:
            raise UserError("--n, --steps and --batch-size must be at least 1 (influence images at least 0)")
        if self.split not in SPLITS:
            raise UserError(f"unknown split {self.split!r}: use one of {', '.join(SPLITS)}")
        if not 0 < self.tau < 1:
            raise UserError(f"tau must lie between 0 and 1, got {self.tau}")
        if not math.isfinite(self.guidance):
            raise UserError(f"bad guidance {self.guidance}: use a finite number")


def benchmark_parser(description: str, n_help: str, n_default: int = 24) -> argparse.ArgumentParser:
    """The options the built-in models' benchmarks share (benchmarks/word_map_*.py, missing_colours.py): models,
    images, split, steps and guidance, defaulting to the built-in models and the eval's settings."""
    from daam_store.models import BUILTIN_MODELS  # here, not at the top: the CLI's help imports this module

    defaults = EvalSettings()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--models", nargs="+", default=list(BUILTIN_MODELS))
    parser.add_argument("--n", type=int, default=n_default, help=n_help)
    parser.add_argument("--split", choices=SPLITS, default=defaults.split)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--guidance", type=float, default=defaults.guidance)
    return parser
