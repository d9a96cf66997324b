"""`--backend` on every command that runs a model (live, analyze, localize, eval): ONNX Runtime gives
the eager model's answer, through the same code paths (models.inference.for_inference)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from soundlens import models
from soundlens.models.inference import BACKENDS
from soundlens.realtime import Subscriber
from soundlens.realtime.pipeline import LiveConfig, LivePipeline
from soundlens.realtime.publisher import PublisherConfig
from soundlens.realtime.sources import SyntheticConfig, SyntheticSource
from soundlens.realtime.worker import WorkerConfig
from soundlens.tools import commands
from soundlens.tools.commands.localize import localize_files
from soundlens.tools.main import main
from soundlens.training.synth import SceneConfig, SynthVideo, write_video
from soundlens.training.synth.pairs import SynthPairs

pytest.importorskip("onnxruntime", reason="optional extra: pip install 'soundlens[onnx]'")
pytest.importorskip("onnx", reason="optional extra: pip install 'soundlens[onnx]'")


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOUNDLENS_HOME", str(tmp_path / "home"))  # exported graphs go here


def test_the_cli_offers_the_models_backends():
    assert commands.BACKENDS == BACKENDS  # spelled out there so that --help does not load torch


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_analyze_gives_the_same_peaks_on_onnxruntime(checkpoint, tmp_path):
    clip = tmp_path / "clip.mp4"
    write_video(clip, 1.2, seed=4, config=SceneConfig(image_size=112))  # returns its JSON sidecar
    rows = {}
    for backend in BACKENDS:
        jsonl = tmp_path / f"{backend}.jsonl"
        assert main(["analyze", str(clip), "-o", str(tmp_path / f"{backend}.mp4"), "--jsonl", str(jsonl),
                     "--model", checkpoint, "--quiet", "--device", "cpu", "--backend", backend]) == 0
        rows[backend] = _rows(jsonl)
    eager, ort = rows["eager"], rows["onnxruntime"]
    assert len(eager) == len(ort) >= 25
    for a, b in zip(eager, ort, strict=True):
        assert len(a["peaks"]) == len(b["peaks"])  # sub-cell peak positions: equal to 1e-3 px
        xy = [[(p["x"], p["y"]) for p in row["peaks"]] for row in (a, b)]
        np.testing.assert_allclose(*xy, atol=1e-3)
        np.testing.assert_allclose([p["score"] for p in a["peaks"]], [p["score"] for p in b["peaks"]],
                                   rtol=1e-4, atol=1e-5)


def test_localize_gives_the_same_peak_on_onnxruntime(checkpoint, tmp_path):
    scene = SynthPairs(1, seed=5, config=SceneConfig(image_size=112)).scene(0)
    Image.fromarray(scene.frame).save(tmp_path / "frame.png")
    sf.write(tmp_path / "sound.wav", scene.waveform, scene.sample_rate)
    peaks = {backend: localize_files(checkpoint, str(tmp_path / "frame.png"), str(tmp_path / "sound.wav"),
                                     str(tmp_path / f"{backend}.png"), device="cpu", top_k=3, backend=backend)
             for backend in BACKENDS}
    np.testing.assert_allclose(peaks["eager"], peaks["onnxruntime"], atol=1e-6)


def test_eval_maps_on_onnxruntime_equal_the_trained_model(checkpoint, tmp_path):
    bench = tmp_path / "bench"
    assert main(["synth", "pairs", "--n", "6", "--out", str(bench), "--image-size", "112",
                 "--workers", "1"]) == 0
    maps = {}
    for name, flags in (("plain", []), ("onnxruntime", ["--backend", "onnxruntime"])):
        out = tmp_path / f"{name}.npz"
        assert main(["eval", "--model", checkpoint, "--data", str(bench), "--protocol", "ezvsl",
                     "--device", "cpu", "--no-retrieval", "--save-maps", str(out), *flags]) == 0
        maps[name] = np.load(out)
    assert sorted(maps["plain"].files) == sorted(maps["onnxruntime"].files)
    for key in maps["plain"].files:
        a, b = maps["plain"][key], maps["onnxruntime"][key]
        assert np.abs(a - b).max() <= 1e-4 * max(1.0, np.abs(a).max()), key


def test_live_worker_serves_the_backend_it_is_given(checkpoint):
    model = models.load(checkpoint, device="cpu")
    source = SyntheticSource(SynthVideo(1.0, seed=2, config=SceneConfig(image_size=112)),
                             SyntheticConfig(realtime=False, sample_rate=model.audio_preset.sample_rate))
    config = LiveConfig(worker=WorkerConfig(hop=0, device="cpu", backend="onnxruntime"),
                        publisher=PublisherConfig(address="tcp://127.0.0.1:*"))
    received = []
    with LivePipeline(model, source, source, config) as pipeline:
        form = pipeline.worker.localizer.model.inference_form
        sub = Subscriber(pipeline.publisher.address, listener=lambda m, t: received.append(m)).start()
        pipeline.run()
        pipeline.worker.stop()
        sub.close()
    assert form.startswith("onnxruntime")
    assert sum(m.kind == "heatmap" for m in received) >= 10
