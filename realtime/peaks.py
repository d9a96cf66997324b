"""Pure heatmap math for publishing: normalisation, where the map lies on the frame, top-k peaks.

Coordinates: (u, v) are normalised frame coordinates in [0, 1], x to the right and y down,
(0, 0) the top-left corner of the top-left pixel; (x, y) are the same in frame pixels.
"""

from __future__ import annotations

import numpy as np
from soundlens.models.geometry import CellCentres


def normalise(heatmap: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Min-max to [0, 1] float32 -> (map, raw_min, raw_max). Non-finite values count as the minimum;
    a flat map becomes all zeros."""
    raw = np.asarray(heatmap, dtype=np.float32)
    finite = np.isfinite(raw)
    if not finite.any():
        return np.zeros_like(raw), 0.0, 0.0
    lo = float(raw[finite].min())
    hi = float(raw[finite].max())
    clean = np.where(finite, raw, lo)
    if hi <= lo:
        return np.zeros_like(raw), lo, hi
    return ((clean - lo) / (hi - lo)).astype(np.float32), lo, hi


def map_region(width: int, height: int, resize: str = "square") -> tuple[float, float, float, float]:
    """The part of a width x height frame the model saw, (x0, y0, x1, y1) in pixels.

    "square" presets squash the whole frame into the input; "short_side" ones resize the short
    side and centre-crop, so the map covers a centred square of side min(width, height).
    """
    if resize == "short_side":
        side = min(width, height)
        x0, y0 = (width - side) / 2, (height - side) / 2
        return (x0, y0, x0 + side, y0 + side)
    return (0.0, 0.0, float(width), float(height))


def local_maxima(heatmap: np.ndarray) -> np.ndarray:
    """Boolean mask of the peaks of a map (docs/protocol.md §4.2): a cell is one when it is > each
    neighbour that comes before it in row-major order (the three above it and the one to its left),
    >= each neighbour after it, and > at least one neighbour (a flat stretch of background is no
    peak). Cells outside the map do not count. So two equal neighbouring cells give one peak, the
    first in row-major order."""
    m = np.asarray(heatmap, dtype=np.float64)
    h, w = m.shape
    padded = np.pad(m, 1, constant_values=np.nan)  # NaN compares False: borders neither win nor lose
    mask = np.ones((h, w), dtype=bool)
    above_one = np.zeros((h, w), dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            neighbour = padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            outside = np.isnan(neighbour)
            earlier = dy < 0 or (dy == 0 and dx < 0)  # neighbours visited before this cell
            mask &= outside | ((m > neighbour) if earlier else (m >= neighbour))
            above_one |= m > neighbour
    return mask & above_one


def _subcell(values: np.ndarray, i: int) -> float:
    """Vertex offset in [-0.5, 0.5] of the parabola through values[i-1:i+2] (0 at a border).

    In double precision, in this order, so a client in any language that follows docs/protocol.md
    §4.2 gets the same bits from the same float32 map."""
    if i == 0 or i == len(values) - 1:
        return 0.0
    left, mid, right = float(values[i - 1]), float(values[i]), float(values[i + 1])
    denom = left - 2.0 * mid + right
    if denom >= 0.0:  # not a strict maximum along this axis
        return 0.0
    return min(0.5, max(-0.5, 0.5 * (left - right) / denom))


def find_peaks(heatmap: np.ndarray, k: int = 3, region: tuple[float, float, float, float] | None = None,
               frame_size: tuple[int, int] | None = None, min_score: float = 0.0,
               centres: CellCentres | None = None) -> list[dict]:
    """Top-k local maxima of a map [h, w] -> [{u, v, x, y, score, row, col}], best first.

    `score` is the min-max normalised value in [0, 1]; peaks below `min_score` are left out, and a
    flat map has none. `centres` (`models.geometry.CellCentres`: where each cell really looks, from
    the model) places a peak at its cell's centre plus the sub-cell offset in cell steps (protocol
    §4.2, 1.3). Without it, `region` (pixels, see map_region) is divided into equal blocks and a cell
    sits at its block's middle (the 1.2 rule); without either the map covers the whole frame.
    `frame_size` (width, height) gives u, v.
    """
    norm, lo, hi = normalise(heatmap)
    if k <= 0 or hi <= lo:
        return []
    h, w = norm.shape
    width, height = frame_size if frame_size is not None else (w, h)
    x0, y0, x1, y1 = region if region is not None else (0.0, 0.0, float(width), float(height))
    rows, cols = np.nonzero(local_maxima(norm))  # row-major order
    order = np.argsort(-norm[rows, cols], kind="stable")[:k]  # best first; equal scores keep row-major order
    peaks = []
    for idx in order:
        r, c = int(rows[idx]), int(cols[idx])
        score = float(norm[r, c])
        if score < min_score:
            break
        if centres is not None:  # the receptive-field centre; same double operations as protocol §4.2
            x, y = centres.xy(r + _subcell(norm[:, c], r), c + _subcell(norm[r, :], c))
        else:
            fy = (r + 0.5 + _subcell(norm[:, c], r)) / h  # fraction across the map, cell centres at (i+0.5)/n
            fx = (c + 0.5 + _subcell(norm[r, :], c)) / w
            x = x0 + fx * (x1 - x0)
            y = y0 + fy * (y1 - y0)
        peaks.append({"u": x / width, "v": y / height, "x": x, "y": y, "score": score, "row": r, "col": c})
    return peaks
