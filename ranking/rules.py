"""Business rules applied to a scored candidate list before it is served (by the API, and
by the drift baseline of a version, which must describe what the API serves).

In order: best score first; drop duplicates, items the request excludes and items
failing the filters (retrieval already applied them; this is the last line); then the
diversity cap — at most ``ceil(max_share * k)`` items of one category — and, when the
cap leaves fewer than ``k`` items, back-fill (at the end) with the best items it held
back, so the response still has ``k`` items whenever ``k`` eligible candidates exist.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np


def apply_rules(item_index: np.ndarray, scores: np.ndarray, k: int, category_codes: np.ndarray,
                allowed: np.ndarray | None = None, excluded: Collection[int] = (),
                max_share: float = 1.0) -> list[int]:
    """Positions (into ``item_index``) of the items to serve, best first."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    cap = max(1, math.ceil(max_share * k)) if max_share < 1 else k
    seen: set[int] = set()
    per_category: dict[int, int] = {}
    chosen: list[int] = []
    held_back: list[int] = []
    idx = item_index.tolist()
    codes = category_codes[item_index].tolist()
    ok = allowed[item_index].tolist() if allowed is not None else None
    for pos in order.tolist():
        item = idx[pos]
        if item in seen or item in excluded or (ok is not None and not ok[pos]):
            continue
        seen.add(item)
        code = codes[pos]
        if per_category.get(code, 0) >= cap:
            held_back.append(pos)
            continue
        per_category[code] = per_category.get(code, 0) + 1
        chosen.append(pos)
        if len(chosen) == k:
            return chosen
    if len(chosen) < k and held_back:
        chosen.extend(held_back[:k - len(chosen)])  # after the diverse head, best first
    return chosen
