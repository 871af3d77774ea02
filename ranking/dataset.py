"""The ranker's training set: retrieval candidates, point-in-time features, later labels.

One *query* is one user at a cutoff time: the candidates the retrieval model (trained on
the history before the cutoff) returns for that user, each labelled by what the user did
with it afterwards — graded (purchase 4 > add_to_cart 3 > click 2 > view 1, the maximum
over the user's label events) or binary — and 0 when nothing. Features come from Feast's
point-in-time join at the cutoff (:mod:`ranking.pit`) and are turned into the matrix by
:func:`ranking.features.assemble`, the same function the API calls.

Two ways to choose history and labels:

- :func:`temporal_split`: everything before a time T is history, what follows is labels;
  every query's cutoff is T (production: the ranker learns to predict the future);
- :func:`protocol_split`: the evaluation protocol's per-user stratified random split;
  a user's cutoff is the time of their last history event. The offline tables must then
  be built from the history events only (:mod:`ranking.backfill`), else a label event
  would feed the features of its own row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feature_repo.events import EVENT_TYPES
from ranking.features import FEATURE_NAMES, ITEM_FEATURE_REFS, USER_FEATURE_REFS, assemble
from ranking.pit import TIMESTAMP, historical_features
from retrieval.candidates import CandidateGenerator, Candidates
from retrieval.interactions import Interactions
from retrieval.model import RetrievalModel
from retrieval.split import stratified_split

GRADES = {"impression": 0.0, "view": 1.0, "click": 2.0, "add_to_cart": 3.0, "purchase": 4.0}
Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass
class Split:
    """History (features, retrieval) and labels; cutoff time per user index (ms)."""

    history: Interactions
    labels: Interactions
    cutoff_ms: np.ndarray  # int64 per user index; -1 where the user has no query

    def users(self) -> np.ndarray:
        """User indices with at least one labelled (non-impression) event."""
        graded = self.labels.event_type != EVENT_TYPES.index("impression")
        return np.unique(self.labels.user[graded]).astype(np.int64)


def temporal_split(events: Interactions, quantile: float = 0.8,
                   cutoff_ms: int | None = None) -> Split:
    """History before T (the ``quantile`` of event times unless given), labels from T on."""
    if len(events) == 0:
        raise ValueError("no events to split")
    t = int(np.quantile(events.ts_ms, quantile)) if cutoff_ms is None else int(cutoff_ms)
    before = events.ts_ms < t
    if not before.any() or before.all():
        raise ValueError(f"cutoff {t} leaves no history or no labels")
    return Split(events.subset(before), events.subset(~before),
                 np.full(events.n_users, t, dtype=np.int64))


def protocol_split(events: Interactions, ratio: float = 0.75, seed: int = 42) -> Split:
    """Per-user stratified random split; cutoff = the user's last history event."""
    train, test = stratified_split(events, ratio, seed)
    history = events.subset(train)
    last = np.full(events.n_users, -1, dtype=np.int64)
    np.maximum.at(last, history.user, history.ts_ms)
    return Split(history, events.subset(test), last)


