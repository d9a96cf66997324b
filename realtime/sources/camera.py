"""OpenCV camera: a grab thread that keeps only the newest frames, and reconnects when the device goes.

Cameras buffer several frames (V4L2 about 4), so a reader slower than the camera would get old
images; the grab thread reads continuously and the FrameRing keeps only the newest. Each frame
is stamped with time.monotonic_ns() right after `grab()` returns (before the slower decode in
`retrieve()`). When reads fail `max_failures` times in a row, or the device cannot be opened,
the thread releases it and retries with exponential backoff, reporting each attempt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
from soundlens.realtime.ring import FrameRing
from soundlens.realtime.sources.base import Source


@dataclass
class CameraConfig:
    device: int | str = 0  # OpenCV index, device path (/dev/video0), file, image sequence or URL
    width: int | None = None  # requested capture size (the driver may pick another)
    height: int | None = None
    fps: float | None = None  # requested device frame rate
    max_fps: float | None = None  # pace reads for sources that do not block (files, image sequences)
    capacity: int = 4  # frames kept in the ring
    max_failures: int = 3  # failed reads in a row that count as "device lost"
    backoff: float = 0.5  # first reconnect delay, doubled per failed attempt ...
    max_backoff: float = 8.0  # ... up to this
    timeout_ms: int = 5000  # FFmpeg-backend open/read timeout for network streams


def parse_device(text: str | int) -> int | str:
    """'0' -> 0 (an OpenCV index); anything else stays a path or URL."""
    if isinstance(text, int):
        return text
    return int(text) if text.strip().isdigit() else text


class CameraSource(Source):
    kind = "camera"

    def __init__(self, config: CameraConfig | None = None):
        self.config = config or CameraConfig()
        super().__init__(str(self.config.device))
        self.frames = FrameRing(self.config.capacity)
        self.size: tuple[int, int] | None = None  # (width, height) of the last frame
        self.connected = False
        self._grabber = None

    def _open(self) -> cv2.VideoCapture | None:
        cfg = self.config
        device = parse_device(cfg.device)
        if isinstance(device, str) and "://" in device:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, cfg.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                      cfg.timeout_ms]
            cap = cv2.VideoCapture(device, cv2.CAP_ANY, params)
        else:
            cap = cv2.VideoCapture(device)
        if not cap.isOpened():
            cap.release()
            return None
        # Only V4L2 honours BUFFERSIZE; elsewhere the grab thread's newest-wins does the job.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if cfg.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        if cfg.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        if cfg.fps:
            cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        return cap

    def _start(self) -> None:
        self._grabber = self._thread(self._run, self.name)

    def _stop(self) -> None:
        if self._grabber is not None:
            self._grabber.join(timeout=self.config.timeout_ms / 1000 + 2)
            self._grabber = None

    def _run(self) -> None:
        cfg = self.config
        delay = cfg.backoff
        ever_opened = False
        while not self.stopping:
            cap = self._open()
            if cap is None:
                self.report(f"cannot open {cfg.device!r}; retrying in {delay:g} s")
                if self._stop_event.wait(delay):
                    break
                delay = min(delay * 2, cfg.max_backoff)
                continue
            if ever_opened:
                self.stats.reconnects += 1
                self.report("reconnected")
            ever_opened = True
            self.connected = True
            try:
                got_frames = self._grab_loop(cap)
            finally:
                cap.release()
                self.connected = False
            if self.stopping:
                break
            if got_frames:
                delay = cfg.backoff  # it worked for a while: start the backoff again
            self.report(f"lost {cfg.device!r} after {cfg.max_failures} failed reads; reconnecting in "
                        f"{delay:g} s")
            if self._stop_event.wait(delay):
                break
            delay = min(delay * 2, cfg.max_backoff)

    def _grab_loop(self, cap: cv2.VideoCapture) -> bool:
        """Read until stopped or the device fails `max_failures` times in a row. True if any frame came."""
        cfg = self.config
        period = 1.0 / cfg.max_fps if cfg.max_fps else 0.0
        failures = 0
        got = False
        next_t = time.monotonic()
        while not self.stopping and failures < cfg.max_failures:
            if period:
                wait = next_t - time.monotonic()
                if wait > 0 and self._stop_event.wait(wait):
                    break
                next_t = max(next_t + period, time.monotonic() - period)
            if not cap.grab():
                failures += 1
                continue
            t_ns, wall_ns = time.monotonic_ns(), time.time_ns()
            ok, bgr = cap.retrieve()
            if not ok or bgr is None or bgr.ndim != 3:
                failures += 1
                self.stats.drops += 1
                continue
            failures = 0
            got = True
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            self.size = (rgb.shape[1], rgb.shape[0])
            self.frames.put(rgb, t_ns=t_ns, wall_ns=wall_ns)
            self.stats.frames_in += 1
        return got

    def describe(self) -> dict:
        return {**super().describe(), "device": str(self.config.device)}
