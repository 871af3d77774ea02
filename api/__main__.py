"""``python -m api``: the serving API under uvicorn (one process), configured by settings."""

from __future__ import annotations

import logging
import sys

from recsys.settings import Settings, get_settings


def serve(settings: Settings) -> None:
    import uvicorn

    from api.app import create_app
    from api.security import ConfigError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", stream=sys.stderr)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise SystemExit(f"api: invalid settings: {exc}") from None
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, loop="uvloop",
                http="httptools", access_log=settings.api_access_log, log_level="info",
                timeout_graceful_shutdown=10)


def main() -> None:
    serve(get_settings())


if __name__ == "__main__":
    main()
