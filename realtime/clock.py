"""Sample index <-> time: where on the monotonic clock the n-th audio sample was captured.

PortAudio's ADC timestamps are unreliable across host APIs (0 on DirectSound and WDM-KS, a
stream clock that does not advance through the ALSA pulse plugin), so a microphone is timed by
counting samples: each callback records (index of its last sample + 1, time.monotonic_ns() on
entry) and a least-squares line through recent points gives t(n) = t_ref + slope * (n - n_ref).
The slope absorbs the drift between the sound card's crystal and the system clock.

File and synthetic sources know their timing exactly: `FixedClock`.
"""

from __future__ import annotations

import collections
import threading

import numpy as np


class FixedClock:
    """t(n) = t0 + n / sample_rate seconds, in ns; for sources whose timing is known."""

    def __init__(self, sample_rate: int, t0_ns: int = 0):
        self.sample_rate = int(sample_rate)
        self.t0_ns = int(t0_ns)

    def time_ns(self, index: float) -> int:
        return self.t0_ns + int(round(index * 1e9 / self.sample_rate))

    def index_at(self, t_ns: int) -> int:
        return int(round((t_ns - self.t0_ns) * self.sample_rate / 1e9))


class SampleClock:
    """Running linear fit of (sample index -> monotonic ns) over the newest `window` observations.

    `observe` is cheap (one deque append) so an audio callback may call it; the fit is computed
    lazily by readers. Until two observations exist the nominal rate is used.
    """

    def __init__(self, sample_rate: int, window: int = 512, latency_ns: int = 0):
        self.sample_rate = int(sample_rate)
        self.latency_ns = int(latency_ns)  # host input latency: a block's end was captured this much earlier
        self._points: collections.deque[tuple[int, int]] = collections.deque(maxlen=window)
        self._lock = threading.Lock()  # readers only; the writer's append needs none
        self._fit: tuple[int, float, float, float] | None = None  # (points seen, n_ref, t_ref, slope)
        self._seen = 0

    def observe(self, end_index: int, t_ns: int) -> None:
        """The sample at `end_index - 1` was delivered at monotonic `t_ns` (callback entry)."""
        self._points.append((int(end_index), int(t_ns) - self.latency_ns))
        self._seen += 1

    @property
    def observations(self) -> int:
        return self._seen

    def fit(self) -> tuple[float, float, float]:
        """(n_ref, t_ref_ns, ns_per_sample) of the current line."""
        with self._lock:
            if self._fit is not None and self._fit[0] == self._seen:
                return self._fit[1:]
            points = np.array(self._points, dtype=np.float64) if self._points else np.zeros((0, 2))
            seen = self._seen
            nominal = 1e9 / self.sample_rate
            if len(points) == 0:
                result = (0.0, 0.0, nominal)
            else:
                n = points[:, 0] - points[-1, 0]  # relative coordinates keep float64 exact
                t = points[:, 1] - points[-1, 1]
                var = float(np.dot(n - n.mean(), n - n.mean()))
                # A window spanning under 0.5 s of audio cannot tell drift from jitter: keep nominal.
                if len(points) < 2 or (n.max() - n.min()) < self.sample_rate / 2 or var == 0.0:
                    slope = nominal
                else:
                    slope = float(np.dot(n - n.mean(), t - t.mean()) / var)
                    slope = min(max(slope, nominal * 0.9), nominal * 1.1)  # a sound card is never 10% off
                intercept = float(t.mean() - slope * n.mean())
                result = (float(points[-1, 0]), float(points[-1, 1]) + intercept, slope)
            self._fit = (seen, *result)
            return result

    def time_ns(self, index: float) -> int:
        n_ref, t_ref, slope = self.fit()
        return int(round(t_ref + (index - n_ref) * slope))

    def index_at(self, t_ns: int) -> int:
        n_ref, t_ref, slope = self.fit()
        return int(round(n_ref + (t_ns - t_ref) / slope))
