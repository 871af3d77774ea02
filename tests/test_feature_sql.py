"""The feature job's parameters: derived from the contract, so they cannot drift from it.

The job is Java (``stream_jobs/java``); what it computes per column and which checks
it applies come from ``stream_jobs.job_spec``, checked here against the specs and
against the Java sources that read them.
"""

from __future__ import annotations

import re

import pytest

from feature_repo.events import EVENT_TYPES, ID_PATTERN, ClickstreamEvent
from feature_repo.specs import (
    COUNT_COLUMNS,
    PAIR_KINDS,
    STREAM_VIEWS,
    STREAMS,
    WINDOWS,
    stream_columns,
    views_of,
)
from stream_jobs.feast_layout import TYPE_CODES, stream_spec
from stream_jobs.features_job import _map_option
from stream_jobs.job_spec import (
    JOB_CLASS,
    LATE_REASON,
    TS_PATTERN,
    JobConfig,
    value_sources,
    view_value_sources,
)
from stream_jobs.udf_jar import SOURCES

CFG = JobConfig("127.0.0.1:9", "cs", "dlq", "feat", "g", watermark_delay_ms=1500,
                feast_project="proj")
ENCODER = (SOURCES / "recsys" / "flink" / "RowEncoder.java").read_text()


def _java_array(name: str) -> list[str]:
    body = re.search(rf"{name} = \{{(.*?)\}};", ENCODER, re.S).group(1)
    return re.findall(r'"([^"]*)"', body)


def test_every_stream_gets_its_feast_layout_and_a_value_for_each_column() -> None:
    params = CFG.job_parameters()
    sources, types = _java_array("NAMES"), _java_array("TYPES")
    for stream in STREAMS:
        # the Java encoder gets the Feast layout of exactly this stream's views
        assert params[f"recsys.stream.{stream}.spec"] == stream_spec(views_of(stream), "proj", 3)
        codes = params[f"recsys.stream.{stream}.values"].split(",")
        assert len(codes) == len(stream_columns(stream))
        for code, (column, kind) in zip(codes, stream_columns(stream), strict=True):
            name = code.split(":")[0]
            assert name in sources, (stream, column, code)  # RowEncoder.java knows it
            assert types[sources.index(name)] == TYPE_CODES[kind], (column, code)


def test_value_sources_follow_the_views() -> None:
    user = dict(zip((c for c, _ in stream_columns("user")), value_sources("user"), strict=True))
    types = list(COUNT_COLUMNS)
    day = list(WINDOWS).index("24h")
    assert user["user_activity_24h__clicks"] == f"count:{day}:{types.index('clicks')}"
    assert user["user_activity_24h__ctr"] == (
        f"ratio:{day}:{types.index('clicks')}:{types.index('impressions')}")
    assert user["user_recent__last_items"] == "recent_items"
    item = dict(zip((c for c, _ in stream_columns("item")), value_sources("item"), strict=True))
    assert item["item_activity_7d__conversion_rate"] == (
        f"ratio:{len(WINDOWS) - 1}:{types.index('purchases')}:{types.index('views')}")
    pairs = value_sources("item_pairs")
    assert pairs == [f"pair_{part}:{k}" for k in range(len(PAIR_KINDS))
                     for part in ("items", "counts")]


def test_a_feature_the_job_cannot_fill_is_refused() -> None:
    from dataclasses import replace

    [view] = [v for v in STREAM_VIEWS if v.name == "item_popularity"]
    extra = replace(view, fields=(*view.fields, ("trend", "float64")))
    with pytest.raises(ValueError, match="item_popularity:trend"):
        view_value_sources(extra)


def test_every_view_is_written_by_exactly_one_stream() -> None:
    assert {v.stream for v in STREAM_VIEWS} == set(STREAMS)
    assert sum(len(views_of(s)) for s in STREAMS) == len(STREAM_VIEWS)
    for stream in STREAMS:
        assert len({v.entity for v in views_of(stream)}) == 1


def test_checks_mirror_the_contract() -> None:
    params = CFG.job_parameters()
    assert params["recsys.check.id-pattern"] == ID_PATTERN
    assert set(params["recsys.event-types"].split(";")) == set(EVENT_TYPES)
    assert params["recsys.check.late-reason"] == LATE_REASON
    assert params["recsys.check.earliest-reason"] == "ts: before 1995-01-01"
    assert params["recsys.check.future-skew-ms"] == str(5 * 60_000)
    assert params["recsys.watermark-delay-ms"] == "1500"
    assert params["recsys.check.ts-pattern"] == TS_PATTERN  # the parser gets the contract's
    checks = (SOURCES / "recsys" / "flink" / "EventChecks.java").read_text()
    for name in ("id_pattern", "id_invalid", "earliest_reason", "late_reason"):
        field = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
        assert f"settings.{field}" in checks, name  # each parameter is applied


def test_the_job_class_and_every_parameter_it_needs_exist() -> None:
    assert (SOURCES / (JOB_CLASS.replace(".", "/") + ".java")).exists()
    settings = (SOURCES / "recsys" / "flink" / "JobSettings.java").read_text()
    required = set(re.findall(r'(?:required|longValue|longs|doubles)\(p, "(recsys\.[a-z.-]+)"\)',
                              settings))
    optional = set(re.findall(r'getOrDefault\("(recsys\.[a-z.-]+)"', settings))
    assert "recsys.stream." in settings
    required |= {f"recsys.stream.{s}.{part}" for s in STREAMS for part in ("spec", "values")}
    given = set(CFG.job_parameters())
    assert required - given == set()  # nothing the job needs is missing
    assert given - required - optional == set()  # nothing given is ignored


def test_job_parameters_follow_the_specs() -> None:
    params = CFG.job_parameters()
    windows = [int(v) for v in params["recsys.windows-ms"].split(";")]
    assert windows == sorted(windows) == [int(w.total_seconds() * 1000) for w in WINDOWS.values()]
    assert len(params["recsys.event-weights"].split(";")) == len(COUNT_COLUMNS)
    kinds = [int(k) for k in params["recsys.pair-types"].split(";")]
    types = list(COUNT_COLUMNS.values())
    for index, event_type in enumerate(PAIR_KINDS.values()):
        assert kinds[types.index(event_type)] == index
    assert kinds.count(-1) == len(types) - len(PAIR_KINDS)


def test_map_option_quotes_values_holding_separators() -> None:
    text = _map_option({"a": "x:y,z", "b": "it's"})
    assert text == """'"a":"x:y,z"','"b":"it''s"'"""


def test_the_timestamp_pattern_accepts_what_producers_send() -> None:
    for ts in ("2026-03-01T12:00:00+02:00", "2026-03-01T12:00:00.5-01:30"):
        event = ClickstreamEvent(event_id="e", user_id="u", item_id="i", event_type="view", ts=ts)
        sent = event.model_dump(mode="json")["ts"]  # what EventPublisher puts on the wire
        assert re.match(TS_PATTERN, sent), sent
        assert re.match(TS_PATTERN, ts)
    assert not re.match(TS_PATTERN, "2026-03-01 12:00:00")
