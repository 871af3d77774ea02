"""Feast's Redis online-store layout, as the feature job needs it (no Feast import).

The job encodes each row the way Feast's ``RedisOnlineStore.online_write_batch``
would and the writer only forwards the bytes (Python-side encoding cost ~25 µs a
row; see docs/streaming.md). The layout, for ``entity_key_serialization_version``
3 (pinned in feature_store.yaml):

- Redis key: ``serialize_entity_key(EntityKey([join_key], [string id]))`` + project,
  i.e. ``<u32 1><u32 STRING><u32 len(join_key)><join_key><u32 STRING><u32 len(id)><id>``
  followed by the project name (all little-endian);
- one hash field per feature: ``murmur3_32("<view>:<feature>")``, 4 bytes little
  endian (Feast's ``_mmh3``), holding a ``feast.types.Value`` protobuf;
- ``_ts:<view>``: a ``google.protobuf.Timestamp`` of the row's event time.

This module computes the parts that come from names (key head, field names) and
hands them to the Java encoder (``RowEncoder.java``) as one literal per stream;
``tests/test_stream_writer.py`` checks them against Feast's own helpers and the
integration test reads the written rows back with ``get_online_features``.
"""

from __future__ import annotations

import struct

from feature_repo.specs import StreamView

SUPPORTED_SERIALIZATION_VERSION = 3
STRING_TYPE = 2  # feast.value_type.ValueType.STRING
TYPE_CODES = {"int64": "i", "float64": "d", "string_list": "sl", "int64_list": "il",
              "float64_list": "dl"}


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit (what ``mmh3.hash(..., signed=False)`` returns)."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & mask
    blocks = len(data) // 4
    for i in range(blocks):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail, k = data[4 * blocks:], 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if tail:
        k ^= tail[0]
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def feature_field(view: str, feature: str) -> bytes:
    """The hash field of one feature (Feast's ``_mmh3(f"{view}:{feature}")``)."""
    return struct.pack("<I", murmur3_32(f"{view}:{feature}".encode()))


def timestamp_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


def key_head(join_key: str) -> bytes:
    """The serialized entity key up to the id's length (single string join key)."""
    name = join_key.encode()
    return struct.pack("<III", 1, STRING_TYPE, len(name)) + name + struct.pack("<I", STRING_TYPE)


def redis_key(join_key: str, entity_id: str, project: str) -> bytes:
    data = entity_id.encode()
    return key_head(join_key) + struct.pack("<I", len(data)) + data + project.encode()


def stream_spec(views: tuple[StreamView, ...], project: str, serialization_version: int) -> str:
    """``keyhead|project|ts fields|field:type,…`` (hex bytes) for RowEncoder.java."""
    if serialization_version != SUPPORTED_SERIALIZATION_VERSION:
        raise SystemExit(f"entity_key_serialization_version {serialization_version}: the "
                         f"stream writer writes version {SUPPORTED_SERIALIZATION_VERSION} only")
    keys = {view.key for view in views}
    if len(keys) != 1:
        raise ValueError(f"one stream row must hold one entity's views, got {keys}")
    fields = ",".join(f"{feature_field(view.name, name).hex()}:{TYPE_CODES[kind]}"
                      for view in views for name, kind in view.fields)
    ts_fields = ",".join(timestamp_field(view.name).hex() for view in views)
    return "|".join((key_head(keys.pop()).hex(), project.encode().hex(), ts_fields, fields))
