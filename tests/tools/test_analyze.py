"""`soundlens analyze` on real containers: the fixture clips (H.264/AAC mp4, H.264/Opus mkv) and
clips written here with PyAV at odd frame rates, rates from 16 to 48 kHz, mono and stereo.

Every output is decoded again with PyAV: the overlay video has one frame per source frame at the
source's times, its audio is as long as the source's (within one codec frame), and the JSONL has
one complete row per video frame. A truncated file gives one clear error and a valid partial output.
"""

from __future__ import annotations

import json
import os
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from soundlens.models.errors import SoundLensError
from soundlens.tools.main import main

# ../shared/fixtures beside the clone (as tests/conftest.py finds it), or $SOUNDLENS_FIXTURES
VIDEOS = Path(os.environ.get("SOUNDLENS_FIXTURES",
                             Path(__file__).resolve().parents[3] / "shared" / "fixtures")) / "videos"


@pytest.fixture(scope="module")
def model(checkpoint):
    from soundlens import models

    return models.load(checkpoint)


def fixture(name: str) -> Path:
    path = VIDEOS / name
    if not path.is_file():
        pytest.skip(f"real test clip {path} is absent (the shared fixtures folder is not on this machine)")
    return path


def write_clip(path: Path, seconds: float, rate: Fraction, size=(96, 64), audio: str | None = "aac",
               sample_rate: int = 44100, layout: str = "mono", faststart: bool = False,
               vfr: bool = False) -> Path:
    """A real H.264 clip (moving square) with an optional tone track, muxed in time order.
    `vfr`: frame durations vary between 0.5 and 1.5 frame periods (millisecond timestamps)."""
    n = int(seconds * rate)
    rng = np.random.default_rng(0)
    times = np.arange(n) / float(rate)
    if vfr:
        times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.5, 1.5, n - 1) / float(rate))])
    width, height = size
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as c:
        v = c.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"preset": "ultrafast"}
        if vfr:
            v.codec_context.time_base = Fraction(1, 1000)
        a = c.add_stream(audio, rate=sample_rate, layout=layout) if audio else None
        channels = 2 if layout == "stereo" else 1
        sent = 0
        for i in range(n):
            image = np.full((height, width, 3), 40, np.uint8)
            x = (i * 3) % (width - 16)
            image[20:36, x : x + 16] = 230
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if vfr:
                frame.pts, frame.time_base = int(round(times[i] * 1000)), Fraction(1, 1000)
            else:
                frame.pts, frame.time_base = i, 1 / rate
            c.mux(v.encode(frame))
            if a is not None:
                upto = int(round((times[i] + 1 / float(rate)) * sample_rate))
                t = np.arange(sent, upto) / sample_rate
                tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                block = np.repeat(tone[None], channels, 0)
                af = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
                af.sample_rate, af.pts, af.time_base = sample_rate, sent, Fraction(1, sample_rate)
                c.mux(a.encode(af))
                sent = upto
        c.mux(v.encode(None))
        if a is not None:
            c.mux(a.encode(None))
    return path


def probe(path: Path) -> dict:
    """Decode everything: video frame times, audio seconds and codec of a file."""
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        times = [f.time for f in c.decode(v)]
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(a))
        return {"times": times, "audio_s": samples / a.codec_context.sample_rate,
                "audio_codec": a.codec_context.name, "audio_rate": a.codec_context.sample_rate,
                "channels": a.codec_context.channels, "video_codec": v.codec_context.name,
                "frame_size": a.codec_context.frame_size or 1024}


