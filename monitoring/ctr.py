"""CTR and conversion per model version and arm, from impressions and clicks.

Impressions carry ``request_id``, ``model_version`` and ``context.arm``; a later click
(or add-to-cart / purchase) carrying the same ``request_id`` is attributed to that
response's version and arm. Counts live in time buckets of a sliding window:

* CTR = distinct (request, item) pairs engaged (click, add_to_cart or purchase) in the
  window / impressions in the window;
* conversion = distinct (request, item) pairs purchased in the window / impressions.

Each model version's baseline comes from its first window, ``[first impression,
first impression + window_s)`` with all arms pooled: ``p0 = clicks / impressions`` and
``std = sqrt(p0 (1 - p0) / n0)``, the standard error of one window's CTR at that rate.
If that window held fewer than ``min_impressions`` impressions (sparse traffic), the
first later sliding window that holds enough is used instead.
Clicks whose impression has not arrived yet wait ``join_grace_s``; then they are
counted as unattributed. Nothing here raises on bad input: callers get a reason.
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from feature_repo.events import ClickstreamEvent, EventType

ENGAGEMENTS = {EventType.CLICK.value, EventType.ADD_TO_CART.value, EventType.PURCHASE.value}
CONVERSION = EventType.PURCHASE.value

SeriesKey = tuple[str, str]  # (model_version, arm)


@dataclass(frozen=True)
class CtrBaseline:
    ctr: float
    std: float
    impressions: int

    @classmethod
    def of(cls, clicks: int, impressions: int) -> CtrBaseline:
        p = clicks / impressions
        return cls(ctr=p, std=math.sqrt(p * (1 - p) / impressions), impressions=impressions)


@dataclass
class _Counts:
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0


@dataclass(frozen=True)
class CtrSeries:
    model_version: str
    arm: str
    impressions: int
    clicks: int
    conversions: int
    baseline: CtrBaseline | None

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.impressions if self.impressions else 0.0


@dataclass
class _Served:
    model_version: str
    arm: str


@dataclass
class _Pending:
    event: ClickstreamEvent
    ts: float
    waiting_since: float


@dataclass
class CtrTracker:
    window_s: float
    bucket_s: float
    min_impressions: int
    join_grace_s: float
    max_requests: int = 200_000
    #: called once when a version's baseline is learned (e.g. to save it in MLflow)
    on_baseline: Callable[[str, CtrBaseline], None] | None = None
    _buckets: dict[SeriesKey, dict[int, _Counts]] = field(
        default_factory=lambda: defaultdict(dict))
    _requests: OrderedDict[str, _Served] = field(default_factory=OrderedDict)
    _engaged: OrderedDict[tuple[str, str, str], None] = field(default_factory=OrderedDict)
    _seen_events: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _pending: OrderedDict[str, list[_Pending]] = field(default_factory=OrderedDict)
    _first_seen: dict[str, float] = field(default_factory=dict)
    _first_window: dict[str, _Counts] = field(default_factory=dict)
    baselines: dict[str, CtrBaseline] = field(default_factory=dict)

    # --- input ---------------------------------------------------------------------
    def add(self, event: ClickstreamEvent, now: float) -> str:
        """Count one event; returns what happened: ``impression``, ``click``, … or a reason
        it was not counted (``late``, ``duplicate``, ``missing_arm``, ``pending``, …)."""
        if event.event_id in self._seen_events:
            return "duplicate"
        _remember(self._seen_events, event.event_id, None, self.max_requests * 4)
        ts = event.ts.timestamp()
        if self._is_late(ts, now):
            return "late"
        if event.event_type == EventType.IMPRESSION.value:
            return self._impression(event, ts, now)
        if event.event_type not in ENGAGEMENTS:
            return "ignored_event_type"
        if not event.request_id:
            return "organic"  # not an answer to a recommendation
        served = self._requests.get(event.request_id)
        if served is None:
            waiting = self._pending.setdefault(event.request_id, [])
            waiting.append(_Pending(event, ts, now))
            self._pending.move_to_end(event.request_id)
            while len(self._pending) > self.max_requests:
                self._pending.popitem(last=False)
            return "pending"
        return self._engagement(event, ts, served, now)

    def _impression(self, event: ClickstreamEvent, ts: float, now: float) -> str:
        arm = (event.context or {}).get("arm")
        if not event.request_id:
            return "impression_missing_request_id"
        if not event.model_version:
            return "impression_missing_model_version"
        if not isinstance(arm, str) or not arm:
            return "impression_missing_arm"
        served = _Served(event.model_version, arm)
        _remember(self._requests, event.request_id, served, self.max_requests)
        self._first_seen.setdefault(event.model_version, ts)
        self._counts((served.model_version, arm), ts).impressions += 1
        if first := self._in_first_window(served.model_version, ts):
            first.impressions += 1
        for waiting in self._pending.pop(event.request_id, []):
            self._engagement(waiting.event, waiting.ts, served, now)
        return "impression"

    def _engagement(self, event: ClickstreamEvent, ts: float, served: _Served, now: float
                    ) -> str:
        if self._is_late(ts, now):
            return "late"
        key = (event.request_id or "", event.item_id, event.event_type)
        click_key = (event.request_id or "", event.item_id, "engaged")
        counts = self._counts((served.model_version, served.arm), ts)
        outcome = "duplicate"
        if click_key not in self._engaged:
            _remember(self._engaged, click_key, None, self.max_requests * 4)
            counts.clicks += 1
            if first := self._in_first_window(served.model_version, ts):
                first.clicks += 1
            outcome = "click"
        if event.event_type == CONVERSION and key not in self._engaged:
            _remember(self._engaged, key, None, self.max_requests * 4)
            counts.conversions += 1
            outcome = "conversion"
        return outcome

    # --- windows -------------------------------------------------------------------
    def _in_first_window(self, version: str, ts: float) -> _Counts | None:
        first = self._first_seen.get(version)
        if first is None or version in self.baselines or not first <= ts < first + self.window_s:
            return None
        return self._first_window.setdefault(version, _Counts())

    def _index(self, ts: float) -> int:
        return math.floor(ts / self.bucket_s)

    def _n_buckets(self) -> int:
        return max(1, math.ceil(self.window_s / self.bucket_s))

    def _is_late(self, ts: float, now: float) -> bool:
        return self._index(ts) <= self._index(now) - self._n_buckets()

    def _counts(self, key: SeriesKey, ts: float) -> _Counts:
        return self._buckets[key].setdefault(self._index(ts), _Counts())

    def expire_pending(self, now: float) -> int:
        """Drop clicks that waited longer than the grace period; returns how many."""
        dropped = 0
        for request_id in list(self._pending):
            still = [p for p in self._pending[request_id]
                     if now - p.waiting_since <= self.join_grace_s]
            dropped += len(self._pending[request_id]) - len(still)
            if still:
                self._pending[request_id] = still
            else:
                del self._pending[request_id]
        return dropped

    def series(self, now: float) -> list[CtrSeries]:
        """Every (version, arm) with impressions in the window ending at ``now``; learns
        baselines whose first window is complete."""
        newest, n = self._index(now), self._n_buckets()
        totals: dict[SeriesKey, _Counts] = {}
        for key, buckets in list(self._buckets.items()):
            for index in [i for i in buckets if i <= newest - n]:
                del buckets[index]
            if not buckets:
                del self._buckets[key]
                continue
            total = _Counts()
            for index, c in buckets.items():
                if index <= newest:
                    total.impressions += c.impressions
                    total.clicks += c.clicks
                    total.conversions += c.conversions
            totals[key] = total
        self._learn_baselines(totals, now)
        return [CtrSeries(v, arm, c.impressions, c.clicks, c.conversions,
                          self.baselines.get(v))
                for (v, arm), c in sorted(totals.items()) if c.impressions > 0]

    def _learn_baselines(self, totals: dict[SeriesKey, _Counts], now: float) -> None:
        pooled: dict[str, _Counts] = defaultdict(_Counts)
        for (version, _), c in totals.items():
            pooled[version].impressions += c.impressions
            pooled[version].clicks += c.clicks
        for version, first in list(self._first_seen.items()):
            if version in self.baselines or now < first + self.window_s:
                continue
            for c in (self._first_window.get(version), pooled.get(version)):
                if c is not None and c.impressions >= self.min_impressions:
                    baseline = CtrBaseline.of(c.clicks, c.impressions)
                    self.baselines[version] = baseline
                    self._first_window.pop(version, None)
                    if self.on_baseline:
                        self.on_baseline(version, baseline)
                    break

    def versions_without_baseline(self) -> list[str]:
        return [v for v in self._first_seen if v not in self.baselines]

    @property
    def pending_count(self) -> int:
        return sum(len(v) for v in self._pending.values())


def _remember(cache: OrderedDict, key, value, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)
