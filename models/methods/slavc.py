"""SLAVC — "A Closer Look at Weakly-Supervised Audio-Visual Source Localization" (Mo & Morgado, NeurIPS'22).

Facts from official_repos.md §2.2: the EZ-VSL backbones (§2.1) with image-feature dropout (p 0.9 at
training) before two 1x1 projections `img_proj1/2`, audio dropout (0) before two Linear heads
`aud_proj1/2`, all L2-normalised; momentum (EMA, m 0.999) copies of every trunk and head serve as
targets. Loss: i2a[n, m] = log sum_hw softmax_m(<v1_n(hw), a1'_m>/tau) * softmax_hw(<v2_n(hw), a2'_m>/tau)
(primes: momentum), a2i symmetric with the momentum image, CE on both. The map is the mean of
<v1, a1>/tau and <v2, a2>/tau, from the online encoders (the official test script) or from the
momentum ones (`use_mom_eval`). Parameter names match the release so its checkpoint imports.

The release updates the momentum copies inside `forward`; here `after_step()` does it after each
optimizer step (the engine calls it), so a forward pass never changes weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from soundlens.models.base import MethodConfig, SoundLocalizer, l2
from soundlens.models.importers import OfficialSource
from soundlens.models.layers import ema_update, init_heads, momentum_copy
from soundlens.models.maps import resize_map
from soundlens.models.pretrained import PretrainedRelease
from soundlens.models.registry import Recipe, register_method
from torch import nn

_PARTS = ("imgnet", "img_proj1", "img_proj2", "audnet", "aud_proj1", "aud_proj2")


@dataclass
class SLAVCConfig(MethodConfig):
    dim: int = 512  # §2.2: as EZ-VSL
    tau: float = 0.03  # §2.2: tau 0.03
    dropout_img: float = 0.9  # §2.2: script --dropout_img 0.9 (training only)
    dropout_aud: float = 0.0  # §2.2: --dropout_aud 0
    momentum_img: float = 0.999  # §2.2: --m_img 0.999
    momentum_aud: float = 0.999  # §2.2: --m_aud 0.999
    use_mom_eval: bool = False  # §2.2: the official test script (and SSL-Align's re-scoring) use online
    ogl_alpha: float = 0.9  # §2.2: AV weight of the README's AV+OGL fusion on the extended sets


class SLAVC(SoundLocalizer):
    method = "slavc"
    cannot_gather = ("its contrastive targets come from momentum (EMA) encoders and softmaxes over "
                     "two maps; a gathered version is not implemented")

    def __init__(self, config: SLAVCConfig):
        super().__init__(config)
        self.imgnet, self.audnet = self._encoders("resnet18", "resnet18")
        c_img, c_aud, d = self.imgnet.out_channels, self.audnet.out_channels, config.dim
        self.img_dropout = nn.Dropout(config.dropout_img)
        self.img_proj1, self.img_proj2 = nn.Conv2d(c_img, d, 1), nn.Conv2d(c_img, d, 1)
        self.aud_dropout = nn.Dropout(config.dropout_aud)
        self.aud_proj1, self.aud_proj2 = nn.Linear(c_aud, d), nn.Linear(c_aud, d)
        init_heads(self.img_proj1, self.img_proj2, self.aud_proj1, self.aud_proj2)
        for part in _PARTS:  # momentum copies start equal to the online nets (§2.2)
            setattr(self, f"momentum_{part}", momentum_copy(getattr(self, part)))

    # --- features -----------------------------------------------------------------------
    def _image(self, images: torch.Tensor, momentum: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        p = "momentum_" if momentum else ""
        x = self.img_dropout(getattr(self, p + "imgnet")(images))
        return l2(getattr(self, p + "img_proj1")(x)), l2(getattr(self, p + "img_proj2")(x))

    def _audio(self, specs: torch.Tensor, momentum: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        p = "momentum_" if momentum else ""
        x = self.aud_dropout(getattr(self, p + "audnet")(specs).amax(dim=(2, 3)))  # global max-pool
        return l2(getattr(self, p + "aud_proj1")(x)), l2(getattr(self, p + "aud_proj2")(x))

    def heatmap(self, images, specs, objectness_map: torch.Tensor | None = None) -> torch.Tensor:
        mom = self.config.use_mom_eval
        (v1, v2), (a1, a2) = self._image(images, mom), self._audio(specs, mom)
        s1 = torch.einsum("bchw,bc->bhw", v1, a1)
        s2 = torch.einsum("bchw,bc->bhw", v2, a2)
        av = (s1 + s2) / (2 * self.config.tau)
        if objectness_map is None:
            return av
        # §2.2/§3.3: SLAVC maps AV scores from [-1/tau, 1/tau] and OBJ from [0, 2.5] to [0, 1]
        # (fixed range) before fusing with alpha; the result is min-max normalised by the protocol.
        obj = objectness_map
        if obj.shape[-2:] != av.shape[-2:]:
            obj = resize_map(obj, tuple(av.shape[-2:]), mode="bicubic", align_corners=True)
        a = self.config.ogl_alpha
        return a * (av * self.config.tau + 1) / 2 + (1 - a) * obj / 2.5

    def embed(self, images, specs):
        v1, _ = self._image(images)
        a1, _ = self._audio(specs)
        return l2(v1.mean(dim=(2, 3))), a1

    # --- training -----------------------------------------------------------------------
    def loss(self, batch: dict) -> dict:
        images, specs, tau = batch["images"], batch["specs"], self.config.tau
        v1, v2 = self._image(images)
        a1, a2 = self._audio(specs)
        with torch.no_grad():  # momentum targets (the release applies the same dropout to them)
            v1m, v2m = self._image(images, momentum=True)
            a1m, a2m = self._audio(specs, momentum=True)

        def log_score(img1, img2, aud1, aud2):
            # log sum_hw softmax over audios (m) of map 1 x softmax over locations of map 2 (§2.2)
            s1 = torch.einsum("nchw,mc->nmhw", img1, aud1).flatten(2) / tau
            s2 = torch.einsum("nchw,mc->nmhw", img2, aud2).flatten(2) / tau
            return torch.log((F.softmax(s1, dim=1) * F.softmax(s2, dim=2)).sum(2))

        i2a = log_score(v1, v2, a1m, a2m)
        a2i = log_score(v1m, v2m, a1, a2)
        target = torch.arange(images.shape[0], device=images.device)
        loss_a2i, loss_i2a = F.cross_entropy(a2i, target), F.cross_entropy(i2a, target)
        return {"loss": loss_a2i + loss_i2a, "a2i": loss_a2i.detach(), "i2a": loss_i2a.detach()}

    @torch.no_grad()
    def after_step(self) -> None:
        """EMA update of every momentum copy after an optimizer step (§2.2, m 0.999)."""
        for part in _PARTS:
            m = self.config.momentum_img if part.startswith("im") else self.config.momentum_aud
            ema_update(getattr(self, part), getattr(self, f"momentum_{part}"), m)


OFFICIAL = {
    "slavc": OfficialSource("slavc", {"audio_preset": "ezvsl", "image_preset": "ezvsl"},
                            origin="stoneMo/SLAVC README Drive file, {'model'} with module. (§2.2)"),
}


# stoneMo/SLAVC README.md at 05b429c, "Model Zoo": one model (VGGSound 144k); AP / max-F1 / Precision
# on the extended test sets (silent and off-screen clips included), AV+OGL with alpha 0.9 and
# --relative_prediction (§2.2). Licence: the repository's (Apache-2.0).
PRETRAINED = (
    PretrainedRelease(
        "slavc-vggss144k", "slavc",
        "https://drive.google.com/file/d/1wHufeLWZBv97IaE0cv0GrFk4pLX5NMUj/view?usp=sharing",
        "stoneMo/SLAVC README.md @05b429c (Model Zoo)", "VGGSound 144k (metadata/vggss_144k.txt)",
        {"Extended Flickr-SoundNet": {"AP": 51.63, "max-F1": 59.10, "Precision": 83.60},
         "Extended VGG-SS": {"AP": 32.95, "max-F1": 40.00, "Precision": 37.79}}, "Apache-2.0"),
)


# §2.2: the same recipe as EZ-VSL.
RECIPE = Recipe(
    # EMA momentum 0.999 averages over ~1000 steps; in a 190-step run the targets stay at their random
    # initialisation (hit rate 0.49). 0.9 averages over ~10 steps, the same ~5 % of the run that the
    # paper's ~1000 steps are of its ~22k (§2.2). Measured: 0.74.
    short_run_options={"momentum_img": 0.9, "momentum_aud": 0.9},
)


@register_method("slavc", SLAVCConfig,
                 summary="two projections, image dropout, momentum targets (NeurIPS'22)",
                 paper="Mo & Morgado, A Closer Look at Weakly-Supervised Audio-Visual Source Localization, "
                       "NeurIPS 2022", recipe=RECIPE, official=OFFICIAL,
                 pretrained=PRETRAINED)
def slavc(config: SLAVCConfig) -> SLAVC:
    return SLAVC(config)
