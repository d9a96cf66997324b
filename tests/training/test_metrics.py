"""Metrics on hand-built inputs whose answers are worked out in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from soundlens.training import metrics


def test_ciou_exact_box_is_one_and_disjoint_is_zero():
    gt = np.zeros((8, 8))
    gt[2:5, 3:7] = 1
    assert metrics.ciou(gt > 0, gt) == 1.0
    pred = np.zeros((8, 8), bool)
    pred[6:, :] = True
    assert metrics.ciou(pred, gt) == 0.0


def test_ciou_weighted_soft_gt():
    # Flickr consensus: 4 pixels at 1, 4 at 0.5. The prediction covers 2 of the 1-pixels,
    # 2 of the 0.5-pixels and 3 background pixels:
    # cIoU = (2*1 + 2*0.5) / (4*1 + 4*0.5 + 3) = 3 / 9.
    gt = np.zeros((4, 4))
    gt[0, :] = 1
    gt[1, :] = 0.5
    pred = np.zeros((4, 4), bool)
    pred[0, :2] = pred[1, :2] = True
    pred[3, :3] = True
    assert metrics.ciou(pred, gt) == pytest.approx(3 / 9, abs=1e-15)


def test_ciou_empty_gt_and_empty_prediction_is_nan_and_counts_as_miss():
    gt = np.zeros((4, 4))
    assert math.isnan(metrics.ciou(np.zeros((4, 4), bool), gt))
    assert metrics.ciou(np.ones((4, 4), bool), gt) == 0.0  # the all-zero VGG-SS GT scores 0
    values = [1.0, float("nan")]
    assert metrics.fraction_at_least(values) == 0.5
    assert metrics.success_curve(values)[0] == 0.5  # nan >= 0 is False, as in the official code
    assert metrics.mean_ciou(values) == 1.0


def test_fraction_at_least_uses_greater_equal():
    assert metrics.fraction_at_least([0.5, 0.49, 1.0, 0.0]) == 0.5


def test_auc_of_known_ciou_list():
    # cIoUs {0, 0.5, 1}: y = 1 at x = 0, 2/3 for x in (0, 0.5], 1/3 for x in (0.5, 1].
    # Trapezoids of width 0.05: (1 + 2/3)/2 + 9 * 2/3 + (2/3 + 1/3)/2 + 9 * 1/3 = 31/3.
    assert metrics.auc([0.0, 0.5, 1.0]) == pytest.approx(0.05 * 31 / 3, abs=1e-12)
    assert metrics.auc([1.0, 1.0]) == pytest.approx(1.0, abs=1e-12)
    assert metrics.auc([0.0]) == pytest.approx(0.025, abs=1e-12)  # only y(0) = 1


def test_auc_thresholds_are_the_official_floats():
    assert len(metrics.AUC_THRESHOLDS) == 21
    assert metrics.AUC_THRESHOLDS[3] == 0.05 * 3 != 0.15  # 0.15000000000000002
    # a cIoU of exactly 0.15 therefore fails the fourth threshold
    assert metrics.success_curve([0.15])[3] == 0.0


def test_mciou_thresholds_and_float_edge():
    t = metrics.MCIOU_THRESHOLDS
    assert len(t) == 10 and t[0] == 0.5 and t[2] > 0.6  # np.arange gives 0.6000000000000001
    # cIoUs {0.6, 0.8}: fractions 1, 1, 0.5 (0.6 < 0.6000000000000001), 0.5, 0.5, 0.5,
    # then 0 from 0.8000000000000003 on -> mean 4/10.
    assert metrics.mciou([0.6, 0.8]) == pytest.approx(0.4, abs=1e-15)


def test_median_and_adaptive_thresholds():
    m = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert metrics.median_threshold(m) == 8.0  # sorted index 16 // 2
    gt = np.zeros((4, 4))
    gt[0, :3] = 1  # k = 3 GT pixels -> thr = sorted[16 - 3] = 13
    assert metrics.adaptive_threshold(m, gt) == 13.0
    assert int((m > 13).sum()) == 2 and int((m >= 13).sum()) == 3
    gt_soft = gt * 0.5  # soft pixels count whole
    assert metrics.adaptive_threshold(m, gt_soft) == 13.0
    assert metrics.adaptive_threshold(m, np.zeros((4, 4))) == 8.0  # empty GT: k := N // 2


def test_minmax_keeps_flat_maps_unchanged():
    flat = np.full((3, 3), 0.3, np.float32)
    assert metrics.minmax(flat) is flat
    out = metrics.minmax(np.array([[2.0, 4.0], [6.0, 10.0]], np.float32))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 0.25], [0.5, 1]])


def test_iiou_groups_by_image():
    assert metrics.image_group("imgs/accordion_baby_10467_accordion.jpg") == "accordion_baby_10467"
    cious = {"a_b_1_x": 0.6, "a_b_1_y": 0.4, "c_2_z": 0.7}
    groups = metrics.group_cious(cious)
    assert groups == {"a_b_1": [0.6, 0.4], "c_2": [0.7]}
    assert metrics.iiou(groups) == 0.5  # a_b_1 fails on its 0.4 object
    # iAUC: both groups pass for x <= 0.4 (9 points), only c_2 for x = 0.45 ... 0.65 (5 points:
    # 0.05 * 14 = 0.7000000000000001 > 0.7), none after.
    expected = np.trapezoid([1.0] * 9 + [0.5] * 5 + [0.0] * 7, metrics.AUC_THRESHOLDS)
    assert metrics.iauc(groups) == pytest.approx(expected, abs=1e-12)


def test_iiou_counts_an_undefined_object_as_a_miss_and_instance_keys_regroup():
    # the official min over 0/1 indicators would be NaN for a group holding a NaN cIoU; SoundLens
    # counts that object as failing (docs/training.md §4.1)
    groups = {"img": [float("nan"), 1.0], "other": [0.9]}
    assert metrics.iiou(groups) == 0.5
    # iAUC: "other" passes t = 0 ... 0.9 (0.05 * 18 == 0.9), 19 points at 1/2, then 0
    assert metrics.iauc(groups) == pytest.approx(0.05 * (18 * 0.5 + 0.25), abs=1e-12)
    # the same cIoUs keyed per VGG-SS clip: 3 instances, iIoU = fraction of clips >= 0.5
    cious = {"aaaaaaaaaaa_000010": 0.6, "aaaaaaaaaaa_000020": 0.4, "bbbbbbbbbbb_000000": 0.7}
    per_clip = metrics.group_cious(cious, metrics.instance_key_fn("vggss"))
    assert list(per_clip) == ["aaaaaaaaaaa_10000", "aaaaaaaaaaa_20000", "bbbbbbbbbbb_0"]
    assert metrics.iiou(per_clip) == pytest.approx(2 / 3) == metrics.fraction_at_least(cious.values())
    assert metrics.iiou(metrics.group_cious(cious)) == 0.5  # the bare rule on ids merges by video


# ---------------------------------------------------------------- SLAVC extended metrics

# Four samples (official_repos.md §3.4), sorted by confidence 0.9, 0.8, 0.7, 0.6:
#   s0 sounding cIoU 0.8, s1 sounding cIoU 0.3, s2 silent, s3 sounding cIoU 0.9.
BOXES, CIOUS, CONFS = [1, 1, 0, 1], [0.8, 0.3, 0.0, 0.9], [0.9, 0.8, 0.7, 0.6]


def test_slavc_precision_recall_at_thresholds():
    assert metrics.precision_recall(BOXES, CIOUS, CONFS, 0.8) == (0.5, 0.5)  # TP s0, FP s1, FN s3
    assert metrics.precision_recall(BOXES, CIOUS, CONFS, 0.7) == (1 / 3, 0.5)  # + silent s2 is FP
    assert metrics.precision_recall(BOXES, CIOUS, CONFS, 0.6) == (0.5, 1.0)


def test_slavc_ap_by_hand():
    # thresholds = sorted confidences minus the largest, high -> low: 0.8, 0.7, 0.6
    # precision 0.5, 1/3, 0.5 -> monotone 0.5, 0.5, 0.5; recall 0.5, 0.5, 1.0
    # AP = 0.5 * (0.5 - 0.5) + 0.5 * (1.0 - 0.5) = 0.25
    assert metrics.average_precision(BOXES, CIOUS, CONFS) == pytest.approx(0.25, abs=1e-15)


def test_slavc_max_f1_and_locacc_by_hand():
    # F1 at 0.6: p 0.5 r 1 -> 2/3; at 0.7: 0.4; at 0.8: 0.5; at 0.9: p 1 r 1/3 -> 0.5
    assert metrics.f1_curve(BOXES, CIOUS, CONFS) == pytest.approx([2 / 3, 0.4, 0.5, 0.5])
    assert metrics.max_f1(BOXES, CIOUS, CONFS) == pytest.approx(2 / 3)
    assert metrics.localization_accuracy(BOXES, CIOUS) == pytest.approx(2 / 3)  # 0.8, 0.9 of the 3 visible
    out = metrics.slavc_metrics(BOXES, CIOUS, CONFS)
    assert out == pytest.approx({"AP": 0.25, "max_F1": 2 / 3, "LocAcc": 2 / 3})


def test_slavc_confidence_is_mean_of_top_quarter():
    scores = (np.arange(16, dtype=np.float64) / 15).reshape(4, 4)
    assert metrics.confidence(scores) == pytest.approx(13.5 / 15)  # 12, 13, 14, 15
    assert metrics.confidence(np.arange(6.0).reshape(2, 3)) == 4.5  # ceil(6 / 4) = 2 values: 4, 5


# ---------------------------------------------------------------- retrieval

def test_cross_modal_recall_by_hand():
    labels = [0, 0, 1, 1]
    image = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]])
    audio = np.array([[0, 1], [1, 0.05], [0.05, 1], [1, 0]])  # a0 and a3 point at the other class
    out = metrics.cross_modal_recall(audio, image, labels, ks=(1, 2, 3))
    # a2i: a1, a2 hit at rank 1; a0 and a3 first meet their class at rank 3
    assert (out["a2i_R@1"], out["a2i_R@2"], out["a2i_R@3"]) == (0.5, 0.5, 1.0)
    # i2a: v1, v3 hit at rank 1 (a1, a2); v0 ranks a3 then a1, v2 ranks a0 then a2
    assert (out["i2a_R@1"], out["i2a_R@2"], out["i2a_R@3"]) == (0.5, 1.0, 1.0)


def test_recall_ties_rank_lower_gallery_index_first():
    q = np.array([[1.0, 0.0]])
    g = np.array([[1.0, 0.0], [2.0, 0.0]])  # same direction: cosine tie
    assert metrics.recall_at_k(q, g, ["A"], ["B", "A"], ks=(1, 2)) == {1: 0.0, 2: 1.0}


# ---------------------------------------------------------------- AVSBench

def _frame(values):
    return np.array(values, dtype=np.float64).reshape(2, 2)


def test_avsbench_frame_iou_and_empty_gt_rule():
    prob = np.stack([_frame([0.2] * 4), _frame([0.9, 0.1, 0.9, 0.1]), _frame([0.0] * 4)])
    gt = np.stack([_frame([0] * 4), _frame([1, 1, 0, 0]), _frame([0, 0, 1, 1])])
    ious = metrics.frame_ious(prob, gt)
    # empty GT + empty prediction: 4 both-zero pixels over H*W = 4 -> ~1; then 1/3; then 0
    np.testing.assert_allclose(ious, [1.0, 1 / 3, 0.0], atol=1e-6)
    assert metrics.miou(prob, gt) == pytest.approx(4 / 9, abs=1e-6)
    assert metrics.miou_per_batch(prob, gt, 1) == pytest.approx(4 / 9, abs=1e-6)
    # batches [f1, f2], [f3]: mean(2/3, 0) = 1/3
    assert metrics.miou_per_batch(prob, gt, 2) == pytest.approx(1 / 3, abs=1e-6)


def test_avsbench_fscore_depends_on_batch_size_only_in_the_official_form():
    f_all = 1.3 * 0.25 / (0.3 * 0.25 + 1)  # everything predicted: P = 1/4, R = 1
    # A: the object is the 0.9 pixel -> F = 1 for thresholds in (0.1, 0.9]
    a_prob, a_gt = _frame([0.9, 0.1, 0.1, 0.1]), _frame([1, 0, 0, 0])
    # B: the object is a 0.05 pixel -> F = f_all for thresholds <= 0.05, else 0
    b_prob, b_gt = _frame([0.95, 0.05, 0.05, 0.05]), _frame([0, 1, 0, 0])
    prob, gt = np.stack([a_prob, b_prob]), np.stack([a_gt, b_gt])
    # one curve for the set: max of the average = (1 + 0) / 2 in (0.1, 0.9]
    assert metrics.fscore(prob, gt) == pytest.approx(0.5)
    assert metrics.fscore_per_batch(prob, gt, 2) == pytest.approx(0.5)
    # batches of one frame: mean of the per-frame maxima
    assert metrics.fscore_per_batch(prob, gt, 1) == pytest.approx((1 + f_all) / 2)
    # an all-black GT frame is skipped by the set form but is a 0 batch in the per-batch form
    prob3, gt3 = np.concatenate([prob, a_prob[None]]), np.concatenate([gt, np.zeros((1, 2, 2))])
    assert metrics.fscore(prob3, gt3) == pytest.approx(0.5)
    assert metrics.fscore_per_batch(prob3, gt3, 1) == pytest.approx((1 + f_all) / 3)


def test_avsbench_thresholds_are_float32_linspace():
    t = metrics.avsbench.F_THRESHOLDS
    assert t.dtype == np.float32 and len(t) == 255 and t[0] == 0 and t[-1] == 1.0
