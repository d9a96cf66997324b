"""AVSBench mIoU and F-score (official_repos.md §2.9), per frame and in the official per-batch form.

Inputs are probabilities (the official code applies a sigmoid to logits first; apply it before
calling these). Frames are [N, H, W]; ground-truth masks are binary {0, 1}.

The official test averages per batch and then over batches, so its numbers depend on the test
batch size (AVSBench issue #22, COMBO-AVS #7). `*_per_batch` reproduce that; `miou` and `fscore`
are the batch-size-independent form: every frame weighs the same across the whole set.
"""

from __future__ import annotations

import numpy as np

BETA2 = 0.3  # §2.9: F-beta with beta^2 = 0.3
N_THRESHOLDS = 255
# §2.9: torch.linspace(0, 1 - 1e-10, 255) in float32 (so its last value is 1.0); numpy's
# float32 cast can differ from torch's in the last bit at a few positions.
F_THRESHOLDS = np.linspace(0.0, 1.0 - 1e-10, N_THRESHOLDS).astype(np.float32)


def _frames(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"{name} must be [N, H, W], got shape {x.shape}")
    return x


def frame_ious(prob: np.ndarray, gt: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Per-frame IoU of `prob > 0.5` against the mask, with the official empty-GT rule.

    When a GT frame is empty, intersection := number of pixels where both are 0 and union :=
    H * W, so an empty prediction scores 1 there (§2.9, `mask_iou`).

    Args:
        prob: [N, H, W] (or [H, W]) probabilities.
        gt: same shape, binary masks.
        eps: added to the union, as the official 1e-7.

    Returns:
        [N] float64 IoUs.
    """
    p = (_frames(prob, "prob") > 0.5).astype(np.float64)
    g = _frames(gt, "gt").astype(np.float64)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and masks {g.shape} differ in shape")
    inter = (p * g).sum(axis=(1, 2))
    union = np.maximum(p, g).sum(axis=(1, 2))
    empty = g.sum(axis=(1, 2)) == 0
    inter = np.where(empty, ((1 - g) * (1 - p)).sum(axis=(1, 2)), inter)
    union = np.where(empty, float(p.shape[1] * p.shape[2]), union)
    return inter / (union + eps)


def miou(prob: np.ndarray, gt: np.ndarray) -> float:
    """Batch-size-independent mIoU: mean of `frame_ious` over all frames. Float in [0, 1]."""
    return float(frame_ious(prob, gt).mean())


def miou_per_batch(prob: np.ndarray, gt: np.ndarray, batch_frames: int) -> float:
    """Official mIoU: mean IoU within each consecutive batch of `batch_frames` frames, then the
    unweighted mean over batches (a short last batch weighs as much as a full one).

    `batch_frames` = test batch size in videos x 5 frames (test.sh: 4 videos = 20 frames).
    """
    ious = frame_ious(prob, gt)
    return float(np.mean([b.mean() for b in _batches(ious, batch_frames)]))


def frame_f_curves(prob: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F-beta curves over the 255 thresholds for each frame, and which frames count.

    Per frame: prediction = prob >= t; precision = TP / (#pred + 1e-20); recall =
    TP / (#GT + 1e-20); F = (1 + b2) P R / (b2 P + R) with NaN -> 0. Frames whose GT is all
    black are skipped by the official code (§2.9).

    Returns:
        ([N, 255] float64 curves, [N] bool mask of frames with a non-empty GT).
    """
    p = _frames(prob, "prob")
    g = _frames(gt, "gt").astype(np.float64)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and masks {g.shape} differ in shape")
    n = p.shape[0]
    curves = np.zeros((n, N_THRESHOLDS), dtype=np.float64)
    flat_p = p.reshape(n, -1)
    flat_g = g.reshape(n, -1)
    for j, t in enumerate(F_THRESHOLDS):
        hit = (flat_p >= t).astype(np.float64)
        tp = (hit * flat_g).sum(axis=1)
        precision = tp / (hit.sum(axis=1) + 1e-20)
        recall = tp / (flat_g.sum(axis=1) + 1e-20)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = (1 + BETA2) * precision * recall / (BETA2 * precision + recall)
        curves[:, j] = np.nan_to_num(f, nan=0.0)
    valid = flat_g.mean(axis=1) != 0
    return curves, valid


def fscore(prob: np.ndarray, gt: np.ndarray) -> float:
    """Batch-size-independent F-score: average the F curves of all non-black frames of the set,
    then take the max over thresholds. 0.0 if every GT frame is black."""
    curves, valid = frame_f_curves(prob, gt)
    if not valid.any():
        return 0.0
    return float(curves[valid].mean(axis=0).max())


def fscore_per_batch(prob: np.ndarray, gt: np.ndarray, batch_frames: int) -> float:
    """Official F-score: per batch, average the curves of its non-black frames and take the max
    over thresholds (0 for a batch of black frames, which still counts); mean over batches."""
    curves, valid = frame_f_curves(prob, gt)
    scores = []
    for c, v in zip(_batches(curves, batch_frames), _batches(valid, batch_frames), strict=True):
        scores.append(float(c[v].mean(axis=0).max()) if v.any() else 0.0)
    return float(np.mean(scores))


def _batches(x: np.ndarray, size: int) -> list[np.ndarray]:
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    return [x[i:i + size] for i in range(0, len(x), size)]
