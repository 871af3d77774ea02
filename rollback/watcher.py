"""Decide from the monitor's metrics directly, without Prometheus and Alertmanager.

Every ``RECSYS_ROLLBACK_WATCH_INTERVAL_S`` the watcher reads the monitor's ``/metrics``
and checks, for the champion and challenger versions, the same conditions as the alert
rules ``RecsysScoreDrift`` (score PSI above ``RECSYS_ROLLBACK_WATCH_PSI_THRESHOLD``) and
``RecsysCTRBelowBaseline`` (CTR below baseline − 2σ with at least
``RECSYS_CTR_MIN_IMPRESSIONS`` impressions). A condition that holds for
``RECSYS_ROLLBACK_WATCH_FOR_S`` becomes a synthetic alert of that name for the engine,
which applies the usual policy (stale versions, cooldown, …).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from monitoring import contract as c
from rollback.alerts import Alert
from rollback.engine import RollbackEngine

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (alertname, model_version, arm)


def read_gauges(text: str, names: Iterable[str]) -> dict[str, dict[tuple[str, str], float]]:
    """{metric: {(model_version, arm): value}} for the named gauges."""
    wanted = set(names)
    out: dict[str, dict[tuple[str, str], float]] = {n: {} for n in wanted}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                key = (sample.labels.get("model_version", ""), sample.labels.get("arm", ""))
                out[sample.name][key] = sample.value
    return out


def conditions(text: str, psi_threshold: float, min_impressions: int) -> dict[Key, str]:
    """Conditions true now, each with a short description."""
    g = read_gauges(text, (c.MONITOR_SCORE_PSI, c.MONITOR_CTR, c.MONITOR_CTR_BASELINE,
                           c.MONITOR_CTR_BASELINE_STD, c.MONITOR_WINDOW_IMPRESSIONS))
    true: dict[Key, str] = {}
    for (version, arm), value in g[c.MONITOR_SCORE_PSI].items():
        if value > psi_threshold:
            true[("RecsysScoreDrift", version, arm)] = f"score PSI {value:.3f} > {psi_threshold}"
    for key, ctr in g[c.MONITOR_CTR].items():
        base, std = g[c.MONITOR_CTR_BASELINE].get(key), g[c.MONITOR_CTR_BASELINE_STD].get(key)
        shown = g[c.MONITOR_WINDOW_IMPRESSIONS].get(key, 0)
        if base is not None and std is not None and shown >= min_impressions and (
                ctr < base - 2 * std):
            true[("RecsysCTRBelowBaseline", *key)] = (
                f"CTR {ctr:.4f} < {base:.4f} - 2 * {std:.4f} over {shown:.0f} impressions")
    return true


class MetricsWatcher:
    def __init__(self, engine: RollbackEngine, url: str):
        self.engine = engine
        self.url = url
        s = engine.settings
        self.interval_s, self.for_s = s.rollback_watch_interval_s, s.rollback_watch_for_s
        self.psi_threshold, self.min_impressions = (s.rollback_watch_psi_threshold,
                                                    s.ctr_min_impressions)
        self._since: dict[Key, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self, text: str, now: float | None = None) -> list:
        """Feed one scrape; returns the engine's decisions for conditions that held long
        enough."""
        now = time.monotonic() if now is None else now
        true = conditions(text, self.psi_threshold, self.min_impressions)
        self._since = {k: self._since.get(k, now) for k in true}
        decisions = []
        for key, since in self._since.items():
            if now - since >= self.for_s:
                name, version, arm = key
                alert = Alert(status="firing", labels={"alertname": name, "model_version": version,
                                                       "arm": arm},
                              annotations={"summary": true[key]})
                decisions.append(self.engine.on_alert(alert, trigger="watcher", who="watcher"))
                self._since[key] = now  # ask again only after another full period
        return decisions

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as http:
            while not self._stop.wait(self.interval_s):
                try:
                    self.check_once(http.get(self.url).raise_for_status().text)
                except httpx.HTTPError as exc:
                    log.warning("watcher: %s unreadable: %s", self.url, exc)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="metrics-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
