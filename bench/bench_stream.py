"""Benchmark: Kafka → Flink → Feast online store, throughput and freshness.

    python bench/bench_stream.py --events 200000 --rate 2000 --live-seconds 30
    (or: recsys bench stream --events 200000 …)

Self-contained: it starts its own tansu broker and redis-server on free ports in
a temporary folder, generates a synthetic data set (its catalogue gives the
categories), runs the Flink feature job (``stream_jobs.features_job``, its own
JVM) and the feature writer (a thread of this process), and stops everything.

1. Throughput: ``--events`` events are on the topic before the job starts (plus
   one heartbeat per partition). Events/s counts from the first feature row
   written to Redis until every event is reflected online in the user and item
   rows (the writer sums each entity's ``n_events``), i.e. JVM start-up and
   planning excluded; the time including them is printed too. ``all paths s``: until
   the pair and category rows had caught up as well. CPU seconds of
   each process over the steady phase give CPU-ms per 1,000 events and the rate
   two fully available cores would sustain (2,000 ms / CPU-ms per event): on a
   shared machine that is the steadier number.
2. Freshness: a fresh job and writer; live events (ts = now) at ``--rate``/s,
   each from a new user, so each user row written holds exactly one event.
   Freshness = the row's time in Redis (after the pipelined HSET returned) minus
   the event's Kafka produce timestamp (taken at send, so the producer's 5 ms
   linger counts too). The first ``--warmup-seconds`` (JVM
   warm-up, first fetches) are excluded; the next ``--live-seconds`` are measured.

Every run prints ``uptime``'s load average: on a shared machine the numbers move
with it. Prints Markdown rows for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq

from recsys.datasets.synthetic import SyntheticConfig, generate
from recsys.kafka_io import make_producer
from recsys.settings import Settings
from recsys.stack import Stack, free_port
from recsys.stack.services import broker_process, redis_process
from stream_jobs.feature_writer import FeatureWriter, events_reached
from stream_jobs.features_job import job_config
from stream_jobs.pipeline import start_feature_job
from stream_jobs.reference import expected_stream_events
from stream_jobs.replay import iter_events, send_heartbeats


def settings_for(root: Path, tag: str, **overrides) -> Settings:
    return Settings(
        _env_file=None, state_dir=root / "state", data_dir=root / "data",
        broker_port=free_port(), redis_url=f"redis://127.0.0.1:{free_port()}/0",
        mlflow_autostart=False, clickstream_topic=f"cs-{tag}",
        dead_letter_topic=f"dlq-{tag}", features_topic=f"feat-{tag}",
        consumer_group=f"bench-{tag}", **overrides,
    )


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


@dataclass
class CpuMeter:
    """CPU seconds of named processes (with their children, except for this process,
    whose children are the job and the services) between start() and stop()."""

    pids: dict[str, int]

    def _now(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            try:
                procs = [psutil.Process(pid)]
                if pid != os.getpid():
                    procs += procs[0].children(recursive=True)
                out[name] = sum(sum(p.cpu_times()[:2]) for p in procs)
            except psutil.Error:
                out[name] = 0.0
        return out

    def start(self) -> None:
        self.begin = self._now()

    def stop(self) -> dict[str, float]:
        end = self._now()
        return {k: end[k] - self.begin.get(k, 0.0) for k in end}


def wait_for_job(job, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while "running" not in job.log_tail(5) and time.monotonic() < deadline:
        time.sleep(0.2)


def throughput(settings: Settings, n_events: int, timeout_s: float) -> dict:
    dataset = settings.stream_catalogue
    generate(SyntheticConfig(n_users=max(1_000, n_events // 10), n_items=max(500, n_events // 50),
                             n_interactions=n_events, days=30), dataset)
    producer = make_producer(settings, linger_ms=20)
    last_ts = None
    for event in iter_events(dataset):
        producer.send(settings.clickstream_topic, key=event.user_id.encode(),
                      value=event.to_json_bytes())
        last_ts = event.ts
    producer.flush()
    beats = send_heartbeats(settings, last_ts)
    events = pq.read_table(dataset / "events").to_pandas()
    items = pq.read_table(dataset / "items.parquet", columns=["item_id", "category"]).to_pandas()
    categories = dict(zip(items.item_id, items.category, strict=True))
    expected = expected_stream_events(events, categories, job_config(settings).pair_windows_ms,
                                      heartbeats=beats)
    writer = FeatureWriter(settings)
    marks: dict[str, float] = {}
    cpu = CpuMeter({"writer": os.getpid(),
                    "broker": broker_process(settings).pid() or 0,
                    "redis": redis_process(settings).pid() or 0})

    def first_row(_: int) -> None:
        if "first" not in marks:
            marks["first"] = time.perf_counter()
            cpu.start()

    def reached(stats) -> bool:
        if "activity" not in marks and events_reached(
                {"user": expected["user"], "item": expected["item"]})(stats):
            marks["activity"] = time.perf_counter()
            marks["cpu"] = cpu.stop()
        return events_reached(expected)(stats)

    started = time.perf_counter()
    job = start_feature_job(settings)
    cpu.pids["flink"] = job.pid() or 0
    try:
        writer.run_until(reached, timeout_s=timeout_s, still_running=job.pid,
                         progress=first_row)
    finally:
        job.stop()
    done = time.perf_counter()
    first = marks.get("first", done)
    activity = marks.get("activity", done)
    used = marks.get("cpu", {})
    cpu_total = sum(used.values())
    return {"events": n_events, "expected": expected, "got": dict(writer.stats.events),
            "rows": writer.stats.online_rows, "seconds_total": activity - started,
            "seconds_steady": activity - first, "seconds_all_paths": done - first,
            "events_per_s": n_events / max(activity - first, 1e-9), "cpu": used,
            "cpu_ms_per_1k": 1e6 * cpu_total / n_events,
            "two_core_ceiling": n_events / cpu_total * 2 if cpu_total else float("nan"),
            "load": load()}


def freshness(settings: Settings, rate: float, warmup_s: float, seconds: float) -> dict:
    job = start_feature_job(settings)
    wait_for_job(job)
    writer, stop = FeatureWriter(settings, track_written=True), threading.Event()
    thread = threading.Thread(target=writer.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    producer = make_producer(settings)  # the platform's 5 ms linger: counted in freshness
    rng = np.random.default_rng(7)
    sent, after_warmup, start = 0, 0, time.perf_counter()
    measure_from_ms = int(time.time() * 1000 + warmup_s * 1000)
    cpu = CpuMeter({"flink": job.pid() or 0, "bench (producer + writer)": os.getpid(),
                    "broker": broker_process(settings).pid() or 0,
                    "redis": redis_process(settings).pid() or 0})
    used: dict[str, float] = {}
    try:
        while (elapsed := time.perf_counter() - start) < warmup_s + seconds:
            measuring = elapsed >= warmup_s  # one clock reading: the meter starts with the count
            if measuring and not after_warmup:
                cpu.start()
            item = rng.integers(0, 1_000)
            event = (f'{{"event_id": "live-{sent}", "user_id": "live-{sent}", '
                     f'"item_id": "i{item}", "event_type": "view", '
                     f'"ts": "{datetime.now(UTC).isoformat()}"}}')
            producer.send(settings.clickstream_topic, key=f"live-{sent}".encode(),
                          value=event.encode())
            sent += 1
            after_warmup += measuring
            ahead = sent / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
        producer.flush()
        used = cpu.stop()
        time.sleep(3)
    finally:
        stop.set()
        thread.join(timeout=30)
        job.stop()
    measured = [(written - produced) / 1000 for stream, _, produced, written
                in writer.stats.written if stream == "user" and produced >= measure_from_ms]
    fresh = np.array(measured)
    return {"sent": sent, "rate": sent / (warmup_s + seconds), "measured": len(fresh),
            "expected": after_warmup, "load": load(),
            "cpu_ms_per_event": {k: 1000 * v / max(after_warmup, 1) for k, v in used.items()},
            "p50": float(np.percentile(fresh, 50)) if len(fresh) else float("nan"),
            "p99": float(np.percentile(fresh, 99)) if len(fresh) else float("nan"),
            "max": float(fresh.max()) if len(fresh) else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=2_000,
                        help="live events/s in the freshness phase")
    parser.add_argument("--warmup-seconds", type=float, default=15)
    parser.add_argument("--live-seconds", type=float, default=30)
    parser.add_argument("--parallelism", type=int, default=1, help="Flink parallelism")
    parser.add_argument("--timeout", type=float, default=900, help="throughput phase limit, s")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-freshness", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    base = settings_for(root, "t", flink_parallelism=args.parallelism,
                        stream_catalogue=root / "data" / "bench")
    machine = f"{platform.machine()} {os.cpu_count()} cores"
    stack = Stack(base)
    t = f = None
    try:
        stack.up(with_mlflow=False)  # broker, redis-server, Feast registry
        if not args.skip_throughput:
            t = throughput(base, args.events, args.timeout)
            print(t, flush=True)
        if not args.skip_freshness:
            live = base.model_copy(update={
                "clickstream_topic": "cs-f", "dead_letter_topic": "dlq-f",
                "features_topic": "feat-f", "consumer_group": "bench-f", "stream_catalogue": None})
            f = freshness(live, args.rate, args.warmup_seconds, args.live_seconds)
            print(f, flush=True)
    finally:
        stack.down(only_started=True)
        shutil.rmtree(root, ignore_errors=True)
    today = date.today()
    if t:
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in t["cpu"].items())
        print("| date | machine | load avg | events | steady s | events/s | all paths s "
              "| total s (JVM incl.) | CPU s (steady) | CPU-ms/1k events | 2-core ceiling/s |")
        print(f"| {today} | {machine} | {t['load']} | {t['events']:,} | "
              f"{t['seconds_steady']:.1f} | {t['events_per_s']:,.0f} | "
              f"{t['seconds_all_paths']:.1f} | {t['seconds_total']:.1f} | {cpu} | "
              f"{t['cpu_ms_per_1k']:,.0f} | {t['two_core_ceiling']:,.0f} |")
    if f:
        print("| date | machine | load avg | live events/s | measured rows | "
              "freshness p50 s | p99 s | max s |")
        print(f"| {today} | {machine} | {f['load']} | {f['rate']:,.0f} | "
              f"{f['measured']:,}/{f['expected']:,} | {f['p50']:.2f} | {f['p99']:.2f} | "
              f"{f['max']:.2f} |")


if __name__ == "__main__":
    main()
