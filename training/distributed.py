"""Distributed training under torchrun: the process's place in the job, and gathered contrastive negatives.

Conventions (style.md §2 open_clip `distributed.py`, realtime_ecosystem.md §F): torchrun sets
RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT; without them this is one plain process.
Backend nccl on CUDA, gloo on CPU; one GPU per process (`cuda:LOCAL_RANK`); only rank 0 writes.

Gathered negatives (`--gather-negatives`): EZ-VSL's release computes its InfoNCE on each GPU's
shard only, so more GPUs means fewer negatives per loss (§F). `gather_features` all-gathers
embeddings the way open_clip's `ClipLoss` does (the local shard keeps its gradient, the others are
constants), and `GATHERED_LOSSES` re-states a method's loss over the gathered global batch. On one
process the gathered loss equals the method's own `loss()` exactly (tests check it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
from soundlens.models.devices import pick_device
from soundlens.models.errors import SoundLensError


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: rank among world_size processes and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_master(self) -> bool:
        """Rank 0: the only process that writes checkpoints and logs (§2 open_clip)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SoundLensError(f"environment variable {name}={value!r} is not an integer; "
                             "launch with torchrun") from None


def init_distributed(device: str | None = None) -> DistEnv:
    """Join the torchrun job described by the environment (or run alone) and pick the device.

    Under torchrun with WORLD_SIZE > 1 this calls `init_process_group` (env://) with nccl for
    CUDA and gloo for CPU; with one process nothing is initialised.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    dev = pick_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)  # LOCAL_RANK, not RANK: right on many nodes too (§F)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        # Rank 0 validates while the others wait at a barrier: allow a long validation (a full
        # VGG-SS pass on CPU) instead of the 30-minute default.
        dist.init_process_group(backend=backend, init_method="env://", world_size=world, rank=rank,
                                timeout=timedelta(hours=3))
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world, device=dev)


def barrier(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.barrier()


def cleanup(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def gather_features(features: torch.Tensor, rank: int, world_size: int,
                    with_grad: bool = False) -> torch.Tensor:
    """All ranks' `features` [b, ...] concatenated in rank order -> [world_size * b, ...].

    open_clip's rule (style.md §2): a plain all_gather returns tensors without gradient, so the
    local shard is put back in its slot to keep its gradient; each rank then back-propagates
    through its own features only, and DDP's gradient averaging sums the contributions. With
    `with_grad` the differentiable all_gather is used instead (gradients flow to every shard).
    Every rank must pass the same shape (the trainer drops ragged last batches). With one process
    the input is returned unchanged.
    """
    if world_size <= 1:
        return features
    if not dist.is_initialized():
        raise SoundLensError(f"gather_features with world_size {world_size} needs torch.distributed; "
                             "launch with torchrun")
    if with_grad:
        import torch.distributed.nn.functional as dist_nn  # multi-process runs only

        return torch.cat(dist_nn.all_gather(features.contiguous()), dim=0)
    parts = [torch.empty_like(features) for _ in range(world_size)]
    dist.all_gather(parts, features.detach().contiguous())
    parts[rank] = features
    return torch.cat(parts, dim=0)


Gather = Callable[[torch.Tensor], torch.Tensor]


def make_gather(env: DistEnv, with_grad: bool = False) -> Gather:
    """`gather_features` bound to this process's rank and world size."""
    return lambda x: gather_features(x, env.rank, env.world_size, with_grad)


def check_gatherable(model) -> None:
    """A SoundLensError saying why, when `model.loss` cannot use the whole job's negatives."""
    if model.cannot_gather is not None:
        raise SoundLensError(f"--gather-negatives: the {model.method} loss cannot use gathered negatives: "
                             f"{model.cannot_gather}; drop the flag to train {model.method} with per-process "
                             "negatives ('soundlens models' lists the methods that can)")
