"""The running API's security over real HTTP: the per-client rate limit, and no secret
(JWT secret, bearer tokens, Redis and PostgreSQL passwords) in what it logs or answers.

Real stack, real ranker versions loaded from MLflow (``tests/test_api_support.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr

from api.metrics import API_RATE_LIMITED
from api.security import make_token
from recsys.settings import settings_env
from recsys.stack import free_port
from tests import test_api_support as support
from tests.test_api_support import ApiModels, ApiServer, api_settings, event, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
api_models, serve = support.api_models, support.serve  # the shared fixtures


def bearer(server: ApiServer, *scopes: str, subject: str = "recsys") -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(server.settings, scopes, subject=subject)}"}


def test_rate_limit_per_client_over_real_http(api_models: ApiModels, serve) -> None:
    # 0.1/s: one token every 10 s, so nothing refills while the test runs
    server = serve(api_settings(api_models.settings, api_rate_limit_per_s=0.1,
                                api_rate_limit_burst=3))
    server.wait_ready()  # /ready is exempt: probes never use up a client's budget
    alice, bob = bearer(server, "read", subject="alice"), bearer(server, "read", subject="bob")
    scraper = bearer(server, "read", subject="prometheus")
    with server.client() as http:
        allowed = [http.get("/models", headers=alice).status_code for _ in range(3)]
        refused = http.post("/recommendations", headers=alice, json={
            "user_id": api_models.users[0], "k": 3})
        other_subject = http.get("/models", headers=bob)
        anonymous = [http.get("/popular").status_code for _ in range(4)]
        probes = {http.get(path).status_code for path in ("/health", "/ready") * 5}
        metrics = http.get("/metrics", headers=scraper).text
        spec = http.get("/openapi.json", headers=scraper).json()
    assert allowed == [200, 200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert "rate limit exceeded" in refused.json()["detail"]
    assert other_subject.status_code == 200  # bob has his own bucket
    assert anonymous == [200, 200, 200, 429]  # no token: the client address's bucket
    assert probes == {200}
    assert f'{API_RATE_LIMITED}{{client="subject"}} 1.0' in metrics
    assert f'{API_RATE_LIMITED}{{client="address"}} 1.0' in metrics
    responses = spec["paths"]["/recommendations"]["post"]["responses"]
    assert "429" in responses and "Retry-After" in responses["429"]["headers"]


def test_no_secret_in_the_logs_or_answers(api_models: ApiModels, tmp_path: Path) -> None:
    """``python -m api`` (its real start-up, access log on) with a password-protected Redis
    user, a PostgreSQL DSN with a password and every secret setting filled; then authenticated
    and refused requests, and Redis failing under it. Nothing secret may reach its output."""
    base = api_models.settings
    tag = uuid.uuid4().hex[:10]
    secrets = {"jwt": f"jwt-secret-{tag}-{'j' * 32}", "redis": f"redis-pw-{tag}",
               "postgres": f"pg-pw-{tag}", "sasl": f"sasl-pw-{tag}",
               "rollback": f"rollback-token-{tag}"}
    admin_redis = redis.Redis.from_url(base.redis_url)
    user = f"api-{tag}"
    admin_redis.acl_setuser(user, enabled=True, passwords=[f"+{secrets['redis']}"],
                            commands=["+@all"], keys=["*"], channels=["*"])
    settings = api_settings(
        base, api_auth_mode="writes", api_jwt_secret=SecretStr(secrets["jwt"]),
        redis_url=f"redis://{user}:{secrets['redis']}@{base.redis_host}:{base.redis_port}/"
                  f"{base.redis_db}",
        # the API does not use PostgreSQL, but the DSN is in its settings; the Feast registry
        # and MLflow's backend stay where the test stack keeps them
        postgres_dsn=f"postgresql://recsys:{secrets['postgres']}@127.0.0.1:{free_port()}/recsys",
        feast_registry_path=base.feast_registry, mlflow_backend_uri=base.mlflow_backend,
        broker_sasl_password=SecretStr(secrets["sasl"]),
        rollback_admin_token=SecretStr(secrets["rollback"]), api_access_log=True,
        api_alias_poll_s=0.5)
    tokens = {"events": make_token(settings, ["events"], subject="producer"),
              "admin": make_token(settings, ["admin"], subject="operator"),
              "expired": make_token(settings, ["events"], ttl_s=-60),
              "forged": make_token(settings, ["events"], key="f" * 40)}
    log_path = tmp_path / "api.log"
    url = f"http://127.0.0.1:{settings.api_port}"
    answers: list[httpx.Response] = []
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "api"], stdout=log_file,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, **settings_env(settings)})
        try:
            wait_for(lambda: _ready(url), 120, "python -m api to be ready")
            with httpx.Client(base_url=url, timeout=10) as http:
                one = event(api_models.users[0], api_models.items[0])
                for token in tokens.values():  # events, admin, expired, forged
                    auth = {"Authorization": f"Bearer {token}"}
                    answers.append(http.post("/events", json=one, headers=auth))
                    answers.append(http.post("/models/reload", headers=auth))
                answers.append(http.post("/recommendations", json={
                    "user_id": api_models.users[0], "k": 5}))
                answers += [http.get(p) for p in ("/ready", "/models", "/metrics", "/health")]
                # Redis refuses the API's user from now on: the error paths log
                admin_redis.acl_deluser(user)
                answers.append(http.post("/recommendations", json={
                    "user_id": api_models.users[0], "k": 5}))
                answers.append(http.get("/ready"))
        finally:
            with_user = admin_redis.acl_getuser(user)
            if with_user:
                admin_redis.acl_deluser(user)
            admin_redis.close()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    output = log_path.read_text(errors="replace")
    status = [a.status_code for a in answers]
    # the requests did what they should (so the paths that log were taken)
    assert status[:4] == [202, 403, 403, 200]  # events token; admin token on /events
    assert status[4:8] == [401, 401, 401, 401]  # expired, forged
    assert status[8:13] == [200, 200, 200, 200, 200]
    assert answers[13].status_code == 200 and answers[13].json()["fallback"] == (
        "redis_unavailable")
    assert answers[14].status_code == 503 and answers[14].json()["checks"]["redis"] != "ok"
    assert "Application startup complete" in output and '"POST /events HTTP/1.1" 202' in output
    assert "Application shutdown complete" in output
    leaked = {name: value for name, value in {**secrets, **tokens}.items()
              if value in output or any(value in a.text for a in answers)}
    assert not leaked, f"in the log or answers: {sorted(leaked)}"
    for token in tokens.values():  # not even the signature part of a token
        assert token.rsplit(".", 1)[1] not in output


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
