"""A method is one file: everything below is the whole of a new method (config, model, loss with an
optional gather, recipe, official key map), and the CLI trains it, imports an "official" checkpoint
of it and serves it with nothing else touched."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch
from soundlens import models
from soundlens.models.base import MethodConfig, SoundLocalizer, l2, symmetric_ce
from soundlens.models.importers import OfficialSource
from soundlens.models.registry import _METHODS, Recipe, register_method
from soundlens.tools.main import main
from torch import nn


# --- the method file -----------------------------------------------------------------------------
@dataclass
class ToyConfig(MethodConfig):
    encoder: str = "lite"
    tau: float = 0.07


class Toy(SoundLocalizer):
    method = "toy"
    cannot_gather = None

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.imgnet, self.audnet = self._encoders("lite", "lite_audio")
        self.head = nn.Conv2d(self.imgnet.out_channels, self.audnet.out_channels, 1)

    def image_features(self, images):
        return l2(self.head(self.imgnet(images)))

    def audio_features(self, specs):
        return l2(self.audnet(specs).amax(dim=(2, 3)))

    def heatmap(self, images, specs):
        return torch.einsum("bchw,bc->bhw", self.image_features(images), self.audio_features(specs))

    def embed(self, images, specs):
        return l2(self.image_features(images).mean(dim=(2, 3))), self.audio_features(specs)

    def loss(self, batch, gather=None):
        v, a = self.image_features(batch["images"]), self.audio_features(batch["specs"])
        if gather is not None:
            v, a = gather(v), gather(a)
        sim = torch.einsum("nchw,mc->nmhw", v, a).flatten(2).amax(dim=2) / self.config.tau
        loss = symmetric_ce(sim)
        return {"loss": loss, "infonce": loss.detach()}


def remap_toy(state: dict) -> dict:
    """The "official" release calls the head `proj`."""
    return {k.replace("proj.", "head.", 1) if k.startswith("proj.") else k: v for k, v in state.items()}


TOY_RECIPE = Recipe(train={"lr": 3e-4})
TOY_OFFICIAL = {"toy-release": OfficialSource("toy", {}, remap_toy, origin="this test")}


def toy(config: ToyConfig) -> Toy:
    return Toy(config)
# --- end of the method file ----------------------------------------------------------------------


@pytest.fixture
def toy_registered():
    register_method("toy", ToyConfig, summary="a test's toy method", recipe=TOY_RECIPE,
                    official=TOY_OFFICIAL)(toy)
    yield
    _METHODS.pop("toy", None)


def test_a_new_method_in_one_file_trains_imports_and_serves(toy_registered, tmp_path, capsys):
    torch.set_num_threads(1)
    assert "toy" in models.available()
    run = tmp_path / "run"
    assert main(["train", "--method", "toy", "--data", "procedural:16,size=112", "--batch-size", "8",
                 "--epochs", "1", "--val-pairs", "8", "--no-progress", "--gather-negatives", "--out",
                 str(run)]) == 0
    trained = models.load(run / "latest.safetensors")
    assert isinstance(trained, Toy) and trained.trained_on["train"]["lr"] == 3e-4  # the recipe's lr

    official = {k.replace("head.", "proj.", 1) if k.startswith("head.") else k: v
                for k, v in trained.state_dict().items()}
    torch.save({"model": official}, tmp_path / "release.pth")
    imported = tmp_path / "imported.safetensors"
    assert main(["import", "--from", "toy-release", str(tmp_path / "release.pth"), "-o", str(imported)]) == 0
    back = models.load(imported)
    for (name, a), b in zip(trained.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), name

    image, audio, overlay = tmp_path / "scene.png", tmp_path / "sound.wav", tmp_path / "overlay.png"
    frame = np.zeros((112, 112, 3), np.uint8)
    cv2.circle(frame, (40, 60), 18, (0, 200, 255), -1)
    cv2.imwrite(str(image), frame)
    t = np.arange(3 * 16000) / 16000
    sf.write(str(audio), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    assert main(["localize", "--model", str(imported), "--image", str(image), "--audio", str(audio),
                 "-o", str(overlay)]) == 0
    assert cv2.imread(str(overlay)).shape == (112, 112, 3)
    out = capsys.readouterr().out
    assert "toy" in out or str(overlay) in out


def test_the_toy_loss_with_an_identity_gather_is_its_local_loss(toy_registered):
    model = models.create("toy").eval()
    batch = {"images": torch.randn(4, 3, 112, 112), "specs": torch.randn(4, 1, 257, 200)}
    torch.testing.assert_close(model.loss(batch, gather=lambda x: x)["loss"], model.loss(batch)["loss"])
