"""Soak: `soundlens live` on the procedural clip at 25 fps for SOUNDLENS_SOAK_S seconds (default 180;
the issue's long run is 1800). Its RSS, open file descriptors and threads, read from /proc, must stay
flat after a warm-up; heatmaps/s and p99 latency, from its own status topic, stable."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import start_live, stop
from soundlens.realtime import Subscriber, wire

pytestmark = pytest.mark.reliability

SOAK_S = float(os.environ.get("SOUNDLENS_SOAK_S", "180"))
WARMUP_S = 30.0
EVERY_S = 10.0


def sample(pid: int) -> tuple[float, int, int]:
    """(RSS MiB, open fds, threads) of a live process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    rss = int(fields["VmRSS"].split()[0]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"])


def slope_per_min(t: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(t / 60, y, 1)[0]) if len(t) > 2 else float("nan")


@pytest.mark.timeout(SOAK_S + 300)  # the soak itself, start-up and shutdown (pyproject's 900 s is per test)
def test_soak_resources_flat_and_rate_stable(tmp_path, report):
    address = f"ipc://{tmp_path}/live.sock"
    live = start_live(address, "--preview", seconds=60)
    statuses = []
    rows = []
    try:
        with Subscriber(address, listener=lambda m, t: statuses.append(m.header) if m.kind == "status"
                        else None) as sub:
            sub.recv(wire.topic("heatmap", "cam0"), timeout=60)
            t0 = time.monotonic()
            while time.monotonic() - t0 < SOAK_S:
                rows.append((time.monotonic() - t0, *sample(live.pid)))
                time.sleep(EVERY_S)
            rows.append((time.monotonic() - t0, *sample(live.pid)))
    finally:
        out, err = stop(live)
    data = np.array(rows)
    steady = data[data[:, 0] >= WARMUP_S]
    t = steady[:, 0]
    rss_slope, fd_slope, thread_slope = (slope_per_min(t, steady[:, i]) for i in (1, 2, 3))
    late = [s for s in statuses if s["uptime_s"] >= WARMUP_S]
    fps = np.array([s["fps_out"] for s in late])
    p99 = np.array([s["latency_ms"]["capture_to_publish"]["p99"] or np.nan for s in late])
    counters = statuses[-1]["counters"] if statuses else {}
    passed = bool(abs(rss_slope) < 2.0 and steady[:, 2].max() - steady[:, 2].min() <= 2
                  and steady[:, 3].max() - steady[:, 3].min() <= 1
                  and np.percentile(fps, 5) >= 0.7 * np.median(fps)
                  and counters.get("errors", 1) == 0 and live.returncode == 0)
    report(passed=passed, seconds=SOAK_S, samples=len(rows),
           rss_mib_first_last=[round(float(data[0, 1]), 1), round(float(data[-1, 1]), 1)],
           rss_slope_mib_per_min=round(rss_slope, 3),
           fds_min_max=[int(steady[:, 2].min()), int(steady[:, 2].max())],
           fd_slope_per_min=round(fd_slope, 3),
           threads_min_max=[int(steady[:, 3].min()), int(steady[:, 3].max())],
           thread_slope_per_min=round(thread_slope, 3), heatmaps_per_s_median=round(float(np.median(fps)), 2),
           heatmaps_per_s_p5=round(float(np.percentile(fps, 5)), 2),
           p99_latency_ms_median=round(float(np.nanmedian(p99)), 1),
           p99_latency_ms_max=round(float(np.nanmax(p99)), 1),
           counters={k: counters.get(k) for k in ("inferences", "hops_dropped", "frames_skipped",
                                                  "publish_dropped", "errors")})
    assert passed, err[-2000:]
