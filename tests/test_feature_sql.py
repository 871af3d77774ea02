"""The Flink SQL generator: derived from the contract, so it cannot drift from it."""

from __future__ import annotations

import re

from feature_repo.events import EVENT_TYPES, ID_PATTERN, ClickstreamEvent
from feature_repo.specs import ACTIVITY_VIEWS, ALL_STREAM_VIEWS, COUNT_COLUMNS
from stream_jobs.feature_sql import TS_PATTERN, JobConfig, statements

CFG = JobConfig("127.0.0.1:9", "cs", "dlq", "feat", "g", watermark_delay_ms=1500)


def test_one_sink_and_insert_per_view_plus_dead_letters() -> None:
    ddl, inserts = statements(CFG)
    sinks = [d for d in ddl if "CREATE TABLE sink_" in d]
    assert len(sinks) == len(ALL_STREAM_VIEWS)
    assert len(inserts) == len(ALL_STREAM_VIEWS) + 1
    assert inserts[0].startswith("INSERT INTO dead_letters")
    for view in ACTIVITY_VIEWS:
        [insert] = [i for i in inserts if f"INSERT INTO sink_{view.name}\n" in i]
        # each window in its own query (see the Flink 2.0.2 note in feature_sql)
        assert insert.count("RANGE BETWEEN") == 1
        for column in COUNT_COLUMNS:
            assert f"`{column}`" in insert


def test_checks_mirror_the_contract() -> None:
    ddl, _ = statements(CFG)
    checked = next(d for d in ddl if "CREATE TEMPORARY VIEW checked" in d)
    assert ID_PATTERN in checked
    for event_type in EVENT_TYPES:
        assert f"'{event_type}'" in checked
    assert "INTERVAL '1.500' SECOND" in ddl[0]
    assert "'scan.startup.mode' = 'earliest-offset'" in ddl[0]


def test_the_timestamp_pattern_accepts_what_producers_send() -> None:
    for ts in ("2026-03-01T12:00:00+02:00", "2026-03-01T12:00:00.5-01:30"):
        event = ClickstreamEvent(event_id="e", user_id="u", item_id="i", event_type="view", ts=ts)
        sent = event.model_dump(mode="json")["ts"]  # what EventPublisher puts on the wire
        assert re.match(TS_PATTERN, sent), sent
        assert re.match(TS_PATTERN, ts)
    assert not re.match(TS_PATTERN, "2026-03-01 12:00:00")
