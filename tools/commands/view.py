"""`soundlens view --connect ADDR`: a window on a soundlens.v1 stream (frame, heatmap, peaks, status)."""

from __future__ import annotations

import threading

from soundlens.models.errors import SoundLensError


def add_viewer_arguments(parser) -> None:
    """Flags shared with `soundlens live --view`."""
    parser.add_argument("--opacity", type=float, default=0.75,
                        help="initial heatmap opacity, 0-1 (default 0.75)")
    parser.add_argument("--snapshots", metavar="DIR", default=".",
                        help="folder for 'Save snapshot' PNGs (default: the current folder)")


def add_arguments(parser) -> None:
    parser.add_argument("recording", nargs="?", default=None, metavar="RUN.mcap",
                        help="play a recording ('soundlens record', 'analyze --mcap') instead of connecting")
    parser.add_argument("--loop", action="store_true", help="with a recording: start again at its end")
    parser.add_argument("--connect", metavar="ADDR", default="tcp://127.0.0.1:5555",
                        help="publisher address, as given to 'soundlens live --publish' (default "
                             "tcp://127.0.0.1:5555)")
    parser.add_argument("--stream", default="cam0", help="stream name to show (default cam0)")
    parser.add_argument("--curve-server-key", metavar="KEY|FILE", default=None,
                        help="the publisher's CURVE public key (z85 text or its server.key file)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback --connect address without CURVE (clear text)")
    parser.add_argument("--stale", type=float, default=3.0, metavar="S",
                        help="seconds without messages before the publisher is reported lost (default 3)")
    add_viewer_arguments(parser)
    parser.add_argument("--seconds", type=float, default=None, metavar="S",
                        help="close the window after S seconds")
    parser.add_argument("--screenshot", metavar="PNG", default=None,
                        help="save the window as a PNG when it closes; without a display it "
                             "renders offscreen (use with --seconds)")


def check_viewer_args(args) -> None:
    if not 0.0 <= args.opacity <= 1.0:
        raise SoundLensError(f"--opacity must be between 0 and 1, got {args.opacity}")


def viewer_config(args, address: str):
    # PyQt5, zmq: not for --help
    from soundlens.realtime.viewer import ViewerConfig
    from soundlens.realtime.wire import WireError, check_stream

    try:
        check_stream(args.stream)
    except WireError as err:
        raise SoundLensError(f"--stream: {err}") from None
    return ViewerConfig(address=address, stream=args.stream, opacity=args.opacity,
                        snapshot_dir=args.snapshots, curve_server_key=getattr(args, "curve_server_key", None),
                        stale_after=getattr(args, "stale", 3.0))


def run(args) -> int:
    check_viewer_args(args)
    if args.seconds is not None and args.seconds <= 0:
        raise SoundLensError(f"--seconds must be > 0, got {args.seconds}")
    if args.stale <= 0:
        raise SoundLensError(f"--stale must be > 0 seconds, got {args.stale}")
    # PyQt5, zmq: not for --help
    from soundlens.realtime.recording import check_connect
    from soundlens.realtime.viewer import display_available, run_viewer

    offscreen = False
    if not display_available():
        if not args.screenshot or args.seconds is None:
            raise SoundLensError(
                "no display to open the viewer on (DISPLAY is unset or Qt cannot open it): run "
                "it on a desktop or under 'xvfb-run -a soundlens view ...', or render offscreen with "
                "--screenshot PNG --seconds S")
        offscreen = True
    if args.recording:
        return view_recording(args, offscreen)
    # `live`'s rule from the client side: off this machine only encrypted, or with an explicit --insecure.
    check_connect(args.connect, args.curve_server_key, args.insecure)
    return run_viewer(viewer_config(args, args.connect), seconds=args.seconds, screenshot=args.screenshot,
                      offscreen=offscreen)


def view_recording(args, offscreen: bool) -> int:
    """The recording replayed on a private ipc socket (replay's own timing) with the window on it."""
    # tempfile, PyQt5, zmq and mcap only to view a recording, not for --help
    import tempfile

    from soundlens.realtime.recording import RecordingReader, ReplayConfig, replay
    from soundlens.realtime.viewer import run_viewer

    RecordingReader(args.recording)  # a missing or foreign file is an error before any window opens
    with tempfile.TemporaryDirectory(prefix="soundlens-view-") as tmp:
        address = f"ipc://{tmp}/replay.sock"
        stop, failure = threading.Event(), []

        def play():
            try:
                replay(ReplayConfig(path=args.recording, address=address, loop=args.loop, wait_s=0.5), stop)
            except Exception as err:  # shown after the window closes
                failure.append(err)

        player = threading.Thread(target=play, name="soundlens-view-replay", daemon=True)
        player.start()
        config = viewer_config(args, address)
        try:
            code = run_viewer(config, seconds=args.seconds, screenshot=args.screenshot, offscreen=offscreen)
        finally:
            stop.set()
            player.join(timeout=5)
    if failure:
        raise (failure[0] if isinstance(failure[0], SoundLensError)
               else SoundLensError(f"replay failed: {failure[0]}"))
    return code
