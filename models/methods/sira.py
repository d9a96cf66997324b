"""SIRA-SSL — "Audio-Visual Spatial Integration and Recursive Attention for Robust Sound Source
Localization" (Um et al., ACM MM'23).

Facts from official_repos.md §2.7 (built on HearTheFlow, §2.6) and paper 3's README:

* Encoders: ResNet-18 image trunk (7x7), audio trunk kept spatial (9x9 for 257x276), a flow trunk
  with a 2-channel stem; `FlowAttention` modules (queries/values from the image, keys from the flow).
* Stage 1: image + flow attention -> L2 -> LVS trimap loss against the max-pooled audio vector.
* Stage 2, audio-visual spatial integration: the audio map, resized to the image grid and min-max
  normalised, modulates the image (img + img * audio) before a second flow attention.
* Recursive stage: the stage 1 + 2 maps, upsampled to the input, min-max normalised, values > 0.8
  set to 1, mask the raw image, which is re-encoded and scored through a third flow attention.
* Losses: the three trimap losses (eps 0.65, eps2 0.4, tau 0.03, logits / 0.07) + audio-visual pair
  matching (InfoNCE, T 0.07, max-pooled re-encoded image vs audio) + spatial region alignment
  (KL between the channel-mean image and audio maps after a softmax with T 0.5, x10).
* Map: the sum of the three stages' cosine maps.

Where SoundLens differs from the release, deliberately:
* Training works (the release's `training_step` unpacks 5 items from a 4-item dataset and crashes).
* Min-max normalisations are per sample (the release normalises over the whole batch, so one
  clip's map depends on the others).
* The trimap removes the positives from the easy negatives outright (see models/layers/trimap.py).
* Flow: Farneback (§2.6 parameters) between the key frame and the next one, both resized to the
  model input first, in pixels of that input / `flow_scale` (255: the release reads its flow back
  from 8-bit JPEGs, which also clip negative motion to 0; we keep the sign). A batch without a next
  frame (a single image, the procedural pairs) gets zero flow, so the flow branch contributes a
  constant; live and in `soundlens analyze`, `localize()` gets the flow from the previous frame.
* Images are never augmented (the release resizes to 224x224 and its 224 RandomCrop is a no-op), which
  also keeps the flow registered with the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from soundlens.models.base import MethodConfig, SoundLocalizer, l2
from soundlens.models.encoders import build_encoder, read_state_dict
from soundlens.models.images import prepare_images
from soundlens.models.layers import FlowAttention, flow_batch, trimap_logits
from soundlens.models.maps import minmax
from soundlens.models.registry import Recipe, register_method


@dataclass
class SIRAConfig(MethodConfig):
    audio_preset: str = "htf"  # §2.6/§2.7: 22.05 kHz, centred 3 s -> 257x276
    epsilon: float = 0.65  # §2.6: trimap positive threshold
    epsilon_neg: float = 0.40  # §2.6: epsilon - margin 0.25
    tau: float = 0.03  # §2.6: sigmoid temperature
    logit_temperature: float = 0.07  # §2.6: logits / 0.07
    nce_temperature: float = 0.07  # §2.7: pair matching InfoNCE T
    kl_temperature: float = 0.5  # §2.7: softmax T of the spatial region alignment
    kl_weight: float = 10.0  # §2.7: x10
    recursive_threshold: float = 0.8  # §2.7: mask values above it become 1
    flow_scale: float = 255.0  # flow pixels / 255 (the release's 8-bit flow images)
    # The flow-attention branch (HearTheFlow, §2.6). False: no flow trunk or attention modules; each
    # stage scores the L2-normalised image map directly. For still images (no next frame): with
    # zero flow the attention is uniform, so it only adds the image's global mean value vector to
    # every position, a shortcut that lets the trimap loss fall without localising (measured on the
    # procedural pairs: hit rate 0.41, the random-object rate).
    flow: bool = True
    freeze_vision: bool | None = None  # §2.7 freezes the ImageNet trunk; None: freeze iff pretrained_image

    official_image_preset: ClassVar[str] = "sira"


class SIRA(SoundLocalizer):
    method = "sira"
    cannot_gather = ("its three trimap stages and recursive re-encoding run per batch; a gathered "
                     "version is not implemented")

    def __init__(self, config: SIRAConfig):
        super().__init__(config)
        self.imgnet, self.audnet = self._encoders("resnet18", "resnet18")
        freeze = config.freeze_vision if config.freeze_vision is not None else bool(config.pretrained_image)
        self.imgnet.requires_grad_(not freeze)
        if not config.flow:
            return
        self.flownet = build_encoder("lite" if config.encoder == "lite" else "resnet18", 2)
        if config.pretrained_image:  # HTF: ImageNet flow trunk with a fresh 2-channel stem (§2.6)
            own = self.flownet.state_dict()
            state = {k: v for k, v in read_state_dict(config.pretrained_image).items()
                     if k in own and v.shape == own[k].shape}  # all but the stem (and the classifier)
            self.flownet.load_state_dict(state, strict=False)
        c = self.imgnet.out_channels
        self.attmodule = FlowAttention(c, self.flownet.out_channels)
        self.attmodule_2nd = FlowAttention(c, self.flownet.out_channels)  # §2.7: deep copies of the
        self.attmodule_3rd = FlowAttention(c, self.flownet.out_channels)  # first one: own weights
        self.attmodule_2nd.load_state_dict(self.attmodule.state_dict())
        self.attmodule_3rd.load_state_dict(self.attmodule.state_dict())

    # --- inputs -------------------------------------------------------------------------
    def prepare(self, frames, waveforms, sample_rate: int, train: bool = False):
        """As the base, but images are never augmented (the release trains on plain 224x224 resizes)."""
        return super().prepare(frames, waveforms, sample_rate, train=False)

    def localize(self, frames, waveforms, sample_rate: int, previous_frames=None) -> torch.Tensor:
        """As the base, with the flow from each previous frame to its frame (zero flow without one).
        The release takes the key frame and the next; live, the next frame is not there yet, so
        the motion into the current frame stands in for the motion out of it."""
        images, specs = self.prepare(frames, waveforms, sample_rate)
        flow = None
        if self.config.flow and previous_frames is not None:
            flow = self.prepare_flow(previous_frames, frames)
        return self.heatmap(images, specs, flow)

    def prepare_flow(self, frames, next_frames) -> torch.Tensor:
        """Flow input [B, 2, S, S] for uint8 RGB frames [B, H, W, 3] and the frames that follow them:
        both are resized as the image preset does, then Farneback flow (§2.6) / flow_scale."""
        a, b = (self._resized_uint8(prepare_images(f, self.image_preset, device="cpu"))
                for f in (frames, next_frames))
        return flow_batch(a, b).div(self.config.flow_scale).to(self.device)

    def _resized_uint8(self, images: torch.Tensor) -> np.ndarray:
        """Prepared images -> the resized uint8 frames [B, S, S, 3] they came from."""
        p = self.image_preset
        x = (images.detach().float().cpu() * torch.tensor(p.std)[:, None, None]
             + torch.tensor(p.mean)[:, None, None])
        return (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    def _flow(self, batch: dict, images: torch.Tensor) -> torch.Tensor | None:
        """The batch's flow (given, or from `next_frame`); None: no motion (zero flow in _forward)."""
        if not self.config.flow:
            return None
        if batch.get("flow") is not None:
            return batch["flow"].to(images.device, images.dtype)
        if batch.get("next_frame") is not None:  # images are plain resizes, so the key frame is exact
            nxt = self._resized_uint8(prepare_images(batch["next_frame"], self.image_preset, device="cpu"))
            return flow_batch(self._resized_uint8(images), nxt).div(self.config.flow_scale).to(images)
        return None

    # --- the three stages ---------------------------------------------------------------
    def _attend(self, img, flow_feat, att_name: str) -> torch.Tensor:
        if not self.config.flow:
            return l2(img)
        out, _ = getattr(self, att_name)(img, flow_feat)
        return l2(img + out)

    def _forward(self, images, specs, flow) -> dict:
        img = self.imgnet(images)  # [B, C, h, w]
        aud_map = self.audnet(specs)  # [B, C, h_a, w_a], kept spatial (§2.7)
        aud = l2(aud_map.amax(dim=(2, 3)))
        aud_map = F.interpolate(aud_map, size=img.shape[-2:], mode="bilinear", align_corners=False)
        flow_feat = None
        if self.config.flow:  # no flow given: zero flow (no motion)
            flow = (images.new_zeros(images.shape[0], 2, *images.shape[-2:]) if flow is None
                    else flow.to(images))
            flow_feat = self.flownet(flow)
        att1 = self._attend(img, flow_feat, "attmodule")
        # Audio-visual spatial integration: img + img * minmax(audio map) (§2.7; per sample here).
        img_av = img + img * minmax(aud_map.flatten(1, 2)).view_as(aud_map)
        att2 = self._attend(img_av, flow_feat, "attmodule_2nd")
        loc1, loc2 = (torch.einsum("bchw,bc->bhw", x, aud) for x in (att1, att2))
        # Recursive attention: re-encode the raw image masked by the stage 1 + 2 map (§2.7).
        mask = F.interpolate((loc1 + loc2)[:, None], size=images.shape[-2:], mode="bilinear",
                             align_corners=False)
        mask = minmax(mask[:, 0]).detach()
        mask = torch.where(mask > self.config.recursive_threshold, torch.ones_like(mask), mask)[:, None]
        p = self.image_preset
        mean = images.new_tensor(p.mean)[:, None, None]
        std = images.new_tensor(p.std)[:, None, None]
        img_it = self.imgnet(((images * std + mean) * mask - mean) / std)
        att3 = self._attend(img_it, flow_feat, "attmodule_3rd")
        loc3 = torch.einsum("bchw,bc->bhw", att3, aud)
        return {"atts": (att1, att2, att3), "aud": aud, "aud_map": aud_map, "img_it": img_it,
                "map": loc1 + loc2 + loc3}

    def heatmap(self, images, specs, flow: torch.Tensor | None = None) -> torch.Tensor:
        """Sum of the three stages' maps [B, h, w]; `flow` from `prepare_flow` (None: zero flow)."""
        return self._forward(images, specs, flow)["map"]

    def embed(self, images, specs):
        out = self._forward(images, specs, None)
        return l2(out["img_it"].amax(dim=(2, 3))), out["aud"]

    def loss(self, batch: dict) -> dict:
        cfg = self.config
        images = batch["images"]
        out = self._forward(images, batch["specs"], self._flow(batch, images))
        aud = out["aud"]
        target0 = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
        trimap = images.new_zeros(())
        for att in out["atts"]:
            maps_all = torch.einsum("nchw,mc->nmhw", att, aud)
            maps_pos = torch.diagonal(maps_all, dim1=0, dim2=1).permute(2, 0, 1)
            logits = trimap_logits(maps_pos, maps_all, cfg.epsilon, cfg.epsilon_neg, cfg.tau,
                                   cfg.logit_temperature)
            trimap = trimap + F.cross_entropy(logits, target0)
        # Pair matching: InfoNCE of the max-pooled re-encoded image against the audio (§2.7; image->audio
        # as in the release).
        target = torch.arange(images.shape[0], device=images.device)
        v = l2(out["img_it"].amax(dim=(2, 3)))
        nce = F.cross_entropy(v @ aud.t() / cfg.nce_temperature, target)
        # Spatial region alignment: KL(image || audio) of softmax(channel-mean / T) over positions (§2.7).
        p_img = F.softmax(out["img_it"].mean(dim=1).flatten(1) / cfg.kl_temperature, dim=1)
        p_aud = F.softmax(out["aud_map"].mean(dim=1).flatten(1) / cfg.kl_temperature, dim=1)
        kl = cfg.kl_weight * (p_img * (torch.log(p_img + 1e-10) - torch.log(p_aud + 1e-10))).sum(1).mean()
        return {"loss": trimap + nce + kl, "trimap": trimap.detach(), "pair_nce": nce.detach(),
                "region_kl": kl.detach()}


# §2.7 train.sh: lr 1e-4, batch 128, 100 epochs.
RECIPE = Recipe(
    train={"epochs": 100},
    # Still pairs carry no motion: with zero flow the flow attention is uniform and only adds the
    # image's mean value vector to every position, a shortcut that lowers the trimap loss without
    # localising (hit rate 0.41). Without the flow branch: 0.63.
    short_run_options={"flow": False},
)


@register_method("sira", SIRAConfig, summary="spatial integration + recursive attention + flow (ACM MM'23)",
                 paper="Um et al., Audio-Visual Spatial Integration and Recursive Attention for Robust Sound "
                       "Source Localization, ACM MM 2023", recipe=RECIPE)
def sira(config: SIRAConfig) -> SIRA:
    return SIRA(config)
