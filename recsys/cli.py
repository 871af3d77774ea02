"""``recsys``: the one command-line entry point for every job of the platform."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.cli import app as api_app
from monitoring.cli import monitor_app
from ranking.cli import app as ranking_app
from recsys.settings import Settings, get_settings, redact_url
from rollback.cli import rollback_app

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
stack_app = typer.Typer(help="Bring the embedded local stack up or down.", no_args_is_help=True)
generate_app = typer.Typer(help="Generate data sets.", no_args_is_help=True)
load_app = typer.Typer(help="Load public data sets into the platform's layout.",
                       no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(generate_app, name="generate")
app.add_typer(load_app, name="load")
retrieval_app = typer.Typer(help="ALS retrieval: train, evaluate.", no_args_is_help=True)
app.add_typer(retrieval_app, name="retrieval")
stream_app = typer.Typer(help="The PyFlink feature job and the Feast feature writer.",
                         no_args_is_help=True)
app.add_typer(stream_app, name="stream")
app.add_typer(monitor_app, name="monitor")
app.add_typer(rollback_app, name="rollback")
app.add_typer(api_app, name="api")
app.add_typer(ranking_app, name="ranking")

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:  # pydantic ValidationError names each bad variable
        err.print(f"[red]invalid settings[/red] (RECSYS_* environment or .env):\n{exc}")
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


# --- stack -------------------------------------------------------------------------


def _status_table(statuses: list) -> Table:
    table = Table("service", "address", "state", "detail")
    for s in statuses:
        table.add_row(s.name, s.address, s.state, s.detail)
    return table


@stack_app.command("up")
def stack_up(
    no_mlflow: Annotated[bool, typer.Option(help="Skip the MLflow server.")] = False,
) -> None:
    """Start broker, Redis, MLflow and the Feast registry; wait until each is healthy."""
    from recsys.stack import Stack, StartupError

    settings = _settings()
    stack = Stack(settings, report=lambda s: console.print(f"{s.name:<7} {s.state} {s.address}"))
    try:
        statuses = stack.up(with_mlflow=not no_mlflow)
    except StartupError as exc:
        stack.down(only_started=True)
        raise _fail(str(exc)) from None
    console.print(_status_table(statuses))
    console.print(f"state and logs: {settings.state_path / 'run'}; stop with: recsys stack down")


@stack_app.command("down")
def stack_down() -> None:
    """Stop every service `recsys stack up` started (external services are left alone)."""
    from recsys.stack import Stack

    console.print(_status_table(Stack(_settings()).down()))


@stack_app.command("status")
def stack_status() -> None:
    """Show which services answer."""
    from recsys.stack import Stack

    console.print(_status_table(Stack(_settings()).status()))


# --- data -----------------------------------------------------------------------------


@generate_app.command("synthetic")
def generate_synthetic(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("data/synthetic"),
    users: Annotated[int, typer.Option(min=1)] = 10_000,
    items: Annotated[int, typer.Option(min=1)] = 2_000,
    interactions: Annotated[int, typer.Option(min=1)] = 200_000,
    categories: Annotated[int, typer.Option(min=1)] = 40,
    days: Annotated[int, typer.Option(min=1)] = 90,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")] = "2026-01-05",
    seed: Annotated[int, typer.Option()] = 42,
    overwrite: Annotated[bool, typer.Option()] = False,
) -> None:
    """Seeded, deterministic synthetic e-commerce data streamed to Parquet."""
    from recsys.datasets.layout import DatasetExistsError
    from recsys.datasets.synthetic import SyntheticConfig, generate
    from recsys.progress import progress_bar

    try:
        cfg = SyntheticConfig(n_users=users, n_items=items, n_interactions=interactions,
                              n_categories=categories, days=days, start=start, seed=seed)
    except ValueError as exc:
        raise _fail(f"bad option: {exc}", 2) from None
    try:
        with progress_bar(interactions, "events") as advance:
            manifest = generate(cfg, out, overwrite=overwrite, progress=advance)
    except DatasetExistsError as exc:
        raise _fail(str(exc), 2) from None
    console.print_json(json.dumps({k: manifest[k] for k in ("users", "items", "events",
                                                           "event_types", "parts")}))
    console.print(f"written to {out.resolve()}")


@load_app.command("movielens")
def load_movielens(
    path: Annotated[Path, typer.Argument(help="Folder with u.data (100K) or ratings.dat "
                                              "(1M/10M).")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("data/movielens"),
    overwrite: Annotated[bool, typer.Option()] = False,
) -> None:
    """Turn MovieLens ratings into events (every rating is one interaction)."""
    from recsys.datasets.layout import DatasetExistsError
    from recsys.datasets.movielens import MovieLensFormatError, load
    from recsys.datasets.validation import DatasetValidationError, ensure_valid

    try:
        manifest = load(path, out, overwrite=overwrite)
        report = ensure_valid(out)
    except (MovieLensFormatError, DatasetExistsError) as exc:
        raise _fail(f"rejected, nothing written: {exc}", 2) from None
    except DatasetValidationError as exc:
        raise _fail(str(exc), 2) from None
    console.print(report.render())
    console.print(f"{manifest['name']}: {manifest['events']:,} events written to {out.resolve()}")


@app.command("validate")
def validate(dataset: Annotated[Path, typer.Argument(help="A data set folder.")]) -> None:
    """Check schema, value ranges and referential integrity; exit 1 if invalid."""
    from recsys.datasets.validation import validate_dataset

    report = validate_dataset(dataset)
    (console if report.ok else err).print(report.render())
    if not report.ok:
        raise typer.Exit(1)


@app.command("schema")
def schema(
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Print (or write) the clickstream event JSON schema."""
    from feature_repo.events import event_json_schema, write_json_schema

    if out:
        console.print(f"written {write_json_schema(out)}")
    else:
        console.print_json(json.dumps(event_json_schema()))


