"""docs/protocol.md's example subscriber runs, as printed, against the real pipeline."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

from rt_helpers import StandInModel
from soundlens.realtime.pipeline import LiveConfig, LivePipeline
from soundlens.realtime.publisher import PublisherConfig
from soundlens.realtime.sources import SyntheticConfig, SyntheticSource
from soundlens.realtime.tracks import CameraModel
from soundlens.realtime.worker import WorkerConfig
from soundlens.training.synth import scene_video

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def example_code() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- protocol-example[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/protocol.md lost its marked example block"
    return match.group(1)


def run_example(tmp_path, code: str, count: int = 3):
    """The script `code` as a subscriber of a real pipeline (stand-in model, procedural clip, tracks
    with directions from a 60-degree pinhole); returns its finished process."""
    script = tmp_path / "example.py"
    script.write_text(code)
    address = f"ipc://{tmp_path}/doc.sock"
    source = SyntheticSource(SyntheticConfig(seconds=30, image_size=64, realtime=True), scene_video)
    config = LiveConfig(worker=WorkerConfig(hop=0.1, camera=CameraModel.from_hfov(60)),
                        publisher=PublisherConfig(address=address))
    stop = threading.Event()
    with LivePipeline(StandInModel(), source, source, config) as pipeline:
        runner = threading.Thread(target=pipeline.run, kwargs={"stop": stop})
        runner.start()
        try:
            # numpy + pyzmq only: the example must not need SoundLens installed
            proc = subprocess.run([sys.executable, "-I", str(script), address, str(count)], capture_output=True,
                                  text=True, timeout=60)
        finally:
            stop.set()
            runner.join(timeout=10)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_documented_example_subscriber_runs(tmp_path):
    proc = run_example(tmp_path, example_code(), count=12)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("seq ")]
    assert len(lines) == 12, proc.stdout
    assert all(re.match(r"seq \d+: 7x7 map, (u=[01]\.\d\d v=[01]\.\d\d score=1\.00|no peak)", line) for line in lines)
    tracks = [line for line in proc.stdout.splitlines() if line.startswith("  track ")]
    assert tracks, f"no track printed in 12 heatmaps: {proc.stdout}"
    assert all(re.match(r"  track \d+: u=[01]\.\d\d v=[01]\.\d\d az [+-]\d+\.\d el [+-]\d+\.\d deg score=", line)
               for line in tracks), tracks


def test_a_1_0_subscriber_keeps_working_against_1_1(tmp_path):
    """docs/protocol.md §8 as published with 1.0 (frozen copy) against a publisher that sends tracks,
    activity and on_screen: it ignores what it does not know."""
    proc = run_example(tmp_path, (Path(__file__).parent / "data" / "protocol_1_0_example.py").read_text())
    lines = [line for line in proc.stdout.splitlines() if line.startswith("seq ")]
    assert len(lines) == 3, proc.stdout
    assert all(re.match(r"seq \d+: 7x7 map, (u=[01]\.\d\d v=[01]\.\d\d score=1\.00|no peak)", line) for line in lines)
