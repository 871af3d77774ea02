"""The FastAPI application: routes, auth, error bodies, start-up and shutdown.

``create_app(settings)`` wires the parts (:class:`Services`); ``python -m api`` (or
``recsys api serve``) runs it under uvicorn. Models load in the background after start:
``/health`` answers at once, ``/ready`` once the champion is loaded and Redis and the
broker answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pathlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import numpy as np
import pydantic_core
from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from threadpoolctl import threadpool_limits

from api.ab import CHAMPION
from api.breaker import CircuitBreaker
from api.features import FeatureFetcher, make_fetcher
from api.metrics import ApiMetrics
from api.middleware import GuardMiddleware
from api.models import ModelManager, ServedModel, freeze_survivors
from api.outbox import Outbox, Ticket, default_producer_factory
from api.publisher import ProcessOutbox
from api.ratelimit import RateLimiter
from api.recommend import NoModel, Recommender
from api.schemas import (
    EventsAccepted,
    FrequentlyBoughtTogetherResponse,
    ModelsResponse,
    PopularResponse,
    Reason,
    RecommendationRequest,
    RecommendationResponse,
    SimilarItemsResponse,
    Status,
    ValidationProblems,
)
from api.security import ADMIN, EVENTS, READ, Allowlist, AuthError, JwtVerifier, parse_cidrs
from api.serving_log import Record
from feature_repo.events import ID_PATTERN, ClickstreamEvent, EventValidationError, parse_event
from recsys.settings import Settings
from retrieval.index import top_n

log = logging.getLogger(__name__)
ItemId = Path(pattern=ID_PATTERN, description="An item id of the catalogue.")


@dataclass
class Services:
    settings: Settings
    metrics: ApiMetrics
    manager: ModelManager
    fetcher: FeatureFetcher
    redis_breaker: CircuitBreaker
    broker_breaker: CircuitBreaker
    outbox: Outbox | ProcessOutbox
    verifier: JwtVerifier
    recommender: Recommender

    @classmethod
    def build(cls, settings: Settings, metrics: ApiMetrics | None = None,
              manager: ModelManager | None = None, fetcher: FeatureFetcher | None = None,
              producer_factory: Callable[[], Any] | None = None) -> Services:
        from ranking.features import ITEM_FEATURE_REFS, USER_FEATURE_REFS

        metrics = metrics or ApiMetrics()
        verifier = JwtVerifier(settings)  # fails fast on unusable auth settings
        redis_breaker = CircuitBreaker("redis", settings.api_breaker_failures,
                                       settings.api_breaker_reset_s,
                                       on_change=metrics.set_circuit)
        broker_breaker = CircuitBreaker("broker", settings.api_breaker_failures,
                                        settings.api_breaker_reset_s,
                                        on_change=metrics.set_circuit)
        manager = manager or ModelManager(settings, metrics)
        fetcher = fetcher or make_fetcher(settings, USER_FEATURE_REFS, ITEM_FEATURE_REFS, metrics)
        outbox: Outbox | ProcessOutbox
        if settings.api_publisher == "process" and producer_factory is None:
            outbox = ProcessOutbox(settings, metrics)
        else:
            outbox = Outbox(settings.api_event_buffer_size, broker_breaker, metrics,
                            producer_factory or default_producer_factory(settings),
                            (settings.serving_log_topic, settings.clickstream_topic))
        recommender = Recommender(settings, manager, fetcher, redis_breaker, outbox, metrics)
        return cls(settings, metrics, manager, fetcher, redis_breaker, broker_breaker, outbox,
                   verifier, recommender)


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    # One BLAS/OpenMP thread: a request is a few small matrix products, and on two cores
    # extra threads only spin against the event loop (top-200 of 100K: 1.2 ms with one
    # thread, 11 ms with two under load).
    threadpool_limits(1)
    services = services or Services.build(settings)
    allowlist = Allowlist(parse_cidrs(settings.api_allowed_cidrs))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.outbox.start()
        tasks = [asyncio.create_task(_follow_aliases(services))]
        if settings.api_gc_freeze_s > 0:
            tasks.append(asyncio.create_task(freeze_survivors(settings.api_gc_freeze_s,
                                                           settings.api_gc_sweep_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.fetcher.close()
            await asyncio.to_thread(services.outbox.stop)

    app = FastAPI(
        title="recsys serving API",
        version="1.0",
        description="Real-time recommendations: ALS candidates → Feast online features → "
                    "ONNX LambdaRank → business rules, with an A/B split between the MLflow "
                    "champion and challenger and hot swap when their aliases move.",
        lifespan=lifespan,
        # metrics are Prometheus's (ApiMetrics); FastAPI's native OpenTelemetry hooks
        # would only cost each request a look-up of providers nobody configured
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.add_middleware(GuardMiddleware, metrics=services.metrics, allowlist=allowlist,
                       max_body_bytes=settings.api_max_body_bytes,
                       trust_forwarded_for=settings.api_trust_forwarded_for,
                       limiter=RateLimiter.from_settings(settings), verifier=services.verifier)
    _install_error_handlers(app, services)
    _routes(app, services)
    _console(app, services)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


CONSOLE_DIR = pathlib.Path(__file__).parent / "console"


def _console(app: FastAPI, services: Services) -> None:
    """The web console (static files, no build step) and the monitor's metrics it charts."""
    settings = services.settings
    monitor_url = f"http://{settings.monitor_host}:{settings.monitor_port}/metrics"

    @app.get("/console", include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse("/console/")

    @app.get("/monitoring/metrics", tags=["operations"], response_class=Response,
             responses=_refusals(services, None, 503))
    async def monitor_metrics() -> Response:
        """The drift/CTR monitor's Prometheus metrics, relayed for the console."""
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                answer = await client.get(monitor_url)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            return _json({"detail": f"the monitor at {monitor_url} did not answer: {exc}"}, 503)
        return Response(answer.content, media_type="text/plain; version=0.0.4")

    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the event contract, which POST /events reads by hand."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        event = ClickstreamEvent.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(event.pop("$defs", {}))
        components["ClickstreamEvent"] = event
        # the model allows up to 1000; the route enforces the configured api_max_k
        max_k = app.state.services.settings.api_max_k
        components["RecommendationRequest"]["properties"]["k"]["maximum"] = max_k
        app.openapi_schema = schema
    return app.openapi_schema


async def _follow_aliases(services: Services) -> None:
    """Load at start (retrying until the registry answers), then poll the aliases."""
    manager, interval = services.manager, services.settings.api_alias_poll_s
    while True:
        try:
            await asyncio.to_thread(manager.refresh)
        except Exception:  # the poller must survive anything
            log.exception("alias refresh failed")
        if manager.state.champion is not None and interval <= 0:
            return
        await asyncio.sleep(interval if interval > 0 else 2.0)


# --- auth -------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="JWT with the scopes the route needs.")


def requires(services: Services, scope: str) -> Callable[..., Any]:
    """The route's auth dependency. It declares the bearer scheme (so OpenAPI lists it) only
    where this auth mode needs a token for ``scope``."""
    verifier = services.verifier
    if not verifier.required(scope):
        async def no_token_needed() -> None:
            return None

        return no_token_needed

    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> None:
        header = f"Bearer {credentials.credentials}" if credentials else None
        try:
            verifier.check(header, scope)
        except AuthError as exc:
            headers = ({"WWW-Authenticate": 'Bearer error="invalid_token"'}
                       if exc.status == 401 else None)
            raise HTTPException(exc.status, exc.message, headers=headers) from None

    return check


# --- errors -----------------------------------------------------------------------------

Responses = dict[int | str, dict[str, Any]]


def _refusals(services: Services, scope: str | None, *codes: int) -> Responses:
    """OpenAPI entries for the refusals a route can answer with in these settings: ``codes``
    (404, 413, 503) plus 401/403 where ``scope`` needs a token, 403 with an allowlist, 429
    with a rate limit."""
    settings = services.settings
    text = {404: "Unknown id or category", 413: "Body or batch too large",
            503: "A dependency is unavailable (no model loaded, broker buffer full, monitor "
                 "away)"}
    out: Responses = {code: {"model": Reason, "description": text[code]} for code in codes}
    if 413 in out and scope == EVENTS:  # the batch limit names its field, like a 422
        out[413]["model"] = Reason | ValidationProblems
    if scope is not None and services.verifier.required(scope):
        out[401] = {"model": Reason, "description": "No, invalid or expired bearer token"}
        out[403] = {"model": Reason, "description": f"Token without the '{scope}' scope, or a "
                                                    "client outside api_allowed_cidrs"}
    elif settings.api_allowed_cidrs.strip():
        out[403] = {"model": Reason, "description": "Client outside api_allowed_cidrs"}
    if settings.api_rate_limit_per_s > 0:
        out[429] = {"model": Reason, "description": "Over the client's rate limit",
                    "headers": {"Retry-After": {"description": "Seconds until a retry may pass",
                                                "schema": {"type": "integer"}}}}
    return out



def problems(status: int, items: list[tuple[str, str]], services: Services, endpoint: str,
             headers: dict[str, str] | None = None) -> JSONResponse:
    services.metrics.validation_failures.labels(endpoint).inc()
    return JSONResponse({"detail": [{"field": f, "message": m} for f, m in items]},
                        status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI, services: Services) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err.get("loc", ())) or "$"
            items.append((field, str(err.get("msg", "invalid")).removeprefix("Value error, ")))
        return problems(422, items, services, _endpoint(request))


