"""Candidates for a user: the top-N items the ranker will re-order.

- a user with at least ``cold_start_min_events`` items: ALS scores through the index;
- a user with fewer: ALS blended with category-aware popularity, the ALS share growing
  with the number of items (``events / cold_start_min_events``);
- a user with none: category-aware popularity (categories may come with the request).

Events that arrived after training (``recent``) are folded into the user's vector with
ALS's least-squares step, so they count without retraining. Items already seen or
bought (``exclude``) and items failing the filters never come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from feature_repo.events import EVENT_TYPES
from retrieval.config import RetrievalConfig
from retrieval.index import ItemIndex, build_index, top_n
from retrieval.model import RetrievalModel


@dataclass(frozen=True)
class Filters:
    categories: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool = False


@dataclass
class Candidates:
    item_index: np.ndarray
    item_ids: np.ndarray
    scores: np.ndarray
    source: str  # "als", "blend" or "popularity"

    def __len__(self) -> int:
        return len(self.item_index)


def _row_indices(m: sp.csr_matrix, row: int) -> np.ndarray:
    return m.indices[m.indptr[row]:m.indptr[row + 1]]


def _row(m: sp.csr_matrix, row: int) -> sp.csr_matrix:
    """One CSR row without scipy's slicing overhead."""
    lo, hi = m.indptr[row], m.indptr[row + 1]
    return sp.csr_matrix((m.data[lo:hi], m.indices[lo:hi], np.array([0, hi - lo])),
                         shape=(1, m.shape[1]))


