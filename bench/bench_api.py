"""Benchmark: POST /recommendations end to end over HTTP on a 100K-item catalogue.

    recsys bench api [--items 100000 --users 50000 --interactions 1000000]
                     [--rate 300 --seconds 30] [--variants redis,redis-nocache,feast]

1. a synthetic data set (generated when ``--dataset`` does not exist), a private embedded
   stack on free ports (tansu, redis-server, MLflow, Feast registry);
2. ``ranking.train.train_ranker`` trains and registers a ranker (+ its retrieval model)
   as ``champion``; the online features of every user and item are materialized into
   Redis (Feast);
3. the two online-feature readers compared in-process on the same 200-candidate requests
   (Feast's ``get_online_features_async`` vs. the reader of Feast's Redis layout);
4. per variant, ``python -m api`` in its own process (one uvicorn worker), then an
   open-loop load at ``--rate`` requests/s from 32 keep-alive connections of the load
   generator below (same machine): latency is measured from each request's *scheduled*
   send time, so queueing counts. The first ``--warmup-seconds`` at the same rate fill the
   caches and are reported on their own ("cold"); the next ``--seconds`` are the result.
   The server's per-stage times come from its ``Server-Timing`` header; its CPU per request
   from ``/proc``, with its serving-log publisher process, this load generator and the
   whole host's busy share beside it (both cores serve one request: the publisher's
   Kafka work runs on the other), and the host's speed right after the window
   (:func:`host_speed`), and the host's stalls during the window (``host_stalls``: a
   virtual CPU taken away for ≥ 10 ms, which no server can hide). Variant ``redis-swap``
   then runs a third window of ``--seconds`` in which, after 3 s, the champion alias
   moves to a new registry version with the same artifacts: the API loads, checks and
   prewarms it while serving, and
   the window's latency, failures and the time until ``GET /models`` shows the swap (the
   alias poll's delay, ``api_alias_poll_s``, included) are reported. The alias is put
   back afterwards. Variant ``floor`` loads the same API with ``GET /health``: what this
   host gives a route that does nothing, at the same rate (the floor under every row).

Requests: users drawn from those with history (``--cold-share`` of them new users, who
get the popularity path), k=10, 200 candidates ranked. Prints Markdown rows for
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from host_stalls import StallProbe
from proc_cpu import children, cpu_s
from pydantic import SecretStr

from recsys.datasets.synthetic import SyntheticConfig, generate
from recsys.settings import Settings, settings_env
from recsys.stack import Stack, free_port
from recsys.stack.services import redis_process

VARIANTS = {
    # name: settings changes
    "redis": {"api_feature_reader": "redis", "api_item_feature_ttl_s": 5.0},
    "redis-nocache": {"api_feature_reader": "redis", "api_item_feature_ttl_s": 0.0},
    "feast": {"api_feature_reader": "feast", "api_item_feature_ttl_s": 5.0},
    "feast-nocache": {"api_feature_reader": "feast", "api_item_feature_ttl_s": 0.0},
    "redis-exact": {"api_feature_reader": "redis", "candidate_index": "exact"},
    "redis-hnsw": {"api_feature_reader": "redis", "candidate_index": "hnsw"},
    "redis-threads": {"api_feature_reader": "redis", "api_worker_threads": 1},
    "redis-noimpressions": {"api_feature_reader": "redis", "api_publish_impressions": False},
    "redis-nocandcache": {"api_feature_reader": "redis", "api_candidate_cache_size": 0},
    "redis-nocandcache-threads": {"api_feature_reader": "redis", "api_candidate_cache_size": 0,
                                  "api_worker_threads": 1},
    # every request a first visit, candidates from the approximate (HNSW) index
    "redis-hnsw-nocandcache": {"api_feature_reader": "redis", "candidate_index": "hnsw",
                               "api_candidate_cache_size": 0},
    # the default, then a model swap under the load (see run_variant)
    "redis-swap": {"api_feature_reader": "redis"},
    # the default API, loaded with GET /health instead: what this host gives a route that
    # does nothing (HTTP, the framework, the middleware), the floor under every other row
    "floor": {"api_feature_reader": "redis"},
    "redis-swap-prewarm2": {"api_feature_reader": "redis", "api_prewarm_seconds": 2.0},
}
#: Variants that also measure a third window in which the champion alias moves.
SWAP_VARIANTS = frozenset({"redis-swap", "redis-swap-prewarm2"})
#: Variants loaded with GET /health rather than POST /recommendations.
FLOOR_VARIANTS = frozenset({"floor"})


# --- load generator ------------------------------------------------------------------


@dataclass
class LoadResult:
    rate: float
    seconds: float
    latencies_ms: np.ndarray
    statuses: dict[int, int]
    errors: int
    stages_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    @property
    def achieved(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        return self.errors + sum(n for status, n in self.statuses.items() if status != 200)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.completed else float("nan")


def _request(host: str, port: int, path: str, body: bytes) -> bytes:
    """A POST of ``body``, or a GET when the body is empty."""
    if not body:
        return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    payload: bytes, stages: dict[str, list[float]] | None) -> int:
    writer.write(payload)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status, length = int(head[0].split(" ", 2)[1]), 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.lower()
        if name == "content-length":
            length = int(value)
        elif name == "server-timing" and stages is not None:
            for part in value.split(","):
                stage, _, dur = part.strip().partition(";dur=")
                if dur:
                    stages.setdefault(stage, []).append(float(dur))
    if length:
        await reader.readexactly(length)
    return status


async def open_loop(host: str, port: int, path: str, bodies: Sequence[bytes], rate: float,
                    seconds: float, warmup_s: float, connections: int = 32) -> LoadResult:
    """Schedule ``rate`` requests/s; latency runs from each request's scheduled time."""
    payloads = [_request(host, port, path, b) for b in bodies]
    queue: asyncio.Queue[tuple[float, bytes, bool]] = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stages: dict[str, list[float]] = {}
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        while True:
            due, payload, measured = await queue.get()
            if not payload:
                writer.close()
                return
            try:
                status = await _exchange(reader, writer, payload, stages if measured else None)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += measured
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            if measured:
                latencies.append((time.perf_counter() - due) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter() + 0.1
    warm, total = int(warmup_s * rate), int((warmup_s + seconds) * rate)
    for k in range(total):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, payloads[k % len(payloads)], k >= warm))
    for _ in workers:
        queue.put_nowait((0.0, b"", False))
    await asyncio.gather(*workers)
    return LoadResult(rate, time.perf_counter() - (start + warm / rate), np.asarray(latencies),
                      statuses, errors, stages)


