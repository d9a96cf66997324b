"""Where each cell of a native heatmap looks, in pixels of the frame: the one place that knows.

A cell's value is computed from a receptive field whose centre is *not* the middle of the block
of pixels the cell covers when the map is stretched over the image. Strided convolutions and
poolings with symmetric padding put it at the block's top-left corner (`encoders.cell_geometry`:
input pixel `stride * k + offset`, lite trunk 8k + 0.5 at 112 px, ResNet-18 32k + 0.5 at 224 px),
so a peak drawn at the block's middle lands 3.5 px (lite, 1/32 of the frame) or 15.5 px (ResNet-18,
1/14) right of and below where the model looked. `CellCentres` is that mapping carried through the
image preset's resize and crop; the peak finder, the wire, `analyze`, `localize`, the overlay and
so the tracks all take it from here. Official evaluation protocols keep their own upsampling
(`training.protocols`): their numbers are the papers' definitions, not SoundLens' outputs.

Pure Python: realtime clients import this without torch; `for_model` reads a model's trunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CellCentres:
    """Cell (row r, column c) of an h x w map has its centre at frame pixel
    `x = origin[0] + c * step[0]`, `y = origin[1] + r * step[1]` (continuous coordinates: pixel p
    spans [p, p + 1); fractional r, c for sub-cell positions)."""

    origin: tuple[float, float]  # (x, y) of cell (0, 0)'s centre
    step: tuple[float, float]  # (x, y) between neighbouring cells' centres

    @classmethod
    def from_region(cls, region, shape) -> CellCentres:
        """The block-middle mapping (protocol 1.2 and earlier): the map stretched evenly over
        `region` (x0, y0, x1, y1), for maps whose cells have no known receptive-field centre."""
        x0, y0, x1, y1 = (float(v) for v in region)
        h, w = shape
        sx, sy = (x1 - x0) / w, (y1 - y0) / h
        return cls((x0 + 0.5 * sx, y0 + 0.5 * sy), (sx, sy))

    def xy(self, row: float, col: float) -> tuple[float, float]:
        """Frame pixel (x, y) of cell (row, col); the order of operations is the protocol's (§4.2)."""
        return self.origin[0] + col * self.step[0], self.origin[1] + row * self.step[1]

    def extent(self, shape) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): the rectangle to stretch an h x w map over (half-pixel-centred resize:
        OpenCV, Qt, `F.interpolate(align_corners=False)`) so that each cell's value sits at its
        centre. It may reach past the frame; draw it clipped."""
        h, w = shape
        (ox, oy), (sx, sy) = self.origin, self.step
        return ox - 0.5 * sx, oy - 0.5 * sy, ox + (w - 0.5) * sx, oy + (h - 0.5) * sy

    def to_json(self) -> dict:
        return {"origin": [float(self.origin[0]), float(self.origin[1])],
                "step": [float(self.step[0]), float(self.step[1])]}

    @classmethod
    def from_json(cls, value) -> CellCentres | None:
        """A header's `centres` object; None when absent or malformed (a 1.2 publisher)."""
        try:
            origin, step = value["origin"], value["step"]
            out = cls((float(origin[0]), float(origin[1])), (float(step[0]), float(step[1])))
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        numbers = (*out.origin, *out.step)
        return out if all(math.isfinite(v) for v in numbers) and min(out.step) > 0 else None


def input_to_frame(frame_hw: tuple[int, int], preset) -> tuple[tuple[float, float], tuple[float, float]]:
    """Per axis (x, y), (shift, scale) with `frame = (input + shift) * scale`: model-input pixels to
    frame pixels through the preset's test-time transform exactly as `models.images.prepare_images`
    does it (continuous coordinates; an antialiased, half-pixel-centred resize maps them linearly)."""
    h, w = frame_hw
    s = preset.size
    if preset.resize == "short_side":
        # images.resize: short side to s, long side int(s * long / short); then images.center_crop
        new_h, new_w = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
        top, left = int(round((new_h - s) / 2.0)), int(round((new_w - s) / 2.0))
        return (float(left), w / new_w), (float(top), h / new_h)
    return (0.0, w / s), (0.0, h / s)


def cell_centres(frame_hw: tuple[int, int], map_hw: tuple[int, int], preset,
                 trunk: tuple[float, float] | None = None) -> CellCentres:
    """The centres of an h x w map's cells on a frame of `frame_hw` (height, width), for a model
    whose input is made by image `preset`. `trunk` is the image trunk's (stride, offset)
    (`encoders.cell_geometry`); None, or a map that is not the trunk's own grid at the preset's size
    (a method that resizes its map), places the cells at the middles of equal blocks of the input."""
    h, w = map_hw
    s = preset.size
    stride, offset = trunk if trunk is not None else (None, None)
    if stride is None or not all(n in (s // stride, math.ceil(s / stride)) for n in (h, w)):
        stride_y, offset_y, stride_x, offset_x = s / h, s / h / 2, s / w, s / w / 2
    else:
        stride_y = stride_x = float(stride)
        offset_y = offset_x = float(offset)
    (shift_x, scale_x), (shift_y, scale_y) = input_to_frame(frame_hw, preset)
    return CellCentres(((offset_x + shift_x) * scale_x, (offset_y + shift_y) * scale_y),
                       (stride_x * scale_x, stride_y * scale_y))


def for_model(model, frame_hw: tuple[int, int], map_hw: tuple[int, int]) -> CellCentres:
    """`cell_centres` for a SoundLens model: its image preset and its image trunk (`imgnet`) when it
    has one."""
    from soundlens.models.encoders import cell_geometry  # torch: realtime.wire imports this module

    trunk = getattr(model, "imgnet", None)
    return cell_centres(frame_hw, map_hw, model.image_preset,
                        cell_geometry(trunk) if trunk is not None else None)
