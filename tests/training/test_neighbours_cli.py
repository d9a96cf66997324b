"""SSL-Align's conceptual positives end to end: `soundlens data neighbours` mines the index next to a
prepared folder, and `soundlens train --method sslalign` on that folder trains with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from soundlens import models
from soundlens.tools.main import main
from soundlens.training.neighbours import NeighbourIndex


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    assert main(["synth", "pairs", "--n", "24", "--out", str(root), "--image-size", "112", "--workers",
                 "1"]) == 0
    return root


def test_mine_then_train_with_conceptual_positives(folder, tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "ezvsl.safetensors"
    models.save(models.create("ezvsl", encoder="lite").eval(), ckpt)
    assert main(["data", "neighbours", str(folder), "--checkpoint", str(ckpt), "--k", "4"]) == 0
    index = NeighbourIndex.load(folder / "neighbours.npz")
    assert index.image.shape == (24, 4) and index.audio.shape == (24, 4)
    assert not (index.image == np.arange(24)[:, None]).any()  # an item is never its own neighbour
    assert len(index.ids) == 24 and index.meta["k"] == 4
    capsys.readouterr()

    out = tmp_path / "run"
    assert main(["train", "--method", "sslalign", "--data", str(folder), "--encoder", "lite", "--epochs", "1",
                 "--batch-size", "8", "--log-every", "1", "--no-progress", "--out", str(out)]) == 0
    assert f"conceptual positives from {folder / 'neighbours.npz'}" in capsys.readouterr().out
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in steps if r["event"] == "step"]
    assert len(steps) == 3 and all(r["conceptual"] == 1.0 for r in steps)  # 24 clips / batch 8, every step


def test_neighbours_errors_name_the_fix(folder, tmp_path, capsys):
    assert main(["data", "neighbours", "procedural:100", "--checkpoint", "x.safetensors"]) == 2
    assert "prepared folder" in capsys.readouterr().err
    assert main(["data", "neighbours", str(folder), "--k", "4"]) == 2
    assert "name the encoder" in capsys.readouterr().err
    assert main(["train", "--method", "sslalign", "--data", str(folder), "--neighbours",
                 str(tmp_path / "no.npz"), "--encoder", "lite", "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_corrupt_index_is_one_error_that_names_the_fix(folder, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an index")
    assert main(["train", "--method", "sslalign", "--data", str(folder), "--neighbours", str(bad),
                 "--encoder", "lite", "--epochs", "1", "--batch-size", "8", "--no-progress", "--out",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert ("not a readable neighbour index" in err and "soundlens data neighbours" in err
            and "Traceback" not in err)
