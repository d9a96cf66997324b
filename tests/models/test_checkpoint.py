"""Safetensors checkpoints rebuild the model from the file alone; bad files get one clear error."""

import json

import pytest
import torch
from soundlens import models
from soundlens.models.errors import SoundLensError


def test_round_trip_rebuilds_identical_model(tmp_path):
    torch.manual_seed(0)
    model = models.create("lvs", encoder="lite", epsilon=0.6).eval()
    path = models.save(model, tmp_path / "m.safetensors", trained_on={"dataset": "unit-test"})
    loaded = models.load(path)
    assert loaded.method == "lvs" and loaded.config.epsilon == 0.6 and loaded.config.encoder == "lite"
    assert loaded.trained_on == {"dataset": "unit-test"}
    images, specs = torch.randn(2, 3, 112, 112), torch.randn(2, 1, 257, 200)
    with torch.no_grad():
        torch.testing.assert_close(loaded.heatmap(images, specs), model.heatmap(images, specs))


def test_metadata_is_readable_without_torch(tmp_path):
    from safetensors import safe_open

    path = models.save(models.create("ezvsl", encoder="lite"), tmp_path / "m.safetensors")
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    assert meta["format"] == "soundlens.checkpoint" and meta["method"] == "ezvsl"
    assert json.loads(meta["audio_preset"])["name"] == "ezvsl"
    assert json.loads(meta["image_preset"])["size"] == 112
    assert meta["soundlens_version"]


def test_truncated_checkpoint(tmp_path):
    path = models.save(models.create("ezvsl", encoder="lite"), tmp_path / "m.safetensors")
    data = path.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(SoundLensError, match="truncated|not a safetensors|corrupt"):
            models.load(bad)


def test_pickle_checkpoint_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"model": Evil()}, path)
    with pytest.raises(SoundLensError, match="never unpickles"):
        models.load(path)
    assert not marker.exists()


def test_foreign_safetensors_and_missing_file(tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(SoundLensError, match="not a SoundLens checkpoint"):
        models.load(foreign)
    with pytest.raises(SoundLensError, match="not found"):
        models.load(tmp_path / "nope.safetensors")
    with pytest.raises(SoundLensError, match="is a method"):
        models.load("ezvsl")
