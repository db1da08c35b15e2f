"""Overlap between words of one generation: IoU of their tau-masks (the paper's entanglement analysis)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_TAU = 0.4


def tau_mask(heat_map: np.ndarray, tau: float = DEFAULT_TAU) -> np.ndarray:
    """Pixels above `tau` after min-max normalisation to [0, 1], as DAAM binarises maps.

    A constant map has no structure, so its mask is empty rather than all pixels.
    """
    values = np.asarray(heat_map, dtype=np.float64)
    low, high = values.min(), values.max()
    if high - low <= 0:
        return np.zeros(values.shape, dtype=bool)
    return (values - low) / (high - low) > tau


def mask_iou(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Intersection over union of two boolean masks; NaN when both are empty (undefined, not zero)."""
    union = np.logical_or(mask_a, mask_b).sum()
    if union == 0:
        return float("nan")
    return float(np.logical_and(mask_a, mask_b).sum() / union)


def map_iou(map_a: np.ndarray, map_b: np.ndarray, tau: float = DEFAULT_TAU) -> float:
    return mask_iou(tau_mask(map_a, tau), tau_mask(map_b, tau))


def overlap_matrix(heat_maps: Sequence[np.ndarray], tau: float = DEFAULT_TAU) -> np.ndarray:
    """Word x word IoU of tau-masks for the maps of one generation (symmetric; diagonal 1 unless empty)."""
    masks = [tau_mask(heat_map, tau) for heat_map in heat_maps]
    size = len(masks)
    matrix = np.full((size, size), np.nan)
    for i in range(size):
        for j in range(i, size):
            matrix[i, j] = matrix[j, i] = mask_iou(masks[i], masks[j])
    return matrix


def mean_overlap_matrix(matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Element-wise mean over generations with the same words, ignoring undefined (NaN) cells."""
    stacked = np.stack([np.asarray(matrix, dtype=np.float64) for matrix in matrices])
    counts = np.sum(~np.isnan(stacked), axis=0)
    sums = np.nansum(stacked, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def mean_overlap_by_word(
    generations: Sequence[tuple[Sequence[str], np.ndarray]],
) -> tuple[list[str], np.ndarray]:
    """Average word x word matrices of generations whose prompts differ, matching words by lower-case
    text: each cell is the mean over the generations where both words occur (NaN where none does).
    A word that occurs twice in a prompt contributes both occurrences to its cells with other words.

    Words come out in order of how many generations have them, then alphabetically.
    """
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], int] = {}
    frequency: dict[str, int] = {}
    for words, matrix in generations:
        keys = [word.lower() for word in words]
        for key in set(keys):
            frequency[key] = frequency.get(key, 0) + 1
        for i, first in enumerate(keys):
            for j, second in enumerate(keys):
                # Two occurrences of one word ("a ... a") are not the word with itself: keep the diagonal 1.
                if not np.isnan(matrix[i, j]) and (i == j or first != second):
                    sums[first, second] = sums.get((first, second), 0.0) + float(matrix[i, j])
                    counts[first, second] = counts.get((first, second), 0) + 1
    order = sorted(frequency, key=lambda key: (-frequency[key], key))
    result = np.full((len(order), len(order)), np.nan)
    for i, first in enumerate(order):
        for j, second in enumerate(order):
            if counts.get((first, second)):
                result[i, j] = sums[first, second] / counts[first, second]
    return order, result
