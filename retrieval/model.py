"""The trained retrieval model: ALS factors, id maps, catalogue, histories, popularity.

:func:`fit_retrieval` builds it from events; items with no interactions get content
vectors in the ALS space (``item_cold``), so one item-factor matrix covers the catalogue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from retrieval.als import ALSModel, IterationCallback, train_als
from retrieval.catalogue import Catalogue
from retrieval.config import ALSConfig, RetrievalConfig
from retrieval.content import fill_cold_items
from retrieval.interactions import Interactions
from retrieval.popularity import Popularity


@dataclass
class RetrievalModel:
    als: ALSModel
    user_ids: np.ndarray
    item_ids: np.ndarray
    catalogue: Catalogue
    user_items: sp.csr_matrix  # confidence weights the model was trained on
    purchased: sp.csr_matrix  # 0/1
    item_cold: np.ndarray  # True where the item factor is a content vector
    popularity: Popularity
    metrics: dict[str, Any] = field(default_factory=dict)
    _user_index: dict[str, int] | None = field(default=None, repr=False)
    _item_index: dict[str, int] | None = field(default=None, repr=False)

    def user_index(self, user_id: str) -> int | None:
        if self._user_index is None:
            self._user_index = {u: k for k, u in enumerate(self.user_ids.tolist())}
        return self._user_index.get(user_id)

    def item_index(self, item_id: str) -> int | None:
        if self._item_index is None:
            self._item_index = {i: k for k, i in enumerate(self.item_ids.tolist())}
        return self._item_index.get(item_id)

    def item_indices(self, item_ids: list[str]) -> np.ndarray:
        """Indices of known items (unknown ids are skipped)."""
        found = [self.item_index(i) for i in item_ids]
        return np.array([k for k in found if k is not None], dtype=np.int64)


def fit_retrieval(
    events: Interactions,
    catalogue: Catalogue,
    als_config: ALSConfig,
    config: RetrievalConfig | None = None,
    show_progress: bool = True,
    callback: IterationCallback | None = None,
    now_ms: int | None = None,
    track_loss: bool = False,
) -> RetrievalModel:
    """Train ALS on ``events``, fill cold items from content, fit popularity."""
    config = config or RetrievalConfig()
    if not np.array_equal(catalogue.item_ids, events.item_ids):
        raise ValueError("catalogue and events must index items identically")
    started = time.perf_counter()
    user_items = events.matrix(als_config.event_weights, als_config.half_life_days, now_ms)
    matrix_s = time.perf_counter() - started
    als = train_als(user_items, als_config, show_progress=show_progress, callback=callback,
                    track_loss=track_loss)
    train_s = time.perf_counter() - started - matrix_s
    warm = np.diff(user_items.tocsc().indptr) > 0
    item_factors, _ = fill_cold_items(catalogue, als.item_factors, warm,
                                      config.content_ridge_alpha)
    als = ALSModel(als.user_factors, item_factors, als_config)
    popularity = Popularity.fit(events, catalogue.category_codes, als_config.event_weights,
                                config.popularity_half_life_days, now_ms)
    metrics = {
        "users": events.n_users, "items": events.n_items, "events": len(events),
        "nnz": int(user_items.nnz), "cold_items": int((~warm).sum()),
        "matrix_seconds": round(matrix_s, 3), "train_seconds": round(train_s, 3),
    }
    return RetrievalModel(als, events.user_ids, events.item_ids, catalogue, user_items,
                          events.binary(purchases_only=True), ~warm, popularity, metrics)
