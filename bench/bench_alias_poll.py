"""Benchmark: what the API's MLflow alias poll costs, and what it does to the event loop.

    recsys bench alias_poll [--polls 100] [--repeats 2] [--loop-seconds 12]

A private MLflow (and the stack's broker and Redis) on free ports; one registered model
with a ``champion`` alias and no ``challenger``, as in most deployments.

1. CPU per poll, two ways, taking turns ``--repeats`` times: one
   ``get_model_version_by_alias`` per alias (the API's poll before; the absent challenger
   raises inside the client) and one ``get_registered_model``
   (:func:`ranking.registry.get_aliases`, the poll now). Reported: CPU of the polling
   thread, and CPU of the MLflow server's processes meanwhile (on one host they share
   the cores with the API).
2. The event loop beside a poll: a loop serving 300 "requests"/s of 2 ms of pure-Python
   CPU each, while a thread polls every 0.25 s (20× the API's default rate), from this
   process or through a one-worker process pool, or not at all. Reported: request wall
   p50/p99/max. Prints Markdown rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from proc_cpu import tree_cpu_s

from ranking.registry import (
    CHALLENGER,
    CHAMPION,
    client_for,
    get_aliases,
    register,
    set_alias,
)
from recsys.settings import Settings
from recsys.stack import Stack, free_port
from recsys.stack.services import mlflow_process

MODEL = "bench-alias-poll"


def by_alias(client: Any) -> dict[str, str]:
    """The API's poll before: one call per alias."""
    from mlflow.exceptions import MlflowException

    out = {}
    for alias in (CHAMPION, CHALLENGER):
        with contextlib.suppress(MlflowException):
            out[alias] = str(client.get_model_version_by_alias(MODEL, alias).version)
    return out


def poll_cpu(poll: Callable[[], dict[str, str]], server_pid: int, n: int
             ) -> tuple[float, float]:
    """(client, server) CPU ms per poll over ``n`` polls."""
    poll()
    server, client = tree_cpu_s(server_pid), time.thread_time()
    for _ in range(n):
        poll()
    return ((time.thread_time() - client) / n * 1000,
            (tree_cpu_s(server_pid) - server) / n * 1000)


def wait_idle(pid: int, limit_ms: float = 20.0, timeout_s: float = 60.0) -> float:
    """Wait until the process tree of ``pid`` uses under ``limit_ms`` of CPU per second
    (a fresh MLflow server keeps busy for a while after it answers); returns the last
    second's ms."""
    deadline = time.monotonic() + timeout_s
    while True:
        before = tree_cpu_s(pid)
        time.sleep(1.0)
        used = (tree_cpu_s(pid) - before) * 1000
        if used < limit_ms or time.monotonic() > deadline:
            return used


def _child_poll(settings: Settings) -> dict[str, str]:
    return get_aliases(client_for(settings), MODEL)


def _spin(ms: float) -> None:
    end = time.thread_time() + ms / 1000
    while time.thread_time() < end:
        pass


async def loop_with(poll: Callable[[], object] | None, seconds: float) -> np.ndarray:
    """Request walls (ms) of a loop at 300/s, 2 × 1 ms of CPU each, ``poll`` on a thread."""
    stop = threading.Event()

    def poller() -> None:
        while not stop.wait(0.25):
            poll()

    thread = threading.Thread(target=poller, daemon=True) if poll else None
    if thread:
        thread.start()
    walls: list[float] = []
    start, k = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        delay = start + k / 300 - time.perf_counter()
        k += 1
        if delay > 0:
            await asyncio.sleep(delay)
        began = time.perf_counter()
        _spin(1.0)
        await asyncio.sleep(0)
        _spin(1.0)
        walls.append((time.perf_counter() - began) * 1000)
    stop.set()
    if thread:
        thread.join()
    return np.asarray(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--loop-seconds", type=float, default=12.0)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-alias-poll-"))
    settings = Settings(_env_file=None, state_dir=root / "state", data_dir=root / "data",
                        broker_port=free_port(), mlflow_port=free_port(),
                        redis_url=f"redis://127.0.0.1:{free_port()}/0")
    stack = Stack(settings)
    stack.up(with_feast=False)
    cpu_rows: dict[str, list[tuple[float, float]]] = {}
    loop_rows: list[tuple[str, np.ndarray]] = []
    try:
        client = client_for(settings)
        run_id = client.create_run(client.create_experiment(MODEL)).info.run_id
        version = register(client, MODEL, run_id, "ndcg", 0.5, "none")
        set_alias(client, MODEL, CHAMPION, version)
        server = mlflow_process(settings).pid()
        if server is None:
            raise SystemExit("the bench's MLflow has no pid file")
        polls = {"one call per alias (before)": lambda: by_alias(client),
                 "one get_registered_model (now)": lambda: get_aliases(client, MODEL)}
        for poll in polls.values():  # the server's first requests do lazy set-up
            for _ in range(20):
                poll()
        idle = wait_idle(server)
        print(f"  MLflow server idle: {idle:.1f} ms of CPU per second", flush=True)
        for repeat in range(args.repeats):
            for name, poll in polls.items():
                if poll() != {CHAMPION: str(version)}:
                    raise SystemExit(f"{name}: unexpected aliases {poll()}")
                row = poll_cpu(poll, server, args.polls)
                cpu_rows.setdefault(name, []).append(row)
                print(f"  run {repeat + 1}: {name}: client {row[0]:.2f} ms, MLflow server "
                      f"{row[1]:.2f} ms of CPU per poll", flush=True)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            pool.submit(_child_poll, settings).result()  # started and warm
            modes: dict[str, Callable[[], object] | None] = {
                "no poll": None,
                "poll on a thread (the API)": lambda: get_aliases(client, MODEL),
                "poll in a child process": lambda: pool.submit(_child_poll,
                                                               settings).result()}
            for _ in range(args.repeats):
                for name, poll in modes.items():
                    walls = asyncio.run(loop_with(poll, args.loop_seconds))
                    loop_rows.append((name, walls))
                    print(f"  {name}: request wall p50 {np.percentile(walls, 50):.2f} p99 "
                          f"{np.percentile(walls, 99):.2f} max {walls.max():.2f} ms",
                          flush=True)
    finally:
        stack.down(only_started=True)
    machine = f"{platform.machine()} {os.cpu_count()} cores"
    print()
    print("| date | machine | poll | client CPU ms per poll (runs) "
          "| MLflow server CPU ms per poll (runs) |")
    print("|---|---|---|---|---|")
    for name, runs in cpu_rows.items():
        print(f"| {date.today()} | {machine} | {name} | "
              + " / ".join(f"{c:.2f}" for c, _ in runs) + " | "
              + " / ".join(f"{s:.2f}" for _, s in runs) + " |")
    print()
    print("| date | machine | event loop beside | request wall p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for name, walls in loop_rows:
        print(f"| {date.today()} | {machine} | {name} | {np.percentile(walls, 50):.2f} | "
              f"{np.percentile(walls, 99):.2f} | {walls.max():.2f} |")


if __name__ == "__main__":
    main()
