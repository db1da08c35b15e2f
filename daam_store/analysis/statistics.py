"""Per-map statistics stored beside every word heat map, so that charts never decode a blob.

All functions take plain numpy arrays (one word's map, h x w, as the tracer returns it: the mean of
the word's token maps, not normalised). Negative values, which bicubic upsampling can leave behind,
count as zero attribution: they are interpolation undershoot, not attention.

- total: the sum of the map (the word's attribution mass);
- share: the word's total over the sum of the totals of all words of the prompt (punctuation and the
  start/end tokens excluded, since their maps are not stored as words), so shares of a prompt sum to 1;
- peak: the largest value;
- entropy: Shannon entropy of the map as a distribution over pixels, divided by log(pixels), so 0 means
  all attribution on one pixel and 1 means spread evenly, whatever the resolution;
- centroid: the attribution-weighted mean position, as fractions of width (x) and height (y), (0, 0) =
  top-left;
- area above tau: the fraction of pixels above DAAM's threshold tau = 0.4 after min-max normalisation
  (the paper's binarisation, the same mask as `analysis.overlap.tau_mask`).

Undefined values (entropy or centroid of an all-zero map, shares when every total is zero) are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from daam_store.analysis.overlap import DEFAULT_TAU, tau_mask


@dataclass(frozen=True)
class MapStatistics:
    total: float
    share: float
    peak: float
    entropy: float
    centroid_x: float
    centroid_y: float
    area_above_tau: float


def attribution(heat_map: np.ndarray) -> np.ndarray:
    """The map as float64 with undershoot clipped to zero."""
    values = np.asarray(heat_map, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"a word heat map is 2-D (h, w), got shape {values.shape}")
    return np.clip(values, 0.0, None)


def total_attribution(heat_map: np.ndarray) -> float:
    return float(attribution(heat_map).sum())


def attribution_shares(totals: Sequence[float]) -> list[float]:
    """Each total over the sum of all; NaN for all of them when the sum is zero."""
    whole = float(sum(totals))
    return [float(t) / whole if whole > 0 else float("nan") for t in totals]


def peak(heat_map: np.ndarray) -> float:
    return float(np.asarray(heat_map, dtype=np.float64).max())


def normalized_entropy(heat_map: np.ndarray) -> float:
    values = attribution(heat_map)
    mass = values.sum()
    if mass <= 0:
        return float("nan")
    if values.size == 1:
        return 0.0
    p = values[values > 0] / mass
    return float(-(p * np.log(p)).sum() / np.log(values.size))


def centroid(heat_map: np.ndarray) -> tuple[float, float]:
    """(x, y) of the attribution's centre of mass, as fractions of width and height (pixel centres)."""
    values = attribution(heat_map)
    mass = values.sum()
    if mass <= 0:
        return float("nan"), float("nan")
    height, width = values.shape
    y = (values.sum(axis=1) @ (np.arange(height) + 0.5)) / mass / height
    x = (values.sum(axis=0) @ (np.arange(width) + 0.5)) / mass / width
    return float(x), float(y)


def area_above_threshold(heat_map: np.ndarray, tau: float = DEFAULT_TAU) -> float:
    return float(tau_mask(heat_map, tau).mean())


def map_statistics(heat_map: np.ndarray, share: float = float("nan"), tau: float = DEFAULT_TAU) -> MapStatistics:
    x, y = centroid(heat_map)
    return MapStatistics(
        total=total_attribution(heat_map),
        share=share,
        peak=peak(heat_map),
        entropy=normalized_entropy(heat_map),
        centroid_x=x,
        centroid_y=y,
        area_above_tau=area_above_threshold(heat_map, tau),
    )


def prompt_statistics(word_maps: Sequence[np.ndarray], tau: float = DEFAULT_TAU) -> list[MapStatistics]:
    """Statistics of every word map of one prompt, with shares taken over these maps."""
    shares = attribution_shares([total_attribution(m) for m in word_maps])
    return [map_statistics(m, share, tau) for m, share in zip(word_maps, shares, strict=True)]