def rows(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the JSONL must end with a complete line"
    return [json.loads(line) for line in text.splitlines()]


def check_outputs(src: Path, out: Path, jsonl: Path) -> list[dict]:
    source, result = probe(src), probe(out)
    assert result["video_codec"] == "h264" and result["audio_codec"] == "aac"
    assert len(result["times"]) == len(source["times"]), "one overlay frame per source frame"
    assert np.allclose(result["times"], source["times"], atol=2e-3), "the source's frame times are kept"
    one_frame = source["frame_size"] / source["audio_rate"]
    assert abs(result["audio_s"] - source["audio_s"]) <= max(one_frame, 1024 / result["audio_rate"]) + 1e-6, \
        f"audio {result['audio_s']:.4f} s vs source {source['audio_s']:.4f} s"
    assert result["channels"] == source["channels"]
    table = rows(jsonl)
    assert len(table) == len(source["times"]), "one JSONL row per video frame"
    assert [r["frame"] for r in table] == list(range(len(table)))
    assert np.allclose([r["time"] for r in table], source["times"], atol=1e-3)
    with_map = [r for r in table if r["peaks"]]
    assert len(with_map) >= 0.8 * len(table), "every frame after the first 0.1 s of audio has a heatmap"
    for r in with_map:
        assert (r["scores"][0] == pytest.approx(1.0) and 0 <= r["peaks"][0]["u"] <= 1
                and 0 <= r["peaks"][0]["v"] <= 1)
        assert r["heatmap_time"] <= r["time"] + 1e-6
    return table


@pytest.mark.parametrize("name", ["1aDnyPubxdY_118000_128000.mp4", "cartoon_720p_opus.mkv"])
def test_fixture_videos(name, checkpoint, tmp_path, capsys):
    src = fixture(name)
    out, jsonl = tmp_path / "overlay.mp4", tmp_path / "rows.jsonl"
    argv = ["analyze", str(src), "-o", str(out), "--jsonl", str(jsonl), "--model", checkpoint,
            "--hop", "0.5", "--batch", "4", "--quiet"]
    assert main(argv) == 0
    table = check_outputs(src, out, jsonl)
    assert {r["model"] for r in table} == {checkpoint}
    assert len({r["inference"] for r in table if r["inference"] is not None}) >= len(table) / 30 / 0.5 * 0.8
    printed = capsys.readouterr().out
    assert "copied (aac)" in printed if src.suffix == ".mp4" else "re-encoded opus -> aac" in printed


@pytest.mark.parametrize("rate, sample_rate, layout, audio, suffix, vfr", [
    (Fraction(30000, 1001), 16000, "stereo", "aac", ".mp4", False),
    (Fraction(24000, 1001), 48000, "mono", "libopus", ".mkv", False),
    (Fraction(25), 22050, "stereo", "mp2", ".mkv", False),
    (Fraction(25), 32000, "mono", "aac", ".mp4", True),
])
def test_odd_rates_and_codecs(rate, sample_rate, layout, audio, suffix, vfr, model, tmp_path):
    from soundlens.realtime.analyze import AnalyzeConfig, analyze_video

    src = write_clip(tmp_path / f"clip{suffix}", 1.5, rate, size=(98, 66), audio=audio,
                     sample_rate=sample_rate, layout=layout, vfr=vfr)
    if vfr:
        steps = np.diff(probe(src)["times"])
        assert steps.max() > 1.3 * steps.min(), "the source really has a variable frame rate"
    out, jsonl = tmp_path / "overlay.mp4", tmp_path / "rows.jsonl"
    summary = analyze_video(model, src, out, jsonl, AnalyzeConfig(batch=8, hop=0.25, progress=False),
                            model_id="lite")
    check_outputs(src, out, jsonl)
    assert summary.frames == len(rows(jsonl)) and summary.inferences > 0
    with av.open(str(out)) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (98, 66)


def test_truncated_video_gives_one_error_and_a_valid_partial_output(model, tmp_path):
    from soundlens.realtime.analyze import AnalyzeConfig, analyze_video

    whole = write_clip(tmp_path / "whole.mp4", 4.0, Fraction(25), faststart=True)
    broken = tmp_path / "broken.mp4"
    data = whole.read_bytes()
    broken.write_bytes(data[: int(len(data) * 0.6)])
    out, jsonl = tmp_path / "partial.mp4", tmp_path / "partial.jsonl"
    with pytest.raises(SoundLensError) as err:
        analyze_video(model, broken, out, jsonl, AnalyzeConfig(batch=4, hop=0.5, progress=False))
    message = str(err.value)
    assert "breaks off at" in message and " s" in message and str(out) in message
    written = probe(out)  # the partial mp4 is a complete, decodable file
    table = rows(jsonl)
    assert 10 <= len(written["times"]) < 100 and len(table) == len(written["times"])
    assert written["audio_s"] > 0.3


def test_bad_inputs_name_the_problem(checkpoint, tmp_path, capsys):
    silent = write_clip(tmp_path / "silent.mp4", 0.5, Fraction(25), audio=None)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    whole = write_clip(tmp_path / "whole.mp4", 1.0, Fraction(25))  # moov at the end: cut, nothing is readable
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:2000])
    cases = [
        (silent, "has no audio track"),
        (text, "cannot read"),
        (cut, "cannot read"),
        (tmp_path / "missing.mp4", "not found"),
    ]
    for src, expected in cases:
        out = tmp_path / f"out-{src.stem}.mp4"
        assert main(["analyze", str(src), "-o", str(out), "--model", checkpoint, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, err
        assert not out.exists(), "nothing is written for a file that cannot be read at all"
    assert main(["analyze", str(silent), "-o", str(tmp_path / "x.avi"), "--model", checkpoint]) == 2
    assert ".mp4" in capsys.readouterr().err
    assert main(["analyze", str(silent), "-o", str(tmp_path / "x.mp4"), "--model", checkpoint, "--batch",
                 "0"]) == 2
    assert "--batch" in capsys.readouterr().err


def test_motion_methods_get_the_frame_before_each_frame(tmp_path):
    # SIRA's flow branch: analyze hands each frame's predecessor to model.localize (the first frame
    # stands in for its own); the moving square makes every real predecessor differ from its frame.
    from soundlens import models
    from soundlens.realtime.analyze import AnalyzeConfig, analyze_video

    model = models.create("sira", encoder="lite").eval()
    seen = []
    original = model.localize

    def recording(frames, waveforms, rate, previous_frames=None):
        seen.append((np.array(frames), np.array(previous_frames)))
        return original(frames, waveforms, rate, previous_frames)

    model.localize = recording
    src = write_clip(tmp_path / "clip.mp4", 1.5, Fraction(20), size=(96, 64))
    analyze_video(model, src, tmp_path / "out.mp4", None, AnalyzeConfig(batch=4, hop=0, progress=False))
    frames = np.concatenate([f for f, _ in seen])
    previous = np.concatenate([p for _, p in seen])
    assert len(frames) >= 20
    np.testing.assert_array_equal(previous[1:], frames[:-1])  # hop 0: every frame, in order
    assert all(np.abs(p.astype(int) - f.astype(int)).max() > 0 for p, f in zip(previous[1:], frames[1:]))


# soundlens.analyze.v1, pinned here: changing a field in the code (or the doc) without a new schema fails.
ANALYZE_V1 = {
    "schema": "string", "frame": "integer", "time": "number", "inference": "integer|null",
    "heatmap_time": "number|null", "peaks": "array", "scores": "array", "model": "string",
    "method": "string", "audio": "object|null",
}


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "array", dict: "object"}[type(value)]


def documented_fields() -> dict[str, str]:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "analyze_jsonl.md").read_text()
    table = doc.split("## Fields", 1)[1]
    return {m[0]: m[1].replace("\\|", "|") for m in re.findall(r"^\| `(\w+)` \| ([a-z\\|]+) \|", table, re.M)}


