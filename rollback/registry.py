"""The MLflow model registry as the rollback service sees it: aliases and version tags.

Tags this module reads and writes (documented in docs/monitoring.md):

* version tag ``champion_since`` (ISO 8601): when the version last became champion;
  the ranking module sets it on promotion, a rollback sets it on the restored version;
* version tags ``rolled_back`` = ``"true"``, ``rolled_back_at``, ``rolled_back_reason``,
  ``rollback_run_id``: the version was rolled back as bad and is never picked again
  as "last stable" (delete ``rolled_back`` to rehabilitate it);
* version tag ``restored_at``: when a rollback made the version champion again;
* registered-model tag ``challenger_share`` (a float in [0, 1]): the share of users the
  API sends to the challenger arm, overriding ``RECSYS_API_CHALLENGER_SHARE``; absent
  means the API's own setting. The gradual traffic shift moves it step by step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.exceptions import MlflowException

from ranking.registry import get_aliases

CHAMPION = "champion"
CHALLENGER = "challenger"
CHAMPION_SINCE_TAG = "champion_since"
ROLLED_BACK_TAG = "rolled_back"
ROLLED_BACK_AT_TAG = "rolled_back_at"
ROLLED_BACK_REASON_TAG = "rolled_back_reason"
ROLLBACK_RUN_TAG = "rollback_run_id"
RESTORED_AT_TAG = "restored_at"
CHALLENGER_SHARE_TAG = "challenger_share"
READY = "READY"


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class VersionInfo:
    version: str
    status: str
    champion_since: datetime | None
    rolled_back: bool
    restored_at: datetime | None

    @property
    def was_champion(self) -> bool:
        return self.champion_since is not None


class Registry:
    """Aliases and tags of one registered model."""

    def __init__(self, client, model_name: str):
        self.client = client
        self.name = model_name

    def aliases(self) -> dict[str, str]:
        """Every alias and its version ({} when the model is not registered)."""
        return get_aliases(self.client, self.name)

    def alias(self, alias: str) -> str | None:
        return self.aliases().get(alias)

    def version(self, version: str) -> VersionInfo:
        return _info(self.client.get_model_version(self.name, str(version)))

    def versions(self) -> list[VersionInfo]:
        found = self.client.search_model_versions(f"name='{self.name}'")
        return sorted((_info(mv) for mv in found), key=lambda v: int(v.version))

    def last_stable(self, exclude: set[str]) -> str | None:
        """The version, outside ``exclude``, that was champion most recently and was not
        rolled back as bad (ties: the newer version)."""
        candidates = [v for v in self.versions()
                      if v.version not in exclude and v.was_champion and not v.rolled_back
                      and v.status == READY]
        if not candidates:
            return None
        best = max(candidates, key=lambda v: (v.champion_since, int(v.version)))
        return best.version

    def set_champion(self, version: str, when: datetime) -> None:
        self.client.set_registered_model_alias(self.name, CHAMPION, str(version))
        self.client.set_model_version_tag(self.name, str(version), CHAMPION_SINCE_TAG, iso(when))
        self.client.set_model_version_tag(self.name, str(version), RESTORED_AT_TAG, iso(when))

    def mark_rolled_back(self, version: str, reason: str, run_id: str, when: datetime) -> None:
        for key, value in ((ROLLED_BACK_TAG, "true"), (ROLLED_BACK_AT_TAG, iso(when)),
                           (ROLLED_BACK_REASON_TAG, reason[:4000]), (ROLLBACK_RUN_TAG, run_id)):
            self.client.set_model_version_tag(self.name, str(version), key, value)

    def set_challenger(self, version: str | None) -> None:
        if version is None:
            with contextlib.suppress(MlflowException):
                self.client.delete_registered_model_alias(self.name, CHALLENGER)
        else:
            self.client.set_registered_model_alias(self.name, CHALLENGER, str(version))

    def challenger_share(self) -> float | None:
        raw = (self.client.get_registered_model(self.name).tags or {}).get(CHALLENGER_SHARE_TAG)
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None

    def set_challenger_share(self, share: float | None) -> None:
        if share is None:
            with contextlib.suppress(MlflowException):
                self.client.delete_registered_model_tag(self.name, CHALLENGER_SHARE_TAG)
        else:
            if not 0 <= share <= 1:
                raise ValueError(f"challenger_share must be in [0, 1], got {share}")
            self.client.set_registered_model_tag(self.name, CHALLENGER_SHARE_TAG, f"{share:g}")


def _info(mv) -> VersionInfo:
    tags = mv.tags or {}
    return VersionInfo(
        version=str(mv.version),
        status=str(mv.status or READY),
        champion_since=parse_time(tags.get(CHAMPION_SINCE_TAG)),
        rolled_back=tags.get(ROLLED_BACK_TAG, "").lower() == "true",
        restored_at=parse_time(tags.get(RESTORED_AT_TAG)),
    )
