"""The training step and evaluation, shared by tests, `soundlens train`, `soundlens eval` and benchmarks.

Datasets yield dicts with `frame` (uint8 [H, W, 3]), `waveform` (float32 [N]), `sample_rate`
and, for evaluation, `box` ([4] pixels, x1 y1 x2 y2). The model's own presets turn them into
inputs (`model.prepare`), so one dataset serves every method.

The step follows open_clip's (style.md §2): batch -> inputs -> autocast forward -> loss dict ->
backward -> clip -> step -> `after_step` (momentum encoders); rank 0 logs data time, batch time and
samples/s. Evaluation runs a model over a dataset to native maps, then scores them exactly as
`soundlens eval --predictions` does (`score_annotated`), so both paths give the same numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from soundlens.models.errors import SoundLensError
from soundlens.training import protocols
from soundlens.training.data import collate_clips, procedural_records
from soundlens.training.metrics import cross_modal_recall
from soundlens.training.metrics.pointing import peak_in_box
from soundlens.training.params import TrainConfig
from soundlens.training.reproducibility import set_deterministic
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm


def scheduled_lr(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate at optimizer step `step` of `total_steps` (open_clip's cosine schedule, no
    warm-up)."""
    if config.lr_schedule == "constant":
        return config.lr
    if config.lr_schedule == "cosine":
        return 0.5 * config.lr * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    raise SoundLensError(f"unknown lr_schedule '{config.lr_schedule}'; use constant or cosine")


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise SoundLensError(f"unknown optimizer '{config.optimizer}'; use adam or adamw")


def model_inputs(model, batch: dict, train: bool) -> dict:
    """A collated dataset batch -> the model's `loss()` batch (`images`, `specs` + the rest).

    Frames/waveforms given as lists (clips of different sizes, `training.data.collate_clips`)
    are prepared one clip at a time and concatenated.
    """
    frames, waves, rate = batch["frame"], batch["waveform"], batch["sample_rate"]
    if isinstance(frames, (list, tuple)):
        rates = rate.tolist() if torch.is_tensor(rate) else list(rate)
        parts = [model.prepare(f[None], torch.as_tensor(w)[None], int(r), train=train)
                 for f, w, r in zip(frames, waves, rates, strict=True)]
        images, specs = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    else:
        rate = int(rate[0]) if torch.is_tensor(rate) else int(rate)
        images, specs = model.prepare(frames, waves, rate, train=train)
    out = {k: v for k, v in batch.items() if k not in ("frame", "waveform")}
    out.update(images=images, specs=specs)
    return out


class Objective(nn.Module):
    """The module DDP wraps: `forward(batch)` is the method's loss, over the whole job's negatives
    when `gather` is given (training.distributed.make_gather). Running the gathered loss inside
    DDP's forward keeps DDP's gradient bookkeeping right."""

    def __init__(self, model: nn.Module, gather: Callable | None = None):
        super().__init__()
        self.model = model
        self._gather = gather

    def forward(self, batch: dict) -> dict:
        return self.model(batch, gather=self._gather)


