"""Benchmark: CPU per recommendation response in the API's publisher, by Kafka client.

    recsys bench publisher [--responses 3000] [--rate 300] [--repeats 2]

A private tansu broker on a free port. ``--responses`` served responses of ten items (a
serving log with the 62 ranker features of each item, and ten impressions) are built with
``api.serving_log.build_records`` and produced at ``--rate`` responses/s (paced like the
API's traffic, so batches are as small as they are there) through:

- kafka-python, configured as the outbox was before (gzip, ``linger_ms`` 50, the murmur2
  memo and the C CRC32C);
- kafka-python without compression;
- ``recsys.kafka_io.LibrdkafkaProducer`` as the outbox configures it (uncompressed,
  ``linger.ms`` 50).

Each producer waits for every acknowledgement. Reported per response: CPU of this process
(every thread: the client's I/O threads count) to build the records, and to produce them
until acknowledged. The clients take turns, ``--repeats`` times. Prints Markdown rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from api.serving_log import Record, ServedResponse, build_records
from ranking.features import FEATURE_NAMES
from recsys.kafka_io import LibrdkafkaProducer, ensure_topics, make_producer
from recsys.settings import Settings
from recsys.stack import Stack, free_port

LINGER_MS = 50


def responses(n: int, seed: int = 0) -> list[ServedResponse]:
    rng = np.random.default_rng(seed)
    return [ServedResponse(uuid.uuid4().hex, datetime.now(UTC), f"u{k % 5_000}", "champion",
                           "1", False, None, [f"i{j}" for j in rng.integers(0, 100_000, 10)],
                           rng.random(10).tolist(),
                           rng.random((10, len(FEATURE_NAMES))).astype(np.float32).tobytes())
            for k in range(n)]


def clients(settings: Settings) -> dict[str, Callable[[], Any]]:
    common = {"request_timeout_ms": 3_000, "delivery_timeout_ms": 5_000,
              "metrics_enabled": False, "linger_ms": LINGER_MS}
    return {
        "kafka-python, gzip (the outbox before)":
            lambda: make_producer(settings, compression_type="gzip", **common),
        "kafka-python, uncompressed": lambda: make_producer(settings, **common),
        "librdkafka (LibrdkafkaProducer, the outbox now)":
            lambda: LibrdkafkaProducer(settings, **{"linger.ms": LINGER_MS}),
    }


def produce(make: Callable[[], Any], records: list[list[Record]], rate: float
            ) -> tuple[float, int]:
    """CPU seconds of this process to produce ``records`` (one list per response) at
    ``rate`` responses/s until all are acknowledged, and how many were acknowledged."""
    producer = make()
    acked = [0]

    def ok(_: object) -> None:
        acked[0] += 1

    started, cpu = time.perf_counter(), time.process_time()
    for k, group in enumerate(records):
        delay = started + k / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for record in group:
            producer.send(record.topic, key=record.key, value=record.value).add_callback(ok)
    producer.flush(30)
    used = time.process_time() - cpu
    producer.close(timeout=5)
    return used, acked[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=3_000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-publisher-"))
    settings = Settings(_env_file=None, state_dir=root / "state", data_dir=root / "data",
                        broker_port=free_port(), redis_url=f"redis://127.0.0.1:{free_port()}/0")
    stack = Stack(settings)
    stack.up(with_mlflow=False)
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        served = responses(args.responses)
        cpu = time.process_time()
        built = [build_records(s, "bench-log", "bench-click") for s in served]
        build_ms = (time.process_time() - cpu) / len(served) * 1000
        ensure_topics(settings, ["bench-log", "bench-click"])
        n_records = sum(len(group) for group in built)
        for repeat in range(args.repeats):
            for name, make in clients(settings).items():
                used, acked = produce(make, built, args.rate)
                if acked != n_records:
                    raise SystemExit(f"{name}: {acked} of {n_records} records acknowledged")
                per = used / len(built) * 1000
                results.setdefault(name, []).append((per, per / 11 * 1000))
                print(f"  run {repeat + 1}: {name}: {per:.3f} ms of CPU per response "
                      f"({acked} records acknowledged)", flush=True)
    finally:
        stack.down(only_started=True)
    machine = f"{platform.machine()} {os.cpu_count()} cores"
    print()
    print(f"building a response's 11 records: {build_ms:.3f} ms of CPU")
    print("| date | machine | client | produce CPU ms per response (runs) | µs per record |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        print(f"| {date.today()} | {machine} | {name} | "
              + " / ".join(f"{per:.3f}" for per, _ in runs) + " | "
              + " / ".join(f"{rec:.1f}" for _, rec in runs) + " |")


if __name__ == "__main__":
    main()
