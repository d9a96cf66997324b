"""Initialisation of the projection heads (EZ-VSL lineage, official_repos.md §2.1 / §2.2)."""

from __future__ import annotations

from torch import nn


def init_heads(*modules: nn.Module) -> None:
    """Linear: trunc_normal(std 0.01), zero bias; Conv2d: kaiming_normal(fan_out, relu), zero bias."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
