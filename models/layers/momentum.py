"""Momentum (EMA) copies of modules, as in SLAVC (official_repos.md §2.2) and MoCo."""

from __future__ import annotations

import copy

import torch
from torch import nn


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of `module` (same weights, requires_grad False) to be updated by EMA."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, m: float) -> None:
    """theta_target <- m * theta_target + (1 - m) * theta_online, parameters only.

    Buffers (BatchNorm running statistics) are not averaged: each copy keeps its own, as in the
    official SLAVC update, which walks `parameters()` only.
    """
    online_params = [p.detach() for p in online.parameters()]
    target_params = list(target.parameters())
    torch._foreach_mul_(target_params, m)
    torch._foreach_add_(target_params, online_params, alpha=1.0 - m)
