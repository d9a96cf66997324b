"""record -> MCAP -> replay with real sockets, real files and real processes (SIGKILL, SIGINT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq
from rt_helpers import StandInModel
from soundlens.models.errors import SoundLensError
from soundlens.realtime import wire
from soundlens.realtime.pipeline import LiveConfig, LivePipeline
from soundlens.realtime.publisher import PublisherConfig
from soundlens.realtime.recording import (
    Recorder,
    RecorderConfig,
    RecordingReader,
    ReplayConfig,
    pack_frames,
    replay,
    unpack_frames,
)
from soundlens.realtime.sources import SyntheticConfig, SyntheticSource
from soundlens.realtime.worker import WorkerConfig
from soundlens.tools.main import main
from soundlens.training.synth import SceneConfig, SynthVideo

CLI = [sys.executable, "-m", "soundlens.tools.main"]


class LiveStream:
    """The live pipeline (stand-in model, procedural clip at real time) publishing on `address`."""

    def __init__(self, address: str, preview: bool = False):
        source = SyntheticSource(SynthVideo(60, config=SceneConfig(image_size=64)),
                                 SyntheticConfig(realtime=True))
        config = LiveConfig(worker=WorkerConfig(hop=0.05, preview=preview),
                            publisher=PublisherConfig(address=address), status_interval=0.5)
        self.pipeline = LivePipeline(StandInModel(), source, source, config)
        self.stop = threading.Event()

    def __enter__(self):
        self.pipeline.start()
        self.thread = threading.Thread(target=self.pipeline.run, kwargs={"stop": self.stop}, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)
        self.pipeline.close()


def test_frames_pack_and_unpack():
    frames = [b'{"a":1}', b"", np.arange(5, dtype=np.float32).tobytes()]
    assert unpack_frames(pack_frames(frames)) == frames
    for bad in (b"", b"\x05\x00\x00\x00", pack_frames(frames)[:-1], pack_frames(frames) + b"x"):
        with pytest.raises(SoundLensError):
            unpack_frames(bad)


def collect(address: str, seconds: float, ready: threading.Event | None = None):
    """A raw SUB socket: every message as (parts, monotonic receive time)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"soundlens.v1.")
    sock.setsockopt(zmq.RCVHWM, 100000)
    sock.connect(address)
    got = []
    if ready is not None:
        ready.set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sock.poll(50):
            got.append((sock.recv_multipart(), time.monotonic_ns()))
    sock.close(0)
    ctx.term()
    return got


def test_record_then_replay_gives_the_same_messages_with_the_same_timing(tmp_path):
    live_address = f"ipc://{tmp_path}/live.sock"
    path = tmp_path / "run.mcap"
    with LiveStream(live_address):
        with Recorder(RecorderConfig(address=live_address, output=str(path), flush_s=0.3)) as rec:
            time.sleep(3.0)
    assert rec.error is None and rec.stats.dropped == 0 and rec.stats.written > 80
    recorded = list(reader := RecordingReader(path))
    assert reader.complete and reader.problem is None and len(recorded) == rec.stats.written
    kinds = {wire.decode(m.parts()).kind for m in recorded}  # each one is a valid soundlens.v1 message
    assert {"heatmap", "peaks", "tracks", "meta", "status"} <= kinds

    replay_address = f"ipc://{tmp_path}/replay.sock"
    ready = threading.Event()
    got: list = []
    listener = threading.Thread(target=lambda: got.extend(collect(replay_address, 6.0, ready)))
    stats = {}
    bound = threading.Event()

    def run_replay():
        stats["r"] = replay(ReplayConfig(path=str(path), address=replay_address, wait_s=1.0),
                            on_bound=lambda a: bound.set())

    player = threading.Thread(target=run_replay)
    player.start()
    assert bound.wait(5)
    listener.start()
    player.join(timeout=30)
    listener.join(timeout=30)
    assert stats["r"].sent == len(recorded) and stats["r"].dropped == 0
    assert [parts for parts, _ in got] == [m.parts() for m in recorded]  # byte for byte, in order
    sent = np.array([m.log_time_ns for m in recorded], float) / 1e6
    seen = np.array([t for _, t in got], float) / 1e6
    drift = (seen - seen[0]) - (sent - sent[0])
    assert np.abs(drift).max() < 50, f"relative timing off by up to {np.abs(drift).max():.1f} ms"
    assert np.median(np.abs(drift)) < 10


