"""The feature writer and the Feast online layout the job encodes (no Flink here).

The job's Java encoder (RowEncoder.java) gets the name-derived parts of Feast's
Redis layout from ``stream_jobs.feast_layout``; these must equal what Feast's own
helpers compute. The writer is then fed records built the way the job builds them
(with Feast's protobufs here) and read back through ``get_online_features``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import mmh3
import pandas as pd
import pytest
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Int64List, StringList, Value
from google.protobuf.timestamp_pb2 import Timestamp

from feature_repo.specs import (
    ITEM_PAIRS_VIEW,
    ROW_META,
    STREAM_VIEWS,
    stream_columns,
    views_of,
)
from feature_repo.store import render_config
from recsys.settings import Settings
from stream_jobs.feast_layout import (
    feature_field,
    murmur3_32,
    redis_key,
    stream_spec,
    timestamp_field,
)
from stream_jobs.feature_writer import FeatureWriter

IDS = ["u1", "item-00042", "a.b:c@d_e-f", "ü-ñ", "x" * 64]


@pytest.mark.parametrize("text", ["", "a", "ab", "abc", "abcd", "user_activity_1h:clicks",
                                  "ü-ñ", "x" * 97])
def test_murmur3_matches_mmh3(text: str) -> None:
    assert murmur3_32(text.encode()) == mmh3.hash(text, signed=False)


def test_fields_and_keys_match_feasts_own_helpers() -> None:
    for view in STREAM_VIEWS:
        for name, _ in view.fields:
            assert feature_field(view.name, name) == _mmh3(f"{view.name}:{name}")
    for entity_id in IDS:
        key = EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=entity_id)])
        assert redis_key("user_id", entity_id, "proj") == _redis_key(
            "proj", key, entity_key_serialization_version=3)


def test_the_spec_lists_every_field_of_the_stream_in_row_order() -> None:
    for stream in ("user", "item", "item_category", "item_pairs"):
        head, project, ts_fields, fields = stream_spec(views_of(stream), "proj", 3).split("|")
        assert redis_key(views_of(stream)[0].key, "x", "proj").startswith(bytes.fromhex(head))
        assert bytes.fromhex(project) == b"proj"
        assert [bytes.fromhex(f) for f in ts_fields.split(",")] == [
            timestamp_field(v.name) for v in views_of(stream)]
        assert len(fields.split(",")) == len(stream_columns(stream))
    with pytest.raises(SystemExit, match="serialization_version 2"):
        stream_spec(views_of("user"), "proj", 2)


def test_the_repository_pins_the_layout_version_the_job_writes() -> None:
    assert render_config(Settings(_env_file=None))["entity_key_serialization_version"] == 3


# --- the writer against a real Redis and Feast registry ----------------------------------

def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pairs_record(project: str, item: str, event_ms: int, n: int, co_view: list[str],
                 counts: list[int]) -> bytes:
    """An item_pairs record as RowEncoder.java makes it, with Feast's own protobufs."""
    [view] = views_of("item_pairs")
    values = {"co_view_items": Value(string_list_val=StringList(val=co_view)),
              "co_view_counts": Value(int64_list_val=Int64List(val=counts)),
              "co_purchase_items": Value(string_list_val=StringList(val=[])),
              "co_purchase_counts": Value(int64_list_val=Int64List(val=[]))}
    ts = Timestamp(seconds=event_ms // 1000, nanos=event_ms % 1000 * 1_000_000)
    parts = [_bulk(redis_key("item_id", item, project)),
             _bulk(timestamp_field(view.name)), _bulk(ts.SerializeToString())]
    for name, _ in view.fields:
        parts += [_bulk(feature_field(view.name, name)), _bulk(values[name].SerializeToString())]
    command = b"*%d\r\n$4\r\nHSET\r\n" % (1 + len(parts)) + b"".join(parts)
    line = ",".join(["item_pairs", item, str(event_ms), str(event_ms - 5), str(n),
                     ";".join(co_view), ";".join(map(str, counts)), "", ""])
    assert len(line.split(",")) == len(ROW_META) + len(stream_columns("item_pairs"))
    return line.encode() + b"\n" + command


@pytest.mark.integration
def test_the_writer_forwards_the_newest_row_per_entity_and_appends_every_row_offline(
        stack_settings: Settings, tmp_path: Path) -> None:
    from feature_repo.store import get_feature_store
    from recsys.stack.services import apply_feast_registry

    # its own Feast project: applying the stack's with another data_dir would point the
    # shared views at this test's folder for every test after it
    settings = stack_settings.model_copy(update={"data_dir": tmp_path / "data",
                                                 "features_topic": f"feat-{uuid.uuid4().hex}",
                                                 "feast_project": f"writer_{uuid.uuid4().hex[:8]}"})
    apply_feast_registry(settings)
    project = render_config(settings)["project"]
    writer = FeatureWriter(settings, track_written=True)
    ms = 1_770_000_000_123
    records = [
        pairs_record(project, "i1", ms, 2, ["i2"], [2]),
        b"not a record",
        pairs_record(project, "i1", ms + 1000, 4, ["i2", "i3"], [3, 1]),  # newer: wins
        pairs_record(project, "i9", ms, 1, [], []),
    ]
    assert writer.write(records) == 3
    assert writer.stats.rejected == 1
    assert writer.stats.online_rows == 2
    assert writer.stats.events["item_pairs"] == 4 + 1  # the newest n of each entity
    assert {w[1] for w in writer.stats.written} == {"i1", "i9"}

    refs = [f"{ITEM_PAIRS_VIEW}:{f}" for f in ("co_view_items", "co_view_counts",
                                                "co_purchase_items")]
    got = get_feature_store(settings).get_online_features(
        refs, [{"item_id": "i1"}, {"item_id": "i9"}], full_feature_names=True).to_dict()
    assert got[f"{ITEM_PAIRS_VIEW}__co_view_items"] == [["i2", "i3"], []]
    assert got[f"{ITEM_PAIRS_VIEW}__co_view_counts"] == [[3, 1], []]
    assert got[f"{ITEM_PAIRS_VIEW}__co_purchase_items"] == [[], []]

    offline = pd.read_parquet(settings.offline_store_path / ITEM_PAIRS_VIEW)
    assert len(offline) == 3  # every row, not only the newest
    newest = offline[offline.item_id == "i1"].sort_values("event_time").iloc[-1]
    assert newest.event_time == pd.Timestamp(ms + 1000, unit="ms", tz="UTC")
    assert list(newest.co_view_items) == ["i2", "i3"] and list(newest.co_view_counts) == [3, 1]
    assert list(offline[offline.item_id == "i9"].iloc[0].co_view_items) == []

    # A backfill part beside the writer's: Feast reads the folder as one source, which
    # needs one event_time unit across parts (dask cannot sort mixed units).
    from ranking.backfill import write_view

    fresh = f"i-{uuid.uuid4().hex[:12]}"  # no other test of this stack wrote it online
    backfill = offline[offline.item_id == "i9"].assign(
        item_id=fresh, event_time=pd.Timestamp(ms - 5000, unit="ms", tz="UTC").as_unit("us"))
    write_view(settings.offline_store_path, ITEM_PAIRS_VIEW, backfill, "test")
    store = get_feature_store(settings)
    store.materialize(start_date=pd.Timestamp(ms - 60_000, unit="ms", tz="UTC").to_pydatetime(),
                      end_date=pd.Timestamp(ms + 60_000, unit="ms", tz="UTC").to_pydatetime(),
                      feature_views=[ITEM_PAIRS_VIEW])
    online = store.get_online_features([f"{ITEM_PAIRS_VIEW}:co_view_items"],
                                       [{"item_id": fresh}, {"item_id": "i1"}]).to_dict()
    assert online["co_view_items"] == [[], ["i2", "i3"]]
    as_of = pd.DataFrame({"item_id": ["i1", fresh], "event_timestamp": [
        pd.Timestamp(ms + 500, unit="ms", tz="UTC"), pd.Timestamp(ms, unit="ms", tz="UTC")]})
    joined = store.get_historical_features(as_of, [f"{ITEM_PAIRS_VIEW}:co_view_counts"]
                                           ).to_df().set_index("item_id")
    assert list(joined.loc["i1", "co_view_counts"]) == [2]  # the row before the newer one
    assert list(joined.loc[fresh, "co_view_counts"]) == []
