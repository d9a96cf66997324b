"""Box annotation files -> `AnnotationSet`, and the GT maps each protocol builds from them.

Forms read (official_repos.md §3.2, §4): VGG-SS-format JSON (`vggss.json`, the procedural
benchmark's `annotations.json`: a list of {file, class, bbox: normalised [[x1, y1, x2, y2], ...]}),
Flickr boxes JSON ({id: [[xmin, ymin, xmax, ymax], ...]} in the 256 frame), a directory of
Flickr XML files, and AVSBench box JSON ({image, audio, gt_box} in 224 pixels, SSL-Align's).
"""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from soundlens.models.errors import SoundLensError
from soundlens.training.datasets import gt as gtm
from soundlens.training.metrics.instances import naming_for_kind
from soundlens.training.splits import strip_extension

Kind = Literal["normalised", "flickr", "pixels"]


@dataclass(frozen=True)
class BoxAnnotation:
    """One sample's boxes: normalised (VGG-SS), 256-frame pixels (Flickr) or 224 pixels (AVSBench)."""

    id: str
    boxes: tuple[tuple[float, ...], ...]
    class_name: str | None = None


@dataclass
class AnnotationSet:
    """Annotations of one test set and how to turn them into GT maps.

    Attributes:
        kind: "normalised" -> binary union with the protocol's clip rule; "flickr" -> consensus
            map; "pixels" -> binary union of pixel boxes.
        entries: {id: BoxAnnotation} in file order.
        source: the file or directory read.
        corrupt_boxes: (id, box index) of boxes with corrupt coordinates (VGG-SS has 12).
        empty_gt: ids that have boxes but an all-zero GT map (VGG-SS: MKC9LvRivTM_000030, corrupt
            box only, and M1P1xla8rg0_000000, zero-height box only); they are kept and score
            cIoU 0 as in the official code (0/0, NaN, if nothing is predicted either).
        silent: ids with no box at all: non-sounding samples (the procedural benchmark's silent
            scenes, `"bbox": []`); `gt_maps(..., silent_as_none=True)` gives None for them.
    """

    kind: Kind
    entries: dict[str, BoxAnnotation]
    source: str = ""
    corrupt_boxes: list[tuple[str, int]] = field(default_factory=list)
    empty_gt: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self.entries

    @property
    def ids(self) -> list[str]:
        return list(self.entries)

    @property
    def instance_naming(self) -> str:
        """How SSL-Align's evaluator forms iIoU instances for this set's ids (`metrics.instances`):
        "vggss" (one per clip), "flickr" (the whole set) or "image" (IS3 image, AVSBench video)."""
        return naming_for_kind(self.kind)

    def class_of(self, sample_id: str) -> str | None:
        return self.entries[sample_id].class_name

    def classes(self) -> list[str]:
        """Sorted distinct class names (VGG-SS: 221)."""
        return sorted({e.class_name for e in self.entries.values() if e.class_name is not None})

    def gt_map(self, sample_id: str, clip_rule: str = "clip", size: int = gtm.GT_SIZE) -> np.ndarray:
        """[size, size] float32 GT map of one sample (`clip_rule` only matters for "normalised")."""
        boxes = self.entries[sample_id].boxes
        if self.kind == "flickr":
            return gtm.flickr_consensus_map(boxes, size)
        if self.kind == "pixels":
            return gtm.pixel_union_map(boxes, size)
        return gtm.union_map(boxes, clip_rule, size)

    def gt_maps(self, clip_rule: str = "clip", ids: list[str] | None = None,
                silent_as_none: bool = False) -> GtMaps:
        """A read-only {id: GT map} mapping over `ids` (default: all) that builds each map when
        read, so a whole test set never holds 5,158 x 200 KB maps at once. With `silent_as_none`
        a sample without boxes maps to None (non-sounding, as `protocols.score_maps` expects)."""
        return GtMaps(self, clip_rule, self.ids if ids is None else list(ids), silent_as_none)


