"""The embedded stack, really running: tansu broker, redis-server, MLflow, Feast registry."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
import redis
from kafka import TopicPartition

from feature_repo.events import ClickstreamEvent, EventValidationError
from recsys.demo import read_back
from recsys.kafka_io import ensure_topics, list_topics, make_consumer, make_producer
from recsys.settings import Settings
from recsys.stack import Stack
from stream_jobs.producer import EventPublisher
from stream_jobs.replay import replay

pytestmark = pytest.mark.integration


def test_stack_reports_every_service_healthy(stack_settings: Settings) -> None:
    states = {s.name: s.state for s in Stack(stack_settings).status()}
    assert states == {"broker": "running", "redis": "running", "mlflow": "running",
                      "java": "ok"}
    topics = list_topics(stack_settings)
    assert {stack_settings.clickstream_topic, stack_settings.dead_letter_topic} <= set(topics)


def test_a_second_up_reuses_the_running_services(stack_settings: Settings) -> None:
    statuses = Stack(stack_settings).up(with_feast=False)
    assert {s.name: s.state for s in statuses if s.name != "java"} == {
        "broker": "running", "redis": "running", "mlflow": "running"}


def _produce(settings: Settings, topic: str, n: int) -> None:
    producer = make_producer(settings)
    for i in range(n):
        producer.send(topic, key=b"k%d" % (i % 3), value=b"%d" % i)
    producer.flush()
    producer.close()


def _take(consumer, n: int, timeout_s: float = 30.0) -> list[int]:
    got: list[int] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500, max_records=n - len(got)).values():
            got.extend(int(r.value) for r in records)
    return got


def test_consumer_group_resumes_from_committed_offsets(stack_settings: Settings) -> None:
    topic = f"resume-{uuid.uuid4().hex[:8]}"
    ensure_topics(stack_settings, [topic])
    _produce(stack_settings, topic, 100)
    group = f"g-{uuid.uuid4().hex[:8]}"

    first = make_consumer(stack_settings, topic, group_id=group)
    part_one = _take(first, 40)
    first.commit()
    first.close()
    assert len(part_one) == 40

    second = make_consumer(stack_settings, topic, group_id=group)
    part_two = _take(second, 60)
    extra = _take(second, 1, timeout_s=2)
    second.close()
    assert extra == []
    assert sorted(part_one + part_two) == list(range(100))


def test_keyed_records_land_where_the_java_clients_hash_puts_them(stack_settings: Settings
                                                                  ) -> None:
    from kafka.partitioner.default import murmur2

    topic = f"keyed-{uuid.uuid4().hex[:8]}"
    ensure_topics(stack_settings, [topic])
    _produce(stack_settings, topic, 30)  # keys k0, k1, k2 in turn
    consumer = make_consumer(stack_settings, group_id=None)
    parts = sorted(consumer.partitions_for_topic(topic))
    consumer.assign([TopicPartition(topic, p) for p in parts])
    where: dict[bytes, set[int]] = {}
    seen, deadline = 0, time.monotonic() + 30
    while seen < 30 and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            seen += len(records)
            for r in records:
                where.setdefault(r.key, set()).add(tp.partition)
    consumer.close()
    assert seen == 30
    assert where == {k: {parts[(murmur2(k) & 0x7FFFFFFF) % len(parts)]}
                     for k in (b"k0", b"k1", b"k2")}


def test_publisher_refuses_invalid_events(stack_settings: Settings) -> None:
    with EventPublisher(stack_settings) as publisher, pytest.raises(EventValidationError) as info:
        publisher.publish({"event_id": "e", "user_id": "u", "item_id": "i",
                           "event_type": "teleport", "ts": "2026-01-01T00:00:00Z"})
    assert [p.field for p in info.value.problems] == ["event_type"]


def test_replay_preserves_every_event_and_its_time(stack_settings: Settings,
                                                   small_dataset: Path) -> None:
    import pyarrow.parquet as pq

    result = replay(stack_settings, small_dataset, limit=1_500)
    assert result.sent == 1_500
    assert sum(last - first + 1 for first, last in result.offsets.values()) == 1_500
    back = read_back(stack_settings, result.offsets, timeout_s=30)
    assert back.received == 1_500 and not back.invalid
    assert back.by_type == result.by_type

    first_part = small_dataset / "events" / "part-00000.parquet"
    first = pq.read_table(first_part).slice(0, 1).to_pylist()[0]
    consumer = make_consumer(stack_settings)
    consumer.assign([TopicPartition(stack_settings.clickstream_topic, p) for p in result.offsets])
    for partition, (start, _) in result.offsets.items():
        consumer.seek(TopicPartition(stack_settings.clickstream_topic, partition), start)
    seen = {}
    deadline = time.monotonic() + 20
    while first["event_id"] not in seen and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                event = ClickstreamEvent.model_validate_json(r.value)
                seen[event.event_id] = event
                assert r.key == event.user_id.encode()  # keyed by user
    consumer.close()
    assert seen[first["event_id"]].ts == first["ts"]  # event time, not send time


def test_replay_is_throttled_to_the_requested_rate(stack_settings: Settings,
                                                   small_dataset: Path) -> None:
    result = replay(stack_settings, small_dataset, rate=1_000, limit=500)
    assert result.seconds >= 0.45
    assert result.rate <= 1_150


def test_replay_of_an_invalid_data_set_sends_nothing(stack_settings: Settings,
                                                     small_dataset: Path, tmp_path: Path) -> None:
    import shutil

    from recsys.datasets.validation import DatasetValidationError

    bad = tmp_path / "bad"
    shutil.copytree(small_dataset, bad)
    (bad / "users.parquet").unlink()
    settings = stack_settings.model_copy(update={"clickstream_topic": f"t-{uuid.uuid4().hex[:8]}"})
    ensure_topics(settings, [settings.clickstream_topic])
    with pytest.raises(DatasetValidationError, match=r"users\.parquet"):
        replay(settings, bad)
    consumer = make_consumer(settings, settings.clickstream_topic, consumer_timeout_ms=3_000)
    assert list(consumer) == []
    consumer.close()


def test_redis_started_by_the_stack_answers(stack_settings: Settings) -> None:
    client = redis.Redis.from_url(stack_settings.redis_url)
    client.set("recsys:test", "ok")
    assert client.get("recsys:test") == b"ok"
    assert client.info("server")["tcp_port"] == stack_settings.redis_port
    client.close()


def test_mlflow_register_alias_and_load_by_alias(stack_settings: Settings) -> None:
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    class Scale(mlflow.pyfunc.PythonModel):
        def __init__(self, factor: float):
            self.factor = factor

        def predict(self, context, model_input, params=None):
            return model_input["x"] * self.factor

    mlflow.set_tracking_uri(stack_settings.mlflow_tracking_uri)
    name = f"test-model-{uuid.uuid4().hex[:6]}"
    client = MlflowClient()
    versions = []
    for factor in (2.0, 3.0):
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="model", python_model=Scale(factor),
                                           registered_model_name=name, pip_requirements=[])
            versions.append(info.registered_model_version)
    assert [str(v) for v in versions] == ["1", "2"]
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert champion.predict(frame).tolist() == [2.0, 4.0]
    assert mlflow.pyfunc.load_model(f"models:/{name}@challenger").predict(frame).tolist() == [
        3.0, 6.0]
    # moving the alias is what a rollback does
    client.set_registered_model_alias(name, "champion", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "2"


def _descendant_commands(pid: int) -> list[str]:
    """Command lines of ``pid``'s descendants (those that exit meanwhile are skipped)."""
    commands, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            kids = [int(c) for task in Path(f"/proc/{parent}/task").iterdir()
                    for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            try:
                commands.append(Path(f"/proc/{kid}/cmdline").read_bytes().replace(
                    b"\0", b" ").decode())
            except OSError:
                continue
            todo.append(kid)
    return commands


def test_mlflow_server_runs_without_the_job_runner(stack_settings: Settings) -> None:
    """The stack starts MLflow without its GenAI job runner (eight idle huey processes)."""
    from recsys.stack.services import mlflow_process

    pid = mlflow_process(stack_settings).pid()
    assert pid is not None
    commands = _descendant_commands(pid)
    assert any("uvicorn" in c for c in commands), commands  # the server itself is found
    assert not [c for c in commands if "huey" in c or "_job_runner" in c]


def test_feast_registry_holds_the_entities(stack_settings: Settings) -> None:
    from feature_repo.store import get_feature_store

    store = get_feature_store(stack_settings)
    entities = {e.name: e.join_key for e in store.list_entities()}
    assert entities == {"user": "user_id", "item": "item_id"}


def test_a_storage_engine_the_broker_lacks_fails_fast_with_the_reason(tmp_path: Path) -> None:
    from recsys.stack import StartupError, free_port
    from recsys.stack.services import broker_process, start_broker

    settings = Settings(_env_file=None, state_dir=tmp_path, broker_port=free_port(),
                        broker_storage_url="postgres://postgres@127.0.0.1:5432/none",
                        startup_timeout_s=20)
    started = time.monotonic()
    with pytest.raises(StartupError, match=r"not compiled into .*RECSYS_BROKER_BIN"):
        start_broker(settings)
    assert time.monotonic() - started < 15
    assert broker_process(settings).pid() is None


def _postgres_answers() -> bool:
    from recsys.stack.process import port_open

    return port_open("127.0.0.1", 5432)


@pytest.mark.skipif(not _postgres_answers() and not os.environ.get("CI"),
                    reason="no PostgreSQL on 127.0.0.1:5432 (CI starts one)")
def test_mlflow_and_feast_registry_on_postgresql(tmp_path: Path) -> None:
    import psycopg

    from feature_repo.store import get_feature_store
    from recsys.stack import free_port
    from recsys.stack.services import apply_feast_registry, mlflow_process, start_mlflow

    database = f"recsys_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres",
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    settings = Settings(_env_file=None, state_dir=tmp_path, mlflow_port=free_port(),
                        postgres_dsn=f"postgresql://postgres@127.0.0.1:5432/{database}")
    try:
        assert start_mlflow(settings).detail == "backend=postgresql"
        assert apply_feast_registry(settings).detail == "registry=sql"
        assert {e.name for e in get_feature_store(settings).list_entities()} == {"user", "item"}
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}") as conn:
            tables = {row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"registered_models", "model_versions", "entities"} <= tables
    finally:
        mlflow_process(settings).stop()
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres",
                             autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def test_the_publisher_process_delivers_every_record_of_a_burst(stack_settings: Settings
                                                               ) -> None:
    """A burst queues faster than the child reads, so it goes in batched writes: every
    serving log and impression still arrives, once, and the counts add up."""
    from datetime import UTC, datetime

    from api.metrics import ApiMetrics
    from api.publisher import ProcessOutbox
    from api.serving_log import ServedResponse
    from monitoring.contract import ServingLogRecord

    tag = uuid.uuid4().hex[:8]
    settings = stack_settings.model_copy(update={
        "serving_log_topic": f"log-{tag}", "clickstream_topic": f"click-{tag}"})
    metrics = ApiMetrics()
    outbox = ProcessOutbox(settings, metrics)
    outbox.start()
    try:
        wait_until = time.monotonic() + 60
        while not outbox.connected and time.monotonic() < wait_until:
            time.sleep(0.1)
        pipe, writes = outbox._to_child, []
        real_send = pipe.send_bytes
        pipe.send_bytes = lambda payload: (writes.append(len(payload)), real_send(payload))
        ids = [f"r{k:03d}" for k in range(300)]
        for request_id in ids:
            assert outbox.offer_served(ServedResponse(
                request_id, datetime.now(UTC), "u1", "champion", "1", False, None,
                ["a", "b"], [0.5, 0.25]))
        deadline = time.monotonic() + 60
        while len(outbox) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(outbox) == 0
        assert len(writes) < 300  # batched
    finally:
        assert outbox.stop(drain_s=5) == 0
    assert metrics.registry.get_sample_value(
        "recsys_events_total", {"outcome": "published"}) == 900
    consumer = make_consumer(settings, settings.serving_log_topic, settings.clickstream_topic,
                             group_id=None)
    logs, impressions = [], 0
    deadline = time.monotonic() + 30
    while (len(logs) < 300 or impressions < 600) and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            if tp.topic == settings.serving_log_topic:
                logs.extend(ServingLogRecord.from_json_bytes(r.value).request_id
                            for r in records)
            else:
                impressions += len(records)
    consumer.close()
    assert sorted(logs) == ids and impressions == 600


