"""Train the retrieval model on a data set, save its artifacts, log the run to MLflow.

    python -m retrieval.train --dataset data/synthetic --out artifacts/retrieval

Hyper-parameters come from the settings (``RECSYS_ALS_*``); the run is logged to the
MLflow server at ``settings.mlflow_tracking_uri`` in experiment
``settings.retrieval_experiment`` (params, per-iteration time and loss, metrics, and the
artifact folder under ``retrieval/``), unless ``--no-mlflow``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys.settings import Settings, get_settings
from retrieval.artifacts import save_model
from retrieval.catalogue import load_catalogue
from retrieval.config import ALSConfig, RetrievalConfig
from retrieval.interactions import load_interactions
from retrieval.model import RetrievalModel, fit_retrieval

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: RetrievalModel
    out: Path
    run_id: str | None


def flat_params(config: ALSConfig) -> dict[str, Any]:
    params = {k: v for k, v in config.to_dict().items() if k != "event_weights"}
    params.update({f"weight_{t}": w for t, w in config.event_weights.items()})
    return params


def train(dataset: Path, out: Path, settings: Settings | None = None, log_mlflow: bool = True,
          show_progress: bool = True, track_loss: bool = False) -> TrainResult:
    """Fit on ``dataset``, write the artifact folder ``out``, log to MLflow; returns both."""
    settings = settings or get_settings()
    als_config = ALSConfig.from_settings(settings)
    config = RetrievalConfig.from_settings(settings)
    started = time.perf_counter()
    events = load_interactions(dataset)
    catalogue = load_catalogue(dataset)
    load_s = time.perf_counter() - started

    client = run_id = None
    if log_mlflow:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
        experiment = client.get_experiment_by_name(settings.retrieval_experiment)
        experiment_id = (experiment.experiment_id if experiment else
                         client.create_experiment(settings.retrieval_experiment))
        run_id = client.create_run(experiment_id, run_name="als",
                                   tags={"stage": "retrieval", "dataset": str(dataset)}
                                   ).info.run_id
        client.log_batch(run_id, params=_params(flat_params(als_config)))

    def on_iteration(iteration: int, seconds: float, loss: float | None) -> None:
        log.info("ALS iteration %d: %.2fs%s", iteration + 1, seconds,
                 "" if loss is None else f", loss {loss:.5f}")
        if client is not None and run_id is not None:
            client.log_metric(run_id, "iteration_seconds", seconds, step=iteration)
            if loss is not None:
                client.log_metric(run_id, "train_loss", float(loss), step=iteration)

    try:
        model = fit_retrieval(events, catalogue, als_config, config, show_progress=show_progress,
                              callback=on_iteration, track_loss=track_loss)
        model.metrics["load_seconds"] = round(load_s, 3)
        save_model(model, out)
        if client is not None and run_id is not None:
            numeric = {k: float(v) for k, v in model.metrics.items()
                       if isinstance(v, int | float)}
            for key, value in numeric.items():
                client.log_metric(run_id, key, value)
            client.log_artifacts(run_id, str(out), artifact_path="retrieval")
            client.set_terminated(run_id, "FINISHED")
    except BaseException:
        if client is not None and run_id is not None:
            client.set_terminated(run_id, "FAILED")
        raise
    return TrainResult(model, out, run_id)


def _params(params: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(k, str(v)) for k, v in params.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--loss", action="store_true", help="track the training loss")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    result = train(args.dataset, args.out, log_mlflow=not args.no_mlflow,
                   track_loss=args.loss)
    print(f"artifacts: {result.out}" + (f"\nMLflow run: {result.run_id}" if result.run_id
                                        else ""))
    print(" ".join(f"{k}={v}" for k, v in result.model.metrics.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
