"""Cross-modal retrieval recall R@K by class (official_repos.md §3.7)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {x.shape}")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def recall_at_k(queries: np.ndarray, gallery: np.ndarray, query_labels: Sequence,
                gallery_labels: Sequence, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Fraction of queries with a same-class item among their K most similar gallery items.

    Similarity is cosine. Gallery rule: every gallery item is a candidate, the query's own
    paired item included (nothing is excluded; §3.7 says only that a hit shares the query's
    class). Ties in similarity rank the lower gallery index first (stable sort), so results are
    deterministic. K larger than the gallery means the whole gallery.

    Args:
        queries: [Nq, D] float embeddings.
        gallery: [Ng, D] float embeddings.
        query_labels: [Nq] class labels (any hashable values comparable with ==).
        gallery_labels: [Ng] class labels.
        ks: the K values.

    Returns:
        {K: recall in [0, 1]}.
    """
    q, g = _unit_rows(queries), _unit_rows(gallery)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query dim {q.shape[1]} != gallery dim {g.shape[1]}")
    ql, gl = np.asarray(query_labels), np.asarray(gallery_labels)
    if len(ql) != len(q) or len(gl) != len(g):
        raise ValueError("one label per embedding is required")
    order = np.argsort(-(q @ g.T), axis=1, kind="stable")  # [Nq, Ng] best first
    same = gl[order] == ql[:, None]
    first_hit = np.where(same.any(axis=1), same.argmax(axis=1), np.iinfo(np.int64).max)
    return {int(k): float(np.mean(first_hit < k)) for k in ks}


def cross_modal_recall(audio: np.ndarray, image: np.ndarray, labels: Sequence,
                       ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Audio->image and image->audio R@K for N paired clips with one class label each.

    Args:
        audio: [N, D] audio embeddings; row i pairs with image row i.
        image: [N, D] image embeddings.
        labels: [N] class of each clip (VGG-SS: the `class` field of vggss.json).
        ks: the K values.

    Returns:
        {"a2i_R@1": ..., "i2a_R@1": ..., ...} floats in [0, 1]; the gallery of each direction is
        all N items of the other modality (see `recall_at_k`).
    """
    a2i = recall_at_k(audio, image, labels, labels, ks)
    i2a = recall_at_k(image, audio, labels, labels, ks)
    out = {f"a2i_R@{k}": v for k, v in a2i.items()}
    out.update({f"i2a_R@{k}": v for k, v in i2a.items()})
    return out
