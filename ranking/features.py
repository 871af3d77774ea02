"""The ranker's inputs, built by ONE function for training and for serving.

:func:`assemble` turns a user's candidates into the float32 matrix the ranker scores
(rows: candidates in order; columns: :data:`FEATURE_NAMES`). Training calls it with
features from Feast's point-in-time join (``get_historical_features``), the API with
features from the online store (``get_online_features(..., full_feature_names=True)``);
both pass them keyed by Feast full feature names (``"<view>__<feature>"``). Everything
else comes from the retrieval model in memory: ALS and retrieval scores, popularity,
category affinity and content similarity to the user's history, price relative to the
user's usual price, cold-start flags. A missing value (``None``, NaN, an unknown user or
item) becomes NaN, which LightGBM and the ONNX graph treat as "missing" identically.
Values are rounded to 16 significant bits (:func:`coarsen`) so that float32 ONNX
thresholds split exactly where LightGBM's float64 ones do.

Feature groups (names are the columns, in order):

- retrieval: ``retrieval_score``, ``retrieval_rank`` (0 = first), ``retrieval_score_gap``
  (best score minus this one), ``candidate_source`` (0 ALS, 1 ALS/popularity blend,
  2 popularity), ``als_score`` (user · item factors; NaN for a user the model lacks);
- item: ``item_popularity`` (log1p of recency-weighted popularity),
  ``item_popularity_pct`` (its percentile in the catalogue), ``item_is_cold`` (content
  vector, no interactions), ``item_price``, ``item_age_days`` (since launch),
  ``item_in_stock``;
- user × item: ``category_affinity`` (share of the user's history in the item's
  category), ``content_similarity`` (cosine of the item's genres/category with the
  user's history profile), ``recent_similarity_max`` / ``_mean`` (ALS cosine to the
  items in ``user_recent.last_items``), ``price_to_user_mean`` (price / the user's
  average price);
- user: ``user_is_new`` (not in the model), ``user_history_items``, ``user_age``,
  ``user_gender`` (F 1, M 0), ``user_segment`` (bargain 0, regular 1, premium 2),
  ``user_tenure_days``, ``user_idle_hours`` (since the last event);
- stream: every ``user_activity_*`` and ``item_activity_*`` feature under its Feast name.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp

from feature_repo.specs import (
    ACTIVITY_VIEWS,
    COUNT_COLUMNS,
    ITEM_METADATA_VIEW,
    USER_PROFILE_VIEW,
    USER_RECENT_VIEW,
)
from retrieval.candidates import Candidates
from retrieval.model import RetrievalModel

MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
SOURCES = {"als": 0.0, "blend": 1.0, "popularity": 2.0}
GENDERS = {"F": 1.0, "M": 0.0}
SEGMENTS = {"bargain": 0.0, "regular": 1.0, "premium": 2.0}


def full_name(ref: str) -> str:
    """``"view:feature"`` → ``"view__feature"`` (Feast's full feature name)."""
    view, sep, feature = ref.partition(":")
    if not sep or not view or not feature:
        raise ValueError(f"feature reference {ref!r} is not 'view:feature'")
    return f"{view}__{feature}"


def _activity_refs(entity: str) -> tuple[str, ...]:
    return tuple(f"{v.name}:{column}" for v in ACTIVITY_VIEWS if v.entity == entity
                 for column in (*COUNT_COLUMNS, *v.ratios))


USER_STREAM_REFS = _activity_refs("user")
ITEM_STREAM_REFS = _activity_refs("item")
LAST_ITEMS = f"{USER_RECENT_VIEW}__last_items"
LAST_EVENT_MS = f"{USER_RECENT_VIEW}__last_event_ms"
USER_AGE = f"{USER_PROFILE_VIEW}__age"
USER_GENDER = f"{USER_PROFILE_VIEW}__gender"
USER_SEGMENT = f"{USER_PROFILE_VIEW}__segment"
USER_SIGNUP_MS = f"{USER_PROFILE_VIEW}__signup_ms"
ITEM_PRICE = f"{ITEM_METADATA_VIEW}__price"
ITEM_LAUNCH_MS = f"{ITEM_METADATA_VIEW}__launch_ms"
ITEM_IN_STOCK = f"{ITEM_METADATA_VIEW}__in_stock"

#: "view:feature" refs the API reads online for the user (one row) ...
USER_FEATURE_REFS: tuple[str, ...] = (
    *USER_STREAM_REFS,
    f"{USER_RECENT_VIEW}:last_items", f"{USER_RECENT_VIEW}:last_event_ms",
    f"{USER_PROFILE_VIEW}:age", f"{USER_PROFILE_VIEW}:gender",
    f"{USER_PROFILE_VIEW}:segment", f"{USER_PROFILE_VIEW}:signup_ms",
)
#: ... and for every candidate item.
ITEM_FEATURE_REFS: tuple[str, ...] = (
    *ITEM_STREAM_REFS,
    f"{ITEM_METADATA_VIEW}:price", f"{ITEM_METADATA_VIEW}:launch_ms",
    f"{ITEM_METADATA_VIEW}:in_stock",
)
ONLINE_FEATURE_REFS: tuple[str, ...] = (*USER_FEATURE_REFS, *ITEM_FEATURE_REFS)

USER_STREAM_FEATURES = tuple(full_name(r) for r in USER_STREAM_REFS)
ITEM_STREAM_FEATURES = tuple(full_name(r) for r in ITEM_STREAM_REFS)

#: The ranker's input columns, in order. Changing it makes old bundles unloadable.
FEATURE_NAMES: tuple[str, ...] = (
    "retrieval_score", "retrieval_rank", "retrieval_score_gap", "candidate_source",
    "als_score",
    "item_popularity", "item_popularity_pct", "item_is_cold", "item_price", "item_age_days",
    "item_in_stock",
    "category_affinity", "content_similarity", "recent_similarity_max",
    "recent_similarity_mean", "price_to_user_mean",
    "user_is_new", "user_history_items", "user_age", "user_gender", "user_segment",
    "user_tenure_days", "user_idle_hours",
    *USER_STREAM_FEATURES,
    *ITEM_STREAM_FEATURES,
)
COLUMN = {name: k for k, name in enumerate(FEATURE_NAMES)}
#: Where the stream features sit: each group is a run of columns, filled in one step.
USER_STREAM_COLUMNS = slice(COLUMN[USER_STREAM_FEATURES[0]],
                            COLUMN[USER_STREAM_FEATURES[-1]] + 1)
ITEM_STREAM_COLUMNS = slice(COLUMN[ITEM_STREAM_FEATURES[0]],
                            COLUMN[ITEM_STREAM_FEATURES[-1]] + 1)
#: Significant bits kept per value (~4.8 decimal digits), see :func:`coarsen`.
MANTISSA_BITS = 16


@dataclass(frozen=True)
class _ModelStats:
    """Per-retrieval-model arrays assemble needs, computed once per model."""

    unit_factors: np.ndarray  # item factors scaled to unit length, float32
    popularity_log: np.ndarray
    popularity_pct: np.ndarray
    category: np.ndarray  # code per item
    n_categories: int
    price: np.ndarray  # catalogue price per item (NaN where none)
    genres: sp.csr_matrix | np.ndarray  # item × genre (or category), rows of unit length

    @classmethod
    def of(cls, model: RetrievalModel) -> _ModelStats:
        f = np.asarray(model.als.item_factors, dtype=np.float32)
        unit = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        pop = np.asarray(model.popularity.scores, dtype=np.float64)
        order = np.argsort(pop, kind="stable")
        pct = np.empty(len(pop))
        pct[order] = np.arange(len(pop)) / max(len(pop) - 1, 1)
        catalogue = model.catalogue
        codes = np.asarray(catalogue.category_codes, dtype=np.int64)
        return cls(unit.astype(np.float32), np.log1p(np.maximum(pop, 0)), pct, codes,
                   int(codes.max()) + 1 if len(codes) else 0,
                   np.asarray(catalogue.price, dtype=np.float64), _genre_matrix(catalogue))


#: Genre vocabularies up to this size are kept dense: a request's row lookups then cost
#: microseconds instead of scipy's sparse fancy indexing (~0.25 ms per request).
DENSE_GENRES_MAX = 256


def _genre_matrix(catalogue: Any) -> sp.csr_matrix | np.ndarray:
    """Multi-hot genres (``a|b|c``), or the category where an item has none; unit rows."""
    items = catalogue.items
    category = items["category"].fillna("unknown").astype(str)
    genres = items["genres"].astype(object).where(items["genres"].notna(), category)
    lists = [str(g).split("|") for g in genres]
    vocab = {g: k for k, g in enumerate(sorted({g for row in lists for g in row}))}
    rows = np.repeat(np.arange(len(lists)), [len(r) for r in lists])
    cols = np.array([vocab[g] for row in lists for g in row], dtype=np.int64)
    m = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)),
                      shape=(len(lists), len(vocab)))
    m.sum_duplicates()
    m.data[:] = 1.0
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    unit = sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ m, dtype=np.float32)
    return unit.toarray() if len(vocab) <= DENSE_GENRES_MAX else unit


