"""Joint slot attention over image and audio tokens (JSA, official_repos.md §2.8).

Two streams (image, audio) start from the same learnable slots; each runs `iters` rounds of slot
attention over its own tokens: LayerNorm'd slots -> query; logits q·k / sqrt(D); softmax over the
slots (the competition), + eps, then renormalised over the tokens; weighted mean of the values;
GRU update; residual MLP with pre-LayerNorm. The cross-modal attentions (image-slot queries over
audio keys and audio-slot queries over image keys) use the same recipe on the last round's queries
and do not update the slots. At training time each token is replaced by a learned mask token with
probability `mask_ratio`. Parameter names follow the official release so its checkpoints load.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

EPS = 1e-8  # §2.8: added after the softmax over slots


def slot_attention_map(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention [B, S, N] of slot queries q [B, S, D] over tokens k [B, N, D]: softmax over the
    slots, + eps, then each slot's row renormalised to sum to 1 over the tokens."""
    attn = torch.einsum("bsd,bnd->bsn", q, k).mul(scale).softmax(dim=1) + EPS
    return attn / attn.sum(dim=-1, keepdim=True)


@dataclass
class JointSlots:
    """What one pass of joint slot attention produces (B batch, S slots, N image / T audio tokens)."""

    img_slots: torch.Tensor  # [B, S, D] final image slots
    aud_slots: torch.Tensor  # [B, S, D] final audio slots
    img_q: torch.Tensor  # [B, S, D] last round's image-slot queries
    aud_q: torch.Tensor  # [B, S, D] last round's audio-slot queries
    img_k: torch.Tensor  # [B, N, D] image keys
    aud_k: torch.Tensor  # [B, T, D] audio keys
    img_img: torch.Tensor  # [B, S, N] image queries over image keys (last round)
    img_aud: torch.Tensor  # [B, S, T] image queries over audio keys
    aud_aud: torch.Tensor  # [B, S, T] audio queries over audio keys
    aud_img: torch.Tensor  # [B, S, N] audio queries over image keys


class JointSlotAttention(nn.Module):
    def __init__(self, dim: int = 512, num_slots: int = 2, iters: int = 5, mask_ratio: float = 0.1,
                 hidden: int = 1024):
        super().__init__()
        self.dim, self.num_slots, self.iters, self.mask_ratio = dim, num_slots, iters, mask_ratio
        self.scale = dim**-0.5
        self.slots = nn.Parameter(torch.randn(1, num_slots, dim))
        self.mask_token_img = nn.Parameter(torch.randn(1, 1, dim))
        self.mask_token_aud = nn.Parameter(torch.randn(1, 1, dim))
        for m in ("img", "aud"):
            for name in ("to_q", "to_k", "to_v"):
                setattr(self, f"{m}_{name}", nn.Linear(dim, dim))
            setattr(self, f"{m}_gru", nn.GRUCell(dim, dim))
            setattr(self, f"{m}_mlp",
                    nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim)))
            for name in ("norm_input", "norm_slots", "norm_pre_ff"):
                setattr(self, f"{m}_{name}", nn.LayerNorm(dim))

    def _mask(self, tokens: torch.Tensor, token: torch.Tensor, mask: bool) -> torch.Tensor:
        """Token masking (§2.8): each token becomes `token` with p = mask_ratio."""
        if not mask or self.mask_ratio <= 0:
            return tokens
        hit = torch.rand(tokens.shape[:2] + (1,), device=tokens.device) < self.mask_ratio
        return torch.where(hit, token.to(tokens.dtype).expand_as(tokens), tokens)

    def _iterate(self, m: str, k: torch.Tensor,
                 v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`iters` rounds for modality m -> (slots, last round's queries, last round's attention)."""
        to_q, gru, mlp = getattr(self, f"{m}_to_q"), getattr(self, f"{m}_gru"), getattr(self, f"{m}_mlp")
        norm_slots, norm_ff = getattr(self, f"{m}_norm_slots"), getattr(self, f"{m}_norm_pre_ff")
        b, d = k.shape[0], self.dim
        slots = self.slots.expand(b, -1, -1)
        q = attn = None
        for _ in range(self.iters):
            prev = slots
            q = to_q(norm_slots(slots))
            attn = slot_attention_map(q, k, self.scale)
            updates = torch.einsum("bsn,bnd->bsd", attn, v)
            slots = gru(updates.reshape(-1, d), prev.reshape(-1, d)).reshape(b, -1, d)
            slots = slots + mlp(norm_ff(slots))
        return slots, q, attn

    def forward(self, img: torch.Tensor, aud: torch.Tensor, mask: bool | None = None) -> JointSlots:
        """img [B, N, D] and aud [B, T, D] tokens -> JointSlots. Tokens are masked when `mask`
        (default: in training mode only)."""
        mask = self.training if mask is None else mask
        img = self.img_norm_input(self._mask(img, self.mask_token_img, mask))
        aud = self.aud_norm_input(self._mask(aud, self.mask_token_aud, mask))
        img_k, img_v = self.img_to_k(img), self.img_to_v(img)
        aud_k, aud_v = self.aud_to_k(aud), self.aud_to_v(aud)
        img_slots, img_q, img_img = self._iterate("img", img_k, img_v)
        aud_slots, aud_q, aud_aud = self._iterate("aud", aud_k, aud_v)
        return JointSlots(
            img_slots, aud_slots, img_q, aud_q, img_k, aud_k, img_img,
            img_aud=slot_attention_map(img_q, aud_k, self.scale), aud_aud=aud_aud,
            aud_img=slot_attention_map(aud_q, img_k, self.scale),
        )
