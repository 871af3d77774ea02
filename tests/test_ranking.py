"""Ranking without services: backfill semantics, feature assembly, labels and splits,
LightGBM → ONNX parity, the bundle folder and its refusals, the drift baseline."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_repo.events import EVENT_TYPES
from feature_repo.specs import ACTIVITY_VIEWS, COUNT_COLUMNS
from monitoring.baseline import DriftBaseline
from ranking import onnx_export
from ranking.backfill import (
    activity_frame,
    item_metadata_frame,
    recent_frame,
    user_profile_frame,
)
from ranking.bundle import BundleError, RankerBundle, parse_model_uri, write_bundle
from ranking.dataset import (
    Query,
    RankingSet,
    label_matrix,
    make_queries,
    protocol_split,
    temporal_split,
)
from ranking.features import (
    FEATURE_NAMES,
    ITEM_FEATURE_REFS,
    ONLINE_FEATURE_REFS,
    USER_FEATURE_REFS,
    assemble,
    coarsen,
    full_name,
)
from ranking.model import RankerConfig, fit_ranker
from ranking.train import drift_baseline
from retrieval.candidates import CandidateGenerator
from retrieval.catalogue import load_catalogue
from retrieval.config import ALSConfig, RetrievalConfig
from retrieval.interactions import Interactions, load_interactions
from retrieval.model import RetrievalModel, fit_retrieval
from stream_jobs.reference import activity_at_last_event

HOUR = 3_600_000
COL = {name: k for k, name in enumerate(FEATURE_NAMES)}


def hand_events(rows: list[tuple[int, int, str, int]], n_users: int = 3, n_items: int = 20
                ) -> Interactions:
    u, i, t, ts = zip(*rows, strict=True)
    return Interactions(np.array([f"u{k}" for k in range(n_users)]),
                        np.array([f"i{k}" for k in range(n_items)]),
                        np.array(u, np.int32), np.array(i, np.int32),
                        np.array([EVENT_TYPES.index(x) for x in t], np.int8),
                        np.array(ts, np.int64))


@pytest.fixture(scope="module")
def events(small_dataset: Path) -> Interactions:
    return load_interactions(small_dataset)


@pytest.fixture(scope="module")
def model(small_dataset: Path, events: Interactions) -> RetrievalModel:
    return fit_retrieval(events, load_catalogue(small_dataset),
                         ALSConfig(factors=16, iterations=8), show_progress=False)


# --- backfill ------------------------------------------------------------------------


def test_backfill_matches_the_stream_reference(small_dataset: Path, events: Interactions
                                               ) -> None:
    """At the entity's last event, each window counts what stream_jobs.reference counts."""
    frame = pd.concat(pd.read_parquet(p) for p in sorted((small_dataset / "events").glob("*")))
    for entity, codes, ids in (("user", events.user, events.user_ids),
                               ("item", events.item, events.item_ids)):
        key = str(ids[np.bincount(codes).argmax()])  # the most active one
        expected = activity_at_last_event(frame, entity, key)
        for spec in (v for v in ACTIVITY_VIEWS if v.entity == entity):
            rows = activity_frame(events, spec)
            last = rows[rows[spec.key] == key].sort_values("event_time").iloc[-1]
            assert {c: int(last[c]) for c in COUNT_COLUMNS} == expected[spec.window], spec.name


def test_backfill_windows_include_both_ends_and_ties() -> None:
    spec = next(v for v in ACTIVITY_VIEWS if v.entity == "user" and v.window == "1h")
    ev = hand_events([(0, 1, "view", 0), (0, 2, "click", HOUR), (0, 3, "view", HOUR),
                      (0, 4, "purchase", HOUR + 1), (1, 1, "impression", 5)])
    rows = activity_frame(ev, spec)
    u0 = rows[rows["user_id"] == "u0"].reset_index(drop=True)
    assert len(u0) == 3  # one row per (user, event time): the two at HOUR share one
    at_hour = u0.iloc[1]
    assert (at_hour["views"], at_hour["clicks"]) == (2, 1)  # ts 0 is exactly 1h back: in
    last = u0.iloc[2]
    assert (last["views"], last["clicks"], last["purchases"]) == (1, 1, 1)  # ts 0 fell out
    assert last["ctr"] == 0.0  # no impressions: 0, not a division by zero
    u1 = rows[rows["user_id"] == "u1"].iloc[0]
    assert u1["impressions"] == 1 and u1["ctr"] == 0.0


