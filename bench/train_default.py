"""Train the shipped default model: a lite EZ-VSL on the procedural benchmark.

    .venv/bin/python bench/train_default.py --out models/weights/default.safetensors

It trains on `--pairs` procedural scenes (1-3 visible objects, one sounding), then reports the
pointing-game hit rate on 500 held-out scenes with 2-3 visible objects and writes the checkpoint
with that figure in its metadata.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from soundlens import models
from soundlens.training.data import InMemory
from soundlens.training.engine import TrainConfig, fit, localization_hits
from soundlens.training.synth import SceneConfig
from soundlens.training.synth.pairs import SynthPairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="models/weights/default.safetensors")
    parser.add_argument("--method", default="ezvsl")
    parser.add_argument("--pairs", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train = InMemory(SynthPairs(args.pairs, seed=1, config=SceneConfig(image_size=112)))
    heldout = InMemory(SynthPairs(500, seed=10_000, config=SceneConfig(image_size=112, min_objects=2,
                                                                        max_objects=3)))
    model = models.create(args.method, encoder="lite")
    config = TrainConfig(epochs=1, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    for epoch in range(args.epochs):
        config.seed = args.seed + epoch
        summary = fit(model, train, config)[-1]
        hit = localization_hits(model, heldout).float().mean().item()
        print(f"epoch {epoch}: loss {summary['loss']:.3f}, held-out hit rate {hit:.3f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    trained_on = {
        "dataset": "procedural", "pairs": args.pairs, "epochs": args.epochs, "batch_size": args.batch_size,
        "lr": args.lr, "seed": args.seed, "heldout_hit_rate_2to3_objects": round(hit, 4),
        "command": f"bench/train_default.py --pairs {args.pairs} --epochs {args.epochs}",
    }
    models.save(model.cpu().eval(), args.out, trained_on=trained_on)
    print(json.dumps({"out": args.out, **trained_on}))


if __name__ == "__main__":
    main()
