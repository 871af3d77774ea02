"""The rollback service against a real MLflow (stack fixture) and a real HTTP stand-in
of the API (it follows the MLflow aliases like the API does, answers /health, /models
and /metrics with the API_* names)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import SecretStr
from typer.testing import CliRunner

from monitoring import contract as c
from monitoring.baseline import DriftBaseline
from recsys.settings import Settings, get_settings, settings_env
from rollback.alerts import Alert
from rollback.app import create_app
from rollback.engine import RollbackEngine, RollbackRefused
from rollback.registry import (
    CHALLENGER_SHARE_TAG,
    CHAMPION_SINCE_TAG,
    ROLLED_BACK_TAG,
    Registry,
    iso,
)

pytestmark = pytest.mark.integration


# --- a real HTTP stand-in of the API -----------------------------------------------
class ApiStandIn:
    """Polls the MLflow aliases (and the ``challenger_share`` tag) like the API and serves
    ``GET /health``, ``GET /models`` and ``GET /metrics`` per the API contract."""

    def __init__(self, tracking_uri: str, model_name: str, poll_s: float = 0.1):
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.model_name = model_name
        self.poll_s = poll_s
        self.follow = True  # False: a stuck API that never swaps
        self.served: dict[str, str | None] = {"champion": None, "challenger": None}
        self.share = 0.1
        self.registry = CollectorRegistry()
        self.requests = Counter(c.API_REQUESTS, "requests", ["endpoint", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram(c.API_REQUEST_LATENCY, "latency", ["endpoint", "method"],
                                 registry=self.registry)
        self.registry.register(_ModelInfo(self))
        self._stop = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, kind = generate_latest(stand_in.registry), "text/plain"
                else:
                    payload = stand_in.answer(self.path)
                    if payload is None:
                        self.send_error(404)
                        return
                    body, kind = json.dumps(payload).encode(), "application/json"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def answer(self, path: str) -> dict | None:
        if path == "/health":
            return {"status": "ok"}
        if path == "/models":
            arms = [{"arm": "champion", "version": self.served["champion"],
                     "loaded_at": iso(datetime.now(UTC)), "share": 1 - self.share,
                     "source": "stand-in"}]
            if self.served["challenger"]:
                arms.append({"arm": "challenger", "version": self.served["challenger"],
                             "loaded_at": iso(datetime.now(UTC)), "share": self.share,
                             "source": "stand-in"})
            return {"registered_model": self.model_name, "aliases": dict(self.served),
                    "arms": arms, "refused": []}
        return None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            if not self.follow:
                continue
            try:
                model = self.client.get_registered_model(self.model_name)
            except Exception:
                continue
            aliases = {k: str(v) for k, v in (model.aliases or {}).items()}
            self.served = {"champion": aliases.get("champion"),
                           "challenger": aliases.get("challenger")}
            share = (model.tags or {}).get(CHALLENGER_SHARE_TAG)
            self.share = float(share) if share and self.served["challenger"] else (
                0.1 if self.served["challenger"] else 0.0)


    def __enter__(self) -> ApiStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._poll, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


class _ModelInfo(Collector):
    def __init__(self, api: ApiStandIn):
        self.api = api

    def collect(self):
        family = GaugeMetricFamily(c.API_MODEL_INFO, "served", labels=["arm", "model_name",
                                                                      "version"])
        for arm, version in self.api.served.items():
            if version:
                family.add_metric([arm, self.api.model_name, version], 1)
        yield family


# --- registry fixtures ---------------------------------------------------------------
def drift_baseline(seed: int = 0) -> DriftBaseline:
    rng = np.random.default_rng(seed)
    return DriftBaseline.build({"item_ctr": rng.beta(2, 20, 5_000)}, rng.normal(0, 1, 5_000))


def register(client: MlflowClient, name: str, tmp: Path, champion_since: datetime | None = None,
             baseline: DriftBaseline | None = None) -> str:
    """A model version laid out like the ranking module's: model files and
    drift_baseline.json side by side under the version's source."""
    exp = client.get_experiment_by_name("test-ranker") or None
    exp_id = exp.experiment_id if exp else client.create_experiment("test-ranker")
    run = client.create_run(exp_id)
    folder = tmp / uuid.uuid4().hex
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not really onnx")
    (baseline or drift_baseline()).save(folder)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    with contextlib.suppress(Exception):  # exists already
        client.create_registered_model(name)
    mv = client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id)
    if champion_since is not None:
        client.set_model_version_tag(name, mv.version, CHAMPION_SINCE_TAG, iso(champion_since))
    return str(mv.version)


