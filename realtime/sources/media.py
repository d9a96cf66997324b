"""Sources that replay media with known timing: paced at real time, or as fast as the reader goes.

Subclasses yield one pass of time-ordered events, `("video", t, rgb)` and `("audio", t, samples)`
(t in seconds of media time); this base releases them into the rings, loops, and keeps audio
indices continuous across loops. Media time m lies on the timeline t0 + m, where t0 is the
monotonic time at start, so frames and audio share one clock (audio index n <-> t0 + n / rate).

Pacing (`Pacer`):
* realtime: an event is released when the monotonic clock reaches its time (a frame at its pts,
  an audio block when its last sample is due, as a microphone would deliver it);
* fast: events are released as fast as they decode, but video past the time the consumer
  allowed (`allow(t)`, the inference worker in lock-step) waits for it, so every hop of media
  time is processed exactly once, deterministically, however slow the model is. The first
  frame always goes; call `pacer.release()` to let a fast source run free with no consumer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
from soundlens.realtime.clock import FixedClock
from soundlens.realtime.ring import AudioRing, FrameRing
from soundlens.realtime.sources.base import Source

# An audio block starting this far from where the previous one ended is a real hole in the stream.
AUDIO_RESYNC_S = 0.02


class AudioPlacer:
    """Where decoded audio blocks go on the sample grid: at their timestamps, except that a block
    starting within AUDIO_RESYNC_S of where the previous one ended follows it directly (decoder
    timestamps jitter by a few samples; a real hole in the stream stays a hole). `live --video`
    and `soundlens analyze` place a file's audio with it."""

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self.next_index: int | None = None  # where the next contiguous block goes

    def start_s(self, t: float | None, offset: float = 0.0) -> float:
        """Media time of a block stamped `t` in a pass starting at `offset`; an untimed block (a
        resampler's tail) goes right after the previous one."""
        if t is not None:
            return offset + t
        return self.next_index / self.sample_rate if self.next_index is not None else offset

    def place(self, media_s: float, count: int) -> int:
        """Ring index of a block of `count` samples starting at `media_s`."""
        index = int(round(media_s * self.sample_rate))
        if self.next_index is not None and abs(index - self.next_index) <= AUDIO_RESYNC_S * self.sample_rate:
            index = self.next_index
        self.next_index = index + count
        return index


def _later(a: float | None, b: float) -> float:
    return b if a is None else max(a, b)


class Pacer:
    def __init__(self, realtime: bool = True):
        self.realtime = realtime
        self.t0_ns = 0
        self._allowed: float | None = None  # fast mode: media seconds the consumer allows (None: none yet)
        self._cond = threading.Condition()

    def start(self, t0_ns: int) -> None:
        self.t0_ns = t0_ns

    def timeline_ns(self, media_s: float) -> int:
        return self.t0_ns + int(round(media_s * 1e9))

    def media_s(self, timeline_ns: int) -> float:
        return (timeline_ns - self.t0_ns) / 1e9

    def allow(self, media_s: float) -> None:
        """Fast mode: let the source release video up to `media_s`."""
        with self._cond:
            if self._allowed is None or media_s > self._allowed:
                self._allowed = media_s
                self._cond.notify_all()

    def release(self) -> None:
        """Open the gate for good: the consumer is gone, or a fast source should free-run."""
        with self._cond:
            self._allowed = float("inf")
            self._cond.notify_all()

    def wait(self, media_s: float, video: bool, stop: threading.Event) -> bool:
        """Block until the event at `media_s` may be released; False if `stop` was set meanwhile."""
        if self.realtime:
            delay = (self.timeline_ns(media_s) - time.monotonic_ns()) / 1e9
            return not (delay > 0 and stop.wait(delay))
        if not video:  # audio never waits: the demuxer stops at the next gated frame anyway
            return not stop.is_set()
        with self._cond:
            if self._allowed is None:  # the first frame always goes, so a reader can see the media started
                self._allowed = media_s
            while media_s > self._allowed:
                if stop.is_set():
                    return False
                self._cond.wait(0.05)
        return not stop.is_set()


class MediaSource(Source):
    """Base of file-like sources. Subclasses implement `_pass()` and may set `fps`, `size`."""

    def __init__(self, name: str, *, realtime: bool = True, loop: bool = False, video: bool = True,
                 audio: bool = True, sample_rate: int = 16000, frame_capacity: int = 16,
                 audio_seconds: float = 12.0):
        super().__init__(name)
        self.realtime = realtime
        self.loop = loop
        self.sample_rate = int(sample_rate)
        self.pacer = Pacer(realtime)
        self.fps: float | None = None
        self.size: tuple[int, int] | None = None
        self.passes = 0
        self.frames = FrameRing(frame_capacity) if video else None
        self.audio = (AudioRing.for_seconds(audio_seconds, self.sample_rate, FixedClock(self.sample_rate))
                      if audio else None)
        self._reader: threading.Thread | None = None

    def _pass(self) -> Iterator[tuple[str, float, np.ndarray]]:
        raise NotImplementedError

    def _start(self) -> None:
        t0 = time.monotonic_ns()
        self.pacer.start(t0)
        if self.audio is not None:
            self.audio.clock.t0_ns = t0
        self._reader = self._thread(self._run, self.name)

    def _stop(self) -> None:
        self.pacer.release()
        if self._reader is not None:
            self._reader.join(timeout=5.0)
            self._reader = None

    def _run(self) -> None:
        offset = 0.0  # media seconds before this pass (loops continue the timeline)
        while not self.stopping:
            end = self._replay(offset)
            self.passes += 1
            if not self.loop or self.stopping:
                break
            if end is None or end <= offset:
                self.report("the media produced nothing; stopping instead of looping")
                break
            # Start the next pass on the audio sample grid, after both streams' ends.
            offset = np.ceil(end * self.sample_rate - 1e-6) / self.sample_rate  # tolerate float fuzz
        self.finished.set()

    def _replay(self, offset: float) -> float | None:
        """Release one pass; returns the media time where it ended (None if it was empty)."""
        stop = self._stop_event
        end = None
        frame_period = 1.0 / self.fps if self.fps else 0.0
        placer = AudioPlacer(self.sample_rate)
        for kind, t, payload in self._pass():
            if kind == "video":
                m = offset + (t or 0.0)
                if not self.pacer.wait(m, True, stop):
                    return end
                if self.frames is not None:
                    self.frames.put(payload, t_ns=self.pacer.timeline_ns(m))
                    self.stats.frames_in += 1
                    self.size = (payload.shape[1], payload.shape[0])
                end = _later(end, m + frame_period)
            else:
                n = payload.size
                m = placer.start_s(t, offset)
                block_end = m + n / self.sample_rate
                if not self.pacer.wait(block_end, False, stop):
                    return end
                index = placer.place(m, n)
                if self.audio is not None:
                    self.audio.write(payload, index=index)
                    self.stats.samples_in += n
                end = _later(end, block_end)
        return end

    def describe(self) -> dict:
        return {**super().describe(), "realtime": self.realtime, "loop": self.loop, "fps": self.fps,
                "size": list(self.size) if self.size else None}