class GtMaps(Mapping):
    """Lazy {id: [224, 224] float32 GT map} view of an AnnotationSet (see `gt_maps`)."""

    def __init__(self, annotations: AnnotationSet, clip_rule: str, ids: list[str],
                 silent_as_none: bool) -> None:
        self._ann, self._rule, self._ids = annotations, clip_rule, ids
        self._known = set(ids)
        self._none = set(annotations.silent) if silent_as_none else set()

    @property
    def instance_naming(self) -> str:
        """The annotation set's iIoU instance naming; `protocols.score_maps` reads it."""
        return self._ann.instance_naming

    def __getitem__(self, sample_id: str) -> np.ndarray | None:
        if sample_id not in self._known:
            raise KeyError(sample_id)
        if sample_id in self._none:
            return None
        return self._ann.gt_map(sample_id, self._rule)

    def __contains__(self, sample_id: object) -> bool:  # without building the map
        return sample_id in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise SoundLensError(f"annotation file {path} does not exist; pass an existing file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise SoundLensError(f"{path} is not valid JSON ({err}); pass a VGG-SS or "
                             "Flickr boxes JSON") from None
    except IsADirectoryError:
        raise SoundLensError(f"{path} is a directory; pass an annotation file") from None


def _boxes(value, where: str, convert=float, length: int | None = None) -> tuple[tuple, ...]:
    """A list of boxes, each a list of numbers (of `length` when given), converted with `convert`;
    one SoundLensError naming the entry for anything else (a hand-edited file, another format)."""
    try:
        if not isinstance(value, list) or not all(isinstance(b, list) for b in value):
            raise TypeError
        boxes = tuple(tuple(convert(v) for v in b) for b in value)
    except (TypeError, ValueError, OverflowError):
        raise SoundLensError(f"{where}: boxes must be a list of [x1, y1, x2, y2] number lists, got "
                             f"{json.dumps(value)[:80]}") from None
    if length is not None and any(len(b) != length for b in boxes):
        raise SoundLensError(f"{where}: every box needs {length} numbers, got {json.dumps(value)[:80]}")
    return boxes


def _report(annotations: AnnotationSet, warn: bool) -> AnnotationSet:
    if warn and annotations.corrupt_boxes:
        ids = sorted({i for i, _ in annotations.corrupt_boxes})
        warnings.warn(f"{annotations.source}: {len(annotations.corrupt_boxes)} boxes in {len(ids)} samples "
                      f"have corrupt coordinates (e.g. {ids[:3]}); they become empty boxes, as "
                      "in the official code (official_repos.md §3.2)", stacklevel=3)
    if warn and annotations.empty_gt:
        warnings.warn(f"{annotations.source}: {len(annotations.empty_gt)} samples have an all-zero GT map "
                      f"({annotations.empty_gt[:3]}); kept, their cIoU is 0 whenever a pixel is predicted",
                      stacklevel=3)
    return annotations


def vggss_from_list(records: list, source: str = "", warn: bool = True) -> AnnotationSet:
    """An AnnotationSet from parsed VGG-SS-format records [{file, class, bbox}, ...]."""
    entries: dict[str, BoxAnnotation] = {}
    corrupt: list[tuple[str, int]] = []
    empty: list[str] = []
    silent: list[str] = []
    for n, rec in enumerate(records):
        if not isinstance(rec, dict) or "file" not in rec or "bbox" not in rec:
            raise SoundLensError(f"{source}: entry {n} is not a {{file, class, bbox}} record; "
                                 "pass a VGG-SS-format annotation list")
        sample_id = strip_extension(str(rec["file"]))
        boxes = _boxes(rec["bbox"], f"{source}: entry {n} ({sample_id})")
        for k, box in enumerate(boxes):
            if gtm.box_is_corrupt(box):
                corrupt.append((sample_id, k))
        if not boxes:
            silent.append(sample_id)
        elif all(len(b) != 4 or gtm.box_is_empty(b) for b in boxes):
            empty.append(sample_id)
        entries[sample_id] = BoxAnnotation(sample_id, boxes, rec.get("class"))
    return _report(AnnotationSet("normalised", entries, source, corrupt, empty, silent), warn)


def load_vggss_json(path: str | Path, warn: bool = True) -> AnnotationSet:
    """Read `vggss.json` or the procedural benchmark's `annotations.json` (same format).

    Corrupt boxes (the 12 VGG-SS ones at -2.88e16) are kept as read and listed in
    `corrupt_boxes`; they map to empty boxes. Samples left with no pixel (MKC9LvRivTM_000030,
    M1P1xla8rg0_000000) are listed in `empty_gt`. Both are reported with `warnings.warn` unless `warn` is
    False.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, list):
        raise SoundLensError(f"{path} holds a {type(data).__name__}, not a list of {{file, class, bbox}} "
                             "records")
    return vggss_from_list(data, str(path), warn)


def _flickr_set(boxes: dict[str, list], source: str, warn: bool) -> AnnotationSet:
    # int() of each coordinate, as the official readers do (Flickr boxes are whole 256-frame pixels).
    entries = {k: BoxAnnotation(k, _boxes(bs, f"{source}: {k}", int, 4)) for k, bs in boxes.items()}
    silent = [k for k, e in entries.items() if not e.boxes]
    empty = [k for k, e in entries.items() if e.boxes and not gtm.flickr_consensus_map(e.boxes).any()]
    return _report(AnnotationSet("flickr", entries, source, [], empty, silent), warn)


def load_flickr_boxes_json(path: str | Path, warn: bool = True) -> AnnotationSet:
    """Read a Flickr boxes JSON: {id: [[xmin, ymin, xmax, ymax], ...]} in the 256 x 256 frame."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise SoundLensError(f"{path} is not a {{id: [[xmin, ymin, xmax, ymax], ...]}} Flickr boxes JSON")
    return _flickr_set({str(k): v for k, v in data.items()}, str(path), warn)