_STATS: dict[int, tuple[weakref.ref, _ModelStats]] = {}


def model_stats(model: RetrievalModel) -> _ModelStats:
    """The cached :class:`_ModelStats` of a retrieval model (built on first use)."""
    key = id(model)
    hit = _STATS.get(key)
    if hit is not None and hit[0]() is model:
        return hit[1]
    stats = _ModelStats.of(model)
    _STATS[key] = (weakref.ref(model, lambda _ref, key=key: _STATS.pop(key, None)), stats)
    return stats


class ItemColumns(Mapping[str, np.ndarray]):
    """Item features of one request: full feature name → float64 values, one per
    candidate (NaN where missing). They are the columns of one candidates × features
    matrix, so nothing is converted per value, and :func:`assemble` copies a run of
    columns in one operation (:meth:`block`)."""

    def __init__(self, names: Sequence[str], values: np.ndarray) -> None:
        self._index = {name: k for k, name in enumerate(names)}
        self.values = values  # (candidates, features)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[:, self._index[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def block(self, names: Sequence[str]) -> np.ndarray | None:
        """The columns of ``names`` as one (candidates, features) view; None unless all
        of them are here in this order, one after another."""
        first = self._index.get(names[0]) if names else None
        if first is None or any(self._index.get(name) != first + k
                                for k, name in enumerate(names)):
            return None
        return self.values[:, first:first + len(names)]


