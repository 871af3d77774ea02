"""Benchmark: Feast's point-in-time join on the stream's offline tables, DuckDB vs file (dask).

    python bench/bench_pit.py --state /tmp/bench-scale --dataset /tmp/synth-10m

Reads the Feast registry and offline Parquet views a ``bench/bench_scale.py`` run left
under ``--state`` (nothing is written there), draws ``--users`` users and ``--items`` items
of ``--dataset`` (seeded), and joins the ranker's user and item features at the ranker's
temporal cutoff (the ``RECSYS_RANKER_CUTOFF_QUANTILE`` of event time) through
:func:`ranking.pit.historical_features`, once per offline store, in one run. Prints the
time of each and how many joined values differ between the two (expected: none; ties of
one event time are broken by the rows' ``created`` stamp in both).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ranking.features import ITEM_FEATURE_REFS, USER_FEATURE_REFS
from ranking.pit import TIMESTAMP, historical_features
from recsys.settings import Settings


def _store(root: Path, kind: str):
    from feature_repo.store import get_feature_store

    return get_feature_store(Settings(_env_file=None, state_dir=root / "state",
                                      data_dir=root / "data", feast_offline_store=kind))


def _cutoff(dataset: Path, quantile: float) -> pd.Timestamp:
    ts = ds.dataset(dataset / "events", format="parquet").to_table(columns=["ts"])
    ms = ts.column("ts").cast("int64").to_numpy()
    return pd.Timestamp(int(np.quantile(ms, quantile)), unit="ms", tz="UTC")


def _differences(a: pd.DataFrame, b: pd.DataFrame) -> int:
    """Cells whose values differ (missing equals missing; lists compared by content)."""
    def norm(v: object) -> object:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, np.ndarray | list | tuple):
            return tuple(np.asarray(v).tolist())
        return float(v) if isinstance(v, int | float | np.number) else v

    return sum(norm(x) != norm(y) for column in a.columns
               for x, y in zip(a[column], b[column], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=Path("/tmp/bench-scale"))
    parser.add_argument("--dataset", type=Path, default=Path("/tmp/synth-10m"))
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--stores", default="duckdb,file")
    args = parser.parse_args()
    root = args.state.resolve()
    cutoff = _cutoff(args.dataset, Settings(_env_file=None).ranker_cutoff_quantile)
    rng = np.random.default_rng(7)
    users = pq.read_table(args.dataset / "users.parquet", columns=["user_id"])["user_id"]
    items = pq.read_table(args.dataset / "items.parquet", columns=["item_id"])["item_id"]
    user_rows = pd.DataFrame({"user_id": rng.choice(users.to_numpy(), min(args.users,
                              len(users)), replace=False).astype(str), TIMESTAMP: cutoff})
    item_rows = pd.DataFrame({"item_id": rng.choice(items.to_numpy(), min(args.items,
                              len(items)), replace=False).astype(str), TIMESTAMP: cutoff})
    offline = root / "data" / "offline"
    sizes = {p.name: ds.dataset(p, format="parquet").count_rows()
             for p in sorted(offline.iterdir()) if p.is_dir()}
    print(f"offline rows per view: {sizes}")
    print(f"cutoff {cutoff}, {len(user_rows):,} user rows, {len(item_rows):,} item rows")

    results: dict[str, tuple[float, float, pd.DataFrame]] = {}
    for kind in args.stores.split(","):
        store = _store(root, kind)
        started = time.perf_counter()
        got_users = historical_features(store, user_rows, USER_FEATURE_REFS)
        middle = time.perf_counter()
        got_items = historical_features(store, item_rows, ITEM_FEATURE_REFS)
        done = time.perf_counter()
        joined = pd.concat([got_users.reset_index(drop=True),
                            got_items.reset_index(drop=True)], axis=1)
        results[kind] = (middle - started, done - middle, joined)
        print(f"[{kind}] users {middle - started:.1f} s, items {done - middle:.1f} s",
              flush=True)

    kinds = list(results)
    diff = (_differences(results[kinds[0]][2], results[kinds[1]][2])
            if len(kinds) == 2 else 0)
    machine = f"{platform.machine()} {os.cpu_count()} cores"
    print()
    print("| date | machine | offline store | user rows | item rows | users s | items s | "
          "total s |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, (u, i, _) in results.items():
        print(f"| {date.today()} | {machine} | {kind} | {len(user_rows):,} | "
              f"{len(item_rows):,} | {u:.1f} | {i:.1f} | {u + i:.1f} |")
    if len(kinds) == 2:
        print(f"\njoined values that differ between {kinds[0]} and {kinds[1]}: {diff:,}")


if __name__ == "__main__":
    main()
