"""The rollback drill: a faulty model goes live as champion, the alert fires, it is rolled back.

Given a running stack and a running API that serves a champion, :func:`run_drill`

1. starts the monitor (``python -m monitoring``), the rollback service
   (``python -m rollback``), Prometheus and Alertmanager with second-scale intervals
   (:data:`monitoring.alerting.FAST`), all on free ports;
2. drives simulated users (:mod:`recsys.simulator`) through the API at a steady rate:
   recommendations, and their clicks back through ``POST /events``;
3. waits until the champion's served scores are measured against its baseline (no alert
   on the good model), then registers a faulty copy of the champion
   (:mod:`ranking.faulty`) and moves the ``champion`` alias to it;
4. watches the API, the monitor, Prometheus and MLflow until the alias is back on the
   previous version, the API serves it and the rollback service has verified it.

Every step is a mark on a :class:`Timeline` (seconds since the faulty version went
live). Processes it started are stopped on the way out, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mlflow.exceptions import MlflowException

from monitoring import contract
from monitoring.alerting import FAST, AlertingStack, write_configs
from ranking.faulty import register_faulty
from ranking.registry import CHAMPION, client_for, get_alias_version, set_alias
from recsys.settings import Settings, settings_env
from recsys.stack.process import ManagedProcess, free_port, wait_until

SCORE_DRIFT_ALERT = "RecsysScoreDrift"


@dataclass
class Timeline:
    """Named moments, in seconds since :attr:`zero` (the faulty version going live)."""

    zero: float | None = None
    marks: list[tuple[str, float, str]] = field(default_factory=list)

    def mark(self, what: str, detail: str = "", at: float | None = None) -> None:
        self.marks.append((what, time.time() if at is None else at, detail))

    def rows(self) -> list[tuple[str, float | None, str]]:
        zero = self.zero
        return [(what, None if zero is None else at - zero, detail)
                for what, at, detail in sorted(self.marks, key=lambda m: m[1])]

    def seconds(self, what: str) -> float | None:
        for name, at, _ in self.marks:
            if name == what and self.zero is not None:
                return at - self.zero
        return None


@dataclass
class DrillResult:
    good_version: str
    faulty_version: str
    timeline: Timeline
    quiet_before: bool  # no alert on the healthy champion before the faulty one went live
    restored: bool
    verified: bool
    traffic: dict[str, Counter]  # per served version: requests, impressions, clicks
    failed_requests: int

    @property
    def live_to_restored_s(self) -> float | None:
        return self.timeline.seconds(RESTORED)


QUIET_S = 3.0  # Prometheus evaluates every second: three chances to alert on the healthy one
HEALTHY = "healthy champion measured against its baseline"
LIVE = "faulty version live (champion alias moved)"
SERVED = "API serves the faulty version"
PSI_HIGH = "monitor: served-score PSI of the faulty version > 0.2"
FIRING = "Prometheus: RecsysScoreDrift firing"
ALIAS_BACK = "rollback service moved the champion alias back"
RESTORED = "API serves the previous version again"
VERIFIED = "rollback run verified by the rollback service"


class Traffic:
    """Simulated users visiting the API at ``rate`` visits/s in a background thread."""

    def __init__(self, simulator: Any, users: list[str], rate: float) -> None:
        self.simulator, self.users, self.rate = simulator, users, rate
        self.by_version: dict[str, Counter] = {}
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-traffic", daemon=True)

    def _run(self) -> None:
        k, start = 0, time.monotonic()
        while not self._stop.is_set():
            user = self.users[k % len(self.users)]
            try:
                items, meta, events = self.simulator.visit(user, "ranker")
            except httpx.HTTPError:
                self.failed += 1
            else:
                tally = self.by_version.setdefault(str(meta.get("model_version")), Counter())
                tally.update(requests=1, impressions=len(items),
                             clicks=sum(e["event_type"] == "click" for e in events))
            k += 1
            delay = start + k / self.rate - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def drill_settings(settings: Settings, api_url: str) -> Settings:
    """The services' settings: free ports, second-scale windows, the API to verify."""
    return settings.model_copy(update={
        "monitor_port": free_port(), "rollback_port": free_port(),
        "prometheus_port": free_port(), "alertmanager_port": free_port(),
        "api_port": int(api_url.rsplit(":", 1)[1]), "rollback_api_url": api_url,
        "monitor_eval_interval_s": 0.5, "monitor_bucket_s": 5.0, "drift_window_s": 60.0,
        # 1,500 scores = 150 responses: a response's 10 scores move together, so 200
        # scores are ~20 users, few to judge a distribution by
        "ctr_window_s": 60.0, "drift_min_samples": 1_500, "monitor_baseline_retry_s": 2.0,
        "rollback_verify_timeout_s": 60.0})


