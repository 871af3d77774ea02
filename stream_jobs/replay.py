"""Replay a data set (MovieLens or synthetic) into the clickstream topic.

Event time is preserved (each event keeps its ``ts``); ``rate`` throttles to a
number of events per second, or None for as fast as the broker takes them.
The whole data set is validated first, so a bad set sends nothing.

Delivery is at least once: the producer keeps retrying a send for
``REPLAY_DELIVERY_TIMEOUT_MS`` (a broker restart in the middle of a replay loses
nothing), and an event still not acknowledged then is not silently dropped: the
replay fails with :class:`ReplayIncomplete`, naming how many and the first error.
Consumers de-duplicate on ``event_id``, so replaying again is safe.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path

import pyarrow.parquet as pq
from kafka.errors import KafkaError
from kafka.producer.future import RecordMetadata

from feature_repo.events import ClickstreamEvent
from recsys.datasets.layout import event_parts
from recsys.datasets.validation import ensure_valid
from recsys.kafka_io import make_producer
from recsys.settings import Settings
from stream_jobs.producer import EventPublisher

BATCH_ROWS = 50_000
PROGRESS_EVERY = 10_000
#: Heartbeat events carry this user and item id (features of it are meaningless).
HEARTBEAT_ID = "_heartbeat"
#: How long a send is retried (a broker restart, a leader election) before it fails.
REPLAY_DELIVERY_TIMEOUT_MS = 120_000


class ReplayIncomplete(KafkaError):
    """Some events were not acknowledged by the broker within the delivery timeout."""


@dataclass
class ReplayResult:
    sent: int = 0
    seconds: float = 0.0
    by_type: Counter = field(default_factory=Counter)
    #: partition -> (first, last) offset the broker acknowledged for this replay
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)
    last_ts: datetime | None = None
    failed: int = 0
    first_error: BaseException | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def acknowledged(self, metadata: RecordMetadata) -> None:
        """Producer callback (runs on the producer's I/O thread)."""
        first, last = self.offsets.get(metadata.partition, (metadata.offset, metadata.offset))
        self.offsets[metadata.partition] = (min(first, metadata.offset),
                                            max(last, metadata.offset))

    def not_acknowledged(self, error: BaseException) -> None:
        """Producer errback: the send failed after every retry."""
        self.failed += 1
        self.first_error = self.first_error or error


def _rows(path: Path) -> Iterator[dict]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        yield from batch.to_pylist()


def iter_events(dataset: Path, limit: int | None = None) -> Iterator[ClickstreamEvent]:
    """Events of a data set in event-time order.

    Each part is sorted; parts are consecutive time slices whose edges overlap a
    little (sessions run past a slice's end), so the parts are merged, not
    concatenated: otherwise a stream job would see those edge events as late.
    """
    rows = heapq.merge(*(_rows(p) for p in event_parts(dataset)), key=itemgetter("ts"))
    for produced, row in enumerate(rows):
        if limit is not None and produced >= limit:
            return
        rating = row.pop("rating", None)
        if rating is not None:
            row["context"] = {"rating": rating}
        yield ClickstreamEvent.model_validate({k: v for k, v in row.items() if v is not None})


def send_heartbeats(settings: Settings, after: datetime,
                    publisher: EventPublisher | None = None) -> int:
    """One event per partition, later than every window, so the watermark passes
    everything replayed before it and windowed features are emitted. Live traffic
    does this by itself; a finished replay needs it. Returns the events sent."""
    own = publisher is None
    publisher = publisher or EventPublisher(settings)
    ts = min(after + timedelta(days=8), datetime.now(UTC))
    try:
        partitions = sorted(publisher.partitions())
        for partition in partitions:
            event = ClickstreamEvent(event_id=f"{HEARTBEAT_ID}-{partition}-{ts.timestamp():.0f}",
                                     user_id=HEARTBEAT_ID, item_id=HEARTBEAT_ID,
                                     event_type="view", ts=ts)
            publisher.publish(event, partition=partition)
        publisher.flush()
    finally:
        if own:
            publisher.close()
    return len(partitions)


def replay(
    settings: Settings,
    dataset: Path,
    rate: float | None = None,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    publisher: EventPublisher | None = None,
) -> ReplayResult:
    ensure_valid(dataset)
    result = ReplayResult()
    start = time.perf_counter()
    own = publisher is None
    publisher = publisher or EventPublisher(settings, make_producer(
        settings, retries=2**31 - 1, delivery_timeout_ms=REPLAY_DELIVERY_TIMEOUT_MS))
    try:
        for event in iter_events(dataset, limit):
            sent = publisher.publish(event)
            sent.add_callback(result.acknowledged)
            sent.add_errback(result.not_acknowledged)
            result.last_ts = max(result.last_ts or event.ts, event.ts)
            result.sent += 1
            result.by_type[event.event_type] += 1
            if rate and (ahead := result.sent / rate - (time.perf_counter() - start)) > 0.001:
                time.sleep(ahead)
            if progress and result.sent % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
        publisher.flush(timeout_s=REPLAY_DELIVERY_TIMEOUT_MS / 1000 + 30)
    finally:
        if own:
            publisher.close()
    if progress:
        progress(result.sent % PROGRESS_EVERY)
    result.seconds = time.perf_counter() - start
    if result.failed:
        raise ReplayIncomplete(f"{result.failed:,} of {result.sent:,} events were not "
                               f"acknowledged by the broker (first error: "
                               f"{result.first_error!r}); the others are on the topic, and "
                               "replaying again is safe (consumers de-duplicate on event_id)")
    return result
