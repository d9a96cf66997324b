"""Drawing: object shapes with textures, and the low-saturation backgrounds behind them.

Shapes are inside-tests on object-local coordinates (u, v) in units of the object's
radius, so every shape fits the unit disc and rotation/scale are applied once, in
`draw_object`. Only the pixels of a square window around the object are evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
from soundlens.training.synth.classes import ClassSpec

Inside = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _regular_polygon(n: int) -> Inside:
    # A regular n-gon with circumradius 1: distance along the nearest edge normal <= apothem.
    sector = 2 * np.pi / n

    def inside(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        r = np.hypot(u, v)
        a = np.mod(np.arctan2(v, u) + np.pi / 2, sector) - sector / 2
        return r * np.cos(a) <= np.cos(np.pi / n)

    return inside


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Five points, inner radius 0.45; fold the angle onto one half-spike and test its edge line.
    half = np.pi / 5
    r = np.hypot(u, v)
    a = np.mod(np.arctan2(v, u) + np.pi / 2, 2 * half)
    b = half - np.abs(a - half)
    dx, dy = 0.45 * np.cos(half) - 1.0, 0.45 * np.sin(half)
    return r * np.cos(b) * dy - r * np.sin(b) * dx <= dy


def _circle(u, v):
    return u * u + v * v <= 1.0


def _ring(u, v):
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.55**2)


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 0.95)) | ((au <= 0.95) & (av <= 0.3))


def _diamond(u, v):
    # A rhombus, not a square: under random rotation a square diamond would be the square.
    return np.abs(u) / 0.55 + np.abs(v) <= 1.0


def _crescent(u, v):
    return (u * u + v * v <= 1.0) & ((u - 0.5) ** 2 + v * v > 0.8**2)


def _semicircle(u, v):
    w = v + 0.4  # shift so the half disc is centred in the unit disc
    return (u * u + w * w <= 1.0) & (w >= 0.0)


def _arrow(u, v):
    shaft = (np.abs(v) <= 0.2) & (u >= -0.95) & (u <= 0.2)
    head = (u >= 0.1) & (np.abs(v) <= 0.8 * (0.95 - u))
    return shaft | head


def _bar(u, v):
    return (np.abs(u) <= 0.95) & (np.abs(v) <= 0.32)


SHAPES: dict[str, Inside] = {
    "circle": _circle,
    "triangle": _regular_polygon(3),
    "square": _regular_polygon(4),
    "hexagon": _regular_polygon(6),
    "star": _star,
    "cross": _cross,
    "ring": _ring,
    "diamond": _diamond,
    "crescent": _crescent,
    "semicircle": _semicircle,
    "arrow": _arrow,
    "bar": _bar,
}


# Texture -> boolean "second colour here" on local coordinates; periods are in object radii,
# so a texture keeps the same number of stripes/dots at every scale.
TEXTURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray | None]] = {
    "solid": lambda u, v: None,
    "stripes": lambda u, v: np.floor((u + 2.0) * 2.5).astype(np.int32) % 2 == 1,
    "checker": lambda u, v: (np.floor((u + 2.0) * 2.2) + np.floor((v + 2.0) * 2.2)).astype(np.int32) % 2 == 1,
    "dots": lambda u, v: (np.mod(u * 3.0, 1.0) - 0.5) ** 2 + (np.mod(v * 3.0, 1.0) - 0.5) ** 2 <= 0.3**2,
}


def second_colour(colour: np.ndarray) -> np.ndarray:
    """The texture's other colour: darker for light colours, lighter for dark ones. RGB float [3]."""
    luminance = float(colour @ np.array([0.299, 0.587, 0.114]))
    return colour * 0.45 if luminance > 90 else colour + (255.0 - colour) * 0.55