def _endpoint(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "other"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # pydantic-core's encoder: a recommendation body in 12 µs, against 59 µs through json
    return Response(pydantic_core.to_json(body), status_code=status,
                    media_type="application/json", headers=headers)


def _champion(services: Services) -> ServedModel:
    model = services.manager.state.champion
    if model is None:
        raise HTTPException(503, "no model is loaded yet")
    return model


def _item_index(model: ServedModel, item_id: str) -> int:
    index = model.retrieval.item_index(item_id)
    if index is None:
        raise HTTPException(404, f"unknown item_id {item_id!r}")
    return index


# --- routes -----------------------------------------------------------------------------


def _routes(app: FastAPI, services: Services) -> None:
    settings = services.settings
    read = Depends(requires(services, READ))
    write = Depends(requires(services, EVENTS))
    admin = Depends(requires(services, ADMIN))
    k_query = Query(10, ge=1, le=settings.api_max_k, description="How many items.")
    problems_422 = {422: {"model": ValidationProblems}}
    not_found = {**_refusals(services, READ, 404, 503), **problems_422}

    @app.post("/recommendations", response_model=RecommendationResponse, dependencies=[read],
              responses={**_refusals(services, READ, 413, 503), **problems_422},
              tags=["recommendations"])
    async def recommendations(body: RecommendationRequest, request: Request) -> Response:
        """Top-k items for a user: candidates → online features → ONNX ranking → rules."""
        if body.k > settings.api_max_k:
            return problems(422, [("body.k", f"must be at most {settings.api_max_k} "
                                             "(api_max_k)")], services, "/recommendations")
        try:
            served = await services.recommender.recommend(body)
        except NoModel as exc:
            raise HTTPException(503, str(exc)) from None
        return _json(served.body, headers={"Server-Timing": served.server_timing})

    @app.get("/similar_items/{item_id}", response_model=SimilarItemsResponse,
             dependencies=[read], responses=not_found, tags=["recommendations"])
    async def similar_items(item_id: str = ItemId, k: int = k_query) -> Response:
        """Items like this one: ALS cosine blended with co-occurrence."""
        model = _champion(services)
        idx, scores = model.similar.similar(_item_index(model, item_id), k)
        return _json({"item_id": item_id, "model_version": model.version,
                      "items": _scored(model, idx, scores)})

    @app.get("/frequently_bought_together/{item_id}",
             response_model=FrequentlyBoughtTogetherResponse, dependencies=[read],
             responses=not_found, tags=["recommendations"])
    async def frequently_bought_together(item_id: str = ItemId, k: int = k_query) -> Response:
        """Items bought with this one, by confidence then lift (min support applies)."""
        model = _champion(services)
        pairs = model.fbt.for_item(_item_index(model, item_id), k)
        category = model.catalogue.category_of
        return _json({"item_id": item_id, "model_version": model.version, "items": [
            {"item_id": str(model.retrieval.item_ids[p.item]),
             "title": model.catalogue.title_of[p.item], "support": p.support,
             "confidence": p.confidence, "lift": p.lift, "category": category[p.item]}
            for p in pairs]})

    @app.get("/popular", response_model=PopularResponse, dependencies=[read],
             responses=not_found, tags=["recommendations"])
    async def popular(k: int = k_query,
                      category: str | None = Query(None, min_length=1, max_length=100)
                      ) -> Response:
        """Recency-weighted popularity, overall or within one category."""
        model = _champion(services)
        key = (category, k)
        items = model.popular_cache.get(key)
        if items is None:
            scores = model.retrieval.popularity.scores
            if category is not None:
                if category not in model.catalogue.category_index:
                    raise HTTPException(404, f"unknown category {category!r}")
                scores = np.where(model.catalogue.mask([category]), scores, -np.inf)
            idx = top_n(np.asarray(scores, dtype=np.float32), k)
            items = model.popular_cache[key] = _scored(model, idx, np.asarray(scores)[idx])
        return _json({"category": category, "model_version": model.version, "items": items})

    batch = {"type": "array", "items": {"$ref": "#/components/schemas/ClickstreamEvent"},
             "minItems": 1, "maxItems": settings.api_max_batch_events}

    @app.post("/events", status_code=202, response_model=EventsAccepted, dependencies=[write],
              tags=["events"], responses={**_refusals(services, EVENTS, 413, 503), **problems_422},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": {"oneOf": [
                      {"$ref": "#/components/schemas/ClickstreamEvent"}, batch,
                      {"type": "object", "properties": {"events": batch}, "required": ["events"],
                       "additionalProperties": False}]}}}}})
    async def events(request: Request) -> Response:
        """One event, a JSON array of events or ``{"events": [...]}``: validated (all or
        nothing), then published to the clickstream topic."""
        return await _publish_events(services, await request.body())

    @app.get("/health", response_model=Status, tags=["operations"])
    async def health() -> Response:
        """The process serves."""
        return _json({"status": "ok"})

    @app.get("/ready", response_model=Status, tags=["operations"],
             responses={503: {"model": Status}})
    async def ready() -> Response:
        """Ready when the champion is loaded and Redis and the broker answer."""
        checks, ok = await _readiness(services)
        return _json({"status": "ready" if ok else "not ready", "checks": checks},
                     200 if ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses=_refusals(services, None))
    async def metrics() -> Response:
        """Prometheus text format."""
        services.metrics.event_buffer.set(len(services.outbox))
        return Response(generate_latest(services.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    @app.get("/models", response_model=ModelsResponse, dependencies=[read],
             tags=["operations"], responses=_refusals(services, READ))
    async def models() -> Response:
        """Aliases in the registry, what each arm serves, versions refused."""
        return _json(services.manager.describe())

    @app.post("/models/reload", response_model=ModelsResponse, dependencies=[admin],
              tags=["operations"], responses=_refusals(services, ADMIN))
    async def reload_models() -> Response:
        """Read the aliases now (the API also polls them every api_alias_poll_s)."""
        await asyncio.to_thread(services.manager.refresh)
        return _json(services.manager.describe())


def _scored(model: ServedModel, idx: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    ids, category, title = (model.retrieval.item_ids, model.catalogue.category_of,
                            model.catalogue.title_of)
    return [{"item_id": str(ids[i]), "title": title[i], "score": float(s), "category": category[i]}
            for i, s in zip(idx.tolist(), np.asarray(scores).tolist(), strict=True)]


async def _publish_events(services: Services, raw: bytes) -> Response:
    settings, endpoint = services.settings, "/events"
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return problems(422, [("$", f"invalid JSON: {exc}")], services, endpoint)
    single = isinstance(payload, dict) and "events" not in payload
    if single:
        items = [payload]
    elif isinstance(payload, dict) and set(payload) == {"events"}:
        items = payload["events"]
    else:
        items = payload
    if not isinstance(items, list):
        return problems(422, [("$", "expected an event, a JSON array of events or "
                                    '{"events": [...]}')], services, endpoint)
    if len(items) > settings.api_max_batch_events:
        return problems(413, [("events", f"{len(items)} events in one request; at most "
                                         f"{settings.api_max_batch_events} "
                                         "(api_max_batch_events)")], services, endpoint)
    if not items:
        return problems(422, [("events", "no events")], services, endpoint)
    parsed, found = [], []
    for k, item in enumerate(items):
        try:
            parsed.append(parse_event(item))
        except EventValidationError as exc:
            prefix = "" if single else f"events[{k}]."
            found += [(f"{prefix}{p.field}", p.message) for p in exc.problems]
    if found:
        return problems(422, found, services, endpoint)
    topic = settings.clickstream_topic
    records = [Record(topic, e.user_id.encode(), e.to_json_bytes()) for e in parsed]
    outbox = services.outbox
    ticket = Ticket(asyncio.get_running_loop(), len(records)) if outbox.connected else None
    if not outbox.offer(records, ticket):
        retry = str(max(1, round(settings.api_breaker_reset_s)))
        return _json({"detail": "the event broker is unavailable and the API's buffer is full: "
                                "nothing was accepted, retry later"}, 503, {"Retry-After": retry})
    status = "buffered"
    if ticket is not None:
        with contextlib.suppress(asyncio.TimeoutError):
            delivered = await asyncio.wait_for(asyncio.shield(ticket.future),
                                               settings.api_event_ack_timeout_s)
            if not delivered:
                return problems(413, [("events", "an event is larger than the broker "
                                                 "accepts; the others were published")],
                                services, endpoint)
            status = "published"
    return _json({"accepted": len(records), "status": status}, 202)


async def _readiness(services: Services) -> tuple[dict[str, str], bool]:
    manager = services.manager
    checks: dict[str, str] = {}
    champion = manager.state.champion
    if champion is not None:
        checks["models"] = "ok"
    else:
        wanted = manager.aliases.get(CHAMPION)
        why = manager.load_errors.get(wanted or "")
        if wanted:
            checks["models"] = (f"error: champion version {wanted} not loaded"
                                + (f": {why}" if why else ""))
        elif manager.last_poll_at is None and manager.last_poll_error is None:
            checks["models"] = "error: the registry has not been read yet"
        else:
            checks["models"] = (f"error: no '{services.settings.api_champion_alias}' alias "
                                f"for {manager.name}")
    try:
        await asyncio.wait_for(services.fetcher.ping(), 1.0)
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    if services.outbox.connected:
        checks["broker"] = "ok"
    else:
        error = services.outbox.last_error or "not connected yet"
        checks["broker"] = f"error: {error}"[:200]
    gating_ok = all(checks[c] == "ok" for c in ("models", "redis", "broker"))
    checks["mlflow"] = ("ok" if manager.last_poll_error is None else
                        f"error: {manager.last_poll_error}"[:200])
    return checks, gating_ok