def test_recent_items_keep_the_last_ten_newest_last() -> None:
    ev = hand_events([(0, k, "view", k * 1000) for k in range(12)] + [(1, 5, "view", 7)])
    rows = recent_frame(ev)
    last = rows[rows["user_id"] == "u0"].iloc[-1]
    assert list(last["last_items"]) == [f"i{k}" for k in range(2, 12)]
    assert last["last_event_ms"] == 11_000
    assert list(rows[rows["user_id"] == "u1"].iloc[0]["last_items"]) == ["i5"]


def test_metadata_rows_are_stamped_no_earlier_than_1995(ml100k_dataset: Path) -> None:
    items = item_metadata_frame(ml100k_dataset)
    raw = pd.read_parquet(ml100k_dataset / "items.parquet").set_index("item_id")
    toy_story = items.set_index("item_id").loc["1"]
    assert toy_story["event_time"] == pd.Timestamp("1995-01-01", tz="UTC")
    assert toy_story["launch_ms"] == int(raw.loc["1", "launch_ts"].timestamp() * 1000)
    assert items["event_time"].min() >= pd.Timestamp("1995-01-01", tz="UTC")
    users = user_profile_frame(ml100k_dataset).set_index("user_id")
    assert users.loc["1", "age"] == 24 and users.loc["1", "gender"] == "M"


# --- features ------------------------------------------------------------------------


def test_feature_refs_are_feast_refs_and_names_unique() -> None:
    assert set(ONLINE_FEATURE_REFS) == set(USER_FEATURE_REFS) | set(ITEM_FEATURE_REFS)
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert full_name("item_activity_7d:views") == "item_activity_7d__views"
    with pytest.raises(ValueError, match="not 'view:feature'"):
        full_name("views")


