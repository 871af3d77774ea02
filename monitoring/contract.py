"""Names and records shared by the API, the monitor, the alert rules and the dashboard.

The API exposes the ``API_*`` metrics on ``/metrics`` and publishes one
:class:`ServingLogRecord` per recommendation response to the serving-log topic;
the monitor consumes that topic (feature and score drift) and the clickstream
(impressions and clicks joined by ``request_id``) and exposes the ``MONITOR_*``
metrics. ``monitoring/rules`` and the Grafana dashboard refer to these names only.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# --- exposed by the API -------------------------------------------------------
#: Histogram, labels ``endpoint`` (route template, e.g. ``/recommendations``), ``method``.
API_REQUEST_LATENCY = "recsys_request_latency_seconds"
#: Counter, labels ``endpoint``, ``method``, ``status`` (the HTTP status code as text).
API_REQUESTS = "recsys_requests_total"
#: Histogram, label ``stage``: ``candidates``, ``features``, ``ranking``, ``rules``.
API_STAGE_LATENCY = "recsys_stage_latency_seconds"
#: Counter, label ``endpoint``: requests rejected with 4xx for bad input (422/413/400).
API_VALIDATION_FAILURES = "recsys_validation_failures_total"
#: Counter, label ``reason`` (e.g. ``redis_unavailable``, ``ranker_error``, ``cold_start``).
API_FALLBACKS = "recsys_fallbacks_total"
#: Gauge set to 1, labels ``arm`` (``champion``/``challenger``), ``model_name``, ``version``.
API_MODEL_INFO = "recsys_model_info"
#: Histogram of ranker scores served, labels ``arm``, ``model_version``.
API_SERVED_SCORE = "recsys_served_score"
#: Counter, label ``outcome``: ``published``, ``buffered``, ``rejected``.
API_EVENTS = "recsys_events_total"

# --- exposed by the monitor ---------------------------------------------------
#: Gauges, labels ``model_version``, ``feature``.
MONITOR_FEATURE_PSI = "recsys_feature_psi"
MONITOR_FEATURE_KS = "recsys_feature_ks_statistic"
MONITOR_FEATURE_KS_PVALUE = "recsys_feature_ks_pvalue"
MONITOR_FEATURE_MISSING = "recsys_feature_missing_share"
#: Gauges, labels ``model_version``, ``arm``.
MONITOR_SCORE_PSI = "recsys_score_psi"
MONITOR_CTR = "recsys_ctr"
MONITOR_CTR_BASELINE = "recsys_ctr_baseline"
MONITOR_CTR_BASELINE_STD = "recsys_ctr_baseline_std"
MONITOR_CONVERSION = "recsys_conversion_rate"
#: Gauge: impressions in the current window, labels ``model_version``, ``arm``.
MONITOR_WINDOW_IMPRESSIONS = "recsys_window_impressions"
#: Counter, labels ``source`` (``clickstream``/``serving_log``), ``reason``.
MONITOR_MALFORMED = "recsys_monitor_malformed_total"
#: Gauges (added by the monitor), labels ``model_version``, ``arm``: KS of served scores.
MONITOR_SCORE_KS = "recsys_score_ks_statistic"
MONITOR_SCORE_KS_PVALUE = "recsys_score_ks_pvalue"
#: Gauge, label ``model_version``: 1 when the version's drift baseline is loaded, else 0.
MONITOR_BASELINE_LOADED = "recsys_monitor_baseline_loaded"
#: Counter, labels ``source``, ``outcome`` (``impression``, ``click``, ``ranked``, …).
MONITOR_RECORDS = "recsys_monitor_records_total"

# --- exposed by the rollback service -------------------------------------------
#: Counter, labels ``trigger`` (``alertmanager``/``manual``/``watcher``), ``outcome``.
ROLLBACKS = "recsys_rollbacks_total"

#: The arm label values.
ARMS = ("champion", "challenger")


class ServingLogRecord(BaseModel):
    """What the API served for one ``POST /recommendations`` (one Kafka message).

    ``features`` holds, per ranker feature name, the values of the items that were
    returned (same order as ``item_ids``); cold-start and fallback responses,
    which are not ranked, leave it empty.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str
    ts: AwareDatetime
    user_id: str
    arm: str
    model_version: str
    cold_start: bool = False
    fallback: str | None = None
    item_ids: list[str]
    scores: list[float]
    features: dict[str, list[float]] = Field(default_factory=dict)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> ServingLogRecord:
        return cls.model_validate_json(raw)

