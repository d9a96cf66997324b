"""`Subscriber`: the Python client of soundlens.v1.

A receive thread drains the SUB socket without blocking and keeps only the newest message per
topic (ZeroMQ's HWM does not bound latency: messages also wait in kernel TCP buffers, so a
slow reader must drain, not read one by one). `recv(topic, timeout)` hands out that newest
message once. Every header is validated; a malformed message is counted and skipped. Sequence
jumps are counted as gaps, a new session id as a publisher restart.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from soundlens.realtime import wire
from soundlens.realtime.publisher import DEFAULT_ADDRESS, close_socket


@dataclass
class SubscriberStats:
    received: int = 0  # valid messages
    malformed: int = 0  # messages that failed wire.decode (skipped)
    gaps: int = 0  # times a topic's seq jumped forward
    lost: int = 0  # messages missing in those jumps
    restarts: int = 0  # new publisher sessions after the first
    superseded: int = 0  # valid messages replaced by a newer one before anyone recv'd them


def _server_key(key) -> bytes:
    """A CURVE public key given as z85 text/bytes or as a certificate file path."""
    if isinstance(key, (str, Path)) and Path(key).is_file():
        import zmq.auth  # CURVE only: zmq.auth (+logging, glob) stays out of the light client's start-up

        public, _ = zmq.auth.load_certificate(str(key))
        return public
    return key.encode("ascii") if isinstance(key, str) else bytes(key)


class Subscriber:
    """`with Subscriber("tcp://127.0.0.1:5555") as sub: msg = sub.recv(wire.topic("heatmap", "cam0"), 1.0)`.

    `topics` are prefixes the socket subscribes to (default: everything of soundlens.v1).
    `listener(message, recv_ns)`, if given, sees every valid message (for logging and benchmarks).
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, topics=(wire.TOPIC_ROOT,), *,
                 curve_server_key=None, rcvhwm: int = 16, listener=None):
        self.address = address
        # called on the receive thread with (message, recv monotonic ns); keep it quick
        self.listener = listener
        self.topics = tuple(topics)
        self.curve_server_key = curve_server_key
        self.rcvhwm = rcvhwm
        self.stats = SubscriberStats()
        self.errors: collections.deque[str] = collections.deque(maxlen=20)  # why messages were malformed
        self.sessions: list[str] = []  # publisher sessions seen, oldest first
        self._latest: dict[str, wire.Message] = {}
        self._fresh: set[str] = set()
        self._last_seq: dict[str, tuple[str, int]] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None

    def start(self) -> Subscriber:
        if self._thread is not None:
            return self
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
        if self.curve_server_key is not None:
            public, secret = zmq.curve_keypair()
            sock.curve_serverkey = _server_key(self.curve_server_key)
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        for prefix in self.topics:
            sock.setsockopt(zmq.SUBSCRIBE, prefix.encode("ascii"))
        sock.connect(self.address)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="soundlens-subscriber", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            batch = []
            while True:  # drain: everything queued now, newest kept per topic
                try:
                    parts = self._sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                    batch.append((parts, time.monotonic_ns()))
                except zmq.Again:
                    break
                except zmq.ZMQError as err:
                    self.errors.append(f"receive failed: {err}")
                    break
            for parts, recv_ns in batch:
                self._accept(parts, recv_ns)

    def _accept(self, parts, recv_ns: int) -> None:
        try:
            msg = wire.decode(parts)
        except wire.WireError as err:
            self.stats.malformed += 1
            self.errors.append(str(err))
            return
        except Exception as err:  # belt and braces: never let one message end the thread
            self.stats.malformed += 1
            self.errors.append(f"{type(err).__name__}: {err}")
            return
        self._track(msg)
        if self.listener is not None:
            try:
                self.listener(msg, recv_ns)
            except Exception as err:
                self.errors.append(f"listener failed: {type(err).__name__}: {err}")
        with self._cond:
            if msg.topic in self._fresh:
                self.stats.superseded += 1
            self._latest[msg.topic] = msg
            self._fresh.add(msg.topic)
            self.stats.received += 1
            self._cond.notify_all()

    def _track(self, msg: wire.Message) -> None:
        session, seq = msg.session, msg.seq
        if session not in self.sessions:
            if self.sessions:
                self.stats.restarts += 1
            self.sessions.append(session)
        last = self._last_seq.get(msg.topic)
        if last is not None and last[0] == session and seq > last[1] + 1:
            self.stats.gaps += 1
            self.stats.lost += seq - last[1] - 1
        self._last_seq[msg.topic] = (session, seq)

    def recv(self, topic: str, timeout: float | None = 1.0) -> wire.Message:
        """The newest message on `topic` (exact name) not returned before; TimeoutError if none
        arrives within `timeout` seconds (None: wait forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while topic not in self._fresh:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"no message on {topic} from {self.address} within {timeout} s")
                self._cond.wait(left if left is None else min(left, 0.5))
            self._fresh.discard(topic)
            return self._latest[topic]

    def latest(self, topic: str) -> wire.Message | None:
        """The newest message on `topic` seen so far (returned or not), without waiting."""
        with self._cond:
            return self._latest.get(topic)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._sock, self._ctx = close_socket(self._sock, self._ctx)

    def __enter__(self) -> Subscriber:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
