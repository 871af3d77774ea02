"""Names and shapes of the streaming features, free of any Feast import.

Both sides of the stream read this module: the Feast definitions in
``feature_repo/features.py`` (platform environment) and the Flink job's parameters in
``stream_jobs/job_spec.py`` (PyFlink environment, where Feast cannot be
installed). One definition, so the job can never write a column the feature
view does not declare.

The job writes four streams of rows (``STREAMS``): per user, per item, per item
within its category, per item pair. Each emits one row per changed entity and
emit interval; a row carries every view of its stream (``StreamView.stream``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from feature_repo.events import EventType

#: Sliding windows of the activity features: name suffix -> length (ascending).
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
#: When a row was produced (the job's emit time; a backfill: its event time). Feast breaks
#: ties between rows of one entity with equal ``event_time`` by it (a sliding window's
#: counts change again when events leave it, so one event time has several rows): the
#: newest row wins, in point-in-time joins and materialization alike.
CREATED = "created"
#: Unit of ``event_time`` in every offline Parquet part (pandas' own). Feast's file offline
#: store (dask) cannot sort a view's folder whose parts disagree on it: the stream writer's
#: parts and the backfills of one view must both use this.
OFFLINE_TIME_UNIT = "ns"
RECENT_ITEMS = 10
#: Categories kept per user in the affinity features (the rest add to the total only).
AFFINITY_TOP = 5
#: Pair kind -> the event type whose events pair up (a user's events of that type, close
#: in time: see Settings.stream_co_view_window_minutes and fbt_window_hours).
PAIR_KINDS: dict[str, str] = {"co_view": EventType.VIEW.value,
                              "co_purchase": EventType.PURCHASE.value}
#: Partners kept per item and pair kind (counted exactly up to PAIR_CAPACITY partners).
PAIR_TOP = 10
PAIR_CAPACITY = 200

FeatureType = Literal["int64", "float64", "string_list", "int64_list", "float64_list"]
Stream = Literal["user", "item", "item_category", "item_pairs"]


@dataclass(frozen=True)
class StreamView:
    """One Feast feature view written by the stream job."""

    name: str
    entity: str  # "user" or "item"
    stream: Stream  # the job's keyed aggregate that emits it
    fields: tuple[tuple[str, FeatureType], ...]
    ttl: timedelta
    description: str

    @property
    def key(self) -> str:
        return f"{self.entity}_id"

    def column(self, field: str) -> str:
        """The field's column in the stream row (views of one stream share a row)."""
        return f"{self.name}__{field}"


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

    def stream_view(self) -> StreamView:
        fields = tuple((c, "int64") for c in COUNT_COLUMNS)
        fields += tuple((r, "float64") for r in self.ratios)
        return StreamView(self.name, self.entity, self.entity, fields, self.length,
                          f"{self.entity} event counts over the last {self.window} "
                          "(event time, up to the entity's newest event).")


ACTIVITY_VIEWS: tuple[ActivityView, ...] = tuple(
    ActivityView(entity, window) for entity in ("user", "item") for window in WINDOWS
)

#: The user's most recent items and when the user was last active.
USER_RECENT_VIEW = "user_recent"
USER_RECENT_FEATURES = ("last_items", "last_event_ms")
USER_AFFINITY_VIEW = "user_category_affinity"
ITEM_POPULARITY_VIEW = "item_popularity"
ITEM_CATEGORY_VIEW = "item_category_popularity"
ITEM_PAIRS_VIEW = "item_pairs"
LONGEST = max(WINDOWS.values())
MONTH = timedelta(days=30)

STREAM_VIEWS: tuple[StreamView, ...] = (
    *(v.stream_view() for v in ACTIVITY_VIEWS if v.entity == "user"),
    StreamView(USER_RECENT_VIEW, "user", "user",
               (("last_items", "string_list"), ("last_event_ms", "int64")), MONTH,
               "The user's most recent items (newest last) and last event time."),
    StreamView(USER_AFFINITY_VIEW, "user", "user",
               (("top_categories", "string_list"), ("category_shares", "float64_list")),
               LONGEST,
               f"The user's top {AFFINITY_TOP} categories over the last 7d and each one's share "
               "of the user's weighted events (event weights as retrieval's). Affinity to a "
               "candidate's category: its share, 0 when absent."),
    *(v.stream_view() for v in ACTIVITY_VIEWS if v.entity == "item"),
    StreamView(ITEM_POPULARITY_VIEW, "item", "item",
               (("popularity", "float64"), ("last_event_ms", "int64")), MONTH,
               "Recency-weighted popularity: event weights halved every popularity half-life, "
               "as of last_event_ms (multiply by 0.5 ** ((now - last_event_ms) / half-life) "
               "for its value now)."),
    StreamView(ITEM_CATEGORY_VIEW, "item", "item_category",
               (("category_share", "float64"),), MONTH,
               "The item's share of its category's recency-weighted popularity, at the item's "
               "newest event (both decayed to that time)."),
    StreamView(ITEM_PAIRS_VIEW, "item", "item_pairs",
               tuple((f"{kind}_{part}", "string_list" if part == "items" else "int64_list")
                     for kind in PAIR_KINDS for part in ("items", "counts")),
               MONTH,
               f"Top {PAIR_TOP} items paired with this one (co-view: same user's views within "
               "the co-view window; co-purchase: purchases within the FBT window), with counts."),
)

ALL_STREAM_VIEWS: tuple[str, ...] = tuple(v.name for v in STREAM_VIEWS)
STREAMS: tuple[Stream, ...] = ("user", "item", "item_category", "item_pairs")
#: Columns every stream row starts with (the writer's bookkeeping, not features).
ROW_META = ("stream", "entity_id", "event_time_ms", "produced_ms", "n_events")


def views_of(stream: Stream) -> tuple[StreamView, ...]:
    return tuple(v for v in STREAM_VIEWS if v.stream == stream)


def stream_columns(stream: Stream) -> tuple[tuple[str, FeatureType], ...]:
    """The feature columns of a stream row, after ``ROW_META``, in order."""
    return tuple((view.column(name), kind) for view in views_of(stream)
                 for name, kind in view.fields)


# --- batch views from a data set's tables (ranking) -------------------------------
#: Item metadata (items.parquet), stamped with the launch time; materialized into Redis.
ITEM_METADATA_VIEW = "item_metadata"
ITEM_METADATA_FEATURES = ("category", "brand", "price", "launch_ms", "in_stock")
#: User profile (users.parquet), stamped with the sign-up time; materialized into Redis.
USER_PROFILE_VIEW = "user_profile"
USER_PROFILE_FEATURES = ("age", "gender", "segment", "occupation", "signup_ms")
BATCH_VIEWS: tuple[str, ...] = (ITEM_METADATA_VIEW, USER_PROFILE_VIEW)
