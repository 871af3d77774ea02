"""Bind the Feast repository in this folder to the platform's settings.

``feature_store.yaml`` is the single definition of the Feast configuration; its
``${RECSYS_FEAST_*}`` placeholders are filled from :class:`recsys.settings.Settings`
both for the ``feast`` CLI (through :func:`feast_env`) and for Python code
(through :func:`get_feature_store`).
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import yaml

from recsys.settings import Settings, settings_env

if TYPE_CHECKING:
    from feast import FeatureStore

REPO_PATH = Path(__file__).resolve().parent
FEATURE_STORE_YAML = REPO_PATH / "feature_store.yaml"


def redis_connection_string(settings: Settings) -> str:
    """Feast's Redis connection string (``host:port,db=N[,password=…][,ssl=true]``).

    ``rediss://:KEY@host:6380/0`` (Azure Cache for Redis) keeps its password and TLS.
    """
    url = urlparse(settings.redis_url)
    parts = [f"{settings.redis_host}:{settings.redis_port}", f"db={settings.redis_db}"]
    if url.password:
        parts.append(f"password={unquote(url.password)}")
    if url.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def feast_env(settings: Settings) -> dict[str, str]:
    """The variables ``feature_store.yaml`` expects."""
    return {
        "RECSYS_FEAST_PROJECT": settings.feast_project,
        "RECSYS_FEAST_REGISTRY_TYPE": settings.feast_registry_type,
        "RECSYS_FEAST_REGISTRY": settings.feast_registry,
        "RECSYS_FEAST_REDIS": redis_connection_string(settings),
        "RECSYS_FEAST_OFFLINE_STORE": settings.feast_offline_store,
    }


def render_config(settings: Settings) -> dict:
    """``feature_store.yaml`` with its placeholders filled, as a mapping."""
    text = string.Template(FEATURE_STORE_YAML.read_text()).substitute(feast_env(settings))
    return yaml.safe_load(text)


def get_feature_store(settings: Settings) -> FeatureStore:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    config = RepoConfig(repo_path=REPO_PATH, **render_config(settings))
    return FeatureStore(config=config, repo_path=str(REPO_PATH))


def feast_cli_env(settings: Settings) -> dict[str, str]:
    """A full environment for running the ``feast`` CLI against this repository."""
    return {**os.environ, **settings_env(settings), **feast_env(settings)}
