"""`soundlens live`: camera/video/synthetic + microphone -> heatmaps published over ZeroMQ (soundlens.v1)."""

from __future__ import annotations

import contextlib
import signal
import threading

from soundlens import models
from soundlens.models.errors import SoundLensError
from soundlens.tools.commands import add_backend_argument
from soundlens.tools.commands.view import add_viewer_arguments, check_viewer_args, viewer_config


def add_source_arguments(parser) -> None:
    """Flags shared with `soundlens bench live`: where frames and audio come from, and pacing."""
    parser.add_argument("--mic", metavar="DEVICE", default=None,
                        help="microphone (PortAudio index, name, or 'default'); with --video, replaces "
                             "the file's audio")
    parser.add_argument("--loop", action="store_true", help="replay the video (or synthetic clip) forever")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_true", default=True,
                      help="files: play at their own speed (default)")
    pace.add_argument("--fast", dest="realtime", action="store_false",
                      help="files: as fast as the model goes, every hop processed once (no --mic)")
    parser.add_argument("--seed", type=int, default=0, help="--synthetic: which procedural clip")
    parser.add_argument("--synthetic-seconds", type=float, default=60.0, metavar="S",
                        help="--synthetic: clip length (default 60; --loop repeats it)")


def add_pipeline_arguments(parser) -> None:
    parser.add_argument("--publish", metavar="ADDR", default="tcp://127.0.0.1:5555",
                        help="ZeroMQ address to bind: tcp://HOST:PORT or ipc:///path (default "
                             "tcp://127.0.0.1:5555)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback --publish address without CURVE encryption")
    parser.add_argument("--curve-secret", metavar="FILE", default=None,
                        help="server CURVE certificate (.key_secret, from zmq.auth.create_certificates)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="inference device (default: cuda when available)")
    add_backend_argument(parser)
    parser.add_argument("--stream", default="cam0", help="stream name in the topics (default cam0)")
    parser.add_argument("--peaks", type=int, default=3, help="peaks published per heatmap (default 3)")
    parser.add_argument("--preview", action="store_true",
                        help="also publish a JPEG of each frame used (<= 10 Hz)")
    parser.add_argument("--seconds", type=float, default=None, metavar="S", help="stop after S seconds")
    add_track_arguments(parser)


def add_track_arguments(parser) -> None:
    """Tracks, directions and activity (docs/protocol.md §4.5)."""
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument("--intrinsics", metavar="FILE", default=None,
                        help="camera calibration (OpenCV YAML/XML or JSON: camera_matrix, "
                             "distortion_coefficients): tracks get azimuth/elevation in degrees")
    camera.add_argument("--hfov", type=float, default=None, metavar="DEG",
                        help="horizontal field of view of a pinhole camera, for track directions "
                             "without a calibration")
    parser.add_argument("--silence-db", type=float, default=-50.0, metavar="DB",
                        help="audio windows quieter than this (dBFS RMS) are silence: no track is "
                             "born from them (default -50)")
    parser.add_argument("--on-screen-threshold", type=float, default=None, metavar="SIM",
                        help="cosine similarity from which a sound counts as on screen (default: "
                             "the method's own)")
    parser.add_argument("--track-birth", type=int, default=3, metavar="N",
                        help="consecutive heatmaps a peak must persist before its track gets "
                             "an id (default 3)")
    parser.add_argument("--track-death", type=int, default=5, metavar="M",
                        help="consecutive heatmaps without its peak after which a track ends (default 5)")
    parser.add_argument("--track-gate", type=float, default=0.15, metavar="F",
                        help="farthest a peak may move between heatmaps, fraction of the frame "
                             "diagonal (default 0.15)")
    parser.add_argument("--track-min-score", type=float, default=0.5, metavar="S",
                        help="weakest peak score (0-1) that feeds a track (default 0.5)")


def track_config(args):
    """(TrackerConfig, CameraModel or None) from the flags of add_track_arguments."""
    # realtime (numpy, zmq) only once the command runs, not for --help
    from soundlens.realtime.tracks import CameraModel, TrackerConfig, load_intrinsics

    tracker = TrackerConfig(birth_frames=args.track_birth, death_misses=args.track_death,
                            gate=args.track_gate, min_score=args.track_min_score).check()
    camera = None
    if args.intrinsics:
        camera = load_intrinsics(args.intrinsics)
    elif args.hfov is not None:
        camera = CameraModel.from_hfov(args.hfov)
    return tracker, camera


def add_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--camera", metavar="N", help="OpenCV camera: index, device path or stream URL")
    source.add_argument("--video", metavar="FILE", help="video file; its own audio unless --mic is given")
    source.add_argument("--synthetic", action="store_true",
                        help="the procedural benchmark video (with ground truth)")
    parser.add_argument("--model", required=True, metavar="CKPT|NAME",
                        help="SoundLens checkpoint (.safetensors) or shipped model name")
    parser.add_argument("--hop", type=float, default=0.1,
                        help="seconds between heatmaps (0: every new frame)")
    add_source_arguments(parser)
    add_pipeline_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no status line")
    parser.add_argument("--view", action="store_true",
                        help="also open the viewer window on the published stream (turns on --preview; "
                             "needs a display)")
    add_viewer_arguments(parser)


def check_args(args) -> None:
    if args.hop < 0:
        raise SoundLensError(f"--hop must be >= 0 seconds, got {args.hop}")
    if args.seconds is not None and args.seconds <= 0:
        raise SoundLensError(f"--seconds must be > 0, got {args.seconds}")
    if not args.realtime and args.mic is not None:
        raise SoundLensError("--fast cannot be used with --mic: a microphone runs in real time; "
                             "drop one of them")
    if not args.realtime and getattr(args, "camera", None) is not None:
        raise SoundLensError("--fast is for files and --synthetic; a camera runs in real time")
    if args.loop and getattr(args, "camera", None) is not None:
        raise SoundLensError("--loop is for --video and --synthetic")


def build_sources(args, sample_rate: int, audio_seconds: float):
    """(video source, audio source) from the flags; they may be the same object."""
    # the sources (cv2, PyAV) only once the command runs
    from soundlens.realtime.sources import (
        CameraConfig,
        CameraSource,
        MicrophoneConfig,
        MicrophoneSource,
        SyntheticConfig,
        SyntheticSource,
        VideoFileConfig,
        VideoFileSource,
    )
    from soundlens.realtime.sources.camera import parse_device
    from soundlens.realtime.sources.microphone import parse_mic

    mic = args.mic is not None
    if getattr(args, "camera", None) is not None:
        video = CameraSource(CameraConfig(device=parse_device(args.camera)))
    elif getattr(args, "video", None):
        video = VideoFileSource(VideoFileConfig(path=args.video, realtime=args.realtime, loop=args.loop,
                                                audio=not mic, sample_rate=sample_rate,
                                                audio_seconds=audio_seconds))
    else:
        from soundlens.training.synth import SynthVideo  # the procedural benchmark is heavy: only when used

        video = SyntheticSource(SynthVideo(args.synthetic_seconds, seed=args.seed),
                                SyntheticConfig(realtime=args.realtime, loop=args.loop,
                                                sample_rate=sample_rate, audio_seconds=audio_seconds))
    if mic:
        audio = MicrophoneSource(MicrophoneConfig(device=parse_mic(args.mic), sample_rate=sample_rate,
                                                  seconds=audio_seconds))
    elif video.audio is not None:
        audio = video
    else:
        raise SoundLensError("a camera gives no sound: add --mic DEVICE (or --mic default)")
    return video, audio


def pipeline_config(args, hop: float):
    # the pipeline (torch, cv2) only once the command runs
    from soundlens.realtime.pipeline import LiveConfig
    from soundlens.realtime.publisher import PublisherConfig
    from soundlens.realtime.worker import WorkerConfig

    if args.peaks < 0:
        raise SoundLensError(f"--peaks must be >= 0, got {args.peaks}")
    tracker, camera = track_config(args)
    return LiveConfig(
        worker=WorkerConfig(hop=hop, device=args.device, backend=args.backend, stream=args.stream,
                            peaks=args.peaks, preview=args.preview, silence_db=args.silence_db,
                            on_screen_threshold=args.on_screen_threshold, tracker=tracker, camera=camera),
        publisher=PublisherConfig(address=args.publish, insecure=args.insecure,
                                  curve_secret_file=args.curve_secret),
        seconds=args.seconds,
    )


def audio_buffer_seconds(model) -> float:
    """Ring size: the model's window plus room for a late reader (LVS needs 10 s, EZ-VSL 3 s)."""
    return max(2 * model.audio_preset.input_seconds, model.audio_preset.input_seconds + 4.0)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event):
    """SIGINT/SIGTERM set `stop` instead of raising, so shutdown runs in order and exits 0."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args) -> int:
    # the pipeline (torch, cv2) only once the command runs, not for --help
    from soundlens.realtime.pipeline import LivePipeline, status_line
    from soundlens.realtime.wire import WireError, check_stream

    check_args(args)
    try:
        check_stream(args.stream)
    except WireError as err:
        raise SoundLensError(f"--stream: {err}") from None
    if args.view:
        # PyQt5 only with --view
        from soundlens.realtime.viewer import display_available

        check_viewer_args(args)
        if not display_available():
            raise SoundLensError("--view needs a display (DISPLAY is unset or Qt cannot open it); "
                                 "drop --view and run 'soundlens view --connect ADDR' where there is one, or "
                                 "use 'xvfb-run -a'")
        args.preview = True  # the viewer shows the frames the heatmaps were computed on
    stop = threading.Event()
    with stop_on_signals(stop):
        model = models.load(args.model)
        if stop.is_set():
            return 0
        video, audio = build_sources(args, model.audio_preset.sample_rate, audio_buffer_seconds(model))
        pipeline = LivePipeline(model, video, audio, pipeline_config(args, args.hop),
                                model_info=models.describe(model), model_id=str(args.model))
        with pipeline:
            print(f"soundlens live: {video.kind} {video.name} -> {pipeline.publisher.address} "
                  f"(stream {args.stream}, {pipeline.worker.meta()['device']}); Ctrl-C stops", flush=True)
            on_status = None if args.quiet else (lambda s: print(status_line(s), flush=True))
            if args.view:
                status = run_with_viewer(pipeline, args, on_status, stop)
            else:
                status = pipeline.run(on_status=on_status, stop=stop)
            mic_gone = audio is not video and audio.finished.is_set()
    c = status["counters"]
    print(f"soundlens live: stopped after {status['uptime_s']:.1f} s: {c['inferences']} heatmaps, "
          f"{c['frames_skipped']} frames skipped, {c['hops_dropped']} hops dropped, "
          f"{c['overflows']} overflows, {c['reconnects']} reconnects", flush=True)
    if mic_gone and not stop.is_set():
        raise SoundLensError(f"the microphone stopped: {audio.last_error}")
    return 0


def run_with_viewer(pipeline, args, on_status, stop: threading.Event) -> dict:
    """The pipeline on a thread, the viewer on this (main) thread as Qt wants; either ending ends both."""
    # PyQt5 only with --view
    from soundlens.realtime.viewer import run_viewer

    result: dict = {}

    def work():
        try:
            result["status"] = pipeline.run(on_status=on_status, stop=stop)
        except BaseException as err:  # re-raised on the main thread
            result["error"] = err

    worker = threading.Thread(target=work, name="soundlens-live", daemon=True)
    worker.start()
    config = viewer_config(args, pipeline.publisher.address)
    config.curve_server_key = args.curve_secret  # a server certificate holds its public key too
    try:
        run_viewer(config, should_close=lambda: not worker.is_alive(), on_close=stop.set)
    finally:
        stop.set()
        worker.join()
    if "error" in result:
        raise result["error"]
    return result["status"]
