"""Recency-weighted, category-aware popularity: what new users get.

An item's popularity is the sum of its events' confidence weights, each halved every
``half_life_days`` before the reference time. For a user, popularity is re-weighted by
the user's category affinity (the categories of what they did, or categories the
request names), smoothed so unseen categories still appear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retrieval.interactions import Interactions


@dataclass
class Popularity:
    """Per-item recency-weighted popularity and each item's category code."""

    scores: np.ndarray  # float32 per item
    category: np.ndarray  # int32 per item
    n_categories: int

    @classmethod
    def fit(cls, events: Interactions, category: np.ndarray, event_weights: dict[str, float],
            half_life_days: float, now_ms: int | None = None) -> Popularity:
        w = events.weights(event_weights, half_life_days, now_ms)
        scores = np.bincount(events.item, weights=w, minlength=events.n_items)
        n_categories = int(category.max()) + 1 if len(category) else 0
        return cls(scores.astype(np.float32), category.astype(np.int32), n_categories)

    def category_affinity(self, items: np.ndarray, weights: np.ndarray | None = None,
                          categories: np.ndarray | None = None) -> np.ndarray:
        """Share of each category in a user's items (and/or explicitly named categories)."""
        aff = np.zeros(self.n_categories)
        if len(items):
            aff += np.bincount(self.category[items], weights=weights, minlength=self.n_categories)
        if categories is not None and len(categories):
            total = aff.sum() or 1.0
            aff[categories] += total / len(categories)
        total = aff.sum()
        return aff / total if total > 0 else aff

    def user_scores(self, affinity: np.ndarray | None = None, smoothing: float = 0.1) -> np.ndarray:
        """Popularity boosted by category affinity; global popularity when there is none.

        ``score = popularity × (smoothing + affinity[category])``; with an affinity of 1 for
        one category its items outrank equally popular items elsewhere by 1/smoothing + 1.
        """
        if affinity is None or not affinity.any():
            return self.scores.copy()
        return self.scores * (smoothing + affinity[self.category]).astype(np.float32)
