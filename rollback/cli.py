"""``recsys rollback …``: the webhook service, manual override, history."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

rollback_app = typer.Typer(help="Roll the MLflow champion alias back; rollback history.",
                           no_args_is_help=True)
console = Console()


def _settings():
    from recsys.cli import _settings as settings

    return settings()


@rollback_app.command("serve")
def serve() -> None:
    """The rollback service: POST /alerts (Alertmanager), POST /rollback, GET /history."""
    from rollback.app import main

    main(_settings())


@rollback_app.command("now")
def now(
    reason: Annotated[str, typer.Option(help="Why (recorded in MLflow).")],
    to_version: Annotated[str | None, typer.Option(help="Default: the last stable version.")
                          ] = None,
    who: Annotated[str | None, typer.Option(help="Default: $USER.")] = None,
    gradual: Annotated[bool, typer.Option(help="Shift traffic step by step.")] = False,
) -> None:
    """Manual override: move the champion alias back now (talks to MLflow directly)."""
    from rollback.engine import RollbackEngine, RollbackRefused

    engine = RollbackEngine(_settings())
    try:
        decision = engine.manual(who or os.environ.get("USER", "cli"), reason, to_version,
                                 gradual)
    except RollbackRefused as exc:
        console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print_json(json.dumps(decision.as_dict()))
    if decision.action not in {"rolled_back", "shifting"}:
        raise typer.Exit(1)
    console.print("verifying that the API serves it …")
    engine.wait_idle(timeout_s=engine.settings.rollback_verify_timeout_s + 600)
    run = engine.history(1)[0]
    console.print(f"verification: {run.get('verification')} ({run.get('verification_detail')})")


@rollback_app.command("history")
def history(limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
            as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Recorded rollbacks, newest first."""
    from rollback.engine import RollbackEngine

    rows = RollbackEngine(_settings()).history(limit)
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("when", "trigger", "who", "from", "to", "outcome", "verification", "why")
    for r in rows:
        table.add_row(r.get("when", ""), r.get("trigger", ""), r.get("who", ""),
                      r.get("from_version", ""), r.get("to_version", ""), r.get("outcome", ""),
                      r.get("verification", ""), r.get("why", "")[:60])
    console.print(table)