# --- stream ---------------------------------------------------------------------------------


@stream_app.command("job")
def stream_job(
    restore: Annotated[bool, typer.Option(help="Resume from the newest checkpoint.")] = False,
) -> None:
    """Run the Flink feature job in the foreground (in the stream jobs' environment)."""
    from recsys.kafka_io import ensure_topics
    from recsys.settings import settings_env

    settings = _settings()
    python = settings.flink_python_path
    if not python.exists():
        raise _fail(f"{python} missing: run `make setup`")
    ensure_topics(settings)
    argv = [str(python), "-m", "stream_jobs.features_job", *(["--restore"] if restore else [])]
    raise typer.Exit(subprocess.call(argv, env={**os.environ, **settings_env(settings)}))


@stream_app.command("writer")
def stream_writer() -> None:
    """Write the job's feature rows into Feast (online + offline) until Ctrl-C."""
    from stream_jobs.feature_writer import main

    main()


# --- retrieval ---------------------------------------------------------------------------


@retrieval_app.command("train")
def retrieval_train(
    dataset: Annotated[Path, typer.Argument(help="A data set folder (or a MovieLens folder).")],
    out: Annotated[Path, typer.Option(help="Artifacts folder.")] = Path("data/retrieval"),
    mlflow: Annotated[bool, typer.Option(help="Log the run to MLflow.")] = True,
) -> None:
    """Train ALS + popularity + content vectors; save artifacts (and log them to MLflow)."""
    from retrieval.train import train

    result = train(dataset, out, settings=_settings(), log_mlflow=mlflow)
    run = f"; MLflow run {result.run_id}" if result.run_id else ""
    console.print(f"artifacts in {result.out}{run}")


@retrieval_app.command("evaluate")
def retrieval_evaluate(
    dataset: Annotated[Path, typer.Argument(help="A data set folder (or a MovieLens folder).")],
    seed: Annotated[int, typer.Option()] = 42,
    tune: Annotated[bool, typer.Option(help="Tune ALS on a validation split of the "
                                            "training part.")] = True,
) -> None:
    """Offline evaluation (Microsoft Recommenders protocol); prints a Markdown table."""
    from retrieval.evaluate import evaluate

    report = evaluate(dataset, seed=seed, tune_als=tune, settings=_settings())
    typer.echo(report.markdown())  # plain: a Markdown table must not be wrapped


# --- kafka ----------------------------------------------------------------------------


@app.command("replay")
def replay_cmd(
    dataset: Annotated[Path, typer.Argument(help="A data set folder.")],
    rate: Annotated[float | None, typer.Option(help="Events per second; unset = as fast as "
                                                    "possible.", min=0.1)] = None,
    limit: Annotated[int | None, typer.Option(help="Stop after this many events.", min=1)] = None,
) -> None:
    """Replay a data set into the clickstream topic, preserving event time."""
    from kafka.errors import KafkaError

    from recsys.datasets.layout import count_rows, event_parts
    from recsys.datasets.validation import DatasetValidationError
    from recsys.progress import progress_bar
    from stream_jobs.replay import replay

    settings = _settings()
    total = min(count_rows(event_parts(dataset)), limit or sys.maxsize)
    try:
        with progress_bar(total, "replay") as advance:
            result = replay(settings, dataset, rate=rate, limit=limit, progress=advance)
    except DatasetValidationError as exc:
        raise _fail(f"rejected, nothing sent:\n{exc}", 2) from None
    except KafkaError as exc:
        raise _fail(f"broker at {settings.bootstrap_servers}: {exc!r}") from None
    console.print(f"sent {result.sent:,} events in {result.seconds:.1f} s "
                  f"({result.rate:,.0f}/s): {dict(result.by_type)}")


