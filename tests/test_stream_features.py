"""Kafka → PyFlink → Feast, for real: tansu broker, Flink mini-cluster, Redis, Parquet.

A hand-built event set whose 1h / 24h / 7d counts all differ (so a window mix-up
cannot pass), replayed into the broker; the Flink job computes the features,
the writer puts them into Feast; the test reads them back online and offline.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from feature_repo.events import ClickstreamEvent
from feature_repo.specs import ALL_STREAM_VIEWS
from recsys.kafka_io import make_consumer, make_producer
from recsys.settings import Settings
from stream_jobs.feature_writer import FeatureWriter
from stream_jobs.pipeline import start_feature_job
from stream_jobs.producer import EventPublisher
from stream_jobs.replay import send_heartbeats

pytestmark = pytest.mark.integration

T = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)

# (user, item, type, time before T)
EVENTS = [
    ("ua", "ix", "view", timedelta(days=6)),
    ("ua", "ix", "click", timedelta(hours=20)),
    ("ub", "ix", "impression", timedelta(hours=3)),
    ("ub", "ix", "click", timedelta(hours=2, minutes=50)),
    ("ua", "iy", "view", timedelta(minutes=30)),
    ("ub", "iy", "impression", timedelta(minutes=20)),
    ("ua", "iy", "purchase", timedelta(0)),
]
# expected at each entity's last event: window -> (impressions, views, clicks, carts, purchases)
EXPECTED = {
    ("user", "ua"): {"1h": (0, 1, 0, 0, 1), "24h": (0, 1, 1, 0, 1), "7d": (0, 2, 1, 0, 1)},
    ("user", "ub"): {"1h": (1, 0, 0, 0, 0), "24h": (2, 0, 1, 0, 0), "7d": (2, 0, 1, 0, 0)},
    ("item", "ix"): {"1h": (1, 0, 1, 0, 0), "24h": (1, 0, 2, 0, 0), "7d": (1, 1, 2, 0, 0)},
    ("item", "iy"): {"1h": (1, 1, 0, 0, 1), "24h": (1, 1, 0, 0, 1), "7d": (1, 1, 0, 0, 1)},
}
COUNTS = ("impressions", "views", "clicks", "carts", "purchases")

BAD_RECORDS = {
    b"{not json": "$: invalid JSON",
    b'{"event_id": "b1", "user_id": "ua", "item_id": "ix", "event_type": "like",'
    b' "ts": "2026-02-01T00:00:00Z"}': "event_type: unknown like",
    b'{"event_id": "b2", "item_id": "ix", "event_type": "view",'
    b' "ts": "2026-02-01T00:00:00Z"}': "user_id: missing",
    b'{"user_id": "ua", "item_id": "ix", "event_type": "view",'
    b' "ts": "2026-02-01T00:00:00Z"}': "event_id: missing",
    b'{"event_id": "b4", "user_id": "ua", "event_type": "view",'
    b' "ts": "2026-02-01T00:00:00Z"}': "item_id: missing",
    b'{"event_id": "b5", "user_id": "ua", "item_id": "ix", "event_type": "view",'
    b' "ts": "2026-02-01T00:00:00Z", "price": -3}': "price: negative",
    b'{"event_id": "b6", "user_id": "ua", "item_id": "ix", "event_type": "view",'
    b' "ts": "2026-02-01T00:00:00Z", "price": "cheap"}': "price: not a number",
    b'{"event_id": "b7", "user_id": "ua", "item_id": "ix", "event_type": "view",'
    b' "ts": "2099-01-01T00:00:00Z"}': "ts: in the future",
    b'{"event_id": "b8", "user_id": "ua", "item_id": "ix", "event_type": "view",'
    b' "ts": "yesterday"}': "ts: not ISO 8601 with a UTC offset",
    b'{"event_id": "b9", "user_id": "u a", "item_id": "ix", "event_type": "view",'
    b' "ts": "2026-02-01T00:00:00Z"}': "user_id: must be 1-64 characters of letters, "
                                       "digits and _.:@-",
}


def events(shift: timedelta = timedelta(0)) -> list[ClickstreamEvent]:
    return [ClickstreamEvent(event_id=f"e{i}", user_id=u, item_id=it, event_type=kind,
                             ts=T - ago + shift)
            for i, (u, it, kind, ago) in enumerate(EVENTS)]


@pytest.fixture
def stream_settings(stack_settings: Settings, tmp_path) -> Iterator[Settings]:
    """The running stack with topics, checkpoints and offline store of this test only."""
    tag = uuid.uuid4().hex[:8]
    settings = stack_settings.model_copy(update={
        "clickstream_topic": f"cs-{tag}", "dead_letter_topic": f"dlq-{tag}",
        "features_topic": f"feat-{tag}", "consumer_group": f"g-{tag}",
        "state_dir": tmp_path / "state", "data_dir": tmp_path / "data",
        "checkpoint_interval_s": 1.0, "writer_batch_ms": 100,
    })
    from recsys.stack.services import apply_feast_registry

    apply_feast_registry(settings)  # views with this test's offline folder
    yield settings


def run_writer_until(settings: Settings, rows: int, timeout_s: float = 150) -> FeatureWriter:
    writer = FeatureWriter(settings)
    writer.run_until(rows, timeout_s)
    return writer


def publish(settings: Settings, batch: list[ClickstreamEvent]) -> None:
    with EventPublisher(settings) as publisher:
        for event in batch:
            publisher.publish(event)


def online_counts(settings: Settings, entity: str, key: str) -> dict[str, tuple[int, ...]]:
    from feature_repo.store import get_feature_store

    refs = [f"{entity}_activity_{w}:{c}" for w in ("1h", "24h", "7d") for c in COUNTS]
    row = get_feature_store(settings).get_online_features(
        refs, [{f"{entity}_id": key}], full_feature_names=True).to_dict()
    return {w: tuple(row[f"{entity}_activity_{w}__{c}"][0] for c in COUNTS)
            for w in ("1h", "24h", "7d")}


def dead_letters(settings: Settings, expected: int, timeout_s: float = 60) -> list[dict]:
    consumer = make_consumer(settings, settings.dead_letter_topic)
    found: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            found.extend(json.loads(r.value) for r in records)
    consumer.close()
    return found


def test_features_are_exact_online_and_offline_and_bad_events_are_dead_lettered(
        stream_settings: Settings) -> None:
    settings = stream_settings
    job = start_feature_job(settings)
    try:
        publish(settings, events())
        producer = make_producer(settings)
        for raw in BAD_RECORDS:
            producer.send(settings.clickstream_topic, raw)
        producer.flush()
        send_heartbeats(settings, T)
        writer = run_writer_until(settings, rows=len(EVENTS) * len(ALL_STREAM_VIEWS))
        assert job.pid() is not None, job.log_tail()
        assert writer.stats.rows == len(EVENTS) * len(ALL_STREAM_VIEWS)
        assert writer.stats.rejected == 0

        # a late event, now that the watermark has passed T
        late = ClickstreamEvent(event_id="late-1", user_id="ua", item_id="ix",
                                event_type="view", ts=T - timedelta(hours=1))
        publish(settings, [late])
        letters = dead_letters(settings, expected=len(BAD_RECORDS) + 1)
    finally:
        job.stop()

    for (entity, key), windows in EXPECTED.items():
        assert online_counts(settings, entity, key) == windows, (entity, key)

    reasons = Counter(letter["reason"] for letter in letters)
    expected_reasons = Counter(BAD_RECORDS.values())
    expected_reasons["late: older than the watermark (allowed lateness exceeded)"] = 1
    assert reasons == expected_reasons
    assert {letter["payload"].encode() for letter in letters} >= set(BAD_RECORDS)

    # the offline store holds the same values, at the event times they held from
    offline = pd.read_parquet(settings.offline_store_path / "user_activity_24h")
    last = offline[offline.user_id == "ua"].sort_values("event_time").iloc[-1]
    assert last.event_time == pd.Timestamp(T)
    assert tuple(int(last[c]) for c in COUNTS) == EXPECTED[("user", "ua")]["24h"]
    recent = pd.read_parquet(settings.offline_store_path / "user_recent")
    assert list(recent[recent.user_id == "ua"].sort_values("event_time").iloc[-1].last_items) == [
        "ix", "ix", "iy", "iy"]


def test_a_restarted_job_resumes_from_its_checkpoint_without_loss_or_double_counting(
        stream_settings: Settings) -> None:
    settings = stream_settings
    first, second = events()[:4], events()[4:]
    job = start_feature_job(settings)
    try:
        publish(settings, first)
        send_heartbeats(settings, T - timedelta(hours=2, minutes=49) - timedelta(days=8))
        # wait until a checkpoint has completed after the first half was read
        deadline = time.monotonic() + 120
        from stream_jobs.features_job import latest_checkpoint

        while latest_checkpoint(settings.checkpoint_path) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3 * settings.checkpoint_interval_s)
        assert latest_checkpoint(settings.checkpoint_path) is not None, job.log_tail()
    finally:
        job.stop()  # killed mid-stream, like a crash

    publish(settings, second)
    send_heartbeats(settings, T)
    job = start_feature_job(settings, restore=True)
    try:
        run_writer_until(settings, rows=len(EVENTS) * len(ALL_STREAM_VIEWS))
        assert "restored from" in job.log_tail(50)
    finally:
        job.stop()
    for (entity, key), windows in EXPECTED.items():
        assert online_counts(settings, entity, key) == windows, (entity, key)