def test_a_recorder_killed_with_sigkill_leaves_a_readable_file(tmp_path):
    address = f"ipc://{tmp_path}/live.sock"
    path = tmp_path / "killed.mcap"
    with LiveStream(address):
        proc = subprocess.Popen([*CLI, "record", "--connect", address, "-o", str(path), "--flush", "0.2",
                                 "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(4.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    reader = RecordingReader(path)
    messages = list(reader)
    assert not reader.complete  # no footer: it was killed
    assert len(messages) > 40, f"only {len(messages)} messages survived ({reader.problem})"
    for m in messages:
        wire.decode(m.parts())
    times = [m.log_time_ns for m in messages]
    assert times == sorted(times)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_finish_the_file(tmp_path, sig):
    address = f"ipc://{tmp_path}/live.sock"
    path = tmp_path / "stopped.mcap"
    with LiveStream(address):
        proc = subprocess.Popen([*CLI, "record", "--connect", address, "-o", str(path), "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3.0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    reader = RecordingReader(path)
    messages = list(reader)
    assert reader.complete and reader.problem is None
    assert f"{len(messages)} messages" in out
    from mcap.reader import make_reader

    with open(path, "rb") as f:  # the summary is there: indexed readers (Foxglove, the mcap CLI) open it
        summary = make_reader(f).get_summary()
    assert summary.statistics.message_count == len(messages)


def test_a_full_queue_drops_and_counts_instead_of_growing(tmp_path):
    address = f"ipc://{tmp_path}/live.sock"
    with LiveStream(address):
        with Recorder(RecorderConfig(address=address, output=str(tmp_path / "tiny.mcap"),
                                     max_queue_bytes=16)) as rec:
            time.sleep(1.5)
    assert rec.stats.received > 10 and rec.stats.dropped == rec.stats.received and rec.stats.written == 0


def test_connect_and_bind_rules_follow_live(tmp_path, capsys):
    assert main(["record", "--connect", "tcp://192.0.2.1:5555", "-o", str(tmp_path / "a.mcap"), "--seconds",
                 "1"]) == 2
    assert "--insecure" in capsys.readouterr().err
    assert main(["record", "--connect", "tcp://127.0.0.1:5555", "-o", str(tmp_path / "a.txt")]) == 2
    assert "ending in .mcap" in capsys.readouterr().err
    path = tmp_path / "x.mcap"
    path.write_bytes(b"\x89MCAP0\r\n")
    assert main(["replay", str(path), "--publish", "tcp://0.0.0.0:5599", "--wait", "0"]) == 2
    assert "--curve-secret" in capsys.readouterr().err
    (tmp_path / "no.mcap").write_bytes(b"not an mcap file")
    assert main(["replay", str(tmp_path / "no.mcap")]) == 2
    assert "not an MCAP file" in capsys.readouterr().err
    assert main(["replay", str(path), "--rate", "0"]) == 2


def test_replay_cli_loops_and_stops_on_sigint(tmp_path):
    live = f"ipc://{tmp_path}/live.sock"
    path = tmp_path / "run.mcap"
    with LiveStream(live):
        with Recorder(RecorderConfig(address=live, output=str(path), topics=("soundlens.v1.status",))):
            time.sleep(1.3)
    assert len(list(RecordingReader(path))) >= 2
    proc = subprocess.Popen([*CLI, "replay", str(path), "--publish", f"ipc://{tmp_path}/r.sock", "--loop",
                             "--rate", "4", "--wait", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    passes = int(out.split(" passes")[0].rsplit(", ", 1)[1])
    assert passes >= 3, out
    assert os.path.getsize(path) > 0


def test_view_plays_a_recording(qapp, tmp_path, capsys):
    import cv2

    live = f"ipc://{tmp_path}/live.sock"
    path = tmp_path / "run.mcap"
    with LiveStream(live, preview=True):
        with Recorder(RecorderConfig(address=live, output=str(path))):
            time.sleep(2.5)
    shot = tmp_path / "view.png"
    assert main(["view", str(path), "--seconds", "2.5", "--screenshot", str(shot)]) == 0
    image = cv2.imread(str(shot))
    assert image is not None and f"saved {shot}" in capsys.readouterr().out
    assert image.std() > 10  # the recorded frames and maps are drawn, not an empty window
    assert main(["view", str(tmp_path / "missing.mcap"), "--seconds", "1", "--screenshot", str(shot)]) == 2
    assert "not found" in capsys.readouterr().err