@app.command("consume")
def consume(
    max_events: Annotated[int, typer.Option(min=1)] = 10,
    group: Annotated[str | None, typer.Option(help="Consumer group (default: settings).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for events.")] = 10.0,
) -> None:
    """Print events from the clickstream topic (as a consumer group member) and commit."""
    from feature_repo.events import EventValidationError, parse_event
    from recsys.kafka_io import make_consumer

    settings = _settings()
    consumer = make_consumer(settings, settings.clickstream_topic,
                             group_id=group or settings.consumer_group,
                             consumer_timeout_ms=int(timeout * 1000))
    shown = 0
    try:
        for record in consumer:
            try:
                event = parse_event(record.value)
                console.print(event.model_dump_json(exclude_none=True))
            except EventValidationError as exc:
                console.print(f"[yellow]invalid at offset {record.offset}[/yellow]: {exc}")
            shown += 1
            if shown >= max_events:
                break
        consumer.commit()
    finally:
        consumer.close()
    console.print(f"{shown} event(s)")


# --- feast ------------------------------------------------------------------------------


@app.command("feast", context_settings={"allow_extra_args": True,
                                        "ignore_unknown_options": True})
def feast_cmd(ctx: typer.Context) -> None:
    """Run the feast CLI on feature_repo/ with settings applied, e.g. `recsys feast apply`."""
    from feature_repo.store import REPO_PATH, feast_cli_env
    from recsys.stack.services import venv_bin

    code = subprocess.call([venv_bin("feast"), "-c", str(REPO_PATH), *ctx.args],
                           env=feast_cli_env(_settings()))
    raise typer.Exit(code)


# --- benchmarks ----------------------------------------------------------------------------

BENCHMARKS = {"generator": "bench_generator.py", "retrieval": "bench_retrieval.py",
              "ranking": "bench_ranking.py", "api": "bench_api.py", "stream": "bench_stream.py",
              "scale": "bench_scale.py", "pit": "bench_pit.py",
              "index": "bench_index.py", "publisher": "bench_publisher.py",
              "alias_poll": "bench_alias_poll.py"}


@app.command("bench", context_settings={"allow_extra_args": True,
                                        "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(BENCHMARKS)}.")],
) -> None:
    """Run a benchmark from bench/ (extra options are passed on); prints a BENCHMARKS.md row."""
    from recsys.settings import PROJECT_ROOT

    if name not in BENCHMARKS:
        raise _fail(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}", 2)
    script = PROJECT_ROOT / "bench" / BENCHMARKS[name]
    raise typer.Exit(subprocess.call([sys.executable, str(script), *ctx.args]))


@app.command("simulate")
def simulate(
    dataset: Annotated[Path, typer.Argument(help="The data set the API's models were trained on.")],
    api_url: Annotated[str | None, typer.Option(help="API base URL; from settings if unset.")
                       ] = None,
    users: Annotated[int, typer.Option(min=2, help="Simulated users (split 50/50).")] = 300,
    rounds: Annotated[int, typer.Option(min=1, help="Requests per user.")] = 2,
    k: Annotated[int, typer.Option(min=1, max=100)] = 10,
    seed: int = 42,
    token: Annotated[str | None, typer.Option(envvar="RECSYS_API_TOKEN",
                                              help="Bearer token with the events scope.")
                     ] = None,
) -> None:
    """Closed-loop A/B: simulated users on ALS + ranker vs popularity, logged to MLflow."""
    import httpx

    from recsys.progress import progress_bar
    from recsys.simulator import HiddenWorld, SimulationConfig, Simulator, log_to_mlflow

    settings = _settings()
    if not (dataset / "manifest.json").exists():
        raise _fail(f"dataset: {dataset} is not a data set folder (no manifest.json)", 2)
    config = SimulationConfig(users=users, rounds=rounds, k=k, seed=seed)
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    world = HiddenWorld.from_dataset(dataset)
    try:
        with httpx.Client(base_url=url, timeout=10) as client, progress_bar(
                min(users, len(world.tastes)), "simulated users") as advance:
            report = Simulator(client, world, config, write_headers=headers).run(advance)
    except httpx.HTTPError as exc:
        raise _fail(f"api-url: {url}: {exc}") from None
    console.print(report.markdown())
    run_id = log_to_mlflow(report, settings.mlflow_tracking_uri, dataset)
    console.print(f"MLflow run {run_id} (experiment ab-simulation)")


# --- main job -----------------------------------------------------------------------------


@app.command("demo")
def demo(
    keep_up: Annotated[bool, typer.Option(help="Leave the stack running afterwards.")] = False,
) -> None:
    """The main job end to end on the embedded stack; exit 1 if any check fails."""
    from recsys.demo import run_demo
    from recsys.stack import StartupError

    try:
        ok = run_demo(_settings(), console, keep_up=keep_up)
    except StartupError as exc:
        raise _fail(str(exc)) from None
    if not ok:
        raise typer.Exit(1)


@app.command("settings")
def show_settings() -> None:
    """Print the effective settings (secrets masked)."""
    settings = _settings()
    # SecretStr fields dump as "**********"; passwords inside any URL-valued setting (DSNs,
    # the Redis URL, a SQL Feast registry, …) are masked here
    values = {key: redact_url(value) if isinstance(value, str) else value
              for key, value in settings.model_dump(mode="json").items()}
    console.print_json(json.dumps(values))


if __name__ == "__main__":
    app()
