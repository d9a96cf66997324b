"""Peak extraction and map placement (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest
from soundlens.realtime.peaks import find_peaks, local_maxima, map_region, normalise


def test_top_k_local_maxima_in_frame_coordinates():
    m = np.zeros((7, 7), np.float32)
    m[1, 5] = 10.0  # strongest, top right
    m[5, 1] = 6.0  # second, bottom left
    m[5, 2] = 5.0  # a shoulder of the second, not a peak
    m[3, 3] = 2.0
    peaks = find_peaks(m, k=5, frame_size=(700, 350))
    assert [(p["row"], p["col"]) for p in peaks] == [(1, 5), (5, 1), (3, 3)]
    assert [p["score"] for p in peaks] == pytest.approx([1.0, 0.6, 0.2])
    top = peaks[0]
    assert top["u"] == pytest.approx(5.5 / 7) and top["v"] == pytest.approx(1.5 / 7)
    assert top["x"] == pytest.approx(top["u"] * 700) and top["y"] == pytest.approx(top["v"] * 350)
    # the shoulder pulls the second peak towards it (sub-cell refinement), within half a cell
    assert 1.5 / 7 < peaks[1]["u"] < 2.0 / 7
    assert find_peaks(m, k=1, frame_size=(700, 350)) == peaks[:1]
    assert find_peaks(m, k=3, frame_size=(700, 350), min_score=0.5) == peaks[:2]


def test_flat_nan_and_plateau_maps():
    assert find_peaks(np.full((7, 7), 3.0)) == []
    assert find_peaks(np.full((4, 4), np.nan)) == []
    m = np.zeros((5, 5))
    m[2, 1:3] = 1.0  # a two-cell plateau is one peak
    assert local_maxima(m).sum() == 1
    norm, lo, hi = normalise(np.array([[np.nan, 1.0], [3.0, np.inf]]))
    assert (lo, hi) == (1.0, 3.0) and norm.dtype == np.float32
    np.testing.assert_array_equal(norm, [[0, 0], [1, 0]])


def test_map_region_for_square_and_cropping_presets():
    assert map_region(640, 480, "square") == (0.0, 0.0, 640.0, 480.0)
    assert map_region(640, 480, "short_side") == (80.0, 0.0, 560.0, 480.0)
    m = np.zeros((7, 7))
    m[3, 0] = 1.0  # left-middle cell of a centre-cropped map
    peak = find_peaks(m, 1, region=map_region(640, 480, "short_side"), frame_size=(640, 480))[0]
    assert peak["x"] == pytest.approx(80 + 0.5 / 7 * 480) and peak["v"] == pytest.approx(0.5)


def test_ties_keep_row_major_order_and_equal_neighbours_give_one_peak():
    m = np.zeros((5, 6), np.float32)
    m[3, 1] = m[1, 4] = 1.0  # equal, apart: both peaks, the one in the earlier row first
    m[0, 0] = m[0, 1] = 0.5  # equal neighbours: one peak, the first in row-major order
    peaks = find_peaks(m, k=5)
    assert [(p["row"], p["col"], p["score"]) for p in peaks] == [(1, 4, 1.0), (3, 1, 1.0), (0, 0, 0.5)]
    mask = np.zeros((3, 3), bool)
    mask[0, 2] = True  # a diagonal pair: the later cell has the earlier one above-right of it
    d = np.zeros((3, 3))
    d[0, 2] = d[1, 1] = 1.0
    np.testing.assert_array_equal(local_maxima(d), mask)


def test_subcell_refinement_is_the_documented_three_point_parabola():
    """docs/protocol.md §4.2: per axis from the cell centre, 0.5 (L - R) / (L - 2M + R), none on a border."""
    m = np.zeros((4, 6), np.float32)  # h=4, w=6
    m[2, 3], m[2, 2], m[2, 4], m[1, 3], m[3, 3] = 1.0, 0.25, 0.75, 0.5, 0.125
    m[0, 0] = 0.9  # a border peak: not refined
    peaks = find_peaks(m, k=2, region=(10.0, 20.0, 130.0, 100.0), frame_size=(160, 120))
    top = peaks[0]
    dx = 0.5 * (0.25 - 0.75) / (0.25 - 2 * 1.0 + 0.75)
    dy = 0.5 * (0.5 - 0.125) / (0.5 - 2 * 1.0 + 0.125)
    assert top["score"] == 1.0  # the cell's value, not the parabola's vertex
    assert top["x"] == 10.0 + (3 + 0.5 + dx) / 6 * 120.0  # exact: the same double operations
    assert top["y"] == 20.0 + (2 + 0.5 + dy) / 4 * 80.0
    assert (top["u"], top["v"]) == (top["x"] / 160, top["y"] / 120)
    border = peaks[1]
    assert (border["x"], border["y"]) == (10.0 + 0.5 / 6 * 120.0, 20.0 + 0.5 / 4 * 80.0)
