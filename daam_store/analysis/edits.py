"""Prompt edits: how attribution moves between two prompts that differ by words ("a dog" -> "a red dog")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np

from daam_store.analysis.agreement import align_maps
from daam_store.analysis.overlap import DEFAULT_TAU, map_iou
from daam_store.analysis.stability import correlation


@dataclass(frozen=True)
class WordMove:
    word: str
    status: str  # "kept" (in both prompts), "added" (only in B) or "removed" (only in A)
    index_a: int | None  # position among prompt A's words; None when added
    index_b: int | None
    share_a: float  # attribution share in prompt A; 0 when the word is not there
    share_b: float
    share_change: float  # share_b - share_a
    iou: float  # kept words with maps: IoU of the word's tau-masks under A and B; NaN otherwise
    correlation: float  # kept words with maps: correlation of the two maps; NaN otherwise


@dataclass(frozen=True)
class EditComparison:
    moves: list[WordMove]
    removed_share: float  # share prompt A gave to the words the edit removed
    added_share: float  # share prompt B gives to the words the edit added: what the kept words lost


def align_words(words_a: Sequence[str], words_b: Sequence[str]) -> list[tuple[int | None, int | None]]:
    """Pairs (index in A, index in B) of the longest common word sequence (case-insensitive), plus
    (i, None) for removed and (None, j) for added words, in reading order."""
    matcher = SequenceMatcher(a=[w.lower() for w in words_a], b=[w.lower() for w in words_b], autojunk=False)
    pairs: list[tuple[int | None, int | None]] = []
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if tag == "equal":
            pairs.extend(zip(range(a_start, a_end), range(b_start, b_end), strict=True))
        else:  # "replace" is a removal plus an addition: a different word is not the same word moved
            pairs.extend((i, None) for i in range(a_start, a_end))
            pairs.extend((None, j) for j in range(b_start, b_end))
    return pairs


def compare_edit(
    words_a: Sequence[str],
    shares_a: Sequence[float],
    words_b: Sequence[str],
    shares_b: Sequence[float],
    maps_a: Sequence[np.ndarray] | None = None,
    maps_b: Sequence[np.ndarray] | None = None,
    tau: float = DEFAULT_TAU,
) -> EditComparison:
    """Per-word share before and after the edit; with maps (same seed), how each kept word's map moved."""
    if len(words_a) != len(shares_a) or len(words_b) != len(shares_b):
        raise ValueError("each prompt needs one share per word")
    moves = [
        _move(i, j, words_a, shares_a, words_b, shares_b, maps_a, maps_b, tau) for i, j in align_words(words_a, words_b)
    ]
    return EditComparison(
        moves=moves,
        removed_share=float(sum(move.share_a for move in moves if move.status == "removed")),
        added_share=float(sum(move.share_b for move in moves if move.status == "added")),
    )


def _move(i, j, words_a, shares_a, words_b, shares_b, maps_a, maps_b, tau) -> WordMove:
    share_a = float(shares_a[i]) if i is not None else 0.0
    share_b = float(shares_b[j]) if j is not None else 0.0
    iou = corr = float("nan")
    if i is not None and j is not None and maps_a is not None and maps_b is not None:
        aligned_a, aligned_b = align_maps(np.asarray(maps_a[i]), np.asarray(maps_b[j]))
        iou, corr = map_iou(aligned_a, aligned_b, tau), correlation(aligned_a, aligned_b)
    status = "kept" if i is not None and j is not None else ("removed" if j is None else "added")
    return WordMove(
        word=words_a[i] if i is not None else words_b[j],
        status=status,
        index_a=i,
        index_b=j,
        share_a=share_a,
        share_b=share_b,
        share_change=share_b - share_a,
        iou=iou,
        correlation=corr,
    )
