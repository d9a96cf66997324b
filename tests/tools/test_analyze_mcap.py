"""`soundlens analyze --mcap`: the offline results as a recording of the live stream."""

from __future__ import annotations

import json

import pytest
from soundlens.realtime import wire
from soundlens.realtime.recording import RecordingReader
from soundlens.tools.main import main
from soundlens.training.synth import write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, seconds=3, seed=4)
    return path


def test_analyze_writes_heatmaps_peaks_and_tracks_at_media_time(clip, tmp_path):
    out, log, rec = tmp_path / "o.mp4", tmp_path / "o.jsonl", tmp_path / "o.mcap"
    assert main(["analyze", str(clip), "-o", str(out), "--jsonl", str(log), "--mcap", str(rec),
                 "--hfov", "60", "--hop", "0.2", "--quiet", "--device", "cpu"]) == 0
    reader = RecordingReader(rec)
    messages = [(m, wire.decode(m.parts())) for m in reader]
    assert reader.complete
    by_kind: dict = {}
    for raw, msg in messages:
        by_kind.setdefault(msg.kind, []).append((raw, msg))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    inferences = {r["inference"] for r in rows if r["inference"] is not None}
    assert len(by_kind["heatmap"]) == len(by_kind["peaks"]) == len(by_kind["tracks"]) == len(inferences)
    assert len(by_kind["meta"]) == 1 and by_kind["meta"][0][1].header["model"]["id"] == "default"
    for raw, msg in by_kind["heatmap"]:
        assert raw.log_time_ns == round(msg.header["frame"]["media_s"] * 1e9)
        assert msg.header["activity"]["dbfs"] < 0 and "on_screen" in msg.header
    assert [m.seq for _, m in by_kind["tracks"]] == list(range(len(by_kind["tracks"])))
    assert all(m.header["camera"] == "hfov 60" for _, m in by_kind["tracks"])
    assert any(m.header["tracks"] for _, m in by_kind["tracks"])


def test_analyze_mcap_name_is_checked(clip, tmp_path, capsys):
    assert main(["analyze", str(clip), "-o", str(tmp_path / "o.mp4"), "--mcap", str(tmp_path / "o.bag"),
                 "--quiet"]) == 2
    assert "ending in .mcap" in capsys.readouterr().err
