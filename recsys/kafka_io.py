"""Kafka clients configured once for every producer and consumer in the platform.

The same clients talk to the embedded tansu broker, to Azure Event Hubs' Kafka
endpoint or to any Kafka. Consumer groups need a short rebalance timeout to
join promptly on tansu (see ../shared/DESIGN.md), so the group settings live
here rather than at each call site.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import errors as kafka_errors
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


class Delivery:
    """What :meth:`LibrdkafkaProducer.send` returns: kafka-python's future protocol
    (``add_callback(fn, *args)`` gets the record's metadata, ``add_errback(fn, *args)``
    its error), resolved by the producer's poll thread. Either call may come before or
    after the broker answers."""

    __slots__ = ("_callbacks", "_errbacks", "_lock", "_result")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._result: tuple[bool, Any] | None = None
        self._callbacks: list[tuple[Callable[..., None], tuple]] = []
        self._errbacks: list[tuple[Callable[..., None], tuple]] = []

    def add_callback(self, fn: Callable[..., None], *args: Any) -> None:
        self._add(True, fn, args)

    def add_errback(self, fn: Callable[..., None], *args: Any) -> None:
        self._add(False, fn, args)

    def _add(self, on_success: bool, fn: Callable[..., None], args: tuple) -> None:
        with self._lock:
            if self._result is None:
                (self._callbacks if on_success else self._errbacks).append((fn, args))
                return
            ok, value = self._result
        if ok == on_success:
            fn(*args, value)

    def resolve(self, ok: bool, value: Any) -> None:
        with self._lock:
            self._result = (ok, value)
            waiting = self._callbacks if ok else self._errbacks
            self._callbacks, self._errbacks = [], []
        for fn, args in waiting:
            fn(*args, value)


class LibrdkafkaProducer:
    """A producer on librdkafka (``confluent-kafka``) behind kafka-python's ``send`` /
    future interface, for the API's records: a response's eleven records, paced at 300
    responses/s, cost 0.40 ms of CPU here against 0.97 ms through kafka-python
    (``bench/bench_publisher.py``), which builds batches, checksums and
    partitions in Python (measured against tansu; ``bench/bench_api.py`` shows the
    publisher process's share). Everything else in the platform keeps kafka-python.

    Keys are partitioned by murmur2 like the Java client and kafka-python
    (``murmur2_random``). A record over the broker's size limit raises kafka-python's
    ``MessageSizeTooLargeError`` (at ``send`` or through the errback), so callers handle
    both clients alike. A poll thread serves the delivery reports; :meth:`close` fails
    what it cannot deliver in time through the errbacks.
    """

    def __init__(self, settings: Settings, connect_timeout_s: float = 3.0,
                 **overrides: object) -> None:
        from confluent_kafka import KafkaException, Producer

        self._kafka_exception = KafkaException
        config: dict[str, object] = {
            "bootstrap.servers": settings.bootstrap_servers,
            "client.id": CLIENT_ID,
            "acks": "all",
            "partitioner": "murmur2_random",
            "enable.idempotence": False,
            # librdkafka's own log lines (a broker away, say) through Python logging, not
            # straight to stderr
            "logger": logging.getLogger("recsys.kafka"),
            "log.connection.close": False,
            **settings.kafka_security,
        }
        config.update(overrides)
        self._producer = Producer(config)
        try:  # fail now, like kafka-python's constructor, when no broker answers
            self._producer.list_topics(timeout=connect_timeout_s)
        except KafkaException as exc:
            raise kafka_errors.KafkaConnectionError(
                f"no Kafka broker at {settings.bootstrap_servers}: {exc}") from None
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery",
                                        daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None
             ) -> Delivery:
        from confluent_kafka import KafkaError

        delivery = Delivery()

        def report(error: Any, message: Any) -> None:
            if error is None:
                delivery.resolve(True, message)
            elif error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                delivery.resolve(False, kafka_errors.MessageSizeTooLargeError(error.str()))
            else:
                delivery.resolve(False, kafka_errors.KafkaError(error.str()))

        try:
            self._producer.produce(topic, value, key, on_delivery=report)
        except self._kafka_exception as exc:
            error = exc.args[0]
            if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                raise kafka_errors.MessageSizeTooLargeError(error.str()) from None
            raise kafka_errors.KafkaError(error.str()) from None
        return delivery

    def flush(self, timeout: float | None = None) -> int:
        return self._producer.flush(-1 if timeout is None else timeout)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is pending for up to ``timeout`` s (None: until each record is
        acknowledged or has failed, ``message.timeout.ms`` at the most); what is left is
        purged and its errbacks told, then the poll thread stops."""
        self._producer.flush(-1 if timeout is None else timeout)
        self._producer.purge()
        self._producer.flush(0)  # serves the purged records' reports
        self._closed.set()
        if self._poller is not threading.current_thread():
            self._poller.join(timeout=1)


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
