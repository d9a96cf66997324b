"""Every registered method honours the one interface, on both encoders."""

import pytest
import torch
from soundlens import models
from soundlens.models.errors import SoundLensError


def test_founding_methods_registered():
    assert {"ezvsl", "lvs"} <= set(models.available())
    assert models.available("ez*") == ["ezvsl"]


@pytest.mark.parametrize("name", models.available())
@pytest.mark.parametrize("encoder", [None, "lite"])
def test_interface_shapes_and_gradients(name, encoder):
    """Both encoders: the paper's (ResNet-18, 224 px) and the lite one."""
    torch.manual_seed(0)
    model = models.create(name, encoder=encoder)
    frames = torch.randint(0, 256, (2, 120, 160, 3), dtype=torch.uint8)
    wav = 0.1 * torch.randn(2, 16000 * 2)
    images, specs = model.prepare(frames, wav, 16000)
    assert images.shape[-1] == model.image_preset.size
    assert tuple(specs.shape[1:]) == model.audio_preset.shape
    maps = model.heatmap(images, specs)
    assert maps.dim() == 3 and maps.shape[0] == 2 and maps.shape[1] == maps.shape[2] >= 7
    img_emb, aud_emb = model.embed(images, specs)
    assert img_emb.shape == aud_emb.shape and img_emb.shape[0] == 2
    torch.testing.assert_close(img_emb.norm(dim=1), torch.ones(2))
    terms = model.loss({"images": images, "specs": specs})
    assert terms["loss"].dim() == 0 and torch.isfinite(terms["loss"])
    terms["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_create_rejects_unknown_options_and_methods():
    with pytest.raises(SoundLensError, match="no option"):
        models.create("ezvsl", temperature=0.1)
    with pytest.raises(SoundLensError, match="unknown method"):
        models.create("nope")
    # None means "keep the paper default", so unset CLI flags never override it
    assert models.create("ezvsl", tau=None).config.tau == 0.03


def test_paper_constants():
    assert models.make_config("ezvsl").tau == 0.03
    lvs = models.make_config("lvs")
    assert (lvs.epsilon, lvs.epsilon_neg, lvs.tau, lvs.logit_temperature) == (0.65, 0.4, 0.03, 0.07)
    # official parameter count of EZ-VSL (official_repos.md §2.1): 22,872,064
    assert sum(p.numel() for p in models.create("ezvsl").parameters()) == 22_872_064
    assert sum(p.numel() for p in models.create("ezvsl", encoder="lite").parameters()) < 4_000_000


def test_lvs_map_is_14x14_and_trimap_excludes_positives():
    from soundlens.models.layers import trimap_logits

    cfg = models.make_config("lvs")
    maps_all = torch.full((2, 2, 14, 14), -0.5)
    maps_all[0, 0] = maps_all[1, 1] = 0.9
    maps_pos = torch.stack([maps_all[0, 0], maps_all[1, 1]])
    logits = trimap_logits(maps_pos, maps_all, cfg.epsilon, cfg.epsilon_neg, cfg.tau, cfg.logit_temperature)
    assert logits.shape == (2, 4)
    # matched pairs are not counted again among the easy negatives
    assert torch.isinf(logits[0, 1]) and torch.isinf(logits[1, 2])
    assert logits[0, 0] == pytest.approx(0.9 / 0.07, rel=1e-4)
    model = models.create("lvs")
    images = torch.zeros(1, 3, 224, 224)
    specs = torch.zeros(1, 1, 257, 671)
    assert model.heatmap(images, specs).shape == (1, 14, 14)


def test_resize_map_modes_differ_and_keep_shape():
    m = torch.rand(2, 7, 7)
    a = models.resize_map(m, 224, mode="bilinear", align_corners=True)
    b = models.resize_map(m, (224, 224), mode="bicubic", align_corners=False)
    assert a.shape == b.shape == (2, 224, 224)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(a[:, 0, 0], m[:, 0, 0])  # align_corners keeps the corner cells
