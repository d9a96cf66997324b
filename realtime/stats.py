"""Latency windows and rates for the status topic and the benchmark."""

from __future__ import annotations

import collections
import time

import numpy as np


def percentiles(values, qs=(50, 90, 99)) -> dict:
    """{"p50": .., "p90": .., "p99": .., "max": .., "n": ..} of a sequence (None values when empty)."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        return {**{f"p{q}": None for q in qs}, "max": None, "n": 0}
    out = {f"p{q}": round(float(np.percentile(data, q)), 3) for q in qs}
    out["max"] = round(float(data.max()), 3)
    out["n"] = int(data.size)
    return out


class LatencyWindow:
    """The newest `size` latencies in milliseconds; `add` is one deque append (safe from any thread)."""

    def __init__(self, size: int = 600):
        self._values: collections.deque[float] = collections.deque(maxlen=size)

    def add_ns(self, ns: int) -> None:
        self._values.append(ns / 1e6)

    def summary(self) -> dict:
        return percentiles(list(self._values))


class Rate:
    """Events per second of a growing counter over the last `window` seconds (status rates).

    `rate(count)` records a snapshot and divides the counter's increase by the time since the
    newest earlier snapshot at least `window` old (since `start` while none is): 5-6 s at a 1 s
    status interval, long enough that a microphone's block size (1024 samples = 6 % of 16 kHz in
    one second) no longer shows, and independent of how often status() is called."""

    def __init__(self, window: float = 5.0):
        self.window = float(window)
        self._snaps: collections.deque[tuple[float, int]] = collections.deque()
        self.start(0)

    def start(self, count: int = 0, now: float | None = None) -> None:
        self.span = 0.0  # seconds the last rate() averaged over
        self._snaps.clear()
        self._snaps.append((time.monotonic() if now is None else now, count))

    def rate(self, count: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while len(self._snaps) > 1 and now - self._snaps[1][0] >= self.window:
            self._snaps.popleft()  # the next one is old enough to be the reference
        t0, c0 = self._snaps[0]
        self._snaps.append((now, count))
        self.span = now - t0
        return (count - c0) / (now - t0) if now > t0 else 0.0