def run_load(*args: object, **kwargs: object) -> LoadResult:
    import uvloop

    return uvloop.run(open_loop(*args, **kwargs))


# --- set-up ---------------------------------------------------------------------------


def prepare(settings: Settings, dataset: Path) -> tuple[str, float, float]:
    """Train + register the champion (unless the state already has one); materialize the
    online features. Returns the version and both timings."""
    from api.demo import materialize_online
    from ranking.registry import client_for, get_alias_version
    from ranking.train import train_ranker

    started = time.perf_counter()
    version = get_alias_version(client_for(settings), settings.registered_model_name,
                                "champion")
    if version is None:
        version = train_ranker(dataset, settings, alias="champion",
                               log=lambda m: print(f"  train: {m}", flush=True)).version
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    marker = settings.state_path / "bench-materialized.json"
    redis_pid = redis_process(settings).pid()
    done = json.loads(marker.read_text()) if marker.exists() else {}
    if done != {"version": str(version), "redis_pid": redis_pid}:
        materialize_online(settings, dataset)
        marker.write_text(json.dumps({"version": str(version), "redis_pid": redis_pid}))
    return str(version), train_s, time.perf_counter() - started


def request_bodies(settings: Settings, version: str, n: int, cold_share: float,
                   seed: int = 0) -> tuple[list[bytes], list[str]]:
    from ranking.bundle import RankerBundle

    retrieval = RankerBundle.load(f"models:/{settings.registered_model_name}/{version}",
                                  settings).retrieval
    counts = np.diff(retrieval.user_items.indptr)
    known = retrieval.user_ids[counts >= settings.cold_start_min_events]
    rng = np.random.default_rng(seed)
    users = rng.choice(known, min(n, len(known)), replace=False).astype(str).tolist()
    n_cold = round(len(users) * cold_share)
    users = users[:len(users) - n_cold] + [f"bench-new-{k}" for k in range(n_cold)]
    rng.shuffle(users)
    return [json.dumps({"user_id": u, "k": 10}).encode() for u in users], users


