"""The procedural benchmark: determinism, ground truth, learnability of the sound, files on disk."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
import soundfile as sf
import torch
from soundlens.models.errors import SoundLensError
from soundlens.tools.main import main
from soundlens.training.synth import (
    CLASSES,
    SPECS,
    SceneConfig,
    SynthPairs,
    SynthVideo,
    make_scene,
    write_pairs,
    write_video,
)
from soundlens.training.synth.shapes import second_colour
from torch.utils.data import DataLoader

SMALL = SceneConfig(image_size=112, duration=1.0)


def test_classes_are_distinct():
    assert len(CLASSES) >= 10 and len(set(CLASSES)) == len(CLASSES)
    for field in ("shape", "colour", "sound"):
        assert len({getattr(s, field) for s in SPECS}) == len(SPECS), field


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = make_scene(7, SMALL), make_scene(7, SMALL), make_scene(8, SMALL)
    assert np.array_equal(a.frame, b.frame) and np.array_equal(a.waveform, b.waveform)
    assert a.label == b.label and np.array_equal(a.box, b.box) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.frame, c.frame) and not np.array_equal(a.waveform, c.waveform)
    assert a.frame.dtype == np.uint8 and a.frame.shape == (112, 112, 3)
    assert a.waveform.dtype == np.float32 and a.waveform.shape == (16000,)
    assert np.abs(a.waveform).max() <= 1.0


def test_pairs_are_deterministic_across_order_and_workers():
    ds = SynthPairs(8, seed=3, config=SMALL)
    backwards = [ds[i] for i in reversed(range(8))][::-1]
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    frames = torch.cat([b["frame"] for b in batches])
    waves = torch.cat([b["waveform"] for b in batches])
    for i, item in enumerate(backwards):
        assert torch.equal(frames[i], item["frame"]) and torch.equal(waves[i], item["waveform"])
        assert item["id"] == f"synth_{i:06d}"
    batch = batches[0]  # default_collate stacked every field
    assert batch["frame"].shape == (4, 112, 112, 3) and batch["frame"].dtype == torch.uint8
    assert batch["mask"].dtype == torch.bool and batch["box"].shape == (4, 4)
    assert batch["label"].dtype == torch.int64 and batch["silent"].dtype == torch.bool
    assert not torch.equal(SynthPairs(8, seed=4, config=SMALL)[0]["frame"], backwards[0]["frame"])
    with pytest.raises(IndexError):
        ds[8]


def _nearest_class_colour(pixels: np.ndarray) -> np.ndarray:
    # Objects are drawn with a brightness jitter, so compare against scaled class colours.
    refs, owners = [], []
    for k, spec in enumerate(SPECS):
        base = np.array(spec.colour, np.float32)
        for colour in (base, second_colour(base)):
            for b in np.linspace(0.85, 1.1, 6):
                refs.append(np.clip(colour * b, 0, 255))
                owners.append(k)
    d = ((pixels[:, None, :].astype(np.float32) - np.array(refs)[None]) ** 2).sum(-1)
    return np.array(owners)[d.argmin(1)]


@pytest.mark.parametrize("name", CLASSES)
def test_every_class_is_drawn_and_heard(name):
    cfg = SceneConfig(image_size=112, duration=1.0, classes=(name,), min_objects=1, max_objects=1)
    scene = make_scene(11, cfg)
    assert CLASSES[scene.label] == name and not scene.silent
    assert scene.mask.sum() > 40
    owners = _nearest_class_colour(scene.frame[scene.mask])
    assert (owners == CLASSES.index(name)).mean() > 0.9
    assert np.isfinite(scene.waveform).all() and np.abs(scene.waveform).max() > 0.2


def test_box_and_mask_agree_with_the_drawn_object():
    for seed in range(60):
        s = make_scene(seed, SMALL)
        assert not s.silent and s.sounding is not None
        assert 1 <= len(s.objects) <= 3
        assert s.objects[s.sounding][0] == s.label and np.array_equal(s.objects[s.sounding][1], s.box)
        x1, y1, x2, y2 = s.box
        assert 0 <= x1 < x2 <= 112 and 0 <= y1 < y2 <= 112
        side = max(x2 - x1, y2 - y1) / 112
        assert 0.08 <= side <= 0.41  # thin shapes (bar, semicircle) fill less than their disc
        ys, xs = np.nonzero(s.mask)
        assert xs.size > 0
        assert xs.min() >= x1 and xs.max() + 1 <= x2 and ys.min() >= y1 and ys.max() + 1 <= y2
        # The full box is mostly visible: occlusion by other objects is limited.
        visible = (xs.max() + 1 - xs.min()) * (ys.max() + 1 - ys.min())
        assert visible / ((x2 - x1) * (y2 - y1)) > 0.6
        assert (_nearest_class_colour(s.frame[s.mask]) == s.label).mean() > 0.9


def test_sounding_object_is_uniform_over_visible_objects():
    cfg = SceneConfig(image_size=64, duration=0.25, min_objects=3, max_objects=3, scale=(0.15, 0.3))
    order, largest = [], []
    for seed in range(600):
        s = make_scene(seed, cfg)
        assert s.label in [c for c, _ in s.objects]
        areas = [(b[2] - b[0]) * (b[3] - b[1]) for _, b in s.objects]
        order.append(s.sounding)
        largest.append(s.sounding == int(np.argmax(areas)))
    share = np.bincount(order, minlength=3) / len(order)
    assert np.all(np.abs(share - 1 / 3) < 0.07), share  # not the first drawn, not the last (on top)
    assert abs(np.mean(largest) - 1 / 3) < 0.07  # nor the most salient by size


def test_silent_scenes_and_distractors():
    cfg = SceneConfig(image_size=64, duration=0.5, silent_prob=1.0, distractor_prob=1.0)
    for seed in range(20):
        s = make_scene(seed, cfg)
        visible = [c for c, _ in s.objects]
        assert s.silent and s.sounding is None and s.label not in visible
        assert not s.box.any() and not s.mask.any()
        assert s.distractor is not None and s.distractor not in visible and s.distractor != s.label
    mixed = [make_scene(seed, SceneConfig(image_size=64, duration=0.25, silent_prob=0.3)).silent
             for seed in range(200)]
    assert 0.18 < np.mean(mixed) < 0.42
    with pytest.raises(SoundLensError):
        SceneConfig(max_objects=len(CLASSES), silent_prob=0.5)
    with pytest.raises(SoundLensError):
        SceneConfig(classes=("no_such_class",))


def _band_log_spectra(waveforms: np.ndarray) -> np.ndarray:
    """[B, N] waveforms -> [B, 32] log power in 250 Hz bands from a 512-point STFT, mean removed."""
    spec = torch.stft(torch.from_numpy(waveforms), n_fft=512, hop_length=256,
                      window=torch.hann_window(512), return_complex=True).abs() ** 2
    power = spec.mean(2).numpy()[:, 1:257].reshape(-1, 32, 8).mean(2)
    logp = np.log(power + 1e-10)
    return logp - logp.mean(1, keepdims=True)  # loudness is random: compare shapes only


def test_audio_alone_identifies_the_class():
    cfg = SceneConfig(image_size=32, duration=1.5)
    scenes = [make_scene(seed, cfg) for seed in range(400)]
    x = _band_log_spectra(np.stack([s.waveform for s in scenes]))
    y = np.array([s.label for s in scenes])
    train, test = slice(0, 200), slice(200, 400)
    assert set(y[train]) == set(range(len(CLASSES)))
    centroids = np.stack([x[train][y[train] == k].mean(0) for k in range(len(CLASSES))])
    pred = ((x[test][:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (pred == y[test]).mean() >= 0.9


def test_write_pairs_round_trip(tmp_path):
    cfg = SceneConfig(image_size=96, duration=1.0, silent_prob=0.4)
    out = write_pairs(tmp_path / "pairs", 8, seed=5, config=cfg)
    ann = json.loads((out / "annotations.json").read_text())
    ids = (out / "train.txt").read_text().split()
    meta = json.loads((out / "synth.json").read_text())
    assert ids == [a["file"] for a in ann] == [f"synth_{i:06d}" for i in range(8)]
    assert meta["seed"] == 5 and meta["config"]["image_size"] == 96 and meta["classes"] == list(CLASSES)
    ds = SynthPairs(8, seed=5, config=cfg)
    assert any(ds[i]["silent"] for i in range(8)) and not all(ds[i]["silent"] for i in range(8))
    for i, entry in enumerate(ann):
        item = ds[i]
        frame = cv2.imread(str(out / "frames" / f"{entry['file']}.jpg"))[..., ::-1]
        assert frame.shape == (96, 96, 3)
        assert np.abs(frame.astype(int) - item["frame"].numpy()).mean() < 6  # JPEG
        wav, sr = sf.read(str(out / "audio" / f"{entry['file']}.wav"), dtype="float32")
        assert sr == 16000 and sf.info(str(out / "audio" / f"{entry['file']}.wav")).subtype == "PCM_16"
        assert np.abs(wav - item["waveform"].numpy()).max() < 2 / 32768
        assert entry["class"] == CLASSES[item["label"]]
        if item["silent"]:
            assert entry["bbox"] == []
        else:
            np.testing.assert_allclose(entry["bbox"][0], item["box"].numpy() / 96, atol=1e-5)
    with pytest.raises(SoundLensError):
        write_pairs(out, 2, config=cfg)  # not empty


def test_synth_video_in_memory():
    cfg = SceneConfig(image_size=96, max_objects=3, min_objects=2)
    video = SynthVideo(12.0, seed=2, config=cfg, fps=10)
    assert video.n_frames == 120 and video.audio().shape == (12 * 16000,)
    assert video.audio(1.0, 1.5).shape == (8000,)
    assert np.array_equal(video.frame(37), SynthVideo(12.0, seed=2, config=cfg, fps=10).frame(37))
    assert not np.array_equal(video.frame(0), video.frame(20))  # objects move
    sounding = [s for s in video.segments if s.sounding is not None]
    for seg in video.segments[:-1]:
        length = seg.stop - seg.start
        assert 1.5 <= length <= 4.0 if seg.heard is not None else 0.3 <= length <= 0.8
    assert all(a.sounding != b.sounding for a, b in zip(sounding, sounding[1:]))
    for i in range(0, 120, 7):
        truth = video.truth(i)
        classes = [o["class"] for o in truth["objects"]]
        if truth["sounding"] is not None:
            assert truth["box"] == truth["objects"][classes.index(truth["sounding"])]["box"]


def test_write_video_decodes_with_pyav_and_opencv(tmp_path):
    path = tmp_path / "clip.mp4"
    sidecar = write_video(path, 1.3, seed=4, config=SceneConfig(image_size=96), fps=30)
    assert sidecar == tmp_path / "clip.json"
    meta = json.loads(sidecar.read_text())
    assert (meta["fps"], meta["width"], meta["height"], meta["sample_rate"]) == (30, 96, 96, 16000)
    assert [f["index"] for f in meta["frames"]] == list(range(39))

    with av.open(str(path)) as container:
        vstream, astream = container.streams.video[0], container.streams.audio[0]
        assert vstream.codec_context.name == "h264" and astream.codec_context.name == "aac"
        assert vstream.average_rate == 30 and astream.sample_rate == 16000
        assert float(astream.duration * astream.time_base) == pytest.approx(1.3, abs=1e-3)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert len(frames) == 39 and frames[0].shape == (96, 96, 3)
    assert abs(audio.size - 1.3 * 16000) <= 1024  # at most the padding of one AAC frame
    expected = SynthVideo(1.3, seed=4, config=SceneConfig(image_size=96), fps=30).frame(20)
    assert np.abs(frames[20].astype(int) - expected).mean() < 8  # right frame, in order

    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 39 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (96, 96)
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == 39


def test_cli_writes_pairs_and_video(tmp_path, capsys):
    assert main(["synth", "pairs", "--n", "20", "--out", str(tmp_path / "p")]) == 0
    assert len(list((tmp_path / "p" / "frames").glob("*.jpg"))) == 20
    assert len(list((tmp_path / "p" / "audio").glob("*.wav"))) == 20
    assert len(json.loads((tmp_path / "p" / "annotations.json").read_text())) == 20
    assert "wrote 20 pairs" in capsys.readouterr().out
    assert main(["synth", "pairs", "--n", "2", "--out", str(tmp_path / "p")]) == 2  # not empty
    assert "--overwrite" in capsys.readouterr().err
    assert main(["synth", "video", "--seconds", "1", "--size", "64", "--out", str(tmp_path / "v.mp4")]) == 0
    assert (tmp_path / "v.mp4").stat().st_size > 0 and (tmp_path / "v.json").exists()
    assert main(["synth", "video", "--seconds", "1", "--size", "63", "--out", str(tmp_path / "w.mp4")]) == 2
