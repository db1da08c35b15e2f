"""Agreement between two models on the same word, prompt and seed: maps aligned to a common resolution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from daam_store.analysis.overlap import DEFAULT_TAU, map_iou
from daam_store.analysis.stability import correlation, mean_defined


@dataclass(frozen=True)
class Agreement:
    correlation: float  # Pearson correlation of the aligned maps
    iou: float  # IoU of the aligned maps' tau-masks
    share_a: float  # the word's attribution share under model A
    share_b: float
    share_difference: float  # share_a - share_b: positive when model A gives the word more weight


def _area_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) matrix whose rows average the input cells each output cell covers, by overlap."""
    edges_in = np.arange(size_in + 1) / size_in
    edges_out = np.arange(size_out + 1) / size_out
    low = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    high = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    overlap = np.clip(high - low, 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def resample_area(heat_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average a map to `size` (height, width). Downsampling by area never invents detail, and an
    integer factor gives exactly the block means."""
    values = np.asarray(heat_map, dtype=np.float64)
    if values.shape == tuple(size):
        return values
    rows = _area_weights(values.shape[0], size[0])
    columns = _area_weights(values.shape[1], size[1])
    return rows @ values @ columns.T


def align_maps(map_a: np.ndarray, map_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both maps at the coarser of the two resolutions (per axis), so neither is upsampled."""
    size = (min(map_a.shape[0], map_b.shape[0]), min(map_a.shape[1], map_b.shape[1]))
    return resample_area(map_a, size), resample_area(map_b, size)


def agreement(
    map_a: np.ndarray, map_b: np.ndarray, share_a: float, share_b: float, tau: float = DEFAULT_TAU
) -> Agreement:
    aligned_a, aligned_b = align_maps(map_a, map_b)
    return Agreement(
        correlation=correlation(aligned_a, aligned_b),
        iou=map_iou(aligned_a, aligned_b, tau),
        share_a=float(share_a),
        share_b=float(share_b),
        share_difference=float(share_a) - float(share_b),
    )


def mean_agreement(agreements: Sequence[Agreement]) -> Agreement:
    """Average over seeds; undefined (NaN) correlations or IoUs are left out of their mean."""
    if not agreements:
        raise ValueError("no agreements to average")

    share_a = mean_defined([item.share_a for item in agreements])
    share_b = mean_defined([item.share_b for item in agreements])
    return Agreement(
        correlation=mean_defined([item.correlation for item in agreements]),
        iou=mean_defined([item.iou for item in agreements]),
        share_a=share_a,
        share_b=share_b,
        share_difference=share_a - share_b,
    )
