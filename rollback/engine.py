"""Decide whether an alert warrants a rollback, do it, record it, verify it.

Policy (docs/monitoring.md has the long form):

1. only ``firing`` alerts whose name is in ``RECSYS_ROLLBACK_ALERTS`` act;
2. an alert with a ``model_version`` label acts only on that version: the champion is
   rolled back to the last stable version, a challenger loses its alias; an alert about
   a version that is no longer served is stale and ignored (so repeated or concurrent
   alerts about one bad model roll back once, not twice);
3. an alert without ``model_version`` (latency, error rate) rolls back the champion only
   if it became champion within ``RECSYS_ROLLBACK_UNLABELLED_MAX_AGE_S``;
4. for ``RECSYS_ROLLBACK_COOLDOWN_S`` after a rollback, alerts are only recorded;
5. manual rollbacks skip 1-4.

The alias moves before the webhook is answered; the check that the API serves the
restored version (and a gradual shift) runs in a background thread and completes the
MLflow run.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter

from monitoring.contract import ROLLBACKS
from recsys.settings import Settings
from rollback import records
from rollback.alerts import Alert, AlertmanagerWebhook
from rollback.registry import CHALLENGER, CHAMPION, READY, Registry, iso
from rollback.verify import Verification, verify_gone, verify_served

log = logging.getLogger(__name__)


class RollbackRefused(ValueError):
    """A manual rollback that cannot be done (no champion, bad target, …)."""


@dataclass
class Decision:
    #: rolled_back | shifting | challenger_removed | ignored | no_stable_version | failed
    action: str
    reason: str
    trigger: str
    alertname: str = ""
    from_version: str | None = None
    to_version: str | None = None
    run_id: str | None = None
    at: str = field(default_factory=lambda: iso(datetime.now(UTC)))

    def as_dict(self) -> dict:
        return asdict(self)


class RollbackEngine:
    def __init__(self, settings: Settings, client=None,
                 verifier: Callable[..., Verification] = verify_served,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        if client is None:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
        self.settings = settings
        self.client = client
        self.registry = Registry(client, settings.registered_model_name)
        self.verifier = verifier
        self.clock = clock
        self.decisions: deque[Decision] = deque(maxlen=200)
        self.metrics = CollectorRegistry()
        self.counter = Counter(ROLLBACKS, "Rollback decisions by trigger and outcome.",
                               ["trigger", "outcome"], registry=self.metrics)
        self._lock = threading.Lock()
        self._last_rollback: datetime | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # --- entry points ----------------------------------------------------------------
    def on_webhook(self, payload: AlertmanagerWebhook) -> list[Decision]:
        who = f"alertmanager/{payload.receiver}" if payload.receiver else "alertmanager"
        log.info("webhook from %s: %d alert(s) %s", who, len(payload.alerts),
                 sorted({a.name for a in payload.alerts}))
        return [self.on_alert(alert, trigger="alertmanager", who=who) for alert in payload.alerts]

    def on_alert(self, alert: Alert, trigger: str, who: str) -> Decision:
        with self._lock:
            try:
                decision = self._on_alert(alert, trigger, who)
            except Exception as exc:  # MLflow down, …: answer, count, never crash the service
                log.exception("rollback for %s failed", alert.name)
                decision = Decision("failed", f"{type(exc).__name__}: {exc}", trigger, alert.name)
            return self._note(decision)

    def manual(self, who: str, reason: str, to_version: str | None = None,
               gradual: bool = False) -> Decision:
        with self._lock:
            champion = self.registry.alias(CHAMPION)
            if champion is None:
                raise RollbackRefused("the registered model has no champion alias")
            if to_version is not None:
                self._check_target(to_version, champion)
            decision = self._rollback(who=who, why=f"manual: {reason}", trigger="manual",
                                      alert=None, champion=champion, to_version=to_version,
                                      gradual=gradual)
            return self._note(decision)

    # --- policy --------------------------------------------------------------------
    def _on_alert(self, alert: Alert, trigger: str, who: str) -> Decision:
        name = alert.name

        def ignore(reason: str) -> Decision:
            return Decision("ignored", reason, trigger, name)

        if alert.status != "firing":
            return ignore(f"alert is {alert.status}")
        if name not in self.settings.rollback_alert_names:
            return ignore(f"{name!r} is not in RECSYS_ROLLBACK_ALERTS")
        aliases = self.registry.aliases()
        champion, challenger = aliases.get(CHAMPION), aliases.get(CHALLENGER)
        if champion is None:
            return ignore("the registered model has no champion alias")
        version = alert.labels.get("model_version")
        now = self.clock()
        if version:
            if version != champion and version == challenger:
                return self._remove_challenger(alert, trigger, who, challenger)
            if version != champion:
                return ignore(f"stale: version {version} is not served (champion is {champion})")
        else:
            since = self.registry.version(champion).champion_since
            if since is None:
                return ignore(f"champion {champion} has no champion_since tag; an alert "
                              "naming no model version does not roll it back")
            age = (now - since).total_seconds()
            if age > self.settings.rollback_unlabelled_max_age_s:
                return ignore(f"champion {champion} has served for {age:.0f} s; an alert naming "
                              "no model version does not roll it back")
        cooling = self._cooldown_left(champion, now)
        if cooling > 0:
            return ignore(f"cooldown: {cooling:.0f} s left after the last rollback")
        why = f"{name} {json.dumps(alert.labels, sort_keys=True)}"
        return self._rollback(who=who, why=why, trigger=trigger, alert=alert, champion=champion,
                              to_version=None, gradual=False)

    def _cooldown_left(self, champion: str, now: datetime) -> float:
        last = self._last_rollback
        restored = self.registry.version(champion).restored_at  # survives a restart
        if restored is not None and (last is None or restored > last):
            last = restored
        if last is None:
            return 0.0
        return self.settings.rollback_cooldown_s - (now - last).total_seconds()

    def _check_target(self, target: str, champion: str) -> None:
        if target == champion:
            raise RollbackRefused(f"version {target} is already the champion")
        try:
            info = self.registry.version(target)
        except Exception as exc:
            raise RollbackRefused(f"to_version: version {target} not found ({exc})") from None
        if info.status != READY:
            raise RollbackRefused(f"to_version: version {target} is {info.status}, not READY")
        if info.rolled_back:
            raise RollbackRefused(f"to_version: version {target} was rolled back as bad; delete "
                                  "its 'rolled_back' tag first to use it again")

    # --- actions -------------------------------------------------------------------
    def _record(self, *, who: str, why: str, trigger: str, alert: Alert | None,
                from_version: str | None, to_version: str | None, outcome: str,
                gradual: bool = False) -> records.RollbackRecord:
        return records.RollbackRecord(
            who=who, why=why, trigger=trigger, when=iso(self.clock()),
            from_version=from_version, to_version=to_version, outcome=outcome,
            alertname=alert.name if alert else "", alert_labels=dict(alert.labels) if alert else {},
            model_name=self.registry.name, gradual=gradual,
            alert_started_at=iso(alert.startsAt) if alert and alert.startsAt else "")

    def _rollback(self, *, who: str, why: str, trigger: str, alert: Alert | None, champion: str,
                  to_version: str | None, gradual: bool) -> Decision:
        name = alert.name if alert else ""
        target = to_version or self.registry.last_stable(exclude={champion})
        experiment = self.settings.rollback_experiment
        if target is None:
            record = self._record(who=who, why=why, trigger=trigger, alert=alert,
                                  from_version=champion, to_version=None,
                                  outcome="no_stable_version")
            run_id = records.start_record(self.client, experiment, record)
            records.finish_record(self.client, run_id, "skipped", "no stable version", ok=False)
            return Decision("no_stable_version", f"no earlier champion to return to from "
                            f"{champion}", trigger, name, champion, None, run_id)
        outcome = "shifting" if gradual else "rolled_back"
        record = self._record(who=who, why=why, trigger=trigger, alert=alert,
                              from_version=champion, to_version=target, outcome=outcome,
                              gradual=gradual)
        run_id = records.start_record(self.client, experiment, record)
        when = self.clock()
        self._last_rollback = when
        if gradual:
            self._background(self._shift, run_id, champion, target, why)
        else:
            try:
                self.registry.set_champion(target, when)
                self.registry.mark_rolled_back(champion, why, run_id, when)
            except Exception as exc:
                records.finish_record(self.client, run_id, "failed", f"alias not moved: {exc}",
                                      ok=False)
                raise
            if alert is not None and alert.startsAt is not None:
                records.log_metric(self.client, run_id, "seconds_since_alert_start",
                                   (self.clock() - alert.startsAt).total_seconds())
            self._background(self._verify, run_id, CHAMPION, target)
        log.warning("%s: champion %s -> %s (%s) by %s", outcome, champion, target, why, who)
        return Decision(outcome, why, trigger, name, champion, target, run_id)

    def _remove_challenger(self, alert: Alert, trigger: str, who: str, challenger: str
                           ) -> Decision:
        why = f"{alert.name} {json.dumps(alert.labels, sort_keys=True)}"
        record = self._record(who=who, why=why, trigger=trigger, alert=alert,
                              from_version=challenger, to_version=None,
                              outcome="challenger_removed")
        run_id = records.start_record(self.client, self.settings.rollback_experiment, record)
        self.registry.set_challenger(None)
        self.registry.mark_rolled_back(challenger, why, run_id, self.clock())
        self._background(self._verify_gone, run_id, CHALLENGER, challenger)
        return Decision("challenger_removed", why, trigger, alert.name, challenger, None, run_id)

    # --- background: verification and gradual shift ---------------------------------
    def _background(self, target: Callable, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _finish(self, run_id: str, result: Verification | None) -> None:
        try:
            if result is None:
                records.finish_record(self.client, run_id, "skipped", "RECSYS_ROLLBACK_VERIFY "
                                      "is off")
            else:
                records.finish_record(self.client, run_id, result.label, result.detail,
                                      result.seconds, ok=result.ok)
        except Exception:
            log.exception("could not complete rollback run %s", run_id)

    def _check(self, version: str, arm: str, share: float | None = None) -> Verification | None:
        if not self.settings.rollback_verify:
            return None
        return self.verifier(self.settings.rollback_api_base_url, version, arm=arm,
                             timeout_s=self.settings.rollback_verify_timeout_s, share=share)

    def _verify(self, run_id: str, arm: str, version: str) -> None:
        result = self._check(version, arm)
        self._finish(run_id, result)
        if result is not None and not result.ok:
            log.error("rollback run %s: API does not serve %s on %s: %s", run_id, version, arm,
                      result.detail)

    def _verify_gone(self, run_id: str, arm: str, version: str) -> None:
        result = None
        if self.settings.rollback_verify:
            result = verify_gone(self.settings.rollback_api_base_url, version, arm=arm,
                                 timeout_s=self.settings.rollback_verify_timeout_s)
        self._finish(run_id, result)

    def _shift(self, run_id: str, champion: str, target: str, why: str) -> None:
        """Route a growing share of users to ``target`` as challenger, then make it champion."""
        try:
            previous_challenger = self.registry.alias(CHALLENGER)
            previous_share = self.registry.challenger_share()
            self.registry.set_challenger(target)
            steps = []
            for share in self.settings.rollback_shift_steps:
                self.registry.set_challenger_share(share)
                records.log_metric(self.client, run_id, "challenger_share", share)
                result = self._check(target, CHALLENGER, share)
                steps.append(f"{share:g}:{result.label if result else 'skipped'}")
                if self._stop.wait(self.settings.rollback_shift_step_s):
                    break
            when = self.clock()
            self.registry.set_champion(target, when)
            self.registry.mark_rolled_back(champion, why, run_id, when)
            keep = previous_challenger not in (None, champion, target)
            self.registry.set_challenger(previous_challenger if keep else None)
            self.registry.set_challenger_share(previous_share)
            self.client.set_tag(run_id, "shift_steps", ",".join(steps))
            records.set_outcome(self.client, run_id, "rolled_back")
        except Exception:
            log.exception("gradual shift of run %s failed", run_id)
            records.finish_record(self.client, run_id, "failed", "gradual shift failed", ok=False)
            return
        self._verify(run_id, CHAMPION, target)

    # --- bookkeeping ---------------------------------------------------------------
    def warm_up(self) -> None:
        """Make the first MLflow calls now (the first one in a process takes seconds of
        lazy set-up) so that the first alert is handled at full speed."""

        def touch() -> None:
            try:
                self.registry.aliases()
                records.history(self.client, self.settings.rollback_experiment, 1)
            except Exception as exc:  # MLflow not up yet: the first alert will retry
                log.warning("MLflow warm-up failed: %s", exc)

        self._background(touch)

    def _note(self, decision: Decision) -> Decision:
        self.decisions.appendleft(decision)
        self.counter.labels(decision.trigger, decision.action).inc()
        if decision.action == "ignored":
            log.info("alert %s ignored: %s", decision.alertname, decision.reason)
        return decision

    def history(self, limit: int = 20) -> list[dict]:
        return records.history(self.client, self.settings.rollback_experiment, limit)

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait for background verifications and shifts (tests, shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self.wait_idle(timeout_s)
