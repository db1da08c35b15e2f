"""Stability of one word's map across seeds of the same prompt and model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from daam_store.analysis.overlap import DEFAULT_TAU, mask_iou, tau_mask


@dataclass(frozen=True)
class Stability:
    n_maps: int
    mean_correlation: float  # mean Pearson correlation over all pairs of maps; NaN if none is defined
    mean_iou: float  # mean IoU of tau-masks over all pairs; NaN if none is defined


def correlation(map_a: np.ndarray, map_b: np.ndarray) -> float:
    """Pearson correlation of two maps' pixels; NaN when either map is constant (no spread to correlate)."""
    a = np.asarray(map_a, dtype=np.float64).ravel()
    b = np.asarray(map_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {np.shape(map_a)} vs {np.shape(map_b)}; align them first")
    a = a - a.mean()
    b = b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    if denominator == 0:
        return float("nan")
    return float((a * b).sum() / denominator)


def mean_defined(values: Sequence[float]) -> float:
    """Mean of the values that are defined (not NaN); NaN when none is."""
    defined = [value for value in values if not np.isnan(value)]
    return float(np.mean(defined)) if defined else float("nan")


def stability(heat_maps: Sequence[np.ndarray], tau: float = DEFAULT_TAU) -> Stability:
    """Mean pairwise correlation and tau-mask IoU of one word's maps, one map per seed."""
    masks = [tau_mask(heat_map, tau) for heat_map in heat_maps]
    pairs = list(combinations(range(len(heat_maps)), 2))
    correlations = [correlation(heat_maps[i], heat_maps[j]) for i, j in pairs]
    ious = [mask_iou(masks[i], masks[j]) for i, j in pairs]
    return Stability(n_maps=len(heat_maps), mean_correlation=mean_defined(correlations), mean_iou=mean_defined(ious))
