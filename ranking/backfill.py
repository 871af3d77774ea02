"""Offline feature tables for a data set, written where Feast reads them.

Two kinds of tables land in the Parquet offline store (``<data_dir>/offline/<view>``):

- **stream features** (``user_activity_*``, ``item_activity_*``, ``user_recent``): what the
  Flink job would have emitted had the events been replayed through it, computed with
  pandas/numpy under the same semantics (one row per entity and event time; a window of
  length w at time t counts the entity's events with ``t - w <= ts <= t``, both ends
  included, so events sharing a timestamp see each other; ``ctr`` = clicks / impressions,
  ``conversion_rate`` = purchases / views, 0 when the denominator is 0; ``user_recent``
  lists the last :data:`~feature_repo.specs.RECENT_ITEMS` items, newest last). A test
  checks it against :mod:`stream_jobs.reference`. This is the training-time backfill for a
  data set that never went through the stream (MovieLens), or for a history that must stop
  at a cutoff (evaluation: only training events may feed features).
- **batch metadata** (``item_metadata``, ``user_profile``): item and user tables of the data
  set, stamped with the launch / sign-up time (not before the platform's earliest event
  time), materialized into Redis by ``recsys feast materialize-incremental``.

Files are named ``backfill-<tag>.parquet`` so that a new backfill replaces the previous
one with the same tag while rows the stream writer appended (``part-*.parquet``) stay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo.events import EARLIEST_EVENT_TIME, EVENT_TYPES
from feature_repo.specs import (
    ACTIVITY_VIEWS,
    COUNT_COLUMNS,
    CREATED,
    EVENT_TIME,
    ITEM_METADATA_VIEW,
    OFFLINE_TIME_UNIT,
    RECENT_ITEMS,
    STREAM_VIEWS,
    USER_PROFILE_VIEW,
    USER_RECENT_VIEW,
    ActivityView,
)
from recsys.datasets.layout import ITEMS_FILE, USERS_FILE
from retrieval.interactions import Interactions

TS_BITS = 42  # epoch milliseconds below 2^42 (year 2109) leave room for the entity code
Progress = Callable[[str], None]


@dataclass(frozen=True)
class _Sorted:
    """Events of one entity kind sorted by (entity, time), with a composite search key."""

    entity: np.ndarray  # entity index per event
    ts: np.ndarray  # ms
    kind: np.ndarray  # event type code
    item: np.ndarray  # item index per event
    key: np.ndarray  # entity << TS_BITS | ts

    @classmethod
    def of(cls, entity: np.ndarray, events: Interactions) -> _Sorted:
        if len(events.ts_ms) and (events.ts_ms.min() < 0 or events.ts_ms.max() >= 1 << TS_BITS):
            raise ValueError("event times must lie between 1970 and 2109")
        order = np.lexsort((events.ts_ms, entity))
        e = entity[order].astype(np.int64)
        ts = events.ts_ms[order].astype(np.int64)
        return cls(e, ts, events.event_type[order], events.item[order], (e << TS_BITS) | ts)


def _last_of_each_time(s: _Sorted) -> np.ndarray:
    """Index of the last event of every (entity, time): one output row each."""
    last = np.ones(len(s.key), dtype=bool)
    last[:-1] = s.key[1:] != s.key[:-1]
    return np.flatnonzero(last)


def activity_frame(events: Interactions, spec: ActivityView) -> pd.DataFrame:
    """Rows of one ``<entity>_activity_<window>`` view, as the Flink job computes them."""
    ids = events.user_ids if spec.entity == "user" else events.item_ids
    s = _Sorted.of(events.user if spec.entity == "user" else events.item, events)
    rows = _last_of_each_time(s)
    window_ms = int(spec.length.total_seconds() * 1000)
    # first event of the same entity at or after t - w (clipped at 0 ms: entity stays right)
    lower = (s.entity[rows] << TS_BITS) | np.maximum(s.ts[rows] - window_ms, 0)
    start = np.searchsorted(s.key, lower, side="left")
    end = rows + 1
    out = {spec.key: ids[s.entity[rows]],
           EVENT_TIME: pd.to_datetime(s.ts[rows], unit="ms", utc=True)}
    counts = {}
    for column, event_type in COUNT_COLUMNS.items():
        hit = np.r_[0, np.cumsum(s.kind == EVENT_TYPES.index(event_type))]
        counts[column] = (hit[end] - hit[start]).astype(np.int64)
    out.update(counts)
    if "ctr" in spec.ratios:
        out["ctr"] = _ratio(counts["clicks"], counts["impressions"])
    if "conversion_rate" in spec.ratios:
        out["conversion_rate"] = _ratio(counts["purchases"], counts["views"])
    return pd.DataFrame(out)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def recent_frame(events: Interactions) -> pd.DataFrame:
    """``user_recent`` rows: the last items (newest last) and time at each user event."""
    s = _Sorted.of(events.user, events)
    rows = _last_of_each_time(s)
    starts = np.r_[0, np.flatnonzero(np.diff(s.entity)) + 1]
    first_of_user = starts[np.searchsorted(starts, rows, side="right") - 1]
    lo = np.maximum(rows - (RECENT_ITEMS - 1), first_of_user)
    items = events.item_ids[s.item]
    last_items = [items[a:b + 1].tolist() for a, b in zip(lo, rows, strict=True)]
    return pd.DataFrame({
        "user_id": events.user_ids[s.entity[rows]],
        EVENT_TIME: pd.to_datetime(s.ts[rows], unit="ms", utc=True),
        "last_items": last_items,
        "last_event_ms": s.ts[rows],
    })


def _stamp(ts: pd.Series) -> pd.Series:
    """Metadata rows hold from this time on (never before the earliest accepted event)."""
    ts = pd.to_datetime(ts, utc=True)
    return ts.where(ts.notna() & (ts >= EARLIEST_EVENT_TIME), pd.Timestamp(EARLIEST_EVENT_TIME))


def _epoch_ms(ts: pd.Series) -> pd.Series:
    ts = pd.to_datetime(ts, utc=True)
    ms = pd.Series(pd.NA, index=ts.index, dtype="Int64")
    ok = ts.notna()
    ms[ok] = (ts[ok] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return ms


def item_metadata_frame(dataset: Path) -> pd.DataFrame:
    items = pq.read_table(dataset / ITEMS_FILE).to_pandas()
    return pd.DataFrame({
        "item_id": items["item_id"].astype(str),
        EVENT_TIME: _stamp(items["launch_ts"]),
        "category": items["category"].astype(str),
        "brand": items["brand"].astype("string"),
        "price": items["price"].astype("float64"),
        "launch_ms": _epoch_ms(items["launch_ts"]),
        "in_stock": items["in_stock"].astype(bool),
    })


def user_profile_frame(dataset: Path) -> pd.DataFrame:
    users = pq.read_table(dataset / USERS_FILE).to_pandas()
    return pd.DataFrame({
        "user_id": users["user_id"].astype(str),
        EVENT_TIME: _stamp(users["signup_ts"]),
        "age": users["age"].astype("Int64"),
        "gender": users["gender"].astype("string"),
        "segment": users["segment"].astype("string"),
        "occupation": users["occupation"].astype("string"),
        "signup_ms": _epoch_ms(users["signup_ts"]),
    })


def _typed(view: str, table: pa.Table) -> pa.Table:
    """Columns pandas could not type (all empty lists, all None) get the stream writer's
    type: DuckDB reads a folder with the first part's schema and cannot cast a null type."""
    from stream_jobs.feature_writer import ARROW_TYPES, LIST_TYPES

    spec = next((v for v in STREAM_VIEWS if v.name == view), None)
    if spec is None:
        return table
    kinds = dict(spec.fields)
    for k, column in enumerate(table.schema):
        kind = kinds.get(column.name)
        untyped = pa.types.is_null(column.type) or (
            pa.types.is_list(column.type) and pa.types.is_null(column.type.value_type))
        if kind and untyped:
            table = table.set_column(k, column.name, table[column.name].cast(
                LIST_TYPES.get(kind, ARROW_TYPES[kind])))
    return table