def label_matrix(labels: Interactions, scheme: str = "graded") -> sp.csr_matrix:
    """User × item label: the highest grade of the pair's events (binary: 1)."""
    if scheme not in ("graded", "binary"):
        raise ValueError(f"label scheme must be 'graded' or 'binary', not {scheme!r}")
    grade = np.array([GRADES[t] for t in EVENT_TYPES], dtype=np.float32)[labels.event_type]
    if scheme == "binary":
        grade = (grade > 0).astype(np.float32)
    keep = grade > 0
    pair = labels.user[keep].astype(np.int64) * labels.n_items + labels.item[keep]
    g = grade[keep]
    order = np.lexsort((g, pair))
    last = np.r_[pair[order][1:] != pair[order][:-1], True]
    top_pair, top_grade = pair[order][last], g[order][last]
    return sp.csr_matrix((top_grade, (top_pair // labels.n_items, top_pair % labels.n_items)),
                         shape=(labels.n_users, labels.n_items), dtype=np.float32)


@dataclass
class Query:
    user: int
    user_id: str
    cutoff_ms: int
    candidates: Candidates
    labels: np.ndarray  # float32 per candidate
    #: the clock of time-based features (item age, time since the user's last event);
    #: None: the cutoff. Serving uses the wall clock with the newest feature values.
    now_ms: int | None = None


@dataclass
class RankingSet:
    """Rows = candidates of all queries, in query order."""

    x: np.ndarray
    y: np.ndarray
    queries: list[Query]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def group(self) -> np.ndarray:
        return np.array([len(q.candidates) for q in self.queries], dtype=np.int64)

    @property
    def offsets(self) -> np.ndarray:
        return np.r_[0, np.cumsum(self.group)]

    def subset(self, keep: np.ndarray) -> RankingSet:
        """The queries where ``keep`` (one boolean per query) is true."""
        off = self.offsets
        rows = np.concatenate([np.arange(off[q], off[q + 1]) for q in np.flatnonzero(keep)]
                              or [np.empty(0, np.int64)])
        return RankingSet(self.x[rows], self.y[rows],
                          [q for q, k in zip(self.queries, keep, strict=True) if k])

    def with_positives(self) -> RankingSet:
        """Queries with at least one labelled candidate (the others carry no gradient)."""
        return self.subset(np.array([bool((q.labels > 0).any()) for q in self.queries]))

    def split_users(self, share: float, seed: int) -> tuple[RankingSet, RankingSet]:
        """(train, held out) by a seeded random draw of ``share`` of the queries."""
        rng = np.random.default_rng(seed)
        held = rng.random(len(self.queries)) < share
        return self.subset(~held), self.subset(held)


def make_queries(retrieval: RetrievalModel, generator: CandidateGenerator, split: Split,
                 labels: sp.csr_matrix, users: np.ndarray | None = None,
                 log: Log = _quiet) -> list[Query]:
    """Candidates and labels for each user with labels (or ``users``)."""
    users = split.users() if users is None else users
    queries = []
    started = time.perf_counter()
    for u in users:
        user_id = str(split.labels.user_ids[u])
        cands = generator.for_user(user_id)
        row = labels[int(u)]
        y = np.asarray(row[:, cands.item_index].todense(), dtype=np.float32).ravel() \
            if len(cands) else np.empty(0, np.float32)
        queries.append(Query(int(u), user_id, int(split.cutoff_ms[u]), cands, y))
    log(f"candidates for {len(queries):,} users in {time.perf_counter() - started:.1f}s")
    return queries


def _numeric(column: pd.Series) -> np.ndarray:
    """A feature column as float64 (missing → NaN; booleans → 0/1)."""
    if column.dtype == object:
        column = column.map(lambda v: np.nan if v is None or v is pd.NA else v)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _user_value(value):
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def build_ranking_set(store, retrieval: RetrievalModel, queries: list[Query],
                      log: Log = _quiet) -> RankingSet:
    """Join point-in-time features for every query and assemble the matrix."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    query_rows = pd.DataFrame({
        "user_id": [q.user_id for q in queries],
        TIMESTAMP: pd.to_datetime([q.cutoff_ms for q in queries], unit="ms", utc=True),
    })
    sizes = [len(q.candidates) for q in queries]
    item_rows = pd.DataFrame({
        "item_id": np.concatenate([q.candidates.item_ids for q in queries] or [[]]).astype(str),
        TIMESTAMP: np.repeat(query_rows[TIMESTAMP].to_numpy(), sizes),
    })
    log(f"point-in-time join: {len(query_rows):,} user rows, {len(item_rows):,} item rows")
    users = historical_features(store, query_rows, USER_FEATURE_REFS, log)
    items = historical_features(store, item_rows, ITEM_FEATURE_REFS, log)
    timings["join_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    user_records = users.to_dict("records")
    item_columns = {name: _numeric(items[name]) for name in items.columns}
    offsets = np.r_[0, np.cumsum(sizes)]
    blocks = []
    for k, q in enumerate(queries):
        lo, hi = offsets[k], offsets[k + 1]
        user_features = {name: _user_value(v) for name, v in user_records[k].items()}
        item_features = {name: col[lo:hi] for name, col in item_columns.items()}
        now = datetime.fromtimestamp((q.cutoff_ms if q.now_ms is None else q.now_ms) / 1000,
                                     tz=UTC)
        blocks.append(assemble(q.candidates, q.user_id, user_features, item_features,
                               retrieval, now))
    x = (np.vstack(blocks) if blocks else np.empty((0, len(FEATURE_NAMES)), np.float32))
    y = np.concatenate([q.labels for q in queries] or [np.empty(0, np.float32)])
    timings["assemble_seconds"] = time.perf_counter() - started
    log(f"assembled {x.shape[0]:,} rows × {x.shape[1]} features "
        f"(join {timings['join_seconds']:.1f}s, assemble {timings['assemble_seconds']:.1f}s)")
    return RankingSet(x, y.astype(np.float32), queries, timings)
