"""LVS — "Localizing Visual Sounds the Hard Way" (Chen et al., CVPR'21).

Facts from official_repos.md §2.3 (the release has no training code; the loss is restated there):
ResNet-18 trunks with layer-4 stride 1 (14x14 image map), L2 over channels, audio max-pooled;
trimap Pos = sigmoid((A - eps)/tau), Neg = 1 - sigmoid((A - eps2)/tau) with eps 0.65, eps2 0.4,
tau 0.03; logits [positive, all-pairs easy negatives, hard negative] / 0.07, target index 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from soundlens.models.base import MethodConfig, SoundLocalizer, l2
from soundlens.models.importers import OfficialSource, remap_avenet
from soundlens.models.layers import past_warmup, trimap_logits
from soundlens.models.pretrained import PretrainedRelease
from soundlens.models.registry import Recipe, register_method


@dataclass
class LVSConfig(MethodConfig):
    encoder: str = "resnet18_lvs"
    audio_preset: str = "lvs"
    epsilon: float = 0.65  # §2.3: positive threshold
    epsilon_neg: float = 0.4  # §2.3: negative threshold
    tau: float = 0.03  # §2.3: sigmoid temperature
    logit_temperature: float = 0.07  # §2.3: logits / 0.07
    # Optimizer steps trained without the hard-negative logit (0 = from the first step, as §2.3).
    # Not in the paper: a short run from random init needs it (docs/methods.md#lvs-short-runs).
    # Untrained, every clip's audio embedding is nearly the same vector (cosine ~0.997: max-pooled
    # ReLU features), so the easy negatives score like the positive and their gradient is a tiny
    # difference of audio vectors, while the hard negative pushes the image's low region down along
    # the common audio vector. That audio-blind push decides the map's sign: wherever the random
    # init is low (here the objects: untrained hit rate 0.14) sinks, and the map ends up on the
    # background (hit rate 0.00 on one machine, 0.85 on another where audio won the race first).
    hard_negative_warmup: int = 0

    official_image_preset: ClassVar[str] = "lvs"


class LVS(SoundLocalizer):
    method = "lvs"
    cannot_gather = None

    def __init__(self, config: LVSConfig):
        super().__init__(config)
        self.imgnet, self.audnet = self._encoders("resnet18_lvs", "resnet18_lvs")

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        return l2(self.imgnet(images))

    def audio_features(self, specs: torch.Tensor) -> torch.Tensor:
        return l2(self.audnet(specs).amax(dim=(2, 3)))

    def heatmap(self, images, specs) -> torch.Tensor:
        return torch.einsum("bchw,bc->bhw", self.image_features(images), self.audio_features(specs))

    def embed(self, images, specs):
        return l2(self.image_features(images).mean(dim=(2, 3))), self.audio_features(specs)

    def loss(self, batch: dict, gather=None) -> dict:
        v, a = self.image_features(batch["images"]), self.audio_features(batch["specs"])
        if gather is not None:  # every audio of the job as an easy negative (--gather-negatives)
            v, a = gather(v), gather(a)
        maps_all = torch.einsum("nchw,mc->nmhw", v, a)
        maps_pos = torch.diagonal(maps_all, dim1=0, dim2=1).permute(2, 0, 1)
        cfg = self.config
        logits = trimap_logits(maps_pos, maps_all, cfg.epsilon, cfg.epsilon_neg, cfg.tau,
                               cfg.logit_temperature,
                               hard_negative=past_warmup(batch, cfg.hard_negative_warmup))
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        loss = F.cross_entropy(logits, target)
        return {"loss": loss, "trimap_ce": loss.detach()}


def remap_ssltie(state: dict) -> dict:
    """SSL-TIE `AVENet` (§2.5): the LVS layout plus `vision_fc1`, `conv3`, `norm3`, unused by the map."""
    return remap_avenet({k: v for k, v in state.items()
                         if not k.startswith(("vision_fc1.", "conv3.", "norm3."))})


OFFICIAL = {
    "lvs": OfficialSource("lvs", {"audio_preset": "lvs", "image_preset": "lvs"}, remap_avenet,
                          origin="hche11/Localizing-Visual-Sounds-the-Hard-Way README Drive links, "
                                 "{'model_state_dict'} with module. (§2.3)"),
    # SSL-TIE's test-time network is LVS' (§2.5), with its own audio preset.
    "ssltie": OfficialSource("lvs", {"audio_preset": "ssltie", "image_preset": "lvs"}, remap_ssltie,
                             origin="jinxiang-liu/SSL-TIE ckpts/*.pth.tar (Drive/Baidu), "
                                    "{'state_dict'} (§2.5)"),
}


# hche11/Localizing-Visual-Sounds-the-Hard-Way README.md at 8fe8cbb ("update model link", the links
# that replaced the expired ones of issue #11): one Drive file per test set. The README gives no
# numbers and does not say which training list each used (issue #12: the VGG-SS model scores close to
# the paper's VGGSound-full row). Licence: the repository's (Apache-2.0).
# jinxiang-liu/SSL-TIE README.md at c49e6a9, "Model weights": one Drive folder (also on Baidu Pan,
# which needs an extraction code: download by hand, pull with --from); the test scripts
# (scripts/test_*.sh) name the files ckpts/{vggsound144k,flickr144k,flickr10k}.pth.tar. The README
# gives no numbers. Licence: the repository's (MIT).
_LVS_README = "hche11/Localizing-Visual-Sounds-the-Hard-Way README.md @8fe8cbb"
_SSLTIE_ZOO = "https://drive.google.com/drive/folders/1KZxXbPilvJNCPaUeAeZAsUKgZoj9R9qJ?usp=sharing"
_SSLTIE_README = "jinxiang-liu/SSL-TIE README.md @c49e6a9 (Model weights)"
PRETRAINED = (
    PretrainedRelease("lvs-flickr", "lvs",
                      "https://drive.google.com/file/d/1Rif19nk8RpxBrkGGoI92g-fssa2qsl-m/view?usp=sharing",
                      _LVS_README, "Flickr-SoundNet (the README does not say which list)", {}, "Apache-2.0"),
    PretrainedRelease("lvs-vggss", "lvs",
                      "https://drive.google.com/file/d/1ieyJ7rrrR5aF8SwHNGYNS9dX9t9_apsc/view?usp=sharing",
                      _LVS_README, "VGGSound (issue #12: close to the paper's VGGSound-full row)",
                      {}, "Apache-2.0"),
    PretrainedRelease("ssltie-vggss144k", "ssltie", _SSLTIE_ZOO, _SSLTIE_README,
                      "VGGSound 144k (SSL-TIE's train_vggss_train_144k.txt, no VGGSound test clips)", {},
                      "MIT", file="*vggsound144k.pth.tar"),
    PretrainedRelease("ssltie-flickr144k", "ssltie", _SSLTIE_ZOO, _SSLTIE_README, "Flickr-SoundNet 144k", {},
                      "MIT", file="*flickr144k.pth.tar"),
    PretrainedRelease("ssltie-flickr10k", "ssltie", _SSLTIE_ZOO, _SSLTIE_README, "Flickr-SoundNet 10k", {},
                      "MIT", file="*flickr10k.pth.tar"),
)


# §2.3: no training code was released; trains with the EZ-VSL recipe it was compared under.
RECIPE = Recipe(
    # See LVSConfig.hard_negative_warmup: the first 60 steps (one epoch of the learning test) train
    # with the easy negatives only, which tie the map to the audio; then the paper's full loss.
    # Measured: 0.00 -> 0.98 natively on an AVX-512 CPU (docs/methods.md#lvs-short-runs).
    short_run_options={"hard_negative_warmup": 60},
)


@register_method("lvs", LVSConfig, summary="trimap hard negatives on a 14x14 cosine map (CVPR'21)",
                 paper="Chen et al., Localizing Visual Sounds the Hard Way, CVPR 2021", recipe=RECIPE,
                 official=OFFICIAL, pretrained=PRETRAINED)
def lvs(config: LVSConfig) -> LVS:
    return LVS(config)
