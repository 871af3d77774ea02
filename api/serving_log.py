"""What one recommendation response publishes: a serving-log record and its impressions.

The request path only captures a :class:`ServedResponse` (plain values, cheap to pickle);
turning it into Kafka records — one :class:`~monitoring.contract.ServingLogRecord` on
``serving_log_topic`` and one ``impression`` :class:`~feature_repo.events.ClickstreamEvent`
per item on the clickstream topic — happens off the event loop, in the outbox's sender
(thread or process), where its cost does not delay responses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pydantic_core

from feature_repo.events import ClickstreamEvent
from monitoring.contract import ServingLogRecord
from ranking.features import FEATURE_NAMES


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class ServedResponse:
    request_id: str
    ts: datetime
    user_id: str
    arm: str
    model_version: str
    cold_start: bool
    fallback: str | None
    item_ids: list[str]
    scores: list[float]
    #: the served items' ranker inputs: float32 rows (one per item) × ``FEATURE_NAMES``
    #: columns, as bytes (NaN where missing); empty if unranked. Bytes because the
    #: request path pickles this for the publisher process: a 10 × 62 array pickles in
    #: ~40 µs, its bytes in ~1 µs, and a dict of lists is built for ~50 µs more
    feature_rows: bytes = b""
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def record_count(self) -> int:
        return 1 + len(self.item_ids)

    @property
    def features(self) -> dict[str, list[float]]:
        """Per ranker feature, the served items' values (empty if unranked)."""
        if not self.feature_rows:
            return {}
        rows = np.frombuffer(self.feature_rows, np.float32).reshape(len(self.item_ids), -1)
        return dict(zip(FEATURE_NAMES, rows.T.tolist(), strict=True))

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # the fields as one tuple: pickles in a third of the dataclass default's time
        return ServedResponse, (self.request_id, self.ts, self.user_id, self.arm,
                                self.model_version, self.cold_start, self.fallback,
                                self.item_ids, self.scores, self.feature_rows, self.context)


def serving_log_json(record: ServingLogRecord) -> bytes:
    """The record as JSON, missing feature values (NaN) as ``NaN`` literals.

    ``ServingLogRecord.to_json_bytes`` writes NaN as ``null``, which its own parser then
    rejects (``list[float]``); ``NaN`` literals parse back (``from_json_bytes``) as NaN,
    which the drift statistics leave out, and keep every value aligned with ``item_ids``.
    Encoded by pydantic-core: the 620 feature values of a response took 0.64 ms through
    the standard library's ``json.dumps``, 0.11 ms here.
    """
    return pydantic_core.to_json(record.model_dump(), inf_nan_mode="constants")


def build_records(served: ServedResponse, serving_log_topic: str,
                  clickstream_topic: str) -> list[Record]:
    """The serving-log record first, then one impression per item (validated events)."""
    record = ServingLogRecord(
        request_id=served.request_id, ts=served.ts, user_id=served.user_id, arm=served.arm,
        model_version=served.model_version, cold_start=served.cold_start,
        fallback=served.fallback, item_ids=served.item_ids, scores=served.scores,
        features=served.features)
    records = [Record(serving_log_topic, served.request_id.encode(), serving_log_json(record))]
    key = served.user_id.encode()
    for position, item_id in enumerate(served.item_ids, 1):
        event = ClickstreamEvent(
            event_id=uuid.uuid4().hex, user_id=served.user_id, item_id=item_id,
            event_type="impression", ts=served.ts, request_id=served.request_id,
            model_version=served.model_version,
            context={**served.context, "arm": served.arm, "position": position})
        records.append(Record(clickstream_topic, key, event.to_json_bytes()))
    return records
