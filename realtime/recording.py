"""soundlens.v1 messages to and from MCAP files: `soundlens record`, `soundlens replay`.

MCAP (the container ROS 2 records bags in; https://mcap.dev) holds one channel per ZeroMQ topic and
one MCAP message per ZeroMQ message, byte for byte (docs/recording.md):

* channel `topic` = the ZeroMQ topic, `message_encoding` = `soundlens.zmq-multipart`, no schema;
* message `data` = the frames after the topic (header JSON, then buffers), each as a little-endian
  uint32 length followed by its bytes, after a uint32 frame count;
* `log_time` = `publish_time` = when the recorder received it (wall clock, ns); `sequence` = the
  recorder's count.

Crash safety: the writer closes a chunk (zstd) every `chunk_bytes` or `flush_s` seconds and
flushes it to the file, so a recorder killed (SIGKILL, power loss) leaves a file whose complete
chunks `RecordingReader` reads back; only the footer and the last `flush_s` are lost.

The recorder never slows the publisher: PUB/SUB never waits for a subscriber, and the receive
thread only appends to a queue bounded in bytes; when the disk is slower than the stream the
newest messages are dropped and counted (`RecorderStats.dropped`), never buffered without bound.
"""

from __future__ import annotations

import collections
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from soundlens.models.errors import SoundLensError
from soundlens.realtime import wire
from soundlens.realtime.publisher import DEFAULT_ADDRESS, close_socket, is_loopback, load_curve_keys
from soundlens.realtime.subscriber import _server_key

ENCODING = "soundlens.zmq-multipart"
PROFILE = "soundlens.v1"


def pack_frames(frames) -> bytes:
    """Frames after the topic -> one MCAP message payload."""
    views = [memoryview(getattr(f, "buffer", f)).cast("B") for f in frames]
    out = bytearray(struct.pack("<I", len(views)))
    for view in views:
        out += struct.pack("<I", view.nbytes)
        out += view
    return bytes(out)


