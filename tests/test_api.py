"""The serving API over real HTTP: every endpoint, bad inputs, auth, events into Kafka.

Real stack (tansu, redis-server, MLflow, Feast registry), real ranker versions registered
in MLflow and loaded by alias, online features materialized into Redis.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from api.ab import arm_for
from api.metrics import API_CANDIDATE_CACHE
from api.security import make_token
from monitoring import contract
from monitoring.contract import ServingLogRecord
from recsys.settings import settings_env
from tests import test_api_support as support
from tests.test_api_support import (
    ApiModels,
    ApiServer,
    api_settings,
    consume,
    event,
    json_lines,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
api_models, serve = support.api_models, support.serve  # the shared fixtures


@pytest.fixture(scope="module")
def api(api_models: ApiModels) -> Iterator[ApiServer]:
    server = ApiServer(api_settings(api_models.settings)).__enter__()
    server.wait_ready()
    yield server
    server.__exit__(None, None, None)


def token(server: ApiServer, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(server.settings, scopes)}"}


def test_health_ready_and_models(api: ApiServer, api_models: ApiModels) -> None:
    with api.client() as http:
        assert http.get("/health").json() == {"status": "ok"}
        ready = http.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {
            "models": "ok", "redis": "ok", "broker": "ok", "mlflow": "ok"}}
        models = http.get("/models").json()
    assert models["registered_model"] == api_models.settings.registered_model_name
    assert models["aliases"] == {"champion": api_models.v1, "challenger": None}
    [arm] = models["arms"]
    assert set(arm) == {"arm", "version", "loaded_at", "share", "source"}
    assert (arm["arm"], arm["version"], arm["share"]) == ("champion", api_models.v1, 1.0)
    assert arm["source"] == f"models:/{api_models.settings.registered_model_name}/{api_models.v1}"
    assert models["refused"] == []


def test_recommendations_for_a_known_user(api: ApiServer, api_models: ApiModels) -> None:
    user = api_models.users[0]
    with api.client() as http:
        response = http.post("/recommendations", json={"user_id": user, "k": 7,
                                                        "context": {"surface": "home"}})
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == user and body["model_version"] == api_models.v1
    assert body["arm"] == "champion" and body["cold_start"] is False
    assert body["fallback"] is None and len(body["request_id"]) == 32
    items = body["items"]
    assert len(items) == 7 and len({i["item_id"] for i in items}) == 7
    assert [i["rank"] for i in items] == list(range(1, 8))
    assert {i["stage"] for i in items} == {"ranker"}
    assert {i["source"] for i in items} <= {"als", "blend"}
    # diversity cap 0.5: at most ceil(3.5) = 4 items of one category before back-fill
    head = [i["category"] for i in items[:4]]
    assert max(head.count(c) for c in head) <= 4
    stages = dict(p.split(";dur=") for p in response.headers["server-timing"].split(", "))
    assert set(stages) == {"candidates", "features", "ranking", "rules"}
    assert all(float(v) >= 0 for v in stages.values())


def test_filters_exclusions_and_cold_start(api: ApiServer, api_models: ApiModels) -> None:
    user = api_models.users[1]
    with api.client() as http:
        first = http.post("/recommendations", json={"user_id": user, "k": 5}).json()
        category = first["items"][0]["category"]
        filtered = http.post("/recommendations", json={
            "user_id": user, "k": 5, "filters": {"category": category, "max_price": 1e6},
            "exclude_item_ids": [first["items"][0]["item_id"]]}).json()
        cold = http.post("/recommendations", json={"user_id": "brand-new-user", "k": 4}).json()
        metrics = http.get("/metrics").text
    assert filtered["items"] and {i["category"] for i in filtered["items"]} == {category}
    assert first["items"][0]["item_id"] not in {i["item_id"] for i in filtered["items"]}
    assert cold["cold_start"] is True and len(cold["items"]) == 4
    assert {i["stage"] for i in cold["items"]} == {"popularity"}
    assert {i["source"] for i in cold["items"]} == {"popularity"}
    assert f'{contract.API_FALLBACKS}{{reason="cold_start"}}' in metrics


def test_similar_fbt_popular_and_unknown_ids(api: ApiServer, api_models: ApiModels) -> None:
    item = api_models.items[0]
    with api.client() as http:
        similar = http.get(f"/similar_items/{item}", params={"k": 5}).json()
        fbt = http.get(f"/frequently_bought_together/{item}", params={"k": 5})
        popular = http.get("/popular", params={"k": 5}).json()
        category = popular["items"][0]["category"]
        in_category = http.get("/popular", params={"k": 3, "category": category}).json()
        assert http.get("/similar_items/no-such-item").status_code == 404
        assert http.get("/frequently_bought_together/no-such-item").status_code == 404
        assert http.get("/popular", params={"category": "no-such-category"}).status_code == 404
        assert http.get("/similar_items/bad id!").status_code == 422
        assert http.get("/popular", params={"k": 0}).status_code == 422
    assert similar["item_id"] == item and len(similar["items"]) == 5
    assert item not in {i["item_id"] for i in similar["items"]}
    scores = [i["score"] for i in similar["items"]]
    assert scores == sorted(scores, reverse=True)
    assert fbt.status_code == 200 and fbt.json()["item_id"] == item
    for pair in fbt.json()["items"]:
        assert pair["support"] >= api_models.settings.fbt_min_support and pair["lift"] >= 1
    assert len(popular["items"]) == 5 and popular["model_version"] == api_models.v1
    assert {i["category"] for i in in_category["items"]} == {category}


@pytest.mark.parametrize(("body", "field"), [
    ({"user_id": "bad id!"}, "body.user_id"),
    ({"user_id": "u1", "k": 0}, "body.k"),
    ({"user_id": "u1", "k": 101}, "body.k"),  # above api_max_k
    ({"user_id": "u1", "filters": {"min_price": 5, "max_price": 1}}, "body.filters"),
    ({"user_id": "u1", "unknown": 1}, "body.unknown"),
    ({"k": 3}, "body.user_id"),
])
def test_malformed_requests_get_422_naming_the_field(api: ApiServer, body: dict,
                                                     field: str) -> None:
    with api.client() as http:
        response = http.post("/recommendations", json=body)
    assert response.status_code == 422
    assert field in [p["field"] for p in response.json()["detail"]]


def test_size_limits(api: ApiServer, api_models: ApiModels) -> None:
    headers = token(api, "events")
    limit = api.settings.api_max_batch_events
    batch = [event("u1", "i1") for _ in range(limit + 1)]
    with api.client(headers=headers) as http:
        too_many = http.post("/events", json=batch)
        too_big = http.post("/recommendations", content=b"{" + b" " * 2_000_000 + b"}",
                            headers={"content-type": "application/json"})
        not_json = http.post("/events", content=b"{nope", headers={
            "content-type": "application/json"})
    assert too_many.status_code == 413
    assert too_many.json()["detail"][0]["message"].startswith(f"{limit + 1} events")
    assert too_big.status_code == 413 and "api_max_body_bytes" in too_big.json()["detail"]
    assert not_json.status_code == 422 and not_json.json()["detail"][0]["field"] == "$"


def test_events_are_validated_then_published(api: ApiServer, api_models: ApiModels) -> None:
    settings = api_models.settings
    good = [event(api_models.users[0], api_models.items[k]) for k in range(3)]
    bad = {**good[0], "event_type": "zap", "price": -1}
    with api.client(headers=token(api, "events")) as http:
        single = http.post("/events", json=good[0])
        batch = http.post("/events", json={"events": good[1:]})
        rejected = http.post("/events", json=[good[0], bad])
    assert single.status_code == 202 and single.json() == {"accepted": 1, "status": "published"}
    assert batch.json() == {"accepted": 2, "status": "published"}
    assert rejected.status_code == 422
    assert {p["field"] for p in rejected.json()["detail"]} == {"events[1].event_type",
                                                               "events[1].price"}
    ids = {e["event_id"] for e in good}
    found = consume(settings, settings.clickstream_topic, 3,
                    lambda v: json.loads(v)["event_id"] in ids)
    assert {json.loads(v)["event_id"] for v in found} == ids  # the rejected batch sent nothing


def test_impressions_and_serving_log_follow_each_response(api: ApiServer,
                                                          api_models: ApiModels) -> None:
    settings = api_models.settings
    with api.client() as http:
        body = http.post("/recommendations", json={"user_id": api_models.users[2], "k": 4,
                                                    "context": {"surface": "test"}}).json()
    rid = body["request_id"]
    impressions = json_lines(consume(settings, settings.clickstream_topic, 4,
                                     lambda v: json.loads(v).get("request_id") == rid))
    assert sorted(e["item_id"] for e in impressions) == sorted(i["item_id"] for i in
                                                               body["items"])
    for e in impressions:
        assert e["event_type"] == "impression" and e["model_version"] == api_models.v1
        assert e["context"]["arm"] == "champion" and e["context"]["surface"] == "test"
    [raw] = consume(settings, settings.serving_log_topic, 1,
                    lambda v: json.loads(v)["request_id"] == rid)
    record = ServingLogRecord.from_json_bytes(raw)
    assert record.item_ids == [i["item_id"] for i in body["items"]]
    assert record.scores == [i["score"] for i in body["items"]]
    assert record.model_version == api_models.v1 and not record.cold_start
    assert record.features and all(len(v) == 4 for v in record.features.values())
    # metadata rows are stamped with launch / sign-up times, before the first event:
    # they are online too (a materialize window from the first event left them out)
    for name in ("item_price", "item_in_stock", "item_age_days", "user_age",
                 "user_tenure_days"):
        assert all(math.isfinite(v) for v in record.features[name]), name


def test_write_and_admin_endpoints_need_tokens(api: ApiServer, api_models: ApiModels) -> None:
    one = event(api_models.users[0], api_models.items[0])
    with api.client() as http:
        missing = http.post("/events", json=one)
        forged = http.post("/events", json=one, headers={
            "Authorization": f"Bearer {make_token(api.settings, ['events'], key='k' * 40)}"})
        read_only = http.post("/events", json=one, headers=token(api, "read"))
        not_admin = http.post("/models/reload", headers=token(api, "events"))
        admin = http.post("/models/reload", headers=token(api, "admin"))
        open_read = http.get("/popular")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert forged.status_code == 401 and "invalid token" in forged.json()["detail"]
    assert read_only.status_code == 403 and not_admin.status_code == 403
    assert admin.status_code == 200 and admin.json()["arms"][0]["version"] == api_models.v1
    assert open_read.status_code == 200


def test_auth_for_reads_and_the_allowlist(api_models: ApiModels, serve) -> None:
    strict = serve(api_settings(api_models.settings, api_auth_mode="all",
                                api_publish_impressions=False))
    fenced = serve(api_settings(api_models.settings, api_allowed_cidrs="10.0.0.0/8",
                                api_trust_forwarded_for=True))
    with strict.client() as http:
        assert http.get("/popular").status_code in {401, 503}  # 401 even before models load
        assert http.get("/health").status_code == 200
        assert http.get("/metrics").status_code == 200
        strict.wait_ready()
        assert http.get("/popular").status_code == 401
        assert http.get("/popular", headers=token(strict, "read")).status_code == 200
    with fenced.client() as http:
        assert http.get("/popular").status_code == 403
        assert http.get("/health").status_code == 200
        # behind an ingress the client address is the last X-Forwarded-For hop
        fenced.wait_ready()
        assert http.get("/popular", headers={"X-Forwarded-For": "1.2.3.4, 10.1.2.3"}
                        ).status_code == 200


def test_metrics_use_the_contract_names(api: ApiServer, api_models: ApiModels) -> None:
    with api.client() as http:
        http.post("/recommendations", json={"user_id": api_models.users[0], "k": 3})
        http.post("/recommendations", json={"user_id": "bad id!"})
        text = http.get("/metrics").text
    v1, name = api_models.v1, api_models.settings.registered_model_name
    for line in [
        f'{contract.API_REQUEST_LATENCY}_count{{endpoint="/recommendations",method="POST"}}',
        f'{contract.API_REQUESTS}{{endpoint="/recommendations",method="POST",'
        'status="200"}',
        f'{contract.API_REQUESTS}{{endpoint="/recommendations",method="POST",'
        'status="422"}',
        f'{contract.API_VALIDATION_FAILURES}{{endpoint="/recommendations"}}',
        f'{contract.API_MODEL_INFO}{{arm="champion",model_name="{name}",version="{v1}"}} 1.0',
        f'{contract.API_SERVED_SCORE}_count{{arm="champion",model_version="{v1}"}}',
        f'{contract.API_EVENTS}{{outcome="published"}}',
        *(f'{contract.API_STAGE_LATENCY}_count{{stage="{s}"}}' for s in
          ("candidates", "features", "ranking", "rules")),
    ]:
        assert line in text, line


def _cache_count(text: str, result: str) -> float:
    from rollback.drill import _gauge  # the one Prometheus sample reader

    return _gauge(text, API_CANDIDATE_CACHE, result=result) or 0.0


def test_a_repeat_visit_reuses_the_versions_candidates(api: ApiServer,
                                                       api_models: ApiModels) -> None:
    user = api_models.users[7]
    with api.client() as http:
        before = http.get("/metrics").text
        first = http.post("/recommendations", json={"user_id": user, "k": 6}).json()
        again = http.post("/recommendations", json={"user_id": user, "k": 6}).json()
        cheap = http.post("/recommendations", json={"user_id": user, "k": 6,
                                                     "filters": {"max_price": 5.0}}).json()
        after = http.get("/metrics").text
    assert [i["item_id"] for i in again["items"]] == [i["item_id"] for i in first["items"]]
    assert {i["stage"] for i in again["items"]} == {"ranker"}
    assert all(i["price"] <= 5.0 for i in cheap["items"])
    # the second visit was a hit; the first and the one with other filters were searched
    assert _cache_count(after, "hit") - _cache_count(before, "hit") >= 1
    assert _cache_count(after, "miss") - _cache_count(before, "miss") >= 1


def test_openapi_documents_every_route(api: ApiServer) -> None:
    with api.client() as http:
        spec = http.get("/openapi.json").json()
    assert set(spec["paths"]) >= {"/recommendations", "/similar_items/{item_id}",
                                  "/frequently_bought_together/{item_id}", "/popular",
                                  "/events", "/health", "/ready", "/metrics", "/models",
                                  "/models/reload"}
    assert "ClickstreamEvent" in spec["components"]["schemas"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_python_m_api_serves_and_stops_on_sigterm(api_models: ApiModels) -> None:
    settings = api_settings(api_models.settings, api_auth_mode="off")
    env = {**os.environ, **settings_env(settings)}
    proc = subprocess.Popen([sys.executable, "-m", "api"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{settings.api_port}"
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"{url}/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 120, "python -m api to be ready")
        user = api_models.users[0]
        body = httpx.post(f"{url}/recommendations", json={"user_id": user, "k": 3}).json()
        assert body["model_version"] == api_models.v1 and len(body["items"]) == 3
        assert body["arm"] == arm_for(user, settings.api_challenger_share, settings.api_ab_salt)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    # a graceful stop: uvicorn runs the shutdown, then re-raises SIGTERM (exit -15)
    assert proc.returncode in {0, -signal.SIGTERM}, output[-2000:]
    assert "Application shutdown complete" in output


def test_unknown_user_request_id_is_unique(api: ApiServer) -> None:
    with api.client() as http:
        ids = {http.post("/recommendations", json={"user_id": f"new-{uuid.uuid4().hex[:8]}",
                                                   "k": 2}).json()["request_id"]
               for _ in range(5)}
    assert len(ids) == 5
