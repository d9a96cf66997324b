"""`soundlens live` and `soundlens bench live` through tools.main, with a real checkpoint."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from rt_helpers import fixture_video
from soundlens.realtime import Subscriber, wire
from soundlens.tools.main import main


def test_live_video_publishes_until_seconds(checkpoint, tmp_path, capsys):
    address = f"ipc://{tmp_path}/live.sock"
    argv = ["live", "--video", str(fixture_video()), "--model", checkpoint, "--publish", address,
            "--hop", "0.2", "--seconds", "3", "--stream", "robot-1"]
    result = {}
    runner = threading.Thread(target=lambda: result.update(code=main(argv)))
    runner.start()
    with Subscriber(address, topics=("soundlens.v1.heatmap.robot-1",)) as sub:
        msg = sub.recv(wire.topic("heatmap", "robot-1"), timeout=20)
    runner.join(timeout=30)
    assert result == {"code": 0}
    assert msg.header["model"] == {"id": checkpoint, "method": "ezvsl"}
    assert msg.arrays["heatmap"].shape == (14, 14)  # the lite encoder: 112 px at stride 8
    out = capsys.readouterr().out
    assert "capture->publish" in out and "stopped after" in out


def test_live_synthetic_fast_ends_with_the_media(checkpoint, capsys):
    argv = ["live", "--synthetic", "--synthetic-seconds", "2", "--fast", "--hop", "0.5", "--model",
            checkpoint, "--publish", "tcp://127.0.0.1:*", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "stopped after" in out and "3 heatmaps" in out  # hops at 0.5, 1.0, 1.5 s (none at 0: no audio yet)


@pytest.mark.parametrize("argv, message", [
    (["live", "--synthetic", "--model", "no-such-model"], "checkpoint not found"),
    (["live", "--video", "/nonexistent/clip.mp4", "--model", "CKPT"], "not found"),
    (["live", "--synthetic", "--fast", "--mic", "default", "--model", "CKPT"],
     "--fast cannot be used with --mic"),
    (["live", "--camera", "0", "--fast", "--model", "CKPT"], "a camera runs in real time"),
    (["live", "--synthetic", "--model", "CKPT", "--publish", "tcp://0.0.0.0:*"], "--insecure"),
    (["live", "--synthetic", "--model", "CKPT", "--stream", "a.b"], "stream name"),
    (["live", "--synthetic", "--model", "CKPT", "--hop", "-1"], "--hop must be >= 0"),
    (["live", "--camera", "0", "--model", "CKPT"], "--mic"),
])
def test_live_errors_name_the_problem(checkpoint, capsys, argv, message):
    argv = [checkpoint if a == "CKPT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_ctrl_c_stops_cleanly_with_exit_code_0(checkpoint, tmp_path, capsys):
    """A real SIGINT to this process while `live` runs in the main thread (as from a terminal)."""
    assert threading.current_thread() is threading.main_thread()
    argv = ["live", "--synthetic", "--model", checkpoint, "--publish", f"ipc://{tmp_path}/sigint.sock",
            "--seconds", "60"]  # the limit only guards the test; SIGINT must end it long before
    before = signal.getsignal(signal.SIGINT)  # default_int_handler from a terminal; SIG_IGN under nohup
    timer = threading.Timer(2.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    try:
        code = main(argv)
    finally:
        timer.cancel()
    assert code == 0 and time.monotonic() - t0 < 20
    out = capsys.readouterr().out
    assert "stopped after" in out
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_bench_live_reports_rate_latency_and_cpu(checkpoint, tmp_path, capsys):
    out_file = tmp_path / "bench.json"
    argv = ["bench", "live", "--model", checkpoint, "--seconds", "2", "--warmup", "1", "--out", str(out_file)]
    assert main(argv) == 0
    result = json.loads(out_file.read_text())
    assert result["heatmaps_per_s"] > 0 and result["heatmaps"] > 0
    lat = result["latency_ms"]["capture_to_publish"]
    assert 0 < lat["p50"] <= lat["p99"]
    assert result["cpu"]["process_cpu_over_wall"] > 0 and result["cpu"]["cores"] >= 1
    assert result["subscriber"]["malformed"] == 0
    assert "heatmaps/s" in capsys.readouterr().out
