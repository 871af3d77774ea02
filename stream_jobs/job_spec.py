"""What the feature job computes, derived from the contract in ``feature_repo``.

The job itself is a Flink DataStream topology in Java (``stream_jobs/java``,
``FeatureJob.java``); this module turns the contract into the parameters it runs
with, so neither the checks nor the columns can drift from what producers and
Feast expect. Pure string building: importable and testable in either environment.

- the dead-letter checks mirror the Pydantic contract: the same id pattern, event
  types, time bounds and reason texts;
- per stream (``specs.STREAMS``), the Feast online layout of its views
  (``feast_layout.stream_spec``) and, per column (``specs.stream_columns``), where
  its value comes from in the aggregate's state (``value_sources``): what the SQL
  ``SELECT`` list of each sink used to say.

Shape of the job (see docs/streaming.md): one parse of each record in the source,
the checks (bad and late records to the dead-letter topic), then three keyed
aggregates in a row: per user (activity windows, recent items, category affinity,
each event's co-view / co-purchase partners), per item (activity, popularity,
partner counts, fed by the user aggregate: each event with its partners plus one
pair per partner), per category (each item's share of its category's popularity).
Each aggregate keeps only its entity's state and emits each changed entity's row
once per ``emit_interval_ms``; every row is the CSV line plus the Redis command
that writes it in Feast's layout, so the Python writer only forwards bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from feature_repo.events import EARLIEST_EVENT_TIME, EVENT_TYPES, ID_PATTERN, MAX_FUTURE_SKEW
from feature_repo.specs import (
    AFFINITY_TOP,
    COUNT_COLUMNS,
    ITEM_CATEGORY_VIEW,
    ITEM_PAIRS_VIEW,
    ITEM_POPULARITY_VIEW,
    PAIR_CAPACITY,
    PAIR_KINDS,
    PAIR_TOP,
    RECENT_ITEMS,
    STREAMS,
    USER_AFFINITY_VIEW,
    USER_RECENT_VIEW,
    WINDOWS,
    Stream,
    StreamView,
    views_of,
)
from stream_jobs.feast_layout import stream_spec

TS_PATTERN = r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?)(Z|[+-]\d{2}:\d{2})$"
ID_FIELDS = ("event_id", "user_id", "item_id")
ID_INVALID = "must be 1-64 characters of letters, digits and _.:@-"
LATE_REASON = "late: older than the watermark (allowed lateness exceeded)"
#: The Java entry point that adds the job to the PyFlink environment.
JOB_CLASS = "recsys.flink.FeatureJob"

if set(EVENT_TYPES) != set(COUNT_COLUMNS.values()):
    raise RuntimeError("every event type needs a count column (feature_repo.specs)")


@dataclass(frozen=True)
class JobConfig:
    bootstrap_servers: str
    clickstream_topic: str
    dead_letter_topic: str
    features_topic: str
    group_id: str
    watermark_delay_ms: int = 1_000
    #: a partition silent this long stops holding the watermark back (0: never)
    source_idle_timeout_ms: int = 0
    #: Java client properties, e.g. security.protocol / sasl.mechanism / sasl.jaas.config
    client_properties: tuple[tuple[str, str], ...] = ()
    #: per event type (EVENT_TYPES order): weight in popularity and category affinity
    event_weights: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    half_life_ms: int = 7 * 86_400_000
    #: per pair kind (PAIR_KINDS order): how close in time two events must be to pair
    pair_windows_ms: tuple[int, ...] = (3_600_000, 86_400_000)
    #: item_id TAB category lines ("" for none: categories only from the event context)
    catalogue_path: str = ""
    #: each aggregate emits each changed entity's newest row this often, or as soon as
    #: this many entities wait
    emit_interval_ms: int = 200
    emit_max_rows: int = 20_000
    #: the source's fetches: the broker answers once this much is there or the wait is over
    fetch_min_bytes: int = 65_536
    fetch_max_wait_ms: int = 50
    #: the feature sinks' producer batching (rows leave in bursts, once per interval)
    sink_linger_ms: int = 5
    sink_batch_bytes: int = 262_144
    #: Feast project and entity key serialization (the online layout the job encodes)
    feast_project: str = "recsys"
    key_serialization_version: int = 3
    extra_parameters: tuple[tuple[str, str], ...] = field(default=())

    def job_parameters(self) -> dict[str, str]:
        """What the job reads (``JobSettings.java``), as ``pipeline.global-job-parameters``.
        The client properties travel separately: they may hold secrets."""
        def joined(values) -> str:
            return ";".join(str(v) for v in values)

        streams = {}
        for stream in STREAMS:
            views = views_of(stream)
            streams[f"recsys.stream.{stream}.spec"] = stream_spec(
                views, self.feast_project, self.key_serialization_version)
            streams[f"recsys.stream.{stream}.values"] = ",".join(value_sources(stream))
        return {
            "recsys.bootstrap-servers": self.bootstrap_servers,
            "recsys.clickstream-topic": self.clickstream_topic,
            "recsys.dead-letter-topic": self.dead_letter_topic,
            "recsys.features-topic": self.features_topic,
            "recsys.group-id": self.group_id,
            "recsys.fetch-min-bytes": str(self.fetch_min_bytes),
            "recsys.fetch-max-wait-ms": str(self.fetch_max_wait_ms),
            "recsys.watermark-delay-ms": str(self.watermark_delay_ms),
            "recsys.source-idle-timeout-ms": str(self.source_idle_timeout_ms),
            "recsys.sink-linger-ms": str(self.sink_linger_ms),
            "recsys.sink-batch-bytes": str(self.sink_batch_bytes),
            "recsys.windows-ms": joined(int(w.total_seconds() * 1000) for w in WINDOWS.values()),
            "recsys.event-types": joined(COUNT_COLUMNS.values()),
            "recsys.event-weights": joined(self.event_weights),
            "recsys.half-life-ms": str(self.half_life_ms),
            "recsys.recent-items": str(RECENT_ITEMS),
            "recsys.affinity-top": str(AFFINITY_TOP),
            "recsys.pair-types": joined(_pair_kind_of_types()),
            "recsys.pair-windows-ms": joined(self.pair_windows_ms),
            "recsys.pair-partners": str(PAIR_TOP),
            "recsys.pair-capacity": str(PAIR_CAPACITY),
            "recsys.pair-top": str(PAIR_TOP),
            "recsys.catalogue-path": self.catalogue_path,
            "recsys.emit-interval-ms": str(self.emit_interval_ms),
            "recsys.emit-max-rows": str(self.emit_max_rows),
            **check_parameters(),
            **streams,
            **dict(self.extra_parameters),
        }


def check_parameters() -> dict[str, str]:
    """The contract's checks (``EventChecks.java`` applies them in this order: JSON object,
    ids present and matching the pattern, known event type, ts present / ISO 8601 with an
    offset / not too early / not in the future, price numeric and not negative, not late)."""
    return {
        "recsys.check.id-pattern": ID_PATTERN,
        "recsys.check.id-invalid": ID_INVALID,
        "recsys.check.ts-pattern": TS_PATTERN,
        "recsys.check.earliest-ms": str(int(EARLIEST_EVENT_TIME.timestamp() * 1000)),
        "recsys.check.earliest-reason": f"ts: before {EARLIEST_EVENT_TIME.date().isoformat()}",
        "recsys.check.future-skew-ms": str(int(MAX_FUTURE_SKEW.total_seconds() * 1000)),
        "recsys.check.late-reason": LATE_REASON,
    }


def _pair_kind_of_types() -> list[int]:
    """Per event type (COUNT_COLUMNS order): its pair kind's index, or -1."""
    kinds = list(PAIR_KINDS.values())
    return [kinds.index(t) if t in kinds else -1 for t in COUNT_COLUMNS.values()]


