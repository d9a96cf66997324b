"""Draw a heatmap over a frame: a colormap whose opacity rises with the score, plus peak markers."""

from __future__ import annotations

import cv2
import numpy as np


def overlay_heatmap(frame: np.ndarray, heat: np.ndarray, max_alpha: float = 0.6,
                    peaks: list[tuple[float, float]] | None = None) -> np.ndarray:
    """frame uint8 RGB [H, W, 3] + heat [H, W] scaled to [0, 1] -> uint8 RGB [H, W, 3].

    The opacity ramps with the score (cold areas keep the frame's own pixels); peaks are
    normalised (x, y) in [0, 1] and drawn as white rings.
    """
    heat = np.clip(np.nan_to_num(heat.astype(np.float32)), 0.0, 1.0)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    alpha = (max_alpha * heat)[..., None]
    out = (frame.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha).round().astype(np.uint8)
    h, w = frame.shape[:2]
    for x, y in peaks or []:
        centre = (int(round(x * w)), int(round(y * h)))
        radius = max(4, min(h, w) // 30)
        cv2.circle(out, centre, radius + 2, (0, 0, 0), 2, lineType=cv2.LINE_AA)
        cv2.circle(out, centre, radius, (255, 255, 255), 2, lineType=cv2.LINE_AA)
    return out
