"""The MLflow side of a ranker: one run per training, registered versions, aliases, promotion.

Every training is one run in ``settings.ranker_experiment`` (params, metrics, the bundle
folder as artifact ``ranker/``) and, when registered, a new version of
``settings.registered_model_name`` whose source is that folder. Version tags:

- ``validation_metric`` / ``validation_value``: what :func:`promote` compares;
- ``training_data``, ``split``, ``run_id``, ``trees``;
- ``champion_since`` (ISO 8601, UTC): set whenever the version becomes champion, so the
  rollback service can find "the last stable version" (``rollback/registry.py`` reads it).

Promotion rule (:func:`promote`): the first version becomes champion; after that a
challenger becomes champion only if its validation metric (same metric name) is strictly
higher than the champion's; a version tagged ``rolled_back`` is never promoted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recsys.settings import Settings, get_settings

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
METRIC_TAG = "validation_metric"
VALUE_TAG = "validation_value"
DATA_TAG = "training_data"
RUN_TAG = "run_id"
CHAMPION_SINCE_TAG = "champion_since"
ROLLED_BACK_TAG = "rolled_back"
ARTIFACT_PATH = "ranker"


def client_for(settings: Settings):
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def log_run(client, settings: Settings, bundle: Path, params: dict[str, Any],
            metrics: dict[str, float], tags: dict[str, str], run_name: str = "lambdarank"
            ) -> str:
    """One MLflow run: params, metrics, and the bundle folder under ``ranker/``."""
    from mlflow.entities import Metric, Param, RunTag

    experiment = client.get_experiment_by_name(settings.ranker_experiment)
    experiment_id = (experiment.experiment_id if experiment
                     else client.create_experiment(settings.ranker_experiment))
    run_id = client.create_run(experiment_id, run_name=run_name,
                               tags={"stage": "ranking", **tags}).info.run_id
    try:
        now = int(datetime.now(UTC).timestamp() * 1000)
        client.log_batch(run_id,
                         metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                         params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
        client.log_artifacts(run_id, str(bundle), artifact_path=ARTIFACT_PATH)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id


def register(client, name: str, run_id: str, metric: str, value: float, training_data: str,
             extra_tags: dict[str, str] | None = None) -> str:
    """A new version of ``name`` from the run's ``ranker/`` folder; returns the version."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="LightGBM LambdaRank ranker (ONNX) + the retrieval model it "
            "was trained with; see docs/ranking.md")
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{ARTIFACT_PATH}"
    tags = {METRIC_TAG: metric, VALUE_TAG: repr(float(value)), DATA_TAG: training_data,
            RUN_TAG: run_id, **(extra_tags or {})}
    mv = client.create_model_version(name, source=source, run_id=run_id, tags=tags)
    return str(mv.version)


def get_alias_version(client, name: str, alias: str) -> str | None:
    """The version an alias points at, or None (no such alias or model). A registry that
    fails otherwise raises: :func:`promote` must not read an outage as "no champion"."""
    return get_aliases(client, name).get(alias)


def get_aliases(client, name: str) -> dict[str, str]:
    """Every alias of the registered model and its version, in one registry call; {} when
    there is no such model (any other failure raises)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def set_alias(client, name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, str(version))
    if alias == CHAMPION:
        client.set_model_version_tag(name, str(version), CHAMPION_SINCE_TAG, _now())


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    reason: str
    champion: str | None  # the champion after the decision

    def __bool__(self) -> bool:
        return self.promoted


def _metric(client, name: str, version: str) -> tuple[str, float]:
    tags = client.get_model_version(name, version).tags or {}
    try:
        return tags[METRIC_TAG], float(tags[VALUE_TAG])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{name} version {version} has no usable {METRIC_TAG}/{VALUE_TAG} "
                         f"tags ({exc})") from None


def promote(challenger_version: str, settings: Settings | None = None, client=None
            ) -> Promotion:
    """Make ``challenger_version`` champion if it beats the champion (see module doc)."""
    settings = settings or get_settings()
    client = client or client_for(settings)
    name = settings.registered_model_name
    version = str(challenger_version)
    tags = client.get_model_version(name, version).tags or {}  # raises if it does not exist
    champion = get_alias_version(client, name, CHAMPION)
    if tags.get(ROLLED_BACK_TAG) == "true":
        return Promotion(False, f"version {version} was rolled back; not promoted", champion)
    if champion == version:
        return Promotion(False, f"version {version} is already champion", champion)
    metric, value = _metric(client, name, version)
    if champion is None:
        reason = f"no champion yet: version {version} ({metric} {value:.4f}) becomes champion"
    else:
        champ_metric, champ_value = _metric(client, name, champion)
        if champ_metric != metric:
            return Promotion(False, f"metrics differ ({metric} vs the champion's "
                                    f"{champ_metric}); not comparable", champion)
        if not value > champ_value:
            return Promotion(False, f"version {version} {metric} {value:.4f} does not beat "
                                    f"champion {champion} ({champ_value:.4f})", champion)
        reason = (f"version {version} {metric} {value:.4f} beats champion {champion} "
                  f"({champ_value:.4f})")
    set_alias(client, name, CHAMPION, version)
    if get_alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    log.info("promoted: %s", reason)
    return Promotion(True, reason, version)
