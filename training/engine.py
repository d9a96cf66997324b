"""The training step and localisation evaluation, shared by tests, `soundlens train` and benchmarks.

Datasets yield dicts with `frame` (uint8 [H, W, 3]), `waveform` (float32 [N]), `sample_rate`
and, for evaluation, `box` ([4] pixels, x1 y1 x2 y2). The model's own presets turn them into
inputs (`model.prepare`), so one dataset serves every method.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from models.images import crop_box
from models.maps import resize_map


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 128  # EZ-VSL / SLAVC / SIRA official batch (official_repos.md §2.1)
    lr: float = 1e-4  # Adam lr of EZ-VSL, SLAVC (§2.1, §2.2)
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # 0 = off
    num_workers: int = 0
    seed: int = 0
    amp: bool = True  # bfloat16 autocast on CUDA only
    augment: bool = True  # random crop + flip (the official training transform)


def model_inputs(model, batch: dict, train: bool) -> dict:
    """A collated dataset batch -> the model's `loss()` batch (`images`, `specs` + the rest)."""
    rate = batch["sample_rate"]
    rate = int(rate[0]) if torch.is_tensor(rate) else int(rate)
    images, specs = model.prepare(batch["frame"], batch["waveform"], rate, train=train)
    out = {k: v for k, v in batch.items() if k not in ("frame", "waveform")}
    out.update(images=images, specs=specs)
    return out


def train_one_epoch(model, loader, optimizer, config: TrainConfig, log: Callable[[dict], None] | None = None,
                    epoch: int = 0) -> dict:
    """One pass over `loader`; returns the mean of each loss term and samples/s."""
    model.train()
    device = next(model.parameters()).device
    use_amp = config.amp and device.type == "cuda"
    totals: dict[str, float] = {}
    n_steps, n_samples, start = 0, 0, time.perf_counter()
    for step, batch in enumerate(loader):
        inputs = model_inputs(_unwrap(model), batch, train=config.augment)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            terms = model(inputs)
        loss = terms["loss"]
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch} step {step}; lower the lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if hasattr(_unwrap(model), "after_step"):
            _unwrap(model).after_step()  # e.g. momentum-encoder updates
        for k, v in terms.items():
            totals[k] = totals.get(k, 0.0) + v.item()
        n_steps += 1
        n_samples += inputs["images"].shape[0]
        if log is not None:
            log({"epoch": epoch, "step": step, **{k: v.item() for k, v in terms.items()}})
    elapsed = time.perf_counter() - start
    means = {k: v / max(n_steps, 1) for k, v in totals.items()}
    means["samples_per_s"] = n_samples / max(elapsed, 1e-9)
    return means


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def fit(model, dataset: Dataset, config: TrainConfig, log: Callable[[dict], None] | None = None) -> list[dict]:
    """Train `model` on `dataset` with Adam for `config.epochs`; returns per-epoch summaries."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                        num_workers=config.num_workers, generator=generator,
                        persistent_workers=config.num_workers > 0)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                 lr=config.lr, weight_decay=config.weight_decay)
    history = []
    for epoch in range(config.epochs):
        summary = train_one_epoch(model, loader, optimizer, config, log=log, epoch=epoch)
        history.append({"epoch": epoch, **summary})
    return history


@torch.inference_mode()
def localization_hits(model, dataset: Dataset, batch_size: int = 64) -> torch.Tensor:
    """Pointing game: for each non-silent sample, is the heatmap's peak inside the sounding box?

    The native map is upsampled (bilinear) to the model's input size and its argmax compared
    with the ground-truth box mapped into that frame. Returns a bool tensor [N].
    """
    model.eval()
    hits = []
    for batch in DataLoader(dataset, batch_size=batch_size):
        inputs = model_inputs(model, batch, train=False)
        maps = model.heatmap(inputs["images"], inputs["specs"]).float()
        size = model.image_preset.size
        up = resize_map(maps, (size, size), mode="bilinear", align_corners=False)
        idx = up.flatten(1).argmax(dim=1)
        y, x = (idx // size).float() + 0.5, (idx % size).float() + 0.5
        frame_hw = tuple(batch["frame"].shape[1:3])
        box = crop_box(batch["box"].float().to(maps.device), frame_hw, model.image_preset)
        inside = (x >= box[:, 0]) & (x <= box[:, 2]) & (y >= box[:, 1]) & (y <= box[:, 3])
        if "silent" in batch:
            inside = inside[~batch["silent"].to(inside.device)]
        hits.append(inside.cpu())
    return torch.cat(hits)
