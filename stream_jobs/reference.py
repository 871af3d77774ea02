"""A plain pandas statement of the activity windows, to check the Flink job against.

At an entity's event at time t, a window of length w counts that entity's events
with t - w <= ts <= t (Flink's RANGE ... PRECEDING AND CURRENT ROW: both ends
included).
"""

from __future__ import annotations

import pandas as pd

from feature_repo.specs import COUNT_COLUMNS, WINDOWS


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