def _gauge(text: str, name: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def _most_drifted(text: str, version: str, top: int = 5) -> str:
    """``name PSI, …`` of the ``top`` features with the largest PSI for ``version``."""
    from prometheus_client.parser import text_string_to_metric_families

    values = [(sample.value, sample.labels.get("feature", "?"))
              for family in text_string_to_metric_families(text) for sample in family.samples
              if sample.name == contract.MONITOR_FEATURE_PSI
              and sample.labels.get("model_version") == version]
    return ", ".join(f"{name} {value:.2f}" for value, name in sorted(values, reverse=True)[:top])


@contextlib.contextmanager
def _services(settings: Settings, workdir: Path) -> Iterator[AlertingStack]:
    """Monitor, rollback service, Prometheus and Alertmanager, stopped on exit."""
    env = {**os.environ, **settings_env(settings)}
    run_dir = workdir / "run"
    monitor, rollback = ManagedProcess("monitor", run_dir), ManagedProcess("rollback", run_dir)
    prom_file, am_file = write_configs(settings, workdir, FAST)
    try:
        with AlertingStack(settings, workdir, prom_file, am_file) as alerting:
            monitor.start([sys.executable, "-m", "monitoring"], env)
            rollback.start([sys.executable, "-m", "rollback"], env)
            base = f"http://{settings.rollback_host}:{settings.rollback_port}"
            wait_until(lambda: httpx.get(f"{base}/health").status_code == 200, 120,
                       "rollback service", rollback)
            monitor_url = f"http://{settings.monitor_host}:{settings.monitor_port}/metrics"
            wait_until(lambda: httpx.get(monitor_url).status_code == 200, 120, "monitor",
                       monitor)
            yield alerting
    finally:
        monitor.stop(20)
        rollback.stop(20)


def _served_champion(api_url: str) -> str | None:
    models = httpx.get(f"{api_url}/models", timeout=5).json()
    return next((str(a["version"]) for a in models["arms"] if a["arm"] == CHAMPION), None)


def run_drill(settings: Settings, api_url: str, simulator: Any, users: list[str],
              workdir: Path, rate: float = 20.0, timeout_s: float = 180.0,
              log: Callable[[str], None] = print) -> DrillResult:
    """Run the drill against the API at ``api_url`` (see the module docstring)."""
    s = drill_settings(settings, api_url)
    client = client_for(s)
    name = s.registered_model_name
    good = get_alias_version(client, name, CHAMPION)
    if good is None:
        raise RuntimeError(f"{name} has no champion to drill with")
    timeline = Timeline()
    monitor_url = f"http://{s.monitor_host}:{s.monitor_port}/metrics"
    with _services(s, workdir) as alerting, Traffic(simulator, users, rate) as traffic:
        log(f"monitor, rollback service, Prometheus ({alerting.prometheus_url}) and "
            f"Alertmanager up; simulated users at {rate:g} visits/s")
        good_psi = _wait_value(lambda: _gauge(httpx.get(monitor_url).text,
                                              contract.MONITOR_SCORE_PSI, model_version=good),
                               120, "the champion's score PSI")
        quiet = _no_alert_for(alerting, good, QUIET_S)
        if not quiet:  # say where the healthy champion looks drifted
            drifted = _most_drifted(httpx.get(monitor_url).text, good)
            log(f"most drifted features of version {good}: {drifted or 'none measured'}")
        timeline.mark(HEALTHY, f"version {good}: PSI {good_psi:.3f}, "
                               f"{'no alert' if quiet else 'ALERTED'} for {QUIET_S:g} s")
        log(f"champion version {good}: served-score PSI {good_psi:.3f} against its baseline; "
            f"{'no alert' if quiet else 'an alert fired'} in {QUIET_S:g} s")
        faulty = register_faulty(s, good)
        log(f"registered faulty version {faulty} (a copy of {good} with its item factors "
            "permuted and negated); moving the champion alias to it")
        set_alias(client, name, CHAMPION, faulty)
        timeline.zero = time.time()
        timeline.mark(LIVE, f"version {faulty}", timeline.zero)
        _watch(s, api_url, monitor_url, alerting, client, good, faulty, timeline, timeout_s)
    restored = timeline.seconds(RESTORED) is not None
    verified = timeline.seconds(VERIFIED) is not None
    return DrillResult(good, faulty, timeline, quiet, restored, verified, traffic.by_version,
                       traffic.failed)


def _no_alert_for(alerting: AlertingStack, version: str, seconds: float) -> bool:
    """No score-drift alert (pending or firing) about ``version`` for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alerts = httpx.get(f"{alerting.prometheus_url}/api/v1/alerts", timeout=5).json()
        if any(a["labels"].get("alertname") == SCORE_DRIFT_ALERT
               and a["labels"].get("model_version") == version
               for a in alerts["data"]["alerts"]):
            return False
        time.sleep(0.25)
    return True


def _wait_value(read: Callable[[], float | None], timeout_s: float, what: str) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            value = read()
            if value is not None:
                return value
        time.sleep(0.25)
    raise TimeoutError(f"no value for {what} after {timeout_s:.0f} s")


def _watch(s: Settings, api_url: str, monitor_url: str, alerting: AlertingStack, client: Any,
           good: str, faulty: str, timeline: Timeline, timeout_s: float) -> None:
    """Poll every part until the rollback is verified (or the time is up)."""
    seen: set[str] = set()
    experiment = client.get_experiment_by_name(s.rollback_experiment)
    deadline = time.monotonic() + timeout_s
    checks: list[tuple[str, Callable[[], str | None]]] = [
        (SERVED, lambda: "" if _served_champion(api_url) == faulty else None),
        (PSI_HIGH, lambda: (f"PSI {v:.2f}" if (v := _gauge(
            httpx.get(monitor_url).text, contract.MONITOR_SCORE_PSI,
            model_version=faulty)) is not None and v > 0.2 else None)),
        (FIRING, lambda: _firing(alerting, faulty)),
        (ALIAS_BACK, lambda: (f"version {good}" if get_alias_version(
            client, s.registered_model_name, CHAMPION) == good else None)),
        (RESTORED, lambda: ("" if ALIAS_BACK in seen and _served_champion(api_url) == good
                            else None)),
        (VERIFIED, lambda: _verified(client, s, experiment, faulty)),
    ]
    while time.monotonic() < deadline and VERIFIED not in seen:
        for what, check in checks:
            if what in seen:
                continue
            # a part that fails now (a request, the registry) is asked again next round
            with contextlib.suppress(httpx.HTTPError, MlflowException, ValueError,
                                     KeyError):
                detail = check()
                if detail is not None:
                    seen.add(what)
                    timeline.mark(what, detail)
        time.sleep(0.1)


def _firing(alerting: AlertingStack, faulty: str) -> str | None:
    alerts = httpx.get(f"{alerting.prometheus_url}/api/v1/alerts", timeout=5).json()
    for alert in alerts["data"]["alerts"]:
        labels = alert["labels"]
        if (labels.get("alertname") == SCORE_DRIFT_ALERT and alert["state"] == "firing"
                and labels.get("model_version") == faulty):
            return f"active since {alert['activeAt']}"
    return None


def _verified(client: Any, s: Settings, experiment: Any, faulty: str) -> str | None:
    if experiment is None:
        experiment = client.get_experiment_by_name(s.rollback_experiment)
        if experiment is None:
            return None
    for run in client.search_runs([experiment.experiment_id], max_results=20):
        tags = run.data.tags
        if tags.get("from_version") == faulty and tags.get("verification") == "ok":
            return f"MLflow run {run.info.run_id} ({tags.get('trigger')}, " \
                   f"{tags.get('alertname')})"
    return None
