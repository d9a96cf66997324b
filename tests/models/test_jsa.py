"""JSA (official_repos.md §2.8): joint slot attention, its losses, inference maps and eval behaviour."""

import torch
from soundlens import models
from soundlens.models.layers import JointSlotAttention
from soundlens.models.maps import minmax
from soundlens.models.methods.jsa import reciprocal_keep, slot_divergence
from soundlens.training.engine import model_inputs
from soundlens.training.synth import SceneConfig, SynthPairs
from torch.utils.data import default_collate


def synth_inputs(model, n=8, seed=3):
    ds = SynthPairs(n, seed=seed, config=SceneConfig(image_size=112))
    return model_inputs(model, default_collate([ds[i] for i in range(n)]), train=False)


def test_paper_constants_and_token_grids():
    cfg = models.make_config("jsa")
    assert (cfg.num_slots, cfg.iters, cfg.mask_ratio, cfg.tau, cfg.reciprocal_k) == (2, 5, 0.1, 0.03, 20)
    assert (cfg.lam_recon, cfg.lam_div, cfg.lam_match, cfg.infer_sharpening) == (0.1, 0.1, 100.0, 0.1)
    assert cfg.audio_preset == "jsa" and cfg.image_preset_name() == "jsa"
    model = models.create("jsa")
    assert model.image_grid == (7, 7) and model.audio_tokens == 16  # 49 image tokens, T 16 for 257x501


def test_reciprocal_false_negatives_are_removed_and_k_is_clamped():
    g = torch.Generator().manual_seed(0)
    img, aud = torch.randn(6, 32, generator=g), torch.randn(6, 32, generator=g)
    img[1], aud[1] = img[0] + 0.01, aud[0] + 0.01  # 0 and 1: each other's nearest in both modalities
    img, aud = torch.nn.functional.normalize(img, dim=1), torch.nn.functional.normalize(aud, dim=1)
    keep = reciprocal_keep(img, aud, k=2)  # top-2 = oneself + the nearest other clip
    expected = torch.ones(6, 6, dtype=torch.bool)
    expected[0, 1] = expected[1, 0] = False
    assert torch.equal(keep, expected)
    aud[1] = -aud[0]  # 1 is no longer 0's audio neighbour: not a false negative any more
    assert reciprocal_keep(img, aud, k=2).all()
    keep = reciprocal_keep(img, img, k=20)  # k > batch: clamped, every other clip is a neighbour
    assert torch.equal(keep, torch.eye(6, dtype=torch.bool))


def test_slot_divergence_and_slot_attention_normalisation():
    same = torch.nn.functional.normalize(torch.ones(3, 2, 4), dim=2)
    assert slot_divergence(same).item() == 1.0
    assert slot_divergence(torch.eye(2)[None].repeat(3, 1, 1)).item() == 0.0
    sa = JointSlotAttention(dim=16, num_slots=2, iters=3).eval()
    out = sa(torch.randn(4, 9, 16), torch.randn(4, 5, 16))
    for attn, n in ((out.img_img, 9), (out.aud_img, 9), (out.img_aud, 5), (out.aud_aud, 5)):
        assert attn.shape == (4, 2, n)
        torch.testing.assert_close(attn.sum(-1), torch.ones(4, 2))  # renormalised over tokens


def test_eval_mode_is_eval_behaviour_and_maps():
    torch.manual_seed(0)
    model = models.create("jsa", encoder="lite", dim=64)
    inputs = synth_inputs(model, n=4)
    images, specs = inputs["images"], inputs["specs"]
    model.train()  # token masking draws differ between calls
    torch.manual_seed(1)
    a = model.loss(inputs)["loss"].item()
    torch.manual_seed(2)
    assert model.loss(inputs)["loss"].item() != a
    model.eval()  # the release's eval() never switched modes (§2.8); ours does: no masking
    with torch.no_grad():
        torch.manual_seed(1)
        a = model.loss(inputs)["loss"].item()
        torch.manual_seed(2)
        assert model.loss(inputs)["loss"].item() == a
        aud, img = model.maps(images, specs)
        h, w = model.image_grid
        assert aud.shape == img.shape == (4, h, w)
        torch.testing.assert_close(aud.sum(dim=(1, 2)), torch.ones(4))  # attention over the image tokens
        torch.testing.assert_close(model.heatmap(images, specs), aud)
        model.config.iqr = True  # image-query refinement: minmax(0.4 AUD + 0.6 IMG)
        fused = model.heatmap(images, specs)
        torch.testing.assert_close(fused, minmax(0.4 * minmax(aud) + 0.6 * minmax(img)))
        assert fused.amin().item() == 0.0 and abs(fused.amax().item() - 1.0) < 1e-6


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    # small slots for CPU speed; k 2 so a batch of 8 keeps negatives (k is clamped to the batch)
    model = models.create("jsa", encoder="lite", dim=128, reciprocal_k=2)
    inputs = synth_inputs(model)

    def seeded():
        model.train()
        torch.manual_seed(123)
        with torch.no_grad():
            return model.loss(inputs)

    before = seeded()
    assert before["kept_negatives"] > 0.5
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(8):
        model.train()
        loss = model.loss(inputs)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = seeded()
    assert after["loss"] < 0.9 * before["loss"] and after["infonce"] < before["infonce"]