def alert(name: str, status: str = "firing", **labels: str) -> Alert:
    return Alert(status=status, labels={"alertname": name, **labels},
                 startsAt=datetime.now(UTC) - timedelta(seconds=5))


@pytest.fixture
def env(stack_settings: Settings, tmp_path: Path):
    """Own registered model + rollback experiment; v1 was champion, v2 is champion now."""
    name = f"ranker-{uuid.uuid4().hex[:8]}"
    settings = stack_settings.model_copy(update={
        "registered_model_name": name, "rollback_experiment": f"rollbacks-{name}",
        "rollback_verify_timeout_s": 10.0, "rollback_cooldown_s": 300.0})
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    now = datetime.now(UTC)
    v1 = register(client, name, tmp_path, champion_since=now - timedelta(days=3))
    v2 = register(client, name, tmp_path, champion_since=now - timedelta(minutes=5))
    client.set_registered_model_alias(name, "champion", v2)
    with ApiStandIn(settings.mlflow_tracking_uri, name) as api:
        settings = settings.model_copy(update={"rollback_api_url": api.url})
        yield settings, client, api, (v1, v2)


def champion(client: MlflowClient, name: str) -> str:
    return str(client.get_model_version_by_alias(name, "champion").version)


# --- tests ---------------------------------------------------------------------------
def test_last_stable_skips_bad_never_champion_and_current(stack_settings: Settings,
                                                          tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=stack_settings.mlflow_tracking_uri)
    name = f"ranker-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    v1 = register(client, name, tmp_path, champion_since=now - timedelta(days=9))
    v2 = register(client, name, tmp_path, champion_since=now - timedelta(days=5))
    v3 = register(client, name, tmp_path, champion_since=now - timedelta(days=2))
    v4 = register(client, name, tmp_path)  # never champion
    v5 = register(client, name, tmp_path, champion_since=now)
    client.set_model_version_tag(name, v3, ROLLED_BACK_TAG, "true")
    registry = Registry(client, name)
    assert registry.last_stable(exclude={v5}) == v2
    assert registry.last_stable(exclude={v5, v2}) == v1
    assert registry.last_stable(exclude={v5, v2, v1}) is None
    assert v4 not in {v1, v2, v3, v5}