def _activity_sources(view: StreamView) -> dict[str, str]:
    """Counts and ratios of an activity view: ``count:w:t`` / ``ratio:w:num:den``."""
    window = list(WINDOWS).index(view.name.rsplit("_", 1)[1])
    types = {column: t for t, column in enumerate(COUNT_COLUMNS)}
    out = {column: f"count:{window}:{t}" for column, t in types.items()}
    out["ctr"] = f"ratio:{window}:{types['clicks']}:{types['impressions']}"
    out["conversion_rate"] = f"ratio:{window}:{types['purchases']}:{types['views']}"
    return out


def _view_sources(view: StreamView) -> dict[str, str]:
    """Feature name -> value source in the aggregate's state (see RowEncoder.java)."""
    if view.name.startswith(f"{view.entity}_activity_"):
        return _activity_sources(view)
    kinds = list(PAIR_KINDS)
    return {
        USER_RECENT_VIEW: {"last_items": "recent_items", "last_event_ms": "last_event_ms"},
        USER_AFFINITY_VIEW: {"top_categories": "affinity_categories",
                             "category_shares": "affinity_shares"},
        ITEM_POPULARITY_VIEW: {"popularity": "popularity", "last_event_ms": "last_event_ms"},
        ITEM_CATEGORY_VIEW: {"category_share": "category_share"},
        ITEM_PAIRS_VIEW: {f"{kind}_{part}": f"pair_{part}:{k}" for k, kind in enumerate(kinds)
                          for part in ("items", "counts")},
    }.get(view.name, {})


def view_value_sources(view: StreamView) -> list[str]:
    """Per field of the view, its value source; refuses a field the job cannot fill."""
    sources = _view_sources(view)
    missing = [name for name, _ in view.fields if name not in sources]
    if missing:
        raise ValueError(f"{view.name}:{missing[0]}: the feature job has no value for it")
    return [sources[name] for name, _ in view.fields]


def value_sources(stream: Stream) -> list[str]:
    """Per column of the stream's row (``specs.stream_columns`` order), its value source."""
    return [code for view in views_of(stream) for code in view_value_sources(view)]
