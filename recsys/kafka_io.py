"""Kafka clients configured once for every producer and consumer in the platform.

The same clients talk to the embedded tansu broker, to Azure Event Hubs' Kafka
endpoint or to any Kafka. Consumer groups need a short rebalance timeout to
join promptly on tansu (see ../shared/DESIGN.md), so the group settings live
here rather than at each call site.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2

from recsys.settings import Settings

CLIENT_ID = "recsys"
GROUP_TIMEOUTS = {"max_poll_interval_ms": 10_000, "session_timeout_ms": 10_000}


def security_config(settings: Settings) -> dict[str, str]:
    """kafka-python's names for the broker security settings (empty for PLAINTEXT)."""
    names = {"security.protocol": "security_protocol", "sasl.mechanism": "sasl_mechanism",
             "sasl.username": "sasl_plain_username", "sasl.password": "sasl_plain_password"}
    return {names[key]: value for key, value in settings.kafka_security.items()}


def admin_client(settings: Settings, timeout_ms: int = 5_000) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{CLIENT_ID}-admin",
        request_timeout_ms=timeout_ms,
        **security_config(settings),
    )


def ensure_topics(settings: Settings, topics: Iterable[str] | None = None) -> list[str]:
    """Create the platform's topics if missing; returns those that were created."""
    wanted = list(topics or (settings.clickstream_topic, settings.dead_letter_topic,
                             settings.features_topic))
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            new = [NewTopic(t, num_partitions=settings.topic_partitions, replication_factor=1)
                   for t in missing]
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        return missing
    finally:
        admin.close()


def list_topics(settings: Settings) -> list[str]:
    admin = admin_client(settings)
    try:
        return sorted(admin.list_topics())
    finally:
        admin.close()


class KeyHashPartitioner(DefaultPartitioner):
    """kafka-python's default choice of partition (murmur2 of the key, as the Java client
    does), with each key's hash remembered.

    kafka-python computes murmur2 in pure Python on every record; the API's publisher
    sends ten impressions per response under one user key, and the hash was ~6 % of that
    process's CPU. Records without a key are spread as the default does.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._hashes: dict[bytes, int] = {}

    def partition(self, topic: str, key: object, serialized_key: bytes | None, value: object,
                  serialized_value: bytes | None, cluster: Any) -> int:
        if serialized_key is None:
            return super().partition(topic, key, serialized_key, value, serialized_value,
                                     cluster)
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        hashed = self._hashes.get(serialized_key)
        if hashed is None:
            if len(self._hashes) >= self.max_keys:
                self._hashes.clear()
            hashed = self._hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        ordered = sorted(partitions)
        return ordered[hashed % len(ordered)]


def make_producer(settings: Settings, **overrides: object) -> KafkaProducer:
    """An idempotent-ish, batching producer: acks=all, retries, keyed by the caller."""
    config: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": CLIENT_ID,
        "partitioner": KeyHashPartitioner(),
        "acks": "all",
        "retries": 5,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_in_flight_requests_per_connection": 1,
        **security_config(settings),
    }
    config.update(overrides)
    return KafkaProducer(**config)


def make_consumer(
    settings: Settings,
    *topics: str,
    group_id: str | None = None,
    **overrides: object,
) -> KafkaConsumer:
    """A consumer that commits offsets explicitly and joins groups quickly on tansu."""
    config: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": CLIENT_ID,
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        **GROUP_TIMEOUTS,
        **security_config(settings),
    }
    config.update(overrides)
    return KafkaConsumer(*topics, **config)
