"""Feast feature views, push sources and feature services of the stream features.

Each view has a push source (the feature writer pushes what the Flink job
computes) backed by a Parquet batch source under ``<data_dir>/offline/<view>``
(the writer appends the same rows there), so point-in-time joins for training
see exactly the values serving saw. A view's TTL is its window: an activity
row older than its window no longer describes the last window.
"""

from __future__ import annotations

from datetime import timedelta

from feast import FeatureService, FeatureView, Field, FileSource, PushSource
from feast.data_format import ParquetFormat
from feast.types import Array, Bool, Float64, Int64, String

from feature_repo.entities import item, user
from feature_repo.specs import (
    ACTIVITY_VIEWS,
    COUNT_COLUMNS,
    CREATED,
    EVENT_TIME,
    ITEM_CATEGORY_VIEW,
    ITEM_METADATA_VIEW,
    ITEM_PAIRS_VIEW,
    ITEM_POPULARITY_VIEW,
    STREAM_VIEWS,
    USER_AFFINITY_VIEW,
    USER_PROFILE_VIEW,
    USER_RECENT_VIEW,
    ActivityView,
    StreamView,
)
from recsys.settings import get_settings

OFFLINE_DIR = get_settings().offline_store_path
ENTITIES = {"user": user, "item": item}


def offline_source(view: str) -> FileSource:
    return FileSource(
        name=f"{view}_offline",
        path=str(OFFLINE_DIR / view),
        file_format=ParquetFormat(),
        timestamp_field=EVENT_TIME,
        created_timestamp_column=CREATED,
    )


def push_source(view: str) -> PushSource:
    return PushSource(name=f"{view}_push", batch_source=offline_source(view))


def activity_view(spec: ActivityView) -> FeatureView:
    schema = [Field(name=column, dtype=Int64) for column in COUNT_COLUMNS]
    schema += [Field(name=ratio, dtype=Float64) for ratio in spec.ratios]
    return FeatureView(
        name=spec.name,
        entities=[ENTITIES[spec.entity]],
        ttl=spec.length,
        schema=schema,
        source=push_source(spec.name),
        online=True,
        description=f"{spec.entity} event counts over the last {spec.window} (event time).",
        tags={"producer": "stream_jobs.features_job", "window": spec.window},
    )


activity_views = [activity_view(spec) for spec in ACTIVITY_VIEWS]
# `feast apply` discovers module-level objects only (not list members): bind each view.
globals().update({view.name: view for view in activity_views})

user_recent = FeatureView(
    name=USER_RECENT_VIEW,
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name="last_items", dtype=Array(String)),
        Field(name="last_event_ms", dtype=Int64),
    ],
    source=push_source(USER_RECENT_VIEW),
    online=True,
    description="The user's most recent items (newest last) and last event time.",
    tags={"producer": "stream_jobs.features_job"},
)

FEAST_TYPES = {"int64": Int64, "float64": Float64, "string_list": Array(String),
               "int64_list": Array(Int64), "float64_list": Array(Float64)}


def stream_view(spec: StreamView) -> FeatureView:
    """A view of the stream job's newer features, straight from its spec."""
    return FeatureView(
        name=spec.name,
        entities=[ENTITIES[spec.entity]],
        ttl=spec.ttl,
        schema=[Field(name=name, dtype=FEAST_TYPES[kind]) for name, kind in spec.fields],
        source=push_source(spec.name),
        online=True,
        description=spec.description,
        tags={"producer": "stream_jobs.features_job"},
    )


_SPECS = {spec.name: spec for spec in STREAM_VIEWS}
user_category_affinity = stream_view(_SPECS[USER_AFFINITY_VIEW])
item_popularity = stream_view(_SPECS[ITEM_POPULARITY_VIEW])
item_category_popularity = stream_view(_SPECS[ITEM_CATEGORY_VIEW])
item_pairs = stream_view(_SPECS[ITEM_PAIRS_VIEW])
newer_stream_views = [user_category_affinity, item_popularity, item_category_popularity,
                      item_pairs]

# Batch views from a data set's items/users tables (written by ranking.backfill, put
# online by `recsys feast materialize-incremental`). Metadata does not expire; the TTL
# is long rather than 0 because Feast's materialize-incremental looks back only one
# year for a view without TTL.
METADATA_TTL = timedelta(days=36_500)

item_metadata = FeatureView(
    name=ITEM_METADATA_VIEW,
    entities=[item],
    ttl=METADATA_TTL,
    schema=[
        Field(name="category", dtype=String),
        Field(name="brand", dtype=String),
        Field(name="price", dtype=Float64),
        Field(name="launch_ms", dtype=Int64),
        Field(name="in_stock", dtype=Bool),
    ],
    source=offline_source(ITEM_METADATA_VIEW),
    online=True,
    description="Catalogue metadata of an item, from the launch time on.",
    tags={"producer": "ranking.backfill"},
)

user_profile = FeatureView(
    name=USER_PROFILE_VIEW,
    entities=[user],
    ttl=METADATA_TTL,
    schema=[
        Field(name="age", dtype=Int64),
        Field(name="gender", dtype=String),
        Field(name="segment", dtype=String),
        Field(name="occupation", dtype=String),
        Field(name="signup_ms", dtype=Int64),
    ],
    source=offline_source(USER_PROFILE_VIEW),
    online=True,
    description="Profile of a user (demographics, segment), from the sign-up time on.",
    tags={"producer": "ranking.backfill"},
)

ranker_features = FeatureService(
    name="ranker_features",
    features=[*activity_views, user_recent, *newer_stream_views, item_metadata, user_profile],
    description="Online features the ranker reads for a user and each candidate item.",
)