def test_jsonl_rows_follow_their_documented_versioned_schema(model, tmp_path):
    from soundlens.realtime.analyze import JSONL_FIELDS, JSONL_SCHEMA, AnalyzeConfig, analyze_video

    assert JSONL_SCHEMA == "soundlens.analyze.v1" and JSONL_FIELDS == ANALYZE_V1
    assert documented_fields() == ANALYZE_V1 and list(documented_fields()) == list(ANALYZE_V1)
    src = write_clip(tmp_path / "clip.mp4", 1.2, Fraction(25), sample_rate=22050)
    jsonl = tmp_path / "rows.jsonl"
    analyze_video(model, src, tmp_path / "out.mp4", jsonl, AnalyzeConfig(batch=4, hop=0.2, progress=False),
                  model_id="lite")
    table = rows(jsonl)
    assert any(r["inference"] is None for r in table) and any(r["inference"] is not None for r in table)
    for r in table:
        assert list(r) == list(ANALYZE_V1), "every field, in the documented order"
        for key, kinds in ANALYZE_V1.items():
            number_ok = (kinds.startswith("number") and isinstance(r[key], int)
                         and not isinstance(r[key], bool))
            assert json_type(r[key]) in kinds.split("|") or number_ok, (key, r[key])
        assert r["schema"] == JSONL_SCHEMA and r["model"] == "lite" and r["method"] == "ezvsl"
        assert r["scores"] == [p["score"] for p in r["peaks"]]
        assert all(list(p) == ["u", "v", "x", "y", "score"] for p in r["peaks"])
        assert (r["heatmap_time"] is None) == (r["audio"] is None) == (r["inference"] is None)
        if r["audio"] is not None:
            assert list(r["audio"]) == ["sample_rate", "first_sample", "num_samples"]
            assert r["audio"]["sample_rate"] == model.audio_preset.sample_rate
            assert all(isinstance(v, int) for v in r["audio"].values())


def test_ctrl_c_ends_analyze_with_code_130_and_valid_partial_outputs(checkpoint, tmp_path):
    """A real SIGINT while `soundlens analyze` runs: exit code 130, and the overlay and the JSONL
    written so far are closed properly (a decodable mp4, complete rows, one per written frame)."""
    import os
    import signal
    import threading
    import time

    src = write_clip(tmp_path / "long.mp4", 12.0, Fraction(25))
    out, jsonl = tmp_path / "partial.mp4", tmp_path / "partial.jsonl"
    running = threading.Event()

    def interrupt(*_):
        if running.is_set():  # only while main() runs: a late signal must not end the test session
            raise KeyboardInterrupt

    def send_when_rows_appear():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and running.is_set():
            if jsonl.exists() and jsonl.read_text().count("\n") >= 10:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    before = signal.signal(signal.SIGINT, interrupt)
    try:
        running.set()
        threading.Thread(target=send_when_rows_appear, daemon=True).start()
        code = main(["analyze", str(src), "-o", str(out), "--jsonl", str(jsonl), "--model", checkpoint,
                     "--batch", "2", "--quiet"])
        running.clear()
    finally:
        running.clear()
        signal.signal(signal.SIGINT, before)
    assert code == 130
    table, written = rows(jsonl), probe(out)
    assert 10 <= len(table) < 300
    assert len(table) <= len(written["times"]) <= len(table) + 1  # a frame written just before its row
    assert [r["frame"] for r in table] == list(range(len(table)))