def compare_readers(settings: Settings, version: str, users: list[str], n: int = 300
                    ) -> dict[str, tuple[float, float]]:
    """p50/p99 ms of one user + 200 candidate rows, each reader, no cache, in-process."""
    import uvloop

    from api.features import FeastLayoutReader, FeastSdkReader, FeatureFetcher
    from ranking.bundle import RankerBundle
    from ranking.features import ITEM_FEATURE_REFS, USER_FEATURE_REFS
    from retrieval.candidates import CandidateGenerator
    from retrieval.config import RetrievalConfig

    retrieval = RankerBundle.load(f"models:/{settings.registered_model_name}/{version}",
                                  settings).retrieval
    generator = CandidateGenerator(retrieval, RetrievalConfig.from_settings(settings))
    requests = [(u, generator.for_user(u).item_ids.tolist()) for u in users[:n]]

    async def measure(reader_cls: type) -> tuple[float, float]:
        reader = reader_cls(settings, USER_FEATURE_REFS, ITEM_FEATURE_REFS)
        fetcher = FeatureFetcher(reader, USER_FEATURE_REFS, ITEM_FEATURE_REFS, ttl_s=0)
        times = []
        for k, (user, items) in enumerate(requests):
            started = time.perf_counter()
            await fetcher.fetch(user, items)
            if k >= 20:
                times.append((time.perf_counter() - started) * 1000)
        await fetcher.close()
        return float(np.percentile(times, 50)), float(np.percentile(times, 99))

    return {name: uvloop.run(measure(cls)) for name, cls in
            (("Feast get_online_features_async", FeastSdkReader),
             ("reader of Feast's Redis layout", FeastLayoutReader))}


def in_process(settings: Settings, bodies: list[bytes], rounds: int = 2) -> dict[str, float]:
    """CPU of the app's own request path: the default API built in this process, each body
    sent once through its ASGI interface to warm the caches, then ``rounds`` more times,
    one request at a time, no HTTP and no load generator. On a host whose speed varies
    from run to run, this compares two versions of the code far more steadily than the
    load windows do. Returns CPU ms per request and the wall p50/p99 ms."""
    import uvloop

    from api.app import create_app

    variant = settings.model_copy(update={**VARIANTS["redis"], "api_port": free_port(),
                                          "api_alias_poll_s": 0.0})
    app = create_app(variant)

    async def call(body: bytes) -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/recommendations",
                 "raw_path": b"/recommendations", "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", variant.api_port)}
        status = [0]

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]

        await app(scope, receive, send)
        return status[0]

    async def measure() -> dict[str, float]:
        async with app.router.lifespan_context(app):
            deadline = time.monotonic() + 600
            while app.state.services.manager.state.champion is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("no champion loaded in 600 s")
                await asyncio.sleep(0.2)
            for body in bodies:  # caches filled as in the load windows' steady state
                await call(body)
            walls: list[float] = []
            cpu = time.process_time()
            for _ in range(rounds):
                for body in bodies:
                    started = time.perf_counter()
                    if await call(body) != 200:
                        raise RuntimeError("a request failed in process")
                    walls.append((time.perf_counter() - started) * 1000)
            used = time.process_time() - cpu
        return {"cpu_ms": used / len(walls) * 1000, "p50": float(np.percentile(walls, 50)),
                "p99": float(np.percentile(walls, 99)), "requests": len(walls)}

    return uvloop.run(measure())


