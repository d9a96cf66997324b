"""One inference's result, typed: what the worker publishes, the viewer and the demo draw, and
`soundlens analyze` logs.

`make_localization` is the one place a result is made, from the model's native map, the frame it
was computed on, the audio window and the timings: it normalises the map, places it on the frame
and finds the peaks. `realtime.wire` turns a `Localization` into soundlens.v1 headers and back
(`Message.localization()`); `realtime.analyze` writes its JSONL rows from it with its own schema.
numpy only, so a subscriber needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from soundlens.models.geometry import CellCentres
from soundlens.realtime.activity import Activity, OnScreen
from soundlens.realtime.peaks import find_peaks, map_region, normalise


@dataclass(frozen=True)
class Peak:
    """A local maximum of the map: (u, v) in [0, 1] of the frame, (x, y) in its pixels, score in [0, 1]."""

    u: float
    v: float
    x: float
    y: float
    score: float


@dataclass(frozen=True)
class FrameInfo:
    index: int  # frame counter of the source, from 0
    width: int
    height: int
    media_s: float | None = None  # files and the procedural video: seconds of media time


@dataclass(frozen=True)
class AudioWindow:
    sample_rate: int
    first_sample: int  # absolute index of the window's first sample
    num_samples: int


@dataclass(frozen=True)
class Timing:
    stamp_ns: int  # wall clock when the frame was captured
    capture_ns: int  # monotonic clock, as the three below
    infer_start_ns: int
    infer_end_ns: int
    publish_ns: int | None = None  # when the publisher sent it (received results only)


@dataclass(frozen=True)
class ModelInfo:
    id: str  # checkpoint path or name given to --model
    method: str = ""


@dataclass(frozen=True, eq=False)  # eq=False: the heatmap array has no single truth value
class Localization:
    inference: int  # counts the inferences of one run from 0
    frame: FrameInfo
    audio: AudioWindow
    timing: Timing
    model: ModelInfo
    peaks: tuple[Peak, ...]  # best first
    heatmap: np.ndarray | None  # native map min-max normalised to [0, 1]; None on peaks/preview messages
    raw_range: tuple[float, float] | None  # [min, max] of the raw map
    region: tuple[float, float, float, float]  # x0, y0, x1, y1: the part of the frame the map covers
    activity: Activity | None = None  # audio level of the window and whether it counts as silence
    on_screen: OnScreen | None = None  # similarity of the best location, for methods whose map is one
    hops_skipped: int = 0  # hops not served since the previous published result (the model ran late)
    frames_skipped: int = 0  # frames captured since the previous published result's frame that none used
    centres: CellCentres | None = None  # where each cell looks on the frame (None: not known, a 1.2 message)


def to_peaks(found: list[dict]) -> tuple[Peak, ...]:
    """`realtime.peaks.find_peaks` dicts (or header peaks) as `Peak`s."""
    return tuple(Peak(float(p["u"]), float(p["v"]), float(p["x"]), float(p["y"]), float(p["score"]))
                 for p in found)


def make_localization(heat: np.ndarray, frame: FrameInfo, audio: AudioWindow, timing: Timing, *,
                      inference: int, model: ModelInfo, resize: str = "square", top_k: int = 3,
                      activity: Activity | None = None, on_screen: OnScreen | None = None,
                      centres: CellCentres | None = None) -> Localization:
    """The result of one inference: `heat` is the model's raw map [h, w] for `frame`; `resize` is
    the image preset's ("square" or "short_side"), which decides the part of the frame it covers;
    `centres` where each cell looks (the model's `cell_centres`; None: the middles of equal blocks
    of that part, for maps whose cells have no known receptive field)."""
    region = map_region(frame.width, frame.height, resize)
    norm, lo, hi = normalise(heat)
    if centres is None:
        centres = CellCentres.from_region(region, norm.shape)
    peaks = to_peaks(find_peaks(heat, top_k, region, (frame.width, frame.height), centres=centres))
    return Localization(inference, frame, audio, timing, model, peaks, norm, (lo, hi), region,
                        activity, on_screen, centres=centres)
