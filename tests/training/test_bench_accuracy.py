"""`soundlens bench accuracy` with a tiny budget: every method trains, is scored, and the table and
plots are written (the real run is the lead's; docs/benchmarks.md holds its command)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from soundlens.tools.main import main
from soundlens.training.params import short_run_options


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_bench_accuracy_tiny_budget(tmp_path, capsys):
    out = tmp_path / "acc"
    argv = ["bench", "accuracy", "--methods", "ezvsl,lvs", "--data", "procedural", "--pairs", "16",
            "--epochs", "1", "--batch-size", "8", "--test-pairs", "8", "--val-pairs", "8", "--gallery", "3",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    doc = json.loads((out / "accuracy.json").read_text())
    assert [r["method"] for r in doc["results"]] == ["ezvsl", "lvs"]
    assert doc["n_test"] == 8 and doc["command"].startswith("soundlens bench accuracy --methods ezvsl,lvs")
    for r in doc["results"]:
        for key in ("cIoU", "AUC", "cIoU_adap", "AUC_adap", "mean_cIoU", "hit_rate", "a2i_R@1", "a2i_R@5",
                    "a2i_R@10", "i2a_R@1", "i2a_R@5", "i2a_R@10"):
            assert 0.0 <= r[key] <= 1.0, (r["method"], key)
        assert r["train_time_s"] > 0 and r["epochs"] == 1 and len(r["success_curve"]) == 21
        assert r["success_curve"][0] == 1.0 and r["success_curve"] == sorted(r["success_curve"], reverse=True)
        assert len(r["success_curve_adap"]) == 21 and r["lr"] == 1e-3
        assert r["options"] == short_run_options(r["method"])
    table = (out / "accuracy.md").read_text()
    assert ("| method | cIoU | AUC | adaptive cIoU | adaptive AUC |" in table and "| ezvsl |" in table
            and "| lvs |" in table)
    assert doc["command"] in table and table in capsys.readouterr().out
    with Image.open(out / "success_curve.png") as img:
        assert img.size[0] >= 400 and img.size[1] >= 300
    with Image.open(out / "gallery.png") as img:  # a header row of frames + one row per method, 3 scenes
        assert img.size[1] == 3 * 160 and img.size[0] > 3 * 160

    # Re-running resumes the finished runs instead of training again.
    assert main(argv) == 0
    again = json.loads((out / "accuracy.json").read_text())
    assert [r["cIoU"] for r in again["results"]] == [r["cIoU"] for r in doc["results"]]


def test_bench_accuracy_rejects_bad_input(tmp_path, capsys):
    assert main(["bench", "accuracy", "--methods", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["bench", "accuracy", "--data", "/some/folder", "--out", str(tmp_path)]) == 2
    assert "only 'procedural'" in capsys.readouterr().err


def test_bench_accuracy_over_seeds_reports_mean_std_and_min(tmp_path, capsys):
    out = tmp_path / "acc"
    argv = ["bench", "accuracy", "--methods", "ezvsl", "--data", "procedural", "--pairs", "16", "--epochs",
            "1", "--batch-size", "8", "--test-pairs", "8", "--val-pairs", "8", "--gallery", "2",
            "--out", str(out), "--no-progress", "--seeds", "0,1"]
    assert main(argv) == 0
    doc = json.loads((out / "accuracy.json").read_text())
    assert doc["seeds"] == [0, 1] and "--seeds 0,1" in doc["command"] and "--seed " not in doc["command"]
    (row,) = doc["results"]
    assert [r["seed"] for r in row["per_seed"]] == [0, 1]
    assert (out / "seed0" / "runs" / "ezvsl").is_dir() and (out / "seed1" / "runs" / "ezvsl").is_dir()
    values = [r["AUC"] for r in row["per_seed"]]
    assert values[0] != values[1]  # the seeds trained different models
    spread = row["spread"]["AUC"]
    assert (spread["values"] == values and spread["min"] == min(values)
            and row["AUC"] == pytest.approx(sum(values) / 2))
    assert spread["std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    table = (out / "accuracy.md").read_text()
    assert "seeds 0, 1: mean ± sample std (min)" in table
    assert f"{100 * spread['mean']:.1f} ± {100 * spread['std']:.1f} ({100 * spread['min']:.1f})" in table
    assert main([*argv[:-1], "0,x"]) == 2
    assert "--seeds takes comma-separated integers" in capsys.readouterr().err
