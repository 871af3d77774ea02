"""Per-user stratified random split (Microsoft Recommenders' ``python_stratified_split``).

Each user's distinct items are shuffled with a fixed seed and the first
``round(ratio × n)`` go to training, the rest to test, so every user appears on both
sides (users with one item stay in training). All events of a (user, item) pair
follow the pair, so nothing about a test item leaks into training.
"""

from __future__ import annotations

import numpy as np

from retrieval.interactions import Interactions


def stratified_split(events: Interactions, ratio: float = 0.75, seed: int = 42
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test) over the events."""
    if not 0 < ratio < 1:
        raise ValueError("ratio must be in (0, 1)")
    pair = events.user.astype(np.int64) * events.n_items + events.item
    pairs, pair_of_event = np.unique(pair, return_inverse=True)
    user = pairs // events.n_items
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(pairs)), user))  # by user, shuffled within
    sorted_users = user[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    counts = np.diff(np.r_[starts, len(order)])
    position = np.arange(len(order)) - np.repeat(starts, counts)
    n_train = np.maximum(np.round(ratio * counts), 1)
    in_train = np.empty(len(pairs), dtype=bool)
    in_train[order] = position < np.repeat(n_train, counts)
    train = in_train[pair_of_event]
    return train, ~train


def relevant_items(events: Interactions) -> dict[int, set[int]]:
    """user index -> set of item indices the user interacted with."""
    order = np.argsort(events.user, kind="stable")
    users, starts = np.unique(events.user[order], return_index=True)
    groups = np.split(events.item[order], starts[1:])
    return {int(u): set(g.tolist()) for u, g in zip(users, groups, strict=True)}
