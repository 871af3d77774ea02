"""The serving API when things change or break: A/B split, hot swap under load, refused
models, Redis down and back, broker down and back.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from api.ab import arm_for
from api.security import make_token
from monitoring import contract
from recsys.settings import Settings
from recsys.stack import free_port
from recsys.stack.services import broker_process, start_broker
from tests import test_api_support as support
from tests.test_api_support import (
    ApiModels,
    api_settings,
    consume,
    event,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
api_models, serve = support.api_models, support.serve  # the shared fixtures


def _client(settings: Settings) -> Any:
    from ranking.registry import client_for

    return client_for(settings)


def _set_alias(settings: Settings, alias: str, version: str | None) -> None:
    client, name = _client(settings), settings.registered_model_name
    if version is None:
        client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, version)


def test_ab_split_follows_the_stable_hash(api_models: ApiModels, serve) -> None:
    settings = api_settings(api_models.settings, api_challenger_share=0.3,
                            api_publish_impressions=False)
    _set_alias(settings, "challenger", api_models.v2)
    try:
        api = serve(settings)
        api.wait_ready()
        wait_for(lambda: len(httpx.get(f"{api.url}/models").json()["arms"]) == 2, 60,
                 "the challenger to load")
        users = [f"ab-user-{k}" for k in range(400)] + api_models.users[:100]
        served = {}
        with api.client() as http:
            for user in users:
                body = http.post("/recommendations", json={"user_id": user, "k": 2}).json()
                served[user] = (body["arm"], body["model_version"])
            again = {u: http.post("/recommendations", json={"user_id": u, "k": 2}).json()["arm"]
                     for u in users[:50]}
            models = http.get("/models").json()
            metrics = http.get("/metrics").text
    finally:
        _set_alias(settings, "challenger", None)
    expected = {u: arm_for(u, 0.3, settings.api_ab_salt) for u in users}
    assert {u: arm for u, (arm, _) in served.items()} == expected
    assert all(again[u] == expected[u] for u in again)
    share = sum(arm == "challenger" for arm, _ in served.values()) / len(users)
    assert 0.24 < share < 0.36
    versions = {arm: {v for a, v in served.values() if a == arm} for arm in ("champion",
                                                                              "challenger")}
    assert versions == {"champion": {api_models.v1}, "challenger": {api_models.v2}}
    arms = {a["arm"]: a for a in models["arms"]}
    assert (arms["champion"]["share"], arms["challenger"]["share"]) == (0.7, 0.3)
    counts = Counter(arm for arm, _ in served.values())
    for arm, version in (("champion", api_models.v1), ("challenger", api_models.v2)):
        line = f'recsys_ab_requests_total{{arm="{arm}",model_version="{version}"}}'
        value = float(next(x for x in metrics.splitlines() if x.startswith(line)).split()[-1])
        assert value >= counts[arm]
        assert f'{contract.API_MODEL_INFO}{{arm="{arm}"' in metrics


def test_hot_swap_under_concurrent_requests_fails_nothing(api_models: ApiModels,
                                                          serve) -> None:
    settings = api_settings(api_models.settings, api_challenger_share=0.0)
    api = serve(settings)
    api.wait_ready()
    users = api_models.users[:50] + [f"hs-new-{k}" for k in range(10)]

    async def load(stop: asyncio.Event, seen: list[tuple[float, int, str | None]]) -> None:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            k = 0
            while not stop.is_set():
                user = users[k % len(users)]
                k += 1
                try:
                    response = await http.post("/recommendations",
                                               json={"user_id": user, "k": 5})
                    version = (response.json().get("model_version")
                               if response.status_code == 200 else None)
                    seen.append((time.monotonic(), response.status_code, version))
                except httpx.HTTPError as exc:
                    seen.append((time.monotonic(), 0, repr(exc)))

    def cache_counts() -> dict[str, float]:
        text = httpx.get(f"{api.url}/metrics").text
        prefix = "recsys_candidate_cache_total{result=\""
        return {line[len(prefix):].split('"')[0]: float(line.split()[-1])
                for line in text.splitlines() if line.startswith(prefix)}

    async def scenario() -> tuple[list[tuple[float, int, str | None]], dict, dict]:
        stop, seen = asyncio.Event(), []
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            for user in users:  # one at a time: each user's one miss on v1
                assert (await http.post("/recommendations", json={"user_id": user, "k": 5})
                        ).status_code == 200
        before = await asyncio.to_thread(cache_counts)
        workers = [asyncio.create_task(load(stop, seen)) for _ in range(8)]
        await asyncio.sleep(1.5)
        await asyncio.to_thread(_set_alias, settings, "champion", api_models.v2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(v == api_models.v2 for _, _, v in
                                                      seen[-20:]):
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)
        stop.set()
        await asyncio.gather(*workers)
        return seen, before, await asyncio.to_thread(cache_counts)

    try:
        seen, before, after = asyncio.run(scenario())
    finally:
        _set_alias(settings, "champion", api_models.v1)
    failures = [s for s in seen if s[1] != 200]
    assert not failures, failures[:5]
    versions = [v for _, _, v in seen]
    assert versions[0] == api_models.v1 and versions[-1] == api_models.v2
    first_new = versions.index(api_models.v2)
    assert set(versions[first_new + 50:]) == {api_models.v2}  # in-flight ones may end on v1
    assert len(seen) > 100
    # every user had been served by v1 before the swap, so v2 was prewarmed with all of them
    # and served them from its cache: no miss under the load, before or after the swap
    assert before.get("miss", 0) >= len(users), before
    assert after.get("miss") == before["miss"], (before, after)
    assert after.get("prewarmed", 0) - before.get("prewarmed", 0) == len(users), after
    # the swap back is observed too
    wait_for(lambda: httpx.get(f"{api.url}/models").json()["arms"][0]["version"]
             == api_models.v1, 60, "the swap back to v1")


def _register_broken_version(settings: Settings, good_version: str) -> str:
    """Copy a good version's bundle, corrupt its ONNX graph, register it."""
    from ranking.bundle import RankerBundle
    from ranking.registry import log_run, register

    bundle = RankerBundle.load(f"models:/{settings.registered_model_name}/{good_version}",
                               settings)
    folder = Path(tempfile.mkdtemp()) / "ranker"
    shutil.copytree(bundle.folder, folder)
    (folder / "registry.json").unlink(missing_ok=True)
    (folder / "ranker.onnx").write_bytes(b"not an onnx graph")
    client = _client(settings)
    run_id = log_run(client, settings, folder, {}, {}, {"purpose": "api-test-broken"})
    return register(client, settings.registered_model_name, run_id, "val_ndcg_at_10", 0.0,
                    "broken")


