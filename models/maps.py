"""Shared heatmap helpers: resizing native maps and normalising them."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_map(maps: torch.Tensor, size: tuple[int, int] | int, mode: str = "bilinear",
               align_corners: bool | None = None) -> torch.Tensor:
    """Resize native maps [B, h, w] (or [h, w]) to `size` (H, W) -> [B, H, W].

    `mode` is any `F.interpolate` mode ("bilinear", "bicubic", "nearest"); evaluation protocols
    differ in it (official_repos.md §1.2), so it is a parameter, never a constant.
    """
    squeeze = maps.dim() == 2
    x = maps[None] if squeeze else maps
    if isinstance(size, int):
        size = (size, size)
    kwargs = {} if mode in ("nearest", "area") else {"align_corners": bool(align_corners)}
    out = F.interpolate(x[:, None].float(), size=tuple(size), mode=mode, **kwargs)[:, 0]
    return out[0] if squeeze else out


def minmax(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-map min-max normalisation of [B, H, W] to [0, 1] (a flat map becomes all zeros)."""
    flat = maps.flatten(1)
    lo = flat.min(dim=1).values[:, None, None]
    hi = flat.max(dim=1).values[:, None, None]
    return (maps - lo) / (hi - lo).clamp_min(eps)


def peak_xy(maps: torch.Tensor) -> torch.Tensor:
    """Location of the maximum of each map [B, h, w] as normalised (x, y) cell centres in [0, 1] -> [B, 2]."""
    b, h, w = maps.shape
    idx = maps.flatten(1).argmax(dim=1)
    y = (idx // w).float().add(0.5) / h
    x = (idx % w).float().add(0.5) / w
    return torch.stack([x, y], dim=1)
