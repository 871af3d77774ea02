"""Events of a data set as integer arrays, and the weighted user × item matrix ALS trains on.

Users and items are indexed by their position in ``users.parquet`` / ``items.parquet`` so
that users and items without any event (cold start) still have an index. Events are read
one part at a time and only as integer codes, so 10M events take ~200 MB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from feature_repo.events import EVENT_TYPES
from recsys.datasets.layout import ITEMS_FILE, USERS_FILE, event_parts

MS_PER_DAY = 86_400_000
PURCHASE = EVENT_TYPES.index("purchase")


@dataclass
class Interactions:
    """One row per event, as integer codes into ``user_ids`` / ``item_ids`` / EVENT_TYPES."""

    user_ids: np.ndarray  # user index -> id
    item_ids: np.ndarray  # item index -> id
    user: np.ndarray  # int32 per event
    item: np.ndarray  # int32 per event
    event_type: np.ndarray  # int8 per event, index into EVENT_TYPES
    ts_ms: np.ndarray  # int64 per event
    session: np.ndarray | None = None  # int64 per event, -1 where there is none
    rating: np.ndarray | None = None  # int8 per event, 0 where there is none

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask: np.ndarray) -> Interactions:
        """The events selected by a boolean mask or index array; same id universes."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[mask]

        return Interactions(self.user_ids, self.item_ids, self.user[mask], self.item[mask],
                            self.event_type[mask], self.ts_ms[mask], pick(self.session),
                            pick(self.rating))

    def weights(self, event_weights: dict[str, float], half_life_days: float = 0.0,
                now_ms: int | None = None) -> np.ndarray:
        """Confidence weight of every event: its type's weight, halved every half-life."""
        lookup = np.array([event_weights.get(t, 0.0) for t in EVENT_TYPES], dtype=np.float64)
        w = lookup[self.event_type]
        if half_life_days > 0 and len(self):
            now = self.ts_ms.max() if now_ms is None else now_ms
            age_days = np.maximum(now - self.ts_ms, 0) / MS_PER_DAY
            w = w * np.exp2(-age_days / half_life_days)
        return w.astype(np.float32)

    def matrix(self, event_weights: dict[str, float], half_life_days: float = 0.0,
               now_ms: int | None = None) -> sp.csr_matrix:
        """User × item CSR matrix of summed confidence weights (zero-weight events dropped)."""
        w = self.weights(event_weights, half_life_days, now_ms)
        keep = w > 0
        m = sp.csr_matrix((w[keep], (self.user[keep], self.item[keep])),
                          shape=(self.n_users, self.n_items), dtype=np.float32)
        m.sum_duplicates()
        return m

    def binary(self, purchases_only: bool = False) -> sp.csr_matrix:
        """User × item 0/1 matrix of what users have seen (or bought)."""
        keep = self.event_type == PURCHASE if purchases_only else slice(None)
        u, i = self.user[keep], self.item[keep]
        m = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)),
                          shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m


def _index_in(values: pa.ChunkedArray | pa.Array, universe: pa.Array) -> np.ndarray:
    idx = pc.index_in(values, value_set=universe)
    return pc.fill_null(idx, -1).to_numpy().astype(np.int32)


def load_interactions(dataset: Path, with_sessions: bool = False) -> Interactions:
    """Read a data set folder (see :mod:`recsys.datasets.layout`) into :class:`Interactions`.

    Events whose user or item is missing from the users/items tables are dropped.
    """
    users = pq.read_table(dataset / USERS_FILE, columns=["user_id"])["user_id"].combine_chunks()
    items = pq.read_table(dataset / ITEMS_FILE, columns=["item_id"])["item_id"].combine_chunks()
    type_set = pa.array(list(EVENT_TYPES))
    cols = ["user_id", "item_id", "event_type", "ts", "rating"]
    if with_sessions:
        cols.append("session_id")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("u", "i", "t", "ts", "r")}
    sessions: list[pa.ChunkedArray] = []
    for path in event_parts(dataset):
        table = pq.read_table(path, columns=cols)
        parts["u"].append(_index_in(table["user_id"], users))
        parts["i"].append(_index_in(table["item_id"], items))
        parts["t"].append(_index_in(table["event_type"], type_set).astype(np.int8))
        parts["ts"].append(pc.cast(table["ts"], pa.int64()).to_numpy())
        parts["r"].append(pc.fill_null(table["rating"], 0).to_numpy().astype(np.int8))
        if with_sessions:
            sessions.append(table["session_id"])
    u, i, t, ts, r = (np.concatenate(parts[k]) if parts[k] else np.empty(0, np.int64)
                      for k in ("u", "i", "t", "ts", "r"))
    session = None
    if with_sessions:
        combined = pa.chunked_array([c for s in sessions for c in s.chunks], pa.string())
        codes = pc.dictionary_encode(combined.combine_chunks()).indices
        session = pc.fill_null(codes, -1).to_numpy().astype(np.int64)
    ok = (u >= 0) & (i >= 0) & (t >= 0)
    out = Interactions(
        user_ids=np.asarray(users.to_numpy(zero_copy_only=False), dtype=str),
        item_ids=np.asarray(items.to_numpy(zero_copy_only=False), dtype=str),
        user=u.astype(np.int32), item=i.astype(np.int32), event_type=t.astype(np.int8),
        ts_ms=ts.astype(np.int64), session=session, rating=r.astype(np.int8),
    )
    return out if ok.all() else out.subset(ok)
