"""``recsys ranking``: train, evaluate, promote, backfill."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

app = typer.Typer(help="LightGBM LambdaRank ranker: train → ONNX → MLflow; evaluate; promote.",
                  no_args_is_help=True)


def _settings():
    from recsys.cli import _settings as settings

    return settings()


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@app.command("train")
def train(
    dataset: Annotated[Path, typer.Argument(help="A data set folder.")],
    register: Annotated[bool, typer.Option(help="Log to MLflow and register a new version "
                                                "of settings.registered_model_name.")] = True,
    alias: Annotated[str | None, typer.Option(help="Point this alias (e.g. challenger) at "
                                                   "the new version.")] = None,
    split: Annotated[Literal["temporal", "protocol"], typer.Option(
        help="temporal: labels after the cutoff quantile (RECSYS_RANKER_CUTOFF_QUANTILE); "
             "protocol: per-user random 75/25 (features from a scratch store).")] = "temporal",
    backfill: Annotated[bool, typer.Option(help="temporal: first write the data set's "
                                                "stream features into the offline store.")] = True,
    out: Annotated[Path | None, typer.Option(help="Also keep the bundle folder here.")] = None,
) -> None:
    """Train a ranker on point-in-time features, export to ONNX, register it."""
    from ranking.onnx_export import ExportError
    from ranking.train import train_ranker

    if alias and not register:
        raise _fail("--alias needs --register", 2)
    if out is not None and out.exists() and any(out.iterdir()):
        raise _fail(f"--out {out} exists and is not empty", 2)
    try:
        result = train_ranker(dataset, _settings(), split=split, backfill=backfill,
                              register=register, alias=alias, out=out, log=_log)
    except (ExportError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    m = result.metrics
    typer.echo(f"validation nDCG@10 {m['val_ndcg_at_10']:.4f} (retrieval order "
               f"{m['val_retrieval_ndcg_at_10']:.4f}); {int(m['trees'])} trees; parity "
               f"{m['parity_max_abs_diff']:.1e}")
    if result.version:
        typer.echo(f"registered version {result.version} (run {result.run_id})"
                   + (f", alias {result.alias}" if result.alias else ""))
    if result.bundle:
        typer.echo(f"bundle: {result.bundle}")


@app.command("evaluate")
def evaluate(
    dataset: Annotated[Path, typer.Argument(help="A data set folder or a MovieLens folder.")],
    seed: Annotated[int, typer.Option()] = 42,
    tune: Annotated[bool, typer.Option(help="Tune ALS on the validation split first.")] = True,
) -> None:
    """Popularity, ALS alone, ALS + ranker and the published rows: a Markdown table."""
    from ranking.evaluate import evaluate as run

    report = run(dataset, seed=seed, tune_als=tune, settings=_settings(), log=_log)
    typer.echo(report.markdown())


@app.command("promote")
def promote(version: Annotated[str, typer.Argument(help="The challenger version.")]) -> None:
    """Make VERSION champion if its validation metric beats the champion's."""
    from mlflow.exceptions import MlflowException

    from ranking.registry import promote as run

    try:
        result = run(version, _settings())
    except (MlflowException, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(("promoted: " if result.promoted else "not promoted: ") + result.reason)
    if not result.promoted:
        raise typer.Exit(3)


@app.command("backfill")
def backfill(
    dataset: Annotated[Path, typer.Argument(help="A data set folder.")],
    stream: Annotated[bool, typer.Option(help="Also the stream views (activity windows, "
                                              "recent items) from the data set's events.")
                      ] = False,
) -> None:
    """Write item_metadata / user_profile (and optionally stream views) offline tables.

    Then ``recsys feast materialize-incremental <end time>`` puts them online.
    """
    from ranking.backfill import backfill_metadata_views, backfill_stream_views
    from ranking.train import dataset_tag
    from retrieval.interactions import load_interactions

    settings = _settings()
    written = backfill_metadata_views(dataset, settings.offline_store_path, dataset_tag(dataset))
    if stream:
        written |= backfill_stream_views(load_interactions(dataset),
                                         settings.offline_store_path, dataset_tag(dataset))
    for view, rows in written.items():
        typer.echo(f"{view}: {rows:,} rows → {settings.offline_store_path / view}")
