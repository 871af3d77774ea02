"""The main job, end to end on the embedded stack (no cloud, no Docker).

It brings the stack up, generates a small synthetic data set, validates it,
replays it into Kafka, reads every event back and checks the counts, runs the
Flink feature job over it into Feast and compares online features with a pandas
computation of the same windows, logs the run to MLflow and lists the Feast
registry; trains and registers the ranker and serves it; runs simulated users
through the API (A/B against popularity) and a rollback drill (a faulty champion,
its alert, the automatic rollback); then it stops what it started.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kafka import TopicPartition
from rich.console import Console
from rich.table import Table

from feature_repo.events import EventValidationError, parse_event
from recsys.datasets.synthetic import SyntheticConfig, generate
from recsys.datasets.validation import ensure_valid
from recsys.kafka_io import ensure_topics, make_consumer
from recsys.progress import progress_bar
from recsys.settings import Settings
from recsys.stack import ServiceStatus, Stack
from stream_jobs.replay import replay

DEMO_DAYS = 30


def demo_config(now: datetime | None = None) -> SyntheticConfig:
    """The demo's data set: its 30 days end two hours ago (a session's last events may
    run past its start hour, never into the future), so the served model sees the same
    clock as its features (item age, time since a user's last event)."""
    end = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DEMO_DAYS, hours=2)
    return SyntheticConfig(n_users=3_000, n_items=800, n_interactions=30_000, days=DEMO_DAYS,
                           start=start.replace(tzinfo=None).isoformat())


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


def _stream_features(settings: Settings, console: Console, dataset, sent) -> bool:
    """Run the Flink job over the replayed events, write Feast, compare with pandas."""
    import pyarrow.parquet as pq

    from feature_repo.specs import COUNT_COLUMNS, ITEM_POPULARITY_VIEW, WINDOWS
    from feature_repo.store import get_feature_store
    from stream_jobs.feature_writer import FeatureWriter, events_reached
    from stream_jobs.features_job import job_config
    from stream_jobs.pipeline import start_feature_job
    from stream_jobs.reference import (
        activity_at_last_event,
        expected_stream_events,
        item_popularity,
    )

    settings = settings.model_copy(update={"stream_catalogue": dataset})  # item categories
    events = pq.read_table(dataset / "events").to_pandas()
    items = pq.read_table(dataset / "items.parquet", columns=["item_id", "category"]).to_pandas()
    cfg = job_config(settings)
    expected = expected_stream_events(events, dict(zip(items.item_id, items.category,
                                                       strict=True)), cfg.pair_windows_ms)
    job = start_feature_job(settings)
    try:
        writer = FeatureWriter(settings)
        shown = [0]

        def reflected(_: int) -> None:
            advance(writer.stats.events["user"] - shown[0])
            shown[0] = writer.stats.events["user"]

        with progress_bar(expected["user"], "events reflected online") as advance:
            done = writer.run_until(events_reached(expected), timeout_s=300,
                                    still_running=job.pid, progress=reflected)
    finally:
        job.stop()
    console.print(f"  Flink job + writer: {writer.stats.online_rows:,} online writes "
                  f"({writer.stats.rows:,} rows), events reflected {writer.stats.events} "
                  f"(expected {expected}), {writer.stats.rejected} rejected")

    store = get_feature_store(settings)
    table = Table("entity", "window", *COUNT_COLUMNS, "matches pandas", title="online features")
    all_match = done and writer.stats.rejected == 0
    for entity in ("user", "item"):
        key = str(events[f"{entity}_id"].value_counts().index[0])
        refs = [f"{entity}_activity_{w}:{c}" for w in WINDOWS for c in COUNT_COLUMNS]
        online = store.get_online_features(refs, [{f"{entity}_id": key}],
                                           full_feature_names=True).to_dict()
        for window, counts in activity_at_last_event(events, entity, key).items():
            got = {c: online[f"{entity}_activity_{window}__{c}"][0] for c in COUNT_COLUMNS}
            match = got == counts
            all_match &= match
            table.add_row(f"{entity} {key}", window, *(str(got[c]) for c in COUNT_COLUMNS),
                          "yes" if match else f"NO (expected {counts})")
    console.print(table)
    top_item = str(events.item_id.value_counts().index[0])
    popularity = store.get_online_features([f"{ITEM_POPULARITY_VIEW}:popularity"],
                                           [{"item_id": top_item}]).to_dict()["popularity"][0]
    weights = dict(zip(COUNT_COLUMNS.values(), cfg.event_weights, strict=True))
    reference = item_popularity(events, top_item, weights, cfg.half_life_ms)
    all_match &= abs(popularity - reference) <= 1e-9 * reference
    console.print(f"  item {top_item} recency-weighted popularity {popularity:.4f} "
                  f"(pandas {reference:.4f})")
    recent = store.get_online_features(["user_recent:last_items"],
                                       [{"user_id": str(events.user_id.value_counts().index[0])}])
    console.print(f"  user_recent.last_items: {recent.to_dict()['last_items'][0]}")
    return all_match


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
        return _pipeline(per_run(settings), console, services, started)
    finally:
        if keep_up:
            console.print("stack left running; stop it with: recsys stack down")
        else:
            console.rule("stack down (only what this run started)")
            stack.down(only_started=True)


def per_run(settings: Settings) -> Settings:
    """Topics and consumer group of this run only: a stack left running keeps the
    events of earlier runs, which a fresh feature job would otherwise count again."""
    run = time.strftime("%Y%m%d-%H%M%S")
    return settings.model_copy(update={
        "clickstream_topic": f"{settings.clickstream_topic}-demo-{run}",
        "dead_letter_topic": f"{settings.dead_letter_topic}-demo-{run}",
        "features_topic": f"{settings.features_topic}-demo-{run}",
        "consumer_group": f"{settings.consumer_group}-demo-{run}",
    })


def _pipeline(settings: Settings, console: Console, services: Table, started: float) -> bool:
    ensure_topics(settings)
    dataset = settings.data_path / "demo-synthetic"
    console.rule("2. generate synthetic data")
    config = demo_config()
    with progress_bar(config.n_interactions, "generate") as advance:
        manifest = generate(config, dataset, overwrite=True, progress=advance)
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

    console.rule("6. Flink features into Feast")
    features_ok = _stream_features(settings, console, dataset, sent)

    console.rule("7. MLflow and Feast registry")
    run_id = log_to_mlflow(settings, manifest, sent.sent, sent.rate)
    console.print(f"  MLflow run {run_id} at {settings.mlflow_tracking_uri} "
                  "(experiment recsys-demo)")
    objects = feast_objects(settings)
    console.print(f"  Feast registry {settings.feast_registry}: {', '.join(objects)}")

    console.rule("8. ranker → champion → serving API")
    from api.demo import serve_demo
    from recsys.demo_loop import closed_loop

    serving_ok = serve_demo(settings, console, dataset, while_serving=closed_loop(console,
                                                                                dataset))

    console.print(services)
    verdict = ("OK" if round_trip_ok and objects and features_ok and serving_ok
               else "FAILED")
    console.print(f"[bold]{verdict}[/bold]: {back.received:,}/{sent.sent:,} events read back, "
                  f"{len(back.invalid)} invalid, in {time.perf_counter() - started:.1f} s total")
    return verdict == "OK"