def _inputs(model: RetrievalModel, user_id: str):
    cands = CandidateGenerator(model, RetrievalConfig(candidate_count=30)).for_user(user_id)
    n = len(cands)
    rng = np.random.default_rng(0)
    user = {full_name(r): None for r in USER_FEATURE_REFS}
    user.update({"user_activity_7d__views": 12, "user_profile__gender": "F",
                 "user_profile__segment": "premium", "user_profile__signup_ms": 0,
                 "user_recent__last_items": [str(i) for i in cands.item_ids[:3]]})
    items = {full_name(r): [None] * n for r in ITEM_FEATURE_REFS}
    views = rng.integers(0, 50, n).astype(float)
    views[::4] = np.nan
    items["item_activity_24h__views"] = [None if np.isnan(v) else int(v) for v in views]
    items["item_metadata__price"] = list(rng.uniform(1, 90, n))
    items["item_metadata__in_stock"] = [True, False] * (n // 2) + [True] * (n % 2)
    return cands, user, items, views


def test_assemble_takes_serving_and_training_shapes_alike(model: RetrievalModel) -> None:
    """The API passes lists with None; training passes float arrays with NaN: same matrix."""
    user_id = str(model.user_ids[np.diff(model.user_items.indptr).argmax()])
    cands, user, items, views = _inputs(model, user_id)
    now = datetime(2026, 1, 20, tzinfo=UTC)
    served = assemble(cands, user_id, user, items, model, now)
    as_arrays = {k: np.array([np.nan if v is None else float(v) for v in vals])
                 for k, vals in items.items()}
    trained = assemble(cands, user_id, {**user, "user_activity_1h__views": np.nan},
                       as_arrays, model, now)
    assert served.dtype == np.float32 and served.shape == (len(cands), len(FEATURE_NAMES))
    np.testing.assert_array_equal(served, trained)
    x = served
    np.testing.assert_array_equal(np.isnan(x[:, COL["item_activity_24h__views"]]),
                                  np.isnan(views))
    assert x[1, COL["item_activity_24h__views"]] == coarsen(views[1:2].astype(np.float32))[0]
    assert (x[:, COL["retrieval_rank"]] == np.arange(len(cands))).all()
    assert (x[:, COL["user_activity_7d__views"]] == 12).all()
    assert (x[:, COL["user_gender"]] == 1).all() and (x[:, COL["user_segment"]] == 2).all()
    assert np.isnan(x[:, COL["user_activity_1h__views"]]).all()
    assert (x[:3, COL["recent_similarity_max"]] > 0.99).all()  # the recent items themselves
    assert np.isfinite(x[:, COL["als_score"]]).all() and (x[:, COL["user_is_new"]] == 0).all()
    assert np.isfinite(x[:, COL["category_affinity"]]).all()
    assert np.isfinite(x[:, COL["price_to_user_mean"]]).all()


def test_assemble_unknown_user_and_bad_input(model: RetrievalModel) -> None:
    cands = CandidateGenerator(model).for_user("nobody", n=10)
    x = assemble(cands, "nobody", {}, {}, model, datetime.now(UTC))
    assert x.shape == (10, len(FEATURE_NAMES))
    assert (x[:, COL["user_is_new"]] == 1).all() and np.isnan(x[:, COL["als_score"]]).all()
    assert (x[:, COL["candidate_source"]] == 2).all()  # popularity for a user with nothing
    with pytest.raises(ValueError, match="item_metadata__price: 3 values for 10"):
        assemble(cands, None, {}, {"item_metadata__price": [1, 2, 3]}, model,
                 datetime.now(UTC))
    with pytest.raises(ValueError, match="item_activity_7d__views: values must be numbers"):
        assemble(cands, None, {}, {"item_activity_7d__views": ["x"] * 10}, model,
                 datetime.now(UTC))


def test_coarsen_keeps_16_significant_bits() -> None:
    x = np.array([[1 - 2 ** -23, 1.0, np.nan, 3.14159265, -7.0, 0.0]], np.float32)
    out = coarsen(x.copy())
    assert out[0, 0] == 1.0 and np.isnan(out[0, 2]) and out[0, 4] == -7.0 and out[0, 5] == 0
    assert abs(out[0, 3] - np.pi) < 1e-4
    mantissa, _ = np.frexp(out[np.isfinite(out)])
    assert np.all(mantissa * 2 ** 16 == np.round(mantissa * 2 ** 16))


def _coarsen_by_formula(x: np.ndarray, bits: int = 16) -> np.ndarray:
    """The definition coarsen's bit arithmetic must equal: frexp, round, ldexp."""
    mantissa, exponent = np.frexp(x)
    scale = np.float32(1 << bits)
    return np.ldexp(np.round(mantissa * scale) / scale, exponent)


def test_coarsen_equals_its_formula_for_every_kind_of_float32() -> None:
    # random bit patterns (normal, subnormal, NaN, ±inf) plus the edges: the largest
    # float rounds up to inf, ties go to even, subnormals keep 16 significant bits
    rng = np.random.default_rng(7)
    patterns = rng.integers(0, 2 ** 32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    edges = np.array([0, 0x80000000, 1, 0x007FFFFF, 0x00400080, 0x00800000, 0x3F800080,
                      0x3F800180, 0x3F8000FF, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000,
                      0x7FC00000, 0x7F800001, 0x3FFFFF80], np.uint32)
    x = np.concatenate([patterns, edges]).view(np.float32)
    with np.errstate(all="ignore"):
        want = _coarsen_by_formula(x.copy())
    got = coarsen(x.copy())
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), x[~same][:5]
    assert np.isnan(got[-2]) and coarsen(np.array([2 ** 24 + 2], np.float32))[0] == 2 ** 24
    with pytest.raises(TypeError, match="float32"):
        coarsen(np.zeros(3))


# --- labels and splits -------------------------------------------------------------------


def test_labels_take_the_highest_grade() -> None:
    ev = hand_events([(0, 1, "view", 1), (0, 1, "purchase", 2), (0, 1, "click", 3),
                      (0, 2, "impression", 4), (1, 3, "add_to_cart", 5)])
    graded = label_matrix(ev, "graded").toarray()
    assert graded[0, 1] == 4 and graded[0, 2] == 0 and graded[1, 3] == 3
    binary = label_matrix(ev, "binary").toarray()
    assert binary[0, 1] == 1 and binary[1, 3] == 1 and binary.sum() == 2
    with pytest.raises(ValueError, match="label scheme"):
        label_matrix(ev, "ratings")


def test_splits_put_labels_after_the_cutoff(events: Interactions) -> None:
    temporal = temporal_split(events, 0.8)
    t = temporal.cutoff_ms[0]
    assert temporal.history.ts_ms.max() < t <= temporal.labels.ts_ms.min()
    protocol = protocol_split(events, 0.75, 42)
    for u in np.unique(protocol.history.user)[:20]:
        assert protocol.cutoff_ms[u] == protocol.history.ts_ms[protocol.history.user == u].max()
    assert len(protocol.history) + len(protocol.labels) == len(events)


# --- LightGBM → ONNX, bundle ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ranking_set(events: Interactions, small_dataset: Path) -> RankingSet:
    """Candidates and labels from a temporal split; features from retrieval only."""
    split = temporal_split(events, 0.7)
    history = fit_retrieval(split.history, load_catalogue(small_dataset),
                            ALSConfig(factors=16, iterations=8), show_progress=False)
    queries = make_queries(history, CandidateGenerator(history), split,
                           label_matrix(split.labels))
    now = datetime.fromtimestamp(split.cutoff_ms[0] / 1000, UTC)
    x = np.vstack([assemble(q.candidates, q.user_id, {}, {}, history, now) for q in queries])
    return RankingSet(x, np.concatenate([q.labels for q in queries]), queries)


@pytest.fixture(scope="module")
def trained(ranking_set: RankingSet):
    train, valid = ranking_set.split_users(0.25, 1)
    return fit_ranker(train, valid, RankerConfig(max_trees=40, min_data_in_leaf=20)), valid


def test_onnx_matches_lightgbm_and_mismatch_is_refused(trained) -> None:
    model, valid = trained
    onnx_bytes = onnx_export.to_onnx(model.booster, len(FEATURE_NAMES), model.best_iteration)
    sess = onnx_export.session(onnx_bytes)
    parity = onnx_export.check_parity(sess, model.booster, valid.x, 1e-5, model.best_iteration)
    assert parity.rows == len(valid.x) and parity.max_abs_diff <= 1e-5
    scores = onnx_export.run(sess, valid.x)
    assert scores.dtype == np.float32 and scores.shape == (len(valid.x),)
    one_tree = onnx_export.session(onnx_export.to_onnx(model.booster, len(FEATURE_NAMES), 1))
    if model.best_iteration > 1:
        with pytest.raises(onnx_export.ExportError, match="export refused"):
            onnx_export.check_parity(one_tree, model.booster, valid.x, 1e-5,
                                     model.best_iteration)


def _write(folder: Path, trained, model: RetrievalModel) -> Path:
    ranker, valid = trained
    onnx_bytes = onnx_export.to_onnx(ranker.booster, len(FEATURE_NAMES), ranker.best_iteration)
    baseline = drift_baseline(valid, ranker.predict(valid.x))
    return write_bundle(folder, onnx_bytes=onnx_bytes, lightgbm_text="tree", parity_x=valid.x[:50],
                        parity_expected=ranker.predict(valid.x[:50]), tolerance=1e-5,
                        max_abs_diff=0.0, baseline=baseline, retrieval=model,
                        metrics={"val_ndcg_at_10": 0.5}, params={}, importance={},
                        meta={"name": "test-ranker"})


def test_bundle_round_trip_and_refusals(tmp_path: Path, trained, model: RetrievalModel
                                        ) -> None:
    folder = _write(tmp_path / "ok", trained, model)
    bundle = RankerBundle.from_folder(folder)
    bundle.smoke_check()
    assert bundle.feature_names == FEATURE_NAMES and bundle.version == "local"
    assert bundle.metrics["val_ndcg_at_10"] == 0.5
    assert np.array_equal(bundle.retrieval.item_ids, model.item_ids)
    assert set(bundle.baseline.features) <= set(FEATURE_NAMES)
    x = trained[1].x[:7]
    np.testing.assert_allclose(bundle.score(x), trained[0].predict(x), atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        bundle.score(x[:, :5])

    def broken(name: str, change) -> Path:
        copy = tmp_path / name
        shutil.copytree(folder, copy)
        change(copy)
        return copy

    missing = broken("missing", lambda f: (f / "ranker.onnx").unlink())
    with pytest.raises(BundleError, match=r"missing ranker\.onnx"):
        RankerBundle.from_folder(missing)
    corrupt = broken("corrupt", lambda f: (f / "ranker.onnx").write_bytes(b"not onnx"))
    with pytest.raises(BundleError, match=r"ranker\.onnx does not load"):
        RankerBundle.from_folder(corrupt)

    def rename_feature(f: Path) -> None:
        info = json.loads((f / "bundle.json").read_text())
        info["feature_names"][0] = "something_else"
        (f / "bundle.json").write_text(json.dumps(info))

    with pytest.raises(BundleError, match="feature list mismatch"):
        RankerBundle.from_folder(broken("features", rename_feature))
    no_retrieval = broken("retrieval", lambda f: (f / "retrieval" / "item_factors.npy").unlink())
    with pytest.raises(BundleError, match="retrieval model"):
        RankerBundle.from_folder(no_retrieval)

    def wrong_scores(f: Path) -> None:
        with np.load(f / "parity.npz") as data:
            np.savez(f / "parity.npz", x=data["x"], expected=data["expected"] + 1.0)

    bad = RankerBundle.from_folder(broken("parity", wrong_scores))
    with pytest.raises(BundleError, match="differ from the stored LightGBM scores"):
        bad.smoke_check()


def test_drift_baseline_describes_the_served_top_k(ranking_set: RankingSet, tmp_path: Path
                                                   ) -> None:
    scores = np.random.default_rng(0).normal(size=len(ranking_set.x))
    baseline = drift_baseline(ranking_set, scores, k=5)
    assert baseline.scores.count == 5 * len(ranking_set.queries)
    assert "item_price" not in baseline.features  # no values without Feast
    assert "item_activity_7d__views" in baseline.meta["features_without_values"]
    assert "retrieval_score" in baseline.features
    baseline.save(tmp_path)
    assert DriftBaseline.load(tmp_path).features.keys() == baseline.features.keys()


def test_model_uris_parse() -> None:
    assert parse_model_uri("models:/recsys-ranker@champion") == ("recsys-ranker", "champion",
                                                                 None)
    assert parse_model_uri("models:/recsys-ranker/3") == ("recsys-ranker", None, "3")
    with pytest.raises(BundleError, match="expected models"):
        parse_model_uri("models:/recsys-ranker")


def test_query_subsets_keep_rows_aligned(ranking_set: RankingSet) -> None:
    keep = np.zeros(len(ranking_set.queries), bool)
    keep[[0, 2]] = True
    sub = ranking_set.subset(keep)
    q: Query = ranking_set.queries[2]
    off = ranking_set.offsets
    assert len(sub.x) == sub.group.sum()
    np.testing.assert_array_equal(sub.x[-len(q.candidates):], ranking_set.x[off[2]:off[3]])
    assert all((q.labels > 0).any() for q in ranking_set.with_positives().queries)


# --- CLI ---------------------------------------------------------------------------------


def test_cli_backfill_writes_the_batch_views(tmp_path: Path, small_dataset: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from recsys.cli import app
    from recsys.settings import get_settings

    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(app, ["ranking", "backfill", str(small_dataset), "--stream"])
        assert result.exit_code == 0, result.output
        assert "item_metadata: 150 rows" in result.output
        written = pd.read_parquet(tmp_path / "offline" / "user_profile" / "backfill-small.parquet")
        assert len(written) == 400 and written["event_time"].dt.tz is not None
        assert (tmp_path / "offline" / "item_activity_7d" / "backfill-small.parquet").exists()
        refused = runner.invoke(app, ["ranking", "train", str(small_dataset), "--no-register",
                                      "--alias", "challenger"])
        assert refused.exit_code == 2 and "--alias needs --register" in refused.output
    finally:
        get_settings.cache_clear()


@pytest.mark.slow
def test_evaluate_prints_the_table_with_the_published_rows(small_dataset: Path) -> None:
    from ranking.evaluate import evaluate
    from recsys.settings import Settings

    report = evaluate(small_dataset, tune_als=False, n_candidates=50,
                      settings=Settings(_env_file=None, als_factors=16),
                      grid=({"labels": "binary", "num_leaves": 7, "min_data_in_leaf": 20},),
                      log=lambda _: None)
    names = [r.name for r in report.rows]
    assert names == ["popularity (training counts)", "ALS tuned (candidate generator, alone)",
                     "ALS tuned + LightGBM ranker (ONNX)"]
    als, ranked = report.rows[1], report.rows[2]
    assert als.candidate_recall == ranked.candidate_recall  # the same candidates, re-ordered
    assert all(0 <= v <= 1 for r in report.rows for v in r.metrics.values())
    table = report.markdown()
    assert "| reference: BiVAE (Microsoft Recommenders) | 0.412 | 0.219 | 0.475 | 0.146 |" in table
    assert "ONNX parity max |diff|" in table and report.parity <= 1e-4
