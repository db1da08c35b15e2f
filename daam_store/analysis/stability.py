"""Stability of one word's map across seeds of the same prompt and model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from daam_store.analysis.overlap import DEFAULT_TAU, tau_mask


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
    """Mean pairwise correlation and tau-mask IoU of one word's maps, one map per seed.

    All pairs at once with matrix products (64 seeds are 2016 pairs): the same numbers as `correlation`
    and `mask_iou` pair by pair, which the tests check.
    """
    count = len(heat_maps)
    if count < 2:
        return Stability(n_maps=count, mean_correlation=float("nan"), mean_iou=float("nan"))
    pixels = np.stack([np.asarray(m, dtype=np.float64).ravel() for m in heat_maps])
    centred = pixels - pixels.mean(axis=1, keepdims=True)
    norms = np.sqrt((centred * centred).sum(axis=1))
    masks = np.stack([tau_mask(m, tau).ravel() for m in heat_maps]).astype(np.float64)
    intersections = masks @ masks.T
    areas = masks.sum(axis=1)
    unions = areas[:, None] + areas[None, :] - intersections
    upper = np.triu_indices(count, k=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlations = (centred @ centred.T) / np.outer(norms, norms)
        ious = intersections / unions
    # A constant map (norm 0) has no correlation, two empty masks no IoU: NaN, left out of the means.
    return Stability(
        n_maps=count,
        mean_correlation=mean_defined(correlations[upper].tolist()),
        mean_iou=mean_defined(ious[upper].tolist()),
    )
