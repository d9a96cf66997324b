"""docs/protocol.md against the real pipeline: its examples run as printed, its fresh-data rule
gives fresh data to a reader that sleeps, and a 1.0 subscriber still works with a 1.1 publisher."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq
from rt_helpers import StandInModel
from soundlens.realtime import wire
from soundlens.realtime.pipeline import LiveConfig, LivePipeline
from soundlens.realtime.publisher import PublisherConfig
from soundlens.realtime.sources import SyntheticConfig, SyntheticSource
from soundlens.realtime.tracks import CameraModel
from soundlens.realtime.worker import WorkerConfig
from soundlens.training.synth import SceneConfig, SynthVideo

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "protocol.md"
LAST_1_0 = "e997dc5"  # the last commit that published soundlens.v1 version 1.0


def example_code(marker: str = "protocol-example") -> str:
    text = DOC.read_text()
    match = re.search(rf"<!-- {marker}:[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert match, f"docs/protocol.md lost its marked example block {marker}"
    return match.group(1)


@contextlib.contextmanager
def live(address: str, hop: float = 0.1, seconds: float = 60):
    """The real pipeline at a realistic rate (10 results/s; stand-in model, procedural clip, tracks
    with directions from a 60-degree pinhole), publishing on `address`."""
    source = SyntheticSource(SynthVideo(seconds, config=SceneConfig(image_size=64)),
                             SyntheticConfig(realtime=True))
    config = LiveConfig(worker=WorkerConfig(hop=hop, camera=CameraModel.from_hfov(60)),
                        publisher=PublisherConfig(address=address))
    stop = threading.Event()
    with LivePipeline(StandInModel(), source, source, config) as pipeline:
        runner = threading.Thread(target=pipeline.run, kwargs={"stop": stop})
        runner.start()
        try:
            yield pipeline
        finally:
            stop.set()
            runner.join(timeout=10)


def run_script(tmp_path, code: str, *args: str) -> subprocess.CompletedProcess:
    """`code` as a subscriber of a real pipeline; returns its finished process."""
    script = tmp_path / "example.py"
    script.write_text(code)
    address = f"ipc://{tmp_path}/doc.sock"
    with live(address):
        # -I: pyzmq (+ numpy) only, the examples must not need SoundLens installed
        proc = subprocess.run([sys.executable, "-I", str(script), address, *args], capture_output=True,
                              text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_reader_that_sleeps_2_s_gets_fresh_data_by_following_the_document(tmp_path):
    proc = run_script(tmp_path, example_code("protocol-example-fresh"), "4", "2")  # 4 reads, 2 s apart
    reads = re.findall(r"^seq (\d+): age (-?\d+) ms, (x=\S+ y=\S+ score=1\.00|no peak)$", proc.stdout, re.M)
    assert len(reads) == 4, proc.stdout
    ages = [int(age) for _, age, _ in reads]
    print("ages of the data read 2 s apart (ms):", ages)
    assert all(0 <= age < 200 for age in ages), proc.stdout
    seqs = [int(seq) for seq, _, _ in reads]
    assert all(b - a >= 15 for a, b in zip(seqs, seqs[1:])), seqs  # ~20 results per 2 s were replaced


def test_without_the_rule_the_same_reader_reads_stale_data(tmp_path):
    """The control: the multipart topic read once per wake-up, as 1.0 readers did, lags behind."""
    address = f"ipc://{tmp_path}/stale.sock"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.setsockopt(zmq.SUBSCRIBE, b"soundlens.v1.peaks.cam0")
    try:
        with live(address):
            sock.connect(address)
            ages = []
            for _ in range(3):
                header = json.loads(sock.recv_multipart()[1])
                ages.append((time.monotonic_ns() - int(header["mono_ns_str"]["capture"])) / 1e6)
                time.sleep(2)
    finally:
        sock.close(0)
        ctx.term()
    print("ages without the rule (ms):", [round(a) for a in ages])
    assert ages[-1] > 1000, ages


def test_documented_example_subscriber_runs(tmp_path):
    proc = run_script(tmp_path, example_code(), "12")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("seq ")]
    assert len(lines) == 12, proc.stdout
    assert all(re.match(r"seq \d+: 7x7 map, (u=[01]\.\d\d v=[01]\.\d\d score=1\.00|no peak)", line)
               for line in lines)
    tracks = [line for line in proc.stdout.splitlines() if line.startswith("  track ")]
    assert tracks, f"no track printed in 12 heatmaps: {proc.stdout}"
    assert all(re.match(r"  track \d+: u=[01]\.\d\d v=[01]\.\d\d az [+-]\d+\.\d el [+-]\d+\.\d deg score=",
                        line)
               for line in tracks), tracks


def test_a_1_0_subscriber_keeps_working_against_1_1(tmp_path):
    """docs/protocol.md §8 as published with 1.0 (frozen copy) against a publisher that sends tracks,
    activity and on_screen: it ignores what it does not know."""
    proc = run_script(tmp_path, (Path(__file__).parent / "data" / "protocol_1_0_example.py").read_text(), "3")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("seq ")]
    assert len(lines) == 3, proc.stdout
    assert all(re.match(r"seq \d+: 7x7 map, (u=[01]\.\d\d v=[01]\.\d\d score=1\.00|no peak)", line)
               for line in lines)


def load_1_0_subscriber(tmp_path):
    """realtime/wire.py and subscriber.py as they were at version 1.0, from the git history."""
    package = tmp_path / "v1_0"
    package.mkdir()
    for name in ("wire", "subscriber"):
        proc = subprocess.run(["git", "show", f"{LAST_1_0}:realtime/{name}.py"], cwd=REPO,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"the 1.0 sources are not in this checkout's history ({proc.stderr.strip()})")
        (package / f"{name}.py").write_text(proc.stdout.replace("from soundlens.realtime import wire",
                                                                "from v1_0 import wire"))
    (package / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    try:
        spec = importlib.util.spec_from_file_location("v1_0.subscriber", package / "subscriber.py")
        importlib.import_module("v1_0")
        module = importlib.util.module_from_spec(spec)
        sys.modules["v1_0.subscriber"] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(tmp_path))
    assert module.wire.MINOR == 0
    return module


def test_the_1_0_python_subscriber_keeps_working_with_this_publisher(tmp_path):
    old = load_1_0_subscriber(tmp_path)
    address = f"ipc://{tmp_path}/old.sock"
    try:
        with live(address) as pipeline:
            with old.Subscriber(address) as sub:  # subscribes to everything under soundlens.v1.
                topics = ([wire.topic(k, "cam0") for k in ("heatmap", "peaks", "meta")]
                          + [wire.topic("status")])
                got = {t: sub.recv(t, timeout=10) for t in topics}
                time.sleep(1.0)
            assert pipeline.publisher.latest_sent > 0  # the single-frame copies went out meanwhile
    finally:
        for name in ("v1_0", "v1_0.wire", "v1_0.subscriber"):
            sys.modules.pop(name, None)
    # A 1.0 reader counts the 1.1 `tracks` topic as an unknown kind and skips it, as §9 allows;
    # nothing else is malformed to it: it never receives a single-frame latest message.
    assert all("soundlens.v1.tracks." in e for e in sub.errors), list(sub.errors)
    assert sub.stats.received > 10
    assert all(m.header["version"] == [1, wire.MINOR] for m in got.values())  # any minor is accepted
    assert got[wire.topic("heatmap", "cam0")].arrays["heatmap"].shape == (7, 7)