@pytest.mark.fault
def test_a_broken_version_is_refused_and_the_previous_keeps_serving(
        api_models: ApiModels, serve) -> None:
    settings = api_settings(api_models.settings)
    api = serve(settings)
    api.wait_ready()
    broken = _register_broken_version(settings, api_models.v1)
    pushed = time.monotonic()
    _set_alias(settings, "champion", broken)
    served: list[tuple[int, str | None]] = []
    try:
        with api.client() as http:
            def refused() -> dict | None:  # keeps asking for recommendations meanwhile
                response = http.post("/recommendations", json={"user_id": api_models.users[0]})
                served.append((response.status_code, response.json().get("model_version")))
                models = http.get("/models").json()
                return models if models["refused"] else None

            models = wait_for(refused, 60, "the broken version to be refused")
            refused_after = time.monotonic() - pushed
            body = http.post("/recommendations", json={"user_id": api_models.users[0]}).json()
            metrics = http.get("/metrics").text
    finally:
        _set_alias(settings, "champion", api_models.v1)
    print("FAULT corrupt ONNX artifact pushed as champion: " + json.dumps({
        "requests_meanwhile": len(served), "failed": sum(s != 200 for s, _ in served),
        "served_versions": sorted({v for _, v in served if v}),
        "refused_after_s": round(refused_after, 2)}))
    assert served and all(s == 200 and v == api_models.v1 for s, v in served)
    [refusal] = models["refused"]
    assert refusal["version"] == broken and "ranker.onnx does not load" in refusal["reason"]
    assert models["aliases"]["champion"] == broken
    assert [a["version"] for a in models["arms"]] == [api_models.v1]
    assert body["model_version"] == api_models.v1 and body["fallback"] is None
    assert 'recsys_model_refused_total{arm="champion"} 1.0' in metrics


