"""The serving step of ``recsys demo``: train and register a ranker, serve it, ask it.

Trains the ranker (and the retrieval model it serves with) on the demo data set through
:func:`ranking.train.train_ranker`, registers it as ``champion``, materializes the online
features the ranker reads, starts ``python -m api`` on a free port, asks for real
recommendations (a known user and a new one), sends a click attributed to the response,
checks that ``GET /models`` serves the registered version, and stops the API.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from recsys.settings import Settings, settings_env
from recsys.stack import free_port


def materialize_online(settings: Settings, dataset: Path) -> list[str]:
    """Put the newest value of every view the ranker reads online (Feast materialize).

    The window starts at the epoch, not at the first event: metadata rows are stamped
    with launch and sign-up times, most of them before any event, and a row outside the
    window is not materialized (the ranker then saw no price, stock or profile at all).
    It ends at the newest event or now, whichever is later (items launched after the
    last event are in the catalogue too).
    """
    import pyarrow.parquet as pq

    from feature_repo.store import get_feature_store
    from ranking.features import ITEM_FEATURE_REFS, USER_FEATURE_REFS

    ts = pq.read_table(dataset / "events", columns=["ts"]).column("ts").to_pandas()
    views = sorted({ref.split(":")[0] for ref in (*USER_FEATURE_REFS, *ITEM_FEATURE_REFS)})
    end = max(ts.max().to_pydatetime(), datetime.now(UTC))
    get_feature_store(settings).materialize(start_date=datetime(1970, 1, 1, tzinfo=UTC),
                                            end_date=end, feature_views=views)
    return views


class ApiProcess:
    """``python -m api`` with these settings, as a child process (log under state_dir)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://{settings.api_host}:{settings.api_port}"
        self.log_path = settings.state_path / "run" / "api-demo.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ApiProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "api"],
                                         env={**os.environ, **settings_env(self.settings)},
                                         stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout_s: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the API exited ({self.proc.returncode}); see "
                                   f"{self.log_path}")
            try:
                response = httpx.get(f"{self.url}/ready", timeout=5)
                last = response.json()
                if response.status_code == 200:
                    return last
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the API was not ready after {timeout_s:.0f} s: {last}; see "
                           f"{self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _items_table(body: dict[str, Any], title: str) -> Table:
    table = Table("rank", "item", "title", "category", "price", "score", "stage", title=title)
    for item in body["items"]:
        price = "–" if item["price"] is None else f"{item['price']:.2f}"
        table.add_row(str(item["rank"]), item["item_id"], str(item["title"] or "")[:32],
                      str(item["category"]), price, f"{item['score']:.4f}", item["stage"])
    return table


#: Runs while the demo's API is up: (the API's settings, its URL, a JWT with the events
#: scope) -> whether its checks passed.
WhileServing = Callable[[Settings, str, str], bool]


def serve_demo(settings: Settings, console: Console, dataset: Path,
               while_serving: WhileServing | None = None) -> bool:
    """Train → register champion → serve → ask (→ ``while_serving``); True when every
    check passed."""
    import pyarrow.parquet as pq

    from api.security import make_token
    from ranking.train import train_ranker

    started = time.perf_counter()
    result = train_ranker(dataset, settings, alias="champion",
                          log=lambda m: console.print(f"  {m}"))
    console.print(f"  ranker version {result.version} registered as champion of "
                  f"{settings.registered_model_name} in {time.perf_counter() - started:.0f} s")
    views = materialize_online(settings, dataset)
    console.print(f"  online features materialized into Redis: {', '.join(views)}")

    api_settings = settings.model_copy(update={
        "api_port": free_port(settings.api_host), "api_auth_mode": "writes",
        "api_jwt_secret": SecretStr(secrets.token_hex(24)),
        "api_alias_poll_s": 1.0})  # follows an alias moved by the rollback drill within 1 s
    events = pq.read_table(dataset / "events", columns=["user_id"]).column("user_id")
    user = str(events.to_pandas().value_counts().index[0])
    with ApiProcess(api_settings) as api:
        ready = api.wait_ready()
        console.print(f"  API at {api.url}: {ready}")
        with httpx.Client(base_url=api.url, timeout=30) as http:
            response = http.post("/recommendations", json={"user_id": user, "k": 10,
                                                            "context": {"surface": "demo"}})
            body = response.json()
            console.print(f"  POST /recommendations {{user_id: {user}, k: 10}} → "
                          f"{response.status_code}, Server-Timing: "
                          f"{response.headers.get('server-timing')}")
            console.print_json(data={k: v for k, v in body.items() if k != "items"})
            console.print(_items_table(body, f"recommendations for {user}"))
            cold = http.post("/recommendations", json={"user_id": "demo-new-visitor",
                                                        "k": 5}).json()
            console.print(_items_table(cold, "a new visitor (cold start)"))
            click = {"event_id": secrets.token_hex(16), "user_id": user,
                     "item_id": body["items"][0]["item_id"], "event_type": "click",
                     "ts": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                     "request_id": body["request_id"], "model_version": body["model_version"],
                     "context": {"arm": body["arm"]}}
            token = make_token(api_settings, ["events"])
            sent = http.post("/events", json=click, headers={"Authorization": f"Bearer {token}"})
            unauthorized = http.post("/events", json=click).status_code
            models = http.get("/models").json()
        console.print(f"  click on the first item: POST /events → {sent.status_code} "
                      f"{sent.json()}; without a token → {unauthorized}")
        served = [a["version"] for a in models["arms"] if a["arm"] == "champion"]
        ok = (response.status_code == 200 and len(body["items"]) == 10
              and body["model_version"] == str(result.version) and not body["cold_start"]
              and body["fallback"] is None and cold.get("cold_start") is True
              and sent.status_code == 202 and unauthorized == 401
              and served == [str(result.version)])
        console.print(f"  serving check: {'ok' if ok else 'FAILED'} (champion serves version "
                      f"{served})")
        if while_serving is not None:
            ok = while_serving(api_settings, api.url, token) and ok
    console.print("  API stopped")
    return ok
