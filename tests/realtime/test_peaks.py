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
