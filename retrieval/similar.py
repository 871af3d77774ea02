"""Similar items: ALS cosine blended with co-occurrence (co-view and co-purchase) cosine.

Co-occurrence counts baskets holding both items: a basket is a session (or a user where
events have no session) for co-view, and a purchase basket (see :mod:`retrieval.fbt`)
for co-purchase; cosine = count(A, B) / sqrt(count(A) count(B)). The two co-occurrence
cosines are averaged and blended with the ALS cosine:
``score = w · als + (1 − w) · co-occurrence``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from retrieval.fbt import purchase_baskets
from retrieval.index import top_n
from retrieval.interactions import Interactions


def basket_matrix(basket: np.ndarray, item: np.ndarray, n_items: int) -> sp.csc_matrix:
    """Basket × item 0/1 matrix, column-major (one column per item)."""
    n = int(basket.max()) + 1 if len(basket) else 0
    m = sp.csc_matrix((np.ones(len(item), np.float32), (basket, item)), shape=(n, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


class Cooccurrence:
    """Basket × item 0/1 matrix with per-item basket counts; cosine of one item to all."""

    def __init__(self, basket: np.ndarray, item: np.ndarray, n_items: int) -> None:
        self.baskets = basket_matrix(basket, item, n_items)
        self.items_by_basket = self.baskets.T.tocsr()
        self.sizes = np.asarray(self.baskets.sum(axis=0)).ravel()

    def has(self, item: int) -> bool:
        return bool(self.sizes[item] > 0)

    def cosine(self, item: int) -> np.ndarray:
        if not self.has(item):
            return np.zeros(len(self.sizes), np.float32)
        counts = np.asarray((self.items_by_basket @ self.baskets.getcol(item)).todense()).ravel()
        return (counts / np.sqrt(np.maximum(self.sizes * self.sizes[item], 1e-12))
                ).astype(np.float32)


class SimilarItems:
    """ALS + co-occurrence similarity over the model's item index."""

    def __init__(self, item_factors: np.ndarray, events: Interactions | None = None,
                 als_weight: float = 0.5, fbt_window_hours: float = 24.0) -> None:
        norms = np.linalg.norm(item_factors, axis=1, keepdims=True)
        self.unit = (item_factors / np.maximum(norms, 1e-12)).astype(np.float32)
        self.als_weight = als_weight if events is not None else 1.0
        n_items = item_factors.shape[0]
        self.co_view: Cooccurrence | None = None
        self.co_purchase: Cooccurrence | None = None
        if events is not None:
            view_key = (events.session if events.session is not None and (events.session >= 0).all()
                        else events.user.astype(np.int64))
            _, view_basket = np.unique(view_key, return_inverse=True)
            self.co_view = Cooccurrence(view_basket, events.item, n_items)
            buy_basket, buy_item = purchase_baskets(events, fbt_window_hours)
            self.co_purchase = Cooccurrence(buy_basket, buy_item, n_items)

    def scores(self, item: int) -> np.ndarray:
        """Blended similarity of every item to ``item`` (itself included)."""
        als = self.unit @ self.unit[item]
        if self.als_weight >= 1.0 or self.co_view is None or self.co_purchase is None:
            return als
        co = self.co_view.cosine(item)
        if self.co_purchase.has(item):
            co = 0.5 * (co + self.co_purchase.cosine(item))
        return self.als_weight * als + (1 - self.als_weight) * co

    def similar(self, item: int, n: int = 10,
                allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items most similar to ``item`` (never the item itself)."""
        s = self.scores(item).astype(np.float32)
        s[item] = -np.inf
        if allowed is not None:
            s[~allowed] = -np.inf
        idx = top_n(s, n)
        return idx, s[idx]
