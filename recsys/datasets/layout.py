"""On-disk layout shared by every data set (MovieLens, synthetic, your own).

A data set is a folder::

    manifest.json        name, source, parameters, row counts (no wall-clock time,
                         so the same seed gives byte-identical output)
    users.parquet        USERS_SCHEMA
    items.parquet        ITEMS_SCHEMA
    events/part-NNNNN.parquet   EVENTS_SCHEMA, each part sorted by ts

Writers build the folder under a temporary name and rename it into place only
when everything is written, so a failed run never leaves a half-written set.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("ms", tz="UTC")

USERS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("signup_ts", TS, nullable=False),
        pa.field("segment", pa.string()),
        pa.field("age", pa.int16()),
        pa.field("gender", pa.string()),
        pa.field("occupation", pa.string()),
    ]
)

ITEMS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("category", pa.string(), nullable=False),
        pa.field("genres", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("launch_ts", TS),
        pa.field("in_stock", pa.bool_(), nullable=False),
    ]
)

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("session_id", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("rating", pa.int8()),
    ]
)

WRITE_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3}
MANIFEST = "manifest.json"
USERS_FILE = "users.parquet"
ITEMS_FILE = "items.parquet"
EVENTS_DIR = "events"



class DatasetExistsError(FileExistsError):
    pass


@contextmanager
def atomic_dataset_dir(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; rename it to ``out`` only on success."""
    out = out.resolve()
    if out.exists() and not overwrite:
        raise DatasetExistsError(f"{out} exists; pass --overwrite to replace it")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / EVENTS_DIR).mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def write_table(table: pa.Table, path: Path, schema: pa.Schema) -> None:
    pq.write_table(table.cast(schema), path, **WRITE_OPTIONS)


def event_part_path(root: Path, index: int) -> Path:
    return root / EVENTS_DIR / f"part-{index:05d}.parquet"


def event_parts(root: Path) -> list[Path]:
    return sorted((root / EVENTS_DIR).glob("part-*.parquet"))


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / MANIFEST).read_text())


def count_rows(paths: list[Path]) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
