"""After moving an alias: poll the API until it serves the expected version and is healthy.

The API contract: ``GET /health`` -> ``{"status": "ok"}``; ``GET /models`` ->
``{"arms": [{"arm": "champion", "version": "<served>", "share": ...}, ...], ...}``.
The API polls the MLflow aliases and hot-swaps, so this waits for that to happen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Verification:
    ok: bool
    seconds: float
    detail: str

    @property
    def label(self) -> str:
        return "ok" if self.ok else "failed"


def served_arms(models: dict) -> dict[str, dict]:
    return {str(a.get("arm")): a for a in models.get("arms") or [] if isinstance(a, dict)}


def verify_served(base_url: str, version: str, arm: str = "champion", timeout_s: float = 60.0,
                  interval_s: float = 0.5, share: float | None = None) -> Verification:
    """True once ``arm`` serves ``version`` (with ``share``, if given) and /health is ok."""
    started = time.monotonic()
    detail = "no answer yet"
    with httpx.Client(base_url=base_url, timeout=min(5.0, timeout_s)) as http:
        while True:
            try:
                arms = served_arms(http.get("/models").raise_for_status().json())
                served = arms.get(arm, {})
                version_ok = str(served.get("version")) == str(version)
                share_ok = share is None or abs(float(served.get("share", -1)) - share) < 1e-6
                health = http.get("/health").json() if version_ok and share_ok else {}
                if version_ok and share_ok and health.get("status") == "ok":
                    return Verification(True, time.monotonic() - started,
                                        f"{arm} serves version {version}; health ok")
                detail = (f"{arm} serves {served.get('version')!r} (share "
                          f"{served.get('share')!r}), want {version!r}"
                          + (f" (share {share:g})" if share is not None else "")
                          + (f"; health {health!r}" if version_ok and share_ok else ""))
            except (httpx.HTTPError, ValueError) as exc:
                detail = f"API not answering: {exc!r}"
            if time.monotonic() - started >= timeout_s:
                return Verification(False, time.monotonic() - started, detail)
            time.sleep(interval_s)


def verify_gone(base_url: str, version: str, arm: str = "challenger", timeout_s: float = 60.0,
                interval_s: float = 0.5) -> Verification:
    """True once ``arm`` no longer serves ``version`` and /health is ok."""
    started = time.monotonic()
    detail = "no answer yet"
    with httpx.Client(base_url=base_url, timeout=min(5.0, timeout_s)) as http:
        while True:
            try:
                served = served_arms(http.get("/models").raise_for_status().json()).get(arm, {})
                health = http.get("/health").json()
                if str(served.get("version")) != str(version) and health.get("status") == "ok":
                    return Verification(True, time.monotonic() - started,
                                        f"{arm} no longer serves version {version}; health ok")
                detail = f"{arm} still serves {served.get('version')!r}; health {health!r}"
            except (httpx.HTTPError, ValueError) as exc:
                detail = f"API not answering: {exc!r}"
            if time.monotonic() - started >= timeout_s:
                return Verification(False, time.monotonic() - started, detail)
            time.sleep(interval_s)
