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
from training.params import SHORT_RUN_OPTIONS
from training.synth import SceneConfig
from training.synth.pairs import SynthPairs

# Per-method budget: (epochs, batch size, learning rate) on TRAIN_PAIRS pairs; and the hit rate
# each must reach. ezvsl and lvs carry the foundation issue's bar (>= 70 %) and run in the default
# suite; the others are marked slow (`make test-all`) to keep the default run under 10 minutes.
# Measured (2 cores, one run each): slavc 0.74, sslalign 0.80, sira 0.63.
TRAIN_PAIRS = 2000
BUDGET: dict[str, tuple[int, int, float]] = {
    "ezvsl": (3, 32, 1e-3),
    "lvs": (3, 32, 1e-3),
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


# Known gaps: the test runs and must fail (strict xfail), so a fix shows up as XPASS.
KNOWN_GAPS = {
    "jsa": "JSA's target slots collapse to one vector for every clip within ~10 steps from random lite "
           "trunks (InfoNCE stays at ln B); see docs/methods.md#jsa",
}


def _marks(method: str) -> list:
    marks = [] if method in IN_DEFAULT_RUN else [pytest.mark.slow]
    if method in KNOWN_GAPS:
        marks.append(pytest.mark.xfail(reason=KNOWN_GAPS[method], strict=True))
    return marks


@pytest.mark.parametrize("method", [pytest.param(m, marks=_marks(m)) for m in models.available()])
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