def _host_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole host so far, all cores (``/proc/stat``)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def host_speed() -> tuple[float, float]:
    """This host's speed right now: ms for 1M additions in a Python loop, and ms for one
    100,000 × 64 float32 matrix-vector product (the size of the exact candidate scan).
    The same code's latency moves with these; they make runs on different days
    comparable."""
    started = time.perf_counter()
    total = 0
    for k in range(1_000_000):
        total += k
    loop_ms = (time.perf_counter() - started) * 1000
    rng = np.random.default_rng(0)
    m, q = rng.random((100_000, 64), np.float32), rng.random(64, np.float32)
    m @ q
    times = []
    for _ in range(50):
        started = time.perf_counter()
        m @ q
        times.append(time.perf_counter() - started)
    return loop_ms, float(np.median(times)) * 1000


@dataclass
class CpuSplit:
    """CPU seconds used during one window: API, its children, this process, the host."""

    api: float
    children: float
    load: float
    host_busy: float
    host_total: float

    @classmethod
    def start(cls, pid: int) -> CpuSplit:
        kids = sum(cpu_s(c) for c in children(pid))  # the publisher process
        busy, total = _host_cpu_s()
        return cls(cpu_s(pid), kids, time.process_time(), busy, total)

    def since(self, pid: int) -> CpuSplit:
        now = CpuSplit.start(pid)
        return CpuSplit(now.api - self.api, now.children - self.children, now.load - self.load,
                        now.host_busy - self.host_busy, now.host_total - self.host_total)


def _metric(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))


def register_copy(settings: Settings, version: str) -> str:
    """A new registry version with ``version``'s artifacts and tags, made champion: the API
    then loads, checks and prewarms it like any new champion."""
    from ranking import registry as r

    client = r.client_for(settings)
    name = settings.registered_model_name
    old = client.get_model_version(name, version)
    tags = dict(old.tags or {})
    own = (r.CHAMPION_SINCE_TAG, r.DATA_TAG, r.METRIC_TAG, r.RUN_TAG, r.VALUE_TAG)
    new = r.register(client, name, old.run_id, tags[r.METRIC_TAG], float(tags[r.VALUE_TAG]),
                     tags[r.DATA_TAG], {k: v for k, v in tags.items() if k not in own})
    r.set_alias(client, name, r.CHAMPION, new)
    return new


def swap_during(settings: Settings, url: str, version: str, after_s: float,
                timeout_s: float) -> dict:
    """After ``after_s``, move the champion alias to a copy of ``version``; returns the new
    version and the seconds until ``GET /models`` showed it served (None: not in time)."""
    import httpx

    time.sleep(after_s)
    started = time.perf_counter()
    new = register_copy(settings, version)
    while time.perf_counter() - started < timeout_s:
        arms = httpx.get(f"{url}/models", timeout=5).json()["arms"]
        if any(a["arm"] == "champion" and a["version"] == new for a in arms):
            return {"version": new, "swap_s": time.perf_counter() - started}
        time.sleep(0.25)
    return {"version": new, "swap_s": None}