def test_the_librdkafka_producer_delivers_keyed_records_where_kafka_python_does(
        stack_settings: Settings) -> None:
    """The API's producer (librdkafka) against tansu: every record acknowledged through
    the future interface the outbox uses, each key on the partition the Java client's
    murmur2 (and kafka-python) picks, whether the callback is added before or after the
    broker answers."""
    from kafka.partitioner.default import murmur2

    from recsys.kafka_io import LibrdkafkaProducer

    topic = f"rdk-{uuid.uuid4().hex[:8]}"
    ensure_topics(stack_settings, [topic])
    producer = LibrdkafkaProducer(stack_settings, **{"linger.ms": 5})
    acked: list[object] = []
    failed: list[BaseException] = []
    keys = [f"user-{k % 7}".encode() for k in range(60)]
    try:
        early = [producer.send(topic, key=key, value=b"%d" % k) for k, key in enumerate(keys)]
        for delivery in early[:30]:
            delivery.add_callback(acked.append)
            delivery.add_errback(failed.append)
        assert producer.flush(10) == 0
        for delivery in early[30:]:  # resolved already: called at once
            delivery.add_callback(acked.append)
            delivery.add_errback(failed.append)
    finally:
        producer.close(timeout=5)
    assert len(acked) == 60 and not failed
    consumer = make_consumer(stack_settings, group_id=None)
    parts = sorted(consumer.partitions_for_topic(topic))
    consumer.close()
    where = {(m.key(), m.partition()) for m in acked}  # type: ignore[attr-defined]
    assert where == {(k, parts[(murmur2(k) & 0x7FFFFFFF) % len(parts)]) for k in set(keys)}
    assert len(parts) > 1


