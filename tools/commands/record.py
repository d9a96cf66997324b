"""`soundlens record --connect ADDR -o run.mcap`: every soundlens.v1 message into an MCAP file."""

from __future__ import annotations

import threading
import time

from soundlens.models.errors import SoundLensError


def add_client_security(parser) -> None:
    parser.add_argument("--curve-server-key", metavar="KEY|FILE", default=None,
                        help="the publisher's CURVE public key (z85 text or its server.key file)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback --connect address without CURVE (clear text)")


def topic_prefixes(values) -> tuple[str, ...]:
    """--topics a,b or --topics a b: prefixes; a bare kind (heatmap) or kind.stream means
    soundlens.v1.<it>."""
    # numpy, zmq: not for --help
    from soundlens.realtime import wire

    if not values:
        return (wire.TOPIC_ROOT,)
    out = []
    for value in values:
        for item in str(value).split(","):
            item = item.strip()
            if not item:
                continue
            if not item.isascii():
                raise SoundLensError(f"--topics: {item!r} is not ASCII; topics look like "
                                     "soundlens.v1.heatmap.cam0")
            out.append(item if item.startswith("soundlens.") else wire.TOPIC_ROOT + item)
    return tuple(out) or (wire.TOPIC_ROOT,)


def add_arguments(parser) -> None:
    parser.add_argument("--connect", metavar="ADDR", default="tcp://127.0.0.1:5555",
                        help="publisher address, as given to 'soundlens live --publish' (default "
                             "tcp://127.0.0.1:5555)")
    parser.add_argument("-o", "--out", required=True, metavar="RUN.mcap", help="MCAP file to write")
    parser.add_argument("--topics", nargs="+", default=None, metavar="PREFIX",
                        help="topic prefixes to record, e.g. 'tracks peaks.cam0' or full names (default: all "
                             "of soundlens.v1)")
    parser.add_argument("--seconds", type=float, default=None, metavar="S", help="stop after S seconds")
    add_client_security(parser)
    parser.add_argument("--max-queue-mb", type=float, default=64.0, metavar="MB",
                        help="messages waiting for the disk; beyond it new ones are dropped and "
                             "counted (default 64)")
    parser.add_argument("--flush", type=float, default=1.0, metavar="S",
                        help="write a chunk at least every S seconds: at most this much is lost "
                             "if the recorder is killed (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def run(args) -> int:
    # zmq, mcap and the live command's module: not for --help
    from soundlens.realtime.recording import Recorder, RecorderConfig
    from soundlens.tools.commands.live import stop_on_signals

    if args.seconds is not None and args.seconds <= 0:
        raise SoundLensError(f"--seconds must be > 0, got {args.seconds}")
    if args.max_queue_mb <= 0 or args.flush <= 0:
        raise SoundLensError("--max-queue-mb and --flush must be > 0")
    config = RecorderConfig(address=args.connect, output=args.out, topics=topic_prefixes(args.topics),
                            curve_server_key=args.curve_server_key, insecure=args.insecure,
                            max_queue_bytes=int(args.max_queue_mb * (1 << 20)), flush_s=args.flush)
    stop = threading.Event()
    with stop_on_signals(stop):
        recorder = Recorder(config).start()
        print(f"soundlens record: {args.connect} -> {args.out} ({', '.join(config.topics)}); Ctrl-C stops",
              flush=True)
        started = time.monotonic()
        next_line = started + 1.0
        try:
            while not stop.wait(0.05):
                now = time.monotonic()
                if args.seconds is not None and now - started >= args.seconds:
                    break
                if recorder.failed.is_set():
                    break
                if not args.quiet and now >= next_line:
                    next_line += 1.0
                    s = recorder.stats
                    print(f"[{now - started:6.1f} s] {s.written} messages, {s.bytes_written / 1e6:.1f} MB, "
                          f"{s.dropped} dropped", flush=True)
        finally:
            recorder.close()
    s = recorder.stats
    print(f"soundlens record: {s.written} messages ({s.bytes_written / 1e6:.2f} MB) in {len(s.topics)} "
          f"topics -> {args.out}; {s.dropped} dropped", flush=True)
    if recorder.error:
        raise SoundLensError(f"{recorder.error}; the file is readable up to its last complete chunk (at most "
                             f"--flush {args.flush:g} s before the error; 'soundlens replay' plays "
                             "it): free some space or record elsewhere")
    return 0
