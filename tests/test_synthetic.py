"""The synthetic generator: deterministic, exact counts, and the structure it promises."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from recsys.datasets.layout import DatasetExistsError, event_parts, read_manifest
from recsys.datasets.synthetic import SyntheticConfig, generate
from recsys.datasets.validation import validate_dataset
from tests.conftest import SMALL


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def frames(small_dataset: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    events = pq.read_table(small_dataset / "events").to_pandas()
    users = pq.read_table(small_dataset / "users.parquet").to_pandas()
    items = pq.read_table(small_dataset / "items.parquet").to_pandas()
    return events, users, items


def test_same_seed_gives_byte_identical_files(small_dataset: Path, tmp_path: Path) -> None:
    generate(SMALL, tmp_path / "again")
    assert digests(tmp_path / "again") == digests(small_dataset)


def test_another_seed_gives_other_data(small_dataset: Path, tmp_path: Path) -> None:
    generate(replace(SMALL, seed=7), tmp_path / "other")
    assert digests(tmp_path / "other")["events/part-00000.parquet"] != digests(small_dataset)[
        "events/part-00000.parquet"]


def test_exact_counts_valid_and_split_into_time_ordered_parts(small_dataset: Path,
                                                              frames) -> None:
    events, users, items = frames
    assert (len(events), len(users), len(items)) == (SMALL.n_interactions, SMALL.n_users,
                                                     SMALL.n_items)
    assert read_manifest(small_dataset)["events"] == SMALL.n_interactions
    parts = event_parts(small_dataset)
    assert len(parts) >= 2
    previous_end = None
    for part in parts:
        ts = pq.read_table(part, columns=["ts"]).column("ts").to_pandas()
        assert ts.is_monotonic_increasing
        if previous_end is not None:  # parts are consecutive time slices
            assert ts.iloc[0] >= previous_end - pd.Timedelta(hours=1)
        previous_end = ts.iloc[-1]
    assert events["event_id"].is_unique
    assert validate_dataset(small_dataset).ok


def test_funnel_every_purchase_follows_a_cart_in_its_session(frames) -> None:
    events, _, _ = frames
    carts = events[events.event_type == "add_to_cart"]
    buys = events[events.event_type == "purchase"]
    first_cart = carts.groupby(["session_id", "item_id"]).ts.min()
    joined = buys.join(first_cart.rename("cart_ts"), on=["session_id", "item_id"], how="left")
    # the last session of the slice may be cut short, never the other way round
    assert joined.cart_ts.notna().all()
    assert (joined.cart_ts <= joined.ts).all()
    counts = events.event_type.value_counts()
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0


def test_popularity_is_heavy_tailed(frames) -> None:
    events, _, _ = frames
    views = events[events.event_type == "view"].item_id.value_counts()
    top_decile = views.iloc[: max(1, len(views) // 10)].sum()
    assert top_decile / views.sum() > 0.35


def test_cold_start_users_and_items_have_no_history(frames) -> None:
    events, users, items = frames
    cfg = replace(SMALL)
    end = pd.Timestamp(cfg.end_ms, unit="ms", tz="UTC")
    new_users = users[users.signup_ts == end].user_id
    new_items = items[items.launch_ts == end].item_id
    assert len(new_users) > 0 and len(new_items) > 0
    assert not events.user_id.isin(new_users).any()
    assert not events.item_id.isin(new_items).any()
    # everybody else signed up / launched before the window
    start = pd.Timestamp(cfg.start_ms, unit="ms", tz="UTC")
    assert (users[users.signup_ts != end].signup_ts < start).all()


def test_purchases_carry_complement_structure(frames) -> None:
    events, _, items = frames
    buys = events[events.event_type == "purchase"]
    baskets = buys.groupby("session_id").item_id.apply(lambda s: tuple(sorted(set(s))))
    pairs = baskets[baskets.map(len) >= 2]
    assert len(pairs) > 10
    # complements come from a different category than the item bought first
    category = items.set_index("item_id").category
    mixed = pairs.map(lambda basket: len({category[i] for i in basket}) > 1)
    assert mixed.mean() > 0.5


def test_users_prefer_their_categories(frames) -> None:
    events, _, items = frames
    category = items.set_index("item_id").category
    views = events[events.event_type == "view"].assign(cat=lambda f: f.item_id.map(category))
    share_top = views.groupby("user_id").cat.agg(lambda c: c.value_counts(normalize=True).iloc[0])
    heavy = views.user_id.value_counts()
    assert share_top[heavy[heavy >= 20].index].median() > 0.3  # 8 categories: uniform is 0.125


def test_evenings_are_busier_than_nights() -> None:
    cfg = SyntheticConfig(n_users=300, n_items=100, n_interactions=20_000, n_categories=5,
                          days=14)
    from recsys.datasets.synthetic import _hour_weights

    weights = _hour_weights(cfg).reshape(cfg.days, 24).sum(axis=0)
    assert weights[20] > 1.5 * weights[4]


def test_existing_output_is_kept_unless_overwrite(small_dataset: Path) -> None:
    before = digests(small_dataset)
    with pytest.raises(DatasetExistsError, match="overwrite"):
        generate(SMALL, small_dataset)
    assert digests(small_dataset) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_users": 0}, "n_users"),
        ({"n_items": 3, "n_categories": 5}, "n_items"),
        ({"new_user_share": 0.9}, "new_user_share"),
        ({"start": "not-a-date"}, "Invalid isoformat"),
    ],
)
def test_bad_configuration_is_refused(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**change)


def test_a_failed_run_leaves_nothing_behind(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import recsys.datasets.synthetic as synthetic

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "_slice_events", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(SMALL, tmp_path / "broken")
    assert list(tmp_path.iterdir()) == []