def test_an_alert_on_the_champion_rolls_it_back_records_and_verifies(env) -> None:
    settings, client, api, (v1, v2) = env
    name = settings.registered_model_name
    engine = RollbackEngine(settings, client)
    started = time.monotonic()
    decision = engine.on_alert(alert("RecsysScoreDrift", model_version=v2, arm="champion"),
                               trigger="alertmanager", who="alertmanager/rollback")
    moved_s = time.monotonic() - started
    assert (decision.action, decision.from_version, decision.to_version) == ("rolled_back", v2,
                                                                              v1)
    assert champion(client, name) == v1
    assert moved_s < 5
    bad = client.get_model_version(name, v2).tags
    assert bad[ROLLED_BACK_TAG] == "true" and bad["rollback_run_id"] == decision.run_id
    assert "RecsysScoreDrift" in bad["rolled_back_reason"]
    engine.wait_idle()
    run = client.get_run(decision.run_id)
    tags, params = run.data.tags, run.data.params
    assert (tags["who"], tags["from_version"], tags["to_version"]) == (
        "alertmanager/rollback", v2, v1)
    assert tags["trigger"] == "alertmanager" and tags["alertname"] == "RecsysScoreDrift"
    assert json.loads(tags["alert_labels"])["model_version"] == v2
    assert params["why"].startswith("RecsysScoreDrift") and params["when"] == tags["when"]
    assert tags["verification"] == "ok" and run.info.status == "FINISHED"
    assert run.data.metrics["seconds_since_alert_start"] >= 5
    assert api.served["champion"] == v1

    # the same alert again (Alertmanager repeats), and another one about v2: stale
    again = engine.on_alert(alert("RecsysCTRBelowBaseline", model_version=v2, arm="champion"),
                            trigger="alertmanager", who="am")
    assert again.action == "ignored" and again.reason.startswith("stale")
    # an alert about the restored champion right away: cooldown, no second rollback
    cooled = engine.on_alert(alert("RecsysScoreDrift", model_version=v1), "alertmanager", "am")
    assert cooled.action == "ignored" and cooled.reason.startswith("cooldown")
    assert champion(client, name) == v1
    history = engine.history()
    assert [h["run_id"] for h in history] == [decision.run_id]


def test_alert_filters(env) -> None:
    settings, client, _, (_, v2) = env
    engine = RollbackEngine(settings, client)
    resolved = engine.on_alert(alert("RecsysScoreDrift", status="resolved", model_version=v2),
                               "alertmanager", "am")
    assert resolved.action == "ignored" and "resolved" in resolved.reason
    other = engine.on_alert(alert("RecsysFeatureDrift", model_version=v2), "alertmanager", "am")
    assert other.action == "ignored" and "RECSYS_ROLLBACK_ALERTS" in other.reason
    assert champion(client, settings.registered_model_name) == v2
    assert engine.history() == []


def test_unlabelled_alerts_roll_back_only_a_recent_champion(env) -> None:
    settings, client, _, (v1, _v2) = env
    name = settings.registered_model_name
    strict = RollbackEngine(settings.model_copy(update={"rollback_unlabelled_max_age_s": 60}),
                            client)
    old = strict.on_alert(alert("RecsysHighErrorRate"), "alertmanager", "am")
    assert old.action == "ignored" and "has served for" in old.reason  # champion for 5 min
    engine = RollbackEngine(settings, client)  # 1 h
    recent = engine.on_alert(alert("RecsysHighErrorRate"), "alertmanager", "am")
    assert (recent.action, recent.to_version) == ("rolled_back", v1)
    assert champion(client, name) == v1
    engine.wait_idle()


def test_a_bad_challenger_loses_its_alias(env) -> None:
    settings, client, api, (_v1, v2) = env
    name = settings.registered_model_name
    v3 = register(client, name, Path(settings.state_dir))
    client.set_registered_model_alias(name, "challenger", v3)
    engine = RollbackEngine(settings, client)
    decision = engine.on_alert(alert("RecsysCTRBelowBaseline", model_version=v3,
                                     arm="challenger"), "alertmanager", "am")
    assert decision.action == "challenger_removed" and decision.from_version == v3
    assert "challenger" not in client.get_registered_model(name).aliases
    assert champion(client, name) == v2
    engine.wait_idle()
    assert client.get_run(decision.run_id).data.tags["verification"] == "ok"
    assert api.served["challenger"] is None


def test_no_stable_version_is_recorded_and_leaves_the_alias(env) -> None:
    settings, client, _, (v1, v2) = env
    name = settings.registered_model_name
    client.set_model_version_tag(name, v1, ROLLED_BACK_TAG, "true")
    engine = RollbackEngine(settings, client)
    decision = engine.on_alert(alert("RecsysScoreDrift", model_version=v2), "alertmanager", "am")
    assert decision.action == "no_stable_version"
    assert champion(client, name) == v2
    run = client.get_run(decision.run_id)
    assert run.data.tags["outcome"] == "no_stable_version" and run.info.status == "FAILED"


