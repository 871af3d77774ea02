"""The one settings object: environment overrides, derived values, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from feature_repo.store import feast_env, redis_connection_string, render_config
from recsys.settings import PROJECT_ROOT, Settings


def make(**env: str) -> Settings:
    return Settings(_env_file=None, **env)


def test_defaults_are_local_and_embedded() -> None:
    s = make()
    assert s.bootstrap_servers == "127.0.0.1:19092"
    assert s.broker_storage_url == "memory://tansu/"
    assert s.mlflow_backend.startswith("sqlite:///")
    assert s.feast_registry_type == "file"
    assert (s.redis_host, s.redis_port, s.redis_db) == ("127.0.0.1", 6379, 0)


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_BROKER_PORT", "29092")
    monkeypatch.setenv("RECSYS_REDIS_URL", "redis://cache.internal:6380/3")
    s = Settings(_env_file=None)
    assert s.bootstrap_servers == "127.0.0.1:29092"
    assert redis_connection_string(s) == "cache.internal:6380,db=3"


def test_redis_password_and_tls_reach_feast() -> None:
    s = make(redis_url="rediss://:k%2Fey@cache.redis.cache.windows.net:6380/0")
    assert redis_connection_string(s) == (
        "cache.redis.cache.windows.net:6380,db=0,password=k/ey,ssl=true")


def test_postgres_dsn_moves_mlflow_and_feast_registry_to_postgres() -> None:
    s = make(postgres_dsn="postgresql://mlops@db:5432/recsys")
    assert s.broker_storage_url == "memory://tansu/"  # the bundled tansu is memory-only
    assert s.mlflow_backend == "postgresql://mlops@db:5432/recsys"
    assert s.feast_registry == "postgresql+psycopg://mlops@db:5432/recsys"
    assert s.feast_registry_type == "sql"
    # an explicit setting wins over the shared DSN
    assert make(postgres_dsn="postgresql://a@b/c", mlflow_backend_uri="sqlite:///x.db"
                ).mlflow_backend == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("RECSYS_BROKER_PORT", "70000", "broker_port"),
        ("RECSYS_REDIS_URL", "http://localhost:6379", "redis_url"),
        ("RECSYS_TOPIC_PARTITIONS", "zero", "topic_partitions"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                     field: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=field):
        Settings(_env_file=None)


def test_env_example_documents_every_setting() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*(RECSYS_[A-Z0-9_]+)=", text, flags=re.M))
    expected = {f"RECSYS_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_feature_store_yaml_is_filled_from_settings(tmp_path: Path) -> None:
    s = make(state_dir=str(tmp_path), redis_url="redis://10.0.0.5:6379/2")
    config = render_config(s)
    assert config["project"] == s.feast_project
    assert config["online_store"] == {"type": "redis", "connection_string": "10.0.0.5:6379,db=2"}
    assert config["registry"]["path"] == str(tmp_path.resolve() / "feast-registry.db")
    assert config["offline_store"] == {"type": "duckdb"}
    assert render_config(make(state_dir=str(tmp_path), feast_offline_store="file")
                         )["offline_store"] == {"type": "file"}
    assert set(feast_env(s)) == {"RECSYS_FEAST_PROJECT", "RECSYS_FEAST_REGISTRY_TYPE",
                                 "RECSYS_FEAST_REGISTRY", "RECSYS_FEAST_REDIS",
                                 "RECSYS_FEAST_OFFLINE_STORE"}


def test_settings_round_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    from recsys.settings import settings_env

    original = make(state_dir=str(tmp_path), broker_port="29999", redis_autostart="false",
                    postgres_dsn="postgresql://a@b/c")
    for key, value in settings_env(original).items():
        monkeypatch.setenv(key, value)
    assert Settings(_env_file=None) == original


def test_event_hubs_sasl_reaches_every_kafka_client() -> None:
    from recsys.kafka_io import security_config
    from stream_jobs.features_job import java_client_properties, job_config

    connection = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=k'ey"
    s = make(broker_security_protocol="SASL_SSL", broker_sasl_username="$ConnectionString",
             broker_sasl_password=connection)
    assert security_config(s) == {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
                                  "sasl_plain_username": "$ConnectionString",
                                  "sasl_plain_password": connection}
    java = java_client_properties(s)
    assert java["security.protocol"] == "SASL_SSL"
    assert java["sasl.jaas.config"] == (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="$ConnectionString" password="{connection}";')
    cfg = job_config(s)
    assert dict(cfg.client_properties) == java  # every Kafka client of the Flink job
    assert connection not in str(cfg.job_parameters())  # not among the job's shown parameters
    assert connection not in s.model_dump_json()  # the secret is masked when printed
    assert security_config(make()) == {}


def test_relative_folders_reach_child_processes_as_the_same_absolute_folders(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`feast -c feature_repo` runs in another folder: `data` must not become
    feature_repo/data there (make demo's default settings)."""
    from recsys.settings import settings_env

    monkeypatch.chdir(tmp_path)
    s = make(data_dir="data", state_dir=".recsys", stream_catalogue="data/set")
    assert s.data_dir == tmp_path.resolve() / "data"
    env = settings_env(s)
    assert env["RECSYS_DATA_DIR"] == str(tmp_path.resolve() / "data")
    assert env["RECSYS_STATE_DIR"] == str(tmp_path.resolve() / ".recsys")
    assert env["RECSYS_STREAM_CATALOGUE"] == str(tmp_path.resolve() / "data" / "set")
    assert env["RECSYS_PROMETHEUS_BIN"] == "prometheus"  # a command on PATH stays one
    monkeypatch.chdir(tmp_path.parent)
    assert Settings(_env_file=None, data_dir=env["RECSYS_DATA_DIR"]).data_path == s.data_path
