"""SLAVC's extended metrics for sets with non-sounding samples (official_repos.md §3.4).

Each sample has a cIoU, a confidence and a box count (0 = non-sounding: silent or mismatched
audio). Everything is pure numpy / Python over lists of equal length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confidence(scores: np.ndarray) -> float:
    """Mean of the top 25 % scores of a [H, W] fixed-range score map (§2.2, §3.4).

    The official slice is `np.sort(flat)[-n//4:]` (Python's floor of -n/4, so ceil(n/4) values);
    the mean is taken in the map's dtype, as numpy does. Returns a float (unitless score).
    """
    flat = np.sort(np.asarray(scores).ravel())
    n = flat.size
    return float(flat[(-n) // 4:].mean())


def precision_recall(n_boxes: Sequence[int], cious: Sequence[float], confidences: Sequence[float],
                     conf_threshold: float, ciou_threshold: float = 0.5) -> tuple[float, float]:
    """Precision and recall at one confidence threshold (§3.4).

    Sounding (n_boxes > 0) and confident (c >= θ): TP if cIoU >= ciou_threshold else FP;
    sounding and not confident: FN; non-sounding and confident: FP. An empty denominator gives
    1.0, as in the official code. Returns (precision, recall) floats in [0, 1].
    """
    tp = fp = fn = 0
    for bb, value, conf in zip(n_boxes, cious, confidences, strict=True):
        if conf >= conf_threshold:
            if bb == 0 or not value >= ciou_threshold:
                fp += 1
            else:
                tp += 1
        elif bb != 0:
            fn += 1
    precision = 1.0 if tp + fp == 0 else tp / (tp + fp)
    recall = 1.0 if tp + fn == 0 else tp / (tp + fn)
    return precision, recall


def average_precision(n_boxes: Sequence[int], cious: Sequence[float], confidences: Sequence[float],
                      ciou_threshold: float = 0.5) -> float:
    """SLAVC AP with its exact threshold traversal (§3.4, `EvaluatorFull.calc_ap`).

    Thresholds: the ascending-sorted confidences without the last (largest) one, walked from
    high to low with step max(1, N // 200). Precision is made monotone (max over the later, lower
    thresholds) and AP = sum_i p_max[i] * (r[i+1] - r[i]). Returns a float in [0, 1] (0 for N < 3).
    """
    conf = np.asarray(confidences, dtype=np.float64)
    step = max(1, len(conf) // 200)
    thresholds = np.sort(conf)[:-1][::-step]
    pr = [precision_recall(n_boxes, cious, confidences, float(t), ciou_threshold) for t in thresholds]
    precision = [p for p, _ in pr]
    recall = [r for _, r in pr]
    p_max = [max(precision[i:]) for i in range(len(precision))]
    return float(sum(p_max[i] * (recall[i + 1] - recall[i]) for i in range(len(p_max) - 1)))


def f1_curve(n_boxes: Sequence[int], cious: Sequence[float], confidences: Sequence[float],
             ciou_threshold: float = 0.5) -> list[float]:
    """F1 at every (N // 10)-th ascending-sorted confidence, starting with the smallest (§3.4)."""
    ordered = sorted(float(c) for c in confidences)
    out = []
    for t in ordered[::max(1, len(ordered) // 10)]:
        p, r = precision_recall(n_boxes, cious, confidences, t, ciou_threshold)
        out.append(2 * r * p / (r + p) if r + p > 0 else 0.0)
    return out


def max_f1(n_boxes: Sequence[int], cious: Sequence[float], confidences: Sequence[float],
           ciou_threshold: float = 0.5) -> float:
    """The maximum of `f1_curve` (SLAVC's "max-F1"). Float in [0, 1]; NaN when N == 0."""
    curve = f1_curve(n_boxes, cious, confidences, ciou_threshold)
    return max(curve) if curve else float("nan")


def localization_accuracy(n_boxes: Sequence[int], cious: Sequence[float],
                          ciou_threshold: float = 0.5) -> float:
    """SLAVC "Precision" (LocAcc): precision at θ = -1000 on the visible (sounding) subset.

    Equals the fraction of sounding samples with cIoU >= ciou_threshold (`finalize_stats`;
    SLAVC's running print `precision_at_50` uses `> 0.5` instead). NaN with no sounding sample.
    """
    visible = [v for bb, v in zip(n_boxes, cious, strict=True) if bb > 0]
    if not visible:
        return float("nan")
    return precision_recall([1] * len(visible), visible, [0.0] * len(visible), -1000.0, ciou_threshold)[0]


def slavc_metrics(n_boxes: Sequence[int], cious: Sequence[float], confidences: Sequence[float],
                  ciou_threshold: float = 0.5) -> dict[str, float]:
    """AP and max-F1 over all samples (silent ones included) and LocAcc on the visible subset.

    Args:
        n_boxes: [N] box counts, 0 for non-sounding samples (their cIoU is ignored).
        cious: [N] per-sample cIoU.
        confidences: [N] `confidence()` of each sample's fixed-range score map.
        ciou_threshold: the IoU bar (0.5 or 0.75 in SLAVC).

    Returns:
        {"AP", "max_F1", "LocAcc"} floats in [0, 1].
    """
    return {
        "AP": average_precision(n_boxes, cious, confidences, ciou_threshold),
        "max_F1": max_f1(n_boxes, cious, confidences, ciou_threshold),
        "LocAcc": localization_accuracy(n_boxes, cious, ciou_threshold),
    }
