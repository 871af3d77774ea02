"""Benchmark: the whole pipeline at scale, stage by stage, with time and peak memory.

    python bench/bench_scale.py --dataset /tmp/synth-10m
    (or: recsys bench scale --dataset /tmp/synth-10m)

Default size: 1M users × 100K products × 10M interactions. A private stack on free ports
(tansu, redis-server, MLflow, Feast registry) under ``--state``; every stage runs as its
own process(es), the way an operator runs them, and the project's own commands:

1. **generate**: ``recsys generate synthetic`` (skipped when ``--dataset`` exists);
2. **replay**: ``recsys replay`` into the clickstream topic, as fast as the broker takes;
3. **stream features**: the Flink feature job (``stream_jobs.features_job``) and the
   feature writer (``stream_jobs.feature_writer``) until every event is reflected in the
   online user rows (the writer's count of events per entity);
4. **ALS**: ``recsys retrieval train`` (retrieval model on all events);
5. **LightGBM**: ``recsys ranking train --no-backfill --alias champion``: point-in-time
   features from what the stream wrote offline, at most ``RECSYS_RANKER_MAX_QUERIES``
   queries, ONNX export, MLflow registration;
6. **serve**: batch views materialized (``recsys feast materialize-incremental``), then
   ``python -m api`` and an open-loop load of ``--rate`` requests/s for ``--seconds``.

Peak memory is the largest resident set of the stage's process tree (sampled every
0.25 s; the Flink JVM included), not of this driver. Prints Markdown rows for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psutil
from pydantic import SecretStr

from recsys.settings import PROJECT_ROOT, Settings, settings_env
from recsys.stack import Stack, free_port

RECSYS = str(PROJECT_ROOT / ".venv" / "bin" / "recsys")


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    peak_mib: float = 0.0
    detail: str = ""


class PeakMeter:
    """The largest total RSS of the given processes and all their children."""

    def __init__(self, pids: Callable[[], list[int]], every_s: float = 0.25) -> None:
        self.pids, self.every_s = pids, every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        seen: dict[int, int] = {}
        for pid in self.pids():
            try:
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    seen[proc.pid] = proc.memory_info().rss
            except psutil.Error:
                continue
        return sum(seen.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Run:
    settings: Settings
    env: dict[str, str]
    log_dir: Path
    stages: list[Stage] = field(default_factory=list)

    def command(self, name: str, argv: list[str], detail: Callable[[str], str] = lambda _: ""
                ) -> Stage:
        """Run ``argv`` as one stage; its output goes to ``<log_dir>/<name>.log``."""
        log = self.log_dir / f"{name}.log"
        print(f"[{name}] {' '.join(argv)} (log {log})", flush=True)
        started = time.perf_counter()
        with log.open("w") as out:
            proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=PROJECT_ROOT)
            with PeakMeter(lambda: [proc.pid]) as meter:
                code = proc.wait()
        stage = Stage(name, time.perf_counter() - started, meter.peak / 2**20,
                      detail(log.read_text(errors="replace")))
        if code != 0:
            raise SystemExit(f"[{name}] exited {code}; see {log}")
        return self._done(stage)

    def _done(self, stage: Stage) -> Stage:
        self.stages.append(stage)
        print(f"[{stage.name}] {stage.seconds:,.1f} s, peak {stage.peak_mib:,.0f} MiB"
              f"{'; ' + stage.detail if stage.detail else ''}", flush=True)
        return stage


def _last_line(marker: str) -> Callable[[str], str]:
    def pick(text: str) -> str:
        lines = [line.strip() for line in text.splitlines() if marker in line]
        return lines[-1][:160] if lines else ""
    return pick


def stream_stage(run: Run, events: int, timeout_s: float) -> Stage:
    """The Flink job and the feature writer until every event is in the online user rows."""
    from stream_jobs.feature_writer import FeatureWriter
    from stream_jobs.pipeline import start_feature_job

    print(f"[stream] Flink job + writer over {events:,} events", flush=True)
    started = time.perf_counter()
    job = start_feature_job(run.settings)
    writer = FeatureWriter(run.settings)
    me = os.getpid()
    try:
        with PeakMeter(lambda: [job.pid() or me, me]) as meter:
            done = writer.run_until(lambda stats: stats.events["user"] >= events, timeout_s,
                                    still_running=job.pid)
    finally:
        job.stop()
    seconds = time.perf_counter() - started
    if not done:
        raise SystemExit(f"[stream] only {writer.stats.events['user']:,}/{events:,} events "
                         f"reflected after {timeout_s:.0f} s; see {job.logfile}")
    return run._done(Stage("stream features", seconds, meter.peak / 2**20,
                           f"{events / seconds:,.0f} events/s incl. JVM start; "
                           f"{writer.stats.online_rows:,} online writes"))


def serve_stage(run: Run, dataset: Path, rate: float, seconds: float) -> Stage:
    """Materialize the batch views, start the API, measure an open-loop load."""
    import numpy as np
    import pyarrow.parquet as pq

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_api import run_load

    from api.demo import ApiProcess

    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    run.command("materialize", [RECSYS, "feast", "materialize-incremental", end, "--views",
                                "item_metadata", "--views", "user_profile"])
    users = pq.read_table(dataset / "users.parquet", columns=["user_id"]).column(
        "user_id").to_pylist()
    rng = np.random.default_rng(7)
    bodies = [json.dumps({"user_id": str(u), "k": 10}).encode()
              for u in rng.choice(users, 5_000, replace=False)]
    api_settings = run.settings.model_copy(update={
        "api_port": free_port(), "api_jwt_secret": SecretStr(secrets.token_hex(24))})
    print(f"[serve] python -m api, {rate:g} req/s for {seconds:g} s", flush=True)
    started = time.perf_counter()
    with ApiProcess(api_settings) as api:
        api.wait_ready(timeout_s=900)
        ready_s = time.perf_counter() - started
        with PeakMeter(lambda: [api.proc.pid] if api.proc else []) as meter:
            run_load("127.0.0.1", api_settings.api_port, "/recommendations", bodies, rate, 3.0,
                     2.0)
            result = run_load("127.0.0.1", api_settings.api_port, "/recommendations", bodies,
                              rate, seconds, 0.0)
    return run._done(Stage("serve", ready_s, meter.peak / 2**20,
                           f"ready in {ready_s:.0f} s; {result.achieved:.0f} req/s, p50 "
                           f"{result.pct(50):.2f} ms, p99 {result.pct(99):.2f} ms, "
                           f"{result.failed} failed"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("/tmp/synth-10m"))
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--state", type=Path, default=Path("/tmp/bench-scale"))
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--stream-timeout", type=float, default=3_600.0)
    parser.add_argument("--checkpoint-interval", type=float, default=60.0,
                        help="Flink checkpoint interval, s (RECSYS_CHECKPOINT_INTERVAL_S). "
                        "The heap backend snapshots all state each time: at 1M users the "
                        "default 5 s spent more CPU on snapshots than on the aggregates")
    args = parser.parse_args()
    # a SIGTERM (kill, a CI timeout) unwinds like Ctrl-C: the job and the stack are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    root = args.state.resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    settings = Settings(
        _env_file=None, state_dir=root / "state", data_dir=root / "data",
        broker_port=free_port(), mlflow_port=free_port(),
        redis_url=f"redis://127.0.0.1:{free_port()}/0", registered_model_name="scale-ranker",
        stream_catalogue=args.dataset.resolve(), checkpoint_interval_s=args.checkpoint_interval)
    run = Run(settings, {**os.environ, **settings_env(settings)}, root / "logs")
    if not args.dataset.exists():
        run.command("generate", [RECSYS, "generate", "synthetic", "--users", str(args.users),
                                 "--items", str(args.items), "--interactions",
                                 str(args.interactions), "--out", str(args.dataset)])
    events = json.loads((args.dataset / "manifest.json").read_text())["events"]
    stack = Stack(settings)
    stack.up()
    try:
        run.command("replay", [RECSYS, "replay", str(args.dataset)], _last_line("sent "))
        stream_stage(run, events, args.stream_timeout)
        run.command("ALS", [RECSYS, "retrieval", "train", str(args.dataset), "--out",
                            str(root / "retrieval")], _last_line("artifacts in"))
        run.command("LightGBM", [RECSYS, "ranking", "train", str(args.dataset),
                                 "--no-backfill", "--alias", "champion"],
                    _last_line("LightGBM:"))
        serve_stage(run, args.dataset, args.rate, args.seconds)
    finally:
        stack.down(only_started=True)

    machine = f"{platform.machine()} {os.cpu_count()} cores"
    print()
    print(f"{args.dataset}: {events:,} events")
    print("| date | machine | stage | wall s | peak RSS MiB | detail |")
    print("|---|---|---|---|---|---|")
    for s in run.stages:
        print(f"| {date.today()} | {machine} | {s.name} | {s.seconds:,.1f} | {s.peak_mib:,.0f} "
              f"| {s.detail} |")


if __name__ == "__main__":
    main()
