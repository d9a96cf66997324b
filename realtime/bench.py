"""Live-pipeline benchmark: the real pipeline and a real subscriber over loopback ZeroMQ.

Reports sustained heatmaps/s (received by the subscriber), capture->publish and
capture->receive latency percentiles (monotonic stamps in the headers; one host, one clock),
and CPU use as process CPU time / wall time (1.0 = one core busy). The first `warmup`
seconds (model warm-up, thread start) are left out of every figure.
"""

from __future__ import annotations

import os
import platform
import threading
import time

import torch
from soundlens.realtime import wire
from soundlens.realtime.pipeline import LiveConfig, LivePipeline
from soundlens.realtime.stats import percentiles
from soundlens.realtime.subscriber import Subscriber

# Targets the project reports against (2 CPU cores, lite model).
TARGET_HEATMAPS_PER_S = 15.0
TARGET_P99_MS = 150.0


def bench_live(model, video, audio, config: LiveConfig, seconds: float = 20.0, warmup: float = 2.0,
               model_info: dict | None = None, model_id: str = "", on_status=None) -> dict:
    """Run the pipeline for warmup + seconds and measure it from a subscriber."""
    config.seconds = None  # the benchmark decides when to stop
    samples: list[tuple[int, int, int, int]] = []  # (recv, capture, publish, infer) ns per heatmap
    measuring = threading.Event()
    stream = config.worker.stream
    heat_topic = wire.topic("heatmap", stream)

    def listen(msg: wire.Message, recv_ns: int) -> None:
        if measuring.is_set() and msg.topic == heat_topic:
            t = msg.localization().timing
            samples.append((recv_ns, t.capture_ns, t.publish_ns, t.infer_end_ns - t.infer_start_ns))

    with LivePipeline(model, video, audio, config, model_info=model_info, model_id=model_id) as pipeline:
        with Subscriber(pipeline.publisher.address, topics=(heat_topic,), listener=listen) as sub:
            stop = threading.Event()
            timer = threading.Timer(warmup, measuring.set)
            timer.start()
            end_timer = threading.Timer(warmup + seconds, stop.set)
            end_timer.start()
            try:
                while not measuring.is_set() and not pipeline.worker.done.is_set():
                    time.sleep(0.01)
                wall0, cpu0 = time.monotonic(), time.process_time()
                counters0 = pipeline.status()["counters"]
                status = pipeline.run(on_status=on_status, stop=stop)
                wall = time.monotonic() - wall0
                cpu = time.process_time() - cpu0
            finally:
                timer.cancel()
                end_timer.cancel()
            measuring.clear()
            sub_stats = sub.stats
    counters = {k: status["counters"][k] - counters0.get(k, 0) for k in status["counters"]}
    return {
        "heatmaps_per_s": round(len(samples) / wall, 2) if wall > 0 else 0.0,
        "heatmaps": len(samples),
        "seconds": round(wall, 2),
        "warmup_s": warmup,
        "latency_ms": {
            "capture_to_publish": percentiles((p - c) / 1e6 for _, c, p, _ in samples),
            "capture_to_receive": percentiles((r - c) / 1e6 for r, c, _, _ in samples),
            "inference": percentiles(i / 1e6 for *_, i in samples),
        },
        "stage_latency_ms": status["latency_ms"],
        "cpu": {"process_cpu_over_wall": round(cpu / wall, 3) if wall > 0 else 0.0,
                "cores": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "fps_in": round(counters["frames_in"] / wall, 2) if wall > 0 else 0.0,
        "counters": counters,
        "subscriber": {"gaps": sub_stats.gaps, "lost": sub_stats.lost, "malformed": sub_stats.malformed},
        "device": status["device"],
        "model": {"id": model_id, **(model_info or {})},
        "source": [s.describe() for s in pipeline.sources],
        "hop_s": config.worker.hop,
        "host": {"machine": platform.machine(), "python": platform.python_version(),
                 "torch": torch.__version__},
        "targets": {"heatmaps_per_s": TARGET_HEATMAPS_PER_S, "p99_ms": TARGET_P99_MS},
    }


def meets_targets(result: dict) -> bool:
    p99 = result["latency_ms"]["capture_to_publish"]["p99"]
    return result["heatmaps_per_s"] >= TARGET_HEATMAPS_PER_S and p99 is not None and p99 <= TARGET_P99_MS
