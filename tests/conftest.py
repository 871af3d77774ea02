"""Shared fixtures.

Integration tests run against a real stack started once per session on free
ports, with its own state folder and its own redis-server, so they never touch
a developer's running stack (or its Redis data).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recsys.datasets.synthetic import SyntheticConfig, generate
from recsys.settings import Settings
from recsys.stack import Stack, free_port

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
SMALL = SyntheticConfig(n_users=400, n_items=150, n_interactions=6_000, n_categories=8, days=14,
                        events_per_part=2_500)


def stack_env(state: Path, data: Path) -> dict[str, str]:
    return {
        "RECSYS_STATE_DIR": str(state),
        "RECSYS_DATA_DIR": str(data),
        "RECSYS_BROKER_PORT": str(free_port()),
        "RECSYS_MLFLOW_PORT": str(free_port()),
        "RECSYS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "RECSYS_CLICKSTREAM_TOPIC": "test-clickstream",
        "RECSYS_DEAD_LETTER_TOPIC": "test-clickstream-dlq",
    }


@pytest.fixture(scope="session")
def stack_environ(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("stack")
    return stack_env(root / "state", root / "data")


@pytest.fixture(scope="session")
def stack_settings(stack_environ: dict[str, str]) -> Iterator[Settings]:
    """Settings of a running test stack (broker, redis, MLflow, Feast registry).

    The environment is not changed; tests that run the CLI in-process set the
    variables themselves with ``monkeypatch`` (see ``tests/test_cli.py``).
    """
    fields = {key.removeprefix("RECSYS_").lower(): value for key, value in stack_environ.items()}
    settings = Settings(_env_file=None, **fields)
    with Stack(settings):
        yield settings


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "small"
    generate(SMALL, out)
    return out


@pytest.fixture(scope="session")
def ml100k_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from recsys.datasets.movielens import load

    out = tmp_path_factory.mktemp("data") / "ml100k"
    load(ML100K, out)
    return out
