"""Top-N inner-product search over item factors: exact (BLAS) or approximate (faiss HNSW).

Both take a query vector, N, an optional ``allowed`` mask (filters) and an optional
array of excluded item indices (already seen), and return item indices and scores,
best first. The approximate index over-fetches to make room for exclusions and answers
restrictive filters by exact scoring of the (few) allowed items.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Protocol

import numpy as np


class ItemIndex(Protocol):
    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None,
               exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...


def top_n(scores: np.ndarray, n: int, n_masked: int | None = None) -> np.ndarray:
    """Indices of the ``n`` largest finite scores, best first.

    ``n_masked``: how many scores are -inf, when the caller knows (saves a pass).
    """
    available = (int(np.isfinite(scores).sum()) if n_masked is None
                 else len(scores) - n_masked)
    n = min(n, available)
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    cut = len(scores) - n
    part = np.argpartition(scores, cut)[cut:] if cut > 0 else np.arange(len(scores))
    return part[np.argsort(-scores[part], kind="stable")]


class ExactIndex:
    """Scores every item with one matrix-vector product, then the mask and a partial sort.

    The factors are also kept transposed (factors × items, C order): the product is then an
    axpy over long rows, faster on one BLAS thread than ``item_factors @ q`` (64-long dot
    products) and than faiss's flat scan (``bench/bench_index.py``, BENCHMARKS.md). The
    transposed copy (4 bytes per item and factor) is made on the first search, so an
    HNSW index that never falls back to exact scoring does not carry it.
    """

    def __init__(self, item_factors: np.ndarray) -> None:
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)

    @cached_property
    def by_factor(self) -> np.ndarray:
        return np.ascontiguousarray(self.item_factors.T)

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None,
               exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(query, dtype=np.float32) @ self.by_factor
        if allowed is not None:
            scores[~allowed] = -np.inf
        return _best(scores, n, exclude)

    def search_many(self, queries: np.ndarray, n: int, excludes: Sequence[np.ndarray],
                    chunk: int = 32) -> list[tuple[np.ndarray, np.ndarray]]:
        """``search(q, n, None, exclude)`` for many queries: the factors are read once per
        ``chunk`` queries (one matrix product) instead of once per query."""
        queries = np.asarray(queries, dtype=np.float32)
        out = []
        for lo in range(0, len(queries), chunk):
            block = queries[lo:lo + chunk] @ self.by_factor
            out.extend(_best(scores, n, exclude)
                       for scores, exclude in zip(block, excludes[lo:lo + chunk], strict=True))
        return out


def _best(scores: np.ndarray, n: int, exclude: np.ndarray | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """The top-``n`` of one row of scores (modified in place) without ``exclude``."""
    if exclude is not None and len(exclude):
        scores[exclude] = -np.inf
    idx = top_n(scores, n)
    return idx, scores[idx]


class HNSWIndex:
    """faiss ``IndexHNSWFlat`` with the inner-product metric."""

    def __init__(self, item_factors: np.ndarray, m: int = 32, ef_construction: int = 200,
                 ef_search: int = 400, exact_below: float = 0.2) -> None:
        import faiss

        self.exact = ExactIndex(item_factors)
        self.index = faiss.IndexHNSWFlat(self.exact.item_factors.shape[1], m,
                                         faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.index.add(self.exact.item_factors)
        self.ef_search = ef_search
        self.exact_below = exact_below

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None,
               exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        n_items = self.index.ntotal
        n_excluded = 0 if exclude is None else len(exclude)
        if allowed is not None and allowed.mean() < self.exact_below:
            return self.exact.search(query, n, allowed, exclude)
        share = 1.0 if allowed is None else max(float(allowed.mean()), 1e-6)
        fetch = min(n_items, int((n + n_excluded) / share * 1.2) + 10)
        self.index.hnsw.efSearch = max(self.ef_search, fetch)
        scores, ids = self.index.search(np.asarray(query, np.float32).reshape(1, -1), fetch)
        ids, scores = ids[0], scores[0]
        keep = ids >= 0
        if allowed is not None:
            keep &= allowed[np.maximum(ids, 0)]
        if n_excluded:
            keep &= ~np.isin(ids, exclude)
        ids, scores = ids[keep][:n], scores[keep][:n]
        if len(ids) < n and fetch < n_items:  # the filters ate the over-fetch: be exact
            return self.exact.search(query, n, allowed, exclude)
        return ids.astype(np.int64), scores


def build_index(item_factors: np.ndarray, kind: str = "exact", m: int = 32,
                ef_construction: int = 200, ef_search: int = 400) -> ItemIndex:
    if kind == "exact":
        return ExactIndex(item_factors)
    if kind == "hnsw":
        return HNSWIndex(item_factors, m, ef_construction, ef_search)
    raise ValueError(f"unknown index kind {kind!r}: use 'exact' or 'hnsw'")