def test_verification_fails_when_the_api_does_not_swap(env) -> None:
    settings, client, api, (v1, _v2) = env
    api.follow = False
    engine = RollbackEngine(settings.model_copy(update={"rollback_verify_timeout_s": 1.5}),
                            client)
    decision = engine.manual("ops", "bad model", None)
    assert decision.action == "rolled_back" and champion(client, settings.registered_model_name
                                                         ) == v1
    engine.wait_idle()
    run = client.get_run(decision.run_id)
    assert run.data.tags["verification"] == "failed" and run.info.status == "FAILED"
    assert f"want '{v1}'" in run.data.tags["verification_detail"]


def test_manual_rollback_to_a_named_version_and_refusals(env) -> None:
    settings, client, _, (_v1, v2) = env
    name = settings.registered_model_name
    v3 = register(client, name, Path(settings.state_dir))
    engine = RollbackEngine(settings, client)
    with pytest.raises(RollbackRefused, match="already the champion"):
        engine.manual("ops", "why", to_version=v2)
    with pytest.raises(RollbackRefused, match="to_version: version 99 not found"):
        engine.manual("ops", "why", to_version="99")
    decision = engine.manual("ops", "test the manual path", to_version=v3)
    assert (decision.action, decision.to_version) == ("rolled_back", v3)
    assert champion(client, name) == v3
    assert client.get_model_version(name, v3).tags[CHAMPION_SINCE_TAG]
    with pytest.raises(RollbackRefused, match="rolled back as bad"):
        engine.manual("ops", "back to the bad one", to_version=v2)
    engine.wait_idle()


def test_gradual_shift_moves_the_challenger_share_then_the_champion(env) -> None:
    settings, client, api, (v1, v2) = env
    name = settings.registered_model_name
    settings = settings.model_copy(update={"rollback_shift_steps": [0.5, 1.0],
                                           "rollback_shift_step_s": 0.3})
    engine = RollbackEngine(settings, client)
    seen_shares: list[float] = []

    def watch() -> None:
        while not done.is_set():
            if api.served["challenger"] == v1:
                seen_shares.append(api.share)
            time.sleep(0.05)

    done = threading.Event()
    threading.Thread(target=watch, daemon=True).start()
    decision = engine.manual("ops", "gradual", gradual=True)
    assert decision.action == "shifting" and champion(client, name) == v2  # not yet
    engine.wait_idle()
    done.set()
    assert champion(client, name) == v1
    model = client.get_registered_model(name)
    assert "challenger" not in model.aliases and CHALLENGER_SHARE_TAG not in model.tags
    assert {0.5, 1.0} <= set(seen_shares)
    tags = client.get_run(decision.run_id).data.tags
    assert tags["shift_steps"] == "0.5:ok,1:ok" and tags["outcome"] == "rolled_back"
    assert tags["verification"] == "ok" and tags["gradual"] == "true"


def test_http_endpoints(env) -> None:
    settings, client, _, (v1, v2) = env
    settings = settings.model_copy(update={"rollback_admin_token": SecretStr("s3cret")})
    with TestClient(create_app(settings, RollbackEngine(settings, client))) as http:
        assert http.get("/health").json() == {"status": "ok"}
        payload = {"version": "4", "status": "firing", "receiver": "rollback",
                   "groupKey": "{}", "alerts": [
                       {"status": "firing", "labels": {"alertname": "RecsysFeatureDrift",
                                                       "model_version": v2}}]}
        answer = http.post("/alerts", json=payload)
        assert answer.status_code == 200
        assert answer.json()["decisions"][0]["action"] == "ignored"
        assert http.post("/alerts", json={"alerts": []}).status_code == 422
        body = {"reason": "manual test"}
        assert http.post("/rollback", json=body).status_code == 401
        denied = http.post("/rollback", json=body, headers={"Authorization": "Bearer nope"})
        assert denied.status_code == 401
        assert http.post("/rollback", json={"reason": ""}, headers={
            "Authorization": "Bearer s3cret"}).status_code == 422
        done = http.post("/rollback", json=body, headers={"Authorization": "Bearer s3cret"})
        assert done.status_code == 200, done.text
        assert (done.json()["action"], done.json()["to_version"]) == ("rolled_back", v1)
        again = http.post("/rollback", json=body, headers={"Authorization": "Bearer s3cret"})
        assert again.status_code == 409  # v2 is marked bad: nothing stable left
        history = http.get("/history").json()["rollbacks"]
        assert [h["outcome"] for h in history] == ["no_stable_version", "rolled_back"]
        assert history[1]["who"] == "admin-token"
        decisions = http.get("/decisions").json()["decisions"]
        assert decisions[-1]["alertname"] == "RecsysFeatureDrift"
        metrics = http.get("/metrics").text
        assert f'{c.ROLLBACKS}{{outcome="rolled_back",trigger="manual"}} 1.0' in metrics


