"""Seeded, deterministic synthetic e-commerce data.

Users have hidden category preferences, a price level and a power-law activity;
products have a category, a brand, a log-normal price, a launch date and a
power-law popularity within their category. Sessions follow a
view → click → add_to_cart → purchase funnel whose rates depend on whether the
product matches the user's taste and budget; a purchase pulls in the product's
complement (another category) with some probability, which is the co-purchase
structure "frequently bought together" should find. Session volume follows a
daily and weekly rhythm with a slow upward trend. A share of users sign up and
a share of products launch at the very end of the window: they have no history
(cold start).

Events are produced one time slice at a time (each slice with its own seed
spawned from the master seed) and streamed to Parquet, so memory is bounded by
the slice size and the user/product tables, not by the number of interactions,
and the same seed gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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

ProgressCallback = Callable[[int], None]

MS_PER_HOUR = 3_600_000
# event type codes, in funnel order
VIEW, CLICK, CART, PURCHASE = 0, 1, 2, 3
TYPE_NAMES = np.array(["view", "click", "add_to_cart", "purchase"], dtype=object)


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 10_000
    n_items: int = 2_000
    n_interactions: int = 200_000
    n_categories: int = 40
    brands_per_category: int = 12
    start: str = "2026-01-05"
    days: int = 90
    seed: int = 42
    new_user_share: float = 0.02
    new_item_share: float = 0.02
    events_per_part: int = 1_000_000
    # behaviour
    mean_views_per_session: float = 3.5
    preferred_category_share: float = 0.75
    click_rate: float = 0.22
    cart_rate: float = 0.30
    purchase_rate: float = 0.55
    complement_rate: float = 0.35

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "n_interactions", "n_categories", "days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.n_items < self.n_categories:
            raise ValueError("n_items must be at least n_categories")
        for name in ("new_user_share", "new_item_share"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ValueError(f"{name} must be in [0, 0.5)")
        datetime.fromisoformat(self.start)

    @property
    def start_ms(self) -> int:
        return int(datetime.fromisoformat(self.start).replace(tzinfo=UTC).timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * 24 * MS_PER_HOUR


@dataclass
class _Catalogue:
    category: np.ndarray  # item index -> category index (items sorted by category)
    cum_weight: np.ndarray  # cumulative popularity over item index
    cat_lo: np.ndarray  # first item index of each category
    cat_hi: np.ndarray  # one past the last item index of each category
    cat_weight: np.ndarray  # probability of each category
    price: np.ndarray
    complement: np.ndarray  # item index -> complement item index
    item_ids: pa.Array  # item index -> id string


@dataclass
class _Population:
    primary: np.ndarray  # user -> preferred category
    secondary: np.ndarray
    price_level: np.ndarray
    cum_activity: np.ndarray
    user_ids: pa.Array


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.permutation(weights)


def _draw(cum: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample indices in [lo, hi) proportionally to the weights whose cumsum is ``cum``."""
    base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    top = cum[hi - 1]
    x = base + rng.random(len(lo)) * (top - base)
    return np.minimum(np.searchsorted(cum, x, side="right"), hi - 1)


