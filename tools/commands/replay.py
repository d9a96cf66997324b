"""`soundlens replay run.mcap`: republish a recording with its original timing."""

from __future__ import annotations

import threading

from soundlens.models.errors import SoundLensError
from soundlens.tools.commands.record import topic_prefixes


def add_arguments(parser) -> None:
    parser.add_argument("recording", metavar="RUN.mcap", help="a file written by 'soundlens record'")
    parser.add_argument("--publish", metavar="ADDR", default="tcp://127.0.0.1:5555",
                        help="ZeroMQ address to bind (default tcp://127.0.0.1:5555), as 'soundlens "
                             "live --publish'")
    parser.add_argument("--rate", type=float, default=1.0, metavar="R",
                        help="speed factor (2: twice as fast; default 1)")
    parser.add_argument("--loop", action="store_true", help="start again at the end, until stopped")
    parser.add_argument("--topics", nargs="+", default=None, metavar="PREFIX",
                        help="replay only these topic prefixes")
    parser.add_argument("--wait", type=float, default=1.0, metavar="S",
                        help="seconds between binding and the first message, for subscribers to "
                             "connect (default 1)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback --publish address without CURVE encryption")
    parser.add_argument("--curve-secret", metavar="FILE", default=None,
                        help="server CURVE certificate (.key_secret, from zmq.auth.create_certificates)")


def run(args) -> int:
    # zmq, mcap and the live command's module: not for --help
    from soundlens.realtime.recording import ReplayConfig, replay
    from soundlens.tools.commands.live import stop_on_signals

    if args.wait < 0:
        raise SoundLensError(f"--wait must be >= 0, got {args.wait}")
    config = ReplayConfig(path=args.recording, address=args.publish, rate=args.rate, loop=args.loop,
                          topics=topic_prefixes(args.topics), curve_secret_file=args.curve_secret,
                          insecure=args.insecure, wait_s=args.wait)
    stop = threading.Event()
    with stop_on_signals(stop):
        stats = replay(config, stop, on_bound=lambda addr: print(
            f"soundlens replay: {args.recording} -> {addr} at {args.rate:g}x; Ctrl-C stops", flush=True))
    print(f"soundlens replay: {stats.sent} messages sent, {stats.dropped} dropped, {stats.loops} passes, "
          f"at most {stats.late_ms_max:.1f} ms late", flush=True)
    return 0
