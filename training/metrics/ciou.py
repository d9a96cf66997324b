"""Per-sample cIoU and the aggregates every box-based SSL repository reports.

All functions are pure numpy. cIoU values are plain floats in [0, 1] (NaN where the official
arithmetic divides 0 by 0: an empty ground truth and an empty prediction).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

# official_repos.md §3.1: x = 0, 0.05, ..., 1.00 written as 0.05 * i in every repo (so 0.15 is
# 0.15000000000000002); the exact floats matter for cIoU values that sit on a threshold.
AUC_THRESHOLDS: tuple[float, ...] = tuple(0.05 * i for i in range(21))
# official_repos.md §2.7: SIRA's mcIoU thresholds are np.arange(0.5, 1.0, 0.05) (10 values).
MCIOU_THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.arange(0.5, 1.0, 0.05))


def ciou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Consensus IoU of one sample (official_repos.md §3.1, weighted form).

    cIoU = sum(P * G) / (sum(G) + sum(P * [G == 0])).

    Args:
        pred: [H, W] binary prediction (bool or 0/1 of any dtype).
        gt: [H, W] ground-truth map in [0, 1] (Flickr consensus maps hold 0, 0.5 and 1; a
            G = 0.5 pixel counts half in the numerator and in sum(G)).

    Returns:
        The cIoU as a float, computed in float64 like the official numpy code; NaN when the
        denominator is 0 (empty GT and empty prediction), where the official code gives 0/0.
    """
    p = np.asarray(pred).astype(np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    inter = float(np.sum(p * g))
    union = float(np.sum(g) + np.sum(p * (g == 0)))
    return inter / union if union != 0 else float("nan")


def _as_array(cious: Iterable[float]) -> np.ndarray:
    return np.asarray(list(cious), dtype=np.float64)


def fraction_at_least(cious: Iterable[float], threshold: float = 0.5) -> float:
    """Fraction of samples with cIoU >= threshold: the tables' "cIoU" (`AP50`) at 0.5.

    Args:
        cious: per-sample cIoU values; NaN counts as a miss, as `nan >= t` is False in the
            official code.
        threshold: the cIoU bar, unitless.

    Returns:
        A float in [0, 1]; NaN for an empty list.
    """
    c = _as_array(cious)
    if c.size == 0:
        return float("nan")
    return float(np.sum(c >= threshold) / c.size)


def success_curve(cious: Iterable[float], thresholds: Sequence[float] = AUC_THRESHOLDS) -> np.ndarray:
    """y(x) = fraction of samples with cIoU >= x for each x in `thresholds` ([T] float64)."""
    c = _as_array(cious)
    if c.size == 0:
        return np.full(len(thresholds), np.nan)
    return np.array([np.sum(c >= t) / c.size for t in thresholds], dtype=np.float64)


def auc(cious: Iterable[float]) -> float:
    """Area under the 21-point success curve (official_repos.md §3.1).

    Trapezoid rule over x = 0, 0.05, ..., 1 of the fraction of samples with cIoU >= x; this is
    what `sklearn.metrics.auc(x, y)` computes for increasing x. Returns a float in [0, 1].
    """
    return float(np.trapezoid(success_curve(cious), AUC_THRESHOLDS))


def mean_ciou(cious: Iterable[float]) -> float:
    """Mean cIoU ("Avg-cIoU" in EZ-VSL), ignoring NaN samples (the official mean would be NaN)."""
    c = _as_array(cious)
    c = c[~np.isnan(c)]
    return float(c.mean()) if c.size else float("nan")


def mciou(cious: Iterable[float]) -> float:
    """SIRA's mcIoU: mean over t in np.arange(0.5, 1.0, 0.05) of fraction(cIoU >= t) (§3.1)."""
    return float(np.mean(success_curve(cious, MCIOU_THRESHOLDS)))


def image_group(sample_id: str) -> str:
    """SSL-Align's `short_name` rule: a file name minus its last `_` token (§2.4).

    `accordion_baby_10467_accordion.jpg` -> `accordion_baby_10467`; the directory part and a
    `.jpg` suffix are dropped first, as in the official `short_name` (kaistmm/SSLalignment
    `test.py::validate_lvs` / `validate`). Apply it to the name the official loop sees, not to a
    SoundLens id: `training.metrics.instances.instance_key` does that per dataset (VGG-SS
    `YTID_000032` is `YTID_32000_42000.mp4` there, one instance per clip).
    """
    base = sample_id.split("/")[-1].replace(".jpg", "")
    return "_".join(base.split("_")[:-1])


def group_cious(cious: Mapping[str, float],
                key: Callable[[str], str] = image_group) -> dict[str, list[float]]:
    """Group per-sample cIoUs {id: cIoU} by instance: {key(id): [cIoU, ...]} in first-seen order.

    The default `key` is the bare `short_name` rule, right for official file names (IS3 image
    names); for SoundLens ids pass `instances.instance_key_fn(naming)`.
    """
    groups: dict[str, list[float]] = {}
    for sample_id, value in cious.items():
        groups.setdefault(key(sample_id), []).append(float(value))
    return groups


def iiou(groups: Mapping[str, Sequence[float]], threshold: float = 0.5) -> float:
    """SSL-Align iIoU: fraction of instances whose every per-object cIoU is >= threshold (§2.4).

    `utils.Evaluator_iiou.finalize_cIoU`: per instance the min of the 0/1 indicators. A NaN cIoU
    (0/0) counts as a miss here; the official min/mean propagate it, making the iIoU NaN.
    Returns a float in [0, 1]; NaN for no instance.
    """
    if not groups:
        return float("nan")
    return float(np.mean([float(np.all(np.asarray(v, dtype=np.float64) >= threshold))
                          for v in groups.values()]))


def iauc(groups: Mapping[str, Sequence[float]]) -> float:
    """SSL-Align iAUC: trapezoid area of iIoU over the same 21 thresholds as `auc` (§2.4).

    `utils.Evaluator_iiou.finalize_IAUC`; NaN cIoUs count as misses (see `iiou`).
    """
    y = np.array([iiou(groups, t) for t in AUC_THRESHOLDS], dtype=np.float64)
    return float(np.trapezoid(y, AUC_THRESHOLDS))