def write_view(offline: Path, view: str, frame: pd.DataFrame, tag: str) -> Path:
    """Write (or replace) ``backfill-<tag>.parquet`` of one view; atomic rename."""
    folder = offline / view
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"backfill-{tag}.parquet"
    tmp = folder / f".{path.name}.tmp"
    unit = f"datetime64[{OFFLINE_TIME_UNIT}, UTC]"  # as the stream writer's parts
    frame = frame.assign(**{EVENT_TIME: frame[EVENT_TIME].astype(unit)})
    if CREATED not in frame.columns:  # one row per entity and time here: no tie to break
        frame[CREATED] = frame[EVENT_TIME]
    frame = frame.assign(**{CREATED: frame[CREATED].astype(unit)})
    pq.write_table(_typed(view, pa.Table.from_pandas(frame, preserve_index=False)), tmp)
    tmp.rename(path)
    return path


def backfill_stream_views(events: Interactions, offline: Path, tag: str,
                          views: Iterable[ActivityView] = ACTIVITY_VIEWS,
                          log: Progress | None = None) -> dict[str, int]:
    """Write every stream view's rows computed from ``events``; returns rows per view."""
    written = {}
    for spec in views:
        frame = activity_frame(events, spec)
        write_view(offline, spec.name, frame, tag)
        written[spec.name] = len(frame)
    recent = recent_frame(events)
    write_view(offline, USER_RECENT_VIEW, recent, tag)
    written[USER_RECENT_VIEW] = len(recent)
    if log:
        log("backfilled " + ", ".join(f"{v} {n:,}" for v, n in written.items()))
    return written


def backfill_metadata_views(dataset: Path, offline: Path, tag: str) -> dict[str, int]:
    """Write ``item_metadata`` and ``user_profile`` from the data set's tables."""
    items, users = item_metadata_frame(dataset), user_profile_frame(dataset)
    write_view(offline, ITEM_METADATA_VIEW, items, tag)
    write_view(offline, USER_PROFILE_VIEW, users, tag)
    return {ITEM_METADATA_VIEW: len(items), USER_PROFILE_VIEW: len(users)}
