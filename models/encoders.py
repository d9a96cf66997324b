"""Convolutional encoders shared by the methods: ResNet-18 trunks (torchvision key names) and a lite one.

Every encoder maps [B, C_in, H, W] -> a spatial feature map [B, out_channels, h, w]; methods pool
or project it themselves. Nothing downloads weights: `load_pretrained` reads a local file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from soundlens.models.efficientnet import efficientnet_lite0
from soundlens.models.errors import SoundLensError
from torch import nn


@dataclass(frozen=True)
class EncoderSpec:
    widths: tuple[int, int, int, int]
    blocks: tuple[int, int, int, int]
    layer4_stride: int


ENCODERS: dict[str, EncoderSpec] = {
    "resnet18": EncoderSpec((64, 128, 256, 512), (2, 2, 2, 2), 2),
    "resnet18_lvs": EncoderSpec((64, 128, 256, 512), (2, 2, 2, 2), 1),
}


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block (same parameter names), without importing torchvision."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNetTrunk(nn.Module):
    """A ResNet without pooling/classifier whose parameter names match torchvision's
    (`conv1`, `bn1`, `layer1`..`layer4`), so official ResNet-18 state dicts load unchanged."""

    def __init__(self, spec: EncoderSpec, in_channels: int = 3):
        super().__init__()
        self.inplanes = spec.widths[0]
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        strides = (1, 2, 2, spec.layer4_stride)
        for i, (width, n, stride) in enumerate(zip(spec.widths, spec.blocks, strides), start=1):
            setattr(self, f"layer{i}", self._make_layer(width, n, stride))
        self.out_channels = spec.widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class LiteTrunk(nn.Module):
    """SoundLens' CPU real-time encoder: four stages of 3x3 conv (strides 2, 2, 2, 1) + 1x1 conv.

    Output stride 8 (112 px -> a 14x14 map) with a receptive field of 31 px. The field is kept
    local on purpose: trained from scratch, an encoder whose every cell sees the whole image (a
    ResNet-18 cell sees ~400 px) has no reason to put the evidence where the object is; with a
    local field, max-over-locations training must find the object. About 0.5 M parameters.
    `input_pool` average-pools the input first (spectrograms: 4x2 over frequency x time).

    `padding` is the 3x3 convs' padding mode. Image trunks use "replicate": with zeros, a border
    cell's 31-px field is up to half padding, so its feature is nearly the same in every image;
    max-MIL training (EZ-VSL's max over cells) then pulls the still shared audio vector of an untrained
    model onto that cell, every logit becomes equal and the InfoNCE gradient vanishes (docs/methods.md
    #border-cells). "zeros" is the layout of checkpoints written before `lite_padding` existed.
    """

    def __init__(self, in_channels: int = 3, widths=(32, 64, 128, 256), strides=(2, 2, 2, 1),
                 input_pool: tuple[int, int] | None = None, padding: str = "zeros"):
        super().__init__()
        self.input_pool = input_pool
        stages, c_in = [], in_channels
        for width, stride in zip(widths, strides):
            stages.append(nn.Sequential(
                nn.Conv2d(c_in, width, 3, stride=stride, padding=1, padding_mode=padding, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            ))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.out_channels = widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_pool is not None:
            x = F.avg_pool2d(x, self.input_pool, ceil_mode=True)
        return self.stages(x)


LITE_PADDINGS = ("zeros", "replicate")
ENCODER_NAMES = ("resnet18", "resnet18_lvs", "lite", "lite_audio")


def build_encoder(name: str, in_channels: int = 3, padding: str = "zeros") -> nn.Module:
    """An encoder by name for `in_channels` inputs (3 image, 1 audio); `out_channels` gives its width.

    resnet18: torchvision ResNet-18 (EZ-VSL, SLAVC, JSA; 224 px -> 7x7).
    resnet18_lvs: layer-4 stride 1 (official_repos.md §2.3: LVS, SSL-Align, SSL-TIE; 224 px -> 14x14).
    lite / lite_audio: SoundLens' CPU real-time encoder (LiteTrunk) for images / spectrograms;
    `padding` ("zeros" | "replicate") is the lite trunk's padding mode (ResNets keep their zeros).
    """
    if name == "efficientnet_lite0":  # ImageNet EfficientNet-Lite0 (optional extra), its own file
        return efficientnet_lite0(in_channels)
    if padding not in LITE_PADDINGS:
        raise SoundLensError(f"unknown lite padding '{padding}'; choose one of {', '.join(LITE_PADDINGS)}")
    if name == "lite":
        return LiteTrunk(in_channels, padding=padding)
    if name == "lite_audio":
        return LiteTrunk(in_channels, input_pool=(4, 2))
    if name not in ENCODERS:
        raise SoundLensError(f"unknown encoder '{name}'; choose one of {', '.join(ENCODER_NAMES)}")
    return ResNetTrunk(ENCODERS[name], in_channels)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a local weights file: safetensors, or a PyTorch file read with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise SoundLensError(f"weights file not found: {path}; give the path of a local .safetensors or .pth "
                             "file")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses anything that would need unpickling code
        raise SoundLensError(f"cannot read {path} as plain tensors ({err.__class__.__name__}); "
                             "SoundLens loads only safetensors or weights-only PyTorch files") from None
    for key in ("model", "model_state_dict", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise SoundLensError(f"{path} holds no state dict")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_pretrained(encoder: nn.Module, path: str | Path) -> None:
    """Load backbone weights (e.g. torchvision's resnet18 ImageNet file) from a local file.

    The classifier (`fc.*`) is ignored; a one-channel stem gets the mean of an RGB stem. Any other
    missing or unexpected key is an error that lists them.
    """
    state = {k.removeprefix("module."): v for k, v in read_state_dict(path).items()
             if not k.startswith("fc.")}
    stem = state.get("conv1.weight")
    if stem is not None and stem.shape[1] != encoder.conv1.in_channels and encoder.conv1.in_channels == 1:
        state["conv1.weight"] = stem.mean(dim=1, keepdim=True)
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SoundLensError(f"{path} does not match the encoder: missing {missing[:5]}, unexpected "
                             f"{unexpected[:5]} ({len(missing)} / {len(unexpected)} keys)")


def cell_geometry(trunk: nn.Module) -> tuple[float, float]:
    """Where an image trunk's output cells look: cell k (along either axis) has its receptive-field
    centre at `stride * k + offset` input pixels (continuous coordinates, pixel p spans [p, p + 1)).

    Derived from the layers on the main path, input to output: each Conv2d / MaxPool2d maps its output
    index j to input index `s * j + d * (k - 1) / 2 - p`. Strided layers with symmetric padding put the
    centre at the top-left corner of the cell's block, not at its middle (`stride * (k + 0.5)`, where
    resizing the map to the image draws it): ResNet-18 `offset` 0.5 at stride 32 (15.5 px off at 224),
    the lite trunk 0.5 at stride 8 (3.5 px off at 112). Residual downsample branches align with the
    main path and are skipped.
    """
    scale, shift = 1.0, 0.0
    for name, m in trunk.named_modules():
        if "downsample" in name or not isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            continue
        k, s, p, d = (v if isinstance(v, int) else v[0]
                      for v in (m.kernel_size, m.stride, m.padding, m.dilation))
        shift += scale * (d * (k - 1) / 2 - p)
        scale *= s
    return scale, shift + 0.5