def load_flickr_xml_dir(directory: str | Path, warn: bool = True) -> AnnotationSet:
    """Read every `<id>.xml` of a Flickr-SoundNet `Annotations/` directory (id = name up to the first dot)."""
    directory = Path(directory)
    files = sorted(directory.glob("*.xml"))
    if not files:
        raise SoundLensError(f"{directory} has no .xml files; pass the Flickr-SoundNet Annotations directory")
    boxes = {}
    for f in files:
        try:
            boxes[f.name.split(".")[0]] = gtm.parse_flickr_xml(f)
        except (ET.ParseError, ValueError, TypeError) as err:  # TypeError: a coordinate element without text
            raise SoundLensError(f"{f} is not a Flickr-SoundNet annotation ({err}); each "
                                 "<bbox> holds a first element and xmin, ymin, xmax, ymax integers") from None
    return _flickr_set(boxes, str(directory), warn)


def pixel_boxes_from_list(records: list, source: str = "", warn: bool = True) -> AnnotationSet:
    """AVSBench/IS3 box records [{image, gt_box: [x1, y1, x2, y2] in 224 pixels}, ...].

    Ids are the image file stems (`0d9u2CymIxc_1`, MS3 `rq5RDUm2Hnk_1.mp4_1`); the S4 category is
    taken from the path (`.../visual_frames/<split>/<category>/<video>/<frame>.png`) when present.
    """
    entries: dict[str, BoxAnnotation] = {}
    empty = []
    for n, rec in enumerate(records):
        if not isinstance(rec, dict) or "image" not in rec or "gt_box" not in rec:
            raise SoundLensError(f"{source}: entry {n} is not an {{image, gt_box}} record")
        parts = str(rec["image"]).replace("\\", "/").split("/")
        sample_id = Path(parts[-1]).stem
        category = parts[-3] if len(parts) >= 5 and parts[-5] == "visual_frames" else None
        (box,) = _boxes([rec["gt_box"]], f"{source}: entry {n} ({sample_id})", float, 4)
        entries[sample_id] = BoxAnnotation(sample_id, (box,), category)
        if not gtm.pixel_union_map([box]).any():
            empty.append(sample_id)
    return _report(AnnotationSet("pixels", entries, source, [], empty), warn)


def load_annotations(spec: str | Path, warn: bool = True) -> AnnotationSet:
    """Detect and read an annotation source for `soundlens eval --data`.

    Accepted: a VGG-SS-format JSON file; a Flickr boxes JSON file; an AVSBench box JSON file; a
    directory holding `annotations.json` (procedural benchmark); a directory holding
    `Annotations/*.xml` or `*.xml` (Flickr-SoundNet).
    """
    path = Path(spec)
    if path.is_dir():
        if (path / "annotations.json").is_file():
            return load_vggss_json(path / "annotations.json", warn)
        if (path / "Annotations").is_dir():
            return load_flickr_xml_dir(path / "Annotations", warn)
        if any(path.glob("*.xml")):
            return load_flickr_xml_dir(path, warn)
        raise SoundLensError(f"{path} has neither annotations.json nor Annotations/*.xml; pass an annotation "
                             "file or a benchmark directory")
    if not path.is_file():
        raise SoundLensError(f"{path} does not exist; pass an annotation file or directory")
    data = _read_json(path)
    if isinstance(data, dict):
        return load_flickr_boxes_json(path, warn)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        if "image" in data[0] and "gt_box" in data[0]:
            return pixel_boxes_from_list(data, str(path), warn)
        return vggss_from_list(data, str(path), warn)
    raise SoundLensError(f"{path}: unrecognised annotation JSON; expected a VGG-SS list of "
                         f"{{file, class, bbox}}, "
                         "a Flickr {id: boxes} object or an AVSBench list of {image, gt_box}")
