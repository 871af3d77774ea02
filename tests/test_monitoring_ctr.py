"""CTR and conversion per model version and arm: attribution by request_id, late and
out-of-order clicks, first-window baselines (hand-computed), the alarm condition."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from itertools import count

import pytest
from prometheus_client import generate_latest

from feature_repo.events import ClickstreamEvent
from monitoring import contract as c
from monitoring.ctr import CtrBaseline
from monitoring.monitor import Monitor
from recsys.settings import Settings
from tests.test_monitoring_drift import StaticBaselines

T0 = math.floor(time.time() / 60) * 60 - 7_200  # events must not lie in the future
_ids = count()


def event(kind: str, t: float, request: str | None, item: str, version: str | None = "3",
          arm: str | None = "champion") -> bytes:
    context = {"arm": arm} if arm is not None else None
    return ClickstreamEvent(
        event_id=f"e{next(_ids)}", user_id="u1", item_id=item, event_type=kind,
        ts=datetime.fromtimestamp(t, UTC), request_id=request,
        model_version=version if kind == "impression" else None, context=context,
    ).to_json_bytes()


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_monitor(clock: Clock, baselines: StaticBaselines | None = None, **overrides: object
                 ) -> Monitor:
    values = {"ctr_window_s": 600, "monitor_bucket_s": 60, "ctr_min_impressions": 100,
              "ctr_join_grace_s": 30, **overrides}
    return Monitor(Settings(_env_file=None, **values), baselines or StaticBaselines({}),
                   wall_clock=clock)


def impressions(monitor: Monitor, t: float, requests: range, items: int = 10,
                version: str = "3", arm: str = "champion") -> None:
    for r in requests:
        for i in range(items):
            assert monitor.on_clickstream(event("impression", t, f"q{version}-{r}", f"i{i}",
                                                version, arm)) == "impression"


def test_clicks_are_attributed_by_request_id_and_counted_once() -> None:
    clock = Clock(T0 + 100)
    m = make_monitor(clock)
    impressions(m, T0 + 10, range(20))  # 200 impressions
    impressions(m, T0 + 10, range(5), version="4", arm="challenger")  # 50
    on = m.on_clickstream
    for i in range(10):
        assert on(event("click", T0 + 20, "q3-0" if i < 5 else "q3-1", f"i{i}")) == "click"
    assert on(event("click", T0 + 21, "q3-0", "i0")) == "duplicate"  # same item again
    assert on(event("add_to_cart", T0 + 22, "q3-0", "i1")) == "duplicate"  # already engaged
    assert on(event("purchase", T0 + 23, "q3-2", "i7")) == "conversion"  # click + purchase
    assert on(event("click", T0 + 24, "q4-0", "i3", arm=None)) == "click"
    assert on(event("click", T0 + 25, None, "i3")) == "organic"
    assert on(event("view", T0 + 25, "q3-0", "i3")) == "ignored_event_type"
    snap = m.evaluate()
    assert snap.ctr[("3", "champion")] == pytest.approx(11 / 200)
    assert snap.conversion[("3", "champion")] == pytest.approx(1 / 200)
    assert snap.impressions[("3", "champion")] == 200
    assert snap.ctr[("4", "challenger")] == pytest.approx(1 / 50)
    assert snap.ctr_baseline == {}  # the first window is not over yet


def test_out_of_order_clicks_wait_for_their_impression_then_expire() -> None:
    clock = Clock(T0 + 100)
    m = make_monitor(clock)
    assert m.on_clickstream(event("click", T0 + 50, "q3-0", "i1")) == "pending"
    assert m.on_clickstream(event("click", T0 + 50, "never-served", "i1")) == "pending"
    impressions(m, T0 + 49, range(1))  # the impression of q3-0 arrives after its click
    assert m.evaluate().ctr[("3", "champion")] == pytest.approx(1 / 10)
    clock.t += 31  # grace is 30 s
    m.evaluate()
    text = generate_latest(m.metrics.registry).decode()
    assert f'{c.MONITOR_MALFORMED}{{reason="unattributed_click",source="clickstream"}} 1.0' in text
    assert m.ctr.pending_count == 0


def test_malformed_and_late_events_are_counted() -> None:
    clock = Clock(T0 + 1_000)
    m = make_monitor(clock)
    assert m.on_clickstream(b"{broken") == "invalid_event"
    assert m.on_clickstream(b'{"event_id": "x"}') == "invalid_event"
    assert m.on_clickstream(event("impression", T0 + 990, "q", "i", arm=None)
                            ) == "impression_missing_arm"
    assert m.on_clickstream(event("impression", T0 + 990, None, "i")
                            ) == "impression_missing_request_id"
    assert m.on_clickstream(event("impression", T0 + 990, "q", "i", version=None)
                            ) == "impression_missing_model_version"
    assert m.on_clickstream(event("impression", T0 + 100, "q", "i")) == "late"  # > 600 s old
    text = generate_latest(m.metrics.registry).decode()
    assert f'{c.MONITOR_MALFORMED}{{reason="invalid_event",source="clickstream"}} 2.0' in text
    assert f'{c.MONITOR_MALFORMED}{{reason="late",source="clickstream"}} 1.0' in text
    assert m.evaluate().ctr == {}


def click_some(m: Monitor, t: float, version: str, requests: range, per_request: int) -> None:
    for r in requests:
        for i in range(per_request):
            m.on_clickstream(event("click", t, f"q{version}-{r}", f"i{i}"))


def test_baseline_from_the_first_window_and_the_two_sigma_alarm() -> None:
    clock = Clock(T0 + 30)
    baselines = StaticBaselines({})
    m = make_monitor(clock, baselines)
    impressions(m, T0 + 30, range(100))  # 1000 impressions, 100 clicked
    click_some(m, T0 + 40, "3", range(100), 1)
    assert m.evaluate().ctr_baseline == {}
    clock.t = T0 + 30 + 600  # the version's first window is complete
    assert m.evaluate().ctr == {}  # those impressions have left the sliding window
    # p0 = 100 / 1000; std = sqrt(0.1 * 0.9 / 1000) = 0.0094868
    assert baselines.saved["3"] == CtrBaseline(0.1, pytest.approx(0.0094868, abs=1e-7), 1000)

    # the next window: 1000 impressions, 50 clicks -> 0.05 < 0.1 - 2 * 0.0094868 = 0.0810
    clock.t = T0 + 1_300
    impressions(m, T0 + 1_290, range(100, 200))
    click_some(m, T0 + 1_295, "3", range(100, 150), 1)
    snap = m.evaluate()
    key = ("3", "champion")
    assert snap.impressions[key] == 1000 and snap.ctr[key] == pytest.approx(0.05)
    assert snap.ctr_baseline[key] == pytest.approx(0.1)  # the baseline does not move
    assert snap.ctr_baseline_std[key] == pytest.approx(0.0094868, abs=1e-7)
    assert snap.ctr[key] < snap.ctr_baseline[key] - 2 * snap.ctr_baseline_std[key]


def test_a_window_within_two_sigma_raises_no_alarm() -> None:
    clock = Clock(T0 + 30)
    m = make_monitor(clock, StaticBaselines({}))
    m.ctr.baselines["3"] = CtrBaseline(0.1, 0.0094868, 1000)  # as if read back from MLflow
    impressions(m, T0 + 30, range(100))
    click_some(m, T0 + 40, "3", range(95), 1)  # 0.095 > 0.0810
    snap = m.evaluate()
    key = ("3", "champion")
    assert snap.ctr[key] >= snap.ctr_baseline[key] - 2 * snap.ctr_baseline_std[key]


def test_sparse_first_window_waits_for_enough_impressions() -> None:
    clock = Clock(T0 + 30)
    baselines = StaticBaselines({})
    m = make_monitor(clock, baselines)
    impressions(m, T0 + 30, range(5))  # 50 impressions < 100
    clock.t = T0 + 700
    assert m.evaluate().ctr_baseline == {}
    impressions(m, T0 + 690, range(5, 20))  # 150 in the window now
    click_some(m, T0 + 695, "3", range(5, 20), 2)
    snap = m.evaluate()
    assert snap.ctr_baseline[("3", "champion")] == pytest.approx(30 / 150)
    assert "3" in baselines.saved


def test_a_stored_baseline_is_used_after_a_restart() -> None:
    clock = Clock(T0 + 30)
    baselines = StaticBaselines({})
    baselines.saved["3"] = CtrBaseline(0.2, 0.01, 5000)
    m = make_monitor(clock, baselines)
    impressions(m, T0 + 30, range(10))
    snap = m.evaluate()
    assert snap.ctr_baseline[("3", "champion")] == 0.2
    assert snap.ctr_baseline_std[("3", "champion")] == 0.01
