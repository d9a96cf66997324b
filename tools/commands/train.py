"""`soundlens train`: the trainer's command line (the same flags and code as `torchrun -m
soundlens.training.main`).

    soundlens train --method ezvsl --data procedural:2000 --encoder lite --epochs 4 --out runs/ezvsl
    torchrun --nproc_per_node 4 -m soundlens.training.main --method ezvsl --data DIR --out runs/ezvsl

See docs/training.md.
"""

from __future__ import annotations

from soundlens.training.params import add_arguments as add_train_arguments
from soundlens.training.params import config_from_args


def add_arguments(parser) -> None:
    add_train_arguments(parser)


def run(args) -> int:
    # the trainer (torch) only when training runs
    from soundlens.training.main import run as run_training

    return run_training(config_from_args(args))