def _floats(values: Any, n: int, name: str) -> np.ndarray:
    """Per-candidate values (``None`` → NaN) as float64 of length ``n``."""
    if values is None or (isinstance(values, list) and values.count(None) == n):
        return np.full(n, np.nan)  # an expired view: 1 µs here, 17 µs through asarray
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: values must be numbers or None ({exc})") from None
    if out.shape != (n,):
        raise ValueError(f"{name}: {out.size} values for {n} candidates")
    return out


def _scalar(value: Any) -> float:
    if value is None:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _epoch_ms(now: datetime) -> float:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.timestamp() * 1000.0


def _item_list(value: Any) -> list[str]:
    if value is None or isinstance(value, float | str):
        return [] if not isinstance(value, str) else [value]
    return [str(v) for v in value if v is not None]


def assemble(candidates: Candidates, user_id: str | None, user_features: Mapping[str, Any],
             item_features: Mapping[str, Sequence[Any]], retrieval: RetrievalModel,
             now: datetime) -> np.ndarray:
    """The ranker's input matrix, shape ``(len(candidates), len(FEATURE_NAMES))``, float32.

    ``user_features``: Feast full feature name → value for the user (missing → None);
    ``item_features``: full name → one value per candidate, in candidate order.
    """
    n = len(candidates)
    x = np.full((n, len(FEATURE_NAMES)), np.nan, dtype=np.float32)
    if n == 0:
        return x
    stats = model_stats(retrieval)
    idx = np.asarray(candidates.item_index, dtype=np.int64)
    now_ms = _epoch_ms(now)

    def put(name: str, values: Any) -> None:
        x[:, COLUMN[name]] = values

    scores = np.asarray(candidates.scores, dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    put("retrieval_score", scores)
    put("retrieval_rank", np.arange(n))
    put("retrieval_score_gap", (finite.max() if len(finite) else np.nan) - scores)
    put("candidate_source", SOURCES.get(candidates.source, np.nan))

    user = retrieval.user_index(user_id) if user_id is not None else None
    if user is not None:
        put("als_score", retrieval.als.item_factors[idx] @ retrieval.als.user_factors[user])
        lo, hi = retrieval.user_items.indptr[user], retrieval.user_items.indptr[user + 1]
        history = retrieval.user_items.indices[lo:hi]
        weights = np.asarray(retrieval.user_items.data[lo:hi], dtype=np.float64)
    else:
        history, weights = np.empty(0, np.int64), np.empty(0)

    put("item_popularity", stats.popularity_log[idx])
    put("item_popularity_pct", stats.popularity_pct[idx])
    put("item_is_cold", retrieval.item_cold[idx])
    price = _floats(item_features.get(ITEM_PRICE), n, ITEM_PRICE)
    put("item_price", price)
    put("item_age_days", (now_ms - _floats(item_features.get(ITEM_LAUNCH_MS), n,
                                           ITEM_LAUNCH_MS)) / MS_PER_DAY)
    put("item_in_stock", _floats(item_features.get(ITEM_IN_STOCK), n, ITEM_IN_STOCK))

    if len(history):
        total = weights.sum()
        affinity = np.bincount(stats.category[history], weights=weights,
                               minlength=stats.n_categories) / total
        put("category_affinity", affinity[stats.category[idx]])
        profile = np.asarray(stats.genres[history].T @ weights).ravel()
        norm = np.sqrt(profile.dot(profile))  # np.linalg.norm of a vector, without its checks
        if norm > 0:
            put("content_similarity", stats.genres[idx] @ (profile / norm))
        hist_price = stats.price[history]
        priced = np.isfinite(hist_price)
        if priced.any():
            paid = weights[priced]  # np.average's own arithmetic, without its checks
            usual = np.multiply(hist_price[priced], paid).sum() / paid.sum()
            if usual > 0:
                put("price_to_user_mean", price / usual)

    recent = [k for k in (retrieval.item_index(i) for i in
                          _item_list(user_features.get(LAST_ITEMS))) if k is not None]
    if recent:
        sims = stats.unit_factors[idx] @ stats.unit_factors[np.asarray(recent)].T
        put("recent_similarity_max", sims.max(axis=1))
        put("recent_similarity_mean", sims.mean(axis=1))

    put("user_is_new", float(user is None))
    put("user_history_items", float(len(history)))
    put("user_age", _scalar(user_features.get(USER_AGE)))
    put("user_gender", GENDERS.get(user_features.get(USER_GENDER), np.nan))
    put("user_segment", SEGMENTS.get(user_features.get(USER_SEGMENT), np.nan))
    put("user_tenure_days", (now_ms - _scalar(user_features.get(USER_SIGNUP_MS))) / MS_PER_DAY)
    put("user_idle_hours", (now_ms - _scalar(user_features.get(LAST_EVENT_MS))) / MS_PER_HOUR)

    x[:, USER_STREAM_COLUMNS] = [_scalar(user_features.get(name))
                                 for name in USER_STREAM_FEATURES]
    block = (item_features.block(ITEM_STREAM_FEATURES)
             if isinstance(item_features, ItemColumns) else None)
    if block is not None:  # the API's columns: one copy instead of one per feature
        x[:, ITEM_STREAM_COLUMNS] = block
    else:
        for name in ITEM_STREAM_FEATURES:
            put(name, _floats(item_features.get(name), n, name))
    return coarsen(x)


def coarsen(x: np.ndarray, bits: int = MANTISSA_BITS) -> np.ndarray:
    """Round every value of a float32 array to ``bits`` significant bits, half to even
    (in place; NaN stays NaN, ±inf stays ±inf).

    LightGBM splits at midpoints of adjacent training values computed in float64; the
    ONNX graph holds thresholds in float32. When two adjacent values are one float32
    step apart (a cosine of 0.99999988 next to 1.0), the midpoint rounds onto one of
    them and rows take the other branch: the parity check saw score differences of 0.1.
    With 16 significant bits every midpoint of two values has at most 17, so it is exact
    in float32 and both runtimes route every row the same way.

    The rounding works on the bits: a normal float32 has 24 significant bits, so the low
    ``24 - bits`` bits of its pattern are rounded away (a carry into the exponent is the
    rounding up to the next power of two). That is ``ldexp(round(m * 2**bits) / 2**bits,
    e)`` of ``frexp``'s ``(m, e)``, value for value (compared over every float32 pattern),
    at a third of the cost on a request's 200 × 62 values. Subnormals, which keep fewer
    significant bits than their pattern's position suggests, take that formula itself.
    """
    if x.dtype != np.float32:
        raise TypeError(f"coarsen takes float32, not {x.dtype}")
    drop = 24 - bits
    if not 0 < drop < 23:
        raise ValueError(f"bits must be in 2..23, not {bits}")
    u = x.view(np.uint32)
    exponent = u & np.uint32(0x7F800000)
    subnormal = (exponent == 0) & (x != 0)
    tiny = x[subnormal] if subnormal.any() else None
    half = np.uint32((1 << (drop - 1)) - 1)
    rounded = (u + (half + ((u >> np.uint32(drop)) & np.uint32(1)))) & np.uint32(
        0xFFFFFFFF ^ ((1 << drop) - 1))
    np.copyto(u, rounded, where=exponent != np.uint32(0x7F800000))  # not NaN or ±inf
    if tiny is not None:
        mantissa, power = np.frexp(tiny)
        scale = np.float32(1 << bits)
        x[subnormal] = np.ldexp(np.round(mantissa * scale) / scale, power)
    return x
