"""Point-in-time feature joins through Feast, and a scratch feature store for evaluation.

:func:`historical_features` asks Feast's ``get_historical_features`` for feature values as
they were at each row's ``event_timestamp``: a feature row joins only if its
``event_time`` is at or before that time and within the view's TTL, so nothing written
after a label's cutoff can reach the row that label belongs to.

Two properties of Feast's file (dask) offline store shape how it is called:

- it de-duplicates the joined rows on the join keys seen *so far* plus the timestamp, so
  a request mixing user and item views collapses all items of one user at one time into
  one row; and
- an entity row whose entity has feature rows, none inside the TTL window, is dropped
  from the result instead of getting nulls — and with it that row's other views;
- an entity with no feature row at all can make dask's sort of the joined frame fail
  ("Divisions calculation failed for non-numeric column 'event_time'"), depending on
  how the rows fall into partitions.

So each view is asked separately, for the distinct (entity key, timestamp) pairs it
needs whose entity has rows in the view's source at all, and the answers are merged back
onto the requested rows (left join: missing values stay NaN/None, which is exactly "no
value at that time").
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from recsys.settings import Settings

TIMESTAMP = "event_timestamp"


def _by_view(refs: Sequence[str]) -> dict[str, list[str]]:
    views: dict[str, list[str]] = defaultdict(list)
    for ref in refs:
        view, _, feature = ref.partition(":")
        views[view].append(feature)
    return views


@contextlib.contextmanager
def _fast_object_tokens() -> Iterator[None]:
    """Hash object arrays of lists by content instead of by pickling.

    dask names every intermediate frame by a token of its data; an object column whose
    cells are arrays (``user_recent.last_items``) falls through to pickling the whole
    column twice per step, which cost 20–40 s per join of 200K rows here. Inside this
    block such arrays get a content hash (equal content, equal token: what dask asks
    of a token); everything else keeps dask's own tokenizer, restored on exit.
    """
    import numpy as np
    from dask.hashing import hash_buffer_hex
    from dask.tokenize import normalize_token

    original = normalize_token.dispatch(np.ndarray)

    def cell(value: object) -> str:
        if isinstance(value, list | tuple | np.ndarray):
            return "\x1f".join(map(str, value))
        return repr(value)

    def normalize(x: np.ndarray) -> object:
        if not x.dtype.hasobject or not x.size:
            return original(x)
        try:
            "-".join(x.flat)  # only strings: dask's own fast path takes it
        except TypeError:
            data = "\x1e".join(cell(v) for v in x.flat).encode("utf-8", "surrogatepass")
            return ("object-cells", hash_buffer_hex(data), x.shape)
        return original(x)

    normalize_token.register(np.ndarray, normalize)
    try:
        yield
    finally:
        normalize_token.register(np.ndarray, original)


def _has_rows(view) -> bool:
    """Whether the view's Parquet source holds any file (a view nothing wrote yet has no
    value at any time; dask would fail on the missing folder)."""
    path = Path(view.batch_source.path)
    return path.is_file() or (path.is_dir() and any(path.glob("*.parquet")))


def _with_rows(view, entity_df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The entity rows whose entity has at least one row in the view's Parquet source."""
    import pyarrow.dataset as ds

    present = ds.dataset(view.batch_source.path, format="parquet").to_table(
        columns=keys).to_pandas().drop_duplicates()
    return entity_df.merge(present, on=keys, how="inner")


def historical_features(store, rows: pd.DataFrame, refs: Sequence[str],
                        log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Point-in-time values of ``refs`` ("view:feature") for ``rows``.

    ``rows`` holds the join keys the views need (``user_id``, ``item_id``) and
    ``event_timestamp`` (tz-aware). Returns a frame with the same index as ``rows`` and
    one column per ref, named ``"<view>__<feature>"``.
    """
    if TIMESTAMP not in rows.columns:
        raise ValueError(f"rows: missing column {TIMESTAMP!r}")
    ts = pd.to_datetime(rows[TIMESTAMP], utc=True)
    out = pd.DataFrame(index=rows.index)
    import dask

    for view_name, features in _by_view(refs).items():
        try:
            view = store.get_feature_view(view_name)
        except Exception as exc:  # feast's FeatureViewNotFoundException and friends
            raise ValueError(f"feature view {view_name!r} is not in the Feast registry "
                             f"({exc}); run `recsys feast apply`") from None
        keys = [column.name for column in view.entity_columns]
        missing = [k for k in keys if k not in rows.columns]
        if missing:
            raise ValueError(f"rows: view {view_name} needs column(s) {missing}")
        names = [f"{view_name}__{f}" for f in features]
        if not _has_rows(view):
            for name in names:
                out[name] = None
            if log:
                log(f"  {view_name}: no offline rows yet ({view.batch_source.path}): missing")
            continue
        wanted = rows[keys].assign(**{TIMESTAMP: ts})
        entity_df = wanted.drop_duplicates().reset_index(drop=True)
        asked = _with_rows(view, entity_df, keys)
        if len(asked):
            with dask.config.set(scheduler="synchronous"), _fast_object_tokens():
                # synchronous: faster than dask's threads for frames of this size
                got = store.get_historical_features(
                    entity_df=asked, features=[f"{view_name}:{f}" for f in features],
                    full_feature_names=True).to_df()
        else:
            got = pd.DataFrame(columns=[*keys, TIMESTAMP, *names])
        got[TIMESTAMP] = pd.to_datetime(got[TIMESTAMP], utc=True)
        got = got[[*keys, TIMESTAMP, *names]].drop_duplicates([*keys, TIMESTAMP])
        joined = wanted.merge(got, on=[*keys, TIMESTAMP], how="left")
        joined.index = rows.index
        for name in names:
            out[name] = joined[name]
        if log:
            found = int(joined[names].notna().any(axis=1).sum())
            log(f"  {view_name}: {len(entity_df):,} entity rows, {found:,}/{len(rows):,} "
                "rows with a value")
    return out


@contextlib.contextmanager
def scratch_feature_store(settings: Settings, keep: Path | None = None
                          ) -> Iterator[tuple[Settings, object]]:
    """A private Feast repository state: temporary offline store and file registry.

    The platform's own ``feature_repo`` is applied (``feast apply``, as the stack does)
    with the data folder and registry moved into a temporary folder, so an evaluation
    can backfill offline tables for a history that stops at a cutoff without touching
    the offline store the stream writes. Yields ``(settings, FeatureStore)``; the folder
    is removed afterwards unless ``keep`` names where it should be.
    """
    from feature_repo.store import get_feature_store
    from recsys.stack.services import apply_feast_registry

    root = keep or Path(tempfile.mkdtemp(prefix="recsys-pit-"))
    root.mkdir(parents=True, exist_ok=True)
    state = root / "state"
    scratch = settings.model_copy(update={
        "data_dir": root / "data", "state_dir": state,
        "feast_registry_path": str(state / "feast-registry.db"),
    })
    try:
        apply_feast_registry(scratch)
        yield scratch, get_feature_store(scratch)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