def object_mask(shape: str, cx: float, cy: float, radius: float, angle: float, height: int, width: int):
    """Rasterise one shape (no texture) inside its window.

    cx, cy, radius in pixels (pixel centres at +0.5), angle in radians. Returns
    (mask bool [h, w], (y0, x0) window origin, u, v local coordinates [h, w]) where the window
    is clipped to the image; the mask may be empty if the object is off-image.
    """
    x0, x1 = max(int(np.floor(cx - radius)), 0), min(int(np.ceil(cx + radius)) + 1, width)
    y0, y1 = max(int(np.floor(cy - radius)), 0), min(int(np.ceil(cy + radius)) + 1, height)
    xs = np.arange(x0, max(x1, x0), dtype=np.float32) + 0.5 - cx
    ys = np.arange(y0, max(y1, y0), dtype=np.float32) + 0.5 - cy
    dx, dy = xs[None, :], ys[:, None]
    c, s = np.cos(angle) / radius, np.sin(angle) / radius
    u = dx * c + dy * s
    v = dy * c - dx * s
    return SHAPES[shape](u, v), (y0, x0), u, v


def draw_object(
    image: np.ndarray,
    ids: np.ndarray,
    index: int,
    spec: ClassSpec,
    cx: float,
    cy: float,
    radius: float,
    angle: float,
    brightness: float = 1.0,
) -> np.ndarray:
    """Paint one textured object into `image` (float32 [H, W, 3], 0-255) in place.

    `ids` (int8 [H, W], -1 = background) records which object owns each visible pixel, so
    a later object occludes an earlier one. Returns the object's full (unoccluded) box as
    float32 [4] x1, y1, x2, y2 in pixels, zeros if nothing was drawn.
    """
    height, width = ids.shape
    mask, (y0, x0), u, v = object_mask(spec.shape, cx, cy, radius, angle, height, width)
    if not mask.any():
        return np.zeros(4, np.float32)
    base = np.array(spec.colour, np.float32)
    paint = np.broadcast_to(np.clip(base * brightness, 0, 255), mask.shape + (3,)).copy()
    alt = TEXTURES[spec.texture](u, v)
    if alt is not None:  # the shade follows the class colour, not the jittered one, so it never flips
        paint[alt] = np.clip(second_colour(base) * brightness, 0, 255)
    h, w = mask.shape
    image[y0 : y0 + h, x0 : x0 + w][mask] = paint[mask]
    ids[y0 : y0 + h, x0 : x0 + w][mask] = index
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1], np.float32)


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    # Grey level over most of the range plus a small chroma: low saturation, any brightness.
    return rng.uniform(45, 210) + rng.uniform(-22, 22, size=3)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random low-saturation textured background, float32 [size, size, 3] in 0-255.

    One of: smooth value noise, a linear gradient, soft stripes; plus pixel noise. Its
    brightness range overlaps the objects', so objects stand out by shape and saturated
    colour, not by contrast alone.
    """
    kind = rng.integers(3)
    if kind == 0:
        cells = int(rng.integers(3, 8))
        grid = (_muted_colour(rng) + rng.uniform(-45, 45, size=(cells, cells, 1))
                + rng.uniform(-12, 12, size=(cells, cells, 3)))
        image = cv2.resize(grid.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    else:
        a, b = _muted_colour(rng), _muted_colour(rng)
        theta = float(rng.uniform(0, np.pi))  # python floats keep the arrays float32 (NEP 50)
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size
        t = math.cos(theta) * coords[None, :] + math.sin(theta) * coords[:, None]
        if kind == 1:
            t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        else:
            t = 0.5 + 0.5 * np.sin(t * float(2 * np.pi * rng.uniform(3, 9))
                                   + float(rng.uniform(0, 2 * np.pi)))
        image = a.astype(np.float32) + t[..., None] * (b - a).astype(np.float32)
    image = image + rng.standard_normal((size, size, 1), dtype=np.float32) * np.float32(rng.uniform(2, 7))
    return np.clip(image, 0, 255, out=image).astype(np.float32, copy=False)
