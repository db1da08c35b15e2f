"""Scoring word maps against object regions: tau-mask IoU, baselines, bootstrap intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_TAU = 0.4  # DAAM's threshold on min-max normalised maps
TAU_SWEEP = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def normalise(heat_map: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] as DAAM does before thresholding (a constant map becomes all zeros)."""
    values = np.asarray(heat_map, dtype=np.float64)
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def iou(mask: np.ndarray, region: np.ndarray) -> float:
    """IoU of two boolean masks; 0 when both are empty (the region is never empty where we score)."""
    union = np.logical_or(mask, region).sum()
    return float(np.logical_and(mask, region).sum() / union) if union else 0.0


def map_iou(normalised_map: np.ndarray, region: np.ndarray, tau: float = DEFAULT_TAU) -> float:
    return iou(normalised_map > tau, region)


def centre_prior(size: tuple[int, int]) -> np.ndarray:
    """A Gaussian bump at the image centre (sigma = a quarter of the side), normalised to [0, 1]:
    what a map that knows only 'objects tend to be central' would look like."""
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    sigma_y, sigma_x = height / 4, width / 4
    bump = np.exp(-(((yy - height / 2) / sigma_y) ** 2 + ((xx - width / 2) / sigma_x) ** 2) / 2)
    return normalise(bump)


def uniform_iou(region: np.ndarray) -> float:
    """IoU of a map that marks every pixel: the object's share of the image."""
    return float(region.mean())


def mean_with_interval(
    values: Sequence[float], groups: Sequence[int] | None = None, resamples: int = 2000, seed: int = 0
) -> dict:
    """Mean and a 95 % percentile-bootstrap interval. `groups` (e.g. the image of each value) makes
    the bootstrap resample whole groups, since values from one image are not independent."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    groups = np.arange(len(values)) if groups is None else np.asarray(groups)
    labels = np.unique(groups)
    sums = np.array([values[groups == g].sum() for g in labels])
    counts = np.array([(groups == g).sum() for g in labels])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(labels), size=(resamples, len(labels)))
    means = sums[picks].sum(1) / counts[picks].sum(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(values.mean()), "low": float(low), "high": float(high), "n": int(len(values))}
