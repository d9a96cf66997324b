"""A model ready to localise: on its device, under autocast on CUDA, with the audio window it needs.

The live worker and `soundlens analyze` each hold one (composition, not inheritance), so both cut
the same sliding window (the audio ending at the frame's time, short at the start), hand motion
methods the frame before each frame the same way, and build their results with the one
`make_localization`. Only the scheduling differs: the worker serves the newest frame every hop,
analyze every frame (or hop) of a file in order, in batches.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from soundlens.models.devices import describe_device, pick_device
from soundlens.models.frontends import select_window
from soundlens.models.inference import for_inference
from soundlens.realtime.activity import DEFAULT_SILENCE_DB, OnScreenReader, audio_activity
from soundlens.realtime.result import (
    AudioWindow,
    FrameInfo,
    Localization,
    ModelInfo,
    Timing,
    make_localization,
)
from soundlens.realtime.ring import AudioRing, Frame


class Localizer:
    def __init__(self, model, sample_rate: int, *, device: str = "auto", model_id: str = "", peaks: int = 3,
                 threads: int | None = None, silence_db: float = DEFAULT_SILENCE_DB,
                 on_screen_threshold: float | None = None, backend: str = "eager"):
        if threads:
            torch.set_num_threads(threads)
        self.device = pick_device(device)
        # Its fastest form that keeps the answer (BatchNorm folded, cached front-end; or ONNX Runtime),
        # the plain eager model when that form cannot be built (models.inference, docs/benchmarks.md#speed).
        self.model = for_inference(model, backend, device=self.device, threads=threads)
        self.sample_rate = int(sample_rate)
        self.window = int(round(model.audio_preset.input_seconds * self.sample_rate))  # samples per window
        self.resize = getattr(model.image_preset, "resize", "square")
        method = getattr(model, "method", "")
        self.info = ModelInfo(model_id or method or "model", method)
        self.peaks = peaks
        self.silence_db = float(silence_db)
        # None: the map is no similarity
        self.on_screen = OnScreenReader.for_model(model, on_screen_threshold)
        self.audio_short = 0  # windows cut short: audio not there yet (start-up) or late
        self._centres: dict[tuple, object] = {}  # (frame hw, map hw) -> CellCentres: fixed per model

    def describe_device(self) -> str:
        return describe_device(self.device)

    def audio_window(self, ring: AudioRing, end: int) -> tuple[int, np.ndarray] | None:
        """(first sample, samples) of the window ending at sample `end`, cut to what `ring` holds;
        None under 0.1 s of audio (nothing worth localising yet) or when the ring overtook the read."""
        if ring.end < end:
            self.audio_short += 1
            end = ring.end
        first = max(end - self.window, ring.start)
        if first > end - self.window:
            self.audio_short += 1  # start-up: less audio than the window; the model tiles it
        if end - first < ring.sample_rate // 10:
            return None
        samples = ring.read(first, end - first)
        if samples is None:  # overwritten while reading (the reader fell a ring behind)
            return None
        return first, samples

    def batchable(self, samples: np.ndarray) -> np.ndarray:
        """A start-up window shorter than the model's, cut to its length by the model's own
        `select_window` (what its front-end does anyway), so it batches with full ones."""
        preset = self.model.audio_preset
        length = getattr(preset, "num_samples", None)
        if length is None or samples.size == length or getattr(preset, "context", None) is not None:
            return samples
        return select_window(torch.from_numpy(np.ascontiguousarray(samples))[None], preset)[0].numpy()

    def maps(self, images: list[np.ndarray], windows: list[np.ndarray],
             previous: list[np.ndarray | None] | None = None) -> np.ndarray:
        """The model's native maps [B, h, w] for frames and their audio windows (equal lengths).
        `previous`: the frame before each, for methods that use motion (SIRA); an entry that is None
        or of another size stands in with the frame itself (no motion). None: no frame has one."""
        before = None
        if previous is not None:
            before = np.stack([p if p is not None and p.shape == im.shape else im
                               for p, im in zip(previous, images)])
        autocast = (torch.autocast(device_type="cuda", dtype=torch.float16)
                    if self.device.type == "cuda" else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            maps = self.model.localize(np.stack(images), np.stack(windows), self.sample_rate, before)
        return maps.float().cpu().numpy()

    def result(self, heat: np.ndarray, frame: Frame, window: tuple[int, int], timing: tuple[int, int], *,
               inference: int, media_s: float | None = None,
               samples: np.ndarray | None = None) -> Localization:
        """The `Localization` of `heat` (a native map) computed on `frame` from the audio `window`
        (first sample, count) between the monotonic `timing` (start ns, end ns); with the window's
        `samples`, its `activity` too."""
        h, w = frame.image.shape[:2]
        activity = None if samples is None else audio_activity(samples, self.silence_db)
        on_screen = None
        if self.on_screen is not None:
            finite = np.asarray(heat, np.float64)
            finite = finite[np.isfinite(finite)]
            on_screen = self.on_screen(float(finite.max())) if finite.size else None
        return make_localization(
            heat, FrameInfo(frame.index, w, h, media_s), AudioWindow(self.sample_rate, *window),
            Timing(frame.wall_ns, frame.arrival_ns, *timing), inference=inference, model=self.info,
            resize=self.resize, top_k=self.peaks, activity=activity, on_screen=on_screen,
            centres=self.cell_centres((h, w), np.shape(heat)))

    def cell_centres(self, frame_hw: tuple[int, int], map_hw: tuple[int, int]):
        """Where the model's cells look on a frame of this size (`models.geometry`), or None for a
        model that does not say (the map is then spread evenly over the region it saw)."""
        key = (tuple(frame_hw), tuple(map_hw))
        if key not in self._centres:
            find = getattr(self.model, "cell_centres", None)
            self._centres[key] = find(*key) if find is not None else None
        return self._centres[key]
