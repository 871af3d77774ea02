"""The API's per-client rate limit: token buckets (``api.ratelimit``) and the 429s the guard
middleware answers with. The same over real HTTP: ``tests/test_api_security.py``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest

from api.metrics import API_RATE_LIMITED, ApiMetrics
from api.middleware import GuardMiddleware
from api.ratelimit import RateLimiter
from api.security import Allowlist, JwtVerifier, make_token
from recsys.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)  # one token every 1/2 s
    clock.now += 0.25
    assert limiter.acquire("a") == pytest.approx(0.25)  # a refusal takes no token
    clock.now += 0.25
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    clock.now += 100  # refill stops at the burst
    assert [limiter.acquire("a") == 0.0 for _ in range(4)] == [True, True, True, False]


def test_clients_have_their_own_buckets_and_burst_defaults_to_the_rate() -> None:
    limiter = RateLimiter(2.5, clock=Clock())
    assert limiter.burst == 3 == math.ceil(2.5)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0] * 3
    assert limiter.acquire("a") > 0 and limiter.acquire("b") == 0.0
    assert RateLimiter(0.1).burst == 1
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_idle_buckets_are_dropped_without_changing_what_a_client_sees() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, burst=2, clock=clock)
    for key in ("a", "b", "c"):
        limiter.acquire(key)
    assert len(limiter) == 3
    clock.now += 1.0
    limiter.acquire("c")
    assert len(limiter) == 3  # only buckets idle for burst / rate = 2 s are dropped
    clock.now += 1.0  # a and b: 2 s idle = full again, so they go; c was seen 1 s ago
    limiter.acquire("d")
    assert len(limiter) == 2
    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]  # a fresh, full bucket
    assert limiter.acquire("a") > 0


def test_memory_is_bounded_by_max_clients() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, burst=5, max_clients=100, clock=clock)
    for n in range(10_000):  # a scan from many addresses, none idle long enough to go
        limiter.acquire(f"ip:{n}")
        assert len(limiter) <= 100
    assert len(limiter) == 100
    limiter.acquire("ip:9999")
    limiter.acquire("ip:9999")
    assert len(limiter) == 100  # the most recent clients are the ones kept
    assert limiter.acquire("ip:9999") == 0.0 and limiter.acquire("ip:0") == 0.0


def test_from_settings_is_off_by_default() -> None:
    assert RateLimiter.from_settings(Settings(_env_file=None)) is None
    limiter = RateLimiter.from_settings(Settings(
        _env_file=None, api_rate_limit_per_s=5, api_rate_limit_burst=8,
        api_rate_limit_clients=50))
    assert limiter is not None
    assert (limiter.rate, limiter.burst, limiter.max_clients) == (5.0, 8.0, 50)


# --- the middleware --------------------------------------------------------------------

SECRET = "s" * 40


async def ok_app(scope: dict, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def guarded(limiter: RateLimiter, metrics: ApiMetrics) -> tuple[GuardMiddleware, Settings]:
    settings = Settings(_env_file=None, api_auth_mode="writes", api_jwt_secret=SECRET)
    return GuardMiddleware(ok_app, metrics, Allowlist(()), 1_000_000, limiter=limiter,
                           verifier=JwtVerifier(settings)), settings


def statuses(app: GuardMiddleware, requests: list[tuple[str, dict[str, str]]],
             client: tuple[str, int] = ("10.0.0.1", 5000)) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            return [await http.get(path, headers=headers) for path, headers in requests]

    return asyncio.run(run())


def test_over_the_limit_is_429_with_retry_after_and_a_reason() -> None:
    metrics = ApiMetrics()
    app, _ = guarded(RateLimiter(0.5, burst=2, clock=Clock()), metrics)
    answers = statuses(app, [("/popular", {})] * 3 + [("/health", {}), ("/ready", {})])
    assert [a.status_code for a in answers] == [200, 200, 429, 200, 200]  # probes exempt
    refused = answers[2]
    assert refused.headers["retry-after"] == "2"  # 1 token / 0.5 per s, whole seconds
    assert refused.headers["content-type"] == "application/json"
    assert "rate limit exceeded" in refused.json()["detail"]
    assert "api_rate_limit_per_s" in refused.json()["detail"]
    text = generate_latest(metrics.registry).decode()
    assert f'{API_RATE_LIMITED}{{client="address"}} 1.0' in text
    assert 'recsys_requests_total{endpoint="other",method="GET",status="429"} 1.0' in text


def test_clients_are_keyed_by_verified_subject_else_address() -> None:
    metrics = ApiMetrics()
    app, settings = guarded(RateLimiter(0.1, burst=1, clock=Clock()), metrics)

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    alice = bearer(make_token(settings, ["read"], subject="alice"))
    alice_again = bearer(make_token(settings, ["events"], subject="alice", ttl_s=600))
    bob = bearer(make_token(settings, ["read"], subject="bob"))
    forged = bearer(make_token(settings, ["read"], subject="carol", key="k" * 40))
    answers = statuses(app, [("/x", alice), ("/x", alice_again), ("/x", bob), ("/x", {}),
                             ("/x", forged), ("/x", {"Authorization": "Bearer garbage"})])
    # alice's second token shares her bucket; bob has his own; the anonymous request takes
    # the address's bucket, and forged or garbled tokens count as that address too
    assert [a.status_code for a in answers] == [200, 429, 200, 200, 429, 429]
    other_address = statuses(app, [("/x", {})], client=("10.0.0.2", 5000))
    assert other_address[0].status_code == 200
    text = generate_latest(metrics.registry).decode()
    assert f'{API_RATE_LIMITED}{{client="subject"}} 1.0' in text
    assert f'{API_RATE_LIMITED}{{client="address"}} 2.0' in text


def test_no_limiter_no_limit() -> None:
    app = GuardMiddleware(ok_app, ApiMetrics(), Allowlist(()), 1_000_000)
    assert {a.status_code for a in statuses(app, [("/popular", {})] * 50)} == {200}
