"""Shared fixtures of the API tests: two real ranker versions in the stack's MLflow, their
online features materialized into the stack's Redis, and a helper that serves an app
over real HTTP (uvicorn on a free port, in a thread of the test process).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pyarrow.parquet as pq
import pytest
import uvicorn
from pydantic import SecretStr

from api.app import create_app
from recsys.kafka_io import make_consumer
from recsys.settings import Settings
from recsys.stack import free_port

SECRET = "test-secret-" + "x" * 32
T = TypeVar("T")


@dataclass
class ApiModels:
    settings: Settings  # the stack's settings for these tests (own model name and topics)
    dataset: Path
    v1: str
    v2: str
    users: list[str]  # users with history, most active first
    items: list[str]  # items with interactions, most active first


def api_settings(base: Settings, **changes: Any) -> Settings:
    """Settings of one API instance: a free port, fast alias polling, test auth secret."""
    return base.model_copy(update={
        "api_port": free_port(), "api_alias_poll_s": 0.5, "api_jwt_secret": SecretStr(SECRET),
        "api_auth_mode": "writes", "api_breaker_reset_s": 0.5, "api_event_ack_timeout_s": 5.0,
        **changes})


@pytest.fixture(scope="session")
def api_models(stack_settings: Settings, small_dataset: Path) -> ApiModels:
    """Two versions of a ranker trained on the small data set; v1 is champion."""
    from api.demo import materialize_online
    from ranking.train import train_ranker

    tag = uuid.uuid4().hex[:8]
    settings = stack_settings.model_copy(update={
        "registered_model_name": f"api-test-{tag}",
        "clickstream_topic": f"api-clickstream-{tag}",
        "serving_log_topic": f"api-serving-log-{tag}",
    })
    quiet = lambda _: None  # noqa: E731
    v1 = train_ranker(small_dataset, settings, alias="champion", log=quiet).version
    v2 = train_ranker(small_dataset, settings.model_copy(update={"ranker_seed": 7,
                                                                 "ranker_max_trees": 30}),
                      backfill=False, log=quiet).version
    events = pq.read_table(small_dataset / "events").to_pandas()
    materialize_online(settings, small_dataset)
    return ApiModels(settings, small_dataset, str(v1), str(v2),
                     events.user_id.value_counts().index.astype(str).tolist(),
                     events.item_id.value_counts().index.astype(str).tolist())


class ApiServer:
    """An API app served over real HTTP on ``settings.api_port`` (a thread of this process)."""

    def __init__(self, settings: Settings, app: Any = None) -> None:
        self.settings = settings
        self.app = app or create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=settings.api_port,
                                log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{settings.api_port}"

    @property
    def services(self) -> Any:
        return self.app.state.services

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)

    def wait_ready(self, timeout_s: float = 120.0) -> dict:
        return wait_for(lambda: _ready(self.url), timeout_s, "the API to be ready")


def _ready(url: str) -> dict | None:
    try:
        response = httpx.get(f"{url}/ready", timeout=5)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str,
             interval_s: float = 0.1) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture()
def serve() -> Iterator[Any]:
    """``serve(settings)`` → a started :class:`ApiServer`, stopped after the test."""
    servers: list[ApiServer] = []

    def start(settings: Settings) -> ApiServer:
        server = ApiServer(settings).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def consume(settings: Settings, topic: str, want: int, match: Callable[[bytes], bool],
            timeout_s: float = 30.0) -> list[bytes]:
    """Values on ``topic`` for which ``match(value)`` holds, until ``want`` are found."""
    consumer = make_consumer(settings, topic, group_id=None)
    found: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                found.extend(r.value for r in records if match(r.value))
    finally:
        consumer.close()
    return found


def event(user: str, item: str, kind: str = "click", **extra: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "user_id": user, "item_id": item, "event_type": kind,
            "ts": "2026-11-23T10:00:00+00:00", **extra}


def json_lines(values: list[bytes]) -> list[dict]:
    return [json.loads(v) for v in values]
