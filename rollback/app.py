"""The rollback service's HTTP interface.

``POST /alerts`` (Alertmanager webhook), ``POST /rollback`` (manual override),
``GET /health``, ``GET /history`` (MLflow runs), ``GET /decisions`` (recent decisions,
also ignored alerts), ``GET /metrics``.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from recsys.settings import Settings
from rollback.alerts import AlertmanagerWebhook, ManualRollback
from rollback.engine import RollbackEngine, RollbackRefused
from rollback.watcher import MetricsWatcher


def authorize(settings: Settings, authorization: str | None) -> str | None:
    """The caller's name if a token was required and valid; None when the endpoint is open.

    Accepts ``RECSYS_ROLLBACK_ADMIN_TOKEN`` as a bearer token, or a JWT signed with the
    API's ``RECSYS_API_JWT_SECRET`` (when the API's auth is on).
    """
    token = settings.rollback_admin_token
    jwt_secret = getattr(settings, "api_jwt_secret", None)
    jwt_on = jwt_secret is not None and getattr(settings, "api_auth_mode", "off") != "off"
    if token is None and not jwt_on:
        return None
    scheme, _, bearer = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not bearer:
        raise HTTPException(401, "Authorization: Bearer <token> required",
                            headers={"WWW-Authenticate": "Bearer"})
    if token is not None and hmac.compare_digest(bearer.encode(),
                                                 token.get_secret_value().encode()):
        return "admin-token"
    if jwt_on:
        import jwt

        try:
            claims = jwt.decode(bearer, jwt_secret.get_secret_value(),
                                algorithms=[settings.api_jwt_algorithm],
                                issuer=settings.api_jwt_issuer,
                                audience=settings.api_jwt_audience)
        except jwt.PyJWTError as exc:
            raise HTTPException(401, f"invalid token: {exc}") from None
        return str(claims.get("sub") or "jwt")
    raise HTTPException(401, "invalid token")


def create_app(settings: Settings, engine: RollbackEngine | None = None) -> FastAPI:
    state: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["engine"] = engine or RollbackEngine(settings)
        state["engine"].warm_up()
        watcher = None
        if settings.rollback_watch_url:
            watcher = MetricsWatcher(state["engine"], settings.rollback_watch_url)
            watcher.start()
        yield
        if watcher is not None:
            watcher.stop()
        state["engine"].close()

    app = FastAPI(title="recsys rollback", lifespan=lifespan)

    def _engine() -> RollbackEngine:
        return state["engine"]  # type: ignore[return-value]

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/alerts")
    async def alerts(payload: AlertmanagerWebhook) -> dict:
        decisions = await run_in_threadpool(_engine().on_webhook, payload)
        return {"decisions": [d.as_dict() for d in decisions]}

    @app.post("/rollback")
    async def manual(body: ManualRollback,
                     authorization: Annotated[str | None, Header()] = None) -> dict:
        subject = authorize(settings, authorization)
        who = body.who or subject or "manual"
        try:
            decision = await run_in_threadpool(_engine().manual, who, body.reason,
                                               body.to_version, body.gradual)
        except RollbackRefused as exc:
            raise HTTPException(409, str(exc)) from None
        if decision.action == "no_stable_version":
            raise HTTPException(409, decision.reason)
        return decision.as_dict()

    @app.get("/history")
    async def history(limit: Annotated[int, Query(ge=1, le=500)] = 20) -> dict:
        return {"rollbacks": await run_in_threadpool(_engine().history, limit)}

    @app.get("/decisions")
    async def decisions() -> dict:
        return {"decisions": [d.as_dict() for d in _engine().decisions]}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(_engine().metrics), media_type=CONTENT_TYPE_LATEST)

    return app


def main(settings: Settings | None = None) -> None:
    import logging

    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = settings or Settings()
    # uvicorn handles SIGTERM/SIGINT: stops accepting, runs the lifespan shutdown.
    uvicorn.run(create_app(settings), host=settings.rollback_host, port=settings.rollback_port,
                log_level="info")
