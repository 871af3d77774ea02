"""Prometheus metrics of the API, under the names of :mod:`monitoring.contract`.

Each app owns its registry (tests run several apps in one process); label children on
the hot path are cached so an observation costs a dictionary look-up and a lock.
"""

from __future__ import annotations

import warnings

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

from monitoring.contract import (
    API_EVENTS,
    API_FALLBACKS,
    API_MODEL_INFO,
    API_REQUEST_LATENCY,
    API_REQUESTS,
    API_SERVED_SCORE,
    API_STAGE_LATENCY,
    API_VALIDATION_FAILURES,
)

#: Recommendation responses per arm and served model version (A/B traffic split).
API_AB_REQUESTS = "recsys_ab_requests_total"
#: Gauge per dependency (``redis``, ``broker``): 0 closed, 1 half-open, 2 open.
API_CIRCUIT_STATE = "recsys_circuit_state"
#: Gauge: Kafka records waiting in the API's outbox.
API_EVENT_BUFFER = "recsys_event_buffer_records"
#: Counter, label ``arm``: model versions refused at load (bad artifact, failed check).
API_MODEL_REFUSED = "recsys_model_refused_total"
#: Counter, label ``result`` (``hit``/``miss``): item-feature rows from the in-process cache.
API_ITEM_FEATURE_CACHE = "recsys_item_feature_cache_total"
#: Counter, label ``result`` (``hit``/``miss``): candidate lists from a version's cache.
API_CANDIDATE_CACHE = "recsys_candidate_cache_total"
#: Counter, label ``client`` (``subject``: a verified JWT ``sub``; ``address``): requests
#: refused with 429 by the per-client rate limit.
API_RATE_LIMITED = "recsys_rate_limited_total"

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.025,
                   0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
                 0.0075, 0.01, 0.025, 0.05, 0.1)
SCORE_BUCKETS = (-5.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 5.0)
STAGES = ("candidates", "features", "ranking", "rules")
CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}

# Importing feast sets PROMETHEUS_MULTIPROC_DIR for its own feature server, which turns
# every prometheus_client value created afterwards into an mmap-backed multi-process
# value. The API is one process: keep its values in memory (cheaper on the hot path).
values.ValueClass = values.MutexValue


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.request_latency = Histogram(API_REQUEST_LATENCY, "Request latency by route.",
                                         ["endpoint", "method"], buckets=LATENCY_BUCKETS,
                                         registry=r)
        self.requests = Counter(API_REQUESTS, "Requests by route and status.",
                                ["endpoint", "method", "status"], registry=r)
        self.stage_latency = Histogram(API_STAGE_LATENCY, "Serving stage latency.", ["stage"],
                                       buckets=STAGE_BUCKETS, registry=r)
        self.validation_failures = Counter(API_VALIDATION_FAILURES,
                                           "Requests rejected for bad input (4xx).",
                                           ["endpoint"], registry=r)
        self.fallbacks = Counter(API_FALLBACKS, "Responses not produced by the full path.",
                                 ["reason"], registry=r)
        self.model_info = Gauge(API_MODEL_INFO, "Model served per arm (value 1).",
                                ["arm", "model_name", "version"], registry=r)
        self.served_score = Histogram(API_SERVED_SCORE, "Ranker scores of served items.",
                                      ["arm", "model_version"], buckets=SCORE_BUCKETS,
                                      registry=r)
        self.events = Counter(API_EVENTS, "Kafka records by outcome.", ["outcome"], registry=r)
        self.ab_requests = Counter(API_AB_REQUESTS, "Recommendation responses per arm.",
                                   ["arm", "model_version"], registry=r)
        self.circuit = Gauge(API_CIRCUIT_STATE, "0 closed, 1 half-open, 2 open.",
                             ["dependency"], registry=r)
        self.event_buffer = Gauge(API_EVENT_BUFFER, "Records waiting for the broker.",
                                  registry=r)
        self.model_refused = Counter(API_MODEL_REFUSED, "Model versions refused at load.",
                                     ["arm"], registry=r)
        self.item_cache = Counter(API_ITEM_FEATURE_CACHE, "Item-feature rows by cache result.",
                                  ["result"], registry=r)
        self.candidate_cache = Counter(API_CANDIDATE_CACHE, "Candidate lists by cache result.",
                                       ["result"], registry=r)
        self.rate_limited = Counter(API_RATE_LIMITED, "Requests refused by the rate limit (429).",
                                    ["client"], registry=r)
        self.cache_hit, self.cache_miss = self.item_cache.labels("hit"), self.item_cache.labels(
            "miss")
        self.stage = {s: self.stage_latency.labels(s) for s in STAGES}
        self._latency: dict[tuple[str, str], object] = {}
        self._requests: dict[tuple[str, str, str], object] = {}
        self._scores: dict[tuple[str, str], object] = {}
        self._served: set[tuple[str, str, str]] = set()
        for outcome in ("published", "buffered", "rejected"):
            self.events.labels(outcome)
        for client in ("subject", "address"):
            self.rate_limited.labels(client)
        for dependency in ("redis", "broker"):
            self.circuit.labels(dependency).set(0)

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method)
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = self.request_latency.labels(endpoint, method)
        child.observe(seconds)
        rkey = (endpoint, method, str(status))
        counter = self._requests.get(rkey)
        if counter is None:
            counter = self._requests[rkey] = self.requests.labels(*rkey)
        counter.inc()

    def observe_scores(self, arm: str, version: str, scores: list[float]) -> None:
        key = (arm, version)
        child = self._scores.get(key)
        if child is None:
            child = self._scores[key] = self.served_score.labels(arm, version)
        for score in scores:
            child.observe(score)

    def set_circuit(self, dependency: str, state: str) -> None:
        self.circuit.labels(dependency).set(CIRCUIT_VALUES[state])

    def set_models(self, served: list[tuple[str, str, str]]) -> None:
        """Exactly one series per served (arm, model name, version)."""
        with warnings.catch_warnings():  # feast's multi-process variable (see above)
            warnings.simplefilter("ignore", UserWarning)
            for labels in self._served - set(served):
                self.model_info.remove(*labels)
        for labels in served:
            self.model_info.labels(*labels).set(1)
        self._served = set(served)