def unwrap(model):
    """The method model inside DDP and/or an Objective."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(model, Objective):
            model = model.model
        else:
            return model


def train_one_epoch(model, loader, optimizer, config: TrainConfig, log: Callable[[dict], None] | None = None,
                    epoch: int = 0, progress: bool = False, step_offset: int = 0) -> dict:
    """One pass over `loader`; returns the mean of each loss term, samples/s, data and batch time.

    `model` is a method model, an `Objective`, or DDP around one. `log` gets a record per step
    (every `config.log_every` steps plus the last one). `progress` shows a tqdm bar.
    """
    inner = unwrap(model)
    model.train()
    device = next(inner.parameters()).device
    use_amp = config.amp and device.type == "cuda"
    totals: dict[str, float] = {}
    n_steps, n_samples, start = 0, 0, time.perf_counter()
    data_time = batch_time = 0.0
    total = len(loader) if hasattr(loader, "__len__") else None
    bar = tqdm(loader, total=total, desc=f"epoch {epoch}", unit="step", disable=not progress, leave=False)
    tick = time.perf_counter()
    for step, batch in enumerate(bar):
        t_data = time.perf_counter() - tick
        inputs = model_inputs(inner, batch, train=config.augment)
        inputs["global_step"] = step_offset + step  # for step-scheduled losses (LVS' hard-negative warm-up)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            terms = model(inputs)
        loss = terms["loss"]
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch} step {step}; lower the lr")
        optimizer.zero_grad(set_to_none=True)
        if total is not None:
            for group in optimizer.param_groups:
                group["lr"] = scheduled_lr(config, step_offset + step, config.epochs * total)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if hasattr(inner, "after_step"):
            inner.after_step()  # e.g. momentum-encoder updates (identical on every rank)
        values = {k: float(v.item()) for k, v in terms.items()}
        for k, v in values.items():
            totals[k] = totals.get(k, 0.0) + v
        b = inputs["images"].shape[0]
        n_steps += 1
        n_samples += b
        t_batch = time.perf_counter() - tick
        data_time += t_data
        batch_time += t_batch
        bar.set_postfix(loss=f"{values['loss']:.4f}")
        last = total is not None and step == total - 1
        if log is not None and (step % max(config.log_every, 1) == 0 or last):
            log({"epoch": epoch, "step": step, "global_step": step_offset + step, "last": last, **values,
                 "lr": optimizer.param_groups[0]["lr"], "data_time": t_data, "batch_time": t_batch,
                 "samples_per_s": b / max(t_batch, 1e-9)})
        tick = time.perf_counter()
    bar.close()
    elapsed = time.perf_counter() - start
    means = {k: v / max(n_steps, 1) for k, v in totals.items()}
    means.update(samples_per_s=n_samples / max(elapsed, 1e-9), steps=n_steps, samples=n_samples,
                 data_time=data_time / max(n_steps, 1), batch_time=batch_time / max(n_steps, 1))
    return means


def fit(model, dataset: Dataset, config: TrainConfig,
        log: Callable[[dict], None] | None = None) -> list[dict]:
    """Train `model` on `dataset` for `config.epochs` in this process; returns per-epoch summaries.

    The in-process helper tests and notebooks use; `soundlens.training.main` is the full trainer
    (checkpoints, validation, DDP).
    """
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    set_deterministic(config.deterministic)
    try:
        return _fit(model, dataset, config, log)
    finally:
        set_deterministic(was_deterministic)


def _fit(model, dataset: Dataset, config: TrainConfig, log) -> list[dict]:
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                        num_workers=config.num_workers, generator=generator, collate_fn=collate_clips,
                        persistent_workers=config.num_workers > 0)
    optimizer = make_optimizer(model, config)
    history, steps = [], 0
    for epoch in range(config.epochs):
        summary = train_one_epoch(model, loader, optimizer, config, log=log, epoch=epoch, step_offset=steps)
        steps += int(summary["steps"])
        history.append({"epoch": epoch, **summary})
    return history


@torch.inference_mode()
def localization_hits(model, dataset: Dataset, batch_size: int = 64) -> torch.Tensor:
    """Pointing game: for each non-silent sample, is the heatmap's peak inside the sounding box?

    The peak cell's position is where that cell looks on the frame, `model.cell_centres`
    (`models.geometry`, the one owner of the cell -> pixel mapping that peaks, the wire and the
    overlay use): the receptive-field centre of the image trunk's cell, through the image preset.
    (The middle of the cell's block, where a resized map draws it, is 3.5 px right of and below
    where a lite-trunk cell looks: on these small objects that alone moved peaks on an object's
    edge outside its box.) Returns a bool tensor [N]; official protocols keep their own upsampling
    (`protocols.pointing_hits`); both score with `metrics.pointing`.
    """
    model.eval()
    hits = []
    for batch in DataLoader(dataset, batch_size=batch_size):
        inputs = model_inputs(model, batch, train=False)
        maps = model.heatmap(inputs["images"], inputs["specs"]).float()
        h, w = maps.shape[-2:]
        centres = model.cell_centres(tuple(batch["frame"].shape[1:3]), (h, w))
        idx = maps.flatten(1).argmax(dim=1)
        x = centres.origin[0] + (idx % w).float() * centres.step[0]
        y = centres.origin[1] + (idx // w).float() * centres.step[1]
        inside = peak_in_box(x, y, batch["box"].float().to(maps.device))
        if "silent" in batch:
            inside = inside[~batch["silent"].to(inside.device)]
        hits.append(inside.cpu())
    return torch.cat(hits)


# --- evaluation ------------------------------------------------------------------------------
@dataclass
class Predictions:
    """A model's outputs over a dataset, in dataset order."""

    ids: list[str]
    maps: dict[str, np.ndarray]  # id -> float32 [h, w] native heatmap
    image_emb: np.ndarray | None = None  # [N, D]
    audio_emb: np.ndarray | None = None  # [N, D]
    records: list[dict] = field(default_factory=list)  # procedural annotation records


