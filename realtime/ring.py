"""Bounded, timestamped ring buffers between capture threads and the inference worker.

`AudioRing`: fixed-capacity float32 mono samples addressed by absolute sample index (the n-th
sample since the source started), with a clock mapping index <-> nanoseconds. One writer (the
audio callback or decode thread) and any number of readers. The writer never waits: it copies
then publishes the new end index, and a reader re-checks after its copy that nothing it read
was overwritten meanwhile (seqlock style; Python attribute stores are atomic under the GIL).
A window that is older than the capacity or not yet written is *not available*: `read` returns
None, so a live reader decides itself whether to wait, shift or skip.

`FrameRing`: the newest N frames with their capture times, behind a condition variable so the
worker can wait for a frame newer than the one it last used.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from soundlens.realtime.clock import FixedClock, SampleClock


class AudioRing:
    """Mono float32 samples at `sample_rate`, the newest `capacity` of them kept."""

    def __init__(self, capacity: int, sample_rate: int, clock: SampleClock | FixedClock | None = None):
        if capacity <= 0 or sample_rate <= 0:
            raise ValueError(f"capacity ({capacity}) and sample_rate ({sample_rate}) must be positive")
        self.capacity = int(capacity)
        self.sample_rate = int(sample_rate)
        self.clock = clock if clock is not None else SampleClock(sample_rate)
        self._data = np.zeros(self.capacity, dtype=np.float32)
        self._end = 0  # absolute index one past the newest sample readers may use
        self._pending = 0  # end index the writer is writing up to (>= _end while a write is in flight)
        self.gap_samples = 0  # zeros inserted when a block arrived after a hole (e.g. file audio pts)
        self.late_samples = 0  # samples dropped because they arrived for indices already written

    @classmethod
    def for_seconds(cls, seconds: float, sample_rate: int, clock=None) -> AudioRing:
        return cls(int(round(seconds * sample_rate)), sample_rate, clock)

    @property
    def end(self) -> int:
        """Absolute index one past the newest readable sample (= samples written so far)."""
        return self._end

    @property
    def start(self) -> int:
        """Oldest absolute index still readable."""
        return max(0, self._end - self.capacity)

    def write(self, block, index: int | None = None) -> int:
        """Append samples ([n] or [n, 1]); `index` places them at an absolute index (a hole before
        it is filled with zeros, an overlap with what is already written is dropped). Returns the
        new end. Single writer only."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        end = self._end
        if index is not None:
            if index > end:
                self._write_zeros(index - end)
                end = self._end
            elif index < end:
                skip = min(end - index, block.size)
                self.late_samples += skip
                block = block[skip:]
        n = block.size
        if n == 0:
            return end
        if n > self.capacity:  # only the tail can survive anyway
            block = block[-self.capacity :]
        new_end = end + n
        self._pending = new_end
        pos = (new_end - block.size) % self.capacity
        first = min(block.size, self.capacity - pos)
        self._data[pos : pos + first] = block[:first]
        self._data[: block.size - first] = block[first:]
        self._end = new_end
        return new_end

    def _write_zeros(self, n: int) -> None:
        self.gap_samples += n
        while n > 0:
            chunk = min(n, self.capacity)
            self.write(np.zeros(chunk, dtype=np.float32))
            n -= chunk

    def available(self, first: int, count: int) -> bool:
        return first >= self.start and first + count <= self._end

    def read(self, first: int, count: int) -> np.ndarray | None:
        """Copy of samples [first, first + count), or None when part of it is older than the
        capacity or not written yet. ValueError if count can never fit."""
        if count < 0 or count > self.capacity:
            raise ValueError(f"cannot read {count} samples from a ring of {self.capacity}; make "
                             "the ring larger")
        if not self.available(first, count):
            return None
        pos = first % self.capacity
        head = min(count, self.capacity - pos)
        out = np.empty(count, dtype=np.float32)
        out[:head] = self._data[pos : pos + head]
        out[head:] = self._data[: count - head]
        # The writer may have overwritten our oldest samples while we copied: check after.
        if first < self._pending - self.capacity:
            return None
        return out

    def read_latest(self, count: int) -> tuple[int, np.ndarray] | None:
        """(first index, samples) of the newest `count` samples, or None if fewer were written."""
        first = self._end - count
        out = self.read(first, count) if first >= 0 else None
        return None if out is None else (first, out)

    def wait_until(self, index: int, timeout: float) -> bool:
        """Poll (the writer never signals: it must not block) until `end >= index`."""
        deadline = time.monotonic() + timeout
        while self._end < index:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.002, left))
        return True


@dataclass
class Frame:
    """One captured video frame. `t_ns` is on the source's timeline (the same clock as its audio);
    `arrival_ns` is time.monotonic_ns() when it entered the ring (latency is measured from it);
    `wall_ns` is time.time_ns() then; `index` counts frames from 0 for this ring."""

    image: np.ndarray  # uint8 RGB [H, W, 3]
    t_ns: int
    arrival_ns: int
    wall_ns: int
    index: int


class FrameRing:
    """The newest `capacity` frames; readers never see a backlog, only what is current."""

    def __init__(self, capacity: int = 4):
        if capacity <= 0:
            raise ValueError(f"frame ring capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self._frames: list[Frame] = []
        self._count = 0
        self._cond = threading.Condition()
        self.closed = False

    @property
    def count(self) -> int:
        """Frames put so far (the next frame's index)."""
        return self._count

    def put(self, image: np.ndarray, t_ns: int | None = None, wall_ns: int | None = None) -> Frame:
        now = time.monotonic_ns()
        with self._cond:
            frame = Frame(image, now if t_ns is None else int(t_ns), now,
                          time.time_ns() if wall_ns is None else int(wall_ns), self._count)
            self._count += 1
            self._frames.append(frame)
            if len(self._frames) > self.capacity:
                del self._frames[0]
            self._cond.notify_all()
        return frame

    def newest(self) -> Frame | None:
        with self._cond:
            return self._frames[-1] if self._frames else None

    def at_or_before(self, t_ns: int) -> Frame | None:
        """Newest frame with t_ns <= t (the oldest kept one if all are later), None if empty."""
        with self._cond:
            for frame in reversed(self._frames):
                if frame.t_ns <= t_ns:
                    return frame
            return self._frames[0] if self._frames else None

    def snapshot(self) -> list[Frame]:
        with self._cond:
            return list(self._frames)

    def wait_newer(self, index: int, timeout: float) -> Frame | None:
        """Newest frame whose index > `index`, waiting up to `timeout` s; None on timeout or close."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.closed:
                if self._frames and self._frames[-1].index > index:
                    return self._frames[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
        return None

    def close(self) -> None:
        """Wake every waiter; later waits return at once."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
