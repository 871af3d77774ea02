"""Kafka → PyFlink → Feast, for real: tansu broker, Flink mini-cluster, Redis, Parquet.

A hand-built event set whose 1h / 24h / 7d counts all differ (so a window mix-up
cannot pass), with pairs, categories and a non-UTC timestamp, is published out of
time order and with producer retries (repeated event ids); the Flink job computes
the features, the writer puts them into Feast; the test reads them back online
(``get_online_features``) and offline (the Parquet batch sources).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_repo.events import ClickstreamEvent
from feature_repo.specs import (
    ITEM_CATEGORY_VIEW,
    ITEM_PAIRS_VIEW,
    ITEM_POPULARITY_VIEW,
    USER_AFFINITY_VIEW,
)
from recsys.kafka_io import make_consumer, make_producer
from recsys.settings import Settings
from stream_jobs.feature_writer import FeatureWriter, events_reached
from stream_jobs.features_job import job_config, latest_checkpoint
from stream_jobs.job_spec import LATE_REASON
from stream_jobs.pipeline import start_feature_job
from stream_jobs.producer import EventPublisher
from stream_jobs.reference import category_shares, expected_stream_events, item_popularity
from stream_jobs.replay import send_heartbeats

pytestmark = pytest.mark.integration

T = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)
CATEGORIES = {"ix": "shoes", "iy": "books", "iz": "books"}
WEIGHTS = {"impression": 0.0, "view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}

# (user, item, type, time before T)
EVENTS = [
    ("ua", "ix", "view", timedelta(days=6)),
    ("ua", "ix", "click", timedelta(hours=20)),
    ("ub", "ix", "impression", timedelta(hours=3)),
    ("ub", "ix", "click", timedelta(hours=2, minutes=50)),
    ("ua", "iy", "view", timedelta(minutes=30)),
    ("ub", "iy", "impression", timedelta(minutes=20)),
    ("ua", "iz", "view", timedelta(minutes=10)),
    ("ub", "iz", "purchase", timedelta(minutes=5)),
    ("ub", "iy", "purchase", timedelta(minutes=1)),
    ("ua", "iy", "purchase", timedelta(0)),
]
# A raw event with a +02:00 offset and a fraction of a second: T - 29m 59.75s in UTC.
OFFSET_EVENT = {"event_id": "e-offset", "user_id": "uc", "item_id": "iw", "event_type": "view",
                "ts": "2026-02-02T13:30:00.250+02:00"}
OFFSET_MS = int((T - timedelta(minutes=29, seconds=59, milliseconds=750)).timestamp() * 1000)
RETRIED = (9, 3, 8)  # indexes of events a producer sends twice

# expected at each entity's last event: window -> (impressions, views, clicks, carts, purchases)
EXPECTED = {
    ("user", "ua"): {"1h": (0, 2, 0, 0, 1), "24h": (0, 2, 1, 0, 1), "7d": (0, 3, 1, 0, 1)},
    ("user", "ub"): {"1h": (1, 0, 0, 0, 2), "24h": (2, 0, 1, 0, 2), "7d": (2, 0, 1, 0, 2)},
    ("item", "ix"): {"1h": (1, 0, 1, 0, 0), "24h": (1, 0, 2, 0, 0), "7d": (1, 1, 2, 0, 0)},
    ("item", "iy"): {"1h": (1, 1, 0, 0, 2), "24h": (1, 1, 0, 0, 2), "7d": (1, 1, 0, 0, 2)},
    ("item", "iz"): {"1h": (0, 1, 0, 0, 1), "24h": (0, 1, 0, 0, 1), "7d": (0, 1, 0, 0, 1)},
    ("item", "iw"): {"1h": (0, 1, 0, 0, 0), "24h": (0, 1, 0, 0, 0), "7d": (0, 1, 0, 0, 0)},
}
COUNTS = ("impressions", "views", "clicks", "carts", "purchases")
LAST_ITEMS = {"ua": ["ix", "ix", "iy", "iz", "iy"], "ub": ["ix", "ix", "iy", "iz", "iy"],
              "uc": ["iw"]}
# weighted events per category in the user's 7 days (view 1, click 2, purchase 8)
AFFINITY = {"ua": (["books", "shoes"], [10 / 13, 3 / 13]),
            "ub": (["books", "shoes"], [16 / 18, 2 / 18]),
            "uc": ([], [])}  # iw has no category
# ua viewed iy then iz 20 minutes apart (co-view window 60 min; ix was 6 days earlier);
# ub bought iz then iy 4 minutes apart (co-purchase window 24 h)
PAIRS = {"iy": (["iz"], [1], ["iz"], [1]), "iz": (["iy"], [1], ["iy"], [1]),
         "ix": ([], [], [], []), "iw": ([], [], [], [])}

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
    b'{"event_id": "b10", "user_id": "ua", "item_id": "ix", "event_type": "view",'
    b' "ts": "2026-02-30T00:00:00Z"}': "ts: not ISO 8601 with a UTC offset",
    b'{"event_id": "b9", "user_id": "u a", "item_id": "ix", "event_type": "view",'
    b' "ts": "2026-02-01T00:00:00Z"}': "user_id: must be 1-64 characters of letters, "
                                       "digits and _.:@-",
    b'["a JSON array"]': "$: invalid JSON",
}


def events(shift: timedelta = timedelta(0)) -> list[ClickstreamEvent]:
    return [ClickstreamEvent(event_id=f"e{i}", user_id=u, item_id=it, event_type=kind,
                             ts=T - ago + shift)
            for i, (u, it, kind, ago) in enumerate(EVENTS)]


def events_frame() -> pd.DataFrame:
    rows = [{"event_id": e.event_id, "user_id": e.user_id, "item_id": e.item_id,
             "event_type": e.event_type, "ts": pd.Timestamp(e.ts)} for e in events()]
    rows.append({**OFFSET_EVENT, "ts": pd.Timestamp(OFFSET_MS, unit="ms", tz="UTC")})
    return pd.DataFrame(rows).sort_values("ts", kind="stable").reset_index(drop=True)


@pytest.fixture
def stream_settings(stack_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """The running stack with topics, checkpoints, offline store and catalogue of this
    test only."""
    tag = uuid.uuid4().hex[:8]
    catalogue = tmp_path / "items.parquet"
    pq.write_table(pa.table({"item_id": list(CATEGORIES), "category": list(CATEGORIES.values())}),
                   catalogue)
    settings = stack_settings.model_copy(update={
        "clickstream_topic": f"cs-{tag}", "dead_letter_topic": f"dlq-{tag}",
        "features_topic": f"feat-{tag}", "consumer_group": f"g-{tag}",
        "state_dir": tmp_path / "state", "data_dir": tmp_path / "data",
        "checkpoint_interval_s": 1.0, "writer_batch_ms": 100, "writer_offline_flush_s": 0.5,
        "stream_catalogue": catalogue,
    })
    from recsys.stack.services import apply_feast_registry

    apply_feast_registry(settings)  # views with this test's offline folder
    yield settings


def expected_totals(settings: Settings, heartbeats: int) -> dict[str, int]:
    return expected_stream_events(events_frame(), CATEGORIES,
                                  job_config(settings).pair_windows_ms, heartbeats=heartbeats)


def run_writer_until(settings: Settings, expected: dict[str, int], job,
                     timeout_s: float = 150) -> FeatureWriter:
    writer = FeatureWriter(settings)
    reached = writer.run_until(events_reached(expected), timeout_s, still_running=job.pid)
    assert reached, (writer.stats.events, expected, job.log_tail(30))
    return writer


def publish(settings: Settings, batch: list[ClickstreamEvent]) -> None:
    """All on partition 0, so the job reads them in this order (the category share is
    taken as of what the category has seen: it depends on the order across users)."""
    with EventPublisher(settings) as publisher:
        for event in batch:
            publisher.publish(event, partition=0)


def online(settings: Settings, refs: list[str], entity: str, key: str) -> dict:
    from feature_repo.store import get_feature_store

    row = get_feature_store(settings).get_online_features(
        refs, [{f"{entity}_id": key}], full_feature_names=True).to_dict()
    return {name.split("__", 1)[1] if "__" in name else name: values[0]
            for name, values in row.items()}


def online_counts(settings: Settings, entity: str, key: str) -> dict[str, tuple[int, ...]]:
    refs = [f"{entity}_activity_{w}:{c}" for w in ("1h", "24h", "7d") for c in COUNTS]
    from feature_repo.store import get_feature_store

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


def arrival_frame(batch: list[ClickstreamEvent]) -> pd.DataFrame:
    return pd.DataFrame([{"event_id": e.event_id, "item_id": e.item_id,
                          "event_type": e.event_type, "ts": pd.Timestamp(e.ts)} for e in batch])


def assert_all_features(settings: Settings, arrivals: pd.DataFrame) -> None:
    for (entity, key), windows in EXPECTED.items():
        assert online_counts(settings, entity, key) == windows, (entity, key)
        ctr = online(settings, [f"{entity}_activity_24h:ctr"], entity, key)["ctr"]
        impressions, _, clicks, _, _ = windows["24h"]
        assert ctr == (clicks / impressions if impressions else 0.0), (entity, key)

    for user, items in LAST_ITEMS.items():
        recent = online(settings, ["user_recent:last_items", "user_recent:last_event_ms"],
                        "user", user)
        assert recent["last_items"] == items, user
        categories, shares = AFFINITY[user]
        got = online(settings, [f"{USER_AFFINITY_VIEW}:top_categories",
                                f"{USER_AFFINITY_VIEW}:category_shares"], "user", user)
        assert (got["top_categories"] or []) == categories, user
        assert (got["category_shares"] or []) == pytest.approx(shares, rel=1e-12), user
    assert online(settings, ["user_recent:last_event_ms"], "user", "uc")[
        "last_event_ms"] == OFFSET_MS  # +02:00 and .250 s parsed exactly

    frame = events_frame()
    half_life_ms = job_config(settings).half_life_ms
    for item in ("ix", "iy", "iz", "iw"):
        pop = online(settings, [f"{ITEM_POPULARITY_VIEW}:popularity",
                                f"{ITEM_POPULARITY_VIEW}:last_event_ms"], "item", item)
        assert pop["popularity"] == pytest.approx(
            item_popularity(frame, item, WEIGHTS, half_life_ms), rel=1e-9), item
        pairs = online(settings, [f"{ITEM_PAIRS_VIEW}:{f}" for f in (
            "co_view_items", "co_view_counts", "co_purchase_items", "co_purchase_counts")],
            "item", item)
        got = tuple(pairs[f] or [] for f in ("co_view_items", "co_view_counts",
                                               "co_purchase_items", "co_purchase_counts"))
        assert got == PAIRS[item], item
    # iz: a view 10 min and a purchase 5 min before T, popularity as of its purchase
    iz = online(settings, [f"{ITEM_POPULARITY_VIEW}:popularity"], "item", "iz")["popularity"]
    assert iz == pytest.approx(8 + 0.5 ** (5 * 60_000 / half_life_ms), rel=1e-12)
    expected = category_shares(arrivals, CATEGORIES, WEIGHTS, half_life_ms)
    for item in CATEGORIES:
        share = online(settings, [f"{ITEM_CATEGORY_VIEW}:category_share"], "item", item)
        assert share["category_share"] == pytest.approx(expected[item], rel=1e-9), item
    assert online(settings, [f"{ITEM_CATEGORY_VIEW}:category_share"], "item", "ix")[
        "category_share"] == pytest.approx(1.0)  # the only item of its category


def test_features_are_exact_online_and_offline_and_bad_events_are_dead_lettered(
        stream_settings: Settings) -> None:
    settings = stream_settings
    job = start_feature_job(settings)
    try:
        batch = events()
        # newest first (order must not matter), then producer retries of three events
        arrivals = [*reversed(batch), *(batch[i] for i in RETRIED)]
        publish(settings, arrivals)
        producer = make_producer(settings)
        producer.send(settings.clickstream_topic, json.dumps(OFFSET_EVENT).encode())
        for raw in BAD_RECORDS:
            producer.send(settings.clickstream_topic, raw)
        producer.flush()
        beats = send_heartbeats(settings, T)  # moves the watermark past every event
        writer = run_writer_until(settings, expected_totals(settings, beats), job)
        assert writer.stats.rejected == 0
        assert writer.stats.events == expected_totals(settings, beats)  # no double counting

        # a late event, now that the watermark has passed T
        late = ClickstreamEvent(event_id="late-1", user_id="ua", item_id="ix",
                                event_type="view", ts=T - timedelta(hours=1))
        publish(settings, [late])
        letters = dead_letters(settings, expected=len(BAD_RECORDS) + 1)
    finally:
        job.stop()

    assert_all_features(settings, arrival_frame(arrivals))
    reasons = Counter(letter["reason"] for letter in letters)
    expected_reasons = Counter(BAD_RECORDS.values())
    expected_reasons[LATE_REASON] = 1
    assert reasons == expected_reasons
    assert {letter["payload"].encode() for letter in letters} >= set(BAD_RECORDS)

    # the offline store holds the same values, at the event times they held from
    offline = pd.read_parquet(settings.offline_store_path / "user_activity_24h")
    last = offline[offline.user_id == "ua"].sort_values("event_time").iloc[-1]
    assert last.event_time == pd.Timestamp(T)
    assert tuple(int(last[c]) for c in COUNTS) == EXPECTED[("user", "ua")]["24h"]
    recent = pd.read_parquet(settings.offline_store_path / "user_recent")
    assert list(recent[recent.user_id == "ua"].sort_values("event_time").iloc[-1].last_items) == [
        "ix", "ix", "iy", "iz", "iy"]
    pairs = pd.read_parquet(settings.offline_store_path / ITEM_PAIRS_VIEW)
    newest = pairs[pairs.item_id == "iy"].sort_values("event_time").iloc[-1]
    assert list(newest.co_purchase_items) == ["iz"] and list(newest.co_purchase_counts) == [1]
    affinity = pd.read_parquet(settings.offline_store_path / USER_AFFINITY_VIEW)
    newest = affinity[affinity.user_id == "ub"].sort_values("event_time").iloc[-1]
    assert list(newest.top_categories) == ["books", "shoes"]
    assert math.isclose(newest.category_shares[0], 16 / 18, rel_tol=1e-12)


@pytest.mark.fault
def test_a_restarted_job_resumes_from_its_checkpoint_without_loss_or_double_counting(
        stream_settings: Settings) -> None:
    settings = stream_settings
    batch = events()
    first, second = batch[:4], batch[4:]
    job = start_feature_job(settings)
    try:
        publish(settings, first)
        # its own consumer group: the final writer below reads every row from the start
        run_writer_until(settings.model_copy(update={"consumer_group": "phase-1"}),
                         {"user": 4, "item": 4}, job)
        processed = time.time()
        # wait until a checkpoint taken after the first half was processed has completed
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = latest_checkpoint(settings.checkpoint_path)
            if done is not None and (done / "_metadata").stat().st_mtime > processed + 1:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no checkpoint after the first half:\n{job.log_tail()}")
    finally:
        job.stop()  # killed mid-stream, like a crash

    publish(settings, [*second, batch[3]])  # and a retry of an event from before the crash
    producer = make_producer(settings)
    producer.send(settings.clickstream_topic, json.dumps(OFFSET_EVENT).encode())
    producer.flush()
    producer.close()
    beats = send_heartbeats(settings, T)
    restarted = time.monotonic()
    job = start_feature_job(settings, restore=True)
    try:
        writer = run_writer_until(settings, expected_totals(settings, beats), job)
        assert "restored from" in job.log_tail(50)
    finally:
        job.stop()
    caught_up = time.monotonic() - restarted
    assert writer.stats.events == expected_totals(settings, beats)
    assert_all_features(settings, arrival_frame([*first, *second, batch[3]]))
    print("FAULT Flink job killed and restored from its checkpoint: " + json.dumps({
        "events": len(batch) + 1, "lost": 0, "double_counted": 0,
        "restart_to_every_feature_exact_s": round(caught_up, 1)}))
