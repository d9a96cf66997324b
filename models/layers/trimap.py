"""The LVS trimap contrastive logits (official_repos.md §2.3), shared by HearTheFlow-style methods."""

from __future__ import annotations

import torch


def trimap_logits(maps_pos: torch.Tensor, maps_all: torch.Tensor, epsilon: float = 0.65,
                  epsilon_neg: float = 0.4, tau: float = 0.03, logit_temperature: float = 0.07,
                  hard_negative: bool = True) -> torch.Tensor:
    """Logits [B, B + 2] = [positive, easy negatives (other clips' audio), hard negative] / T; target 0.

    maps_pos [B, h, w]: cosine map of each image with its own audio; maps_all [B, B, h, w]: image n
    with audio m. Pos = sigmoid((A - eps) / tau), Neg = 1 - sigmoid((A - eps2) / tau) (§2.3).
    The matched pairs are removed from the easy negatives outright: the releases multiply them by
    -99 (mask 1 - 100 I), which only excludes them while their score is positive.
    `hard_negative=False` leaves the last column out (logits [B, B + 1]): the warm-up of a short run
    (see `LVSConfig.hard_negative_warmup`).
    """
    pos_w = torch.sigmoid((maps_pos - epsilon) / tau)
    pos = (pos_w * maps_pos).flatten(1).sum(1) / pos_w.flatten(1).sum(1)
    all_w = torch.sigmoid((maps_all - epsilon) / tau)
    easy = (all_w * maps_all).flatten(2).sum(2) / all_w.flatten(2).sum(2)
    eye = torch.eye(maps_pos.shape[0], dtype=torch.bool, device=easy.device)
    easy = easy.masked_fill(eye, float("-inf"))
    columns = [pos[:, None], easy]
    if hard_negative:
        neg_w = 1 - torch.sigmoid((maps_pos - epsilon_neg) / tau)
        columns.append(((neg_w * maps_pos).flatten(1).sum(1) / neg_w.flatten(1).sum(1))[:, None])
    return torch.cat(columns, dim=1) / logit_temperature


def past_warmup(batch: dict, warmup_steps: int) -> bool:
    """Whether a training batch comes after the first `warmup_steps` optimizer steps. The trainer puts
    the run's step count in `batch["global_step"]`; a batch without it (a loss computed outside a
    training run) counts as past the warm-up, so it gets the paper's full loss."""
    step = batch.get("global_step")
    return step is None or int(step) >= warmup_steps
