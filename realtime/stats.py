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
    """Events per second between successive `rate(count)` calls (the status line's fps)."""

    def __init__(self):
        self._last = (time.monotonic(), 0)

    def rate(self, count: int) -> float:
        now = time.monotonic()
        t0, c0 = self._last
        self._last = (now, count)
        return (count - c0) / (now - t0) if now > t0 else 0.0
