"""``recsys api …``: run the serving API, mint a token for it."""

from __future__ import annotations

from typing import Annotated

import typer

from recsys.settings import get_settings

app = typer.Typer(help="The serving API (FastAPI).", no_args_is_help=True)


@app.command("serve")
def serve_cmd(
    host: Annotated[str | None, typer.Option(help="Default: RECSYS_API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: RECSYS_API_PORT.")] = None,
) -> None:
    """Serve recommendations (follows the MLflow aliases; Ctrl-C stops)."""
    from api.__main__ import serve

    settings = get_settings()
    changes = {k: v for k, v in (("api_host", host), ("api_port", port)) if v is not None}
    serve(settings.model_copy(update=changes))


@app.command("token")
def token_cmd(
    scope: Annotated[list[str], typer.Option(help="read, events, admin (repeat).")] = ["read"],  # noqa: B006
    subject: Annotated[str, typer.Option()] = "recsys-cli",
    ttl: Annotated[float, typer.Option(help="Seconds.")] = 3600.0,
) -> None:
    """Print a JWT signed with RECSYS_API_JWT_SECRET (HS* algorithms only)."""
    from api.security import make_token

    settings = get_settings()
    if not settings.api_jwt_secret or not settings.api_jwt_algorithm.startswith("HS"):
        raise typer.BadParameter("needs RECSYS_API_JWT_SECRET and an HS* algorithm "
                                 "(RS*/ES* tokens come from your identity provider)")
    typer.echo(make_token(settings, scope, subject=subject, ttl_s=ttl))
