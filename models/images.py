"""Frames -> normalised image tensors, per image preset, in torch (so it runs on the GPU)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from soundlens.models.errors import SoundLensError
from soundlens.models.presets import ImagePreset


def resize(x: torch.Tensor, size: int | tuple[int, int], mode: str) -> torch.Tensor:
    """Antialiased resize of uint8 or float [B, C, H, W] like torchvision's Resize on tensors: an int
    sets the short side (keeping the aspect ratio), a pair sets (H, W). Returns float."""
    h, w = x.shape[-2:]
    if isinstance(size, int):
        short, long = (h, w) if h <= w else (w, h)
        new_long = int(size * long / short)
        size = (size, new_long) if h <= w else (new_long, size)
    out = F.interpolate(x.float(), size=size, mode=mode, align_corners=False, antialias=True)
    return out.clamp_(0, 255).round_() if x.dtype == torch.uint8 else out


def center_crop(x: torch.Tensor, s: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
    return x[..., top : top + s, left : left + s]


def to_uint8_batch(frames) -> torch.Tensor:
    """Accept uint8 RGB frames [B, H, W, 3] or [H, W, 3] (numpy, torch, or a list) -> uint8 [B, 3, H, W]."""
    if isinstance(frames, (list, tuple)):
        frames = np.stack([np.asarray(f) for f in frames])
    x = torch.as_tensor(frames)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[-1] != 3:
        raise SoundLensError(f"frames must be RGB [batch, height, width, 3], got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise SoundLensError(f"frames must be uint8 RGB, got {x.dtype}")
    return x.permute(0, 3, 1, 2)


def prepare_images(frames, preset: ImagePreset, train: bool = False, device=None) -> torch.Tensor:
    """uint8 RGB frames -> float [B, 3, S, S], ImageNet-normalised, as the method's official loader.

    Test time: Resize((S, S)) or Resize(S) + CenterCrop(S) (preset.resize). Training: Resize(short
    side to preset.train_resize) -> RandomCrop(S) -> random horizontal flip (EZ-VSL/JSA recipe,
    official_repos.md §2.1).
    """
    x = to_uint8_batch(frames)
    if device is not None:
        x = x.to(device, non_blocking=True)
    mode = preset.interpolation
    s = preset.size
    if train:
        x = resize(x, preset.train_resize, mode)
        h, w = x.shape[-2:]
        i = int(torch.randint(0, h - s + 1, ()))
        j = int(torch.randint(0, w - s + 1, ()))
        x = x[..., i : i + s, j : j + s]
        flip = torch.rand(x.shape[0], device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    elif preset.resize == "short_side":
        x = center_crop(resize(x, s, mode), s)
    else:
        x = resize(x, (s, s), mode)
    mean = torch.tensor(preset.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(preset.std, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def crop_box(box: torch.Tensor, frame_hw: tuple[int, int], preset: ImagePreset) -> torch.Tensor:
    """Map boxes [B, 4] (x1, y1, x2, y2 in frame pixels) into the test-time model input frame."""
    h, w = frame_hw
    s = preset.size
    if preset.resize == "short_side":
        scale = s / min(h, w)
        ox, oy = (w * scale - s) / 2, (h * scale - s) / 2
        return box * scale - box.new_tensor([ox, oy, ox, oy])
    return box * box.new_tensor([s / w, s / h, s / w, s / h])
