"""Per-map statistics against values computed by hand on tiny maps."""

import math

import numpy as np
import pytest

from daam_store.analysis.statistics import (
    area_above_threshold,
    attribution_shares,
    centroid,
    map_statistics,
    normalized_entropy,
    prompt_statistics,
    total_attribution,
)


def test_total_clips_undershoot_and_shares_sum_to_one():
    a = np.array([[1.0, 2.0], [3.0, -1.0]])  # -1 is interpolation undershoot: counts as 0
    b = np.array([[0.0, 0.0], [0.0, 4.0]])
    assert total_attribution(a) == 6.0
    stats = prompt_statistics([a, b])
    assert [s.share for s in stats] == [0.6, 0.4]
    assert math.isclose(sum(s.share for s in stats), 1.0)


def test_shares_of_all_zero_maps_are_undefined():
    assert all(math.isnan(s) for s in attribution_shares([0.0, 0.0]))


def test_entropy_is_zero_for_one_pixel_and_one_for_uniform():
    point = np.zeros((4, 4))
    point[1, 2] = 5.0
    assert normalized_entropy(point) == 0.0
    assert normalized_entropy(np.ones((4, 4))) == pytest.approx(1.0)
    half = np.array([[1.0, 1.0], [0.0, 0.0]])  # two of four pixels: log 2 / log 4
    assert normalized_entropy(half) == pytest.approx(0.5)
    assert math.isnan(normalized_entropy(np.zeros((3, 3))))


def test_centroid_is_in_fractions_of_the_image_from_the_top_left():
    values = np.zeros((4, 4))
    values[0, 3] = 1.0  # top-right pixel: centre at x = 3.5/4, y = 0.5/4
    assert centroid(values) == (pytest.approx(0.875), pytest.approx(0.125))
    assert centroid(np.ones((2, 2))) == (pytest.approx(0.5), pytest.approx(0.5))


def test_area_above_tau_after_min_max_normalisation():
    values = np.array([[0.0, 0.3], [0.5, 1.0]])  # normalised: 0, .3, .5, 1 -> two above 0.4
    assert area_above_threshold(values) == 0.5
    assert area_above_threshold(np.full((3, 3), 2.0)) == 0.0  # constant: no structure, empty mask


def test_map_statistics_collects_everything():
    values = np.array([[0.0, 1.0], [0.0, 3.0]])
    stats = map_statistics(values, share=0.25)
    assert stats.total == 4.0 and stats.peak == 3.0 and stats.share == 0.25
    assert stats.centroid_x == pytest.approx(0.75)
    assert stats.centroid_y == pytest.approx((1 * 0.25 + 3 * 0.75) / 4)
    assert stats.area_above_tau == 0.25  # normalised 0, 1/3, 0, 1: only the 1 is above 0.4
    with pytest.raises(ValueError, match="2-D"):
        map_statistics(np.ones((2, 2, 2)))
