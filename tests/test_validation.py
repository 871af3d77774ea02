"""Data set validation: each kind of bad file is reported with its file and field."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from recsys.datasets.validation import DatasetValidationError, ensure_valid, validate_dataset

PART = "events/part-00000.parquet"


def rewrite(root: Path, name: str, change: Callable[[pa.Table], pa.Table]) -> None:
    path = root / name
    pq.write_table(change(pq.read_table(path)), path)


def set_value(column: str, row: int, value: object) -> Callable[[pa.Table], pa.Table]:
    def change(table: pa.Table) -> pa.Table:
        values = table[column].to_pylist()
        values[row] = value
        index = table.column_names.index(column)
        return table.set_column(index, column, pa.array(values, table.schema.field(column).type))
    return change


@pytest.fixture
def dataset(small_dataset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    return copy


def test_a_good_data_set_passes(dataset: Path) -> None:
    report = ensure_valid(dataset)
    assert report.ok and report.rows["events"] == 6_000


@pytest.mark.parametrize(
    ("file", "change", "field", "message"),
    [
        (PART, set_value("event_type", 3, "like"), "event_type", "must be one of"),
        (PART, set_value("price", 0, -2.5), "price", "finite number >= 0"),
        (PART, set_value("user_id", 1, "ghost"), "user_id", "missing from users.parquet"),
        (PART, set_value("item_id", 1, "bad id!"), "item_id", "letters, digits"),
        (PART, set_value("event_id", 1, "e0"), "event_id", "not unique"),
        (PART, lambda t: t.drop_columns(["ts"]), "ts", "required column is missing"),
        (PART, lambda t: t.set_column(4, "ts", pc.cast(t["ts"], pa.string())), "ts",
         "expected timestamp"),
        ("items.parquet", set_value("price", 0, float("inf")), "price", "finite"),
        ("users.parquet", set_value("user_id", 1, "u0"), "user_id", "not unique"),
    ],
)
def test_each_problem_names_file_and_field(dataset: Path, file: str, change, field: str,
                                           message: str) -> None:
    rewrite(dataset, file, change)
    report = validate_dataset(dataset)
    assert not report.ok
    hits = [p for p in report.problems if p.field == field and message in p.message]
    assert hits, report.render()
    assert hits[0].file.endswith(Path(file).name) or hits[0].file == "events/"


def test_future_timestamps_are_rejected(dataset: Path) -> None:
    import datetime as dt

    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    rewrite(dataset, PART, set_value("ts", 0, future))
    problem = next(p for p in validate_dataset(dataset).problems if p.field == "ts")
    assert problem.rows == 1 and "and now" in problem.message


def test_problems_of_many_rows_are_counted_once_with_examples(dataset: Path) -> None:
    rewrite(dataset, PART, lambda t: t.set_column(
        3, "event_type", pa.array(["like"] * t.num_rows)))
    [problem] = [p for p in validate_dataset(dataset).problems if p.field == "event_type"]
    assert problem.rows == pq.read_metadata(dataset / PART).num_rows
    assert problem.examples == ["'like'"] * 3


def test_missing_and_unreadable_files(dataset: Path) -> None:
    (dataset / "users.parquet").unlink()
    (dataset / PART).write_bytes(b"not parquet")
    text = validate_dataset(dataset).render()
    assert "users.parquet: -: file is missing" in text
    assert f"{PART}: -: not a readable Parquet file" in text


def test_manifest_counts_must_match_the_files(dataset: Path) -> None:
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["events"] += 1
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetValidationError, match="says 6001 rows but the files hold 6000"):
        ensure_valid(dataset)


def test_missing_folder(tmp_path: Path) -> None:
    assert "does not exist" in validate_dataset(tmp_path / "nope").render()