def test_the_librdkafka_producer_refuses_what_it_cannot_deliver(stack_settings: Settings
                                                                ) -> None:
    """Too large: kafka-python's MessageSizeTooLargeError, at once. Still queued when
    closed: purged, and each errback told. No broker: KafkaConnectionError at start."""
    from kafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError

    from recsys.kafka_io import LibrdkafkaProducer
    from recsys.stack import free_port

    topic = f"rdk-{uuid.uuid4().hex[:8]}"
    ensure_topics(stack_settings, [topic])
    producer = LibrdkafkaProducer(stack_settings, **{"linger.ms": 60_000,
                                                     "message.max.bytes": 2_000})
    failed: list[BaseException] = []
    try:
        with pytest.raises(MessageSizeTooLargeError):
            producer.send(topic, key=b"k", value=b"x" * 5_000)
        waiting = [producer.send(topic, key=b"k", value=b"small") for _ in range(3)]
        for delivery in waiting:
            delivery.add_callback(lambda _: pytest.fail("delivered despite the close"))
            delivery.add_errback(failed.append)
    finally:
        producer.close(timeout=0)
    assert len(failed) == 3 and all(isinstance(e, KafkaError) for e in failed)
    away = stack_settings.model_copy(update={"broker_port": free_port()})
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError, match="no Kafka broker"):
        LibrdkafkaProducer(away, connect_timeout_s=1.0)
    assert time.monotonic() - started < 10
