"""What every capture source shares: start/stop, `with`, counters, and errors reported, not raised.

A source owns the rings it fills: `frames` (FrameRing) and/or `audio` (AudioRing). Its threads
never raise into the caller: they append to `errors` and, when they cannot go on, set
`finished`. The pipeline reads the counters for the status topic. A source runs once:
start it, stop it, make a new one to run again.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

from soundlens.realtime.ring import AudioRing, FrameRing


@dataclass
class SourceStats:
    frames_in: int = 0
    samples_in: int = 0
    drops: int = 0  # data the source itself had to discard (undecodable packets, unplaceable blocks)
    overflows: int = 0  # audio input overflows reported by PortAudio
    reconnects: int = 0  # times a lost device was opened again
    gaps: int = 0  # times audio input stopped and resumed (the hole is filled with silence)


class Source:
    """Base class. Subclasses set `frames` / `audio` and implement `_start()` / `_stop()`."""

    kind = "source"

    def __init__(self, name: str):
        self.name = name
        self.frames: FrameRing | None = None
        self.audio: AudioRing | None = None
        self.stats = SourceStats()
        self.errors: collections.deque[tuple[int, str]] = collections.deque(maxlen=50)
        self.error_count = 0
        self.finished = threading.Event()  # end of file, or a failure the source cannot recover from
        self._stop_event = threading.Event()
        self._started = False

    def report(self, message: str) -> None:
        """Record a problem (thread-safe: deque append + int increment under the GIL)."""
        self.errors.append((time.monotonic_ns(), f"{self.kind} {self.name}: {message}"))
        self.error_count += 1

    @property
    def last_error(self) -> str | None:
        return self.errors[-1][1] if self.errors else None

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def start(self) -> Source:
        if not self._started:
            self._stop_event.clear()
            self._start()  # may raise SoundLensError (no such device): then nothing was started
            self._started = True
        return self

    def stop(self) -> None:
        """Release the device and join threads; safe to call twice."""
        if self._started:
            self._stop_event.set()
            self._stop()
            self._started = False
        if self.frames is not None:
            self.frames.close()

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    def _thread(self, target, name: str) -> threading.Thread:
        """A daemon thread whose unexpected exceptions are reported and end the source."""

        def guarded():
            try:
                target()
            except Exception as err:
                self.report(f"stopped by {type(err).__name__}: {err}")
                self.finished.set()

        thread = threading.Thread(target=guarded, name=f"soundlens-{self.kind}-{name}", daemon=True)
        thread.start()
        return thread

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.name}

    def __enter__(self) -> Source:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