def test_a_jwt_of_the_api_is_accepted(env) -> None:
    settings, client, _, (_v1, _) = env
    settings = settings.model_copy(update={"api_jwt_secret": SecretStr("k" * 32),
                                           "api_auth_mode": "writes"})
    token = jwt.encode({"sub": "alice"}, "k" * 32, algorithm="HS256")
    with TestClient(create_app(settings, RollbackEngine(settings, client))) as http:
        assert http.post("/rollback", json={"reason": "jwt"}).status_code == 401
        done = http.post("/rollback", json={"reason": "jwt"},
                         headers={"Authorization": f"Bearer {token}"})
        assert done.status_code == 200, done.text
    assert client.get_run(done.json()["run_id"]).data.tags["who"] == "alice"


def test_cli_manual_override_and_history(env, monkeypatch: pytest.MonkeyPatch) -> None:
    from recsys.cli import app

    settings, client, _, (v1, _v2) = env
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    runner = CliRunner()
    result = runner.invoke(app, ["rollback", "now", "--reason", "cli test", "--who", "bob"])
    assert result.exit_code == 0, result.output
    assert "verification: ok" in result.output
    assert champion(client, settings.registered_model_name) == v1
    result = runner.invoke(app, ["rollback", "history", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[0]["who"] == "bob" and rows[0]["to_version"] == v1
    get_settings.cache_clear()


def test_the_watcher_decides_from_the_monitors_metrics(env) -> None:
    from prometheus_client import generate_latest as exposition

    from monitoring.metrics import MonitorMetrics, Snapshot
    from rollback.watcher import MetricsWatcher

    settings, client, _, (v1, v2) = env
    settings = settings.model_copy(update={"rollback_watch_for_s": 10.0})
    engine = RollbackEngine(settings, client)
    watcher = MetricsWatcher(engine, "http://unused")
    metrics = MonitorMetrics()
    metrics.publish(Snapshot(score_psi={(v2, "champion"): 0.15},
                             ctr={(v2, "champion"): 0.05}, ctr_baseline={(v2, "champion"): 0.1},
                             ctr_baseline_std={(v2, "champion"): 0.01},
                             impressions={(v2, "champion"): 50.0}))
    quiet = exposition(metrics.registry).decode()
    assert watcher.check_once(quiet, now=0) == []  # PSI below 0.2, too few impressions
    metrics.publish(Snapshot(score_psi={(v2, "champion"): 0.45}))
    drifted = exposition(metrics.registry).decode()
    assert watcher.check_once(drifted, now=100) == []  # true, but not for 10 s yet
    assert watcher.check_once(quiet, now=105) == []  # a dip resets the clock
    assert watcher.check_once(drifted, now=106) == []
    decisions = watcher.check_once(drifted, now=116.5)
    assert [(d.action, d.trigger, d.to_version) for d in decisions] == [
        ("rolled_back", "watcher", v1)]
    assert champion(client, settings.registered_model_name) == v1
    engine.wait_idle()
