"""Every registered method trains for real on the procedural benchmark and localizes.

Lite encoders on CPU, a few thousand procedural pairs; then, on held-out scenes with 2-3
visible objects, the heatmap's peak must fall in the sounding object's box far more often than
picking a visible object at random (about 42 %). Methods train with their short-run options
(training.params.SHORT_RUN_OPTIONS, each with its reason and measured effect).
"""

from __future__ import annotations

import pytest
import torch

import models
from training.data import InMemory
from training.engine import TrainConfig, fit, localization_hits
from training.params import SHORT_RUN_LR, SHORT_RUN_OPTIONS
from training.synth import SceneConfig
from training.synth.pairs import SynthPairs

# Per-method budget: (epochs, batch size, learning rate) on TRAIN_PAIRS pairs; and the hit rate
# each must reach. ezvsl and lvs carry the foundation issue's bar (>= 70 %) and run in the default
# suite; the others are marked slow (`make test-all`) to keep the default run under 10 minutes.
# Measured (2 cores, one run each): slavc 0.74, sslalign 0.80, sira 0.63. JSA has its own test below.
TRAIN_PAIRS = 2000
BUDGET: dict[str, tuple[int, int, float]] = {
    "ezvsl": (3, 32, 1e-3),
    "lvs": (3, 32, 1e-3),
    "jsa": (3, 32, SHORT_RUN_LR["jsa"]),
}
DEFAULT_BUDGET = (3, 32, 1e-3)
IN_DEFAULT_RUN = ("ezvsl", "lvs")
REQUIRED_HIT_RATE = {"ezvsl": 0.70, "lvs": 0.70}
DEFAULT_REQUIRED = 0.60
RANDOM_OBJECT_RATE = 0.42


@pytest.fixture(scope="module")
def train_pairs():
    return InMemory(SynthPairs(TRAIN_PAIRS, seed=1, config=SceneConfig(image_size=112)))


@pytest.fixture(scope="module")
def heldout_scenes():
    config = SceneConfig(image_size=112, min_objects=2, max_objects=3)
    return InMemory(SynthPairs(300, seed=10_000, config=config))


@pytest.mark.parametrize("method", [
    m if m in IN_DEFAULT_RUN else pytest.param(m, marks=pytest.mark.slow) for m in models.available() if m != "jsa"
])
def test_method_learns_to_localize(method, train_pairs, heldout_scenes):
    torch.manual_seed(0)
    model = models.create(method, encoder="lite", **SHORT_RUN_OPTIONS.get(method, {}))
    before = localization_hits(model, heldout_scenes).float().mean().item()
    epochs, batch, lr = BUDGET.get(method, DEFAULT_BUDGET)
    history = fit(model, train_pairs, TrainConfig(epochs=epochs, batch_size=batch, lr=lr))
    assert history[-1]["loss"] < history[0]["loss"]
    after = localization_hits(model, heldout_scenes).float().mean().item()
    required = REQUIRED_HIT_RATE.get(method, DEFAULT_REQUIRED)
    print(f"{method}: hit rate {before:.2f} -> {after:.2f} (random object {RANDOM_OBJECT_RATE})")
    assert after >= required, f"{method} hit rate {after:.2f} < {required} (before training {before:.2f})"


@pytest.mark.slow
def test_jsa_aligns_its_target_slots_and_finds_the_object(train_pairs, heldout_scenes):
    """JSA's map is the audio slot's attention over the image tokens, trained (cross-modal attention
    matching, §2.8) to follow the image slot's own attention, which sees the image alone. So in a
    scene with several objects it marks the object(s) the image slot picked, not the one that
    sounds: JSA cannot beat the random-object rate there by construction (the paper names the
    limit on multi-source data). What it must learn: target slots that match across modalities
    (audio -> image retrieval far above chance) and a map on the object in one-object scenes.
    Measured (one run): single-object hit rate 0.98, a->i R@1 0.96 (chance ~0.08), 2-3 objects 0.39."""
    from torch.utils.data import DataLoader

    from training.engine import model_inputs
    from training.metrics.retrieval import recall_at_k

    single = InMemory(SynthPairs(200, seed=20_000, config=SceneConfig(image_size=112, min_objects=1, max_objects=1)))
    torch.manual_seed(0)
    model = models.create("jsa", encoder="lite", **SHORT_RUN_OPTIONS["jsa"])
    epochs, batch, lr = BUDGET["jsa"]
    history = fit(model, train_pairs, TrainConfig(epochs=epochs, batch_size=batch, lr=lr))
    assert history[-1]["loss"] < history[0]["loss"]
    one = localization_hits(model, single).float().mean().item()
    several = localization_hits(model, heldout_scenes).float().mean().item()
    model.eval()
    image_emb, audio_emb, labels = [], [], []
    with torch.no_grad():
        for b in DataLoader(single, batch_size=64):
            inputs = model_inputs(model, b, train=False)
            i, a = model.embed(inputs["images"], inputs["specs"])
            image_emb.append(i), audio_emb.append(a)
            labels += b["label"].tolist()
    r1 = recall_at_k(torch.cat(audio_emb).numpy(), torch.cat(image_emb).numpy(), labels, labels)[1]
    print(f"jsa: one object {one:.2f}, 2-3 objects {several:.2f}, a->i R@1 {r1:.2f}")
    assert r1 >= 0.5, f"target slots do not align: a->i R@1 {r1:.2f} (chance ~0.08)"
    assert one >= 0.8, f"one-object hit rate {one:.2f}"
    assert several >= 0.25, f"2-3-object hit rate {several:.2f}: the map is not on the objects"
