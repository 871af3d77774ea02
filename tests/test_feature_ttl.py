"""The API's reader of Feast's Redis layout leaves out a view's values once its TTL passed.

Rows are written the way the Flink job writes them (``stream_jobs.feast_layout``: the
hash fields of Feast's layout plus ``_ts:<view>``) into a redis-server of this test.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp

from api.features import FeastLayoutReader, view_ttls
from feature_repo.entities import ITEM_ID, USER_ID
from recsys.settings import Settings
from recsys.stack.process import free_port
from stream_jobs.feast_layout import feature_field, redis_key, timestamp_field

pytestmark = pytest.mark.integration

USER_REFS = ["user_activity_1h:clicks", "user_activity_7d:clicks"]
ITEM_REFS = ["item_activity_1h:views", "item_metadata:price"]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _put(client: redis.Redis, project: str, join_key: str, entity: str, view: str,
         feature: str, value: ValueProto, event_time_s: float) -> None:
    client.hset(redis_key(join_key, entity, project), mapping={
        feature_field(view, feature): value.SerializeToString(),
        timestamp_field(view): Timestamp(seconds=int(event_time_s)).SerializeToString()})


def test_views_past_their_ttl_read_as_missing(redis_url: str) -> None:
    settings = Settings(_env_file=None, redis_url=redis_url, feast_project="ttl_test")
    client, project, now = redis.Redis.from_url(redis_url), settings.feast_project, time.time()
    two_hours_ago = now - 7_200
    _put(client, project, USER_ID, "u1", "user_activity_1h", "clicks", ValueProto(int64_val=3),
         two_hours_ago)  # its hour is over
    _put(client, project, USER_ID, "u1", "user_activity_7d", "clicks", ValueProto(int64_val=9),
         two_hours_ago)  # still inside 7 days
    _put(client, project, ITEM_ID, "i1", "item_activity_1h", "views", ValueProto(int64_val=5),
         now - 60)
    _put(client, project, ITEM_ID, "i2", "item_activity_1h", "views", ValueProto(int64_val=7),
         two_hours_ago)
    for item in ("i1", "i2"):  # metadata never expires
        _put(client, project, ITEM_ID, item, "item_metadata", "price",
             ValueProto(double_val=12.5), now - 400 * 86_400)

    async def read(ttls: dict[str, float] | None) -> tuple:
        reader = FeastLayoutReader(settings, USER_REFS, ITEM_REFS, ttls=ttls)
        try:
            return await reader.read("u1", ["i1", "i2", "i-unknown"])
        finally:
            await reader.close()

    user, items = asyncio.run(read(None))  # the repository's TTLs
    assert user == (None, 9)
    assert items == [(5, 12.5), (None, 12.5), (None, None)]
    # without TTLs: the rows as stored (what Feast's own online read returns)
    user, items = asyncio.run(read({}))
    assert user == (3, 9)
    assert items == [(5, 12.5), (7, 12.5), (None, None)]


def test_the_repositorys_ttls_are_the_view_windows() -> None:
    ttls = view_ttls()
    assert ttls["user_activity_1h"] == 3_600 and ttls["item_activity_24h"] == 86_400
    assert ttls["user_activity_7d"] == 7 * 86_400
    assert "item_metadata" not in ttls and "user_profile" not in ttls  # never expire
