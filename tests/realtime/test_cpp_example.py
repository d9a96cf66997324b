"""docs/examples/cpp: the C++ subscriber builds with Debian's libzmq, cppzmq and nlohmann-json, follows
the fresh-data rule against a real `soundlens live --synthetic`, and its peaks (published and
recomputed from the heatmap with docs/protocol.md §4.2) and its tracks match the Python side message by
message."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from soundlens.realtime import Subscriber, wire
from soundlens.tools.main import main

SOURCE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "cpp" / "soundlens_peaks.cpp"
PACKAGES = "g++ libzmq3-dev cppzmq-dev nlohmann-json3-dev"
TRACK = re.compile(r"^track seq=(\d+) id=(\d+) x=(\S+) y=(\S+) score=(\S+) azimuth=(\S+)$")
LINE = re.compile(r"^(peak|recomputed) seq=(\d+) inference=(\d+) i=(\d+) x=(\S+) y=(\S+) u=(\S+) "
                  r"v=(\S+) score=(\S+)$")


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Path:
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip(f"no C++ compiler: install {PACKAGES} (make test does, as root)")
    out = tmp_path_factory.mktemp("cpp") / "soundlens_peaks"
    proc = subprocess.run([compiler, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", str(SOURCE),
                           "-o", str(out), "-lzmq"], capture_output=True, text=True, timeout=300)
    missing = re.search(r"fatal error: (\S+): No such file", proc.stderr)
    if missing or "cannot find -lzmq" in proc.stderr:
        pytest.skip(f"C++ headers or library missing ({missing.group(1) if missing else '-lzmq'}): "
                    f"install {PACKAGES}")
    assert proc.returncode == 0, proc.stderr
    return out


def test_cpp_subscriber_matches_python_by_seq(binary, checkpoint, tmp_path):
    address = f"ipc://{tmp_path}/cpp.sock"
    argv = ["live", "--synthetic", "--model", checkpoint, "--publish", address, "--hop", "0.1",
            "--seconds", "9", "--quiet", "--hfov", "60"]
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(code=main(argv)))
    python: dict[tuple[str, int], wire.Message] = {}  # (kind, seq) -> what the Python client decoded
    topics = tuple(wire.topic(kind, "cam0") for kind in ("peaks", "heatmap", "tracks"))
    with Subscriber(address, topics=topics,
                    listener=lambda m, t: python.__setitem__((m.kind, m.seq), m)) as sub:
        runner.start()
        try:  # 4 reads, a second apart: the reader is slower than the 10 Hz publisher
            proc = subprocess.run([str(binary), address, "4", "1000"], capture_output=True, text=True,
                                  timeout=60)
        finally:
            runner.join(timeout=60)
    assert result == {"code": 0}
    assert proc.returncode == 0, proc.stderr
    assert sub.stats.malformed == 0
    ages = [float(a) for a in re.findall(r"age_ms=(\S+)", proc.stdout)]
    print(proc.stdout.splitlines()[0], "| C++ ages (ms):", ages)
    assert len(ages) == 4 and all(0 <= a < 300 for a in ages), proc.stdout  # fresh though it reads at 1 Hz
    compared = {"peak": 0, "recomputed": 0, "track": 0}
    for line in proc.stdout.splitlines():
        track = TRACK.match(line)
        if track:
            seq, track_id = int(track.group(1)), int(track.group(2))
            known = {t["id"]: t for t in python[("tracks", seq)].header["tracks"]}[track_id]
            x, y, score = (float(g) for g in track.groups()[2:5])
            assert (x, y, score) == (known["x"], known["y"], known["score"]), (line, known)
            assert float(track.group(6)) == known["azimuth"]  # --hfov 60: every track has a direction
            compared["track"] += 1
            continue
        match = LINE.match(line)
        if not match:
            continue
        what, seq, inference, i = (match.group(1), int(match.group(2)), int(match.group(3)),
                                   int(match.group(4)))
        x, y, u, v, score = (float(g) for g in match.groups()[4:])
        msg = python[("peaks" if what == "peak" else "heatmap", seq)]  # the same message, by seq
        assert msg.header["inference"] == inference
        peak = msg.header["peaks"][i]
        # exact: JSON carries doubles exactly, and §4.2 fixes every operation of the recomputation
        assert (x, y, u, v, score) == (peak["x"], peak["y"], peak["u"], peak["v"], peak["score"]), (line,
                                                                                                    peak)
        compared[what] += 1
    assert compared["peak"] >= 4 and compared["recomputed"] >= 4, (compared, proc.stdout)
    print("compared exactly with the Python client:", compared)
