"""Frequently bought together: co-purchase counts with support, confidence and lift.

A basket is the purchases of one session; events without a session (MovieLens) are
grouped per user, a new basket starting when the gap to the user's previous purchase
exceeds ``window_hours``. For items A and B over N baskets:

- support(A, B)    baskets holding both (an absolute count; ``min_support`` applies to it)
- confidence(A→B)  support(A, B) / baskets holding A
- lift(A→B)        confidence(A→B) / (baskets holding B / N)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from retrieval.interactions import PURCHASE, Interactions


def purchase_baskets(events: Interactions, window_hours: float) -> tuple[np.ndarray, np.ndarray]:
    """(basket id, item) of every purchase; basket ids are 0..n_baskets-1."""
    buy = events.subset(events.event_type == PURCHASE)
    if not len(buy):
        return np.empty(0, np.int64), np.empty(0, np.int32)
    session = buy.session if buy.session is not None else np.full(len(buy), -1, np.int64)
    has_session = session >= 0
    key = np.empty(len(buy), dtype=np.int64)
    key[has_session] = session[has_session]
    offset = int(session.max()) + 1 if has_session.any() else 0
    rest = np.flatnonzero(~has_session)
    if len(rest):
        order = rest[np.lexsort((buy.ts_ms[rest], buy.user[rest]))]
        user, ts = buy.user[order], buy.ts_ms[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (user[1:] != user[:-1]) | (ts[1:] - ts[:-1] > window_hours * 3_600_000)
        key[order] = offset + np.cumsum(new) - 1
    _, basket = np.unique(key, return_inverse=True)
    return basket.astype(np.int64), buy.item


@dataclass
class Pairing:
    item: int
    support: int
    confidence: float
    lift: float


@dataclass
class FrequentlyBoughtTogether:
    co_counts: sp.csr_matrix  # item × item baskets holding both; diagonal: baskets holding it
    n_baskets: int
    min_support: int = 3
    min_lift: float = 1.0

    @classmethod
    def fit(cls, events: Interactions, window_hours: float = 24.0, min_support: int = 3,
            min_lift: float = 1.0) -> FrequentlyBoughtTogether:
        basket, item = purchase_baskets(events, window_hours)
        n_baskets = int(basket.max()) + 1 if len(basket) else 0
        b = sp.csr_matrix((np.ones(len(item), np.float32), (basket, item)),
                          shape=(n_baskets, events.n_items))
        b.sum_duplicates()
        b.data[:] = 1.0
        co = (b.T @ b).tocsr()
        return cls(co, n_baskets, min_support, min_lift)

    def for_item(self, item: int, n: int = 10) -> list[Pairing]:
        """Items bought with ``item``, by confidence then lift; below min_support left out."""
        row = self.co_counts.getrow(item)
        base = self.co_counts[item, item]
        if base == 0:
            return []
        diag = self.co_counts.diagonal()
        others, support = row.indices, row.data
        keep = (others != item) & (support >= self.min_support)
        others, support = others[keep], support[keep]
        confidence = support / base
        lift = confidence / (diag[others] / self.n_baskets)
        keep = lift >= self.min_lift
        others, support, confidence, lift = (a[keep] for a in (others, support, confidence, lift))
        order = np.lexsort((-lift, -confidence))[:n]
        return [Pairing(int(others[k]), int(support[k]), float(confidence[k]), float(lift[k]))
                for k in order]
