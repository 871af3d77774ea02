"""The `recsys` CLI: each job's happy path and clear errors that name the bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys.cli import app
from recsys.settings import Settings, get_settings, redact_url, settings_env
from recsys.stack.process import group_alive
from tests.conftest import ML100K, stack_env

runner = CliRunner()


def invoke(*args: str):
    get_settings.cache_clear()
    return runner.invoke(app, list(args))


def test_generate_validate_and_refuse_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    result = invoke("generate", "synthetic", "--out", str(out), "--users", "200", "--items",
                    "60", "--interactions", "1500", "--categories", "5", "--days", "7")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[: result.stdout.rindex("}") + 1])["events"] == 1500
    assert invoke("validate", str(out)).exit_code == 0
    again = invoke("generate", "synthetic", "--out", str(out))
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_generate_names_a_bad_option(tmp_path: Path) -> None:
    result = invoke("generate", "synthetic", "--out", str(tmp_path / "x"), "--items", "3",
                    "--categories", "10")
    assert result.exit_code == 2 and "n_items" in result.output
    result = invoke("generate", "synthetic", "--users", "-5")
    assert result.exit_code == 2 and "--users" in result.output


def test_validate_exits_1_and_names_the_field(small_dataset: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(small_dataset, bad)
    (bad / "items.parquet").unlink()
    result = invoke("validate", str(bad))
    assert result.exit_code == 1
    assert "items.parquet: -: file is missing" in result.output


def test_load_movielens_and_reject_a_bad_file(tmp_path: Path) -> None:
    result = invoke("load", "movielens", str(ML100K), "--out", str(tmp_path / "ml"))
    assert result.exit_code == 0, result.output
    assert "100,000 events" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ratings.dat").write_text("1::1::9::1\n")
    (broken / "movies.dat").write_text("1::A (1995)::Drama\n")
    result = invoke("load", "movielens", str(broken), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "field 'rating'" in result.output and "nothing written" in result.output
    assert not (tmp_path / "out").exists()


def test_schema_prints_the_contract() -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "ClickstreamEvent"


def test_invalid_settings_are_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_BROKER_PORT", "not-a-port")
    result = invoke("stack", "status")
    assert result.exit_code == 2
    assert "broker_port" in result.output


def test_settings_masks_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_POSTGRES_DSN", "postgresql://admin:s3cret@db:5432/recsys")
    result = invoke("settings")
    assert result.exit_code == 0
    assert "s3cret" not in result.output and "admin:***@db:5432" in result.output


def test_settings_masks_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "RECSYS_API_JWT_SECRET": "jwt-secret-" + "j" * 32,
        "RECSYS_REDIS_URL": "redis://api:redis-pw@cache:6380/0",
        "RECSYS_FEAST_REGISTRY_PATH": "postgresql+psycopg://feast:registry-pw@db/feast",
        "RECSYS_MLFLOW_BACKEND_URI": "postgresql://mlflow@db/mlflow?sslmode=require&password=q-pw",
        "RECSYS_BROKER_SASL_PASSWORD": "Endpoint=sb://hub/;SharedAccessKey=sasl-pw",
        "RECSYS_ROLLBACK_ADMIN_TOKEN": "rollback-token",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    result = invoke("settings")
    assert result.exit_code == 0, result.output
    for leaked in ("jwt-secret", "redis-pw", "registry-pw", "q-pw", "sasl-pw", "rollback-token"):
        assert leaked not in result.output, leaked
    for shown in ('"redis_url": "redis://api:***@cache:6380/0"',
                  '"feast_registry_path": "postgresql+psycopg://feast:***@db/feast"',
                  "sslmode=require&password=***", '"api_jwt_secret": "**********"'):
        assert shown in result.output, shown


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://admin:pw@db:5432/recsys", "postgresql://admin:***@db:5432/recsys"),
    ("rediss://:p%40ss@cache:6380/1", "rediss://:***@cache:6380/1"),
    ("postgresql://u@h/db?password=pw&x=1", "postgresql://u@h/db?password=***&x=1"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),  # nothing to hide: unchanged
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("/var/lib/feast/registry.db", "/var/lib/feast/registry.db"),
    ("http://[::1", "http://[::1"),  # not a URL after all: unchanged
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.integration
def test_replay_and_consume_on_the_running_stack(stack_settings: Settings, small_dataset: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in settings_env(stack_settings).items():
        monkeypatch.setenv(key, value)
    result = invoke("replay", str(small_dataset), "--limit", "300")
    assert result.exit_code == 0, result.output
    assert "sent 300 events" in result.output
    result = invoke("consume", "--max-events", "5", "--group", "cli-test")
    assert result.exit_code == 0, result.output
    assert result.output.count('"event_type"') == 5


@pytest.mark.integration
def test_demo_runs_end_to_end_on_the_running_stack(stack_settings: Settings,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in settings_env(stack_settings).items():
        monkeypatch.setenv(key, value)
    result = invoke("demo")
    assert result.exit_code == 0, result.output
    assert "OK: 30,000/30,000 events read back, 0 invalid" in result.output
    assert "entity:item" in result.output and "entity:user" in result.output



@pytest.mark.integration
def test_stack_up_and_down_in_separate_processes_leave_no_orphans(tmp_path: Path) -> None:
    """`recsys stack up` in one process, `recsys stack down` in another, as a user would."""
    env = {**os.environ, **stack_env(tmp_path / "state", tmp_path / "data")}
    recsys = [sys.executable, "-m", "recsys.cli"]
    up = subprocess.run([*recsys, "stack", "up", "--no-mlflow"], env=env, capture_output=True,
                        text=True, timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    pids = {p.stem: int(p.read_text()) for p in (tmp_path / "state" / "run").glob("*.pid")}
    assert set(pids) == {"broker", "redis"}
    status = subprocess.run([*recsys, "stack", "status"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert "running" in status.stdout
    down = subprocess.run([*recsys, "stack", "down"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert down.returncode == 0, down.stderr
    time.sleep(0.2)
    for name, pid in pids.items():
        assert not group_alive(pid), f"{name} (process group {pid}) still running"
        assert not (tmp_path / "state" / "run" / f"{name}.pid").exists()


def test_bench_runs_the_generator_benchmark() -> None:
    result = invoke("bench", "generator", "--users", "500", "--items", "100",
                    "--interactions", "5000")
    assert result.exit_code == 0
    assert invoke("bench", "nope").exit_code == 2


@pytest.mark.integration
def test_consume_gives_up_after_its_timeout_on_an_empty_topic(
        stack_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in settings_env(stack_settings).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RECSYS_CLICKSTREAM_TOPIC", "empty-topic")
    from recsys.kafka_io import ensure_topics

    ensure_topics(stack_settings, ["empty-topic"])
    started = time.monotonic()
    result = invoke("consume", "--timeout", "3", "--group", "empty")
    assert result.exit_code == 0, result.output
    assert "0 event(s)" in result.output
    assert time.monotonic() - started < 30


@pytest.mark.integration
def test_retrieval_train_and_evaluate_commands(stack_settings: Settings, small_dataset: Path,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in settings_env(stack_settings).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RECSYS_ALS_ITERATIONS", "3")
    result = invoke("retrieval", "train", str(small_dataset), "--out", str(tmp_path / "als"))
    assert result.exit_code == 0, result.output
    assert "MLflow run" in result.output
    assert (tmp_path / "als").is_dir() and any((tmp_path / "als").iterdir())
    result = invoke("retrieval", "evaluate", str(small_dataset), "--no-tune")
    assert result.exit_code == 0, result.output
    assert "| popularity" in result.output and "nDCG@10" in result.output


def test_stream_job_refuses_to_start_without_its_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECSYS_FLINK_PYTHON", str(tmp_path / "missing" / "python"))
    result = invoke("stream", "job")
    assert result.exit_code == 1
    assert "make setup" in result.output
