"""Every rollback is an MLflow run in the ``rollbacks`` experiment.

Tags (and, for the first five, params too): ``who``, ``why``, ``from_version``,
``to_version``, ``when``, plus ``trigger`` (alertmanager/manual/watcher), ``alertname``,
``alert_labels`` (JSON), ``outcome`` and, once checked, ``verification``
(ok/failed/skipped) with the metric ``verify_seconds``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from mlflow.entities import Metric, Param, RunTag

PARAMS = ("who", "why", "from_version", "to_version", "when")


@dataclass
class RollbackRecord:
    who: str
    why: str
    trigger: str
    when: str
    from_version: str | None
    to_version: str | None
    outcome: str
    alertname: str = ""
    alert_labels: dict[str, str] = field(default_factory=dict)
    model_name: str = ""
    gradual: bool = False
    alert_started_at: str = ""

    def tags(self) -> dict[str, str]:
        values = asdict(self)
        values["alert_labels"] = json.dumps(self.alert_labels, sort_keys=True)
        values["gradual"] = str(self.gradual).lower()
        return {k: ("" if v is None else str(v))[:5000] for k, v in values.items()}


def _experiment_id(client, experiment: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(experiment)
    except Exception:  # created concurrently by another process
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


def start_record(client, experiment: str, record: RollbackRecord) -> str:
    """Create the run (left RUNNING until :func:`finish_record`); returns its id."""
    run = client.create_run(
        _experiment_id(client, experiment),
        run_name=f"{record.trigger}: {record.from_version} -> {record.to_version}",
        tags={"mlflow.user": record.who, **record.tags()},
    )
    tags = record.tags()
    client.log_batch(run.info.run_id, params=[Param(k, tags[k] or "-") for k in PARAMS])
    return run.info.run_id


def finish_record(client, run_id: str, verification: str, detail: str = "",
                  verify_seconds: float | None = None, ok: bool = True) -> None:
    metrics = []
    if verify_seconds is not None:
        metrics.append(Metric("verify_seconds", verify_seconds, _now_ms(), 0))
    client.log_batch(run_id, metrics=metrics, tags=[
        RunTag("verification", verification), RunTag("verification_detail", detail[:5000])])
    client.set_terminated(run_id, "FINISHED" if ok else "FAILED")


def set_outcome(client, run_id: str, outcome: str) -> None:
    client.set_tag(run_id, "outcome", outcome)


def log_metric(client, run_id: str, key: str, value: float) -> None:
    client.log_metric(run_id, key, value, _now_ms())


def history(client, experiment: str, limit: int = 20) -> list[dict]:
    """Newest first: the recorded rollbacks with their tags and metrics."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=limit)
    out = []
    for run in runs:
        tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        out.append({"run_id": run.info.run_id, "status": run.info.status,
                    "start_time": run.info.start_time, **tags,
                    "metrics": dict(run.data.metrics)})
    return out


def _now_ms() -> int:
    return int(time.time() * 1000)
