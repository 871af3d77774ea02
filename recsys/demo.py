"""The main job, end to end on the embedded stack (no cloud, no Docker).

Today it brings the stack up, generates a small synthetic data set, validates
it, replays it into Kafka, reads every event back and checks the counts, logs
the run to MLflow and lists the Feast registry; then it stops what it started.
Later stages (Flink features, training, serving, monitoring) extend this job.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from kafka import TopicPartition
from rich.console import Console
from rich.table import Table

from feature_repo.events import EventValidationError, parse_event
from recsys.datasets.synthetic import SyntheticConfig, generate
from recsys.datasets.validation import ensure_valid
from recsys.kafka_io import make_consumer
from recsys.progress import progress_bar
from recsys.settings import Settings
from recsys.stack import ServiceStatus, Stack
from stream_jobs.replay import replay

DEMO_CONFIG = SyntheticConfig(n_users=3_000, n_items=800, n_interactions=30_000, days=30)


@dataclass
class ReadBack:
    received: int = 0
    by_type: Counter = field(default_factory=Counter)
    invalid: list[str] = field(default_factory=list)


def read_back(settings: Settings, offsets: dict[int, tuple[int, int]],
              timeout_s: float = 60.0) -> ReadBack:
    """Read the clickstream topic over the acknowledged offset range of each partition.

    The range comes from the producer's record metadata, not from ListOffsets:
    tansu's "latest offset" answer lags behind what it has acknowledged.
    """
    topic = settings.clickstream_topic
    remaining = {TopicPartition(topic, p): last for p, (_, last) in offsets.items()}
    consumer = make_consumer(settings)
    consumer.assign(list(remaining))
    for tp in remaining:
        consumer.seek(tp, offsets[tp.partition][0])
    result = ReadBack()
    deadline = time.monotonic() + timeout_s
    try:
        while remaining and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500, max_records=5_000).items():
                for record in records:
                    if tp not in remaining or record.offset > remaining[tp]:
                        continue
                    result.received += 1
                    try:
                        result.by_type[parse_event(record.value).event_type] += 1
                    except EventValidationError as exc:
                        result.invalid.append(str(exc))
                    if record.offset == remaining[tp]:
                        del remaining[tp]
    finally:
        consumer.close()
    return result


def log_to_mlflow(settings: Settings, manifest: dict, sent: int, rate: float) -> str:
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment("recsys-demo")
    with mlflow.start_run(run_name="demo-data") as run:
        mlflow.log_params({f"data.{k}": v for k, v in manifest["config"].items()})
        mlflow.log_metrics({"replay.events": sent, "replay.events_per_s": rate})
        mlflow.log_dict(manifest, "manifest.json")
        return run.info.run_id


def feast_objects(settings: Settings) -> list[str]:
    from feature_repo.store import get_feature_store

    store = get_feature_store(settings)
    return [f"entity:{e.name}" for e in store.list_entities()]


def run_demo(settings: Settings, console: Console, keep_up: bool = False) -> bool:
    """Run the main job; True when every check passed."""
    started = time.perf_counter()
    services = Table("service", "address", "state", "detail", title="embedded stack")

    def report(status: ServiceStatus) -> None:
        console.print(f"  {status.name:<7} {status.state:<9} {status.address} {status.detail}")
        services.add_row(status.name, status.address, status.state, status.detail)

    stack = Stack(settings, report=report)
    console.rule("1. stack up")
    stack.up()
    try:
        return _pipeline(settings, console, services, started)
    finally:
        if keep_up:
            console.print("stack left running; stop it with: recsys stack down")
        else:
            console.rule("stack down (only what this run started)")
            stack.down(only_started=True)


def _pipeline(settings: Settings, console: Console, services: Table, started: float) -> bool:
    dataset = settings.data_path / "demo-synthetic"
    console.rule("2. generate synthetic data")
    with progress_bar(DEMO_CONFIG.n_interactions, "generate") as advance:
        manifest = generate(DEMO_CONFIG, dataset, overwrite=True, progress=advance)
    console.print(f"  {manifest['users']:,} users, {manifest['items']:,} items, "
                  f"{manifest['events']:,} events -> {dataset}")

    console.rule("3. validate")
    console.print("  " + ensure_valid(dataset).render())

    console.rule("4. replay to Kafka")
    with progress_bar(manifest["events"], "replay") as advance:
        sent = replay(settings, dataset, progress=advance)
    console.print(f"  sent {sent.sent:,} events to '{settings.clickstream_topic}' in "
                  f"{sent.seconds:.1f} s ({sent.rate:,.0f} events/s)")

    console.rule("5. read back with a consumer")
    back = read_back(settings, sent.offsets)
    table = Table("event_type", "in data set", "sent", "read back", title="clickstream round trip")
    for kind in sorted(manifest["event_types"]):
        table.add_row(kind, f"{manifest['event_types'][kind]:,}", f"{sent.by_type[kind]:,}",
                      f"{back.by_type[kind]:,}")
    console.print(table)
    round_trip_ok = (back.received == sent.sent == manifest["events"]
                     and not back.invalid and back.by_type == sent.by_type)

    console.rule("6. MLflow and Feast")
    run_id = log_to_mlflow(settings, manifest, sent.sent, sent.rate)
    console.print(f"  MLflow run {run_id} at {settings.mlflow_tracking_uri} "
                  "(experiment recsys-demo)")
    objects = feast_objects(settings)
    console.print(f"  Feast registry {settings.feast_registry}: {', '.join(objects)}")

    console.print(services)
    verdict = "OK" if round_trip_ok and objects else "FAILED"
    console.print(f"[bold]{verdict}[/bold]: {back.received:,}/{sent.sent:,} events read back, "
                  f"{len(back.invalid)} invalid, in {time.perf_counter() - started:.1f} s total")
    return verdict == "OK"
