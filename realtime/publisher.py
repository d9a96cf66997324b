"""ZeroMQ PUB side of soundlens.v1: binds, numbers messages, never blocks the caller.

`publish()` only stamps a sequence number and appends to a small newest-wins queue; a
publisher thread owns the socket, stamps `mono_ns.publish`, encodes (realtime.wire) and sends
with NOBLOCK. When the queue is full the oldest message is dropped and counted, and the
subscriber sees the hole as a `seq` gap.

Each heatmap, peaks, tracks, meta and status message also goes out in its single-frame latest form
(wire.encode_latest) right after the multipart one, with the same header: a subscriber that sets
ZMQ_CONFLATE on that topic always reads the newest, whatever its pace (docs/protocol.md §1.1).
ZeroMQ's own per-subscriber drops at SNDHWM are invisible here: PUB discards silently.
"""

from __future__ import annotations

import collections
import ipaddress
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from soundlens.models.errors import SoundLensError
from soundlens.realtime import wire
from soundlens.realtime.stats import LatencyWindow

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"


def is_loopback(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.0.0.0/8, ::1 or localhost."""
    scheme, _, rest = address.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: reachable from outside
        return False


def load_curve_keys(path: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) from a ZeroMQ certificate file made by `zmq.auth.create_certificates`."""
    import zmq.auth  # CURVE only: zmq.auth (+logging, glob) stays out of every client's start-up

    path = Path(path)
    if not path.is_file():
        raise SoundLensError(
            f"CURVE key file {path} not found; create one with "
            "python -c \"import zmq.auth; zmq.auth.create_certificates('.', 'server')\""
        )
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as err:
        raise SoundLensError(f"cannot read CURVE keys from {path}: {err}") from None
    if not secret:
        raise SoundLensError(f"{path} holds only a public key; give the '.key_secret' file")
    return public, secret


def close_socket(sock, ctx) -> tuple[None, None]:
    """Close a ZeroMQ socket without lingering, then terminate its context; returns (None, None)."""
    if sock is not None:
        sock.close(0)
    if ctx is not None:
        ctx.term()
    return None, None


@dataclass
class PublisherConfig:
    address: str = DEFAULT_ADDRESS
    curve_secret_file: str | None = None  # server certificate (.key_secret): encrypts + authenticates
    insecure: bool = False  # allow a non-loopback bind without CURVE (warns)
    queue: int = 16  # messages waiting for the publisher thread; the oldest is dropped beyond it
    sndhwm: int = 16  # per-subscriber ZeroMQ queue (messages); PUB drops beyond it, silently
    latest: bool = True  # also send the single-frame latest form of heatmap, peaks, tracks, meta, status
    session: str = field(default_factory=lambda: uuid.uuid4().hex)


class Publisher:
    """`with Publisher(PublisherConfig(...)) as pub: pub.publish("heatmap", "cam0", header, buffers)`."""

    def __init__(self, config: PublisherConfig | None = None):
        self.config = config or PublisherConfig()
        self.session = self.config.session
        self.address = self.config.address  # the bound endpoint once started (resolves tcp://...:*)
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._seq: dict[str, int] = {}
        self._stop = False
        self._thread: threading.Thread | None = None
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self.sent = 0  # multipart messages handed to ZeroMQ
        self.latest_sent = 0  # single-frame latest forms handed to ZeroMQ
        self.dropped = 0  # evicted from the queue, or failed to encode (never ZeroMQ's per-subscriber drops)
        self.errors: collections.deque[str] = collections.deque(maxlen=20)
        self.queue_latency = LatencyWindow()  # publish() -> handed to ZeroMQ
        self.capture_to_publish = LatencyWindow()

    def _security(self, sock: zmq.Socket) -> None:
        cfg = self.config
        if cfg.curve_secret_file:
            public, secret = load_curve_keys(cfg.curve_secret_file)
            sock.curve_server = True
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        elif not is_loopback(cfg.address):
            if not cfg.insecure:
                raise SoundLensError(
                    f"{cfg.address} is reachable from other machines: give CURVE keys "
                    "(--curve-secret server.key_secret) or pass --insecure to publish in clear text"
                )
            message = f"publishing unencrypted and unauthenticated on {cfg.address} (--insecure)"
            warnings.warn(message, stacklevel=3)
            print(f"warning: {message}", file=sys.stderr)

    def start(self) -> Publisher:
        if self._thread is not None:
            return self
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.PUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, self.config.sndhwm)
            # Detect dead TCP peers so their queues are freed.
            sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
            self._security(sock)
            sock.bind(self.config.address)
        except zmq.ZMQError as err:
            sock.close(0)
            self._ctx.term()
            raise SoundLensError(
                f"cannot bind {self.config.address}: {err}; pick another --publish address "
                "(e.g. tcp://127.0.0.1:5556 or ipc:///tmp/soundlens.sock)"
            ) from None
        except BaseException:
            sock.close(0)
            self._ctx.term()
            raise
        self.address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="soundlens-publisher", daemon=True)
        self._thread.start()
        return self

    def publish(self, kind: str, stream: str | None, header: dict, buffers: dict | None = None) -> int:
        """Queue one message; returns its seq. Never blocks. `header` gets session and seq here."""
        key = wire.topic(kind, stream)
        now = time.monotonic_ns()
        with self._cond:
            seq = self._seq.get(key, 0)
            self._seq[key] = seq + 1
            header = {**header, "session": self.session, "seq": seq}
            self._queue.append((kind, stream, header, buffers, now))
            while len(self._queue) > self.config.queue:
                self._queue.popleft()
                self.dropped += 1
            self._cond.notify()
        return seq

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait(0.2)
                if self._stop and not self._queue:
                    return
                kind, stream, header, buffers, queued_ns = self._queue.popleft()
            try:
                self._send(kind, stream, header, buffers, queued_ns)
            except Exception as err:  # a bad message must not kill the thread
                self.dropped += 1
                self.errors.append(f"{type(err).__name__}: {err}")

    def _send(self, kind, stream, header, buffers, queued_ns) -> None:
        now = time.monotonic_ns()
        mono = dict(header.get("mono_ns", {}))
        mono["publish"] = now
        header = {**header, "mono_ns": mono}
        header.setdefault("stamp_ns", time.time_ns())  # meta/status: wall clock at publish
        parts = wire.encode(kind, stream, header, buffers)
        latest = (wire.encode_latest(kind, stream, header, buffers)
                  if self.config.latest and kind in wire.LATEST_KINDS else None)
        try:
            self._sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
            if latest is not None:
                self._sock.send(latest, flags=zmq.NOBLOCK)
                self.latest_sent += 1
        except zmq.Again:  # PUB never refuses (it drops at SNDHWM); kept for a socket type that would
            self.dropped += 1
            return
        self.sent += 1
        self.queue_latency.add_ns(now - queued_ns)
        if "capture" in mono:
            self.capture_to_publish.add_ns(now - mono["capture"])

    def close(self) -> None:
        """Send what is queued (briefly), stop the thread, close the socket and its context."""
        if self._thread is not None:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            self._thread.join(timeout=2.0)
            self._thread = None
        self._sock, self._ctx = close_socket(self._sock, self._ctx)

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
