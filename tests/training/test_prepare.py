"""`soundlens data prepare` on real videos (H.264 + AAC mono/stereo mp4, H.264 + Opus mkv), a
truncated copy and a video without sound; then resume after an interruption."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from soundlens.tools.main import main
from soundlens.training.prepare import key_times

REAL = {"1aDnyPubxdY_118000_128000.mp4": ("1aDnyPubxdY_000118", (240, 320), 10.0),
        "3qesirWAGt4_20000_30000.mp4": ("3qesirWAGt4_000020", (720, 1280), 10.0),
        "6zlMP_kQ_-w_30000_40000.mp4": ("6zlMP_kQ_-w_000030", (360, 480), 10.0),
        "cartoon_720p_opus.mkv": ("cartoon_720p_opus", (720, 1280), 7.421)}


def write_silent_video(path: Path, frames: int = 12) -> None:
    """A real H.264 mp4 with a video stream and no audio stream (written with PyAV)."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=12)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.time_base = Fraction(1, 12)
        for i in range(frames):
            img = np.full((48, 64, 3), (i * 20) % 255, np.uint8)
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


@pytest.fixture(scope="module")
def videos(fixtures_dir, tmp_path_factory) -> Path:
    src = fixtures_dir / "videos"
    if not all((src / name).is_file() for name in REAL):
        pytest.skip(f"the fixture videos {sorted(REAL)} are not all in {src}")
    d = tmp_path_factory.mktemp("videos")
    for name in REAL:
        shutil.copy(src / name, d / name)
    data = (src / "6zlMP_kQ_-w_30000_40000.mp4").read_bytes()
    # cut mid-file: its index (moov) is at the end
    (d / "broken_cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    (d / "nested").mkdir()
    write_silent_video(d / "nested" / "silent_clip.mp4")
    return d


def _nearest_frame(path: Path, t: float) -> np.ndarray:
    import av

    best = None
    with av.open(str(path)) as c:
        for f in c.decode(video=0):  # plain decode from the start, no seeking
            if best is None or abs(f.time - t) < abs(best[0] - t):
                best = (f.time, f.to_ndarray(format="rgb24"))
            if f.time > t + 0.5:
                break
    return best[1]


def test_prepare_writes_the_official_layout_reports_failures_and_resumes(videos, tmp_path, capsys):
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(videos), str(out), "--workers", "2", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "prepared 4 videos, 0 already done, 2 failed" in text
    report = json.loads((out / "prepare_report.json").read_text())
    assert (report["n_videos"], report["n_prepared"], report["n_failed"], report["n_complete"]) == (6, 4, 2,
                                                                                                    4)
    reasons = {Path(r["file"]).name: r["reason"] for r in report["failed"]}
    assert "no audio stream" in reasons["silent_clip.mp4"]
    assert "corrupt or truncated" in reasons["broken_cut.mp4"]
    ids = sorted(i for i, _, _ in REAL.values())
    assert (out / "prepared.txt").read_text().split() == ids
    for name, (sample_id, hw, duration) in REAL.items():
        wav, rate = sf.read(out / "audio" / f"{sample_id}.wav", always_2d=True)
        assert rate == 16000 and wav.shape[1] == 1 and abs(len(wav) / rate - duration) < 0.1
        assert sf.info(str(out / "audio" / f"{sample_id}.wav")).subtype == "PCM_16"
        assert 0.001 < np.abs(wav).max() <= 1.0
        frame = np.asarray(Image.open(out / "frames" / f"{sample_id}.jpg").convert("RGB"), dtype=np.float32)
        assert frame.shape[:2] == hw
        if hw[0] < 720:  # the middle frame (EZ-VSL issue #1), up to JPEG loss; small videos decode fast
            assert np.abs(frame - _nearest_frame(videos / name, duration / 2)).mean() < 3.0
    assert not list(out.rglob("*.part"))

    # Interrupted run: one id lost its frame (written last) and a temporary file is left behind.
    lost = "6zlMP_kQ_-w_000030"
    (out / "frames" / f"{lost}.jpg").unlink()
    (out / "frames" / f"{lost}.jpg.part").write_bytes(b"partial")
    kept = out / "audio" / "1aDnyPubxdY_000118.wav"
    stamp = kept.stat().st_mtime_ns
    assert main(["data", "prepare", str(videos), str(out), "--workers", "1", "--no-progress"]) == 0
    assert "prepared 1 videos, 3 already done, 2 failed" in capsys.readouterr().out
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["prepared"] == [lost] and report["n_complete"] == 4
    assert kept.stat().st_mtime_ns == stamp and (out / "frames" / f"{lost}.jpg").is_file()
    assert not list(out.rglob("*.part"))

    # The result is a training/eval data SPEC.
    from soundlens.training.data import build_dataset

    ds = build_dataset(str(out / "prepared.txt"))
    assert len(ds) == 4 and ds[0]["sample_rate"] == 16000 and ds[0]["frame"].dtype.is_floating_point is False


def test_prepare_key_frames(videos, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(videos / "cartoon_720p_opus.mkv", one / "cartoon_720p_opus.mkv")
    out = tmp_path / "out"
    assert main(["data", "prepare", str(one), str(out), "--frames", "3", "--rate", "22050",
                 "--no-progress"]) == 0
    keys = sorted((out / "keyframes" / "cartoon_720p_opus").glob("*.jpg"))
    assert [k.name for k in keys] == ["00.jpg", "01.jpg", "02.jpg"]
    assert key_times(7.421, 3)[1] == pytest.approx(7.421 / 2)
    middle = np.asarray(Image.open(out / "frames" / "cartoon_720p_opus.jpg"), dtype=np.float32)
    assert np.abs(middle - np.asarray(Image.open(keys[1]), dtype=np.float32)).mean() < 1.0
    assert sf.info(str(out / "audio" / "cartoon_720p_opus.wav")).samplerate == 22050


def test_prepare_bad_arguments(tmp_path, capsys):
    assert main(["data", "prepare", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["data", "prepare", str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    assert "holds no video files" in capsys.readouterr().err
