"""Word-overlap, seed-stability, model-agreement and prompt-edit metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from daam_store.analysis.agreement import agreement, align_maps, mean_agreement, resample_area
from daam_store.analysis.edits import align_words, compare_edit
from daam_store.analysis.overlap import (
    map_iou,
    mask_iou,
    mean_overlap_by_word,
    mean_overlap_matrix,
    overlap_matrix,
    tau_mask,
)
from daam_store.analysis.stability import correlation, stability

# Two words of a 2x3 generation: masks at tau 0.4 are {(0,1),(0,2)} and {(0,2),(1,1)}: IoU 1/3.
WORD_A = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
WORD_B = np.array([[0.0, 0.0, 2.0], [0.0, 2.0, 0.0]])
CONSTANT = np.ones((2, 3))


def test_tau_mask_normalises_min_max_and_is_strict():
    values = np.array([[2.0, 4.0, 7.0, 12.0]])  # normalised: 0, 0.2, 0.5, 1.0
    assert tau_mask(values, 0.4).tolist() == [[False, False, True, True]]
    assert tau_mask(values, 0.5).tolist() == [[False, False, False, True]]  # 0.5 is not above 0.5
    assert not tau_mask(CONSTANT).any()  # no structure, no mask


def test_overlap_matrix_by_hand():
    matrix = overlap_matrix([WORD_A, WORD_B, CONSTANT])
    assert matrix[0, 1] == pytest.approx(1 / 3)
    assert matrix[1, 0] == pytest.approx(1 / 3)
    assert matrix[0, 0] == 1.0 and matrix[1, 1] == 1.0
    assert matrix[0, 2] == 0.0  # empty mask against a non-empty one: no overlap
    assert math.isnan(matrix[2, 2])  # two empty masks: undefined, not perfect overlap


def test_mean_overlap_matrix_skips_undefined_cells():
    first = np.array([[1.0, np.nan], [np.nan, 1.0]])
    second = np.array([[1.0, 0.5], [0.5, np.nan]])
    third = np.array([[1.0, 0.1], [0.1, 0.0]])
    assert mean_overlap_matrix([first, second, third]) == pytest.approx(np.array([[1.0, 0.3], [0.3, 0.5]]))


def test_correlation_by_hand():
    assert correlation(np.array([1, 2, 3]), np.array([2, 4, 6])) == pytest.approx(1.0)
    assert correlation(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
    assert math.isnan(correlation(np.array([1, 2, 3]), np.array([5, 5, 5])))
    with pytest.raises(ValueError, match="align"):
        correlation(np.zeros((2, 2)), np.zeros((3, 3)))


def test_stability_over_three_seeds_by_hand():
    # correlations: (x,y)=1, (x,z)=-1, (y,z)=-1 -> -1/3; masks [F,T,T],[F,T,T],[T,T,F] -> IoUs 1, 1/3, 1/3
    x, y, z = np.array([[1.0, 2.0, 3.0]]), np.array([[2.0, 4.0, 6.0]]), np.array([[3.0, 2.0, 1.0]])
    result = stability([x, y, z])
    assert result.n_maps == 3
    assert result.mean_correlation == pytest.approx(-1 / 3)
    assert result.mean_iou == pytest.approx(5 / 9)


def test_stability_leaves_undefined_pairs_out():
    x, constant = np.array([[1.0, 2.0, 3.0]]), np.array([[5.0, 5.0, 5.0]])
    result = stability([x, x, constant])  # only (x, x) has a correlation; IoUs 1, 0, 0
    assert result.mean_correlation == pytest.approx(1.0)
    assert result.mean_iou == pytest.approx(1 / 3)
    assert math.isnan(stability([x]).mean_correlation)  # one seed: no pair


def test_stability_equals_the_pairwise_definition_on_random_maps():
    rng = np.random.default_rng(3)
    maps = [rng.random((6, 5)) for _ in range(7)] + [np.ones((6, 5))]  # one constant map among them
    masks = [tau_mask(m) for m in maps]
    pairs = [(i, j) for i in range(8) for j in range(i + 1, 8)]
    correlations = [correlation(maps[i], maps[j]) for i, j in pairs]
    ious = [mask_iou(masks[i], masks[j]) for i, j in pairs]
    result = stability(maps)
    assert result.mean_correlation == pytest.approx(np.nanmean(correlations))
    assert result.mean_iou == pytest.approx(np.nanmean(ious))


def test_resample_area_block_means_and_fractional_cells():
    fine = np.arange(16, dtype=float).reshape(4, 4)
    assert resample_area(fine, (2, 2)) == pytest.approx(np.array([[2.5, 4.5], [10.5, 12.5]]))
    # 3 -> 2 cells: the first output cell covers all of input 0 and half of input 1: (2*3 + 6) / 3 = 4
    assert resample_area(np.array([[3.0, 6.0, 9.0]]), (1, 2)) == pytest.approx(np.array([[4.0, 8.0]]))


def test_agreement_aligns_to_the_coarser_map():
    fine = np.zeros((4, 4))
    fine[:2, :2] = 1.0  # block means: [[1, 0], [0, 0]]
    coarse = np.array([[1.0, 0.0], [0.0, 1.0]])
    aligned_fine, aligned_coarse = align_maps(fine, coarse)
    assert aligned_fine.shape == aligned_coarse.shape == (2, 2)
    result = agreement(fine, coarse, share_a=0.3, share_b=0.1)
    # centred [.75,-.25,-.25,-.25] . [.5,-.5,-.5,.5] = 0.5; norms sqrt(0.75) and 1
    assert result.correlation == pytest.approx(0.5 / math.sqrt(0.75))
    assert result.iou == pytest.approx(0.5)  # masks {0} and {0, 3}
    assert result.share_difference == pytest.approx(0.2)


def test_mean_agreement_over_seeds():
    same = agreement(WORD_A, WORD_A, 0.5, 0.2)
    other = agreement(WORD_A, WORD_B, 0.3, 0.4)
    mean = mean_agreement([same, other])
    assert mean.iou == pytest.approx((1 + 1 / 3) / 2)
    assert mean.share_a == pytest.approx(0.4) and mean.share_b == pytest.approx(0.3)
    assert mean.share_difference == pytest.approx(0.1)


def test_align_words_insertion_and_replacement():
    assert align_words(["a", "dog"], ["a", "red", "dog"]) == [(0, 0), (None, 1), (1, 2)]
    assert align_words(["A", "cat"], ["a", "dog"]) == [(0, 0), (1, None), (None, 1)]


def test_compare_edit_a_dog_vs_a_red_dog():
    dog_a = np.array([[0.0, 1.0], [0.0, 1.0]])
    dog_b = np.array([[0.0, 1.0], [0.0, 0.0]])
    edit = compare_edit(
        ["a", "dog"], [0.2, 0.8], ["a", "red", "dog"], [0.1, 0.3, 0.6],
        maps_a=[np.eye(2), dog_a], maps_b=[np.eye(2), np.ones((2, 2)), dog_b],
    )  # fmt: skip
    by_word = {move.word: move for move in edit.moves}
    assert [move.status for move in edit.moves] == ["kept", "added", "kept"]
    assert by_word["red"].share_change == pytest.approx(0.3)
    assert by_word["dog"].share_change == pytest.approx(-0.2)
    assert by_word["a"].share_change == pytest.approx(-0.1)
    assert by_word["dog"].iou == pytest.approx(0.5)  # right column vs top-right cell
    assert by_word["a"].iou == pytest.approx(1.0)
    assert math.isnan(by_word["red"].iou)  # nothing to compare an added word with
    assert edit.added_share == pytest.approx(0.3) and edit.removed_share == 0.0


def test_compare_edit_rejects_mismatched_shares():
    with pytest.raises(ValueError, match="one share per word"):
        compare_edit(["a", "dog"], [1.0], ["a"], [1.0])


def test_map_iou_is_symmetric():
    assert map_iou(WORD_A, WORD_B) == map_iou(WORD_B, WORD_A)


def test_mean_overlap_by_word_matches_words_across_prompts():
    # "a dog" (IoU a/dog 0.2) and "a Dog" in another seed (0.4), and "a cat" (a/cat 0.9).
    dog_1 = (["a", "dog"], np.array([[1.0, 0.2], [0.2, 1.0]]))
    dog_2 = (["a", "Dog"], np.array([[1.0, 0.4], [0.4, np.nan]]))
    cat = (["a", "cat"], np.array([[1.0, 0.9], [0.9, 1.0]]))
    words, matrix = mean_overlap_by_word([dog_1, dog_2, cat])
    assert words == ["a", "dog", "cat"]  # "a" in 3 generations, "dog" in 2, "cat" in 1
    assert matrix[0, 1] == pytest.approx(0.3) and matrix[1, 0] == pytest.approx(0.3)
    assert matrix[0, 2] == pytest.approx(0.9)
    assert matrix[1, 1] == pytest.approx(1.0)  # the undefined diagonal of dog_2 is left out
    assert math.isnan(matrix[1, 2])  # "dog" and "cat" never share a prompt


def test_mean_overlap_by_word_keeps_repeated_words_off_the_diagonal():
    repeated = (["a", "dog", "a"], np.array([[1.0, 0.2, 0.5], [0.2, 1.0, 0.4], [0.5, 0.4, 1.0]]))
    words, matrix = mean_overlap_by_word([repeated])
    assert words == ["a", "dog"]
    assert matrix[0, 0] == pytest.approx(1.0)  # not pulled down by the two a's overlap of 0.5
    assert matrix[0, 1] == pytest.approx(0.3)  # both occurrences of "a" against "dog"


def test_analysis_is_pure_numpy():
    """analysis/ holds metrics over arrays: no store, sweeps, pandas, plotting or Streamlit (those are views/)."""
    import ast
    from pathlib import Path

    allowed = {"__future__", "collections", "dataclasses", "difflib", "math", "typing", "numpy", "daam_store"}
    folder = Path(__file__).resolve().parents[1] / "daam_store" / "analysis"
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
                assert not name.startswith("daam_store.") or name.startswith("daam_store.analysis"), path.name
