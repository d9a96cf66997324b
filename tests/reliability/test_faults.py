"""Faults injected into real processes: a frozen subscriber, a publisher restart, SIGTERM/SIGINT
during analyze and record, a full disk, a network camera that goes away and comes back, a
microphone suspended and removed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import CLI, VMIC, start_live, stop
from soundlens.realtime import Subscriber, wire
from soundlens.realtime.recording import RecordingReader

pytestmark = pytest.mark.reliability
HEATMAP = wire.topic("heatmap", "cam0")

FROZEN_SUBSCRIBER = r'''
import sys, time
from soundlens.realtime import Subscriber
with Subscriber(sys.argv[1]) as sub:
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        try:
            msg = sub.recv("soundlens.v1.heatmap.cam0", timeout=1.0)
        except TimeoutError:
            continue
        age_ms = (time.monotonic_ns() - msg.header["mono_ns"]["publish"]) / 1e6
        print(f"{time.monotonic():.3f} {msg.seq} {age_ms:.1f}", flush=True)
'''


def latencies(messages) -> np.ndarray:
    return np.array([(m.header["mono_ns"]["publish"] - m.header["mono_ns"]["capture"]) / 1e6
                     for m in messages])


def test_sigstopped_subscriber_does_not_slow_the_publisher(tmp_path, report):
    address = f"ipc://{tmp_path}/live.sock"
    live = start_live(address)
    seen: list = []  # (monotonic s, message) of a monitoring subscriber
    try:
        with Subscriber(address, listener=lambda m, t: seen.append((t / 1e9, m)) if m.kind == "heatmap"
                        else None) as mon:
            mon.recv(HEATMAP, timeout=60)  # the model is loaded and running
            (tmp_path / "sub.py").write_text(FROZEN_SUBSCRIBER)
            sub = subprocess.Popen([sys.executable, str(tmp_path / "sub.py"), address, "30"],
                                   stdout=subprocess.PIPE, text=True)
            time.sleep(5)
            t_stop = time.monotonic()
            sub.send_signal(signal.SIGSTOP)
            time.sleep(10)
            t_cont = time.monotonic()
            sub.send_signal(signal.SIGCONT)
            time.sleep(5)
            sub.terminate()
            out, _ = sub.communicate(timeout=20)
    finally:
        stop(live)
    before = latencies([m for t, m in seen if t_stop - 5 <= t < t_stop])
    during = latencies([m for t, m in seen if t_stop <= t < t_cont])
    rate_before = len(before) / 5
    rate_during = len(during) / 10
    rows = [line.split() for line in out.splitlines() if line.count(" ") == 2]
    after = [(float(t), float(age)) for t, _, age in rows if float(t) >= t_cont]
    first_age = after[0][1] if after else None
    fresh_at = next((t - t_cont for t, age in after if age < 500), None)
    passed = bool(len(during) and np.percentile(during, 99) <= max(2 * np.percentile(before, 99),
                                                                   np.percentile(before, 99) + 50)
                  and rate_during >= 0.8 * rate_before and fresh_at is not None and fresh_at < 2.0)
    report(passed=passed, p50_ms_before=round(float(np.median(before)), 1),
           p99_ms_before=round(float(np.percentile(before, 99)), 1),
           p50_ms_during_stop=round(float(np.median(during)), 1),
           p99_ms_during_stop=round(float(np.percentile(during, 99)), 1), heatmaps_per_s_before=rate_before,
           heatmaps_per_s_during=rate_during, first_message_age_ms_after_cont=first_age,
           fresh_message_after_s=None if fresh_at is None else round(fresh_at, 3))
    assert passed


def test_publisher_restart_is_seen_and_followed(tmp_path, report):
    address = f"ipc://{tmp_path}/live.sock"
    live = start_live(address)
    with Subscriber(address) as sub:
        first = sub.recv(HEATMAP, timeout=60)
        stop(live, signal.SIGTERM)
        t_down = time.monotonic()
        live = start_live(address)
        try:
            while True:
                msg = sub.recv(HEATMAP, timeout=60)
                if msg.session != first.session:
                    break
            gap = time.monotonic() - t_down
            restarts = sub.stats.restarts
        finally:
            out, err = stop(live)
    passed = restarts == 1 and live.returncode == 0
    report(passed=passed, restarts_counted=restarts, seconds_from_kill_to_first_new_heatmap=round(gap, 2),
           note="includes the new process loading torch and the model")
    assert passed, err


def wait_for_lines(path, n: int, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} never reached {n} lines")


def playable_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_sigterm_and_sigint_during_analyze_leave_playable_outputs(tmp_path, report):
    from soundlens.training.synth import write_video

    clip = tmp_path / "clip.mp4"
    write_video(clip, seconds=20, seed=1)
    figures = {}
    passed = True
    for sig in (signal.SIGINT, signal.SIGTERM):
        out, log = tmp_path / f"{sig.name}.mp4", tmp_path / f"{sig.name}.jsonl"
        proc = subprocess.Popen([*CLI, "analyze", str(clip), "-o", str(out), "--jsonl", str(log), "--quiet",
                                 "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        wait_for_lines(log, 40)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        frames = playable_frames(out)
        ok = proc.returncode == 130 and frames > 0 and abs(frames - len(rows)) <= 8 and len(rows) < 500
        figures[sig.name] = {"exit": proc.returncode, "jsonl_rows": len(rows), "playable_frames": frames,
                             "ok": ok}
        passed &= ok
    report(passed=passed, **figures)
    assert passed, figures


def test_sigterm_and_sigint_during_record_leave_valid_files(tmp_path, report):
    address = f"ipc://{tmp_path}/live.sock"
    live = start_live(address)
    figures, passed = {}, True
    try:
        with Subscriber(address) as sub:
            sub.recv(HEATMAP, timeout=60)
        for sig in (signal.SIGINT, signal.SIGTERM):
            path = tmp_path / f"{sig.name}.mcap"
            rec = subprocess.Popen([*CLI, "record", "--connect", address, "-o", str(path), "--quiet"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(4)
            rec.send_signal(sig)
            rec.communicate(timeout=30)
            reader = RecordingReader(path)
            n = sum(1 for m in reader if wire.decode(m.parts()))
            ok = rec.returncode == 0 and reader.complete and n > 40
            figures[sig.name] = {"exit": rec.returncode, "messages": n, "complete": reader.complete, "ok": ok}
            passed &= ok
    finally:
        stop(live)
    report(passed=passed, **figures)
    assert passed, figures


def test_a_full_disk_during_record_and_analyze_is_one_clear_error(tmp_path, tmpfs, report):
    from soundlens.training.synth import write_video

    figures, passed = {}, True
    # record: a 400 kB disk fills within seconds of heatmaps + previews.
    address = f"ipc://{tmp_path}/live.sock"
    live = start_live(address, "--preview")
    disk = tmpfs(400)
    try:
        with Subscriber(address) as sub:
            sub.recv(HEATMAP, timeout=60)
        rec = subprocess.run([*CLI, "record", "--connect", address, "-o", str(disk / "run.mcap"), "--seconds",
                              "60", "--quiet", "--flush", "0.2"], capture_output=True, text=True, timeout=120)
    finally:
        stop(live)
    reader = RecordingReader(disk / "run.mcap")
    n = sum(1 for m in reader if wire.decode(m.parts()))
    error_lines = [line for line in rec.stderr.splitlines() if line.strip()]
    ok = rec.returncode == 2 and len(error_lines) == 1 and "No space left" in rec.stderr and n > 0
    figures["record"] = {"exit": rec.returncode, "stderr": rec.stderr.strip()[-300:], "messages_readable": n,
                         "ok": ok}
    passed &= ok

    # analyze: the overlay of a 20 s clip does not fit in 150 kB.
    clip = tmp_path / "clip.mp4"
    write_video(clip, seconds=20, seed=2)
    disk = tmpfs(150)
    done = subprocess.run([*CLI, "analyze", str(clip), "-o", str(disk / "out.mp4"), "--jsonl",
                           str(tmp_path / "out.jsonl"), "--quiet", "--device", "cpu"], capture_output=True,
                          text=True, timeout=300)
    rows = sum(1 for line in (tmp_path / "out.jsonl").read_text().splitlines() if json.loads(line))
    error_lines = [line for line in done.stderr.splitlines() if line.strip()]
    ok = done.returncode == 2 and len(error_lines) == 1 and "space" in done.stderr.lower()
    figures["analyze"] = {"exit": done.returncode, "stderr": done.stderr.strip()[-400:], "jsonl_rows": rows,
                          "ok": ok}
    passed &= ok
    report(passed=passed, **figures)
    assert passed, figures




# --- devices that go away and come back ------------------------------------------------------

SERVER = Path(__file__).with_name("mjpeg_server.py")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_camera_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, str(SERVER), str(port)], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    return server


def start_live_device(address: str, *source: str) -> subprocess.Popen:
    """`soundlens live` on real devices (a camera URL and/or the PulseAudio microphone)."""
    return subprocess.Popen([*CLI, "live", *source, "--mic", "pulse", "--model", "default", "--hop", "0.1",
                             "--device", "cpu", "--publish", address, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect(seen: list):
    """A Subscriber listener keeping (receive monotonic s, message) of heatmaps and status."""
    return lambda m, t: seen.append((t / 1e9, m)) if m.kind in ("heatmap", "status") else None


def test_camera_stream_lost_and_back(tmp_path, pulse, report):
    port = free_port()
    url = f"http://127.0.0.1:{port}/stream.mjpg"
    server = start_camera_server(port)
    address = f"ipc://{tmp_path}/live.sock"
    live = start_live_device(address, "--camera", url)
    seen: list = []
    try:
        with Subscriber(address, listener=collect(seen)) as sub:
            sub.recv(HEATMAP, timeout=60)
            time.sleep(3)
            t_kill = time.monotonic()
            server.kill()  # the server process dies: connection reset, nothing listens on the port
            server.wait()
            time.sleep(4)
            t_up = time.monotonic()
            server = start_camera_server(port)
            deadline = t_up + 30
            while time.monotonic() < deadline and not any(
                    m.kind == "heatmap" and m.header["mono_ns"]["capture"] / 1e9 > t_up for _, m in seen):
                time.sleep(0.05)
            time.sleep(3)
            alive = live.poll() is None
    finally:
        _, err = stop(live)
        server.kill()
        server.wait()
    heat = [(t, m) for t, m in seen if m.kind == "heatmap"]
    status = [m.header for _, m in seen if m.kind == "status"]
    capture = [m.header["mono_ns"]["capture"] / 1e9 for _, m in heat]
    new = [c for c in capture if c > t_up]
    resumed_after = new[0] - t_up if new else None
    heat_down = sum(1 for c in capture if t_kill + 0.5 < c < t_up)
    rate_after = sum(1 for c in new if c > new[0]) / max(capture[-1] - new[0], 1e-9) if len(new) > 1 else 0.0
    reported = [(s["uptime_s"], s["last_error"]) for s in status if s["last_error"]]
    lost = next((e for _, e in reported if "lost" in e or "cannot open" in e), None)
    reconnects = max((s["counters"]["reconnects"] for s in status), default=0)
    frames_down = [s["fps_in"] for s in status]
    passed = bool(alive and live.returncode == 0 and resumed_after is not None and resumed_after < 10
                  and reconnects >= 1 and lost is not None and heat_down == 0 and rate_after > 5)
    report(passed=passed, down_s=round(t_up - t_kill, 2),
           first_new_frame_heatmap_after_restart_s=resumed_after and
           round(resumed_after, 2), heatmaps_of_frames_while_down=heat_down,
           heatmaps_per_s_after=round(rate_after, 2), status_reconnects=reconnects, status_loss_message=lost,
           status_last_error=reported[-1][1] if reported else None, live_exit=live.returncode,
           fps_in_reported=frames_down[-12:])
    assert passed, err[-2000:]


def audio_lag_s(heat: list, rate: int) -> np.ndarray:
    """Per heatmap: how far (s) its audio window's end lies before its frame's capture time, relative
    to the median of the first ten (the fixed offset of latency and window alignment)."""
    cap = np.array([m.header["mono_ns"]["capture"] / 1e9 for m in heat])
    end = np.array([(m.header["audio"]["first_sample"] + m.header["audio"]["num_samples"]) / rate
                    for m in heat])
    offset = cap - end
    return offset - np.median(offset[:10])


def test_microphone_suspended_and_resumed(tmp_path, pulse, report):
    address = f"ipc://{tmp_path}/live.sock"
    live = start_live_device(address, "--synthetic", "--loop", "--synthetic-seconds", "60")
    seen: list = []
    marks = {}
    try:
        with Subscriber(address, listener=collect(seen)) as sub:
            sub.recv(HEATMAP, timeout=60)
            time.sleep(4)
            marks["suspend"] = time.monotonic()
            pulse.pactl("suspend-source", "vmic", "1")
            time.sleep(3)
            marks["resume"] = time.monotonic()
            pulse.pactl("suspend-source", "vmic", "0")
            time.sleep(5)
            marks["unload"] = time.monotonic()
            # PulseAudio moves the stream to vsink.monitor
            pulse.pactl("unload-module", pulse.module_of("vmic"))
            time.sleep(3)
            marks["reload"] = time.monotonic()
            pulse.pactl("load-module", *VMIC.split())
            time.sleep(4)
            marks["end"] = time.monotonic()
            alive = live.poll() is None
    finally:
        _, err = stop(live)
    heat = [m for _, m in seen if m.kind == "heatmap"]
    status = [m.header for _, m in seen if m.kind == "status"]
    rate = heat[0].header["audio"]["sample_rate"]
    cap = np.array([m.header["mono_ns"]["capture"] / 1e9 for m in heat])
    lag = audio_lag_s(heat, rate)
    last = status[-1]["counters"]
    figures, passed = {}, bool(alive and live.returncode == 0)
    for fault, start, end in (("suspend", marks["suspend"], marks["resume"]),
                              ("unload", marks["unload"], marks["reload"])):
        after = cap > end
        during = (cap > start) & (cap <= end)
        first = float(cap[after][0] - end) if after.any() else None
        # heatmaps from 0.5 s after the fault ends: audio must be as fresh as before it
        settled = after & (cap > end + 0.5) & (cap < end + 4)
        worst = float(np.abs(lag[settled]).max()) if settled.any() else None
        worst_during = float(lag[during].max()) if during.any() else 0.0
        # when heatmaps with fresh audio came back, counted from the fault (unload: PulseAudio moves the
        # stream to the remaining source before the module is loaded again)
        fresh = (cap > start + 0.6) & (np.abs(lag) < 0.15)
        back = float(cap[fresh][0] - start) if fresh.any() else None
        # A hole under MicrophoneConfig.gap (0.5 s) is not filled: the clock fit absorbs it, and the index
        # offset measured here keeps it. Above that, sample indices keep time (lag ~0).
        ok = first is not None and first < 2.0 and worst is not None and worst < 0.5 and worst_during < 0.6
        figures[fault] = {"fault_s": round(end - start, 2),
                          "first_heatmap_after_s": first and round(first, 2),
                          "fresh_audio_heatmap_after_fault_start_s": back and round(back, 2),
                          "heatmaps_during": int(during.sum()),
                          "worst_audio_lag_during_s": round(worst_during, 3),
                          "worst_audio_lag_after_0.5s_s": worst and round(worst, 3),
                          "heatmaps_after": int(settled.sum()), "ok": ok}
        passed &= ok
    gaps = [s["last_error"] for s in status if s["last_error"] and "no audio for" in s["last_error"]]
    passed &= last["audio_gaps"] >= 2
    report(passed=bool(passed), **figures, audio_gaps=last["audio_gaps"], overflows=last["overflows"],
           audio_stale=last["audio_stale"], audio_short=last["audio_short"], inferences=last["inferences"],
           gap_messages=sorted(set(gaps)), live_exit=live.returncode)
    assert passed, err[-2000:]