def run_variant(settings: Settings, name: str, bodies: list[bytes], rate: float,
                seconds: float, log_dir: Path, warmup_s: float = 30.0) -> dict:
    import httpx

    variant = settings.model_copy(update={**VARIANTS[name], "api_port": free_port()})
    env = {**os.environ, **settings_env(variant)}
    log = (log_dir / f"api-{name}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "api"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{variant.api_port}"
    swap: dict | None = None
    restore: str | None = None  # the champion to point the alias back at afterwards
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"the API exited; see {log.name}")
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the API was not ready after 600 s; see {log.name}")
        # the first seconds after start fill the caches (candidates per user, item rows):
        # measured on their own as "cold", then the steady state
        path, load = ("/health", [b""]) if name in FLOOR_VARIANTS else (
            "/recommendations", bodies)
        cold = run_load("127.0.0.1", variant.api_port, path, load, rate, warmup_s, 0.0)
        before = httpx.get(f"{url}/metrics").text
        with StallProbe() as probe:  # stalls of the host itself, not of anything here
            cpu0 = CpuSplit.start(proc.pid)
            result = run_load("127.0.0.1", variant.api_port, path, load, rate, seconds, 0.0)
            used = cpu0.since(proc.pid)
        after = httpx.get(f"{url}/metrics").text
        speed = host_speed()  # right after the window, the load stopped
        if name in SWAP_VARIANTS:
            restore = next(a["version"] for a in httpx.get(f"{url}/models").json()["arms"]
                           if a["arm"] == "champion")
            with ThreadPoolExecutor(1) as pool:
                moved = pool.submit(swap_during, settings, url, restore, 3.0, seconds - 3.0)
                during = run_load("127.0.0.1", variant.api_port, "/recommendations", bodies,
                                  rate, seconds, 0.0)
                swap = {**moved.result(), "result": during, "from": restore}
            final = httpx.get(f"{url}/metrics").text
            swap["prewarmed"] = _metric(final, 'recsys_candidate_cache_total{result="prewarmed"}')
            swap["misses"] = (_metric(final, 'recsys_candidate_cache_total{result="miss"}')
                              - _metric(after, 'recsys_candidate_cache_total{result="miss"}'))
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        if restore is not None:  # the state keeps its first champion (and its online rows)
            from ranking.registry import CHAMPION, client_for, set_alias

            set_alias(client_for(settings), settings.registered_model_name, CHAMPION, restore)
    hits = (_metric(after, 'recsys_item_feature_cache_total{result="hit"}')
            - _metric(before, 'recsys_item_feature_cache_total{result="hit"}'))
    misses = (_metric(after, 'recsys_item_feature_cache_total{result="miss"}')
              - _metric(before, 'recsys_item_feature_cache_total{result="miss"}'))
    c_hits = (_metric(after, 'recsys_candidate_cache_total{result="hit"}')
              - _metric(before, 'recsys_candidate_cache_total{result="hit"}'))
    c_misses = (_metric(after, 'recsys_candidate_cache_total{result="miss"}')
                - _metric(before, 'recsys_candidate_cache_total{result="miss"}'))
    stages = {s: (float(np.percentile(v, 50)), float(np.percentile(v, 99)))
              for s, v in result.stages_ms.items()}
    return {"variant": name, "rate": rate, "achieved": result.achieved,
            "p50": result.pct(50), "p95": result.pct(95), "p99": result.pct(99),
            "cold_p50": cold.pct(50), "cold_p99": cold.pct(99),
            "failed": result.failed, "requests": result.completed,
            "cpu_ms": used.api / max(result.completed, 1) * 1000,
            "publisher_cpu_ms": used.children / max(result.completed, 1) * 1000,
            "load_cpu_ms": used.load / max(result.completed, 1) * 1000,
            "host_busy": used.host_busy / used.host_total if used.host_total else float("nan"),
            "host_loop_ms": speed[0], "host_matvec_ms": speed[1],
            "hit_rate": hits / (hits + misses) if hits + misses else float("nan"),
            "candidate_hit_rate": (c_hits / (c_hits + c_misses) if c_hits + c_misses
                                   else float("nan")),
            "stages": stages, "swap": swap, "stalls": probe.result}


def _took(swap: dict) -> str:
    return f"{swap['swap_s']:.1f} s" if swap["swap_s"] is not None else "not in the window"