def unpack_frames(data: bytes) -> list[bytes]:
    """An MCAP message payload -> the frames after the topic (SoundLensError when malformed)."""
    view = memoryview(data)
    if view.nbytes < 4:
        raise SoundLensError("recorded message shorter than its frame count")
    (count,) = struct.unpack_from("<I", view, 0)
    if count > view.nbytes // 4:  # every frame needs at least its length: a corrupt count
        raise SoundLensError(f"recorded message claims {count} frames in {view.nbytes} bytes")
    frames, pos = [], 4
    for i in range(count):
        if pos + 4 > view.nbytes:
            raise SoundLensError(f"recorded message ends inside the length of frame {i}")
        (length,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if pos + length > view.nbytes:
            raise SoundLensError(f"recorded frame {i} claims {length} bytes, {view.nbytes - pos} left")
        frames.append(bytes(view[pos : pos + length]))
        pos += length
    if pos != view.nbytes:
        raise SoundLensError(f"recorded message has {view.nbytes - pos} bytes after its last frame")
    return frames


def check_connect(address: str, curve_server_key, insecure: bool, flag: str = "--connect") -> None:
    """A client follows `live`'s rule: loopback in clear, anything else only with CURVE or --insecure."""
    if curve_server_key is None and not is_loopback(address) and not insecure:
        raise SoundLensError(
            f"{flag} {address} is not loopback: give the publisher's CURVE key (--curve-server-key "
            "server.key) or pass --insecure to receive in clear text"
        )


def secure_bind(sock: zmq.Socket, address: str, curve_secret: str | None, insecure: bool) -> None:
    """`live --publish`'s rule for any binding socket: CURVE keys, loopback, or an explicit --insecure."""
    if curve_secret:
        public, secret = load_curve_keys(curve_secret)
        sock.curve_server = True
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    elif not is_loopback(address):
        if not insecure:
            raise SoundLensError(
                f"{address} is reachable from other machines: give CURVE keys (--curve-secret "
                "server.key_secret) or pass --insecure to publish in clear text"
            )
        print(f"warning: publishing unencrypted and unauthenticated on {address} (--insecure)", flush=True)


def set_client_keys(sock: zmq.Socket, curve_server_key) -> None:
    if curve_server_key is None:
        return
    public, secret = zmq.curve_keypair()
    sock.curve_serverkey = _server_key(curve_server_key)
    sock.curve_publickey = public
    sock.curve_secretkey = secret


# --- writing -------------------------------------------------------------------------------------
@dataclass
class RecorderConfig:
    address: str = DEFAULT_ADDRESS
    output: str = "run.mcap"
    topics: tuple[str, ...] = (wire.TOPIC_ROOT,)  # prefixes
    curve_server_key: str | None = None
    insecure: bool = False
    max_queue_bytes: int = 64 << 20  # received but not yet written; beyond it messages are dropped
    chunk_bytes: int = 1 << 20  # uncompressed chunk size before it is written
    flush_s: float = 1.0  # at most this much is lost when the recorder is killed
    rcvhwm: int = 1000  # ZeroMQ's own queue in front of the receive thread


@dataclass
class RecorderStats:
    received: int = 0
    written: int = 0
    dropped: int = 0  # the queue was full (disk slower than the stream)
    bytes_written: int = 0  # payload bytes
    chunks: int = 0  # flushes that wrote a chunk
    topics: dict = field(default_factory=dict)  # topic -> messages written


class Recorder:
    """`with Recorder(RecorderConfig(...)) as rec: ...`: receive on one thread, write on another."""

    def __init__(self, config: RecorderConfig):
        self.config = config
        self.stats = RecorderStats()
        self.error: str | None = None  # why writing stopped, e.g. the disk is full
        self._queue: collections.deque = collections.deque()
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ctx = self._sock = None
        self._file = None
        self._writer = None
        self._channels: dict[str, int] = {}
        self.failed = threading.Event()  # the writer hit an error (disk full...): stop recording

    def start(self) -> Recorder:
        cfg = self.config
        check_connect(cfg.address, cfg.curve_server_key, cfg.insecure)
        from mcap.writer import CompressionType, Writer  # mcap (zstd, lz4) only once a file is written

        path = Path(cfg.output)
        if path.suffix.lower() != ".mcap":
            raise SoundLensError(f"-o {path}: a recording is an MCAP file; give a name ending in .mcap")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "wb")  # closed in close(), after the writer thread ends
        except OSError as err:
            raise SoundLensError(f"cannot write {path}: {err.strerror}") from None
        self._writer = Writer(self._file, chunk_size=cfg.chunk_bytes, compression=CompressionType.ZSTD)
        self._writer.start(profile=PROFILE, library="soundlens")
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, cfg.rcvhwm)
        set_client_keys(sock, cfg.curve_server_key)
        for prefix in cfg.topics:
            sock.setsockopt(zmq.SUBSCRIBE, prefix.encode("ascii"))
        sock.connect(cfg.address)
        self._sock = sock
        self._threads = [threading.Thread(target=self._receive, name="soundlens-record-recv", daemon=True),
                         threading.Thread(target=self._write, name="soundlens-record-write", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def _receive(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        cap = self.config.max_queue_bytes
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            while True:
                try:
                    parts = self._sock.recv_multipart(flags=zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                now = time.time_ns()
                size = sum(len(p) for p in parts)
                with self._cond:
                    self.stats.received += 1
                    if self._queued_bytes + size > cap or self.failed.is_set():
                        self.stats.dropped += 1
                        continue
                    self._queue.append((parts, now))
                    self._queued_bytes += size
                    self._cond.notify()

    def _write(self) -> None:
        next_flush = time.monotonic() + self.config.flush_s
        dirty = False
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set() and time.monotonic() < next_flush:
                    self._cond.wait(0.05)
                batch = list(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
                stopping = self._stop.is_set()
            try:
                for parts, recv_ns in batch:
                    self._add(parts, recv_ns)
                    dirty = True
                if dirty and (time.monotonic() >= next_flush or stopping):
                    self._writer.flush()  # closes the chunk and hands it to the OS
                    self.stats.chunks += 1
                    dirty = False
            except (OSError, ValueError) as err:
                self.error = f"writing {self.config.output} failed: {getattr(err, 'strerror', None) or err}"
                self.failed.set()
                return
            if time.monotonic() >= next_flush:
                next_flush = time.monotonic() + self.config.flush_s
            if stopping:
                return

    def _add(self, parts, recv_ns: int) -> None:
        try:
            topic = parts[0].decode("ascii")
        except UnicodeDecodeError:
            topic = parts[0].decode("latin-1")  # recorded as received: replay sends the same bytes
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._writer.register_channel(topic, ENCODING, 0, {"protocol": PROFILE})
            self._channels[topic] = channel
        data = pack_frames(parts[1:])
        self._writer.add_message(channel, log_time=recv_ns, data=data, publish_time=recv_ns,
                                 sequence=self.stats.written)
        self.stats.written += 1
        self.stats.bytes_written += len(data)
        self.stats.topics[topic] = self.stats.topics.get(topic, 0) + 1

    def close(self) -> None:
        """Write what is queued, the footer and the summary (a complete, indexed MCAP file)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        self._sock, self._ctx = close_socket(self._sock, self._ctx)
        if self._writer is not None:
            try:
                if not self.failed.is_set():
                    self._writer.finish()
            except (OSError, ValueError) as err:
                self.error = self.error or (f"finishing {self.config.output} failed: "
                                            f"{getattr(err, 'strerror', None) or err}")
            self._writer = None
        if self._file is not None:
            try:
                self._file.close()
            except OSError as err:
                self.error = self.error or f"closing {self.config.output} failed: {err.strerror}"
            self._file = None

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class ResultRecorder:
    """Results made offline (`soundlens analyze --mcap`) written as a recording of the live stream:
    `heatmap`, `peaks` and `tracks` messages encoded by `realtime.wire`, `log_time` = the frame's media
    time, so `replay` plays them at the video's pace and every subscriber reads them unchanged."""

    def __init__(self, path: str | Path, stream: str = "cam0", tracker=None, camera: str | None = None,
                 meta: dict | None = None):
        from mcap.writer import CompressionType, Writer  # mcap (zstd, lz4) only once a file is written

        self.path = Path(path)
        if self.path.suffix.lower() != ".mcap":
            raise SoundLensError(f"--mcap {self.path}: give a name ending in .mcap")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb")  # closed in close()
        except OSError as err:
            raise SoundLensError(f"cannot write {self.path}: {err.strerror}") from None
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._writer.start(profile=PROFILE, library="soundlens")
        self.stream, self.tracker, self.camera = wire.check_stream(stream), tracker, camera
        self.session = uuid.uuid4().hex
        self.meta = meta or {}
        self._seq: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self.written = 0

    def _put(self, kind: str, header: dict, buffers: dict | None, t_ns: int) -> None:
        topic = wire.topic(kind, None if kind == "status" else self.stream)
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        mono = {**header.get("mono_ns", {}), "publish": header.get("mono_ns", {}).get("infer_end", t_ns)}
        parts = wire.encode(kind, self.stream,
                            {**header, "session": self.session, "seq": seq, "mono_ns": mono}, buffers)
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._writer.register_channel(topic, ENCODING, 0, {"protocol": PROFILE})
            self._channels[topic] = channel
        try:
            self._writer.add_message(channel, log_time=t_ns, data=pack_frames(parts[1:]), publish_time=t_ns,
                                     sequence=self.written)
        except OSError as err:
            raise SoundLensError(f"writing {self.path} failed: {err.strerror}") from None
        self.written += 1

    def add(self, loc) -> None:
        """One `Localization` (its frame's media time orders and times it)."""
        t_ns = int(round((loc.frame.media_s or 0.0) * 1e9))
        if loc.inference == 0:
            self._put("meta", {"stamp_ns": t_ns, "mono_ns": {"publish": t_ns}, **self.meta}, None, t_ns)
        self._put("heatmap", wire.result_header("heatmap", loc), {"heatmap": loc.heatmap}, t_ns)
        self._put("peaks", wire.result_header("peaks", loc), None, t_ns)
        if self.tracker is not None:
            silent = loc.activity is not None and loc.activity.silent
            tracks = self.tracker.update(loc.peaks, loc.frame.width, loc.frame.height, t_ns / 1e9,
                                         silent=silent)
            self._put("tracks", wire.tracks_header(loc, tracks, self.camera), None, t_ns)

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.finish()
                self._file.close()
            except OSError as err:
                raise SoundLensError(f"finishing {self.path} failed: {err.strerror}") from None
            finally:
                self._writer = None


# --- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recorded:
    topic: str
    frames: list  # after the topic: header, buffers
    log_time_ns: int

    def parts(self) -> list[bytes]:
        return [self.topic.encode("latin-1"), *self.frames]


class RecordingReader:
    """Messages of a recording in file order. A file cut off by a crash is read up to its last
    complete chunk: iteration then ends and `complete` is False, `problem` says where."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise SoundLensError(f"recording {self.path} not found")
        with open(self.path, "rb") as f:
            if f.read(8) != b"\x89MCAP0\r\n":
                raise SoundLensError(f"{self.path} is not an MCAP file (no MCAP magic at its start); "
                                     "record one with 'soundlens record'")
        self.complete = False
        self.problem: str | None = None
        self.count = 0

    def __iter__(self) -> Iterator[Recorded]:
        # mcap only once a recording is read: `soundlens view` of a live stream never needs it
        from mcap.records import Channel, Footer, Message
        from mcap.stream_reader import StreamReader

        channels: dict[int, Channel] = {}
        self.count, self.complete, self.problem = 0, False, None
        with open(self.path, "rb") as f:
            records = StreamReader(f, validate_crcs=True, record_size_limit=1 << 30).records
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    break
                except Exception as err:  # a truncated or corrupt tail: stop at the last complete chunk
                    self.problem = (f"{self.path} ends early or is damaged after {self.count} messages "
                                    f"({type(err).__name__}); the messages before are intact")
                    return
                if isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message):
                    channel = channels.get(record.channel_id)
                    if channel is None or channel.message_encoding != ENCODING:
                        continue  # another writer's channel: not ours to replay
                    try:
                        frames = unpack_frames(record.data)
                    except SoundLensError as err:
                        self.problem = f"message {self.count} of {self.path}: {err}"
                        continue
                    self.count += 1
                    yield Recorded(channel.topic, frames, record.log_time)
                elif isinstance(record, Footer):
                    self.complete = True


# --- replaying -----------------------------------------------------------------------------------
@dataclass
class ReplayConfig:
    path: str = "run.mcap"
    address: str = DEFAULT_ADDRESS
    rate: float = 1.0  # 2.0: twice as fast
    loop: bool = False
    topics: tuple[str, ...] = (wire.TOPIC_ROOT,)
    curve_secret_file: str | None = None
    insecure: bool = False
    wait_s: float = 1.0  # after binding, before the first message: subscribers connect (slow joiner)
    sndhwm: int = 1000


@dataclass
class ReplayStats:
    sent: int = 0
    dropped: int = 0  # ZeroMQ refused (a subscriber's queue full)
    loops: int = 0
    late_ms_max: float = 0.0  # worst lateness against the recorded timing


def replay(config: ReplayConfig, stop: threading.Event | None = None, on_bound=None) -> ReplayStats:
    """Publish a recording's messages unchanged, spaced as they were received (divided by `rate`)."""
    if not config.rate > 0:
        raise SoundLensError(f"--rate must be > 0, got {config.rate}")
    stop = stop or threading.Event()
    reader = RecordingReader(config.path)
    stats = ReplayStats()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, config.sndhwm)
        secure_bind(sock, config.address, config.curve_secret_file, config.insecure)
        try:
            sock.bind(config.address)
        except zmq.ZMQError as err:
            raise SoundLensError(f"cannot bind {config.address}: {err}; pick another "
                                 "--publish address") from None
        if on_bound is not None:
            on_bound(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        if stop.wait(config.wait_s):
            return stats
        while not stop.is_set():
            first_log = None
            start = time.monotonic()
            for msg in reader:
                if stop.is_set():
                    break
                if not msg.topic.startswith(config.topics):
                    continue
                if first_log is None:
                    first_log = msg.log_time_ns
                due = start + (msg.log_time_ns - first_log) / 1e9 / config.rate
                wait = due - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
                stats.late_ms_max = max(stats.late_ms_max, (time.monotonic() - due) * 1e3)
                try:
                    sock.send_multipart(msg.parts(), flags=zmq.NOBLOCK)
                    stats.sent += 1
                except zmq.Again:
                    stats.dropped += 1
            if reader.count == 0 and reader.problem is None:
                raise SoundLensError(f"{config.path} holds no soundlens messages")
            stats.loops += 1
            if not config.loop:
                break
        return stats
    finally:
        close_socket(sock, ctx)
