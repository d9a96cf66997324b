"""The one pointing-game rule (training.metrics.pointing) and the two places that score with it."""

import numpy as np
import pytest
import torch
from soundlens.training import protocols
from soundlens.training.metrics import peak_in_box, peak_on_mask


@pytest.mark.parametrize("kind", [float, np.asarray, torch.tensor])
def test_peak_in_box_counts_edges_and_rejects_outside(kind):
    box = (10.0, 20.0, 30.0, 40.0)
    xs, ys = [10.0, 30.0, 20.0, 9.99, 30.01, 20.0, 20.0], [20.0, 40.0, 30.0, 30.0, 30.0, 19.99, 40.01]
    want = [True, True, True, False, False, False, False]
    if kind is float:
        got = [bool(peak_in_box(x, y, box)) for x, y in zip(xs, ys, strict=True)]
    else:
        got = peak_in_box(kind(xs), kind(ys), kind([box] * len(xs))).tolist()
    assert got == want


def test_peak_on_mask_takes_the_first_maximum_like_numpy():
    score = np.zeros((4, 4), np.float32)
    score[1, 2] = score[3, 0] = 1.0  # a tie: row-major order picks (1, 2)
    mask = np.zeros((4, 4), np.uint8)
    mask[1, 2] = 1
    assert peak_on_mask(score, mask)
    mask[1, 2], mask[3, 0] = 0, 1
    assert not peak_on_mask(score, mask)


def test_protocol_pointing_hits_upsample_then_point_and_skip_silent():
    protocol = protocols.get("ezvsl")
    native = np.zeros((7, 7), np.float32)
    native[1, 5] = 1.0  # top right
    gt_top_right = np.zeros((protocol.size, protocol.size), np.uint8)
    gt_top_right[: protocol.size // 2, protocol.size // 2 :] = 1
    gts = {"a": gt_top_right, "b": 1 - gt_top_right, "silent": None}
    maps = {"a": native, "b": native, "silent": native}
    assert protocols.pointing_hits(maps, gts, protocol) == {"a": True, "b": False}
