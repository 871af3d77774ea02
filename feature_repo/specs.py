"""Names and shapes of the streaming features, free of any Feast import.

Both sides of the stream read this module: the Feast definitions in
``feature_repo/features.py`` (platform environment) and the Flink SQL in
``stream_jobs/feature_sql.py`` (PyFlink environment, where Feast cannot be
installed). One definition, so the job can never write a column the feature
view does not declare.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from feature_repo.events import EventType

#: Sliding windows of the activity features: name suffix -> length.
WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}

#: Count columns, one per event type (plural names; `views` is quoted in SQL).
COUNT_COLUMNS: dict[str, str] = {
    "impressions": EventType.IMPRESSION.value,
    "views": EventType.VIEW.value,
    "clicks": EventType.CLICK.value,
    "carts": EventType.ADD_TO_CART.value,
    "purchases": EventType.PURCHASE.value,
}

EVENT_TIME = "event_time"
RECENT_ITEMS = 10


@dataclass(frozen=True)
class ActivityView:
    """Counts per event type over one sliding window, keyed by one entity."""

    entity: str  # "user" or "item"
    window: str  # a key of WINDOWS

    @property
    def name(self) -> str:
        return f"{self.entity}_activity_{self.window}"

    @property
    def key(self) -> str:
        return f"{self.entity}_id"

    @property
    def ratios(self) -> tuple[str, ...]:
        return ("ctr", "conversion_rate") if self.entity == "item" else ("ctr",)

    @property
    def length(self) -> timedelta:
        return WINDOWS[self.window]


ACTIVITY_VIEWS: tuple[ActivityView, ...] = tuple(
    ActivityView(entity, window) for entity in ("user", "item") for window in WINDOWS
)

#: The user's most recent items and when the user was last active.
USER_RECENT_VIEW = "user_recent"
USER_RECENT_FEATURES = ("last_items", "last_event_ms")

ALL_STREAM_VIEWS: tuple[str, ...] = (*(v.name for v in ACTIVITY_VIEWS), USER_RECENT_VIEW)
