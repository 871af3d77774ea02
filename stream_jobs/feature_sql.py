"""Flink SQL of the feature job, generated from the contract in ``feature_repo``.

The checks that route an event to the dead-letter topic mirror the Pydantic
contract (same id pattern, event types, time bounds), and the sink columns come
from ``feature_repo.specs``, so neither can drift from what producers and Feast
expect. Pure string building: importable and testable in either environment.

Flink 2.0.2 note: when two OVER aggregates with different RANGE frames meet in
one query (e.g. joined), the optimizer gives both the first frame. Each window
therefore gets its own INSERT (one sink row per entity and window), and the
integration test asserts distinct 1h/24h/7d counts to keep it honest.
"""

from __future__ import annotations

from dataclasses import dataclass

from feature_repo.events import EARLIEST_EVENT_TIME, EVENT_TYPES, ID_PATTERN, MAX_FUTURE_SKEW
from feature_repo.specs import (
    ACTIVITY_VIEWS,
    COUNT_COLUMNS,
    EVENT_TIME,
    RECENT_ITEMS,
    USER_RECENT_VIEW,
    ActivityView,
)

TS_PATTERN = r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?)(Z|[+-]\d{2}:\d{2})$"
TS_FORMAT = "yyyy-MM-dd''T''HH:mm:ss[.SSSSSSSSS][.SSSSSS][.SSS][.SS][.S]"
ID_FIELDS = ("event_id", "user_id", "item_id")
INTERVALS = {"1h": "INTERVAL '1' HOUR", "24h": "INTERVAL '24' HOUR", "7d": "INTERVAL '7' DAY"}


@dataclass(frozen=True)
class JobConfig:
    bootstrap_servers: str
    clickstream_topic: str
    dead_letter_topic: str
    features_topic: str
    group_id: str
    watermark_delay_ms: int = 1_000
    #: Java client properties, e.g. security.protocol / sasl.mechanism / sasl.jaas.config
    client_properties: tuple[tuple[str, str], ...] = ()


def _client_options(cfg: JobConfig) -> str:
    return "".join(f",\n  'properties.{key}' = '{value.replace(chr(39), chr(39) * 2)}'"
                   for key, value in cfg.client_properties)


def _json(field: str) -> str:
    """A field as text. Not ``RETURNING DOUBLE``: on an integer JSON number that throws
    ClassCastException in Flink 2.0.2 and fails the whole job."""
    return f"JSON_VALUE(payload, '$.{field}')"


def parsed_time() -> str:
    """``ts`` (ISO 8601 with Z or ±hh:mm) as TIMESTAMP_LTZ(3); NULL when malformed.

    TO_TIMESTAMP_LTZ ignores a pattern's offset, so the offset is applied by hand.
    """
    ts = _json("ts")
    local = f"REGEXP_EXTRACT({ts}, '{TS_PATTERN}', 1)"
    zone = f"REGEXP_EXTRACT({ts}, '{TS_PATTERN}', 3)"
    minutes = f"(CAST(SUBSTRING({zone}, 2, 2) AS INT) * 60 + CAST(SUBSTRING({zone}, 5, 2) AS INT))"
    offset = (f"CASE WHEN {zone} = 'Z' THEN 0 WHEN SUBSTRING({zone}, 1, 1) = '-' "
              f"THEN -{minutes} ELSE {minutes} END")
    return f"TIMESTAMPADD(MINUTE, -({offset}), TO_TIMESTAMP_LTZ({local}, '{TS_FORMAT}'))"


def _earliest() -> str:
    return f"TO_TIMESTAMP_LTZ({int(EARLIEST_EVENT_TIME.timestamp() * 1000)}, 3)"


def _latest() -> str:
    return f"TIMESTAMPADD(SECOND, {int(MAX_FUTURE_SKEW.total_seconds())}, CURRENT_TIMESTAMP)"


def source_ddl(cfg: JobConfig) -> str:
    """Raw records, so that nothing is lost to a format error; the event time of a
    record that fails its time checks is the epoch, which never moves the watermark.

    A fresh job reads the retained history (windows need it); a restored job takes
    its offsets from the checkpoint. Not 'group-offsets': tansu answers an offset
    fetch for a group without commits with offsets that skip data.
    """
    parsed = parsed_time()
    in_range = f"{parsed} BETWEEN {_earliest()} AND {_latest()}"
    delay = f"{cfg.watermark_delay_ms / 1000:.3f}"
    return f"""
CREATE TABLE clickstream_raw (
  payload STRING,
  produced_at TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  {EVENT_TIME} AS COALESCE(CASE WHEN {in_range} THEN {parsed} END, TO_TIMESTAMP_LTZ(0, 3)),
  WATERMARK FOR {EVENT_TIME} AS {EVENT_TIME} - INTERVAL '{delay}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '{cfg.clickstream_topic}',
  'properties.bootstrap.servers' = '{cfg.bootstrap_servers}',
  'properties.group.id' = '{cfg.group_id}',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'raw'{_client_options(cfg)}
)"""


