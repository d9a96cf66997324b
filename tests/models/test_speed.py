"""Inference forms keep the answer, and `soundlens bench speed` runs and writes its report.

Speed itself is measured by the bench (docs/benchmarks.md#speed), never asserted here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from soundlens import models
from soundlens.models.frontends import AudioFrontend
from soundlens.models.inference import (
    MAP_TOLERANCE,
    export_onnx,
    fold_batchnorm,
    for_inference,
    map_difference,
    onnx_localizer,
    onnx_path,
    optimize_for_inference,
)
from soundlens.models.speed import SpeedConfig, bench_speed, calibrate_batchnorm, markdown
from soundlens.tools.main import main
from torch import nn

METHODS = ("ezvsl", "lvs", "slavc", "sslalign", "jsa", "sira")


def _inputs(model, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (batch, 90, 120, 3), dtype=np.uint8)
    rate = model.audio_preset.sample_rate
    wav = (0.3 * rng.standard_normal(
        (batch, int(model.audio_preset.input_seconds * rate)))).astype(np.float32)
    return frames, wav, rate


@pytest.mark.parametrize("method", METHODS)
def test_optimised_copy_keeps_the_map_and_leaves_the_model(method):
    torch.manual_seed(0)
    # trained-like BatchNorm statistics: with the init's, float32 rounding alone moves a random SIRA's
    # map by 3.6e-4 (calibrate_batchnorm says why)
    model = calibrate_batchnorm(models.create(method))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules()), "a BatchNorm was not folded"
    frames, wav, rate = _inputs(model)
    with torch.no_grad():
        want = model.localize(frames, wav, rate)
    with torch.inference_mode():
        got = fast.localize(frames, wav, rate)
    assert got.shape == want.shape
    if method == "sira":
        # An untrained SIRA's map is nearly flat (range ~0.5 on values ~1.7, after a ResNet-18, a flow
        # trunk and recursive attention), so min-max normalisation magnifies float32 rounding ~4x and
        # the 1e-4 bar depends on the CPU's kernels (8e-4 with one thread here, 4e-4 with the
        # "default" numerics profile). The raw maps are compared relative to their size instead.
        assert (got - want).abs().max() <= 5e-4 * want.abs().max()
    else:
        assert map_difference(got, want) <= MAP_TOLERANCE
    # the original still trains and saves: its BatchNorms and weights are untouched
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_lite_and_efficientnet_trunks_fold_too():
    for encoder in ("lite",):
        model = models.create("ezvsl", encoder=encoder).eval()
        # non-trivial statistics, so a wrong fold would show
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
        fast = optimize_for_inference(model)
        frames, wav, rate = _inputs(model)
        with torch.no_grad():
            assert map_difference(fast.localize(frames, wav, rate),
                                  model.localize(frames, wav, rate)) <= MAP_TOLERANCE


def test_fold_counts_conv_bn_pairs_only():
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4)).eval()
    seq[3].running_mean.fill_(1.0)
    x = torch.randn(1, 3, 8, 8)
    want = seq(x)
    assert fold_batchnorm(seq) == 1  # the BatchNorm after the ReLU is not fed by a conv: kept
    assert isinstance(seq[1], nn.Identity) and isinstance(seq[3], nn.BatchNorm2d)
    torch.testing.assert_close(seq(x), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset", ["ezvsl", "jsa", "ssltie", "htf"])
def test_cached_frontend_equals_per_call_frontend(preset):
    p = models.audio_preset(preset)
    wav = torch.from_numpy(np.random.default_rng(1).standard_normal((3, int(p.input_seconds * p.sample_rate)))
                           .astype(np.float32) * 0.2)
    cached, fresh = AudioFrontend(p), AudioFrontend(p, cache=False)
    first = cached(wav, p.sample_rate)
    assert len(cached._tensors) == 1 and not fresh._tensors
    torch.testing.assert_close(cached(wav, p.sample_rate), first, rtol=0, atol=0)
    torch.testing.assert_close(fresh(wav, p.sample_rate), first, rtol=0, atol=0)
    assert first.shape == (3, *p.shape)


def test_a_stand_in_model_is_served_as_it_is():
    class Plain(nn.Module):
        def forward(self, x):
            return x

    plain = Plain()
    assert for_inference(plain) is plain


def test_onnx_graph_equals_eager_and_is_cached(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    monkeypatch.setenv("SOUNDLENS_HOME", str(tmp_path / "home"))
    model = models.create("ezvsl", encoder="lite").eval()
    ckpt = models.save(model, tmp_path / "m.safetensors")
    path = onnx_path(model, ckpt)
    assert path.parent == tmp_path and path.name.startswith("m.") and path.suffix == ".onnx"
    runner = onnx_localizer(model, ckpt)
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    frames, wav, rate = _inputs(model, batch=3)
    with torch.no_grad():
        want = model.localize(frames, wav, rate)
    assert map_difference(runner.localize(frames, wav, rate), want) <= MAP_TOLERANCE
    onnx_localizer(model, ckpt)  # second time: read from the cache, not exported again
    assert path.stat().st_mtime_ns == stamp
    # a model without a checkpoint file caches under $SOUNDLENS_HOME/onnx, keyed by its weights
    assert onnx_path(model).parent == tmp_path / "home" / "onnx"


def test_onnx_export_failure_is_one_error_and_eager_fallback(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    model = models.create("jsa", encoder="lite").eval()  # adaptive pooling to a traced size: not exportable
    with pytest.raises(models.errors.SoundLensError, match="cannot be exported to ONNX"):
        export_onnx(model, tmp_path / "jsa.onnx")
    assert not list(tmp_path.glob("*.onnx*"))
    runner = for_inference(model, "onnxruntime", checkpoint=None, fallback=True)
    assert isinstance(runner, nn.Module) and "plain eager model" in capsys.readouterr().err


def test_bench_speed_report(tmp_path):
    config = SpeedConfig(methods=("ezvsl",), batches=(1, 2), repeats=1, options={"encoder": "lite"})
    report = bench_speed(config)
    forms = [(r["batch"], r["form"]) for r in report["results"]]
    assert forms == [(1, "reference"), (1, "eager"), (2, "reference"), (2, "eager")]
    for r in report["results"]:
        assert r["max_map_diff"] <= MAP_TOLERANCE and r["equal_to_1e-4"]
        assert r["total_ms"]["median"] > 0 and r["clips_per_s"] > 0 and r["peak_memory_mb"] > 0
        assert set(r["stages_ms"]) == {"front_end", "image_trunk", "audio_trunk", "head"}
        assert r["speedup_vs_reference"] > 0
    assert report["results"][0]["max_map_diff"] == 0.0
    assert "| ezvsl | 2 | eager |" in markdown(report)


def test_bench_speed_cli_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "speed.json"
    backends = "eager,onnxruntime" if _has_onnx() else "eager"
    rc = main(["bench", "speed", "--methods", "lvs", "--batch", "1", "--repeats", "1", "--encoder", "lite",
               "--backend", backends, "--out", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["command"].startswith("soundlens bench speed --methods lvs")
    assert [r["form"] for r in report["results"]] == ["reference", *backends.split(",")]
    assert "| lvs | 1 | reference |" in out.with_suffix(".md").read_text()
    assert "x reference" in capsys.readouterr().out


def test_bench_speed_reports_a_form_a_method_lacks():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    report = bench_speed(SpeedConfig(methods=("jsa",), batches=(1,), repeats=1,
                                     backends=("eager", "onnxruntime"), stages=False,
                                     options={"encoder": "lite"}))
    rows = {r["form"]: r for r in report["results"]}
    assert (rows["eager"]["equal_to_1e-4"]
            and "cannot be exported to ONNX" in rows["onnxruntime"]["unavailable"])
    assert "| jsa | 1 | onnxruntime | unavailable" in markdown(report)


def _has_onnx() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("method", ["ezvsl", "lvs"])
def test_cuda_optimised_form_keeps_the_map(method):
    model = calibrate_batchnorm(models.create(method))
    frames, wav, rate = _inputs(model)
    with torch.no_grad():
        want = model.localize(frames, wav, rate)
    fast = for_inference(model, device="cuda", fallback=False)
    with torch.inference_mode():
        got = fast.localize(frames, wav, rate)
    assert got.is_cuda and map_difference(got, want) <= 1e-3  # TF32 convolutions on the GPU


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_bench_speed_runs():
    report = bench_speed(SpeedConfig(methods=("ezvsl",), batches=(1,), repeats=2, device="cuda"))
    assert all(r["equal_to_1e-4"] or r["max_map_diff"] <= 1e-3 for r in report["results"])
    assert (report["host"]["device"].lower().startswith(("cuda", "nvidia"))
            or "cuda" in report["host"]["device"])
