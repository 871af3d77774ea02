"""MovieLens loaders: the 100K ``u.data`` format and the 1M/10M ``::`` format.

Every rating becomes one event (the evaluation protocol treats every rating as
an interaction); its ``event_type`` grades intent by the rating (configurable,
see :data:`DEFAULT_RATING_EVENTS`) and the rating itself is kept. Items get
their first genre as category and the full genre list; users keep the
demographics the format provides. Each file is parsed completely and checked
before anything is written: a malformed line rejects the whole load with its
line number.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from recsys.datasets.layout import (
    EVENTS_SCHEMA,
    ITEMS_FILE,
    ITEMS_SCHEMA,
    USERS_FILE,
    USERS_SCHEMA,
    atomic_dataset_dir,
    event_part_path,
    write_manifest,
    write_table,
)

DEFAULT_RATING_EVENTS: dict[int, str] = {
    1: "view",
    2: "view",
    3: "click",
    4: "add_to_cart",
    5: "purchase",
}
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]
ML1M_AGES = {1: 18, 18: 18, 25: 25, 35: 35, 45: 45, 50: 50, 56: 56}


class MovieLensFormatError(ValueError):
    """A MovieLens file does not match its format; the message names file, line and field."""


@dataclass(frozen=True)
class MovieLensFiles:
    flavour: str  # "100k" or "1m/10m"
    ratings: Path
    items: Path
    users: Path | None


def detect(path: Path) -> MovieLensFiles:
    if (path / "u.data").exists():
        return MovieLensFiles("100k", path / "u.data", path / "u.item", path / "u.user")
    if (path / "ratings.dat").exists():
        users = path / "users.dat"
        return MovieLensFiles("1m/10m", path / "ratings.dat", path / "movies.dat",
                              users if users.exists() else None)
    raise MovieLensFormatError(
        f"{path}: neither u.data (100K format) nor ratings.dat (1M/10M format) found"
    )


def _read(path: Path, sep: str, names: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise MovieLensFormatError(f"{path}: file not found")
    raw = path.read_bytes().decode("latin-1")
    if sep == "::":
        raw = raw.replace("::", "\x1f")
        sep = "\x1f"
    lines = raw.splitlines()
    for number, line in enumerate(lines, start=1):
        if line and line.count(sep) != len(names) - 1:
            raise MovieLensFormatError(
                f"{path.name} line {number}: expected {len(names)} fields separated by "
                f"{sep!r}, found {line.count(sep) + 1}"
            )
    frame = pd.read_csv(io.StringIO(raw), sep=sep, header=None, names=names, dtype=str,
                        keep_default_na=False, engine="c", quoting=3)
    frame.index = frame.index + 1  # line numbers
    return frame


def _integers(frame: pd.DataFrame, column: str, file: Path, lo: int | None = None,
              hi: int | None = None) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if lo is not None:
        bad |= values < lo
    if hi is not None:
        bad |= values > hi
    if bad.any():
        line = int(bad.idxmax())
        raise MovieLensFormatError(
            f"{file.name} line {line}: field {column!r} = {frame.at[line, column]!r} is not an "
            f"integer{f' in [{lo}, {hi}]' if lo is not None and hi is not None else ''}"
            f" ({int(bad.sum())} bad line(s) in all)"
        )
    return values.astype(np.int64)


def _ratings(files: MovieLensFiles) -> pd.DataFrame:
    names = ["user", "item", "rating", "ts"]
    sep = "\t" if files.flavour == "100k" else "::"
    frame = _read(files.ratings, sep, names)
    out = pd.DataFrame(
        {
            "user": _integers(frame, "user", files.ratings, 1),
            "item": _integers(frame, "item", files.ratings, 1),
            "rating": _integers(frame, "rating", files.ratings, 1, 5),
            "ts": _integers(frame, "ts", files.ratings, 0),
        }
    )
    dupes = out.duplicated(["user", "item"])
    if dupes.any():
        line = int(dupes.idxmax())
        raise MovieLensFormatError(
            f"{files.ratings.name} line {line}: user {out.at[line, 'user']} rated item "
            f"{out.at[line, 'item']} twice"
        )
    return out


def _items(files: MovieLensFiles) -> pd.DataFrame:
    if files.flavour == "100k":
        names = ["item", "title", "release", "video_release", "url", *ML100K_GENRES]
        frame = _read(files.items, "|", names)
        flags = frame[ML100K_GENRES].to_numpy() == "1"
        genres = ["|".join(g for g, f in zip(ML100K_GENRES, row, strict=True) if f) or "unknown"
                  for row in flags]
        release = pd.to_datetime(frame["release"], format="%d-%b-%Y", errors="coerce", utc=True)
    else:
        frame = _read(files.items, "::", ["item", "title", "genres"])
        genres = frame["genres"].replace("", "unknown").tolist()
        year = frame["title"].str.extract(r"\((\d{4})\)\s*$")[0]
        release = pd.to_datetime(year, format="%Y", errors="coerce", utc=True)
    return pd.DataFrame(
        {
            "item": _integers(frame, "item", files.items, 1),
            "title": frame["title"],
            "genres": genres,
            "launch_ts": release,
        }
    )


def _users(files: MovieLensFiles, ratings: pd.DataFrame) -> pd.DataFrame:
    first_seen = ratings.groupby("user")["ts"].min()
    base = pd.DataFrame({"user": first_seen.index, "signup": first_seen.to_numpy()})
    if files.users is None:
        return base.assign(age=pd.NA, gender=None, occupation=None)
    if files.flavour == "100k":
        frame = _read(files.users, "|", ["user", "age", "gender", "occupation", "zip"])
        occupation = frame["occupation"]
    else:
        frame = _read(files.users, "::", ["user", "gender", "age", "occupation", "zip"])
        occupation = "code_" + frame["occupation"]
    demo = pd.DataFrame(
        {
            "user": _integers(frame, "user", files.users, 1),
            "age": _integers(frame, "age", files.users, 0, 120),
            "gender": frame["gender"],
            "occupation": occupation,
        }
    )
    return base.merge(demo, on="user", how="left")


def load(
    path: Path,
    out: Path,
    rating_events: dict[int, str] | None = None,
    overwrite: bool = False,
    events_per_part: int = 1_000_000,
) -> dict:
    """Convert a MovieLens folder into the platform's data set layout; returns the manifest."""
    rating_events = rating_events or DEFAULT_RATING_EVENTS
    files = detect(path)
    ratings = _ratings(files)
    items = _items(files)
    users = _users(files, ratings)

    unknown = ~ratings["item"].isin(items["item"])
    if unknown.any():
        line = int(unknown.idxmax())
        raise MovieLensFormatError(
            f"{files.ratings.name} line {line}: item {ratings.at[line, 'item']} is not in "
            f"{files.items.name} ({int(unknown.sum())} rating(s) reference unknown items)"
        )

    ratings = ratings.sort_values(["ts", "user", "item"], kind="stable").reset_index(drop=True)
    event_type = ratings["rating"].map(rating_events)
    if event_type.isna().any():
        missing = sorted(set(ratings["rating"][event_type.isna()]))
        raise MovieLensFormatError(f"rating_events has no event type for rating(s) {missing}")

    events = pa.table(
        {
            "event_id": ("ml-" + ratings["user"].astype(str) + "-" + ratings["item"].astype(str)),
            "user_id": ratings["user"].astype(str),
            "item_id": ratings["item"].astype(str),
            "event_type": event_type,
            "ts": pd.to_datetime(ratings["ts"], unit="s", utc=True),
            "session_id": pa.nulls(len(ratings), pa.string()),
            "price": pa.nulls(len(ratings), pa.float64()),
            "rating": ratings["rating"].astype(np.int8),
        }
    )
    items_table = pa.table(
        {
            "item_id": items["item"].astype(str),
            "title": items["title"],
            "category": [g.split("|", 1)[0] for g in items["genres"]],
            "genres": items["genres"],
            "brand": pa.nulls(len(items), pa.string()),
            "price": pa.nulls(len(items), pa.float64()),
            "launch_ts": items["launch_ts"],
            "in_stock": np.ones(len(items), dtype=bool),
        }
    )
    users_table = pa.table(
        {
            "user_id": users["user"].astype(str),
            "signup_ts": pd.to_datetime(users["signup"], unit="s", utc=True),
            "segment": pa.nulls(len(users), pa.string()),
            "age": pd.array(users["age"], dtype="Int16"),
            "gender": users["gender"],
            "occupation": users["occupation"],
        }
    )
    with atomic_dataset_dir(out, overwrite=overwrite) as tmp:
        write_table(users_table, tmp / USERS_FILE, USERS_SCHEMA)
        write_table(items_table, tmp / ITEMS_FILE, ITEMS_SCHEMA)
        parts = 0
        for parts, offset in enumerate(range(0, events.num_rows, events_per_part), start=1):
            write_table(events.slice(offset, events_per_part), event_part_path(tmp, parts - 1),
                        EVENTS_SCHEMA)
        manifest = {
            "name": f"movielens-{files.flavour}",
            "source": str(path.resolve()),
            "users": users_table.num_rows,
            "items": items_table.num_rows,
            "events": events.num_rows,
            "event_types": {k: int(v) for k, v in event_type.value_counts().sort_index().items()},
            "rating_events": {str(k): v for k, v in rating_events.items()},
            "parts": parts,
        }
        write_manifest(tmp, manifest)
    return manifest
