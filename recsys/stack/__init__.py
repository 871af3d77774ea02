"""The embedded local stack: broker, Redis, MLflow, Feast registry, Java check.

``Stack(settings).up()`` starts what is missing and waits until each part is
healthy; ``down()`` stops exactly what this stack started. Used as a context
manager it always tears down, also on Ctrl-C or a failed start.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from recsys.settings import Settings, redact_url
from recsys.stack.process import ManagedProcess, StartupError, free_port, port_open
from recsys.stack.services import (
    ServiceStatus,
    apply_feast_registry,
    broker_process,
    java_status,
    mlflow_healthy,
    mlflow_process,
    redis_healthy,
    redis_process,
    start_broker,
    start_mlflow,
    start_redis,
)

__all__ = ["ServiceStatus", "Stack", "StartupError", "free_port"]

Reporter = Callable[[ServiceStatus], None]


class Stack:
    def __init__(self, settings: Settings, report: Reporter | None = None):
        self.settings = settings
        self.report = report or (lambda status: None)
        self.started: list[str] = []
        self._up_since = 0.0

    def _processes(self) -> list[ManagedProcess]:
        # Start order; stopped in reverse.
        return [
            broker_process(self.settings),
            redis_process(self.settings),
            mlflow_process(self.settings),
        ]

    def up(self, with_mlflow: bool = True, with_feast: bool = True) -> list[ServiceStatus]:
        self._up_since = time.time()
        steps = [start_broker, start_redis]
        if with_mlflow:
            steps.append(start_mlflow)
        if with_feast:
            steps.append(apply_feast_registry)
        statuses = []
        for step in steps:
            status = step(self.settings)
            if status.state == "started":
                self.started.append(status.name)
            self.report(status)
            statuses.append(status)
        java = java_status(self.settings)
        self.report(java)
        statuses.append(java)
        return statuses

    def down(self, only_started: bool = False) -> list[ServiceStatus]:
        """Stop managed services: all with a pidfile, or only those this object started."""
        statuses = []
        for proc in reversed(self._processes()):
            if only_started and proc.name not in self.started:
                continue
            stopped = proc.stop()
            status = ServiceStatus(proc.name, "-", "stopped" if stopped else "not running")
            self.report(status)
            statuses.append(status)
        return statuses

    def status(self) -> list[ServiceStatus]:
        s = self.settings
        checks = {
            "broker": (s.bootstrap_servers,
                       lambda: port_open(s.broker_host, s.broker_port)),
            "redis": (redact_url(s.redis_url), lambda: redis_healthy(s)),
            "mlflow": (s.mlflow_tracking_uri, lambda: mlflow_healthy(s)),
        }
        statuses = []
        for proc in self._processes():
            address, check = checks[proc.name]
            try:
                healthy = bool(check())
            except Exception:
                healthy = False
            managed = proc.pid() is not None
            state = ("running" if managed else "external") if healthy else "stopped"
            statuses.append(ServiceStatus(proc.name, address, state,
                                          f"pid {proc.pid()}" if managed else ""))
        statuses.append(java_status(s))
        return statuses

    def __enter__(self) -> Stack:
        try:
            self.up()
        except BaseException:
            self._started_from_pidfiles()
            self.down(only_started=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down(only_started=True)

    def _started_from_pidfiles(self) -> None:
        """After a failed start, count a service as ours if its pidfile is newer than us."""
        for proc in self._processes():
            fresh = proc.pidfile.exists() and proc.pidfile.stat().st_mtime >= self._up_since
            if fresh and proc.name not in self.started:
                self.started.append(proc.name)
