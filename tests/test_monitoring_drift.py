"""Drift maths against hand-computed values, sliding windows, and the monitor on
constructed shifts: no shift -> no alarm, shift -> alarm."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from prometheus_client import generate_latest

from api.serving_log import serving_log_json
from monitoring import contract as c
from monitoring.baseline import Distribution, DriftBaseline
from monitoring.contract import ServingLogRecord
from monitoring.ctr import CtrBaseline
from monitoring.drift import SlidingWindow, ks, measure, psi
from monitoring.monitor import Monitor
from recsys.settings import Settings

PSI_ALERT = 0.2  # the threshold of RecsysScoreDrift / RecsysFeatureDrift


# --- PSI and KS, by hand ---------------------------------------------------------------
def test_psi_matches_the_hand_computed_value() -> None:
    # (.15 ln 1.6) + (.05 ln 1.2) + (-.05 ln .8) + (-.15 ln .4)
    # = .0705006 + .0091161 + .0111572 + .1374436
    assert psi([0.25] * 4, [0.4, 0.3, 0.2, 0.1]) == pytest.approx(0.2282175, abs=1e-6)
    assert psi([0.1, 0.2, 0.7], [0.1, 0.2, 0.7]) == 0.0


def test_psi_floors_empty_bins_at_eps() -> None:
    # 0.5 ln(1 / 0.5) + (1e-4 - 0.5) ln(1e-4 / 0.5) = 0.3465736 + 4.2577448
    assert psi([0.5, 0.5], [1.0, 0.0], eps=1e-4) == pytest.approx(4.6043184, abs=1e-6)
    with pytest.raises(ValueError, match="3 expected shares but 2 actual"):
        psi([0.2, 0.3, 0.5], [0.5, 0.5])


def test_ks_statistic_is_the_largest_ecdf_gap() -> None:
    # ECDFs of {1,2,3,4} and {3,4,5,6} differ by 0.5 at x = 2, 3 and 4
    d, p = ks([1, 2, 3, 4], [3, 4, 5, 6])
    assert d == 0.5
    assert 0.05 < p <= 1.0  # four points each: not significant
    d, p = ks(np.arange(100), np.arange(100))
    assert (d, p) == (0.0, 1.0)


def test_measure_on_a_constructed_shift_matches_hand_values() -> None:
    reference = Distribution.of(np.arange(1000.0), bins=10)
    # quantile edges 99.9, 199.8, …, 899.1: ten bins of 100 values each
    assert reference.edges[0] == pytest.approx(99.9) and reference.shares == [0.1] * 10
    same = measure(reference, np.arange(1000.0))
    assert (same.psi, same.ks, same.samples) == (0.0, 0.0, 1000)
    # shift by +500: bins 0-4 empty, bins 5-8 hold 100 each, the last bin 600
    # PSI = 5 (1e-4 - .1) ln(1e-4 / .1) + (.6 - .1) ln 6 = 3.4504237 + 0.8958797
    shifted = measure(reference, np.arange(500.0, 1500.0))
    assert shifted.psi == pytest.approx(4.3463034, abs=1e-6)
    assert shifted.ks == 0.5
    assert shifted.ks_pvalue < 1e-50


def test_missing_values_are_a_bin_of_their_own() -> None:
    nan = float("nan")
    reference = Distribution.of(np.r_[np.arange(1000.0), [nan] * 250], bins=10)
    assert reference.missing == pytest.approx(0.2) and reference.shares == [0.1] * 10
    assert reference.count == 1000
    same = measure(reference, np.r_[np.arange(1000.0), [nan] * 250])
    assert same.psi == pytest.approx(0.0, abs=1e-12) and same.missing == pytest.approx(0.2)
    # a window passes its finite sample and the missing share it counted
    assert measure(reference, np.arange(1000.0), missing=0.2).psi == pytest.approx(0.0)
    # nothing missing live: bins 0.08 -> 0.1 each, the missing bin 0.2 -> 0 (floored)
    # PSI = 10 (.1 - .08) ln(.1 / .08) + (1e-4 - .2) ln(1e-4 / .2) = 0.0446287 + 1.5194204
    assert measure(reference, np.arange(1000.0)).psi == pytest.approx(1.5640491, abs=1e-6)
    # everything missing live: the shift PSI over finite values alone could not see
    # PSI = 10 (1e-4 - .08) ln(1e-4 / .08) + (1 - .2) ln(1 / .2) = 5.3410042 + 1.2875510
    gone = measure(reference, np.full(300, nan))
    assert gone.psi == pytest.approx(6.6285551, abs=1e-6)
    assert gone.missing == 1.0 and np.isnan(gone.ks) and gone.samples == 300
    with pytest.raises(ValueError, match="no live values"):
        measure(reference, np.empty(0))
    with pytest.raises(ValueError, match="not in"):
        measure(reference, np.arange(10.0), missing=1.5)


def test_a_baseline_without_a_missing_share_reads_as_none_missing() -> None:
    raw = DriftBaseline.build({"f": np.r_[np.arange(100.0), [float("nan")] * 100]},
                              scores=np.arange(50.0)).to_dict()
    assert raw["features"]["f"]["missing"] == pytest.approx(0.5)
    del raw["features"]["f"]["missing"]  # a baseline saved before the field existed
    assert DriftBaseline.from_dict(json.loads(json.dumps(raw))).features["f"].missing == 0.0


# --- sliding windows -------------------------------------------------------------------
def test_window_expires_old_buckets_and_refuses_late_values() -> None:
    w = SlidingWindow(window_s=60, bucket_s=10, max_samples=600)
    assert w.add(ts=1000, values=[1.0, 2.0], now=1000)
    assert w.add(ts=1035, values=[3.0], now=1035)
    assert sorted(w.values(now=1040)) == [1.0, 2.0, 3.0]
    assert sorted(w.values(now=1065)) == [3.0]  # bucket 100 (1000-1009) left the window
    assert not w.add(ts=1000, values=[9.0], now=1065)  # late
    assert w.add(ts=1031, values=[float("nan"), 4.0], now=1065)  # NaN counted, not kept
    assert sorted(w.values(now=1065)) == [3.0, 4.0]
    assert (w.seen(now=1065), w.missing(now=1065)) == (2, 1)
    assert w.add(ts=1062, values=[float("nan")] * 3, now=1065)  # a bucket of NaN only
    assert (w.seen(now=1065), w.missing(now=1065)) == (2, 4)
    assert w.missing(now=1200) == 0  # expired with its buckets


def test_window_keeps_a_bounded_uniform_sample() -> None:
    w = SlidingWindow(window_s=10, bucket_s=10, max_samples=1_000, seed=1)
    for start in range(0, 100_000, 5_000):
        w.add(ts=5, values=np.arange(start, start + 5_000, dtype=float), now=5)
    sample = w.values(now=5)
    assert len(sample) == 1_000 and w.seen(now=5) == 100_000
    # a uniform sample of 0..99999: mean near 50000, each half holds about half
    assert abs(sample.mean() - 50_000) < 3_000
    assert 420 < (sample < 50_000).sum() < 580


# --- the monitor on serving-log records -----------------------------------------------
class StaticBaselines:
    """A baseline source without MLflow (the MLflow-backed one is tested in integration)."""

    def __init__(self, drift: dict[str, DriftBaseline]):
        self._drift = drift
        self.saved: dict[str, CtrBaseline] = {}

    def drift(self, version: str) -> DriftBaseline | None:
        return self._drift.get(version)

    def ctr(self, version: str) -> CtrBaseline | None:
        return self.saved.get(version)

    def save_ctr(self, version: str, baseline: CtrBaseline) -> None:
        self.saved[version] = baseline


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()


def settings(**overrides: object) -> Settings:
    values = {"drift_window_s": 600, "monitor_bucket_s": 60, "drift_min_samples": 200, **overrides}
    return Settings(_env_file=None, **values)


def training_baseline() -> DriftBaseline:
    rng = np.random.default_rng(0)
    return DriftBaseline.build({"item_ctr": rng.beta(2, 20, 20_000),
                                "user_clicks_1h": rng.poisson(3, 20_000).astype(float)},
                               scores=rng.normal(0, 1, 20_000))


def serve(monitor: Monitor, rng: np.random.Generator, n: int, score_shift: float = 0.0,
          version: str = "7", arm: str = "champion", ts: float = NOW - 30,
          missing: str | None = None) -> None:
    """``n`` responses of 10 items; the feature named ``missing`` is NaN in all of them."""
    for i in range(n):
        k = 10
        features = {"item_ctr": rng.beta(2, 20, k).tolist(),
                    "user_clicks_1h": rng.poisson(3, k).astype(float).tolist()}
        if missing:
            features[missing] = [float("nan")] * k
        record = ServingLogRecord(
            request_id=f"r{i}", ts=datetime.fromtimestamp(ts, UTC), user_id=f"u{i}", arm=arm,
            model_version=version, item_ids=[f"i{j}" for j in range(k)],
            scores=(rng.normal(0, 1, k) + score_shift).tolist(), features=features)
        assert monitor.on_serving_log(serving_log_json(record)) == "ranked"


def test_no_shift_no_alarm_and_shift_alarm() -> None:
    baselines = StaticBaselines({"7": training_baseline()})
    quiet = Monitor(settings(), baselines, wall_clock=lambda: NOW)
    serve(quiet, np.random.default_rng(1), 100)
    snap = quiet.evaluate()
    assert snap.score_psi[("7", "champion")] < 0.05
    assert all(v < 0.05 for v in snap.feature_psi.values())
    assert snap.score_ks_pvalue[("7", "champion")] > 0.001
    assert max(snap.score_psi.values()) < PSI_ALERT

    drifted = Monitor(settings(), baselines, wall_clock=lambda: NOW)
    serve(drifted, np.random.default_rng(1), 100, score_shift=1.0)
    snap = drifted.evaluate()
    assert snap.score_psi[("7", "champion")] > PSI_ALERT
    assert snap.score_ks[("7", "champion")] > 0.3
    assert all(v < 0.05 for v in snap.feature_psi.values())  # only the scores moved
    text = generate_latest(drifted.metrics.registry).decode()
    assert f'{c.MONITOR_SCORE_PSI}{{arm="champion",model_version="7"}}' in text
    assert f'{c.MONITOR_FEATURE_KS}{{feature="item_ctr",model_version="7"}}' in text
    assert f'{c.MONITOR_BASELINE_LOADED}{{model_version="7"}} 1.0' in text


def test_a_feature_missing_at_serving_is_feature_drift() -> None:
    monitor = Monitor(settings(), StaticBaselines({"7": training_baseline()}),
                      wall_clock=lambda: NOW)
    serve(monitor, np.random.default_rng(1), 100, missing="item_ctr")
    snap = monitor.evaluate()
    assert snap.feature_psi[("7", "item_ctr")] > PSI_ALERT
    assert snap.feature_missing[("7", "item_ctr")] == 1.0
    assert snap.feature_psi[("7", "user_clicks_1h")] < 0.05
    assert snap.feature_missing[("7", "user_clicks_1h")] == 0.0
    text = generate_latest(monitor.metrics.registry).decode()
    assert f'{c.MONITOR_FEATURE_MISSING}{{feature="item_ctr",model_version="7"}} 1.0' in text


def test_too_few_samples_or_no_baseline_publish_no_drift() -> None:
    baselines = StaticBaselines({"7": training_baseline()})
    monitor = Monitor(settings(drift_min_samples=2_000), baselines, wall_clock=lambda: NOW)
    serve(monitor, np.random.default_rng(1), 100, score_shift=3.0)  # 1000 values < 2000
    assert monitor.evaluate().score_psi == {}
    other = Monitor(settings(), baselines, wall_clock=lambda: NOW)
    serve(other, np.random.default_rng(1), 100, version="8")
    snap = other.evaluate()
    assert snap.score_psi == {} and snap.baseline_loaded == {("8",): 0.0}


def test_drift_leaves_the_window_with_time() -> None:
    clock = [NOW]
    monitor = Monitor(settings(), StaticBaselines({"7": training_baseline()}),
                      wall_clock=lambda: clock[0])
    serve(monitor, np.random.default_rng(1), 100, score_shift=1.0)
    assert monitor.evaluate().score_psi
    clock[0] = NOW + 700  # past the 600 s window
    assert monitor.evaluate().score_psi == {}
    assert monitor.score_windows == {}


def test_bad_serving_log_records_are_counted_not_raised() -> None:
    monitor = Monitor(settings(), StaticBaselines({}), wall_clock=lambda: NOW)
    good = {"request_id": "r", "ts": "2026-11-23T11:59:00+00:00", "user_id": "u",
            "arm": "champion", "model_version": "7", "item_ids": ["a", "b"],
            "scores": [0.1, 0.2]}
    cases = {
        b"not json": "invalid_record",
        b"\xff\xfe": "invalid_record",
        json.dumps({**good, "scores": [0.1]}).encode(): "length_mismatch",
        json.dumps({**good, "features": {"f": [1.0]}}).encode(): "length_mismatch",
        json.dumps({**good, "extra": 1}).encode(): "invalid_record",
        json.dumps({**good, "ts": "2026-11-23T10:00:00+00:00"}).encode(): "late",
        json.dumps({**good, "ts": "2026-11-23T13:00:00+00:00"}).encode(): "future",
        json.dumps({**good, "cold_start": True}).encode(): "unranked",
        json.dumps(good).encode(): "ranked",
    }
    for raw, outcome in cases.items():
        assert monitor.on_serving_log(raw) == outcome, raw
    text = generate_latest(monitor.metrics.registry).decode()
    assert (f'{c.MONITOR_MALFORMED}{{reason="invalid_record",source="serving_log"}} 3.0'
            in text)
    assert f'{c.MONITOR_MALFORMED}{{reason="length_mismatch",source="serving_log"}} 2.0' in text
    assert f'{c.MONITOR_RECORDS}{{outcome="ranked",source="serving_log"}} 1.0' in text
    monitor.evaluate()  # windows with a handful of values and no baseline: no error


def test_event_clock_follows_the_newest_record() -> None:
    old = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    monitor = Monitor(settings(monitor_clock="event"), StaticBaselines(
        {"7": training_baseline()}), wall_clock=lambda: NOW)
    serve(monitor, np.random.default_rng(2), 50, ts=old)
    assert monitor.now() == old
    assert monitor.evaluate().score_psi[("7", "champion")] < PSI_ALERT


def test_service_survives_a_failing_record_and_an_absent_broker() -> None:
    import threading
    import time

    from monitoring.service import MonitorService
    from recsys.stack import free_port

    service = MonitorService(settings(broker_port=free_port(), monitor_port=free_port()),
                             StaticBaselines({}))

    def boom(_: bytes) -> str:
        raise RuntimeError("bug")

    service._handle(boom, b"{}", serving_log=True)
    text = generate_latest(service.metrics.registry).decode()
    assert f'{c.MONITOR_MALFORMED}{{reason="internal_error",source="serving_log"}} 1.0' in text
    port = service.start_http()
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    time.sleep(1.0)  # no broker on that port: the service retries and keeps serving /metrics
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert c.MONITOR_MALFORMED in resp.read().decode()
    started = time.monotonic()
    service.stop()
    thread.join(timeout=30)
    service.close()
    assert not thread.is_alive() and time.monotonic() - started < 5