def _build_catalogue(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[_Catalogue, pa.Table]:
    n, c = cfg.n_items, cfg.n_categories
    cat_weight = _zipf_weights(c, 0.8, rng)
    cat_weight /= cat_weight.sum()
    # every category gets at least one item; the rest in proportion to its weight
    sizes = 1 + rng.multinomial(n - c, cat_weight)
    cat_hi = np.cumsum(sizes)
    cat_lo = cat_hi - sizes
    category = np.repeat(np.arange(c), sizes)

    popularity = np.empty(n)
    for k in range(c):
        popularity[cat_lo[k]:cat_hi[k]] = _zipf_weights(sizes[k], 1.05, rng)
    is_new = rng.random(n) < cfg.new_item_share
    popularity[is_new] = 0.0
    # keep every category drawable even if all its items are new
    for k in np.flatnonzero(np.add.reduceat(popularity, cat_lo) == 0):
        popularity[cat_lo[k]] = 1e-9
        is_new[cat_lo[k]] = False

    cat_price = np.exp(rng.normal(3.4, 0.9, c))
    price = np.round(cat_price[category] * np.exp(rng.normal(0, 0.35, n)), 2).clip(0.5)
    brand = category * cfg.brands_per_category + rng.zipf(1.6, n).clip(
        1, cfg.brands_per_category) - 1

    cum_weight = np.cumsum(popularity)
    complement_cat = (np.arange(c) + 1 + rng.integers(0, max(c - 1, 1), c)) % c
    comp_cat_of_item = complement_cat[category]
    complement = _draw(cum_weight, cat_lo[comp_cat_of_item], cat_hi[comp_cat_of_item], rng)

    day_ms = 24 * MS_PER_HOUR
    launch = cfg.start_ms - rng.integers(30, 730, n) * day_ms
    launch[is_new] = cfg.end_ms
    item_numbers = rng.permutation(n)  # ids do not reveal the category blocks
    item_ids = _ids("i", item_numbers)
    table = pa.table(
        {
            "item_id": item_ids,
            "title": _ids("Product ", item_numbers),
            "category": _ids("cat_", category),
            "genres": pa.nulls(n, pa.string()),
            "brand": _ids("brand_", brand),
            "price": price,
            "launch_ts": pa.array(launch, pa.timestamp("ms", tz="UTC")),
            "in_stock": rng.random(n) > 0.03,
        }
    )
    order = np.argsort(item_numbers, kind="stable")
    catalogue = _Catalogue(category, cum_weight, cat_lo, cat_hi, cat_weight, price,
                           complement, item_ids)
    return catalogue, table.take(order)


def _build_population(
    cfg: SyntheticConfig, cat: _Catalogue, rng: np.random.Generator
) -> tuple[_Population, pa.Table]:
    n = cfg.n_users
    cum_cat = np.cumsum(cat.cat_weight)
    primary = np.minimum(np.searchsorted(cum_cat, rng.random(n) * cum_cat[-1]), len(cum_cat) - 1)
    secondary = rng.integers(0, cfg.n_categories, n)
    activity = rng.pareto(1.3, n) + 0.05
    is_new = rng.random(n) < cfg.new_user_share
    activity[is_new] = 0.0
    if activity.sum() == 0:
        activity[0] = 1.0
        is_new[0] = False
    price_level = np.exp(rng.normal(0, 0.5, n)) * np.exp(3.4)
    day_ms = 24 * MS_PER_HOUR
    signup = cfg.start_ms - rng.integers(1, 720, n) * day_ms
    signup[is_new] = cfg.end_ms
    user_ids = _ids("u", np.arange(n))
    segments = np.array(["bargain", "regular", "premium"], dtype=object)
    segment = segments[np.digitize(price_level, np.exp([3.1, 3.8]))]
    table = pa.table(
        {
            "user_id": user_ids,
            "signup_ts": pa.array(signup, pa.timestamp("ms", tz="UTC")),
            "segment": pa.array(segment, pa.string()),
            "age": pa.array(rng.integers(18, 75, n).astype(np.int16)),
            "gender": pa.nulls(n, pa.string()),
            "occupation": pa.nulls(n, pa.string()),
        }
    )
    population = _Population(primary, secondary, price_level, np.cumsum(activity), user_ids)
    return population, table


def _hour_weights(cfg: SyntheticConfig) -> np.ndarray:
    """Relative session volume of each hour: daily rhythm, weekend lift, slow trend."""
    hours = np.arange(cfg.days * 24)
    start_dow = datetime.fromisoformat(cfg.start).weekday()
    hour_of_day = hours % 24
    dow = (start_dow + hours // 24) % 7
    daily = 0.35 + 0.65 * np.exp(-((hour_of_day - 20) ** 2) / 18) + 0.25 * np.exp(
        -((hour_of_day - 12) ** 2) / 8)
    weekly = np.where(dow >= 5, 1.25, 1.0)
    trend = 1.0 + 0.3 * hours / len(hours)
    w = daily * weekly * trend
    return w / w.sum()


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    raw = total * weights
    counts = np.floor(raw).astype(np.int64)
    short = total - counts.sum()
    if short:
        counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    return counts


def _slices(cfg: SyntheticConfig) -> list[tuple[int, int, int]]:
    """(first hour, end hour, events) per output part: contiguous time, ~events_per_part."""
    per_hour = _largest_remainder(cfg.n_interactions, _hour_weights(cfg))
    slices, first, acc = [], 0, 0
    for h, count in enumerate(per_hour):
        acc += int(count)
        if acc >= cfg.events_per_part or h == len(per_hour) - 1:
            slices.append((first, h + 1, acc))
            first, acc = h + 1, 0
    return [s for s in slices if s[2] > 0]


def _expected_events_per_session(cfg: SyntheticConfig) -> float:
    p = cfg.click_rate
    funnel = 1 + p * (1 + cfg.cart_rate * (1 + cfg.purchase_rate * (1 + 2 * cfg.complement_rate)))
    return cfg.mean_views_per_session * funnel


def _slice_events(
    cfg: SyntheticConfig,
    cat: _Catalogue,
    pop: _Population,
    first_hour: int,
    end_hour: int,
    quota: int,
    part: int,
    rng: np.random.Generator,
) -> pa.Table:
    hour_w = _hour_weights(cfg)[first_hour:end_hour]
    n_sessions = int(np.ceil(1.15 * quota / _expected_events_per_session(cfg))) + 8
    hour = first_hour + np.searchsorted(np.cumsum(hour_w), rng.random(n_sessions) * hour_w.sum())
    hour = np.minimum(hour, end_hour - 1)
    start = cfg.start_ms + hour * MS_PER_HOUR + rng.integers(0, MS_PER_HOUR, n_sessions)
    user = np.minimum(
        np.searchsorted(pop.cum_activity, rng.random(n_sessions) * pop.cum_activity[-1],
                        side="right"),
        len(pop.cum_activity) - 1,
    )
    p_more = 1 - 1 / cfg.mean_views_per_session
    n_views = np.minimum(rng.geometric(1 - p_more, n_sessions), 30)

    # --- views -------------------------------------------------------------------
    sess = np.repeat(np.arange(n_sessions), n_views)
    v_user = user[sess]
    wants_pref = rng.random(len(sess)) < cfg.preferred_category_share
    pref_cat = np.where(rng.random(len(sess)) < 0.7, pop.primary[v_user], pop.secondary[v_user])
    cum_cat = np.cumsum(cat.cat_weight)
    any_cat = np.minimum(np.searchsorted(cum_cat, rng.random(len(sess)) * cum_cat[-1]),
                         len(cum_cat) - 1)
    v_cat = np.where(wants_pref, pref_cat, any_cat)
    v_item = _draw(cat.cum_weight, cat.cat_lo[v_cat], cat.cat_hi[v_cat], rng)
    gaps = rng.exponential(45_000, len(sess)).astype(np.int64)
    first_of_session = np.r_[0, np.cumsum(n_views)[:-1]]
    elapsed = np.cumsum(gaps)
    offsets = elapsed - np.repeat(elapsed[first_of_session] - gaps[first_of_session], n_views)
    v_ts = start[sess] + offsets

    # --- funnel ---------------------------------------------------------------------
    matches = cat.category[v_item] == pop.primary[v_user]
    affordable = cat.price[v_item] <= 2.0 * pop.price_level[v_user]
    p_click = cfg.click_rate * np.where(matches, 1.5, 0.7)
    clicked = rng.random(len(sess)) < p_click
    p_cart = cfg.cart_rate * np.where(affordable, 1.2, 0.4)
    carted = clicked & (rng.random(len(sess)) < p_cart)
    bought = carted & (rng.random(len(sess)) < cfg.purchase_rate)
    with_complement = bought & (rng.random(len(sess)) < cfg.complement_rate)

    def step(mask: np.ndarray, kind: int, delay_ms: tuple[int, int], item: np.ndarray,
             base_ts: np.ndarray) -> tuple[np.ndarray, ...]:
        idx = np.flatnonzero(mask)
        ts = base_ts[idx] + rng.integers(delay_ms[0], delay_ms[1], len(idx))
        return sess[idx], item[idx], ts, np.full(len(idx), kind, np.int8), idx

    views = (sess, v_item, v_ts, np.full(len(sess), VIEW, np.int8))
    c = step(clicked, CLICK, (2_000, 20_000), v_item, v_ts)
    click_ts = np.zeros_like(v_ts)
    click_ts[c[4]] = c[2]
    a = step(carted, CART, (10_000, 90_000), v_item, click_ts)
    cart_ts = np.zeros_like(v_ts)
    cart_ts[a[4]] = a[2]
    p = step(bought, PURCHASE, (30_000, 300_000), v_item, cart_ts)
    buy_ts = np.zeros_like(v_ts)
    buy_ts[p[4]] = p[2]
    comp_item = cat.complement[v_item]
    ca = step(with_complement, CART, (5_000, 60_000), comp_item, buy_ts)
    comp_cart_ts = np.zeros_like(v_ts)
    comp_cart_ts[ca[4]] = ca[2]
    cp = step(with_complement, PURCHASE, (10_000, 120_000), comp_item, comp_cart_ts)

    e_sess, e_item, e_ts, e_type = (
        np.concatenate(col) for col in zip(views, c[:4], a[:4], p[:4], ca[:4], cp[:4],
                                           strict=True)
    )
    # exact quota: keep whole sessions in a random order, cut the last one short
    session_rank = rng.permutation(n_sessions)
    order = np.lexsort((e_ts, session_rank[e_sess]))[:quota]
    order = order[np.argsort(e_ts[order], kind="stable")]
    e_sess, e_item, e_ts, e_type = e_sess[order], e_item[order], e_ts[order], e_type[order]

    n = len(order)
    session_numbers = part * 100_000_000 + e_sess
    event_numbers = part * 100_000_000 + np.arange(n)
    return pa.table(
        {
            "event_id": _ids("e", event_numbers),
            "user_id": pop.user_ids.take(pa.array(user[e_sess])),
            "item_id": cat.item_ids.take(pa.array(e_item)),
            "event_type": pa.array(TYPE_NAMES[e_type], pa.string()),
            "ts": pa.array(e_ts, pa.timestamp("ms", tz="UTC")),
            "session_id": _ids("s", session_numbers),
            "price": cat.price[e_item],
            "rating": pa.nulls(n, pa.int8()),
        }
    )


def generate(
    cfg: SyntheticConfig,
    out: Path,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> dict:
    """Write the data set to ``out``; returns its manifest."""
    streams = np.random.SeedSequence(cfg.seed).spawn(3)
    rng_items, rng_users = np.random.default_rng(streams[0]), np.random.default_rng(streams[1])
    slices = _slices(cfg)
    slice_seeds = streams[2].spawn(len(slices))
    counts: dict[str, int] = dict.fromkeys(TYPE_NAMES.tolist(), 0)
    with atomic_dataset_dir(out, overwrite=overwrite) as tmp:
        catalogue, items = _build_catalogue(cfg, rng_items)
        write_table(items, tmp / ITEMS_FILE, ITEMS_SCHEMA)
        population, users = _build_population(cfg, catalogue, rng_users)
        write_table(users, tmp / USERS_FILE, USERS_SCHEMA)
        del items, users
        for part, ((first, end, quota), seed) in enumerate(zip(slices, slice_seeds, strict=True)):
            table = _slice_events(cfg, catalogue, population, first, end, quota, part,
                                  np.random.default_rng(seed))
            write_table(table, event_part_path(tmp, part), EVENTS_SCHEMA)
            for value in pc.value_counts(table["event_type"]).to_pylist():
                counts[value["values"]] += value["counts"]
            if progress:
                progress(table.num_rows)
        manifest = {
            "name": "synthetic",
            "source": "recsys.datasets.synthetic",
            "config": asdict(cfg),
            "users": cfg.n_users,
            "items": cfg.n_items,
            "events": sum(counts.values()),
            "event_types": counts,
            "parts": len(slices),
            "window": {
                "start": datetime.fromtimestamp(cfg.start_ms / 1000, UTC).isoformat(),
                "end": (datetime.fromtimestamp(cfg.start_ms / 1000, UTC)
                        + timedelta(days=cfg.days)).isoformat(),
            },
        }
        write_manifest(tmp, manifest)
    return manifest
