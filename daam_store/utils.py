"""Small helpers shared by the CLI, the dashboard and the library."""

from __future__ import annotations

import random

import numpy as np
import torch

from daam_store.errors import UserError

MAX_SEED = 2**63 - 1


def set_seed(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU `torch.Generator` seeded the same, for the pipeline."""
    seed = parse_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def parse_seed(value) -> int:
    """An integer seed in [0, 2**63), or a UserError saying what a seed may be."""
    try:
        seed = int(str(value).strip()) if not isinstance(value, int) or isinstance(value, bool) else value
    except ValueError:
        raise UserError(f"bad seed {value!r}: a seed is a whole number from 0 to {MAX_SEED}") from None
    if isinstance(value, bool) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"bad seed {value!r}: a seed is a whole number from 0 to {MAX_SEED}")
    return seed
