"""The one heatmap painter and the one colormap: `soundlens analyze`, `localize`, the demo video,
the benchmark galleries and the viewer all draw a map the same way.

Colour: turbo (a rainbow without jet's false bands) of the normalised score. Opacity: none below
`floor` of the map's peak, so cold areas keep the frame's own pixels, then rising linearly to
`max_alpha` at the peak. The viewer puts the same table (`heat_lut`) on its heatmap layer; its
default 220/255 alpha at 75 % layer opacity is the painter's 0.65.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from soundlens.models.errors import SoundLensError
from soundlens.realtime.peaks import map_region

COLORMAP = "turbo"
FLOOR = 0.2  # normalised scores below this are fully transparent
MAX_ALPHA = 0.65  # opacity of the hottest colour over the frame


def heat_lut(name: str = COLORMAP, floor: float = FLOOR, max_alpha: int = 220) -> np.ndarray:
    """256 x 4 uint8 RGBA lookup table over scores 0..1: the colormap, transparent below `floor`,
    then alpha ramping linearly up to `max_alpha` at 1.0."""
    if name != COLORMAP:
        raise SoundLensError(f"colormap {name!r}: SoundLens draws every heatmap in {COLORMAP}")
    rgb = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]
    ramp = np.clip((np.linspace(0.0, 1.0, 256) - floor) / max(1.0 - floor, 1e-6), 0.0, 1.0)
    return np.concatenate([rgb, np.round(ramp * max_alpha).astype(np.uint8)[:, None]], axis=1)


class OverlayPainter:
    """Draws maps over frames: the map over the region the model saw, each cell's value centred where
    the cell looks (`models.geometry.CellCentres`), coloured through `heat_lut`, and rings with the
    peak scores. The colour and alpha layers of a map are kept while
    the same array is drawn again (analyze --hop), so each further frame costs one blend."""

    def __init__(self, resize: str = "square", floor: float = FLOOR, max_alpha: float = MAX_ALPHA):
        self.resize = resize
        self.lut = heat_lut(COLORMAP, floor, int(round(max_alpha * 255)))
        self._for: tuple | None = None  # (map, width, height, region, centres) the layers were made for
        self._layers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _make_layers(self, heat: np.ndarray, region, w: int, h: int, centres=None):
        x0, y0, x1, y1 = (int(round(v)) for v in region)
        index = np.zeros((h, w), np.uint8)
        heat = np.nan_to_num(np.asarray(heat, np.float32))
        if centres is None:
            stretched = cv2.resize(heat, (max(1, x1 - x0), max(1, y1 - y0)), interpolation=cv2.INTER_LINEAR)
        else:
            # Cell (r, c) (OpenCV's source pixel centre (c, r)) goes to its centre in the frame,
            # origin + (c, r) * step in pixel-edge coordinates, -0.5 in OpenCV's pixel-centre ones.
            # Drawn over the region the model saw; past the outermost centres the edge cells extend.
            (ox, oy), (sx, sy) = centres.origin, centres.step
            affine = np.array([[sx, 0.0, ox - 0.5 - x0], [0.0, sy, oy - 0.5 - y0]])
            stretched = cv2.warpAffine(heat, affine, (max(1, x1 - x0), max(1, y1 - y0)),
                                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        index[y0:y1, x0:x1] = np.round(np.clip(stretched, 0.0, 1.0) * 255)
        rgba = self.lut[index]
        alpha = rgba[..., 3].astype(np.float32) / 255.0
        return np.ascontiguousarray(rgba[..., :3]), 1.0 - alpha, alpha

    def draw(self, frame: np.ndarray, heat: np.ndarray | None, region=None, peaks: Iterable = (),
             centres=None) -> np.ndarray:
        """A new image: uint8 RGB `frame` with the normalised map `heat` [h, w] over `region`
        (x0, y0, x1, y1 in pixels; None: where the model's `resize` puts it), each cell's value at its
        `centres` (a `CellCentres`; None: the map stretched evenly over the region), and `peaks`
        (objects with x, y in pixels and score). A plain copy when `heat` is None."""
        if heat is None:
            return frame.copy()
        h, w = frame.shape[:2]
        region = tuple(region) if region is not None else map_region(w, h, self.resize)
        made = self._for
        # Holding `heat` keeps its identity unique while the layers are cached.
        if made is None or made[0] is not heat or made[1:] != (w, h, region, centres):
            self._for, self._layers = ((heat, w, h, region, centres),
                                       self._make_layers(heat, region, w, h, centres))
        colour, keep, alpha = self._layers
        out = cv2.blendLinear(np.ascontiguousarray(frame), colour, keep, alpha)
        for peak in peaks:
            _ring(out, peak)
        return out

    def draw_result(self, frame: np.ndarray, loc) -> np.ndarray:
        """`frame` with a `Localization` (or None: nothing) drawn over it."""
        if loc is None:
            return frame.copy()
        return self.draw(frame, loc.heatmap, loc.region, loc.peaks, getattr(loc, "centres", None))


def _ring(out: np.ndarray, peak) -> None:
    """A white ring (black rim) at the peak, with its score beside it on the side with room."""
    h, w = out.shape[:2]
    radius = max(4, min(h, w) // 30)
    scale = max(0.35, min(h, w) / 600)
    centre = (int(round(peak.x)), int(round(peak.y)))
    cv2.circle(out, centre, radius + 2, (0, 0, 0), 2, lineType=cv2.LINE_AA)
    cv2.circle(out, centre, radius, (255, 255, 255), 2, lineType=cv2.LINE_AA)
    text = f"{peak.score:.2f}"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 3)
    gap = radius + 6
    x = centre[0] + gap if centre[0] + gap + tw < w else centre[0] - gap - tw
    y = centre[1] - gap if centre[1] - gap - th > 0 else centre[1] + gap + th
    for ink, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, width, cv2.LINE_AA)
