"""Kafka clients configured once for every producer and consumer in the platform.

The same clients talk to the embedded tansu broker, to Azure Event Hubs' Kafka
endpoint or to any Kafka. Consumer groups need a short rebalance timeout to
join promptly on tansu (see ../shared/DESIGN.md), so the group settings live
here rather than at each call site.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

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


def make_producer(settings: Settings, **overrides: object) -> KafkaProducer:
    """An idempotent-ish, batching producer: acks=all, retries, keyed by the caller."""
    config: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": CLIENT_ID,
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
