"""The benchmark's classes: each pairs one visual object type with one sound type.

The table is data; `shapes.py` and `sounds.py` know how to draw and synthesize each kind
by name. Every class has its own shape *and* its own colour, so either cue alone names
the class at 112 px; textures repeat across classes and only add variety.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassSpec:
    """One class: how it looks and how it sounds.

    `colour` is RGB 0-255; `sound` is a key of `sounds.SOUNDS`, `shape` of `shapes.SHAPES`,
    `texture` of `shapes.TEXTURES`.
    """

    name: str
    shape: str
    colour: tuple[int, int, int]
    texture: str
    sound: str


SPECS: tuple[ClassSpec, ...] = (
    ClassSpec("red_circle", "circle", (225, 35, 35), "stripes", "hum"),
    ClassSpec("blue_triangle", "triangle", (35, 75, 235), "solid", "whistle"),
    ClassSpec("green_square", "square", (25, 165, 60), "dots", "rumble"),
    ClassSpec("yellow_star", "star", (245, 215, 30), "solid", "beeps"),
    ClassSpec("magenta_cross", "cross", (215, 40, 200), "checker", "hiss"),
    ClassSpec("cyan_ring", "ring", (30, 205, 225), "solid", "bell"),
    ClassSpec("orange_hexagon", "hexagon", (250, 135, 20), "stripes", "rattle"),
    ClassSpec("purple_diamond", "diamond", (125, 50, 205), "dots", "chirp_up"),
    ClassSpec("lime_crescent", "crescent", (150, 235, 40), "stripes", "chirp_down"),
    ClassSpec("pink_semicircle", "semicircle", (255, 130, 180), "solid", "sizzle"),
    ClassSpec("white_arrow", "arrow", (245, 245, 245), "solid", "organ"),
    ClassSpec("brown_bar", "bar", (130, 70, 25), "dots", "warble"),
)

CLASSES: tuple[str, ...] = tuple(spec.name for spec in SPECS)
