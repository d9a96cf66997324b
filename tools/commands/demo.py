"""`soundlens demo`: the live system end to end on the model that ships with the repo.

A procedural scene video (moving shapes, one of them sounding at a time; training.synth) is
streamed through the live pipeline at real time, published over ZeroMQ on loopback and shown
in the viewer when there is a display. A subscriber in this process checks every heatmap
against the scene's ground truth (is the peak inside the sounding object's box?) and prints,
every second, heatmaps/s, latency and the hit rate. At the end it writes into --out:

* demo.mp4: the scene with the received heatmaps, peaks and the true box, and its sound;
* snapshot.png: one frame of that overlay;
* heatmaps.jsonl: every received heatmap's time, peaks, truth and verdict;
* summary.json: the figures printed at the end.
"""

from __future__ import annotations

import json
import threading
import time
from argparse import Namespace
from dataclasses import asdict, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
from soundlens import models
from soundlens.models.errors import SoundLensError
from soundlens.realtime.publisher import PublisherConfig, is_loopback
from soundlens.realtime.subscriber import Subscriber
from soundlens.realtime.wire import topic
from soundlens.training.metrics.pointing import peak_in_box

DEFAULT_PUBLISH = "tcp://127.0.0.1:5555"


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="out/demo",
                        help="folder for demo.mp4, snapshot.png, heatmaps.jsonl, summary.json")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="length of the scene in seconds (default 20)")
    parser.add_argument("--model", default="default", metavar="CKPT|NAME",
                        help="checkpoint or shipped name (default)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="inference device (default: cuda when available)")
    parser.add_argument("--no-view", action="store_true",
                        help="do not open the viewer even if there is a display")
    parser.add_argument("--seed", type=int, default=6,
                        help="which procedural scene (default 6: three objects)")
    parser.add_argument("--size", type=int, default=256, help="frame size in pixels (default 256)")
    parser.add_argument("--hop", type=float, default=0.1, help="seconds between heatmaps (default 0.1)")
    parser.add_argument("--publish", metavar="ADDR", default=DEFAULT_PUBLISH,
                        help="loopback ZeroMQ address to publish on, so 'soundlens view' or a "
                             f"robot can watch too (default {DEFAULT_PUBLISH}; a free port is "
                             "taken if it is busy)")
    parser.add_argument("--quiet", action="store_true", help="no per-second lines")


class Judge:
    """Receives heatmaps (subscriber listener thread) and scores them against the scene's truth."""

    def __init__(self, source, window_s: float):
        self.source = source
        self.window_s = window_s
        self.lock = threading.Lock()
        self.received: list[dict] = []  # per heatmap: t, its Localization, box, judged, hit, latency
        self._printed = 0

    def __call__(self, msg, recv_ns: int) -> None:
        loc = msg.localization()
        t = loc.frame.media_s
        truth = self.source.truth(t)
        segment = self.source.video.segment_at(t % self.source.video.seconds)
        # Judge a heatmap when a visible object sounds and the audio window is mostly its sound.
        judged = bool(truth["box"] is not None and loc.peaks and segment.start <= t - self.window_s / 2)
        hit = bool(peak_in_box(loc.peaks[0].x, loc.peaks[0].y, truth["box"])) if judged else None
        chance = None
        if truth["box"] is not None:
            x1, y1, x2, y2 = truth["box"]
            chance = max(0.0, (x2 - x1) * (y2 - y1)) / (loc.frame.width * loc.frame.height)
        row = {
            "t": t, "recv_ns": recv_ns, "latency_ms": (recv_ns - loc.timing.capture_ns) / 1e6,
            "loc": replace(loc, heatmap=np.array(loc.heatmap)),  # a copy: the message's buffer is not ours
            "box": truth["box"], "sounding": truth["sounding"], "judged": judged, "hit": hit,
            "chance": chance if judged else None,
        }
        with self.lock:
            self.received.append(row)

    def rows(self) -> list[dict]:
        with self.lock:
            return list(self.received)

    def figures(self, rows: list[dict]) -> dict:
        judged = [r for r in rows if r["judged"]]
        hits = sum(r["hit"] for r in judged)
        return {
            "heatmaps": len(rows),
            "judged": len(judged),
            "hits": hits,
            "hit_rate": hits / len(judged) if judged else None,
            "chance": float(np.mean([r["chance"] for r in judged])) if judged else None,
            "latency_ms_p50": float(np.median([r["latency_ms"] for r in rows])) if rows else None,
        }

    def second_line(self, status: dict) -> str:
        rows = self.rows()
        new, self._printed = rows[self._printed :], len(rows)
        now = self.figures(rows)
        this = self.figures(new)
        lat = "-" if this["latency_ms_p50"] is None else f"{this['latency_ms_p50']:.0f} ms"
        rate = "-" if now["hit_rate"] is None else f"{now['hit_rate'] * 100:.0f}%"
        sec = f"{this['hits']}/{this['judged']}" if this["judged"] else "-"
        chance = "" if now["chance"] is None else f" (chance {now['chance'] * 100:.0f}%)"
        return (f"[{status['uptime_s']:5.1f} s] {len(new):3d} heatmaps/s | latency {lat} | hits this second "
                f"{sec} | hit rate {rate} over {now['judged']}{chance} | {status['device']}")


def _build(args, model, address: str):
    # torch and the procedural benchmark load when the demo runs, not for `soundlens demo --help`.
    from soundlens.realtime.pipeline import LiveConfig, LivePipeline
    from soundlens.realtime.sources import SyntheticConfig, SyntheticSource
    from soundlens.realtime.worker import WorkerConfig
    from soundlens.tools.commands.live import audio_buffer_seconds
    from soundlens.training.synth import SceneConfig, SynthVideo

    video = SynthVideo(args.seconds, seed=args.seed, config=SceneConfig(image_size=args.size))
    source = SyntheticSource(video, SyntheticConfig(realtime=True, sample_rate=model.audio_preset.sample_rate,
                                                    audio_seconds=audio_buffer_seconds(model)))
    config = LiveConfig(
        worker=WorkerConfig(hop=args.hop, device=args.device, stream="cam0", peaks=3, preview=True,
                            preview_width=max(320, args.size), preview_fps=30.0, jpeg_quality=90),
        publisher=PublisherConfig(address=address),
    )
    return source, LivePipeline(model, source, source, config, model_info=models.describe(model),
                                model_id=str(args.model))


def start_pipeline(args, model):
    """(source, started pipeline); the default address falls back to a free port when busy."""
    source, pipeline = _build(args, model, args.publish)
    try:
        pipeline.start()
    except SoundLensError as err:
        if args.publish != DEFAULT_PUBLISH or "cannot bind" not in str(err):
            raise
        print(f"soundlens demo: {DEFAULT_PUBLISH} is busy; taking a free port", flush=True)
        source, pipeline = _build(args, model, "tcp://127.0.0.1:*")  # sources run once: new ones
        pipeline.start()
    return source, pipeline


def check_args(args) -> None:
    if args.seconds <= 0:
        raise SoundLensError(f"--seconds must be > 0, got {args.seconds}")
    if args.hop < 0:
        raise SoundLensError(f"--hop must be >= 0 seconds, got {args.hop}")
    if args.size < 64 or args.size % 2:
        raise SoundLensError(f"--size must be an even number of pixels >= 64, got {args.size}")
    if not is_loopback(args.publish):
        raise SoundLensError(f"--publish {args.publish}: the demo publishes on loopback only; "
                             "use 'soundlens live --synthetic --publish ...' to reach other machines")


def load_model(name: str):
    try:
        return models.load(name)
    except SoundLensError as err:
        if name == "default":
            raise SoundLensError(
                f"{err}. The shipped model (models/weights/default.safetensors) is missing from "
                "this checkout; give a checkpoint with --model CKPT.safetensors") from None
        raise


def run(args) -> int:
    check_args(args)
    # Qt (the viewer) and the live command's helpers load when the demo runs, not for --help.
    from soundlens.realtime.viewer import display_available
    from soundlens.tools.commands.live import run_with_viewer, stop_on_signals

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    view = not args.no_view and display_available()
    model = load_model(args.model)
    stop = threading.Event()
    with stop_on_signals(stop):
        source, pipeline = start_pipeline(args, model)
        judge = Judge(source, model.audio_preset.input_seconds)
        heat_topic = topic("heatmap", "cam0")
        try:
            with Subscriber(pipeline.publisher.address, topics=(heat_topic,), listener=judge):
                print(f"soundlens demo: a {args.seconds:g} s procedural scene (seed {args.seed}) "
                      f"at real time -> {pipeline.publisher.address} ({pipeline.worker.meta()['device']}, "
                      f"model {args.model}); "
                      + ("viewer window open" if view else "no display: writing the overlay video")
                      + "; Ctrl-C stops", flush=True)
                on_status = None if args.quiet else (lambda s: print(judge.second_line(s), flush=True))
                if view:
                    viewer_args = Namespace(stream="cam0", opacity=0.75, snapshots=str(out),
                                            curve_secret=None)
                    run_with_viewer(pipeline, viewer_args, on_status, stop)
                else:
                    pipeline.run(on_status=on_status, stop=stop)
                pipeline.worker.stop()
                time.sleep(0.3)  # the last heatmaps in flight on loopback
        finally:
            pipeline.close()
    rows = judge.rows()
    if not rows:
        raise SoundLensError("no heatmap arrived from the pipeline; see the lines above for its last error")
    figures = judge.figures(rows)
    write_outputs(out, source, rows, figures, args)
    rate = "n/a" if figures["hit_rate"] is None else f"{figures['hit_rate'] * 100:.0f}%"
    chance = "" if figures["chance"] is None else f" (chance: {figures['chance'] * 100:.0f}%)"
    print(f"soundlens demo: {figures['heatmaps']} heatmaps; peak inside the sounding object in "
          f"{figures['hits']}/{figures['judged']} judged = {rate}{chance}; wrote {out / 'demo.mp4'}, "
          f"{out / 'snapshot.png'}, {out / 'heatmaps.jsonl'}", flush=True)
    return 0


def write_outputs(out: Path, source, rows: list[dict], figures: dict, args) -> None:
    import cv2  # OpenCV and PyAV (the writer): only once there is something to write
    from soundlens.realtime.analyze import OverlayWriter
    from soundlens.realtime.overlay import OverlayPainter

    video = source.video
    fps = video.fps
    times = np.array([r["t"] for r in rows])
    order = np.argsort(times, kind="stable")
    rows = [rows[i] for i in order]
    times = times[order]
    best = max((i for i, r in enumerate(rows) if r["hit"]), default=len(rows) - 1,
               key=lambda i: (rows[i]["t"] > video.seconds * 0.5, rows[i]["t"]))
    snapshot_frame = int(round(rows[best]["t"] * fps)) % video.n_frames

    results = [replace(r["loc"], peaks=r["loc"].peaks[:1]) for r in rows]
    painter = OverlayPainter()
    writer = OverlayWriter(out / "demo.mp4", video.width, video.height, rate=_fraction(fps),
                           audio_rate=video.sample_rate, audio_layout="mono")
    try:
        for i in range(video.n_frames):
            # newest heatmap of this frame or before
            k = int(np.searchsorted(times, i / fps + 1e-6, side="right")) - 1
            image = painter.draw_result(video.frame(i), results[k] if k >= 0 else None)
            truth = video.truth(i)
            if truth["box"] is not None:
                x1, y1, x2, y2 = (int(round(v)) for v in truth["box"])
                cv2.rectangle(image, (x1, y1), (x2, y2), (60, 255, 60), 1, lineType=cv2.LINE_AA)
            writer.write_video(image, i, _fraction(1 / fps))
            if i == snapshot_frame:
                cv2.imwrite(str(out / "snapshot.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        writer.write_audio_array(video.audio())
    finally:
        writer.close()
    with (out / "heatmaps.jsonl").open("w", encoding="utf-8") as log:
        for r in rows:
            peaks = [asdict(p) for p in r["loc"].peaks]
            log.write(json.dumps({"time": round(r["t"], 6), "peaks": peaks,
                                  "scores": [p["score"] for p in peaks], "truth_box": r["box"],
                                  "sounding_class": r["sounding"], "judged": r["judged"], "hit": r["hit"],
                                  "latency_ms": round(r["latency_ms"], 2)},
                                 separators=(",", ":")) + "\n")
    summary = {**figures, "seconds": args.seconds, "seed": args.seed, "model": args.model, "hop": args.hop}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def _fraction(value: float) -> Fraction:
    return Fraction(value).limit_denominator(100000)
