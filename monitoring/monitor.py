"""The monitor's logic without Kafka: feed it raw records, ask it to evaluate.

* serving-log records (:class:`~monitoring.contract.ServingLogRecord`) fill sliding
  windows of each ranker feature (per model version) and of the served scores (per
  version and arm); :meth:`Monitor.evaluate` compares them with the version's drift
  baseline (KS and PSI);
* clickstream events feed the :class:`~monitoring.ctr.CtrTracker`.

Bad, late or unattributable input is counted in ``MONITOR_MALFORMED`` with a reason
and never raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from pydantic import ValidationError

from feature_repo.events import EventValidationError, parse_event
from monitoring.baseline import DriftBaseline
from monitoring.contract import ServingLogRecord
from monitoring.ctr import CtrBaseline, CtrTracker
from monitoring.drift import SlidingWindow, measure
from monitoring.metrics import MonitorMetrics, Snapshot
from recsys.settings import Settings

log = logging.getLogger(__name__)

CLICKSTREAM = "clickstream"
SERVING_LOG = "serving_log"
#: Feature names kept per version before its baseline says which ones exist.
MAX_FEATURES_PER_VERSION = 256
#: Records stamped further ahead of the wall clock than this are refused.
MAX_FUTURE_S = 300.0
_NOT_MALFORMED = {"impression", "click", "conversion", "duplicate", "organic", "pending",
                  "ignored_event_type", "ranked", "unranked"}


class BaselineSource(Protocol):
    def drift(self, version: str) -> DriftBaseline | None: ...
    def ctr(self, version: str) -> CtrBaseline | None: ...
    def save_ctr(self, version: str, baseline: CtrBaseline) -> None: ...


class Monitor:
    def __init__(self, settings: Settings, baselines: BaselineSource,
                 metrics: MonitorMetrics | None = None,
                 wall_clock: Callable[[], float] = time.time):
        self.settings = settings
        self.baselines = baselines
        self.metrics = metrics or MonitorMetrics()
        self.wall_clock = wall_clock
        self.newest_event_ts = 0.0
        self.ctr = CtrTracker(window_s=settings.ctr_window_s, bucket_s=settings.monitor_bucket_s,
                              min_impressions=settings.ctr_min_impressions,
                              join_grace_s=settings.ctr_join_grace_s,
                              max_requests=settings.monitor_max_requests,
                              on_baseline=self._baseline_learned)
        self.feature_windows: dict[tuple[str, str], SlidingWindow] = {}
        self.score_windows: dict[tuple[str, str], SlidingWindow] = {}
        self.snapshot = Snapshot()

    # --- clock ---------------------------------------------------------------------
    def now(self) -> float:
        if self.settings.monitor_clock == "event":
            return self.newest_event_ts or self.wall_clock()
        return self.wall_clock()

    def _observe_ts(self, ts: float) -> bool:
        """Advance the event clock; False if ``ts`` is implausibly far in the future."""
        if ts > self.wall_clock() + MAX_FUTURE_S:
            return False
        self.newest_event_ts = max(self.newest_event_ts, ts)
        return True

    def _count(self, source: str, outcome: str) -> None:
        if outcome in _NOT_MALFORMED:
            self.metrics.records.labels(source, outcome).inc()
        else:
            self.metrics.malformed.labels(source, outcome).inc()

    # --- input -----------------------------------------------------------------------
    def on_clickstream(self, raw: bytes) -> str:
        try:
            event = parse_event(raw)
        except EventValidationError:
            self._count(CLICKSTREAM, "invalid_event")
            return "invalid_event"
        self._observe_ts(event.ts.timestamp())  # parse_event already refuses future times
        outcome = self.ctr.add(event, self.now())
        self._count(CLICKSTREAM, outcome)
        return outcome

    def on_serving_log(self, raw: bytes) -> str:
        outcome = self._serving_log(raw)
        self._count(SERVING_LOG, outcome)
        return outcome

    def _serving_log(self, raw: bytes) -> str:
        try:
            record = ServingLogRecord.from_json_bytes(raw)
        except (ValidationError, ValueError, UnicodeDecodeError):
            return "invalid_record"
        n = len(record.item_ids)
        if len(record.scores) != n or any(len(v) != n for v in record.features.values()):
            return "length_mismatch"
        if record.cold_start or record.fallback or n == 0:
            return "unranked"
        ts = record.ts.timestamp()
        if not self._observe_ts(ts):
            return "future"
        now = self.now()
        scores = self._window(self.score_windows, (record.model_version, record.arm))
        if not scores.add(ts, record.scores, now):
            return "late"
        known = self.baselines.drift(record.model_version)
        for name, values in record.features.items():
            key = (record.model_version, name)
            if key not in self.feature_windows:
                if known is not None and name not in known.features:
                    continue  # a feature the version was not trained with
                if sum(1 for v, _ in self.feature_windows if v == record.model_version) >= (
                        MAX_FEATURES_PER_VERSION):
                    continue
            self._window(self.feature_windows, key).add(ts, values, now)
        return "ranked"

    def _window(self, windows: dict, key: tuple[str, str]) -> SlidingWindow:
        if key not in windows:
            s = self.settings
            windows[key] = SlidingWindow(s.drift_window_s, s.monitor_bucket_s,
                                         s.drift_max_samples, seed=len(windows))
        return windows[key]

    def _baseline_learned(self, version: str, baseline: CtrBaseline) -> None:
        log.info("CTR baseline of version %s: %.4f ± %.4f over %d impressions", version,
                 baseline.ctr, baseline.std, baseline.impressions)
        self.baselines.save_ctr(version, baseline)

    # --- evaluation ----------------------------------------------------------------
    def evaluate(self) -> Snapshot:
        """Recompute every metric for the windows ending now and publish them."""
        now = self.now()
        dropped = self.ctr.expire_pending(now)
        if dropped:
            self.metrics.malformed.labels(CLICKSTREAM, "unattributed_click").inc(dropped)
        for version in self.ctr.versions_without_baseline():
            stored = self.baselines.ctr(version)
            if stored is not None:
                self.ctr.baselines[version] = stored
        snap = Snapshot()
        for s in self.ctr.series(now):
            key = (s.model_version, s.arm)
            snap.ctr[key] = s.ctr
            snap.conversion[key] = s.conversion_rate
            snap.impressions[key] = float(s.impressions)
            if s.baseline is not None:
                snap.ctr_baseline[key] = s.baseline.ctr
                snap.ctr_baseline_std[key] = s.baseline.std
        versions = {v for v, _ in self.score_windows} | {v for v, _ in self.feature_windows}
        for version in versions:
            snap.baseline_loaded[(version,)] = float(self.baselines.drift(version) is not None)
        self._drift(self.score_windows, now, snap, scores=True)
        self._drift(self.feature_windows, now, snap, scores=False)
        self.snapshot = snap
        self.metrics.publish(snap)
        return snap

    def _drift(self, windows: dict[tuple[str, str], SlidingWindow], now: float, snap: Snapshot,
               scores: bool) -> None:
        for key in list(windows):
            window = windows[key]
            values = window.values(now)
            if not window:
                del windows[key]  # every bucket expired
                continue
            seen, missing = window.seen(now), window.missing(now)
            if seen + missing < self.settings.drift_min_samples:
                continue
            baseline = self.baselines.drift(key[0])
            if baseline is None:
                continue
            reference = baseline.scores if scores else baseline.features.get(key[1])
            if reference is None:
                continue
            m = measure(reference, values, self.settings.drift_psi_eps,
                        missing=missing / (seen + missing))
            if scores:
                snap.score_psi[key], snap.score_ks[key], snap.score_ks_pvalue[key] = (
                    m.psi, m.ks, m.ks_pvalue)
            else:
                snap.feature_psi[key], snap.feature_ks[key], snap.feature_ks_pvalue[key] = (
                    m.psi, m.ks, m.ks_pvalue)
                snap.feature_missing[key] = m.missing
