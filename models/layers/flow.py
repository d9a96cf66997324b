"""Optical flow inputs and the flow attention of HearTheFlow / SIRA (official_repos.md §2.6, §2.7).

`farneback_flow` is the official preprocessing: OpenCV Farneback flow between a key frame and the
next one, on grayscale images, with the release's parameters. `FlowAttention` is the SAGAN-style
attention whose queries and values come from the image map and whose keys come from the flow map.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import nn

# §2.6: cv2.calcOpticalFlowFarneback(prev, next, None, 0.5, 3, 15, 3, 5, 1.2, 0)
FARNEBACK_PARAMS = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5,
                    "poly_sigma": 1.2, "flags": 0}


def _gray(frame) -> np.ndarray:
    x = np.asarray(frame.cpu() if torch.is_tensor(frame) else frame)
    if x.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {x.dtype}")
    return x if x.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY)


def farneback_flow(frame: np.ndarray, next_frame: np.ndarray) -> np.ndarray:
    """Dense flow from `frame` to `next_frame` (uint8 RGB [H, W, 3] or gray [H, W]) -> float32
    [H, W, 2] (x, y displacement in pixels), with the official parameters (§2.6)."""
    a, b = _gray(frame), _gray(next_frame)
    if a.shape != b.shape:
        raise ValueError(f"consecutive frames differ in size: {a.shape} vs {b.shape}")
    return cv2.calcOpticalFlowFarneback(a, b, None, **FARNEBACK_PARAMS)


def flow_batch(frames, next_frames) -> torch.Tensor:
    """Flow of each pair of a batch: uint8 [B, H, W, 3] (numpy or torch) twice -> float32 [B, 2, H, W]."""
    flows = [farneback_flow(a, b) for a, b in zip(frames, next_frames)]
    return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous()


class FlowAttention(nn.Module):
    """out = V(img) · softmax(Q(img)ᵀ K(flow) / sqrt(C/8))ᵀ; returns (out [B, C, h, w], attention [B, hw,
    hw]).

    Query and key are 1x1 convs to C/8 channels, value a 1x1 conv to C (HearTheFlow `Self_Attn`,
    §2.6: query/key [64, 512, 1, 1], value [512, 512, 1, 1]).
    """

    def __init__(self, in_dim: int = 512, key_in_dim: int = 512):
        super().__init__()
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2d(key_in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, 1)

    def forward(self, x: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = x.shape
        if flow.shape[-2:] != (h, w):
            flow = nn.functional.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
        q = self.query_conv(x).flatten(2).transpose(1, 2)  # [B, hw, C/8]
        k = self.key_conv(flow).flatten(2)  # [B, C/8, hw]
        attention = torch.bmm(q, k).div(math.sqrt(q.shape[-1])).softmax(dim=-1)
        out = torch.bmm(self.value_conv(x).flatten(2), attention.transpose(1, 2))
        return out.view(b, c, h, w), attention
