"""Validate a data set folder: schema, value ranges and referential integrity.

Events are read batch by batch, so a 10M-row set is checked in bounded memory.
The report lists each problem once with the file, the field, how many rows it
affects and a few example values; loaders and the replay call
:func:`ensure_valid` before touching anything downstream, so a bad set is
rejected whole instead of being half-loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_repo.events import EARLIEST_EVENT_TIME, EVENT_TYPES, ID_PATTERN, MAX_FUTURE_SKEW
from recsys.datasets.layout import (
    EVENTS_SCHEMA,
    ITEMS_FILE,
    ITEMS_SCHEMA,
    MANIFEST,
    USERS_FILE,
    USERS_SCHEMA,
    event_parts,
)

BATCH_ROWS = 500_000
MAX_EXAMPLES = 3


@dataclass
class DataProblem:
    file: str
    field: str
    message: str
    rows: int = 0
    examples: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}"
        count = f" ({self.rows} row(s))" if self.rows else ""
        examples = f"; e.g. {', '.join(self.examples)}" if self.examples else ""
        return f"{where}: {self.message}{count}{examples}"


@dataclass
class ValidationReport:
    dataset: Path
    problems: list[DataProblem] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, file: str, column: str, message: str, rows: int = 0,
            examples: list[object] | None = None) -> None:
        shown = [repr(e) for e in (examples or [])[:MAX_EXAMPLES]]
        self.problems.append(DataProblem(file, column, message, rows, shown))

    def render(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.rows.items())
        head = f"{self.dataset}: {'valid' if self.ok else 'INVALID'} ({counts})"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class DatasetValidationError(ValueError):
    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(report.render())


def _check_schema(report: ValidationReport, name: str, actual: pa.Schema,
                  expected: pa.Schema) -> bool:
    ok = True
    for wanted in expected:
        if wanted.name not in actual.names:
            if not wanted.nullable:
                report.add(name, wanted.name, "required column is missing")
                ok = False
            continue
        have = actual.field(wanted.name).type
        if have != wanted.type and not _castable(have, wanted.type):
            report.add(name, wanted.name, f"has type {have}, expected {wanted.type}")
            ok = False
    return ok


def _castable(have: pa.DataType, want: pa.DataType) -> bool:
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(have)
    if pa.types.is_string(want):
        return pa.types.is_string(have) or pa.types.is_large_string(have) or (
            pa.types.is_dictionary(have) and pa.types.is_string(have.value_type))
    if pa.types.is_integer(want) or pa.types.is_floating(want):
        return pa.types.is_integer(have) or pa.types.is_floating(have)
    return False


def _examples(values: pa.Array | pa.ChunkedArray, mask: pa.Array) -> list[object]:
    return pc.filter(values, mask).slice(0, MAX_EXAMPLES).to_pylist()


def _check_ids(report: ValidationReport, name: str, table: pa.Table, column: str) -> None:
    values = table[column]
    nulls = pc.is_null(values)
    if pc.any(nulls).as_py():
        report.add(name, column, "is empty", pc.sum(nulls).as_py())
    bad = pc.invert(pc.fill_null(pc.match_substring_regex(values, ID_PATTERN), True))
    if pc.any(bad).as_py():
        report.add(name, column, "must be 1-64 characters of letters, digits and _.:@-",
                   pc.sum(bad).as_py(), _examples(values, bad))


def _check_non_negative(report: ValidationReport, name: str, table: pa.Table,
                        column: str) -> None:
    if column not in table.column_names:
        return
    values = pc.cast(table[column], pa.float64())
    finite = pc.fill_null(pc.is_finite(values), True)
    bad = pc.or_(pc.invert(finite), pc.fill_null(pc.less(values, 0), False))
    if pc.any(bad).as_py():
        report.add(name, column, "must be a finite number >= 0", pc.sum(bad).as_py(),
                   _examples(values, bad))


def _check_unique(report: ValidationReport, name: str, values: pa.ChunkedArray,
                  column: str) -> None:
    duplicates = len(values) - pc.count_distinct(values).as_py()
    if duplicates:
        counts = pc.value_counts(values)
        dup = pc.filter(counts, pc.greater(counts.field("counts"), 1)).field("values")
        examples = dup.slice(0, MAX_EXAMPLES).to_pylist()
        report.add(name, column, "is not unique", duplicates, examples)


def _load_entity(report: ValidationReport, root: Path, file: str, schema: pa.Schema,
                 key: str) -> pa.ChunkedArray | None:
    path = root / file
    if not path.exists():
        report.add(file, "-", "file is missing")
        return None
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        report.add(file, "-", f"not a readable Parquet file: {exc}")
        return None
    report.rows[file.removesuffix(".parquet")] = table.num_rows
    if not _check_schema(report, file, table.schema, schema):
        return None
    _check_ids(report, file, table, key)
    _check_unique(report, file, table[key], key)
    if file == ITEMS_FILE:
        _check_non_negative(report, file, table, "price")
        missing = pc.is_null(table["category"])
        if pc.any(missing).as_py():
            report.add(file, "category", "is empty", pc.sum(missing).as_py())
    return table[key]


def _check_event_batch(report: ValidationReport, name: str, batch: pa.Table,
                       users: pa.Array | None, items: pa.Array | None,
                       now: datetime) -> None:
    for column in ("event_id", "user_id", "item_id"):
        _check_ids(report, name, batch, column)
    types = batch["event_type"]
    bad_type = pc.invert(pc.fill_null(pc.is_in(types, pa.array(EVENT_TYPES)), False))
    if pc.any(bad_type).as_py():
        report.add(name, "event_type", f"must be one of {', '.join(EVENT_TYPES)}",
                   pc.sum(bad_type).as_py(), _examples(types, bad_type))
    ts = pc.cast(batch["ts"], pa.timestamp("ms", tz="UTC"))
    lo = pa.scalar(EARLIEST_EVENT_TIME, pa.timestamp("ms", tz="UTC"))
    hi = pa.scalar(now + MAX_FUTURE_SKEW, pa.timestamp("ms", tz="UTC"))
    bad_ts = pc.fill_null(pc.or_(pc.less(ts, lo), pc.greater(ts, hi)), True)
    if pc.any(bad_ts).as_py():
        report.add(name, "ts", f"must be between {EARLIEST_EVENT_TIME.date()} and now",
                   pc.sum(bad_ts).as_py(), [str(v) for v in _examples(ts, bad_ts)])
    _check_non_negative(report, name, batch, "price")
    if "rating" in batch.column_names:
        rating = batch["rating"]
        bad_rating = pc.fill_null(pc.or_(pc.less(rating, 1), pc.greater(rating, 5)), False)
        if pc.any(bad_rating).as_py():
            report.add(name, "rating", "must be between 1 and 5", pc.sum(bad_rating).as_py(),
                       _examples(rating, bad_rating))
    for column, known, entity in (("user_id", users, USERS_FILE), ("item_id", items, ITEMS_FILE)):
        if known is None:
            continue
        orphan = pc.invert(pc.is_in(batch[column], known))
        if pc.any(orphan).as_py():
            report.add(name, column, f"refers to ids missing from {entity}",
                       pc.sum(orphan).as_py(), _examples(batch[column], orphan))


def validate_dataset(root: Path) -> ValidationReport:
    root = Path(root)
    report = ValidationReport(dataset=root)
    if not root.is_dir():
        report.add(str(root), "-", "data set folder does not exist")
        return report
    manifest: dict = {}
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        report.add(MANIFEST, "-", "file is missing")
    except json.JSONDecodeError as exc:
        report.add(MANIFEST, "-", f"not valid JSON: {exc}")

    users = _load_entity(report, root, USERS_FILE, USERS_SCHEMA, "user_id")
    items = _load_entity(report, root, ITEMS_FILE, ITEMS_SCHEMA, "item_id")
    user_set = users.combine_chunks() if users is not None else None
    item_set = items.combine_chunks() if items is not None else None

    parts = event_parts(root)
    if not parts:
        report.add("events/", "-", "no event files (events/part-*.parquet)")
    now = datetime.now(UTC)
    total, id_hashes = 0, []
    for path in parts:
        name = f"events/{path.name}"
        try:
            handle = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            report.add(name, "-", f"not a readable Parquet file: {exc}")
            continue
        if not _check_schema(report, name, handle.schema_arrow, EVENTS_SCHEMA):
            continue
        for batch in handle.iter_batches(batch_size=BATCH_ROWS):
            table = pa.Table.from_batches([batch])
            total += table.num_rows
            _check_event_batch(report, name, table, user_set, item_set, now)
            ids = table["event_id"].to_numpy(zero_copy_only=False)
            id_hashes.append(pd.util.hash_array(ids.astype(object)))
    report.rows["events"] = total
    if id_hashes:
        hashes = np.concatenate(id_hashes)
        duplicates = len(hashes) - len(np.unique(hashes))
        if duplicates:
            report.add("events/", "event_id", "is not unique across the data set", duplicates)

    for key in ("users", "items", "events"):
        if key in manifest and key in report.rows and manifest[key] != report.rows[key]:
            report.add(MANIFEST, key, f"says {manifest[key]} rows but the files hold "
                       f"{report.rows[key]}")
    _merge_repeats(report)
    return report


def _merge_repeats(report: ValidationReport) -> None:
    """One line per (file, field, message): batches of one file add up."""
    merged: dict[tuple[str, str, str], DataProblem] = {}
    for problem in report.problems:
        key = (problem.file, problem.field, problem.message)
        if key in merged:
            merged[key].rows += problem.rows
            room = MAX_EXAMPLES - len(merged[key].examples)
            merged[key].examples.extend(problem.examples[:max(room, 0)])
        else:
            merged[key] = problem
    report.problems = list(merged.values())


def ensure_valid(root: Path) -> ValidationReport:
    report = validate_dataset(root)
    if not report.ok:
        raise DatasetValidationError(report)
    return report
