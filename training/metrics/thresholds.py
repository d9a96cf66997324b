"""Binarisation thresholds of the official evaluators (median, adaptive) and the min-max rule."""

from __future__ import annotations

import numpy as np


def minmax(value: np.ndarray) -> np.ndarray:
    """Per-map min-max scaling to [0, 1], keeping the input dtype.

    A flat map (max == min) is returned unchanged, as the official `normalize_img` does
    (official_repos.md §1.2: every repo shares it); its binarisation then depends on its raw
    constant. Args/returns: [H, W] float array.
    """
    vmin, vmax = value.min(), value.max()
    if vmax - vmin == 0:
        return value
    return (value - vmin) / (vmax - vmin)


def median_threshold(norm_map: np.ndarray) -> float:
    """The value at index floor(N / 2) of the ascending-sorted flattened map (§3.1).

    Every repo writes `np.sort(pred.flatten())[int(H * W / 2)]` (SLAVC `int(n * 0.5)`), i.e.
    index 25,088 of 50,176 for a 224x224 map. Args: [H, W] map. Returns: float.
    """
    flat = np.asarray(norm_map).ravel()
    k = flat.size // 2
    return float(np.partition(flat, k)[k])  # the k-th smallest: the same value as sort()[k], in O(N)


def adaptive_threshold(norm_map: np.ndarray, gt: np.ndarray) -> float:
    """SSL-Align's adaptive threshold: predicted area = GT area (official_repos.md §2.4).

    thr = sorted(map)[N - k] with k = number of GT pixels != 0 (soft pixels count whole) and
    k := N // 2 when the GT is empty. With the strict `>` SSL-Align uses, about k - 1 pixels are
    then positive for a map without ties.

    Args:
        norm_map: [H, W] normalised map.
        gt: [H, W] ground-truth map of the same shape.

    Returns:
        The threshold as a float.
    """
    flat = np.asarray(norm_map).ravel()
    n = flat.size
    k = int(np.count_nonzero(np.asarray(gt)))
    if k == 0:
        k = n // 2
    return float(np.partition(flat, n - k)[n - k])
