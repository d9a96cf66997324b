"""`soundlens analyze VIDEO -o OUT.mp4`: a heatmap on every frame of a recorded video.

The same sliding window and peaks as `soundlens live` (realtime.analyze), batched; writes an
H.264 overlay video with the original sound and, with --jsonl, one JSON row per video frame.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from soundlens import models
from soundlens.models.errors import SoundLensError
from soundlens.tools.commands import add_backend_argument
from soundlens.tools.commands.live import add_track_arguments, track_config


def add_arguments(parser) -> None:
    parser.add_argument("video", metavar="VIDEO", help="video file with sound (mp4, mkv, mov, webm, ...)")
    parser.add_argument("-o", "--out", required=True, metavar="OUT.mp4",
                        help="overlay video to write (.mp4, .mov or .mkv): H.264 + the original audio")
    parser.add_argument("--jsonl", metavar="OUT.jsonl", default=None,
                        help="also write one JSON row per video frame: time, peaks (u, v, x, y, "
                             "score), scores, model")
    parser.add_argument("--model", default="default", metavar="CKPT|NAME",
                        help="SoundLens checkpoint (.safetensors) or shipped model name (default: default)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="inference device (default: cuda when available)")
    add_backend_argument(parser)
    parser.add_argument("--batch", type=int, default=8, metavar="N", help="frames per model call (default 8)")
    parser.add_argument("--hop", type=float, default=0.0, metavar="S",
                        help="seconds between heatmaps; frames in between show the last one (default "
                             "0: every frame)")
    parser.add_argument("--peaks", type=int, default=3, help="peaks per frame (default 3)")
    parser.add_argument("--crf", type=int, default=20, help="H.264 quality, lower is better (default 20)")
    parser.add_argument("--mcap", metavar="OUT.mcap", default=None,
                        help="also write the results as a recording of the live stream (heatmap, peaks, "
                             "tracks messages at the video's times): 'soundlens replay' publishes it")
    parser.add_argument("--stream", default="cam0", help="--mcap: stream name in the topics (default cam0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_track_arguments(parser)


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM (a service manager, `kill`) closes the outputs as Ctrl-C does: a playable video and whole
    JSONL lines up to that point, instead of an mp4 without its index."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args) -> int:
    if args.batch < 1:
        raise SoundLensError(f"--batch must be >= 1, got {args.batch}")
    if args.hop < 0:
        raise SoundLensError(f"--hop must be >= 0 seconds, got {args.hop}")
    if args.peaks < 0:
        raise SoundLensError(f"--peaks must be >= 0, got {args.peaks}")
    if not 0 <= args.crf <= 51:
        raise SoundLensError(f"--crf must be between 0 and 51, got {args.crf}")

    # torch, the model zoo and PyAV load once the arguments are checked, not for --help.
    from soundlens.realtime.analyze import AnalyzeConfig, analyze_video

    tracker_config, camera = track_config(args)
    model = models.load(args.model)
    config = AnalyzeConfig(batch=args.batch, hop=args.hop, device=args.device, peaks=args.peaks, crf=args.crf,
                           progress=not args.quiet, silence_db=args.silence_db, backend=args.backend)
    results = None
    if args.mcap:
        # the MCAP writer and the tracker (numpy, zmq) only with --mcap
        from soundlens.realtime.recording import ResultRecorder
        from soundlens.realtime.tracks import Tracker

        meta = {"model": {"id": str(args.model), **models.describe(model)},
                "sources": [{"kind": "video", "name": str(args.video)}]}
        results = ResultRecorder(args.mcap, args.stream, Tracker(tracker_config, camera),
                                 camera.source if camera is not None else None, meta)
        config.on_result = results.add
    try:
        with terminate_as_interrupt():
            summary = analyze_video(model, args.video, args.out, args.jsonl, config, model_id=str(args.model))
    finally:
        if results is not None:
            results.close()
    rows = f" and {summary.frames} rows to {args.jsonl}" if args.jsonl else ""
    print(f"soundlens analyze: {summary.frames} frames ({summary.seconds:.2f} s), {summary.inferences} "
          f"heatmaps on {summary.device} in {summary.wall_s:.1f} s -> {args.out} (audio "
          f"{summary.audio}){rows}", flush=True)
    return 0
