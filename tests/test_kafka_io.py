"""The platform's Kafka client configuration, without a broker (see test_stack_integration
for the same clients against tansu)."""

from __future__ import annotations

import random

from kafka.partitioner import DefaultPartitioner

from recsys.kafka_io import KeyHashPartitioner


class Cluster:
    """The two ClusterMetadata calls a partitioner makes."""

    def __init__(self, partitions: dict[str, set[int]]) -> None:
        self.partitions = partitions

    def topics(self) -> set[str]:
        return set(self.partitions)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions.get(topic)

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions.get(topic, set())


def test_key_hash_partitioner_picks_what_kafka_pythons_default_picks() -> None:
    rng = random.Random(7)
    keys = [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))) for _ in range(300)]
    cluster = Cluster({"t1": {0}, "t4": {0, 1, 2, 3}, "t7": set(range(7)),
                       "gaps": {0, 2, 5}})
    mine, default = KeyHashPartitioner(max_keys=50), DefaultPartitioner()
    for topic in cluster.partitions:
        for key in keys + keys[:20]:  # the repeats come from the memo (cleared past 50)
            assert (mine.partition(topic, None, key, None, b"v", cluster)
                    == default.partition(topic, None, key, None, b"v", cluster))
    assert len(mine._hashes) <= 50


def test_key_hash_partitioner_spreads_unkeyed_records_and_refuses_unknown_topics() -> None:
    cluster = Cluster({"t4": {0, 1, 2, 3}})
    partitioner = KeyHashPartitioner()
    seen = {partitioner.partition("t4", None, None, None, b"v", cluster) for _ in range(200)}
    assert seen == {0, 1, 2, 3}
    for key in (None, b"k"):
        try:
            partitioner.partition("nope", None, key, None, b"v", cluster)
        except ValueError as exc:
            assert "nope" in str(exc)
        else:
            raise AssertionError("an unknown topic must be refused")