def checked_view() -> str:
    """Every record with the first reason it is unusable, or NULL when it is valid."""
    types = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    reasons = ["WHEN NOT (payload IS JSON OBJECT) THEN '$: invalid JSON'"]
    for field in ID_FIELDS:
        reasons.append(f"WHEN {field} IS NULL THEN '{field}: missing'")
        reasons.append(f"WHEN NOT REGEXP({field}, '{ID_PATTERN}') THEN "
                       f"'{field}: must be 1-64 characters of letters, digits and _.:@-'")
    reasons += [
        "WHEN event_type IS NULL THEN 'event_type: missing'",
        f"WHEN event_type NOT IN ({types}) THEN 'event_type: unknown ' || event_type",
        "WHEN ts_text IS NULL THEN 'ts: missing'",
        "WHEN parsed_ts IS NULL THEN 'ts: not ISO 8601 with a UTC offset'",
        f"WHEN parsed_ts < {_earliest()} THEN "
        f"'ts: before {EARLIEST_EVENT_TIME.date().isoformat()}'",
        f"WHEN parsed_ts > {_latest()} THEN 'ts: in the future'",
        "WHEN price_text IS NOT NULL AND price IS NULL THEN 'price: not a number'",
        "WHEN price < 0 THEN 'price: negative'",
        f"WHEN {EVENT_TIME} < CURRENT_WATERMARK({EVENT_TIME}) THEN "
        "'late: older than the watermark (allowed lateness exceeded)'",
    ]
    case = "\n    ".join(reasons)
    return f"""
CREATE TEMPORARY VIEW checked AS
SELECT *, CASE
    {case}
  END AS reason
FROM (
  SELECT payload, produced_at, src_partition, src_offset, {EVENT_TIME},
    {_json('event_id')} AS event_id, {_json('user_id')} AS user_id,
    {_json('item_id')} AS item_id, {_json('event_type')} AS event_type,
    {_json('ts')} AS ts_text, {parsed_time()} AS parsed_ts,
    {_json('price')} AS price_text, TRY_CAST({_json('price')} AS DOUBLE) AS price
  FROM clickstream_raw
)"""


def valid_events_view() -> str:
    return f"""
CREATE TEMPORARY VIEW events AS
SELECT event_id, user_id, item_id, event_type, price, {EVENT_TIME}, produced_at
FROM checked WHERE reason IS NULL"""


def _kafka_sink(name: str, columns: str, topic: str, cfg: JobConfig) -> str:
    return f"""
CREATE TABLE {name} (
  {columns}
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic}',
  'properties.bootstrap.servers' = '{cfg.bootstrap_servers}',
  'sink.delivery-guarantee' = 'at-least-once',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'{_client_options(cfg)}
)"""


def dead_letter_sink(cfg: JobConfig) -> str:
    columns = ("payload STRING, reason STRING, produced_at TIMESTAMP_LTZ(3), "
               "src_partition INT, src_offset BIGINT")
    return _kafka_sink("dead_letters", columns, cfg.dead_letter_topic, cfg)


def dead_letter_insert() -> str:
    return ("INSERT INTO dead_letters SELECT payload, reason, produced_at, src_partition, "
            "src_offset FROM checked WHERE reason IS NOT NULL")


def _common_columns(key: str) -> str:
    return (f"`view` STRING, {key} STRING, {EVENT_TIME} TIMESTAMP_LTZ(3), "
            "produced_at TIMESTAMP_LTZ(3)")


def activity_sink(view: ActivityView, cfg: JobConfig) -> str:
    counts = ", ".join(f"`{c}` BIGINT" for c in COUNT_COLUMNS)
    ratios = ", ".join(f"{r} DOUBLE" for r in view.ratios)
    return _kafka_sink(f"sink_{view.name}", f"{_common_columns(view.key)}, {counts}, {ratios}",
                       cfg.features_topic, cfg)


def activity_insert(view: ActivityView) -> str:
    counts = ",\n    ".join(
        f"CAST(SUM(CASE WHEN event_type = '{t}' THEN 1 ELSE 0 END) OVER w AS BIGINT) AS `{c}`"
        for c, t in COUNT_COLUMNS.items()
    )
    ratios = {
        "ctr": "CASE WHEN impressions > 0 THEN CAST(clicks AS DOUBLE) / impressions ELSE 0.0 END",
        "conversion_rate": ("CASE WHEN `views` > 0 THEN CAST(purchases AS DOUBLE) / `views` "
                            "ELSE 0.0 END"),
    }
    derived = ", ".join(f"{ratios[r]} AS {r}" for r in view.ratios)
    plain = ", ".join(f"`{c}`" for c in COUNT_COLUMNS)
    return f"""
INSERT INTO sink_{view.name}
SELECT '{view.name}', {view.key}, {EVENT_TIME}, produced_at, {plain}, {derived}
FROM (
  SELECT {view.key}, {EVENT_TIME}, produced_at,
    {counts}
  FROM events
  WINDOW w AS (PARTITION BY {view.key} ORDER BY {EVENT_TIME}
               RANGE BETWEEN {INTERVALS[view.window]} PRECEDING AND CURRENT ROW)
)"""


def recent_sink(cfg: JobConfig) -> str:
    return _kafka_sink(f"sink_{USER_RECENT_VIEW}", f"{_common_columns('user_id')}, "
                       "last_items STRING", cfg.features_topic, cfg)


def recent_insert() -> str:
    return f"""
INSERT INTO sink_{USER_RECENT_VIEW}
SELECT '{USER_RECENT_VIEW}', user_id, {EVENT_TIME}, produced_at,
  LISTAGG(item_id, ',') OVER (PARTITION BY user_id ORDER BY {EVENT_TIME}
                              ROWS BETWEEN {RECENT_ITEMS - 1} PRECEDING AND CURRENT ROW)
FROM events"""


def statements(cfg: JobConfig) -> tuple[list[str], list[str]]:
    """(DDL to execute, INSERTs to run together as one job)."""
    ddl = [source_ddl(cfg), checked_view(), valid_events_view(), dead_letter_sink(cfg),
           recent_sink(cfg), *(activity_sink(v, cfg) for v in ACTIVITY_VIEWS)]
    inserts = [dead_letter_insert(), recent_insert(),
               *(activity_insert(v) for v in ACTIVITY_VIEWS)]
    return ddl, inserts
