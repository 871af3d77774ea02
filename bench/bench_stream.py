"""Benchmark: Kafka → Flink → Feast online store throughput and freshness.

    python bench/bench_stream.py --events 200000 --rate 300 --live-seconds 40

1. Throughput: a backlog of ``--events`` synthetic events is put on the topic
   first, then the feature job and the writer start; events/s counts from the
   first feature row written online to the last (JVM start-up excluded; the
   time including it is printed too).
2. Freshness: with job and writer running, events with ts = now are produced
   at ``--rate`` per second for ``--live-seconds``; freshness is the time from
   the event's produce timestamp (Kafka) to its feature row having been written
   to Redis, per row written online.

Starts its own broker and redis-server on free ports in a temporary folder
and stops them afterwards. Prints Markdown rows for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from feature_repo.specs import ALL_STREAM_VIEWS
from recsys.datasets.synthetic import SyntheticConfig, generate
from recsys.kafka_io import make_producer
from recsys.settings import Settings
from recsys.stack import Stack, free_port
from stream_jobs.feature_writer import FeatureWriter
from stream_jobs.pipeline import start_feature_job
from stream_jobs.replay import iter_events, send_heartbeats


def settings_for(root: Path, tag: str) -> Settings:
    return Settings(
        _env_file=None, state_dir=root / "state", data_dir=root / "data",
        broker_port=free_port(), redis_url=f"redis://127.0.0.1:{free_port()}/0",
        mlflow_autostart=False, clickstream_topic=f"cs-{tag}",
        dead_letter_topic=f"dlq-{tag}", features_topic=f"feat-{tag}",
        consumer_group=f"bench-{tag}",
    )


def wait_for_job(job, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while "running" not in job.log_tail(5) and time.monotonic() < deadline:
        time.sleep(0.5)


def throughput(settings: Settings, n_events: int) -> dict:
    dataset = settings.data_path / "bench"
    generate(SyntheticConfig(n_users=max(1_000, n_events // 10), n_items=max(500, n_events // 50),
                             n_interactions=n_events, days=30), dataset)
    producer = make_producer(settings, linger_ms=20)
    last_ts = None
    for event in iter_events(dataset):
        producer.send(settings.clickstream_topic, key=event.user_id.encode(),
                      value=event.to_json_bytes())
        last_ts = event.ts
    producer.flush()
    send_heartbeats(settings, last_ts)
    rows = n_events * len(ALL_STREAM_VIEWS)
    writer, first = FeatureWriter(settings), None

    def first_row(_: int) -> None:
        nonlocal first
        first = first or time.perf_counter()

    started = time.perf_counter()
    job = start_feature_job(settings)
    writer.run_until(rows, timeout_s=1_800, still_running=job.pid, progress=first_row)
    done = time.perf_counter()
    job.stop()
    return {"events": n_events, "rows": writer.stats.rows, "expected_rows": rows,
            "seconds_total": done - started,
            "seconds_steady": done - (first or done),
            "events_per_s": n_events / max(done - (first or done), 1e-9)}


def freshness(settings: Settings, rate: float, seconds: float) -> dict:
    job = start_feature_job(settings)
    wait_for_job(job)
    writer, stop = FeatureWriter(settings), threading.Event()
    thread = threading.Thread(target=writer.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    time.sleep(5)  # the job's first fetches
    producer = make_producer(settings, linger_ms=0)
    rng = np.random.default_rng(7)
    sent, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        user, item = rng.integers(0, 5_000), rng.integers(0, 1_000)
        event = {"event_id": f"live-{sent}", "user_id": f"u{user}", "item_id": f"i{item}",
                 "event_type": "view", "ts": datetime.now(UTC).isoformat()}
        producer.send(settings.clickstream_topic, key=event["user_id"].encode(),
                      value=json.dumps(event).encode())
        sent += 1
        ahead = sent / rate - (time.perf_counter() - start)
        if ahead > 0:
            time.sleep(ahead)
    producer.flush()
    time.sleep(5)
    stop.set()
    thread.join(timeout=30)
    job.stop()
    fresh = np.array(writer.stats.freshness_s)
    return {"sent": sent, "rate": sent / seconds, "rows_online": len(fresh),
            "p50": float(np.percentile(fresh, 50)) if len(fresh) else float("nan"),
            "p99": float(np.percentile(fresh, 99)) if len(fresh) else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=300,
                        help="live events/s; keep it below the measured throughput")
    parser.add_argument("--live-seconds", type=float, default=40)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    base = settings_for(root, "t")
    machine = f"{platform.machine()} {os.cpu_count()} cores"
    stack = Stack(base)
    try:
        stack.up(with_mlflow=False)  # broker, redis-server, Feast registry
        t = throughput(base, args.events)
        live = base.model_copy(update={"clickstream_topic": "cs-f", "dead_letter_topic": "dlq-f",
                                       "features_topic": "feat-f", "consumer_group": "bench-f"})
        f = freshness(live, args.rate, args.live_seconds)
    finally:
        stack.down(only_started=True)
        shutil.rmtree(root, ignore_errors=True)
    print("| date | machine | events | feature rows | steady s | events/s | total s (JVM incl.) |")
    print(f"| {date.today()} | {machine} | {t['events']:,} | {t['rows']:,}/{t['expected_rows']:,} "
          f"| {t['seconds_steady']:.1f} | {t['events_per_s']:,.0f} | {t['seconds_total']:.1f} |")
    print("| date | machine | live rate/s | events | rows online | freshness p50 s | p99 s |")
    print(f"| {date.today()} | {machine} | {f['rate']:,.0f} | {f['sent']:,} | "
          f"{f['rows_online']:,} | {f['p50']:.2f} | {f['p99']:.2f} |")


if __name__ == "__main__":
    main()
