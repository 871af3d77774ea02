"""One pure-ASGI middleware in front of the app: allowlist, rate limit, body-size limit,
metrics.

Pure ASGI (not Starlette's BaseHTTPMiddleware) because it sits on every request of a
millisecond budget. The route label is the matched route's template (``scope["route"]``,
set by the router), so ``/similar_items/{item_id}`` is one series, not one per item.
Requests refused here (403, 429, 413 on ``Content-Length``) never reach the router: their
route label is ``other``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from api.metrics import ApiMetrics
from api.ratelimit import RateLimiter
from api.security import Allowlist, JwtVerifier

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Probes must answer from anywhere the orchestrator runs them.
OPEN_PATHS = frozenset({"/health", "/ready"})


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; FastAPI renders it as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes (api_max_body_bytes)")


async def send_json(send: Send, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


def client_host(scope: Scope, trust_forwarded_for: bool) -> str | None:
    if trust_forwarded_for:
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                # the last hop is the address the (trusted) ingress saw
                return value.decode("latin-1").split(",")[-1].strip()
    client = scope.get("client")
    return client[0] if client else None


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return value.decode("latin-1")
    return None


class GuardMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics, allowlist: Allowlist,
                 max_body_bytes: int, trust_forwarded_for: bool = False,
                 limiter: RateLimiter | None = None,
                 verifier: JwtVerifier | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.allowlist = allowlist
        self.max_body = max_body_bytes
        self.trust_xff = trust_forwarded_for
        self.limiter = limiter
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        status_box = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            host = client_host(scope, self.trust_xff)
            if path not in OPEN_PATHS and not self.allowlist.allows(host):
                await send_json(send_wrapper, 403, {"detail": "client address not allowed"})
                return
            if self.limiter is not None and path not in OPEN_PATHS:
                wait = self._rate_limited(scope, host)
                if wait:
                    await self._too_many(send_wrapper, wait)
                    return
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body:
                await self._too_large(send_wrapper, path)
                return
            await self.app(scope, self._limited(receive, path), send_wrapper)
        except BodyTooLarge as exc:  # raised outside FastAPI's exception handling
            await send_json(send_wrapper, 413, {"detail": exc.detail})
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "other"
            self.metrics.observe_request(endpoint, scope["method"], status_box[0],
                                         time.perf_counter() - started)

    def _rate_limited(self, scope: Scope, host: str | None) -> float:
        """Seconds this client must wait (0: go on); a client is its verified JWT subject,
        else its address, so a forged token cannot open a fresh bucket."""
        assert self.limiter is not None
        subject = self.verifier.subject(_header(scope, b"authorization")) if (
            self.verifier is not None) else None
        kind, key = ("subject", f"sub:{subject}") if subject else ("address", f"ip:{host}")
        wait = self.limiter.acquire(key)
        if wait:
            self.metrics.rate_limited.labels(kind).inc()
        return wait

    async def _too_many(self, send: Send, wait: float) -> None:
        limiter = self.limiter
        assert limiter is not None
        retry = max(1, math.ceil(wait))
        await send_json(send, 429, {"detail": (
            f"rate limit exceeded: {limiter.rate:g} requests/s per client, bursts of "
            f"{limiter.burst:g} (api_rate_limit_per_s, api_rate_limit_burst); retry in "
            f"{retry} s")}, [(b"retry-after", str(retry).encode())])

    def _limited(self, receive: Receive, path: str) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    self._count(path)
                    raise BodyTooLarge(self.max_body)
            return message

        return limited

    def _count(self, path: str) -> None:
        self.metrics.validation_failures.labels(path if path in _KNOWN else "other").inc()

    async def _too_large(self, send: Send, path: str) -> None:
        self._count(path)
        await send_json(send, 413, {"detail": BodyTooLarge(self.max_body).detail})


_KNOWN = frozenset({"/recommendations", "/events"})


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
