"""The pointing game, the one rule every hit rate in SoundLens uses: a heatmap scores a hit when
its peak lies on the ground truth. Official protocols put the peak of the upsampled map on a GT
mask (`peak_on_mask`; `protocols.pointing_hits`); the procedural benchmark, the learning tests
and the demo put the peak's frame position in the sounding object's box (`peak_in_box`)."""

from __future__ import annotations

import numpy as np


def peak_in_box(x, y, box):
    """Is the point (x, y) inside the box, edges included?

    x, y: peak position(s) in frame pixels, scalars or arrays/tensors of shape [N];
    box: (x1, y1, x2, y2) in the same pixels, shape [4] or [N, 4] (numpy, torch or a sequence).
    Returns a bool (scalars) or a bool array/tensor [N], of the inputs' kind.
    """
    if not hasattr(box, "shape"):
        box = np.asarray(box, dtype=np.float64)
    return (x >= box[..., 0]) & (x <= box[..., 2]) & (y >= box[..., 1]) & (y <= box[..., 3])


def peak_on_mask(score_map: np.ndarray, mask: np.ndarray) -> bool:
    """Is the map's maximum on a ground-truth pixel? score_map [H, W] at the mask's resolution
    (the protocol's upsampled map), mask [H, W] (> 0 is object). Ties take the first maximum in
    row-major order (numpy's argmax), as the official evaluation scripts do."""
    y, x = np.unravel_index(int(np.argmax(score_map)), score_map.shape)
    return bool(np.asarray(mask)[y, x] > 0)
