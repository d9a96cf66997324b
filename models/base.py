"""The one interface every method implements, and the config fields they all share."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from soundlens.models.encoders import build_encoder, load_pretrained
from soundlens.models.errors import SoundLensError
from soundlens.models.frontends import AudioFrontend
from soundlens.models.geometry import for_model
from soundlens.models.images import prepare_images
from soundlens.models.presets import audio_preset, image_preset
from torch import nn


@dataclass
class MethodConfig:
    """Options every method has. Defaults are the method's official ones (set by each subclass)."""

    encoder: str = "resnet18"  # image/audio trunk: resnet18 | resnet18_lvs | lite
    audio_preset: str = "ezvsl"
    image_preset: str | None = None  # None: "lite" for the lite encoder, else the method's own
    # local file with image-trunk weights; never downloaded here (`soundlens train --image-weights imagenet`
    # fetches torchvision's first: models.imagenet)
    pretrained_image: str | None = None
    # The lite image trunk's padding mode (models.encoders.LiteTrunk says why "replicate");
    # checkpoints saved without this field were trained with "zeros" and load that way.
    lite_padding: str = "replicate"

    official_image_preset: ClassVar[str] = "ezvsl"

    def image_preset_name(self) -> str:
        if self.image_preset is not None:
            return self.image_preset
        return "lite" if self.encoder == "lite" else self.official_image_preset

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class SoundLocalizer(nn.Module):
    """Base of every method.

    heatmap(images, specs) -> [B, h, w]   native map, higher = more likely the source
    embed(images, specs)   -> (image_emb [B, D], audio_emb [B, D]), L2-normalised, for retrieval
    loss(batch)            -> {"loss": scalar, <named terms>...}; batch has "images" [B, 3, S, S]
                              and "specs" [B, 1, F, T] (plus method-specific keys)
    prepare(frames, waveforms, sample_rate) -> (images, specs) with this method's presets
    localize(frames, waveforms, sample_rate, previous_frames=None) -> [B, h, w] from raw inputs; the
                              frames before `frames` feed methods that use motion (SIRA's flow)
    forward(batch) == loss(batch), so DDP wraps the training step.
    """

    method: ClassVar[str] = ""
    # Why `loss(batch, gather=...)` cannot use the whole job's negatives; None when it can
    # (open_clip's ClipLoss pattern, style.md §2: the loss gathers, one code path for 1 or N ranks).
    cannot_gather: ClassVar[str | None] = "it defines no gathered loss"
    # Trains with conceptual positives from a neighbour index (`soundlens data neighbours`); the
    # trainer then loads <data folder>/neighbours.npz when it exists (SSL-Align, paper 2 §3.2).
    uses_neighbours: ClassVar[bool] = False

    def __init__(self, config: MethodConfig):
        super().__init__()
        self.config = config
        self.audio_preset = audio_preset(config.audio_preset)
        self.image_preset = image_preset(config.image_preset_name())
        self.frontend = AudioFrontend(self.audio_preset)

    # --- building blocks -------------------------------------------------------------------
    def _encoders(self, image_name: str, audio_name: str) -> tuple[nn.Module, nn.Module]:
        """Image (3-ch) and audio (1-ch) trunks; the lite encoder replaces both when configured."""
        if self.config.encoder == "lite":
            image_name, audio_name = "lite", "lite_audio"
        elif self.config.encoder == "efficientnet_lite0":
            image_name = audio_name = "efficientnet_lite0"
        elif self.config.encoder not in (image_name, "resnet18", "resnet18_lvs"):
            raise SoundLensError(f"{self.method} cannot use encoder '{self.config.encoder}'; choose lite, "
                                 f"efficientnet_lite0 or its own {image_name}")
        imgnet, audnet = (build_encoder(image_name, 3, padding=self.config.lite_padding),
                          build_encoder(audio_name, 1))
        if self.config.pretrained_image:
            load_pretrained(imgnet, self.config.pretrained_image)
        return imgnet, audnet

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def prepare(self, frames, waveforms, sample_rate: int, train: bool = False):
        """uint8 RGB frames [B, H, W, 3] + float waveforms [B, N] at `sample_rate` -> (images, specs)."""
        device = self.device
        images = prepare_images(frames, self.image_preset, train=train, device=device)
        wav = torch.as_tensor(np.asarray(waveforms) if not torch.is_tensor(waveforms) else waveforms)
        specs = self.frontend(wav.to(device), sample_rate)
        return images, specs

    def localize(self, frames, waveforms, sample_rate: int, previous_frames=None) -> torch.Tensor:
        """Native heatmaps [B, h, w] for uint8 RGB frames [B, H, W, 3] and waveforms [B, N].

        `previous_frames` (same shape as `frames`: the frame before each, or None) is for methods
        that use motion; the others ignore it. The live worker and `soundlens analyze` call this.
        """
        images, specs = self.prepare(frames, waveforms, sample_rate)
        return self.heatmap(images, specs)

    # --- the interface --------------------------------------------------------------------
    def heatmap(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, images: torch.Tensor, specs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def loss(self, batch: dict, gather: Callable | None = None) -> dict:
        """Training loss terms. `batch` may hold `global_step` (the trainer's step count, for
        step-scheduled terms). `gather` (methods with `cannot_gather = None`) maps a local feature
        batch [b, ...] to the whole job's [world * b, ...], keeping the local gradient."""
        raise NotImplementedError

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Image feature map [B, C, h, w] the heatmap is computed from (SSL-Align's neighbour search)."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called by the trainer after every optimizer step (SLAVC's momentum encoders)."""

    def forward(self, batch: dict, gather: Callable | None = None) -> dict:
        return self.loss(batch) if gather is None else self.loss(batch, gather=gather)

    def cell_centres(self, frame_hw: tuple[int, int], map_hw: tuple[int, int]):
        """Where cell (r, c) of this model's `map_hw` map looks on a `frame_hw` (height, width) frame:
        a `models.geometry.CellCentres` (the receptive-field centre of the image trunk's cell, through
        the image preset's resize and crop; not the middle of the cell's block)."""
        return for_model(self, frame_hw, map_hw)


def l2(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return F.normalize(x, dim=dim)


def symmetric_ce(logits: torch.Tensor) -> torch.Tensor:
    """InfoNCE in both directions for logits [B, B] whose diagonal holds the positives."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)
