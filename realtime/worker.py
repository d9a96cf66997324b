"""The inference worker: every hop, the newest frame and the audio window ending at its capture time.

It never works through a backlog (MediaPipe's flow limiter, Holoscan's depth-1 queues): when the
model is slower than the hop it runs again at once on the newest data and counts the hops it
could not serve (`hops_dropped`) and the frames it never looked at (`frames_skipped`), so
latency stays bounded by one frame period plus one inference. Results go to the publisher,
whose `publish()` never blocks.

With a fast-paced media source (`Pacer(realtime=False)`) the worker runs in lock-step instead:
it lets the source release media up to the next hop, so every hop of the file is processed
once, whatever the machine's speed.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from soundlens.models.errors import SoundLensError
from soundlens.realtime import wire
from soundlens.realtime.activity import DEFAULT_SILENCE_DB
from soundlens.realtime.localizer import Localizer
from soundlens.realtime.peaks import map_region
from soundlens.realtime.result import Localization
from soundlens.realtime.ring import AudioRing, Frame, FrameRing
from soundlens.realtime.sources.media import Pacer
from soundlens.realtime.stats import LatencyWindow
from soundlens.realtime.tracks import CameraModel, Tracker, TrackerConfig


@dataclass
class WorkerConfig:
    hop: float = 0.1  # seconds between inferences; 0 = every new frame, as fast as the model goes
    device: str = "auto"  # "auto": CUDA when available, else CPU
    stream: str = "cam0"
    peaks: int = 3  # top-k local maxima published
    preview: bool = False  # publish a JPEG of the frame used
    preview_width: int = 320
    preview_fps: float = 10.0
    jpeg_quality: int = 75
    audio_wait: float = 0.05  # live: how long to wait for audio to reach the frame time
    frame_wait: float = 0.5  # how long to wait for a new frame before re-checking the source
    # live: skip a frame whose audio still ends this much before it (input stalled)
    max_audio_lag: float = 0.5
    threads: int | None = None  # torch CPU threads (None: torch's default)
    backend: str = "eager"  # models.inference.BACKENDS: "eager" (BatchNorm folded) or "onnxruntime" (CPU)
    silence_db: float = DEFAULT_SILENCE_DB  # windows quieter than this are silent: no peak feeds a track
    on_screen_threshold: float | None = None  # None: the method's own (realtime.activity)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    camera: CameraModel | None = None  # directions of tracks; None publishes them without


@dataclass
class WorkerStats:
    inferences: int = 0
    frames_skipped: int = 0  # frames never used because a newer one was there (newest-wins)
    hops_dropped: int = 0  # hops not served because the previous inference ran late
    audio_stale: int = 0  # frames not used because the audio stopped short of them (a stalled microphone)
    errors: int = 0


def preview_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """(width, height) of the preview of a width x height frame (docs/protocol.md §4.2)."""
    if width <= max_width:
        return width, height
    return max_width, max(1, round(height * max_width / width))


class PreviewBudget:
    """Which inferences carry a preview: at most `fps` a second on average, and every one while
    inferences come no faster than that.

    The budget grows by `fps` per second of inference start time, holds at most 2 (one preview of
    catch-up after a late one), and each preview spends 1; the first inference always carries one.
    A plain "at least 1/fps since the last preview" test drops an inference whenever scheduling
    jitter makes it come a few ms early: ~38 % of them at --hop 0.1 with 10 Hz previews."""

    def __init__(self, fps: float):
        self.fps = float(fps)
        self._credit = 2.0
        self._last_ns: int | None = None

    def take(self, t_ns: int) -> bool:
        if self._last_ns is not None:
            self._credit = min(2.0, self._credit + max(0, t_ns - self._last_ns) * 1e-9 * self.fps)
        self._last_ns = t_ns
        if self._credit >= 1.0:
            self._credit -= 1.0
            return True
        return False


class InferenceWorker:
    def __init__(self, model, frames: FrameRing, audio: AudioRing, publisher,
                 config: WorkerConfig | None = None, *, pacer: Pacer | None = None,
                 source_done: threading.Event | None = None, model_id: str = "", fps: float | None = None):
        self.config = cfg = config or WorkerConfig()
        if cfg.hop < 0:
            raise SoundLensError(f"--hop must be >= 0 seconds, got {cfg.hop}")
        self.localizer = Localizer(model, audio.sample_rate, device=cfg.device, model_id=model_id,
                                   peaks=cfg.peaks, threads=cfg.threads, silence_db=cfg.silence_db,
                                   on_screen_threshold=cfg.on_screen_threshold, backend=cfg.backend)
        self.tracker = Tracker(cfg.tracker.check(), cfg.camera)
        self.frames = frames
        self.audio = audio
        self.publisher = publisher
        self.media = pacer  # media timeline of a file/synthetic source (None for live devices)
        self.pacer = pacer if pacer is not None and not pacer.realtime else None  # lock-step only when fast
        self.source_done = source_done or threading.Event()
        self.fps = fps
        if self.localizer.window > audio.capacity:
            raise SoundLensError(
                f"the model needs {model.audio_preset.input_seconds} s of audio but the ring holds "
                f"{audio.capacity / audio.sample_rate:g} s; make the audio buffer larger"
            )
        self.stats = WorkerStats()
        self.errors: collections.deque[str] = collections.deque(maxlen=20)
        self.capture_to_infer = LatencyWindow()
        self.inference = LatencyWindow()
        self.last: Localization | None = None  # the newest result
        self.done = threading.Event()  # the worker ended (source finished, or stopped)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previews = PreviewBudget(cfg.preview_fps)
        self._published = (-1, 0)  # (frame index, hops_dropped total) at the previous published result

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> InferenceWorker:
        self._thread = threading.Thread(target=self._guarded, name="soundlens-inference", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.pacer is not None:
            self.pacer.release()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None

    def _guarded(self) -> None:
        try:
            if self.pacer is not None:
                self._run_lockstep()
            else:
                self._run_live()
        except Exception as err:
            self._error(f"inference worker stopped: {type(err).__name__}: {err}")
        finally:
            if self.pacer is not None:
                self.pacer.release()
            self.done.set()

    def _error(self, message: str) -> None:
        self.stats.errors += 1
        self.errors.append(message)

    # --- scheduling -----------------------------------------------------------------------
    def _run_live(self) -> None:
        hop = self.config.hop
        last_index = -1
        next_tick = time.monotonic()
        while not self._stop.is_set():
            wait = next_tick - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            frame = self.frames.wait_newer(last_index, self.config.frame_wait)
            if frame is None:
                if self.source_done.is_set() or self.frames.closed:
                    break
                continue
            if last_index >= 0:
                self.stats.frames_skipped += frame.index - last_index - 1
            last_index = frame.index
            end = self.audio.clock.index_at(frame.t_ns)
            if (not self.audio.wait_until(end, self.config.audio_wait)
                    and end - self.audio.end > self.config.max_audio_lag * self.audio.sample_rate):
                self.stats.audio_stale += 1  # no heatmap of this frame from sound older than it
                continue
            self._infer(frame, end)
            next_tick += hop
            late = time.monotonic() - next_tick
            if late > 0:  # run again now on the newest data; the hops in between are gone
                if hop > 0:
                    self.stats.hops_dropped += int(late // hop)
                next_tick = time.monotonic()

    def _run_lockstep(self) -> None:
        pacer = self.pacer
        step = self.config.hop or 1.0 / (self.fps or 30.0)  # hop 0: every frame
        period = 1.0 / (self.fps or 30.0)
        lead = step + 0.1  # released ahead of the hop: covers demux interleaving, well inside the ring
        first = None
        while first is None and not self._stop.is_set():
            pacer.allow(lead)
            first = self.frames.wait_newer(-1, self.config.frame_wait)
            if first is None and self.source_done.is_set() and self.frames.newest() is None:
                return
        if first is not None:  # start at the oldest frame: the gate kept the ring from wrapping
            first = self.frames.snapshot()[0]
        target = pacer.media_s(first.t_ns) if first else 0.0
        last_index = -1
        while not self._stop.is_set():
            pacer.allow(target + lead)
            # The frame for `target` is final once a later one exists or the source has ended.
            while not self._stop.is_set():
                newest = self.frames.newest()
                if newest is not None and pacer.media_s(newest.t_ns) > target:
                    break
                if self.source_done.is_set():
                    break
                self.frames.wait_newer(newest.index if newest else -1, self.config.frame_wait)
            frame = self.frames.at_or_before(pacer.timeline_ns(target))
            if (frame is None
                    or (self.source_done.is_set() and pacer.media_s(frame.t_ns) + period <= target + 1e-9)):
                break  # past the end of the media (its last frame is shown for one frame period)
            if frame.index != last_index:
                if last_index >= 0:
                    self.stats.frames_skipped += max(0, frame.index - last_index - 1)
                last_index = frame.index
                end = self.audio.clock.index_at(frame.t_ns)
                deadline = time.monotonic() + 5.0
                while (self.audio.end < end and not self.source_done.is_set()
                       and time.monotonic() < deadline and not self._stop.is_set()):
                    time.sleep(0.002)
                self._infer(frame, end)
            target += step

    # --- one inference --------------------------------------------------------------------
    def _infer(self, frame: Frame, audio_end: int) -> None:
        infer_start = time.monotonic_ns()
        window = self.localizer.audio_window(self.audio, audio_end)
        if window is None:
            return
        first, samples = window
        previous = self._previous_image(frame)
        try:
            heat = self.localizer.maps([frame.image], [samples], None if previous is None else [previous])[0]
        except SoundLensError as err:
            self._error(str(err))
            return
        except Exception as err:
            self._error(f"model failed: {type(err).__name__}: {err}")
            return
        infer_end = time.monotonic_ns()
        self.capture_to_infer.add_ns(infer_start - frame.arrival_ns)
        self.inference.add_ns(infer_end - infer_start)
        media_s = None if self.media is None else round(self.media.media_s(frame.t_ns), 6)
        self.last = self.localizer.result(heat, frame, (first, samples.size), (infer_start, infer_end),
                                          inference=self.stats.inferences, media_s=media_s, samples=samples)
        self.stats.inferences += 1
        last_frame, last_hops = self._published
        self.last = dataclasses.replace(
            self.last, hops_skipped=self.stats.hops_dropped - last_hops,
            frames_skipped=frame.index - last_frame - 1 if last_frame >= 0 else 0)
        self._published = (frame.index, self.stats.hops_dropped)
        self._publish(self.last, frame.image)

    def _previous_image(self, frame: Frame) -> np.ndarray | None:
        """The frame captured just before `frame`, while the ring still holds it and has its size (motion
        input)."""
        for other in self.frames.snapshot():
            if other.index == frame.index - 1 and other.image.shape == frame.image.shape:
                return other.image
        return None

    def _publish(self, loc: Localization, image: np.ndarray) -> None:
        stream, publish = self.config.stream, self.publisher.publish
        publish("heatmap", stream, wire.result_header("heatmap", loc), {"heatmap": loc.heatmap})
        publish("peaks", stream, wire.result_header("peaks", loc))
        # Media time where there is one: a fast (lock-step) file must not look like a fast-moving scene.
        t = loc.frame.media_s if loc.frame.media_s is not None else loc.timing.capture_ns / 1e9
        silent = loc.activity is not None and loc.activity.silent
        tracks = self.tracker.update(loc.peaks, loc.frame.width, loc.frame.height, t, silent=silent)
        camera = self.config.camera.source if self.config.camera is not None else None
        publish("tracks", stream, wire.tracks_header(loc, tracks, camera))
        if self.config.preview and self._previews.take(loc.timing.infer_start_ns):
            jpeg, (width, height) = self._jpeg(image)
            header = {**wire.result_header("preview", loc), "preview": {"width": width, "height": height}}
            publish("preview", stream, header, {"jpeg": jpeg})

    def _jpeg(self, rgb: np.ndarray) -> tuple[bytes, tuple[int, int]]:
        """(JPEG bytes, (width, height)): frames wider than preview_width are scaled down to it,
        keeping the aspect ratio (height rounded); narrower ones keep their size."""
        h, w = rgb.shape[:2]
        if w > self.config.preview_width:
            size = preview_size(w, h, self.config.preview_width)
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        return (data.tobytes() if ok else b""), (rgb.shape[1], rgb.shape[0])

    # --- reporting ------------------------------------------------------------------------
    def latency(self) -> dict:
        return {"capture_to_infer": self.capture_to_infer.summary(), "inference": self.inference.summary()}

    def meta(self) -> dict:
        """How to read this worker's heatmaps (for the meta topic)."""
        loc = self.localizer
        out = {"hop_s": self.config.hop, "device": loc.describe_device(),
               "audio": {"sample_rate": loc.sample_rate, "window_samples": loc.window,
                         "window_s": loc.window / loc.sample_rate, "silence_db": loc.silence_db},
               "tracks": {**self.tracker.config.describe(),
                          "camera": self.config.camera.source if self.config.camera is not None else None},
               "on_screen": None if loc.on_screen is None else {"threshold": loc.on_screen.threshold}}
        if self.last is not None:
            w, h = self.last.frame.width, self.last.frame.height
            x0, y0, x1, y1 = map_region(w, h, loc.resize)
            mh, mw = self.last.heatmap.shape
            out["frame"] = {"width": w, "height": h}
            out["heatmap"] = {
                "shape": [mh, mw], "region": [x0, y0, x1, y1],
                "cell_size": [(x1 - x0) / mw, (y1 - y0) / mh],
                "values": "min-max normalised to [0, 1]; header heatmap.range holds the raw [min, max]",
            }
            if self.last.centres is not None:  # 1.3: cell (r, c) looks at origin + (c, r) * step (§5)
                out["heatmap"]["centres"] = self.last.centres.to_json()
        return out
