"""Sources + inference worker + publisher, with the 1 Hz status and meta topics.

`LivePipeline` is what `soundlens live` and `soundlens bench live` run: it starts the parts in
order (sources, publisher, worker), publishes `status` and `meta` every `status_interval`, and
shuts down in reverse order so devices and sockets are always released.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from soundlens.models.errors import SoundLensError
from soundlens.realtime.publisher import Publisher, PublisherConfig
from soundlens.realtime.sources.base import Source
from soundlens.realtime.stats import Rate
from soundlens.realtime.worker import InferenceWorker, WorkerConfig


@dataclass
class LiveConfig:
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    publisher: PublisherConfig = field(default_factory=PublisherConfig)
    status_interval: float = 1.0
    seconds: float | None = None  # stop after this long (None: until stopped or the media ends)
    ready_timeout: float = 10.0  # how long to wait for the first frame and audio


class LivePipeline:
    def __init__(self, model, video: Source, audio: Source, config: LiveConfig | None = None,
                 model_info: dict | None = None, model_id: str = ""):
        self.model = model
        self.video = video
        self.audio = audio
        self.config = config or LiveConfig()
        self.model_info = model_info or {"method": getattr(model, "method", "")}
        self.model_id = model_id or self.model_info.get("method", "model")
        self.sources = [video] if audio is video else [video, audio]
        self.publisher: Publisher | None = None
        self.worker: InferenceWorker | None = None
        self.started_at = 0.0
        self._cpu0 = 0.0
        self._rates = {"in": Rate(), "out": Rate(), "audio": Rate()}
        self.last_status: dict | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> LivePipeline:
        try:
            for source in self.sources:
                source.start()
            self._wait_ready()
            self.publisher = Publisher(self.config.publisher).start()
            pacer = getattr(self.video, "pacer", None)
            self.worker = InferenceWorker(
                self.model, self.video.frames, self.audio.audio, self.publisher, self.config.worker,
                pacer=pacer, source_done=self.video.finished, model_id=self.model_id,
                fps=getattr(self.video, "fps", None),
            ).start()
        except BaseException:
            self.close()
            raise
        self.started_at = time.monotonic()
        self._cpu0 = time.process_time()
        for rate in self._rates.values():  # rates count from here, not from construction
            rate.start(0, self.started_at)
        return self

    def _wait_ready(self) -> None:
        """The first frame must arrive (and audio start) before inference makes sense."""
        deadline = time.monotonic() + self.config.ready_timeout
        while time.monotonic() < deadline:
            video_ok = self.video.frames.count > 0
            pacer = getattr(self.audio, "pacer", None)
            # A fast (lock-step) source releases audio only as the worker advances.
            audio_ok = self.audio.audio.end > 0 or (pacer is not None and not pacer.realtime)
            if video_ok and audio_ok:
                return
            for source in self.sources:
                if source.finished.is_set() and not (video_ok and source is self.video):
                    raise SoundLensError(f"{source.kind} {source.name} ended before it delivered anything: "
                                         f"{source.last_error or 'no data'}")
            time.sleep(0.02)
        problems = [s.last_error for s in self.sources if s.last_error]
        what = "frame" if self.video.frames.count == 0 else "audio"
        raise SoundLensError(
            f"no {what} within {self.config.ready_timeout:g} s"
            + (f" ({'; '.join(problems)})" if problems else "")
            + "; check the device index, path or URL"
        )

    def close(self) -> None:
        """Stop in reverse order: inference, capture (releases devices), publisher (closes sockets)."""
        if self.worker is not None:
            self.worker.stop()
        for source in self.sources:
            source.stop()
        if self.publisher is not None:
            self.publisher.close()

    def __enter__(self) -> LivePipeline:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- running --------------------------------------------------------------------------
    def run(self, on_status=None, stop: threading.Event | None = None) -> dict:
        """Publish status/meta every interval until `stop`, `seconds`, or the end of the media.
        Returns the last status."""
        stop = stop or threading.Event()
        interval = self.config.status_interval
        next_status = time.monotonic() + interval
        self._publish_meta()
        while not stop.is_set() and not self.worker.done.is_set():
            now = time.monotonic()
            if self.config.seconds is not None and now - self.started_at >= self.config.seconds:
                break
            if self.audio is not self.video and self.audio.finished.is_set():
                break  # the microphone is gone; heatmaps without sound would mislead
            if now >= next_status:
                next_status += interval
                status = self._publish_status()
                self._publish_meta()
                if on_status is not None:
                    on_status(status)
            stop.wait(0.05)  # 20 Hz polling keeps Ctrl-C and --seconds prompt at no cost
        status = self._publish_status()
        return status

    # --- status and meta ------------------------------------------------------------------
    def status(self) -> dict:
        worker, pub = self.worker, self.publisher
        frames_in = sum(s.stats.frames_in for s in self.sources)
        samples_in = sum(s.stats.samples_in for s in self.sources)
        uptime = time.monotonic() - self.started_at
        errors = [s.last_error for s in self.sources if s.last_error] + list(worker.errors) + list(pub.errors)
        return {
            "stream": self.config.worker.stream,
            "uptime_s": round(uptime, 3),
            "device": worker.meta()["device"],
            "fps_in": round(self._rates["in"].rate(frames_in), 2),
            "fps_out": round(self._rates["out"].rate(worker.stats.inferences), 2),
            "audio_in_hz": round(self._rates["audio"].rate(samples_in), 1),
            "rates_window_s": round(self._rates["audio"].span, 3),  # what the three rates above averaged over
            "cpu": round((time.process_time() - self._cpu0) / max(uptime, 1e-9), 3),
            "counters": {
                "frames_in": frames_in,
                "samples_in": samples_in,
                "inferences": worker.stats.inferences,
                "frames_skipped": worker.stats.frames_skipped,
                "hops_dropped": worker.stats.hops_dropped,
                "audio_short": worker.localizer.audio_short,
                "audio_stale": worker.stats.audio_stale,
                "source_drops": sum(s.stats.drops for s in self.sources),
                "overflows": sum(s.stats.overflows for s in self.sources),
                "audio_gaps": sum(s.stats.gaps for s in self.sources),
                "reconnects": sum(s.stats.reconnects for s in self.sources),
                "publish_dropped": pub.dropped,
                "published": pub.sent,
                "published_latest": pub.latest_sent,
                "errors": worker.stats.errors + sum(s.error_count for s in self.sources),
            },
            "latency_ms": {**worker.latency(), "publish": pub.queue_latency.summary(),
                           "capture_to_publish": pub.capture_to_publish.summary()},
            "last_error": errors[-1] if errors else None,
        }

    def _publish_status(self) -> dict:
        status = self.status()
        self.last_status = status
        self.publisher.publish("status", None, status)
        return status

    def meta(self) -> dict:
        return {
            "stream": self.config.worker.stream,
            "model": {"id": self.model_id, **self.model_info},
            "sources": [s.describe() for s in self.sources],
            **self.worker.meta(),
        }

    def _publish_meta(self) -> None:
        self.publisher.publish("meta", self.config.worker.stream, self.meta())


def status_line(status: dict) -> str:
    """One human line per second for the terminal."""
    lat = status["latency_ms"]["capture_to_publish"]
    c = status["counters"]

    def ms(value):
        return "-" if value is None else f"{value:.0f}"

    return (
        f"[{status['uptime_s']:7.1f} s] in {status['fps_in']:5.1f} fps | out {status['fps_out']:5.1f}/s | "
        f"capture->publish p50 {ms(lat['p50'])} ms p99 {ms(lat['p99'])} ms | "
        f"skipped {c['frames_skipped']} dropped {c['hops_dropped']} | overflows {c['overflows']} | "
        f"reconnects {c['reconnects']} | cpu {status['cpu'] * 100:.0f}% | {status['device']}"
        + (f" | {status['last_error']}" if status.get("last_error") else "")
    )
