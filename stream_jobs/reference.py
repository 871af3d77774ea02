"""A plain pandas statement of the stream features, to check the Flink job against.

Every feature is stated as of an entity's most recent event at time t:

- activity: a window of length w counts the entity's events with t - w <= ts <= t
  (Flink's RANGE ... PRECEDING AND CURRENT ROW: both ends included);
- category affinity: per category, the weighted events of the user in the longest
  window; the top ``AFFINITY_TOP`` by weight (ties by name) with their share of the
  total weight;
- popularity: sum of event weights, each halved every ``half_life_ms`` before t;
- category share: the item's popularity / its category's, both decayed to the
  newest time the category had seen when the item's row was last updated (for
  events read in time order: the item's newest event, category events up to it);
- pairs: each view (purchase) of a user pairs with the user's distinct other items
  among the views (purchases) that arrived before it within the kind's window
  (either side in time), nearest first, at most ``PAIR_TOP``; each pair counts for
  both items. For events in time order: the previous ones, newest first.

Input: events with user_id, item_id, event_type, ts (tz-aware) and event_id,
already free of duplicates and sorted by ts (ties keep input order).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pandas as pd

from feature_repo.specs import AFFINITY_TOP, COUNT_COLUMNS, PAIR_KINDS, PAIR_TOP, WINDOWS


def activity_at_last_event(events: pd.DataFrame, entity: str, key: str) -> dict[str, dict]:
    """window -> {count column: value} for ``key``'s most recent event."""
    mine = events[events[f"{entity}_id"] == key]
    last = mine["ts"].max()
    result = {}
    for window, length in WINDOWS.items():
        inside = mine[(mine["ts"] >= last - length) & (mine["ts"] <= last)]
        kinds = inside["event_type"].value_counts()
        result[window] = {column: int(kinds.get(kind, 0))
                          for column, kind in COUNT_COLUMNS.items()}
    return result


def _weights(events: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    return events["event_type"].map(weights).fillna(0.0).to_numpy(dtype=float)


def category_affinity(events: pd.DataFrame, categories: dict[str, str], user: str,
                      weights: dict[str, float]) -> tuple[list[str], list[float]]:
    """(top categories, their shares) for ``user`` at their most recent event."""
    mine = events[events["user_id"] == user]
    last = mine["ts"].max()
    inside = mine[mine["ts"] >= last - max(WINDOWS.values())]
    scores: Counter = Counter()
    for item, w in zip(inside["item_id"], _weights(inside, weights), strict=True):
        if item in categories and w > 0:
            scores[categories[item]] += w
    total = sum(scores.values())
    top = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:AFFINITY_TOP]
    return [c for c, _ in top], [w / total for _, w in top]


def _decayed(ts: pd.Series, w: np.ndarray, at: pd.Timestamp, half_life_ms: float) -> float:
    age_ms = (at - ts).dt.total_seconds().to_numpy() * 1000
    return float(np.sum(w * 0.5 ** (age_ms / half_life_ms))) if half_life_ms > 0 else float(
        w.sum())


def item_popularity(events: pd.DataFrame, item: str, weights: dict[str, float],
                    half_life_ms: float) -> float:
    mine = events[events["item_id"] == item]
    return _decayed(mine["ts"], _weights(mine, weights), mine["ts"].max(), half_life_ms)


def category_shares(arrivals: pd.DataFrame, categories: dict[str, str],
                    weights: dict[str, float], half_life_ms: float) -> dict[str, float]:
    """Each item's category share as the job leaves it, replaying ``arrivals`` (events in
    the order the job read them, retries included): at each arrival the item's popularity
    (its distinct events so far, as of its newest) is set in its category, the category
    total is taken at the newest such time, and the item's share of it recorded."""
    seen: set[str] = set()
    mine: dict[str, pd.DataFrame] = {}
    latest: dict[str, tuple[float, pd.Timestamp]] = {}
    shares: dict[str, float] = {}
    for row in arrivals.itertuples(index=False):
        if row.item_id not in categories:
            continue
        if row.event_id not in seen:
            seen.add(row.event_id)
            own = pd.concat([mine.get(row.item_id), pd.DataFrame([row._asdict()])])
            mine[row.item_id] = own
            newest = own["ts"].max()
            latest[row.item_id] = (_decayed(own["ts"], _weights(own, weights), newest,
                                            half_life_ms), newest)
        peers = [i for i in latest if categories[i] == categories[row.item_id]]
        at = max(latest[i][1] for i in peers)

        def now(item: str, at: pd.Timestamp = at) -> float:
            score, ts = latest[item]
            age_ms = (at - ts).total_seconds() * 1000
            return score * (0.5 ** (age_ms / half_life_ms) if half_life_ms > 0 else 1.0)

        total = sum(now(i) for i in peers)
        shares[row.item_id] = now(row.item_id) / total if total > 0 else 0.0
    return shares


PairCounts = dict[str, dict[str, Counter]]


def pair_counts(events: pd.DataFrame, windows_ms: dict[str, float]) -> PairCounts:
    """pair kind -> item -> Counter(partner: count)."""
    out: PairCounts = {k: defaultdict(Counter) for k in PAIR_KINDS}
    kind_of = {t: k for k, t in PAIR_KINDS.items()}
    history: dict[tuple[str, str], list] = defaultdict(list)
    for user, item, kind_type, ts in zip(events["user_id"], events["item_id"],
                                         events["event_type"], events["ts"], strict=True):
        kind = kind_of.get(kind_type)
        if kind is None:
            continue
        earlier = history[(user, kind)]
        partners: list[str] = []
        for other, other_ts in sorted(earlier, key=lambda e: abs((ts - e[1]).total_seconds())):
            ago_ms = abs((ts - other_ts).total_seconds()) * 1000
            if ago_ms > windows_ms[kind] or len(partners) == PAIR_TOP:
                break
            if other != item and other not in partners:
                partners.append(other)
        for other in partners:
            out[kind][item][other] += 1
            out[kind][other][item] += 1
        earlier.append((item, ts))
    return out


def top_partners(counts: Counter, top: int = PAIR_TOP) -> tuple[list[str], list[int]]:
    best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [p for p, _ in best], [c for _, c in best]


def expected_stream_events(events: pd.DataFrame, categories: dict[str, str],
                           pair_windows_ms: tuple[float, ...], heartbeats: int = 0,
                           ) -> dict[str, int]:
    """What each stream's rows add up to (``n_events``) once everything is processed:
    events per user and per item, events of items with a category, pairs added (twice
    each pair). Heartbeats are views of one item without a category."""
    windows_ms = dict(zip(PAIR_KINDS, pair_windows_ms, strict=True))
    pairs = pair_counts(events, windows_ms)
    return {
        "user": len(events) + heartbeats,
        "item": len(events) + heartbeats,
        "item_category": int(events["item_id"].isin(categories.keys()).sum()),
        "item_pairs": sum(sum(c.values()) for kind in pairs.values() for c in kind.values()),
    }
