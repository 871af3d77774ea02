"""``recsys monitor …``: the drift/CTR monitor, alerting configs, local Prometheus."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

monitor_app = typer.Typer(help="Drift / CTR monitor, alert rules, Prometheus + Alertmanager.",
                          no_args_is_help=True)
console = Console()


def _settings():
    from recsys.cli import _settings as settings

    return settings()


@monitor_app.command("run")
def run() -> None:
    """The monitor service in the foreground: /metrics + clickstream/serving-log consumer."""
    from monitoring.service import main

    main(_settings())


@monitor_app.command("configs")
def configs(
    out: Annotated[Path, typer.Option(help="Folder for prometheus.yml, alertmanager.yml, "
                                            "rules/.")] = Path("monitoring"),
    fast: Annotated[bool, typer.Option(help="Second-scale intervals (tests, demos).")] = False,
) -> None:
    """Render the Prometheus and Alertmanager configs from the settings."""
    from monitoring.alerting import FAST, PRODUCTION, write_configs

    prom, am = write_configs(_settings(), out, FAST if fast else PRODUCTION)
    console.print(f"written: {prom}, {am}")


@monitor_app.command("alerting")
def alerting(
    fast: Annotated[bool, typer.Option(help="Second-scale intervals (demos).")] = False,
) -> None:
    """Run Prometheus + Alertmanager (Debian packages) with rendered configs until Ctrl-C."""
    import signal
    import threading

    from monitoring.alerting import FAST, PRODUCTION, AlertingStack, write_configs
    from recsys.stack import StartupError

    settings = _settings()
    workdir = settings.state_path / "alerting"
    prom, am = write_configs(settings, workdir, FAST if fast else PRODUCTION)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with AlertingStack(settings, workdir, prom, am) as stack:
            console.print(f"Prometheus {stack.prometheus_url}, Alertmanager "
                          f"{stack.alertmanager_url}; Ctrl-C stops both")
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
    except StartupError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
