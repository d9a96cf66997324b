"""Every registered method trains for real on the procedural benchmark and localizes.

Lite encoders on CPU, a few thousand procedural pairs; then, on held-out scenes with 2-3 visible
objects, the heatmap's peak must fall in the sounding object's box far more often than picking a
visible object at random (about 42 %). Methods train with their short-run options
(the method's Recipe (short_run_options), each with its reason and measured effect).

Each run is a process of its own (tests/models/learning_run.py), so the numerics vary as they do
between machines: every method runs twice, on this CPU's own kernels and on the configuration most
unlike it (the "default" numerics profile: plain ATen, oneDNN and MKL kernels; one thread).
`make test-robust` runs the whole matrix, seeds x profiles x threads, and writes the table
(docs/benchmarks.md#learning-robustness). Runs that train on the same scenes generate them once
(`learning_run.cached_pairs`).
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from learning_run import RANDOM_OBJECT_RATE, result_of, start_config
from soundlens import models
from soundlens.training.data import InMemory
from soundlens.training.engine import TrainConfig, fit, localization_hits
from soundlens.training.params import short_run_options
from soundlens.training.synth import SceneConfig
from soundlens.training.synth.pairs import SynthPairs

# ezvsl and lvs carry the foundation issue's bar (>= 70 %) and run in the default suite; the
# others are marked slow (`make test-all`) to keep the default run under 10 minutes.
IN_DEFAULT_RUN = ("ezvsl", "lvs")
REQUIRED_HIT_RATE = {"ezvsl": 0.70, "lvs": 0.70}
DEFAULT_REQUIRED = 0.60
# name -> (numerics profile, training.reproducibility.NUMERICS_PROFILES; threads)
CONFIGS = {"native, 2 threads": ("native", 2), "default kernels, 1 thread": ("default", 1)}


@pytest.fixture(scope="module", autouse=True)
def pairs_cache(tmp_path_factory):
    """One copy of each run's procedural scenes for this module's runs (learning_run.cached_pairs)."""
    folder = tmp_path_factory.mktemp("pairs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOUNDLENS_PAIRS_CACHE", str(folder))
        yield folder


def _check(method: str, results: dict[str, dict]) -> None:
    required = REQUIRED_HIT_RATE.get(method, DEFAULT_REQUIRED)
    for name, r in results.items():
        print(f"{method} [{name}: ATen {r['capability']}, {r['kernel_env']}, {r['threads']} thread(s)]: hit "
              f"rate {r['before']:.2f} -> {r['after']:.2f} (random object {RANDOM_OBJECT_RATE}), loss "
              f"{r['loss'][0]:.3f} -> {r['loss'][-1]:.3f}, {r['seconds']:.0f} s")
    for name, r in results.items():
        assert r["loss"][-1] < r["loss"][0], f"{method} [{name}]: the loss did not fall: {r['loss']}"
        assert r["after"] >= required, (f"{method} [{name}]: hit rate {r['after']:.2f} < {required} "
                                        f"(before training {r['before']:.2f})")


@pytest.mark.timeout(1800)  # two training runs side by side; a shared CI machine may take a while
@pytest.mark.parametrize("method", [
    m if m in IN_DEFAULT_RUN else pytest.param(m, marks=pytest.mark.slow) for m in models.available()
    if m != "jsa"
])
def test_method_learns_to_localize_on_native_and_unlike_numerics(method):
    running = {name: start_config(method, 0, profile, threads)
               for name, (profile, threads) in CONFIGS.items()}
    _check(method, {name: result_of(proc) for name, proc in running.items()})


def _matrix() -> list[tuple[int, str, int]]:
    profiles = ("default", "avx2") if platform.machine().lower() in ("x86_64", "amd64") else ("default",)
    return list(itertools.product((0, 1, 2), profiles, (1, 2)))


@pytest.mark.robust
@pytest.mark.timeout(3 * 3600)  # twelve training runs: ~30 minutes on 2 cores (pyproject's 900 s is per test)
@pytest.mark.parametrize("method", IN_DEFAULT_RUN)
def test_learning_survives_seeds_capabilities_and_threads(method):
    """seeds {0, 1, 2} x numerics profile {default, avx2} x threads {1, 2}, two runs at a time.
    Writes the table to $SOUNDLENS_ROBUST_OUT (default bench_results/robust)/<method>.{json,md}."""
    # one-thread runs two at a time first, then the two-thread ones
    configs = sorted(_matrix(), key=lambda c: c[2])
    out = Path(os.environ.get("SOUNDLENS_ROBUST_OUT",
                              Path(__file__).resolve().parents[2] / "bench_results" / "robust"))
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f"{method}.partial.jsonl"
    partial.write_text("")
    cores = threading.Condition()
    n_cores = min(2, os.cpu_count() or 1)
    free = [n_cores]  # never more torch threads than cores: oversubscribed runs crawl

    def one(config):
        seed, profile, threads = config
        need = min(threads, n_cores)
        with cores:
            cores.wait_for(lambda: free[0] >= need)
            free[0] -= need
        try:
            result = result_of(start_config(method, seed, profile, threads))
        finally:
            with cores:
                free[0] += need
                cores.notify_all()
        with cores, partial.open("a") as f:
            f.write(json.dumps(result) + "\n")
        return result

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, configs))
    (out / f"{method}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{method}.md").write_text(robust_table(method, results))
    print(robust_table(method, results))
    _check(method,
           {f"seed {r['seed']}, {c[1]}, {c[2]} thr": r for c, r in zip(configs, results, strict=True)})


def robust_table(method: str, results: list[dict]) -> str:
    """A Markdown table: one row per configuration, then the mean, spread and minimum."""
    rows = [f"| {method} | {r['seed']} | {r['profile']} (ATen {r['capability']}) | {r['threads']} | "
            f"{r['before']:.3f} | **{r['after']:.3f}** | {r['seconds']:.0f} s |" for r in results]
    after = torch.tensor([r["after"] for r in results])
    summary = (f"mean {after.mean():.3f} ± {after.std(unbiased=True):.3f} (sample std), min "
               f"{after.min():.3f}, max {after.max():.3f} over {len(results)} runs; torch "
               f"{results[0]['torch']}")
    head = ["| method | seed | numerics | threads | untrained | trained | time |",
            "|---|---:|---|---:|---:|---:|---:|"]
    return "\n".join(head + rows + ["", summary, ""])


@pytest.mark.slow
def test_jsa_aligns_its_target_slots_and_finds_the_object():
    """JSA's map is the audio slot's attention over the image tokens, trained (cross-modal attention
    matching, §2.8) to follow the image slot's own attention, which sees the image alone. So in a
    scene with several objects it marks the object(s) the image slot picked, not the one that
    sounds: JSA cannot beat the random-object rate there by construction (the paper names the
    limit on multi-source data). What it must learn: target slots that match across modalities
    (audio -> image retrieval far above chance) and a map on the object in one-object scenes.
    Measured (one run): single-object hit rate 0.98, a->i R@1 0.96 (chance ~0.08), 2-3 objects 0.39."""
    from learning_run import BATCH, EPOCHS, TRAIN_PAIRS  # 3 epochs
    from soundlens.training.engine import model_inputs
    from soundlens.training.metrics.retrieval import recall_at_k
    from soundlens.training.params import short_run_lr
    from torch.utils.data import DataLoader

    train_pairs = InMemory(SynthPairs(TRAIN_PAIRS, seed=1, config=SceneConfig(image_size=112)))
    heldout_scenes = InMemory(SynthPairs(300, seed=10_000, config=SceneConfig(image_size=112, min_objects=2,
                                                                               max_objects=3)))
    single = InMemory(SynthPairs(200, seed=20_000,
                                 config=SceneConfig(image_size=112, min_objects=1, max_objects=1)))
    torch.manual_seed(0)
    model = models.create("jsa", encoder="lite", **short_run_options("jsa"))
    history = fit(model, train_pairs, TrainConfig(epochs=EPOCHS, batch_size=BATCH, lr=short_run_lr("jsa")))
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
