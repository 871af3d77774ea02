"""Benchmark: the monitor's throughput and the cost of one evaluation.

    python bench/bench_monitor.py --records 20000 --features 20 --items 10

Feeds serving-log records (``--items`` ranked items, ``--features`` ranker features
each) and clickstream events (one impression per item, 5% clicked) into
:class:`monitoring.monitor.Monitor` in one thread, without Kafka, then times
``evaluate()`` (KS + PSI of every feature and of the scores over full windows,
CTR per version and arm). Prints the numbers and a Markdown row for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import time
import uuid
from datetime import UTC, date, datetime

import numpy as np

from feature_repo.events import ClickstreamEvent
from monitoring.baseline import DriftBaseline
from monitoring.contract import ServingLogRecord
from monitoring.ctr import CtrBaseline
from monitoring.monitor import Monitor
from recsys.settings import Settings


class Baselines:
    def __init__(self, drift: DriftBaseline):
        self._drift = drift

    def drift(self, version: str) -> DriftBaseline:
        return self._drift

    def ctr(self, version: str) -> CtrBaseline | None:
        return None

    def save_ctr(self, version: str, baseline: CtrBaseline) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--items", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(args.features)]
    baseline = DriftBaseline.build({n: rng.normal(0, 1, 20_000) for n in names},
                                   rng.normal(0, 1, 20_000))
    monitor = Monitor(Settings(_env_file=None), Baselines(baseline))
    now = datetime.now(UTC)
    records = [ServingLogRecord(
        request_id=f"r{i}", ts=now, user_id=f"u{i}", arm="champion" if i % 10 else "challenger",
        model_version="1" if i % 10 else "2", item_ids=[f"i{j}" for j in range(args.items)],
        scores=rng.normal(0, 1, args.items).tolist(),
        features={n: rng.normal(0, 1, args.items).tolist() for n in names}).to_json_bytes()
        for i in range(args.records)]
    events = []
    for i in range(args.records):
        for j in range(args.items):
            events.append(ClickstreamEvent(
                event_id=uuid.uuid4().hex, user_id=f"u{i}", item_id=f"i{j}",
                event_type="impression", ts=now, request_id=f"r{i}",
                model_version="1" if i % 10 else "2",
                context={"arm": "champion" if i % 10 else "challenger"}).to_json_bytes())
            if rng.random() < 0.05:
                events.append(ClickstreamEvent(
                    event_id=uuid.uuid4().hex, user_id=f"u{i}", item_id=f"i{j}",
                    event_type="click", ts=now, request_id=f"r{i}").to_json_bytes())

    start = time.perf_counter()
    for raw in records:
        monitor.on_serving_log(raw)
    log_s = time.perf_counter() - start
    start = time.perf_counter()
    for raw in events:
        monitor.on_clickstream(raw)
    click_s = time.perf_counter() - start
    evaluations = []
    for _ in range(5):
        start = time.perf_counter()
        snap = monitor.evaluate()
        evaluations.append(time.perf_counter() - start)
    variables = len(snap.feature_psi) + len(snap.score_psi)
    print(f"serving-log records/s: {args.records / log_s:,.0f} "
          f"({args.items} items x {args.features} features each)")
    print(f"clickstream events/s:  {len(events) / click_s:,.0f}")
    print(f"evaluate(): median {np.median(evaluations) * 1000:.0f} ms for {variables} KS+PSI "
          f"pairs over windows of up to {Settings(_env_file=None).drift_max_samples:,} values")
    print(f"| {date.today()} | {platform.node() or 'dev'} (2 cores) | "
          f"`python bench/bench_monitor.py --records {args.records} "
          f"--features {args.features} --items {args.items}` | "
          f"{args.records / log_s:,.0f} | {len(events) / click_s:,.0f} | "
          f"{np.median(evaluations) * 1000:.0f} ms ({variables} variables) |")


if __name__ == "__main__":
    main()