def swap_line(swap: dict) -> str:
    res = swap["result"]
    return (f"swap {swap['from']} → {swap['version']} served after {_took(swap)}; during the "
            "window "
            f"p50 {res.pct(50):.2f} p95 {res.pct(95):.2f} p99 {res.pct(99):.2f} max "
            f"{res.pct(100):.2f} ms, {res.failed} failed, {swap['prewarmed']:.0f} prewarmed, "
            f"{swap['misses']:.0f} candidate misses")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("/tmp/bench-api-data"))
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, nargs="+", default=[300.0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup-seconds", type=float, default=30.0,
                        help="Load at the same rate before measuring (reported as 'cold').")
    parser.add_argument("--variants", default="redis,redis-nocache,feast")
    parser.add_argument("--cold-share", type=float, default=0.05)
    parser.add_argument("--requests", type=int, default=5_000, help="distinct request bodies")
    # exact by default: on the bench model HNSW (M=32, efSearch=400) agrees with the exact
    # top-200 on only ~61 % of the candidates, for ~0.3 ms less per request
    parser.add_argument("--index", choices=["exact", "hnsw"], default="exact")
    parser.add_argument("--state", type=Path, help="Keep the stack's state here; a later run "
                        "with the same folder reuses its trained champion.")
    parser.add_argument("--keep-up", action="store_true", help="Leave the stack running "
                        "(with --state, the next run also reuses the online features).")
    parser.add_argument("--skip-readers", action="store_true",
                        help="Skip the in-process reader comparison.")
    parser.add_argument("--in-process", type=int, default=0, metavar="ROUNDS",
                        help="Also measure the app's CPU per request in this process, "
                        "without HTTP (ROUNDS passes over the request bodies).")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]  # "" runs none
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")

    if not args.dataset.exists():
        print(f"generating {args.dataset} …", flush=True)
        generate(SyntheticConfig(n_users=args.users, n_items=args.items,
                                 n_interactions=args.interactions, days=30), args.dataset)
    root = (args.state or Path(tempfile.mkdtemp(prefix="bench-api-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    ports_file = root / "bench-ports.json"  # a kept state keeps its ports (--keep-up)
    ports = (json.loads(ports_file.read_text()) if ports_file.exists() else
             {"broker": free_port(), "mlflow": free_port(), "redis": free_port()})
    ports_file.write_text(json.dumps(ports))
    settings = Settings(
        _env_file=None, state_dir=root / "state", data_dir=root / "data",
        broker_port=ports["broker"], mlflow_port=ports["mlflow"],
        redis_url=f"redis://127.0.0.1:{ports['redis']}/0", registered_model_name="bench-ranker",
        candidate_index=args.index, api_jwt_secret=SecretStr(
            os.urandom(24).hex()))
    print(f"state in {root}", flush=True)
    stack = Stack(settings)
    stack.up()
    try:
        version, train_s, materialize_s = prepare(settings, args.dataset)
        print(f"champion version {version}: trained + registered in {train_s:.0f} s; online "
              f"features materialized in {materialize_s:.0f} s", flush=True)
        bodies, users = request_bodies(settings, version, args.requests, args.cold_share)
        readers = {} if args.skip_readers else compare_readers(
            settings, version, [u for u in users if not u.startswith("bench-new")])
        for name, (p50, p99) in readers.items():
            print(f"  {name}: 1 user + 200 items, p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                  flush=True)
        alone = in_process(settings, bodies, args.in_process) if args.in_process else None
        if alone:
            print(f"  in process, one request at a time, no HTTP: {alone['cpu_ms']:.3f} ms of "
                  f"CPU per request, wall p50 {alone['p50']:.2f} p99 {alone['p99']:.2f} ms "
                  f"({alone['requests']} requests)", flush=True)
        rows = []
        for name in variants:
            for rate in args.rate:
                print(f"variant {name} at {rate:g} req/s for {args.seconds:g} s …", flush=True)
                row = run_variant(settings, name, bodies, rate, args.seconds, root,
                                  args.warmup_seconds)
                rows.append(row)
                print(f"  achieved {row['achieved']:.0f} req/s, p50 {row['p50']:.2f} p95 "
                      f"{row['p95']:.2f} p99 {row['p99']:.2f} ms, {row['failed']} failed, "
                      f"server CPU {row['cpu_ms']:.2f} ms/request (publisher "
                      f"{row['publisher_cpu_ms']:.2f}, load generator {row['load_cpu_ms']:.2f}; "
                      f"host {row['host_busy']:.0%} busy; host speed: 1M-step loop "
                      f"{row['host_loop_ms']:.0f} ms, scan {row['host_matvec_ms']:.2f} ms), "
                      "item cache hit rate "
                      f"{row['hit_rate']:.3f}, candidate cache hit rate "
                      f"{row['candidate_hit_rate']:.3f}; stages p50/p99 ms: "
                      + ", ".join(f"{s} {a:.2f}/{b:.2f}" for s, (a, b) in
                                  row["stages"].items()), flush=True)
                print(f"  during the window: {row['stalls'].summary()}", flush=True)
                if row["swap"]:
                    print("  " + swap_line(row["swap"]), flush=True)
    finally:
        if args.keep_up:
            print(f"stack left running; stop it with: RECSYS_STATE_DIR={root / 'state'} "
                  "recsys stack down", flush=True)
        else:
            stack.down(only_started=True)
    machine = f"{platform.machine()} {os.cpu_count()} cores"
    print()
    print("| date | machine | variant | offered req/s | achieved req/s | p50 ms | p95 ms "
          "| p99 ms | failed | server CPU ms/req | publisher CPU ms/req | host busy "
          "| host loop / scan ms | item cache hits | candidate cache hits "
          "| cold p50 / p99 ms | host stalls ≥ 10 ms (n / longest ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        index = VARIANTS[r['variant']].get("candidate_index", args.index)
        print(f"| {date.today()} | {machine} | {r['variant']} ({index}) | {r['rate']:g} | "
              f"{r['achieved']:.0f} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | "
              f"{r['failed']} | {r['cpu_ms']:.2f} | {r['publisher_cpu_ms']:.2f} | "
              f"{r['host_busy']:.0%} | {r['host_loop_ms']:.0f} / {r['host_matvec_ms']:.2f} | "
              f"{r['hit_rate']:.3f} | "
              f"{r['candidate_hit_rate']:.3f} | {r['cold_p50']:.2f} / {r['cold_p99']:.2f} | "
              f"{r['stalls'].count} / {r['stalls'].longest_ms:.0f} |")
    print()
    print("| variant | rate | " + " | ".join(f"{s} p50/p99 ms" for s in
                                            ("candidates", "features", "ranking", "rules"))
          + " |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r['stages'][s][0]:.2f} / {r['stages'][s][1]:.2f}" if s in r["stages"]
                 else "–" for s in ("candidates", "features", "ranking", "rules")]
        print(f"| {r['variant']} | {r['rate']:g} | " + " | ".join(cells) + " |")
    swaps = [r for r in rows if r["swap"]]
    if swaps:
        print()
        print("| variant | rate | swap to served | p50 ms | p95 ms | p99 ms | max ms | failed "
              "| prewarmed | candidate misses |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in swaps:
            w, res = r["swap"], r["swap"]["result"]
            print(f"| {r['variant']} | {r['rate']:g} | {_took(w)} | {res.pct(50):.2f} | "
                  f"{res.pct(95):.2f} | {res.pct(99):.2f} | {res.pct(100):.2f} | "
                  f"{res.failed} | {w['prewarmed']:.0f} | {w['misses']:.0f} |")
    if readers:
        print()
        print("| reader (1 user + 200 candidates, no cache) | p50 ms | p99 ms |")
        print("|---|---|---|")
        for name, (p50, p99) in readers.items():
            print(f"| {name} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
