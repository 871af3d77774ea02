"""The item → category snapshot the feature job joins (``Settings.stream_catalogue``).

Why a snapshot file and not a Flink join: a regular join of the event stream with
the catalogue would hold both sides in state and drop the event-time attribute the
windows need; a lookup join needs a lookup connector (JDBC, HBase, …) this stack
does not run. The catalogue changes slowly, so every task loads a small
``item_id TAB category`` file into a hash map (``Catalogue.java``) and reloads
it when it changes: the broadcast-state pattern without its state. Items the
snapshot does not know fall back to the event's ``context.category``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq

from recsys.datasets.layout import ITEMS_FILE
from recsys.settings import Settings

FILE_NAME = "stream-catalogue.tsv"


def items_file(source: Path) -> Path:
    path = source / ITEMS_FILE if source.is_dir() else source
    if not path.exists():
        raise SystemExit(f"stream_catalogue: {path} does not exist")
    return path


def catalogue_lines(source: Path) -> str:
    table = pq.read_table(items_file(source), columns=["item_id", "category"])
    lines = []
    for item, category in zip(table.column("item_id").to_pylist(),
                              table.column("category").to_pylist(), strict=True):
        if item and category:
            clean = " ".join(str(category).split()).replace(";", ",")  # no tabs, newlines, ';'
            lines.append(f"{item}\t{clean}\n")
    return "".join(lines)


def export_catalogue(settings: Settings) -> Path | None:
    """Write the snapshot under the state folder (only when it changed); None if unset."""
    if settings.stream_catalogue is None:
        return None
    text = catalogue_lines(settings.stream_catalogue.resolve())
    out = settings.state_path / FILE_NAME
    if out.exists() and out.read_text() == text:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{FILE_NAME}.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)  # the job's reload sees the old file or the new one, never half
    return out
