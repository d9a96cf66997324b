"""Ground-truth maps from boxes, exactly as the official evaluators build them (official_repos.md §3.2)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

GT_SIZE = 224  # every repo evaluates on 224 x 224 maps
FLICKR_FRAME = 256  # Flickr boxes are annotated in a 256 x 256 frame

# Normalised coordinates beyond this are corrupt: the 12 released VGG-SS boxes hold -2.88e16
# (§3.2); genuine ones stay within [0, 1].
CORRUPT_LIMIT = 2.0


def _accumulate(boxes_px: Iterable[Sequence[int]], size: int) -> np.ndarray:
    acc = np.zeros((size, size), dtype=np.float64)
    for x1, y1, x2, y2 in boxes_px:
        # numpy half-open slices as in the official `bbox2gtmap` (§3.2): a reversed extent adds
        # nothing and an end beyond the map saturates.
        acc[y1:y2, x1:x2] += 1
    return acc


def scale_flickr_box(box_256: Sequence[float], size: int = GT_SIZE) -> list[int]:
    """[xmin, ymin, xmax, ymax] in the 256 frame -> int(size * v / 256) each (§3.2)."""
    return [int(size * int(v) / FLICKR_FRAME) for v in box_256]


def flickr_consensus_map(boxes_256: Iterable[Sequence[float]], size: int = GT_SIZE) -> np.ndarray:
    """Flickr-SoundNet consensus map from every annotator's box (§3.2).

    Each box is scaled by int(224 * v / 256) and adds 1 over [ymin:ymax, xmin:xmax]; the sum
    is halved and clipped at 1, so a pixel in >= 2 annotators' boxes is 1 and in one is 0.5.

    Args:
        boxes_256: boxes [xmin, ymin, xmax, ymax] in pixels of the 256 x 256 frame.
        size: output side in pixels.

    Returns:
        [size, size] float32 map with values in {0, 0.5, 1}.
    """
    acc = _accumulate((scale_flickr_box(b, size) for b in boxes_256), size) / 2
    return np.minimum(acc, 1).astype(np.float32)


def normalised_box_pixels(box: Sequence[float], clip_rule: str = "clip", size: int = GT_SIZE) -> list[int]:
    """A normalised VGG-SS box -> integer pixels under one repo's rule (§3.2).

    "clip" (EZ-VSL, SLAVC, SSL-Align, JSA): int(clip(b, 0, 1) * 224). "max0" (LVS, HTF, SIRA):
    int(224 * max(b, 0)) with no upper clip (slicing saturates, so both give the same map).
    A corrupt coordinate (-2.88e16) becomes 0, which empties the box.
    """
    if clip_rule == "clip":
        return [int(min(max(float(v), 0.0), 1.0) * size) for v in box]
    if clip_rule == "max0":
        return [int(size * max(float(v), 0.0)) for v in box]
    raise ValueError(f"unknown clip rule '{clip_rule}' (expected 'clip' or 'max0')")


def union_map(boxes: Iterable[Sequence[float]], clip_rule: str = "clip", size: int = GT_SIZE) -> np.ndarray:
    """Binary union of normalised [x1, y1, x2, y2] boxes (VGG-SS, procedural benchmark).

    Returns a [size, size] float32 map of 0/1; all zero when every box is empty.
    """
    acc = _accumulate((normalised_box_pixels(b, clip_rule, size) for b in boxes), size)
    return (acc > 0).astype(np.float32)


def pixel_union_map(boxes_px: Iterable[Sequence[float]], size: int = GT_SIZE) -> np.ndarray:
    """Binary union of boxes already in pixels of the size x size frame (AVSBench box JSON, IS3).

    Coordinates are truncated with int() as SSL-Align does; negatives are clamped to 0.
    """
    px = ([max(int(v), 0) for v in b] for b in boxes_px)
    return (_accumulate(px, size) > 0).astype(np.float32)


def box_is_empty(box: Sequence[float], clip_rule: str = "clip", size: int = GT_SIZE) -> bool:
    """Whether a normalised box covers no pixel after the integer rule."""
    x1, y1, x2, y2 = normalised_box_pixels(box, clip_rule, size)
    return min(x2, size) <= x1 or min(y2, size) <= y1


def box_is_corrupt(box: Sequence[float]) -> bool:
    """A normalised box with a non-finite coordinate or one beyond ±CORRUPT_LIMIT."""
    return len(box) != 4 or any(not np.isfinite(v) or abs(v) > CORRUPT_LIMIT for v in map(float, box))


def parse_flickr_xml(path: str | Path) -> list[list[int]]:
    """The annotators' boxes of one Flickr-SoundNet XML file, in the 256 frame (§3.2).

    Rule of the official readers: for every `<bbox>` grandchild of the root, skip its first
    sub-element and read the next four integers as xmin, ymin, xmax, ymax. Grandchildren that
    are not `<bbox>` are ignored (the official code appends an empty box for them and would
    crash; the released files have none).
    """
    root = ET.parse(path).getroot()
    boxes = []
    for child in root:
        for grandchild in child:
            if grandchild.tag != "bbox":
                continue
            values = [int(el.text) for el in list(grandchild)[1:5]]
            if len(values) != 4:
                raise ValueError(f"{path}: a <bbox> needs 4 coordinates after its first element")
            boxes.append(values)
    return boxes
