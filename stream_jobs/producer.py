"""Publish clickstream events to Kafka: only validated events can be sent."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from feature_repo.events import ClickstreamEvent, parse_event
from recsys.kafka_io import make_producer
from recsys.settings import Settings


class EventPublisher:
    """Keyed by user_id so one user's events stay ordered within a partition."""

    def __init__(self, settings: Settings, producer: KafkaProducer | None = None):
        self.topic = settings.clickstream_topic
        self._producer = producer or make_producer(settings)

    def publish(self, event: ClickstreamEvent | dict[str, Any],
                partition: int | None = None) -> FutureRecordMetadata:
        if not isinstance(event, ClickstreamEvent):
            event = parse_event(event)  # raises EventValidationError with every problem
        return self._producer.send(self.topic, key=event.user_id.encode(),
                                   value=event.to_json_bytes(), partition=partition)

    def partitions(self) -> set[int]:
        return self._producer.partitions_for(self.topic)

    def flush(self, timeout_s: float | None = 30) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        self._producer.close(timeout=10)

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        self.close()
