"""Batched tensor augmentations for multi-view positives (SSL-Align, paper 2 §3.2).

They act on the model's prepared inputs (normalised images, log spectrograms), so a training step
can draw fresh views on whatever device the batch is on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_view(images: torch.Tensor, mean, std, min_scale: float = 0.6, jitter: float = 0.4,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """A random view of each normalised image [B, 3, S, S]: a resized crop covering `min_scale`-1 of
    the side (random position), a horizontal flip with p 0.5, and brightness / contrast / saturation
    jitter of +-`jitter` applied in pixel space; returned normalised like the input."""
    b, _, s, _ = images.shape
    dev, dt = images.device, images.dtype

    def rand(*shape):
        return torch.rand(*shape, device=dev, generator=generator, dtype=torch.float32).to(dt)

    scale = min_scale + (1 - min_scale) * rand(b)
    shift = (1 - scale)[:, None] * (2 * rand(b, 2) - 1)
    flip = torch.where(rand(b) < 0.5, -1.0, 1.0).to(dt)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=dt)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    mean_t = torch.as_tensor(mean, device=dev, dtype=dt)[None, :, None, None]
    std_t = torch.as_tensor(std, device=dev, dtype=dt)[None, :, None, None]
    x = F.grid_sample(images * std_t + mean_t, grid, mode="bilinear", padding_mode="reflection",
                      align_corners=False)

    def factor():
        return (1 + jitter * (2 * rand(b) - 1))[:, None, None, None]

    x = x * factor()  # brightness
    grey = x.mean(dim=(1, 2, 3), keepdim=True)
    x = grey + (x - grey) * factor()  # contrast
    luma = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:])
    x = luma + (x - luma) * factor()  # saturation
    return (x.clamp(0, 1) - mean_t) / std_t


def time_shift(specs: torch.Tensor, max_fraction: float = 0.25,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Circularly shift each spectrogram [B, 1, F, T] in time by a random offset of up to
    +-`max_fraction` of T frames: the "temporal shifting" audio augmentation of paper 2 §3.2."""
    b, t = specs.shape[0], specs.shape[-1]
    limit = int(max_fraction * t)
    if limit <= 0:
        return specs
    offsets = torch.randint(-limit, limit + 1, (b,), device=specs.device, generator=generator)
    index = (torch.arange(t, device=specs.device)[None] - offsets[:, None]) % t  # [B, T]
    return torch.gather(specs, -1, index[:, None, None, :].expand_as(specs))
