"""The slot-mixture reconstruction decoder of JSA (official_repos.md §2.8).

Each slot is broadcast to every token position, a learned 2-D positional embedding (half the
channels for the column, half for the row) is added, and an MLP (3 x Linear+ReLU, then Linear to
D + 1) decodes a feature and an alpha logit per slot and position; alphas are softmax-normalised
over the slots and the reconstruction is the alpha-weighted sum of the slot features.
"""

from __future__ import annotations

import torch
from torch import nn


class LearnedPositions2D(nn.Module):
    """Positions of an h x w grid, row-major: [h*w, 2*half] = concat(col_embed(x), row_embed(y))."""

    def __init__(self, h: int, w: int, half: int):
        super().__init__()
        self.row_embed = nn.Embedding(h, half)
        self.col_embed = nn.Embedding(w, half)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self) -> torch.Tensor:
        h, w = self.row_embed.num_embeddings, self.col_embed.num_embeddings
        cols = self.col_embed.weight[None].expand(h, w, -1)
        rows = self.row_embed.weight[:, None].expand(h, w, -1)
        return torch.cat([cols, rows], dim=-1).reshape(h * w, -1)


class SlotMixtureDecoder(nn.Module):
    def __init__(self, h: int, w: int, slot_dim: int = 512, feat_dim: int = 512):
        super().__init__()
        self.pos_emb = LearnedPositions2D(h, w, slot_dim // 2)
        self.mlp = nn.Sequential(
            nn.Linear(slot_dim, slot_dim), nn.ReLU(),
            nn.Linear(slot_dim, slot_dim), nn.ReLU(),
            nn.Linear(slot_dim, slot_dim), nn.ReLU(),
            nn.Linear(slot_dim, feat_dim + 1),
        )

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        """slots [B, S, D] -> reconstructed tokens [B, h*w, feat_dim]."""
        x = self.mlp(slots[:, :, None, :] + self.pos_emb()[None, None])  # [B, S, HW, F + 1]
        feat, alpha = x[..., :-1], x[..., -1].softmax(dim=1)
        return torch.einsum("bsnf,bsn->bnf", feat, alpha)
