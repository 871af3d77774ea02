"""Top-k ranking metrics with binary relevance, as Microsoft Recommenders defines them.

For a user with relevant set R (|R| > 0) and top-k list L, hits at ranks r (1-based):

- Precision@k = hits / k
- Recall@k    = hits / |R|
- nDCG@k      = Σ_hits 1/log2(r+1) / Σ_{r=1..min(k,|R|)} 1/log2(r+1)
- AP@k        = Σ_hits precision@r / |R|   (divides by |R|, not min(k, |R|): this is
  the ``map_at_k`` of Microsoft Recommenders' benchmark table)

Each is averaged over users that have relevant items and a list; users without a hit
count as 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

METRICS = ("precision", "recall", "ndcg", "map")


def user_metrics(ranked: Sequence[int] | np.ndarray, relevant: set[int] | frozenset[int],
                 k: int) -> dict[str, float]:
    """The four metrics for one user."""
    top = list(ranked)[:k]
    hits = np.array([item in relevant for item in top], dtype=bool)
    n_rel = len(relevant)
    if n_rel == 0:
        raise ValueError("a user without relevant items has no recall")
    ranks = np.flatnonzero(hits) + 1
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(discounts[ranks - 1].sum())
    idcg = float(discounts[: min(k, n_rel)].sum())
    precision_at_hits = np.arange(1, len(ranks) + 1) / ranks
    return {
        "precision": len(ranks) / k,
        "recall": len(ranks) / n_rel,
        "ndcg": dcg / idcg,
        "map": float(precision_at_hits.sum()) / n_rel,
    }


def mean_metrics(rankings: Mapping[int, Sequence[int] | np.ndarray],
                 truth: Mapping[int, set[int]], k: int) -> dict[str, float]:
    """Mean of :func:`user_metrics` over users present in both and with relevant items."""
    users = [u for u in truth if truth[u] and u in rankings]
    if not users:
        return dict.fromkeys(METRICS, 0.0)
    rows = [user_metrics(rankings[u], truth[u], k) for u in users]
    return {m: float(np.mean([r[m] for r in rows])) for m in METRICS}


def recall_at(rankings: Mapping[int, Sequence[int] | np.ndarray],
              truth: Mapping[int, set[int]], n: int) -> float:
    """Mean share of each user's relevant items found in their first ``n`` (candidate recall)."""
    users = [u for u in truth if truth[u] and u in rankings]
    if not users:
        return 0.0
    return float(np.mean([len(truth[u].intersection(list(rankings[u])[:n])) / len(truth[u])
                          for u in users]))
