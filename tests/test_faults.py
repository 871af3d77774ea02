"""Fault injection: each scenario breaks a real part while work is flowing and reports
what was lost (must be nothing) and how long recovery took (``FAULT`` lines).

Run the whole suite on its own with ``pytest -m fault``; it also runs in CI. The other
scenarios of the suite live beside the code they exercise and carry the same marker:
the Flink job killed and restored from its checkpoint (tests/test_stream_features.py),
a corrupt ONNX artifact pushed as champion (tests/test_api_resilience.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pyarrow.parquet as pq
import pytest

from recsys.kafka_io import ensure_topics, make_consumer
from recsys.settings import Settings
from recsys.stack import free_port
from recsys.stack.process import port_open, wait_until
from recsys.stack.services import broker_process, start_broker
from stream_jobs.replay import replay
from tests import test_api_support as support
from tests.test_api_resilience import PrivateRedis
from tests.test_api_support import ApiModels, api_settings

pytestmark = [pytest.mark.integration, pytest.mark.fault]
api_models = support.api_models  # the shared fixtures
serve = support.serve


def report(scenario: str, **numbers: object) -> None:
    print(f"FAULT {scenario}: " + json.dumps(numbers, default=str))


# --- broker restarted during a replay --------------------------------------------------


@pytest.fixture
def s3_storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3-compatible server (moto) the broker keeps its log in, so that a broker
    restart keeps what it had acknowledged, as Kafka or Event Hubs would."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 30, "moto S3 server")
        creds = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                 "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT": endpoint,
                 "AWS_ALLOW_HTTP": "true"}
        for key, value in creds.items():
            monkeypatch.setenv(key, value)  # the broker process inherits them
        bucket = f"tansu-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1",
                     aws_access_key_id="test", aws_secret_access_key="test").create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield f"s3://{bucket}/"
    finally:
        proc.terminate()
        proc.wait(10)


def test_broker_restart_during_replay_loses_no_event(s3_storage: str, small_dataset: Path,
                                                     tmp_path: Path) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path / "state", data_dir=tmp_path / "data",
                        broker_port=free_port(), broker_storage_url=s3_storage,
                        clickstream_topic=f"faults-{uuid.uuid4().hex[:8]}", topic_partitions=2)
    start_broker(settings)
    broker = broker_process(settings)
    try:
        ensure_topics(settings, [settings.clickstream_topic])
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["result"] = replay(settings, small_dataset, rate=1_500)
            except BaseException as exc:  # handed to the test below
                outcome["error"] = exc

        sender = threading.Thread(target=run)
        sender.start()
        time.sleep(1.5)  # about a third of the events are on the topic
        broker.stop()
        stopped = time.monotonic()
        assert not port_open(settings.broker_host, settings.broker_port)  # really down
        time.sleep(2.0)
        start_broker(settings)
        back = time.monotonic()
        sender.join(timeout=180)
        assert not sender.is_alive() and "error" not in outcome, outcome.get("error")
        replay_done = time.monotonic()

        expected = Counter(pq.read_table(small_dataset / "events",
                                         columns=["event_id"]).column("event_id").to_pylist())
        seen: Counter = Counter()
        consumer = make_consumer(settings, settings.clickstream_topic,
                                 consumer_timeout_ms=5_000)
        try:
            for record in consumer:
                seen[json.loads(record.value)["event_id"]] += 1
                if set(seen) >= set(expected) and len(seen) == len(expected):
                    break
        finally:
            consumer.close()
    finally:
        broker.stop()
    lost = set(expected) - set(seen)
    duplicates = sum(n - 1 for n in seen.values())
    report("broker restart during replay", events=len(expected), lost=len(lost),
           duplicates=duplicates, broker_down_s=round(back - stopped, 2),
           replay_finished_after_restart_s=round(replay_done - back, 2))
    assert not lost  # at least once: every event is on the topic
    assert set(seen) == set(expected)


# --- Redis stopped and restarted under load ---------------------------------------------


class Load:
    """Requests at a steady rate from a thread; every status and fallback is kept."""

    def __init__(self, url: str, users: list[str], rate: float) -> None:
        self.url, self.users, self.rate = url, users, rate
        self.log: list[tuple[float, int, str | None]] = []  # (time, status, fallback)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            k, start = 0, time.monotonic()
            while not self._stop.is_set():
                user = self.users[k % len(self.users)]
                try:
                    response = http.post("/recommendations", json={"user_id": user, "k": 5})
                    fallback = response.json().get("fallback") if response.is_success else None
                    self.log.append((time.monotonic(), response.status_code, fallback))
                except httpx.HTTPError as exc:
                    self.log.append((time.monotonic(), 0, repr(exc)))
                k += 1
                self._stop.wait(max(0.0, start + k / self.rate - time.monotonic()))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_redis_restart_under_load_fails_no_request(api_models: ApiModels, serve) -> None:
    private = PrivateRedis(api_models.settings.redis_url)
    private.start()
    try:
        settings = api_settings(api_models.settings, redis_url=private.url,
                                api_challenger_share=0.0, api_breaker_failures=2,
                                api_breaker_reset_s=0.5)
        api = serve(settings)
        api.wait_ready()
        with Load(api.url, api_models.users[:50], rate=40) as load:
            time.sleep(2)
            private.stop()
            stopped = time.monotonic()
            time.sleep(3)
            # from here the server comes back and gets its keys restored: a request in that
            # window may be ranked (on the keys restored so far), so it is not "during"
            restarted = time.monotonic()
            private.start()
            wait_until(lambda: any(t > restarted and s == 200 and f is None
                                   for t, s, f in list(load.log)), 30, "ranked answers again")
            time.sleep(1)
    finally:
        private.stop()
    statuses = Counter(s for _, s, _ in load.log)
    during = [f for t, s, f in load.log if stopped + 0.5 < t < restarted]
    recovered_at = min(t for t, s, f in load.log if t > restarted and f is None)
    report("redis restart under load", requests=len(load.log), statuses=dict(statuses),
           fallback_answers=sum(f is not None for _, _, f in load.log),
           redis_down_s=round(restarted - stopped, 2),
           ranked_again_after_s=round(recovered_at - restarted, 2))
    assert statuses == {200: len(load.log)}  # nothing failed: popularity while it was down
    assert during and set(during) == {"redis_unavailable"}
    assert recovered_at - restarted < 10


# --- MLflow unavailable when the API starts ---------------------------------------------


def test_api_starts_from_its_model_cache_when_mlflow_is_down(api_models: ApiModels,
                                                             tmp_path: Path) -> None:
    from api.demo import ApiProcess

    state = tmp_path / "state"
    settings = api_settings(api_models.settings, state_dir=state)
    with ApiProcess(settings) as first:  # MLflow up: downloads the champion into the cache
        first.wait_ready()
    down = api_settings(api_models.settings, state_dir=state, mlflow_port=free_port())
    started = time.monotonic()
    with ApiProcess(down) as api:
        ready = api.wait_ready(timeout_s=120)
        took = time.monotonic() - started
        with httpx.Client(base_url=api.url, timeout=10) as http:
            body = http.post("/recommendations", json={"user_id": api_models.users[0]}).json()
            models = http.get("/models").json()
    report("MLflow down at API start", ready_after_s=round(took, 2),
           served_version=body["model_version"], checks=ready["checks"])
    assert ready["checks"]["models"] == "ok" and ready["checks"]["mlflow"] != "ok"
    assert body["model_version"] == api_models.v1 and body["fallback"] is None
    assert [a["version"] for a in models["arms"] if a["arm"] == "champion"] == [api_models.v1]


# --- an unwritable artifact folder -------------------------------------------------------


def test_an_unwritable_model_cache_is_a_clear_error_not_a_crash(api_models: ApiModels,
                                                              tmp_path: Path) -> None:
    from api.demo import ApiProcess

    state = tmp_path / "state"
    state.mkdir()
    (state / "ranker-cache").write_text("a file where the cache folder should be")
    settings = api_settings(api_models.settings, state_dir=state)
    with ApiProcess(settings) as api:
        deadline = time.monotonic() + 120
        ready: dict = {}
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{api.url}/ready", timeout=5)
                ready = response.json()
                if "not loaded:" in ready.get("checks", {}).get("models", ""):
                    break  # a load was tried and failed, with its reason
            except (httpx.HTTPError, ValueError):
                pass
            assert api.proc is not None and api.proc.poll() is None, "the API crashed"
            time.sleep(0.5)
        health = httpx.get(f"{api.url}/health", timeout=5)
        cold = httpx.post(f"{api.url}/recommendations", json={"user_id": "anyone"}, timeout=10)
    report("unwritable model cache", ready=ready, recommendations=cold.status_code)
    assert response.status_code == 503
    assert "ranker-cache" in ready["checks"]["models"], ready  # names the path
    assert health.status_code == 200  # alive, and says why it is not ready
    assert cold.status_code in (200, 503) and cold.status_code != 500
