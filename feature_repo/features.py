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
from feast.types import Array, Float64, Int64, String

from feature_repo.entities import item, user
from feature_repo.specs import (
    ACTIVITY_VIEWS,
    COUNT_COLUMNS,
    EVENT_TIME,
    USER_RECENT_VIEW,
    ActivityView,
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

ranker_features = FeatureService(
    name="ranker_features",
    features=[*activity_views, user_recent],
    description="Online features the ranker reads for a user and each candidate item.",
)
