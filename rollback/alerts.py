"""Alertmanager's webhook payload (version 4), as far as the rollback service reads it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str = "firing"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None  # Alertmanager's field names
    fingerprint: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


class AlertmanagerWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: str = "4"
    status: str = "firing"
    receiver: str = ""
    groupKey: str = ""
    alerts: list[Alert] = Field(min_length=1)


class ManualRollback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=2000, description="Why, for the record.")
    who: str | None = Field(None, max_length=200, description="Defaults to the token's subject.")
    to_version: str | None = Field(None, pattern=r"^[0-9]{1,9}$",
                                   description="Default: the last stable version.")
    gradual: bool = Field(False, description="Shift traffic step by step via the challenger.")