def _unit_max(x: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Scale so the best allowed item scores 1 (rank-preserving)."""
    ref = x if allowed is None else x[allowed]
    top = float(np.max(ref)) if len(ref) else 0.0
    return x / top if top > 0 else x


class CandidateGenerator:
    def __init__(self, model: RetrievalModel, config: RetrievalConfig | None = None,
                 index: ItemIndex | None = None) -> None:
        self.model = model
        self.config = config or RetrievalConfig()
        self.index = index or build_index(
            model.als.item_factors, self.config.index, self.config.hnsw_m,
            self.config.hnsw_ef_construction, self.config.hnsw_ef_search)
        weights = model.als.config.event_weights
        self._type_weight = {t: weights.get(t, 0.0) for t in EVENT_TYPES}

    def _history(self, user: int | None, recent: list[tuple[str, str]]
                 ) -> tuple[sp.csr_matrix, np.ndarray, bool]:
        """The user's confidence row (+ recent events), bought items, and if recent counted."""
        n_items = len(self.model.item_ids)
        row = (_row(self.model.user_items, user) if user is not None
               else sp.csr_matrix((1, n_items), dtype=np.float32))
        bought = (_row_indices(self.model.purchased, user) if user is not None
                  else np.empty(0, np.int64))
        used = False
        if recent:
            idx = [(self.model.item_index(i), self._type_weight.get(t, 0.0)) for i, t in recent]
            pairs = [(k, w) for k, w in idx if k is not None and w > 0]
            if pairs:
                ks, ws = zip(*pairs, strict=True)
                add = sp.csr_matrix((np.array(ws, np.float32), (np.zeros(len(ks)), ks)),
                                    shape=(1, n_items))
                row = (row + add).tocsr()
                used = True
            new_buys = [k for (k, _), (_, t) in zip(idx, recent, strict=True)
                        if k is not None and t == "purchase"]
            bought = np.union1d(bought, np.array(new_buys, dtype=np.int64))
        return row, bought, used

    def for_user(self, user_id: str, n: int | None = None, filters: Filters | None = None,
                 recent: list[tuple[str, str]] | None = None,
                 categories: list[str] | None = None) -> Candidates:
        """Top-``n`` candidates for ``user_id``.

        ``recent``: (item_id, event_type) pairs that arrived after training.
        ``categories``: categories the request is about (helps users with no history).
        """
        n = n or self.config.candidate_count
        m = self.model
        filters = filters or Filters()
        allowed = m.catalogue.mask(list(filters.categories), filters.min_price,
                                   filters.max_price, filters.in_stock)
        user = m.user_index(user_id)
        row, bought, folded = self._history(user, recent or [])
        exclude = self._exclude(row, bought)
        n_items_seen = row.nnz
        if n_items_seen == 0:
            return self._popular(n, allowed, exclude, row, categories)
        vector = m.als.fold_in(row)[0] if folded or user is None else m.als.user_factors[user]
        if self._uses_index(n_items_seen):
            idx, scores = self.index.search(vector, n, allowed, exclude)
            return Candidates(idx, m.item_ids[idx], scores, "als")
        share = n_items_seen / max(self.config.cold_start_min_events, 1)
        als = _unit_max(m.als.item_factors @ vector, allowed)
        pop = _unit_max(self._popularity_scores(row, categories), allowed)
        return self._top(share * als + (1 - share) * pop, n, allowed, exclude, "blend")

    def for_users(self, user_ids: Sequence[str], n: int | None = None) -> list[Candidates]:
        """``for_user(user_id, n)`` for many users (no filters, no recent events).

        The users the ALS path serves are scored a chunk at a time in one matrix product
        when the index can (``search_many``); the others go through ``for_user``. This is
        how a new model version's candidate cache is prewarmed before a swap.
        """
        n = n or self.config.candidate_count
        m = self.model
        found: dict[int, Candidates] = {}
        search_many = getattr(self.index, "search_many", None)
        if search_many is not None:
            batch: list[tuple[int, int, np.ndarray]] = []  # (position, user, exclude)
            for k, user_id in enumerate(user_ids):
                user = m.user_index(user_id)
                if user is None:
                    continue
                row, bought, _ = self._history(user, [])
                if self._uses_index(row.nnz):
                    batch.append((k, user, self._exclude(row, bought)))
            if batch:
                queries = m.als.user_factors[np.array([u for _, u, _ in batch])]
                results = search_many(queries, n, [e for _, _, e in batch])
                for (k, _, _), (idx, scores) in zip(batch, results, strict=True):
                    found[k] = Candidates(idx, m.item_ids[idx], scores, "als")
        return [found[k] if k in found else self.for_user(u, n)
                for k, u in enumerate(user_ids)]

    def _uses_index(self, n_items_seen: int) -> bool:
        """Whether a user with this many items gets pure ALS candidates (the index)."""
        return n_items_seen > 0 and n_items_seen >= self.config.cold_start_min_events

    def _exclude(self, row: sp.csr_matrix, bought: np.ndarray) -> np.ndarray:
        """The items a user's candidates leave out (``RetrievalConfig.exclude``)."""
        return {"none": np.empty(0, np.int64), "purchased": bought,
                "seen": np.union1d(row.indices, bought)}[self.config.exclude]

    def _popularity_scores(self, row: sp.csr_matrix, categories: list[str] | None) -> np.ndarray:
        names = list(self.model.catalogue.categories)
        codes = np.array([names.index(c) for c in categories or [] if c in names], np.int64)
        affinity = self.model.popularity.category_affinity(row.indices, row.data, codes)
        return self.model.popularity.user_scores(affinity)

    def _popular(self, n: int, allowed: np.ndarray | None, exclude: np.ndarray,
                 row: sp.csr_matrix, categories: list[str] | None) -> Candidates:
        return self._top(self._popularity_scores(row, categories), n, allowed, exclude,
                         "popularity")

    def _top(self, scores: np.ndarray, n: int, allowed: np.ndarray | None, exclude: np.ndarray,
             source: str) -> Candidates:
        scores = scores.astype(np.float32, copy=True)
        if allowed is not None:
            scores[~allowed] = -np.inf
        scores[exclude] = -np.inf
        idx = top_n(scores, n)
        return Candidates(idx, self.model.item_ids[idx], scores[idx], source)
