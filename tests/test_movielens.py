"""MovieLens loaders: 100K from ../shared/data, the `::` formats from constructed files."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from recsys.datasets.movielens import DEFAULT_RATING_EVENTS, MovieLensFormatError, load
from recsys.datasets.validation import validate_dataset
from tests.conftest import ML100K


def test_ml100k_every_rating_becomes_one_event(ml100k_dataset: Path) -> None:
    events = pq.read_table(ml100k_dataset / "events").to_pandas()
    raw = (ML100K / "u.data").read_text().splitlines()
    assert len(events) == len(raw) == 100_000
    assert events.user_id.nunique() == 943 and events.item_id.nunique() == 1682
    # spot-check the first line of u.data: user 196 rated item 242 with 3 at 881250949
    user, item, rating, ts = raw[0].split("\t")
    row = events[(events.user_id == user) & (events.item_id == item)].iloc[0]
    assert row.rating == int(rating) and row.event_type == DEFAULT_RATING_EVENTS[int(rating)]
    assert row.ts.timestamp() == int(ts)
    assert events.ts.is_monotonic_increasing
    assert validate_dataset(ml100k_dataset).ok


def test_ml100k_items_and_users_keep_their_metadata(ml100k_dataset: Path) -> None:
    items = pq.read_table(ml100k_dataset / "items.parquet").to_pandas().set_index("item_id")
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert items.loc["1", "genres"] == "Animation|Children's|Comedy"
    assert items.loc["1", "category"] == "Animation"
    users = pq.read_table(ml100k_dataset / "users.parquet").to_pandas().set_index("user_id")
    assert (users.loc["1", "age"], users.loc["1", "gender"]) == (24, "M")
    assert users.loc["1", "occupation"] == "technician"


def write_ml1m(root: Path, ratings: str, movies: str | None = None,
               users: str | None = "1::F::1::10::48067\n2::M::56::16::70072\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ratings.dat").write_text(ratings)
    (root / "movies.dat").write_text(movies or "1::Toy Story (1995)::Animation|Children's\n"
                                     "2::Jumanji (1995)::Adventure|Fantasy\n")
    if users is not None:
        (root / "users.dat").write_text(users)
    return root


def test_1m_format_with_users(tmp_path: Path) -> None:
    src = write_ml1m(tmp_path / "ml-1m", "1::1::5::978300760\n1::2::3::978302109\n"
                                         "2::1::4::978301968\n")
    manifest = load(src, tmp_path / "out")
    assert manifest["name"] == "movielens-1m/10m" and manifest["events"] == 3
    events = pq.read_table(tmp_path / "out" / "events").to_pandas()
    assert events.sort_values("ts").event_type.tolist() == ["purchase", "add_to_cart", "click"]
    users = pq.read_table(tmp_path / "out" / "users.parquet").to_pandas().set_index("user_id")
    assert users.loc["2", "gender"] == "M" and users.loc["2", "age"] == 56
    items = pq.read_table(tmp_path / "out" / "items.parquet").to_pandas().set_index("item_id")
    assert items.loc["2", "launch_ts"].year == 1995
    assert validate_dataset(tmp_path / "out").ok


def test_10m_format_without_users_file(tmp_path: Path) -> None:
    src = write_ml1m(tmp_path / "ml-10m", "7::1::4::1136075494\n", users=None)
    load(src, tmp_path / "out")
    users = pq.read_table(tmp_path / "out" / "users.parquet").to_pylist()
    assert [u["user_id"] for u in users] == ["7"]
    assert users[0]["gender"] is None


def test_custom_rating_mapping(tmp_path: Path) -> None:
    src = write_ml1m(tmp_path / "ml", "1::1::5::978300760\n")
    mapping = dict.fromkeys(range(1, 6), "view")
    load(src, tmp_path / "out", rating_events=mapping)
    assert pq.read_table(tmp_path / "out" / "events").column("event_type").to_pylist() == ["view"]


@pytest.mark.parametrize(
    ("ratings", "message"),
    [
        ("1::1::5::978300760\n1::2::3\n", "ratings.dat line 2: expected 4 fields"),
        ("1::1::7::978300760\n", "line 1: field 'rating' = '7' is not an integer in [1, 5]"),
        ("1::x::5::978300760\n", "line 1: field 'item' = 'x'"),
        ("1::1::5::978300760\n1::1::4::978300761\n", "line 2: user 1 rated item 1 twice"),
        ("1::99::5::978300760\n", "item 99 is not in movies.dat"),
    ],
)
def test_bad_files_are_rejected_with_line_and_field_and_nothing_written(
    tmp_path: Path, ratings: str, message: str
) -> None:
    src = write_ml1m(tmp_path / "ml", ratings)
    with pytest.raises(MovieLensFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ml"]


def test_unknown_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MovieLensFormatError, match=r"neither u\.data"):
        load(tmp_path, tmp_path / "out")
