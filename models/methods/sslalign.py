"""SSL-Align — "Sound Source Localization is All about Cross-Modal Alignment" (Senocak et al., ICCV'23).

Paper 2 (shared/papers) and official_repos.md §2.4. The test-time network is the LVS one (§2.3:
ResNet-18 trunks with layer-4 stride 1, 14x14 cosine map, audio max-pooled); the method changes
training:

* s_L (Eq. 1): localisation similarity, the mean over the positions in a mask M of the cosine between
  each image feature v^xy and the audio feature a. The paper uses no mask (M = 1, `loc_mask="none"`);
  Eq. 1's optional pseudo-mask is available as `loc_mask="trimap"` (LVS' soft positive region).
* s_A (Eq. 2): alignment similarity, the cosine between p_v(avg(v)) and p_a(a), with projection
  heads p_v, p_a (SimCLR-style, so alignment does not smooth out the localisation space).
* Positives (§3.2): V = {v, v_aug, v_conc}, A = {a, a_aug, a_conc}, all 9 pairs. v_aug: random image
  transformations; a_aug: a temporal shift of the audio; v_conc / a_conc: conceptually similar
  samples, one of the top-k nearest neighbours of the item in each modality, mined once with a
  pretrained encoder (training/neighbours.py). Batches carry them as `conc_frame` / `conc_waveform`
  (raw, as the dataset wrapper `ConceptualPositives` adds them) or `conc_images` / `conc_specs`
  (prepared). Without a neighbour index the conceptual positive falls back to the original sample,
  so the pairs (v|v_conc) x (a|a_conc) all repeat (v, a).
* Loss (Eq. 3): for each of the 9 pairs, InfoNCE over the batch (negatives: the other clips' audio)
  with s_L plus the same with s_A, summed over the pairs, averaged over the batch.

The release has no training code (§2.4): tau, the projection heads' shape and the augmentation
strengths are not given in the paper text; the choices below are SoundLens' and are marked so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from soundlens.models.base import MethodConfig, SoundLocalizer, l2
from soundlens.models.errors import SoundLensError
from soundlens.models.importers import OfficialSource, remap_avenet
from soundlens.models.layers import random_view, time_shift
from soundlens.models.pretrained import PretrainedRelease
from soundlens.models.registry import Recipe, register_method
from torch import nn


@dataclass
class SSLAlignConfig(MethodConfig):
    encoder: str = "resnet18_lvs"  # §2.4: the LVS AVENet at test time
    audio_preset: str = "sslalign"  # §2.4: 3 s slice of 10 s, noverlap 353 -> 257x299
    tau: float = 0.07  # Eq. 3 temperature; not stated in the paper text: LVS' logit temperature (§2.3)
    projection: bool = True  # Eq. 2 projection heads p_v, p_a (False: s_A on the pooled features)
    proj_dim: int = 512  # SoundLens choice: Linear-ReLU-Linear 512 -> 512 -> proj_dim (SimCLR style)
    augment: bool = True  # §3.2 hand-crafted positives v_aug, a_aug
    crop_min: float = 0.6  # SoundLens choice: v_aug crop side fraction in [crop_min, 1]
    jitter: float = 0.4  # SoundLens choice: v_aug brightness/contrast/saturation strength
    shift_max: float = 0.25  # SoundLens choice: a_aug circular time shift, fraction of the frames
    # Eq. 1's mask M: "none" is M = 1, the paper's setting; "trimap" is the optional pseudo-mask Eq. 1
    # allows, LVS' soft positive region sigmoid((A - epsilon) / mask_tau) (§2.3, ref. [2]).
    loc_mask: str = "none"
    epsilon: float = 0.65  # §2.3 (loc_mask "trimap")
    mask_tau: float = 0.03  # §2.3 (loc_mask "trimap")

    official_image_preset: ClassVar[str] = "sslalign"


def _head(c_in: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, c_in), nn.ReLU(inplace=True), nn.Linear(c_in, dim))


class SSLAlign(SoundLocalizer):
    method = "sslalign"
    uses_neighbours = True
    cannot_gather = ("its nine positive-pair InfoNCE terms use per-batch augmented views; a gathered "
                     "version is not implemented")

    def __init__(self, config: SSLAlignConfig):
        super().__init__(config)
        if config.loc_mask not in ("none", "trimap"):
            raise SoundLensError(f"loc_mask must be 'none' (M = 1) or 'trimap' (Eq. 1's pseudo-mask), got "
                                 f"'{config.loc_mask}'")
        self.imgnet, self.audnet = self._encoders("resnet18_lvs", "resnet18_lvs")
        if config.projection:
            self.proj_img = _head(self.imgnet.out_channels, config.proj_dim)  # p_v (Eq. 2)
            self.proj_aud = _head(self.audnet.out_channels, config.proj_dim)  # p_a (Eq. 2)
            # PyTorch default init (SimCLR heads): the EZ-VSL std-0.01 init starts s_A collapsed.

    # --- features -----------------------------------------------------------------------
    def features(self, images: torch.Tensor, specs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw image map v [B, C, h, w] and max-pooled audio vector a [B, C] (LVS, §2.3)."""
        return self.imgnet(images), self.audnet(specs).amax(dim=(2, 3))

    def aligned(self, v: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The s_A embeddings of Eq. 2: L2(p_v(avg(v))), L2(p_a(a))."""
        v = v.mean(dim=(2, 3))
        if self.config.projection:
            v, a = self.proj_img(v), self.proj_aud(a)
        return l2(v), l2(a)

    def localization_similarity(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """s_L (Eq. 1) of every image with every audio -> [B_v, B_a]; v [B, C, h, w], a [B, C] raw."""
        maps = torch.einsum("nchw,mc->nmhw", l2(v), l2(a)).flatten(2)  # cosine of v^xy and a
        if self.config.loc_mask == "none":
            return maps.mean(dim=2)  # M = 1
        m = torch.sigmoid((maps - self.config.epsilon) / self.config.mask_tau)  # soft pseudo-mask M
        return (m * maps).sum(dim=2) / m.sum(dim=2)

    def heatmap(self, images, specs) -> torch.Tensor:
        v, a = self.features(images, specs)
        return torch.einsum("bchw,bc->bhw", l2(v), l2(a))

    def embed(self, images, specs):
        """Retrieval embeddings: the alignment space of s_A (Eq. 2)."""
        return self.aligned(*self.features(images, specs))

    # --- training -----------------------------------------------------------------------
    def _conceptual(self, batch: dict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """v_conc, a_conc as prepared inputs, or None where the batch has none (fallback: original)."""
        images, specs = batch.get("conc_images"), batch.get("conc_specs")
        if images is None and "conc_frame" in batch:
            rate = batch["sample_rate"]
            rate = int(rate[0]) if torch.is_tensor(rate) else int(rate)
            frames, waves = batch["conc_frame"], batch["conc_waveform"]
            if isinstance(frames, (list, tuple)):  # clips of different sizes (real videos): one at a time
                pairs = [self.prepare(f[None], w[None], rate, train=self.training)
                         for f, w in zip(frames, waves)]
                return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
            images, specs = self.prepare(frames, waves, rate, train=self.training)
        return images, specs

    def loss(self, batch: dict) -> dict:
        cfg = self.config
        images, specs = batch["images"], batch["specs"]
        b = images.shape[0]
        img_views, aud_views = [images], [specs]
        if cfg.augment:
            p = self.image_preset
            img_views.append(random_view(images, p.mean, p.std, cfg.crop_min, cfg.jitter))
            aud_views.append(time_shift(specs, cfg.shift_max))
        conc_img, conc_aud = self._conceptual(batch)
        # Index of each positive in its view list; a missing conceptual positive is the original (0).
        v_idx, a_idx = list(range(len(img_views))), list(range(len(aud_views)))
        v_idx.append(len(img_views) if conc_img is not None else 0)
        a_idx.append(len(aud_views) if conc_aud is not None else 0)
        if conc_img is not None:
            img_views.append(conc_img.to(images.device))
        if conc_aud is not None:
            aud_views.append(conc_aud.to(specs.device))
        # One trunk pass per modality over all views.
        v_all = self.imgnet(torch.cat(img_views)).unflatten(0, (len(img_views), b))
        a_all = self.audnet(torch.cat(aud_views)).amax(dim=(2, 3)).unflatten(0, (len(aud_views), b))
        v_al, a_al = self.aligned(v_all.flatten(0, 1), a_all.flatten(0, 1))
        v_al, a_al = v_al.unflatten(0, (len(img_views), b)), a_al.unflatten(0, (len(aud_views), b))
        target = torch.arange(b, device=images.device)
        loss_loc = loss_align = images.new_zeros(())
        for i in v_idx:  # Eq. 3: every (v_i, a_j) of V x A
            for j in a_idx:
                loss_loc = loss_loc + F.cross_entropy(self.localization_similarity(v_all[i],
                                                                                   a_all[j]) / cfg.tau,
                                                      target)
                loss_align = loss_align + F.cross_entropy(v_al[i] @ a_al[j].t() / cfg.tau, target)
        return {"loss": loss_loc + loss_align, "loc": loss_loc.detach(), "align": loss_align.detach(),
                "conceptual": images.new_tensor(float(conc_img is not None))}


OFFICIAL = {
    # The release holds only the LVS AVENet used at test time (§2.4), no projection heads.
    "sslalign": OfficialSource("sslalign", {"audio_preset": "sslalign", "image_preset": "sslalign",
                                            "projection": False}, remap_avenet,
                               origin="kaistmm/SSLalignment checkpoints/ours_*.pth.tar, {'model_state_dict'} "
                                      "(§2.4)"),
}


# kaistmm/SSLalignment README.md at e7ae3c5, "Model Checkpoints": six Drive files, cIoU as the README
# reports them. "NN w/ Sup. Pre. Enc." (positives mined with supervised encoders) is the main model and
# takes the plain name; "Self-Sup." and "+ Pre-trained Vision" are the variants. The repository has no
# licence file: ask the authors before using these beyond research.
_SSLALIGN_README = "kaistmm/SSLalignment README.md @e7ae3c5 (Model Checkpoints)"
_NO_LICENCE = "none stated (no licence file in the repository)"


def _sslalign(name: str, drive_id: str, train_data: str, test: str, ciou: float,
              note: str) -> PretrainedRelease:
    return PretrainedRelease(name, "sslalign",
                             f"https://drive.google.com/file/d/{drive_id}/view?usp=drive_link",
                             _SSLALIGN_README, train_data, {test: {"cIoU": ciou}}, _NO_LICENCE, note=note)


PRETRAINED = (
    _sslalign("sslalign-vggss144k", "1-WUEoAmp4WBj4Tbsi9Ybh2bq4W6-uYnd", "VGGSound 144k", "VGG-SS", 39.94,
              "NN w/ Sup. Pre. Enc."),
    _sslalign("sslalign-vggss144k-selfsup", "1p_eXOlZfeCo5EwY5RRkh4YnAnMZJ0Eyz", "VGGSound 144k",
              "VGG-SS", 39.16, "NN w/ Self-Sup. Pre. Enc."),
    _sslalign("sslalign-vggss144k-previs", "1FYv6Pt8k8MdHlBHDCaMVGtWZN_UXh_GJ", "VGGSound 144k",
              "VGG-SS", 41.42, "NN w/ Sup. Pre. Enc. + Pre-trained Vision"),
    _sslalign("sslalign-flickr144k", "1R_LEEcUEnwREvt_ducCdnEVUI6VHvnqv", "Flickr-SoundNet 144k",
              "Flickr-SoundNet", 85.20, "NN w/ Sup. Pre. Enc."),
    _sslalign("sslalign-flickr144k-selfsup", "1HHnUc3sERGrCjUbHklS9uDdA5yxjRtKB", "Flickr-SoundNet 144k",
              "Flickr-SoundNet", 84.80, "NN w/ Self-Sup. Pre. Enc."),
    _sslalign("sslalign-flickr144k-previs", "1zs0gr1_QVfonw0Q2VVbExwUUDhJSUH35", "Flickr-SoundNet 144k",
              "Flickr-SoundNet", 86.00, "NN w/ Sup. Pre. Enc. + Pre-trained Vision"),
)


# §2.4: no training code was released; trains with the EZ-VSL recipe it was compared under.
RECIPE = Recipe(
    # Eq. 1 with M = 1 averages the cosine over the whole image: the background is shared by every
    # class, so nothing ties it to the audio and the peak lands on it (hit rate 0.22). Eq. 1's optional
    # pseudo-mask (ref. [2], LVS' positive region) keeps s_L on the responding region. Measured: 0.80.
    short_run_options={"loc_mask": "trimap"},
)


@register_method("sslalign", SSLAlignConfig, summary="localisation + alignment InfoNCE over 9 positive pairs "
                 "(ICCV'23)", paper="Senocak et al., Sound Source Localization is All about Cross-Modal "
                                   "Alignment, ICCV 2023", recipe=RECIPE, official=OFFICIAL,
                 pretrained=PRETRAINED)
def sslalign(config: SSLAlignConfig) -> SSLAlign:
    return SSLAlign(config)