@torch.inference_mode()
def predict(model, dataset: Dataset, batch_size: int = 32, embed: bool = True, workers: int = 0,
            progress: bool = False) -> Predictions:
    """Native heatmaps (float32, as `model.heatmap` returns them) and, with `embed`, the
    retrieval embeddings of every clip. Runs in float32 (no autocast) so maps are reproducible."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate_clips)
    spec = getattr(dataset, "spec", None)
    out = Predictions([], {})
    img_parts, aud_parts = [], []
    for batch in tqdm(loader, desc="heatmaps", unit="batch", disable=not progress, leave=False):
        inputs = model_inputs(model, batch, train=False)
        maps = model.heatmap(inputs["images"], inputs["specs"]).float().cpu().numpy()
        ids = list(batch["id"])
        for sample_id, m in zip(ids, maps, strict=True):
            out.maps[sample_id] = np.ascontiguousarray(m, dtype=np.float32)
        out.ids.extend(ids)
        if embed:
            img, aud = model.embed(inputs["images"], inputs["specs"])
            img_parts.append(img.float().cpu().numpy())
            aud_parts.append(aud.float().cpu().numpy())
        if "box" in batch and spec is not None and spec.kind == "procedural":
            out.records.extend(procedural_records(batch, spec.image_size))
    if embed and img_parts:
        out.image_emb, out.audio_emb = np.concatenate(img_parts), np.concatenate(aud_parts)
    return out


def score_annotated(ann, maps: Mapping[str, np.ndarray], protocol, object_maps: Mapping | None = None,
                    allow_missing: bool = False, maps_source: str = "heatmaps") -> dict:
    """Score maps against an `AnnotationSet` under a protocol: `protocols.score_maps` plus the
    pointing-game hit rate. Samples are taken in annotation order, so the report does not depend
    on where the maps came from (a model run or an .npz). Non-sounding (box-less) samples get a
    None GT, as `score_maps` expects."""
    have = [i for i in ann.ids if i in maps and (object_maps is None or i in object_maps)]
    have_set = set(have)
    missing = [i for i in ann.ids if i not in have_set]
    if missing and not allow_missing:
        raise SoundLensError(f"{len(missing)} of {len(ann)} annotated samples have no heatmap (e.g. "
                             f"{missing[:3]}); add them or pass --allow-missing to score the rest")
    if not have:
        raise SoundLensError(f"no heatmap in {maps_source} matches an annotated id; check the ids")
    if object_maps is not None and protocol.ogl_alpha is None:
        raise SoundLensError(f"protocol {protocol.name} has no OGL fusion; drop --object-maps "
                             "or pick another")
    gts = ann.gt_maps(protocol.gt_clip, have, silent_as_none=True)
    report = protocols.score_maps(maps, gts, protocol, object_maps=object_maps)
    hits = protocols.pointing_hits(maps, gts, protocol)
    report["hit_rate"] = float(np.mean(list(hits.values()))) if hits else float("nan")
    extra = sorted(set(maps) - set(ann.ids))
    report.update(annotation_kind=ann.kind, n_missing=len(missing), n_unannotated_maps=len(extra),
                  empty_gt=[i for i in ann.empty_gt if i in have_set])
    return report


def retrieval_report(pred: Predictions, ann, ids: list[str]) -> dict | None:
    """Cross-modal R@1/5/10 (a->i, i->a; official_repos.md §3.7) over the sounding `ids` that
    have a class label; None when there are no embeddings, labels, or fewer than 2 classes."""
    if pred.image_emb is None:
        return None
    silent = set(ann.silent)
    labelled = [i for i in ids if i not in silent and ann.class_of(i) is not None]
    labels = [ann.class_of(i) for i in labelled]
    if len(labelled) < 2 or len(set(labels)) < 2:
        return None
    row = {sample_id: k for k, sample_id in enumerate(pred.ids)}
    rows = [row[i] for i in labelled]
    out = cross_modal_recall(pred.audio_emb[rows], pred.image_emb[rows], labels)
    out.update(n=len(labelled), n_classes=len(set(labels)))
    return out


def annotations_of(data, pred: Predictions):
    """The `AnnotationSet` of an `EvalData`: its own, or one built from procedural records."""
    if data.annotations is not None:
        return data.annotations
    from soundlens.training.datasets import vggss_from_list  # datasets (PyAV): procedural records only

    return vggss_from_list(pred.records, source=data.spec.text, warn=False)


def evaluate(model, data, protocol: str = "ezvsl", batch_size: int = 32, workers: int = 0,
             progress: bool = False, allow_missing: bool = False, retrieval: bool = True) -> dict:
    """Run `model` over an `EvalData` (training.data.eval_data) and score it.

    Returns `score_annotated`'s report (cIoU = fraction >= 0.5, AUC, mean_cIoU, hit_rate, per_sample,
    ...) plus `retrieval` (R@K dict or None). `report["predictions"]` is not included; call
    `predict` + `score_annotated` to keep the maps.
    """
    proto = protocols.get(protocol)
    pred = predict(model, data.dataset, batch_size=batch_size, embed=retrieval, workers=workers,
                   progress=progress)
    ann = annotations_of(data, pred)
    report = score_annotated(ann, pred.maps, proto, allow_missing=allow_missing, maps_source=data.spec.text)
    report["retrieval"] = (retrieval_report(pred, ann, [i for i in ann.ids if i in pred.maps]) if retrieval
                           else None)
    return report
