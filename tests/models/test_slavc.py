"""SLAVC (official_repos.md §2.2): two projections, image dropout, momentum targets updated in after_step."""

import pytest
import torch
from soundlens import models
from soundlens.training.engine import model_inputs
from soundlens.training.synth import SceneConfig, SynthPairs
from torch.utils.data import default_collate


def synth_inputs(model, n=8, seed=3):
    ds = SynthPairs(n, seed=seed, config=SceneConfig(image_size=112))
    return model_inputs(model, default_collate([ds[i] for i in range(n)]), train=False)


def seeded_loss(model, inputs):
    model.train()
    torch.manual_seed(123)
    with torch.no_grad():
        return model.loss(inputs)["loss"].item()


def test_paper_constants_and_official_sizes():
    cfg = models.make_config("slavc")
    assert (cfg.tau, cfg.dropout_img, cfg.dropout_aud, cfg.momentum_img, cfg.use_mom_eval) == (0.03, 0.9, 0.0,
                                                                                               0.999, False)
    model = models.create("slavc")
    # §2.2: 23,397,376 online + 23,397,376 momentum parameters; the momentum ones take no gradient
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 23_397_376
    assert sum(p.numel() for p in model.parameters() if not p.requires_grad) == 23_397_376
    assert {k.split(".")[0] for k in model.state_dict()} >= {
        "momentum_imgnet", "momentum_img_proj1", "momentum_img_proj2", "momentum_audnet",
        "momentum_aud_proj1", "momentum_aud_proj2"}


def test_after_step_is_the_ema_and_use_mom_eval_switches_the_map():
    torch.manual_seed(0)
    model = models.create("slavc", encoder="lite", momentum_img=0.5, momentum_aud=0.25)
    inputs = synth_inputs(model, n=4)
    model.eval()
    with torch.no_grad():
        online_map = model.heatmap(inputs["images"], inputs["specs"])
        model.config.use_mom_eval = True
        # copies start equal
        torch.testing.assert_close(model.heatmap(inputs["images"], inputs["specs"]), online_map)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    model.loss(inputs)["loss"].backward()
    old_mom = model.momentum_aud_proj1.weight.clone()
    opt.step()
    model.after_step()
    expected = 0.25 * old_mom + 0.75 * model.aud_proj1.weight.detach()
    torch.testing.assert_close(model.momentum_aud_proj1.weight, expected)
    torch.testing.assert_close(model.momentum_img_proj2.bias, 0.5 * 0 + 0.5 * model.img_proj2.bias.detach())
    model.eval()
    with torch.no_grad():
        mom_map = model.heatmap(inputs["images"], inputs["specs"])
        model.config.use_mom_eval = False
        assert not torch.allclose(mom_map, model.heatmap(inputs["images"], inputs["specs"]))


def test_dropout_only_while_training():
    torch.manual_seed(0)
    model = models.create("slavc", encoder="lite")
    inputs = synth_inputs(model, n=4)
    model.train()
    torch.manual_seed(1)
    a = model.loss(inputs)["loss"].item()
    torch.manual_seed(2)
    assert model.loss(inputs)["loss"].item() != pytest.approx(a)  # p = 0.9 dropout draws differ
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.heatmap(inputs["images"], inputs["specs"]),
                                   model.heatmap(inputs["images"], inputs["specs"]))


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    model = models.create("slavc", encoder="lite", momentum_img=0.9, momentum_aud=0.9)
    inputs = synth_inputs(model)
    before = seeded_loss(model, inputs)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(8):
        model.train()
        loss = model.loss(inputs)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_step()
    assert seeded_loss(model, inputs) < 0.85 * before