class PrivateRedis:
    """A redis-server of this test, holding a copy of the stack's online features."""

    def __init__(self, source_url: str) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp()
        self.source = redis.Redis.from_url(source_url)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = redis.Redis(port=self.port)
        wait_for(lambda: _pings(target), 20, "the private redis-server")
        pipe = target.pipeline(transaction=False)
        for key in self.source.scan_iter(count=1000):
            pipe.restore(key, 0, self.source.dump(key), replace=True)
        pipe.execute()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_redis_down_falls_back_to_popularity_and_recovers(api_models: ApiModels,
                                                          serve) -> None:
    private = PrivateRedis(api_models.settings.redis_url)
    private.start()
    try:
        settings = api_settings(api_models.settings, redis_url=private.url,
                                api_challenger_share=0.0, api_breaker_failures=2)
        api = serve(settings)
        api.wait_ready()
        user = api_models.users[0]
        with api.client() as http:
            def recommend() -> dict:
                response = http.post("/recommendations", json={"user_id": user, "k": 5})
                assert response.status_code == 200
                return response.json()

            assert recommend()["fallback"] is None
            private.stop()
            down = [recommend() for _ in range(6)]
            assert {b["fallback"] for b in down} == {"redis_unavailable"}
            assert {i["stage"] for b in down for i in b["items"]} == {"popularity"}
            assert all(len(b["items"]) == 5 for b in down)
            ready = http.get("/ready")
            assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith(
                "error")
            metrics = http.get("/metrics").text
            assert 'recsys_circuit_state{dependency="redis"} 2.0' in metrics
            assert f'{contract.API_FALLBACKS}{{reason="redis_unavailable"}}' in metrics
            private.start()
            back = wait_for(lambda: (lambda b: b if b["fallback"] is None else None)(
                recommend()), 20, "recovery after Redis returned", interval_s=0.2)
            assert {i["stage"] for i in back["items"]} == {"ranker"}
            assert http.get("/ready").status_code == 200
    finally:
        private.stop()


def test_broker_down_buffers_or_refuses_and_delivers_after_it_returns(
        api_models: ApiModels, serve, tmp_path: Path) -> None:
    broker = api_models.settings.model_copy(update={
        "broker_port": free_port(), "state_dir": tmp_path / "state"})
    settings = api_settings(broker, api_event_buffer_size=6, api_publish_impressions=False,
                            api_event_ack_timeout_s=1.0)
    api = serve(settings)
    # models load although the broker is away; /ready says what is missing
    wait_for(lambda: httpx.get(f"{api.url}/ready").json()["checks"]["models"] == "ok", 120,
             "models to load")
    headers = {"Authorization": f"Bearer {make_token(settings, ['events'])}"}
    sent = [event(api_models.users[0], api_models.items[k % 5]) for k in range(8)]
    with api.client(headers=headers) as http:
        ready = http.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["broker"].startswith("error")
        first = http.post("/events", json=sent[:4])
        second = http.post("/events", json=sent[4:6])
        full = http.post("/events", json=sent[6:8])
    assert (first.status_code, first.json()) == (202, {"accepted": 4, "status": "buffered"})
    assert (second.status_code, second.json()) == (202, {"accepted": 2, "status": "buffered"})
    assert full.status_code == 503 and full.headers["retry-after"] == "1"
    assert "nothing was accepted" in full.json()["detail"]
    start_broker(settings)  # the same address comes back
    try:
        wait_for(lambda: httpx.get(f"{api.url}/ready").status_code == 200, 60,
                 "the API to see the broker again")
        ids = {e["event_id"] for e in sent[:6]}
        found = consume(settings, settings.clickstream_topic, 6,
                        lambda v: json.loads(v)["event_id"] in ids)
        assert {json.loads(v)["event_id"] for v in found} == ids
        with api.client(headers=headers) as http:
            after = http.post("/events", json=sent[6:8])
            metrics = http.get("/metrics").text
        assert after.json() == {"accepted": 2, "status": "published"}
        assert f'{contract.API_EVENTS}{{outcome="rejected"}} 2.0' in metrics
        assert f'{contract.API_EVENTS}{{outcome="buffered"}} 6.0' in metrics
    finally:
        broker_process(settings).stop()
