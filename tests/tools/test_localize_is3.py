"""`soundlens localize` on the real IS3 interactive case (shared/fixtures/is3_sample): one image, two
sounds (accordion, baby). Every registered method's checkpoint runs end to end on both."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from soundlens import models
from soundlens.tools.main import main


@pytest.fixture(scope="module")
def is3(fixtures_dir):
    folder = fixtures_dir / "is3_sample"
    meta = json.loads((folder / "boxes.json").read_text())
    return folder / meta["image"], [folder / s["audio"] for s in meta["sources"]]


@pytest.mark.parametrize("method", models.available())
def test_every_method_localizes_both_sounds(method, is3, tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / f"{method}.safetensors"
    models.save(models.create(method, encoder="lite").eval(), ckpt)
    image, sounds = is3
    size = Image.open(image).size
    overlays = []
    for k, sound in enumerate(sounds):
        out = tmp_path / f"{method}_{k}.png"
        assert main(["localize", "--model", str(ckpt), "--image", str(image), "--audio", str(sound),
                     "-o", str(out), "--device", "cpu", "--top-k", "2"]) == 0
        printed = capsys.readouterr().out
        assert f"{method} heatmap over {size[0]}x{size[1]} frame" in printed
        overlay = Image.open(out)
        assert overlay.size == size and overlay.mode == "RGB"
        overlays.append(np.asarray(overlay))
    # the audio changes the map: the two overlays differ (the frame underneath is the same)
    assert np.abs(overlays[0].astype(int) - overlays[1].astype(int)).max() > 0


def test_cli_with_the_shipped_model(is3, tmp_path):
    image, sounds = is3
    out = tmp_path / "accordion.png"
    run = subprocess.run([sys.executable, "-m", "soundlens.tools.main", "localize", "--image", str(image),
                          "--audio", str(sounds[0]), "-o", str(out), "--device", "cpu"], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "peak at (" in run.stdout and out.is_file()


def test_a_centre_crop_model_maps_onto_the_centre_of_a_wide_image(is3, tmp_path):
    # LVS' preset resizes the short side and centre-crops (official_repos.md §2.3): its map and peaks
    # belong to the central square of a wide image, and the sides keep the image's own pixels.
    from soundlens.tools.commands.localize import localize_files

    image, sounds = is3
    wide = np.zeros((160, 480, 3), np.uint8)
    wide[:, 160:320] = np.asarray(Image.open(image).convert("RGB").resize((160, 160)))
    wide[:, :160] = wide[:, 320:] = 90
    Image.fromarray(wide).save(tmp_path / "wide.png")
    torch.manual_seed(0)
    ckpt = tmp_path / "lvs.safetensors"
    models.save(models.create("lvs").eval(), ckpt)
    peaks = localize_files(str(ckpt), str(tmp_path / "wide.png"), str(sounds[0]), str(tmp_path / "out.png"),
                           device="cpu", top_k=3)
    assert peaks and all(1 / 3 <= u <= 2 / 3 for u, _ in peaks)
    out = np.asarray(Image.open(tmp_path / "out.png"))
    # outside the square, beyond the reach of a peak ring and its score label
    np.testing.assert_array_equal(out[:, :115], wide[:, :115])
    np.testing.assert_array_equal(out[:, 365:], wide[:, 365:])
