"""The whole alert loop with real parts: Kafka (tansu) -> monitor service -> Prometheus
(Debian package) -> rule fires -> Alertmanager -> rollback service -> MLflow alias moved
and recorded -> the API swaps and is verified.

Two tests: one with controlled serving records and an HTTP stand-in of the API (quiet
case, exact timing of each hop, cooldown, dashboard queries); one with the real API
(``python -m api``) serving a real ranker, simulated users, and a faulty champion
(:mod:`rollback.drill`).

Test configs use second-scale intervals (scrape/evaluation 1 s, rule ``for`` 1 s,
group_wait 1 s); the repo's production configs are checked in tests/test_alerts.py.
The time from "condition true" (the monitor first exposes score PSI > 0.2) to "alias
moved" is measured and printed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from mlflow import MlflowClient

from monitoring import contract as c
from monitoring.alerting import FAST, AlertingStack, write_configs
from monitoring.contract import ServingLogRecord
from monitoring.ctr import CtrBaseline
from monitoring.model_baselines import MlflowBaselines, fetch_drift_baseline
from recsys.kafka_io import ensure_topics, make_producer
from recsys.settings import PROJECT_ROOT, Settings, settings_env
from recsys.stack import free_port
from tests import test_api_support as support
from tests.test_alerts import dashboard_exprs
from tests.test_api_support import ApiModels, api_settings
from tests.test_rollback import ApiStandIn, drift_baseline, register

pytestmark = pytest.mark.integration
api_models = support.api_models  # the shared fixture
needs_binaries = pytest.mark.skipif(
    not (shutil.which("prometheus") and shutil.which("prometheus-alertmanager")),
    reason="apt-get install prometheus prometheus-alertmanager (scripts/system-deps.sh)")


def wait_for(check: Callable[[], object], timeout_s: float, what: str,
             interval_s: float = 0.1) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, OSError, KeyError, ValueError):
            value = None
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def gauge(text: str, name: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


class Service:
    """A ``python -m …`` child with its own process group and log file."""

    def __init__(self, module: str, env: dict[str, str], log: Path):
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module], cwd=PROJECT_ROOT, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, **env})

    def stop(self, timeout_s: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def serving_records(version: str, n: int, shift: float, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    return [ServingLogRecord(
        request_id=uuid.uuid4().hex, ts=now, user_id=f"u{i}", arm="champion",
        model_version=version, item_ids=[f"i{j}" for j in range(10)],
        scores=(rng.normal(0, 1, 10) + shift).tolist(),
        features={"item_ctr": rng.beta(2, 20, 10).tolist()}).to_json_bytes()
        for i in range(n)]


@pytest.fixture
def loop(stack_settings: Settings, tmp_path: Path) -> Iterator[dict]:
    name = f"ranker-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(tracking_uri=stack_settings.mlflow_tracking_uri)
    now = datetime.now(UTC)
    v1 = register(client, name, tmp_path, champion_since=now.replace(year=now.year - 1),
                  baseline=drift_baseline(0))
    v2 = register(client, name, tmp_path, champion_since=now, baseline=drift_baseline(0))
    client.set_registered_model_alias(name, "champion", v2)
    tag = uuid.uuid4().hex[:8]
    with ApiStandIn(stack_settings.mlflow_tracking_uri, name) as api:
        settings = stack_settings.model_copy(update={
            "registered_model_name": name, "rollback_experiment": f"rollbacks-{name}",
            "clickstream_topic": f"cs-{tag}", "serving_log_topic": f"log-{tag}",
            "monitor_consumer_group": f"monitor-{tag}", "monitor_port": free_port(),
            "rollback_port": free_port(), "prometheus_port": free_port(),
            "alertmanager_port": free_port(), "api_port": int(api.url.rsplit(":", 1)[1]),
            "drift_window_s": 60.0, "monitor_bucket_s": 5.0, "drift_min_samples": 200,
            "monitor_eval_interval_s": 0.5, "monitor_baseline_retry_s": 2.0,
            "rollback_verify_timeout_s": 20.0, "topic_partitions": 1})
        ensure_topics(settings, [settings.clickstream_topic, settings.serving_log_topic])
        prom_file, am_file = write_configs(settings, tmp_path / "alerting", FAST)
        env = settings_env(settings)
        services: list[Service] = []
        try:
            with AlertingStack(settings, tmp_path / "alerting", prom_file, am_file,
                               log_level="debug") as alerting:
                services.append(Service("monitoring", env, tmp_path / "monitor.log"))
                services.append(Service("rollback", env, tmp_path / "rollback.log"))
                yield {"settings": settings, "client": client, "api": api, "v1": v1, "v2": v2,
                       "alerting": alerting, "monitor": services[0], "rollback": services[1]}
        finally:
            codes = [s.stop() for s in services]
            for s in services:
                print(f"--- {s.log.name}\n{s.tail()}")
        # the monitor exits 0; uvicorn re-raises SIGTERM after its graceful shutdown
        assert codes[0] == 0 and codes[1] in (0, -signal.SIGTERM), codes
        assert "Application shutdown complete" in services[1].log.read_text()


@needs_binaries
@pytest.mark.slow
def test_score_drift_alert_rolls_the_champion_back_end_to_end(loop: dict) -> None:
    s: Settings = loop["settings"]
    client, api, v1, v2 = loop["client"], loop["api"], loop["v1"], loop["v2"]
    alerting: AlertingStack = loop["alerting"]
    monitor_url = f"http://{s.monitor_host}:{s.monitor_port}/metrics"
    rollback_url = f"http://{s.rollback_host}:{s.rollback_port}"
    wait_for(lambda: httpx.get(f"{rollback_url}/health").json()["status"] == "ok", 60,
             "rollback service")

    def targets_up() -> bool:
        active = httpx.get(f"{alerting.prometheus_url}/api/v1/targets").json()["data"]
        health = {t["labels"]["job"]: t["health"] for t in active["activeTargets"]}
        return health.get("recsys-monitor") == "up" and health.get("recsys-api") == "up"

    wait_for(targets_up, 60, "Prometheus scraping the monitor and the API stand-in")

    # 1. no shift: PSI is published and stays low, no alert
    producer = make_producer(s)
    for raw in serving_records(v2, 60, shift=0.0, seed=1):
        producer.send(s.serving_log_topic, raw)
    producer.flush()
    quiet = wait_for(lambda: gauge(httpx.get(monitor_url).text, c.MONITOR_SCORE_PSI,
                                   model_version=v2), 60, "score PSI of v2", 0.2)
    assert quiet < 0.1
    time.sleep(3)  # three evaluation intervals of Prometheus
    alerts = httpx.get(f"{alerting.prometheus_url}/api/v1/alerts").json()["data"]["alerts"]
    assert [a for a in alerts if a["labels"]["alertname"] == "RecsysScoreDrift"] == []
    assert str(client.get_model_version_by_alias(s.registered_model_name, "champion").version
               ) == v2

    # 2. shift the served scores by 1.5 sigma: PSI > 0.2 -> rule -> Alertmanager -> rollback
    sent = time.monotonic()
    for raw in serving_records(v2, 200, shift=1.5, seed=2):
        producer.send(s.serving_log_topic, raw)
    producer.flush()
    producer.close()
    drifted = wait_for(lambda: (v := gauge(httpx.get(monitor_url).text, c.MONITOR_SCORE_PSI,
                                           model_version=v2)) and v > 0.2 and v, 60,
                       "score PSI above 0.2", 0.05)
    condition_true, condition_true_wall = time.monotonic(), time.time()
    wait_for(lambda: str(client.get_model_version_by_alias(
        s.registered_model_name, "champion").version) == v1, 60, "champion alias back on v1",
        0.05)
    moved = time.monotonic()
    timing = {"condition_true_to_alias_moved_s": round(moved - condition_true, 2),
              "shifted_records_sent_to_alias_moved_s": round(moved - sent, 2),
              "score_psi": round(drifted, 3)}
    alerts = httpx.get(f"{alerting.prometheus_url}/api/v1/alerts").json()["data"]["alerts"]
    active = [a for a in alerts if a["labels"]["alertname"] == "RecsysScoreDrift"]
    if active:  # where the time goes: scrape + evaluation, `for`, Alertmanager, service
        active_at = datetime.fromisoformat(active[0]["activeAt"].replace("Z", "+00:00"))
        timing["condition_true_to_prometheus_active_s"] = round(
            active_at.timestamp() - condition_true_wall, 2)
    print("ROLLBACK TIMING", json.dumps(timing))
    assert timing["condition_true_to_alias_moved_s"] < 30

    # 3. the rollback is recorded and verified against the (stand-in) API
    experiment = client.get_experiment_by_name(s.rollback_experiment)
    runs = wait_for(lambda: [r for r in client.search_runs([experiment.experiment_id])
                             if r.data.tags.get("verification")], 30, "a verified run")
    tags = runs[0].data.tags
    assert (tags["trigger"], tags["alertname"], tags["from_version"], tags["to_version"]) == (
        "alertmanager", "RecsysScoreDrift", v2, v1)
    assert tags["who"] == "alertmanager/rollback" and tags["verification"] == "ok"
    webhook_at = runs[0].info.start_time / 1000
    print("ROLLBACK TIMING webhook received after condition true:",
          round(webhook_at - condition_true_wall, 2), "s; alert startsAt:",
          tags["alert_started_at"], "condition true:",
          datetime.fromtimestamp(condition_true_wall, UTC).isoformat(timespec="milliseconds"))
    assert json.loads(tags["alert_labels"])["job"] == "recsys-monitor"
    assert api.served["champion"] == v1
    assert client.get_model_version(s.registered_model_name, v2).tags["rolled_back"] == "true"
    assert len(runs) == 1  # repeated notifications did not roll back twice

    # 4. API metrics path: 5xx from the API stand-in -> RecsysHighErrorRate -> webhook;
    #    v1 was restored seconds ago, so the service records it and keeps v1 (cooldown)
    for _ in range(200):
        api.requests.labels("/recommendations", "POST", "200").inc()
        api.requests.labels("/recommendations", "POST", "500").inc(0.25)

    def error_rate_decision() -> list[dict]:
        decisions = httpx.get(f"{rollback_url}/decisions").json()["decisions"]
        return [d for d in decisions if d["alertname"] == "RecsysHighErrorRate"]

    deadline = time.monotonic() + 40
    while not error_rate_decision() and time.monotonic() < deadline:
        for _ in range(20):
            api.requests.labels("/recommendations", "POST", "200").inc()
            api.requests.labels("/recommendations", "POST", "500").inc()
        time.sleep(0.5)
    decision = error_rate_decision()
    assert decision and decision[0]["action"] == "ignored", decision
    assert decision[0]["reason"].startswith("cooldown")
    assert str(client.get_model_version_by_alias(s.registered_model_name, "champion").version
               ) == v1

    # 5. every dashboard expression parses in the real Prometheus
    for expr in dashboard_exprs():
        query = expr.replace("$__rate_interval", "1m")
        answer = httpx.get(f"{alerting.prometheus_url}/api/v1/query?query="
                           + urllib.parse.quote(query)).json()
        assert answer["status"] == "success", (expr, answer)


def test_baselines_are_read_from_and_written_to_the_registry(stack_settings: Settings,
                                                             tmp_path: Path) -> None:
    import mlflow
    from mlflow.pyfunc import PythonModel

    name = f"ranker-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(tracking_uri=stack_settings.mlflow_tracking_uri)
    expected = drift_baseline(3)
    v1 = register(client, name, tmp_path, baseline=expected)  # baseline beside the model
    assert fetch_drift_baseline(client, name, v1, stack_settings.mlflow_tracking_uri) == expected

    class Identity(PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    path = expected.save(tmp_path)  # a pyfunc model keeps it under artifacts/
    mlflow.set_tracking_uri(stack_settings.mlflow_tracking_uri)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=Identity(),
                                       artifacts={"drift_baseline": str(path)},
                                       registered_model_name=name, pip_requirements=[])
    v2 = str(info.registered_model_version)
    assert fetch_drift_baseline(client, name, v2, stack_settings.mlflow_tracking_uri) == expected
    bare = client.create_run(client.get_experiment_by_name("test-ranker").experiment_id)
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "model.onnx").write_bytes(b"x")
    client.log_artifacts(bare.info.run_id, str(tmp_path / "bare"), "model")
    v3 = str(client.create_model_version(name, f"{bare.info.artifact_uri}/model",
                                         bare.info.run_id).version)
    with pytest.raises(FileNotFoundError, match=r"no drift_baseline\.json"):
        fetch_drift_baseline(client, name, v3, stack_settings.mlflow_tracking_uri)

    cache = MlflowBaselines(stack_settings.mlflow_tracking_uri, name, retry_s=60)
    try:
        assert cache.drift(v1) is None  # first call schedules the fetch
        cache.wait_idle()
        assert cache.drift(v1) == expected
        assert cache.drift(v3) is None
        cache.wait_idle()
        assert cache.drift(v3) is None  # missing: retried only after retry_s
        assert cache.ctr(v1) is None
        cache.save_ctr(v1, CtrBaseline(0.125, 0.01, 1100))
        cache.wait_idle()
    finally:
        cache.close()
    tags = client.get_model_version(name, v1).tags
    assert (tags["ctr_baseline"], tags["ctr_baseline_std"], tags["ctr_baseline_impressions"]) == (
        "0.125", "0.01", "1100")
    fresh = MlflowBaselines(stack_settings.mlflow_tracking_uri, name)
    try:
        fresh.ctr(v1)
        fresh.wait_idle()
        assert fresh.ctr(v1) == CtrBaseline(0.125, 0.01, 1100)
    finally:
        fresh.close()


@needs_binaries
@pytest.mark.slow
def test_a_faulty_champion_on_the_real_api_is_rolled_back(api_models: ApiModels,
                                                          tmp_path: Path) -> None:
    """The whole loop on the real API (``python -m api``) with a real ranker: a faulty copy
    of the champion goes live, its served scores drift, Prometheus fires, Alertmanager calls
    the rollback service, the alias moves back and the API serves the previous version."""
    from api.demo import ApiProcess
    from api.security import make_token
    from ranking.train import train_ranker
    from recsys.simulator import HiddenWorld, SimulationConfig, Simulator
    from rollback.drill import FIRING, LIVE, RESTORED, SERVED, run_drill

    tag = uuid.uuid4().hex[:8]
    settings = api_models.settings.model_copy(update={
        "registered_model_name": f"drill-{tag}", "rollback_experiment": f"rollbacks-{tag}",
        "clickstream_topic": f"drill-cs-{tag}", "serving_log_topic": f"drill-log-{tag}",
        "monitor_consumer_group": f"drill-monitor-{tag}",
        # 200 candidates would be the whole small catalogue (150 items), which no
        # retrieval fault could change: 30 are a choice, as in a real catalogue
        "candidate_count": 30})
    good = str(train_ranker(api_models.dataset, settings, alias="champion", backfill=False,
                            log=lambda _: None).version)
    served = api_settings(settings, api_alias_poll_s=1.0)
    world = HiddenWorld.from_dataset(api_models.dataset)
    # a seeded sample of the population the baseline describes, not the most active
    pool = sorted(u for u in api_models.users if u in world.tastes)
    users = [str(u) for u in np.random.default_rng(3).choice(
        pool, size=min(200, len(pool)), replace=False)]
    headers = {"Authorization": f"Bearer {make_token(served, ['events'])}"}
    with ApiProcess(served) as api:
        api.wait_ready()
        with httpx.Client(base_url=api.url, timeout=10) as http:
            simulator = Simulator(http, world, SimulationConfig(seed=3), write_headers=headers)
            result = run_drill(served, api.url, simulator, users, tmp_path / "drill", rate=25)
            champion = [a["version"] for a in http.get("/models").json()["arms"]
                        if a["arm"] == "champion"]
    for what, seconds, detail in result.timeline.rows():
        print(f"DRILL {'–' if seconds is None else f'{seconds:+6.1f} s'}  {what}  {detail}")
    print("DRILL traffic", {v: dict(t) for v, t in result.traffic.items()})

    marks = [what for what, _, _ in result.timeline.rows()]
    assert result.quiet_before, marks  # no alert while the healthy champion served
    assert result.restored and result.verified, marks
    assert marks.index(LIVE) < marks.index(SERVED) < marks.index(FIRING) < marks.index(RESTORED)
    assert result.live_to_restored_s is not None and result.live_to_restored_s <= 60
    assert result.failed_requests == 0  # the swaps dropped no request
    assert champion == [good]
    assert result.traffic[result.faulty_version]["requests"] > 0
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    faulty_tags = client.get_model_version(settings.registered_model_name,
                                           result.faulty_version).tags
    assert faulty_tags["rolled_back"] == "true" and faulty_tags["faulty"] == "true"
    experiment = client.get_experiment_by_name(settings.rollback_experiment)
    runs = client.search_runs([experiment.experiment_id])
    assert [(r.data.tags["trigger"], r.data.tags["alertname"], r.data.tags["to_version"])
            for r in runs] == [("alertmanager", "RecsysScoreDrift", good)]
