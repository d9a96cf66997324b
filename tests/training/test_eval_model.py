"""`soundlens eval --model CKPT --data SPEC`: a checkpoint run over a dataset, scored like saved maps.

An untrained lite model is enough here: the test checks the report's structure and ranges, and
that the --model path gives exactly the numbers of saving its maps and using --predictions.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from soundlens.tools.main import main

# Report entries that both paths compute from the maps (everything but provenance and retrieval).
SCORES = ("protocol", "n", "cIoU", "AUC", "mean_cIoU", "mcIoU", "hit_rate", "n_undefined", "n_silent",
          "per_sample", "annotation_kind", "n_missing", "empty_gt")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _in_unit(x) -> bool:
    return x is None or (0.0 <= x <= 1.0)


def _model_vs_predictions(tmp_path, checkpoint, data, annotations, protocol):
    model_report, maps = tmp_path / "model.json", tmp_path / "maps.npz"
    assert main(["eval", "--model", str(checkpoint), "--data", str(data), "--protocol", protocol,
                 "--out", str(model_report), "--save-maps", str(maps)]) == 0
    pred_report = tmp_path / "pred.json"
    assert main(["eval", "--predictions", str(maps), "--data", str(annotations), "--protocol", protocol,
                 "--out", str(pred_report)]) == 0
    a, b = json.loads(model_report.read_text()), json.loads(pred_report.read_text())
    for key in SCORES:
        assert a[key] == b[key], key
    for key in ("cIoU", "AUC", "mean_cIoU", "mcIoU", "hit_rate"):
        assert _in_unit(a[key]), (key, a[key])
    assert len(a["per_sample"]) == a["n"] and all(_in_unit(v) for v in a["per_sample"].values())
    assert a["model"]["method"] == "ezvsl" and a["model"]["checkpoint"] == str(checkpoint)
    assert b["retrieval"] is None
    return a


def _check_retrieval(r, n):
    assert r["n"] == n and r["n_classes"] >= 2
    for direction in ("a2i", "i2a"):
        values = [r[f"{direction}_R@{k}"] for k in (1, 5, 10)]
        assert all(0.0 <= v <= 1.0 for v in values) and values == sorted(values)


def test_eval_model_on_procedural_pairs_written_by_synth(tmp_path, checkpoint, capsys):
    bench = tmp_path / "bench"
    assert main(["synth", "pairs", "--n", "12", "--out", str(bench), "--image-size", "112", "--silent-prob",
                 "0.25", "--workers", "1"]) == 0
    report = _model_vs_predictions(tmp_path, checkpoint, bench, bench, "ezvsl")
    assert report["n"] + report["n_silent"] == 12 and report["n_silent"] >= 1
    _check_retrieval(report["retrieval"], report["n"])
    text = capsys.readouterr().out
    assert "hit_rate" in text and "a2i_R@1" in text


def test_eval_model_on_real_vggss_clips(tmp_path, checkpoint, fixtures_dir):
    mini = fixtures_dir / "vggss_mini"
    report = _model_vs_predictions(tmp_path, checkpoint, mini, mini / "vggss_mini.json", "lvs")
    assert report["n"] == 7 and report["protocol"] == "lvs" and report["annotation_kind"] == "normalised"
    _check_retrieval(report["retrieval"], 7)  # 7 clips of 7 classes: R@10 covers the whole gallery
    assert report["retrieval"]["a2i_R@10"] == 1.0


def test_eval_model_on_a_procedural_spec(tmp_path, checkpoint):
    out = tmp_path / "r.json"
    assert main(["eval", "--model", str(checkpoint), "--data", "procedural:10,size=112,objects=2-3",
                 "--protocol", "sslalign", "--out", str(out), "--batch-size", "4"]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 10 and "iIoU" in report and "cIoU_adap" in report
    assert all(_in_unit(report[k]) for k in ("cIoU", "AUC", "cIoU_adap", "iIoU"))
    assert not math.isnan(report["hit_rate"])


def test_eval_model_errors(tmp_path, checkpoint, capsys):
    bare = tmp_path / "bare"
    (bare / "frames").mkdir(parents=True)
    (bare / "audio").mkdir()
    assert main(["eval", "--model", str(checkpoint), "--data", str(bare)]) == 2
    assert "has no annotations" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "missing.safetensors"), "--data", "procedural:4"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # exactly one of --model / --predictions
        main(["eval", "--model", str(checkpoint), "--predictions", "x.npz", "--data", "procedural:4"])
