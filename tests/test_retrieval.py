"""Retrieval: ALS, candidates, cold start, content vectors, similar items, FBT, fold-in,
artifacts, MLflow logging and the evaluation metrics, on small real data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from recsys.datasets.synthetic import SyntheticConfig, generate
from recsys.settings import Settings
from retrieval.artifacts import ArtifactError, load_model, save_model
from retrieval.candidates import CandidateGenerator, Filters
from retrieval.catalogue import load_catalogue
from retrieval.config import ALSConfig, RetrievalConfig
from retrieval.evaluate import evaluate
from retrieval.fbt import FrequentlyBoughtTogether
from retrieval.index import ExactIndex, HNSWIndex
from retrieval.interactions import Interactions, load_interactions
from retrieval.metrics import mean_metrics, user_metrics
from retrieval.model import RetrievalModel, fit_retrieval
from retrieval.similar import SimilarItems
from retrieval.split import relevant_items, stratified_split

TYPES = {"view": 1, "click": 2, "add_to_cart": 3, "purchase": 4}  # codes in EVENT_TYPES
CONFIG = SyntheticConfig(n_users=800, n_items=300, n_interactions=20_000, n_categories=6,
                         days=14, new_item_share=0.05, new_user_share=0.05)
ALS = ALSConfig(factors=16, iterations=10, half_life_days=7.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("retrieval") / "synthetic"
    generate(CONFIG, out)
    return out


@pytest.fixture(scope="module")
def events(dataset: Path) -> Interactions:
    return load_interactions(dataset, with_sessions=True)


@pytest.fixture(scope="module")
def model(dataset: Path, events: Interactions) -> RetrievalModel:
    return fit_retrieval(events, load_catalogue(dataset), ALS, show_progress=False)


def hand_events(rows: list[tuple[int, int, str, int, int]], n_users: int, n_items: int
                ) -> Interactions:
    """Interactions from (user, item, event_type, ts_ms, session) rows."""
    u, i, t, ts, s = zip(*rows, strict=True)
    from feature_repo.events import EVENT_TYPES

    return Interactions(
        np.array([f"u{k}" for k in range(n_users)]), np.array([f"i{k}" for k in range(n_items)]),
        np.array(u, np.int32), np.array(i, np.int32),
        np.array([EVENT_TYPES.index(x) for x in t], np.int8), np.array(ts, np.int64),
        np.array(s, np.int64))


def category_of(model: RetrievalModel, items: np.ndarray) -> np.ndarray:
    return model.catalogue.items["category"].to_numpy()[items]


# --- metrics ---------------------------------------------------------------------------

def test_metrics_match_a_hand_computed_example() -> None:
    # relevant {2, 4, 9}; ranked 1,2,3,4 -> hits at ranks 2 and 4
    m = user_metrics([1, 2, 3, 4], {2, 4, 9}, k=4)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg"] == pytest.approx(dcg / idcg)
    assert m["map"] == pytest.approx((1 / 2 + 2 / 4) / 3)  # divides by |R| = 3
    perfect = user_metrics([7, 8], {7, 8}, k=2)
    assert perfect == pytest.approx({"precision": 1, "recall": 1, "ndcg": 1, "map": 1})
    # users without a hit count as 0; users without relevant items are left out
    mean = mean_metrics({0: [1, 2, 3, 4], 1: [5, 6, 7, 8], 2: [1]}, {0: {2, 4, 9}, 1: {1},
                                                                    2: set()}, k=4)
    assert mean["precision"] == pytest.approx(0.25)
    assert mean["map"] == pytest.approx(1 / 6)


def test_stratified_split_keeps_every_user_on_both_sides(events: Interactions) -> None:
    train, test = stratified_split(events, 0.75, seed=7)
    again, _ = stratified_split(events, 0.75, seed=7)
    assert (train == again).all() and not (train & test).any()
    pairs = set(zip(events.user[train], events.item[train], strict=True))
    assert not pairs & set(zip(events.user[test], events.item[test], strict=True))
    tr, te = relevant_items(events.subset(train)), relevant_items(events.subset(test))
    many = [u for u in tr if len(tr[u]) + len(te.get(u, ())) >= 8]
    assert many and all(u in te for u in many)
    share = np.mean([len(tr[u]) / (len(tr[u]) + len(te[u])) for u in many])
    assert 0.7 < share < 0.8


# --- weights -----------------------------------------------------------------------------

def test_event_type_weights_and_time_decay() -> None:
    day = 86_400_000
    ev = hand_events([(0, 0, "view", 10 * day, 0), (0, 1, "purchase", 10 * day, 0),
                      (0, 2, "purchase", 3 * day, 0), (0, 0, "click", 10 * day, 0)], 1, 3)
    weights = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}
    m = ev.matrix(weights).toarray()[0]
    assert m.tolist() == [3.0, 8.0, 8.0]  # view + click summed
    decayed = ev.matrix(weights, half_life_days=7.0).toarray()[0]
    assert decayed[1] == pytest.approx(8.0) and decayed[2] == pytest.approx(4.0)


# --- cold start ----------------------------------------------------------------------------

def test_cold_start_user_gets_category_aware_popular_items(model: RetrievalModel) -> None:
    gen = CandidateGenerator(model, RetrievalConfig(exclude="seen"))
    anonymous = gen.for_user("nobody", n=10)
    assert anonymous.source == "popularity"
    assert anonymous.item_index[0] == int(np.argmax(model.popularity.scores))
    category = model.catalogue.items["category"].value_counts().index[0]
    scoped = gen.for_user("nobody", n=10, categories=[category])
    assert (category_of(model, scoped.item_index) == category).all()
    in_cat = np.flatnonzero(model.catalogue.items["category"].to_numpy() == category)
    expected = in_cat[np.argsort(-model.popularity.scores[in_cat], kind="stable")][:10]
    assert set(scoped.item_index) == set(expected)
    # a new user with two events in one category: a blend leaning to that category
    recent = [(model.item_ids[i], "click") for i in expected[:2]]
    few = gen.for_user("newcomer", n=10, recent=recent)
    assert few.source == "blend"
    share = (category_of(model, few.item_index) == category).mean()
    assert share >= 0.6
    assert share > (category_of(model, anonymous.item_index) == category).mean() + 0.2
    assert not set(few.item_index) & set(expected[:2])  # seen items excluded


def test_new_item_is_retrievable_via_its_content_vector(model: RetrievalModel) -> None:
    cold = np.flatnonzero(model.item_cold)
    assert len(cold) >= 3 and np.all(np.abs(model.als.item_factors[cold]).sum(axis=1) > 0)
    codes = model.catalogue.category_codes
    unit = model.als.item_factors / np.linalg.norm(model.als.item_factors, axis=1,
                                                   keepdims=True)
    gen = CandidateGenerator(model, RetrievalConfig(exclude="seen"))
    rows = model.user_items
    share = np.asarray(rows.sum(axis=1)).ravel()
    hit_rates, other_rates = [], []
    for c in cold[:4]:
        nearest = np.argsort(-(unit @ unit[c]))[1:11]
        assert (codes[nearest] == codes[c]).mean() >= 0.8  # lands among its category
        in_cat = np.asarray(rows[:, codes == codes[c]].sum(axis=1)).ravel() / np.maximum(
            share, 1e-9)
        fans = np.flatnonzero((in_cat > 0.8) & (np.diff(rows.indptr) >= 5))[:15]
        others = np.flatnonzero((in_cat < 0.1) & (np.diff(rows.indptr) >= 5))[:15]
        hit_rates.append(np.mean([c in gen.for_user(model.user_ids[u], n=30).item_index
                                  for u in fans]))
        other_rates.append(np.mean([c in gen.for_user(model.user_ids[u], n=30).item_index
                                    for u in others]))
    assert np.mean(hit_rates) >= 0.3
    assert np.mean(hit_rates) > np.mean(other_rates) + 0.25


# --- similar items and FBT -------------------------------------------------------------------

def test_similar_items_on_a_constructed_example() -> None:
    # items 0+1 go together, 2+3 go together, 4 and 5 are seen alone
    rows, session = [], 0
    for user in range(60):
        pair = (0, 1) if user < 30 else (2, 3)
        for item in pair:
            rows.append((user, item, "view", 1_000 * user, session))
        session += 1
        rows.append((user, 4 + user % 2, "view", 1_000 * user + 500, session))
        session += 1
    ev = hand_events(rows, 60, 6)
    als = fit_retrieval(ev, _catalogue(6), ALSConfig(factors=4, iterations=15,
                                                       half_life_days=0.0),
                        show_progress=False).als
    sim = SimilarItems(als.item_factors, ev, als_weight=0.5)
    assert sim.similar(0, 1)[0][0] == 1 and sim.similar(3, 1)[0][0] == 2
    idx, scores = sim.similar(1, 5)
    assert 1 not in idx and list(scores) == sorted(scores, reverse=True)
    only_co = SimilarItems(als.item_factors, ev, als_weight=0.0)
    assert only_co.scores(0)[1] == pytest.approx(1.0)  # always together: cosine 1
    assert only_co.scores(0)[2] == 0.0


def test_frequently_bought_together_respects_minimum_support() -> None:
    rows, session = [], 0
    for partner, times in ((1, 3), (2, 2), (3, 1)):  # A=0 with B x3, C x2, D x1
        for _ in range(times):
            rows += [(session, 0, "purchase", 0, session), (session, partner, "purchase", 1,
                                                             session)]
            session += 1
    rows += [(session, 1, "purchase", 0, session), (session, 2, "view", 0, session)]
    for _ in range(5):  # item 4 is bought alone; views never count
        session += 1
        rows += [(session, 4, "purchase", 0, session), (session, 0, "view", 1, session)]
    ev = hand_events(rows, session + 1, 5)
    fbt = FrequentlyBoughtTogether.fit(ev, min_support=3)
    assert [p.item for p in fbt.for_item(0)] == [1]
    fbt.min_support = 2
    pairs = fbt.for_item(0)
    assert [p.item for p in pairs] == [1, 2]
    n_baskets = 12
    assert fbt.n_baskets == n_baskets
    assert pairs[0].support == 3 and pairs[0].confidence == pytest.approx(3 / 6)
    assert pairs[0].lift == pytest.approx((3 / 6) / (4 / n_baskets))
    assert pairs[1].lift == pytest.approx((2 / 6) / (2 / n_baskets))
    assert fbt.for_item(4) == []  # never bought with anything


def test_fbt_without_sessions_groups_a_users_purchases_within_the_window() -> None:
    hour = 3_600_000
    rows = [(0, 0, "purchase", 0, -1), (0, 1, "purchase", 2 * hour, -1),
            (0, 2, "purchase", 50 * hour, -1), (1, 0, "purchase", 0, -1),
            (1, 1, "purchase", hour, -1)]
    fbt = FrequentlyBoughtTogether.fit(hand_events(rows, 2, 3), window_hours=24,
                                       min_support=2)
    assert fbt.n_baskets == 3
    assert [p.item for p in fbt.for_item(0)] == [1]


# --- candidates --------------------------------------------------------------------------------

@pytest.mark.parametrize("index", ["exact", "hnsw"])
def test_filters_hold(model: RetrievalModel, index: str) -> None:
    gen = CandidateGenerator(model, RetrievalConfig(index=index, hnsw_m=8))
    user = model.user_ids[int(np.argmax(np.diff(model.user_items.indptr)))]
    category = model.catalogue.items["category"].value_counts().index[0]
    prices = model.catalogue.price
    lo, hi = np.nanquantile(prices, [0.2, 0.8])
    for filters in (Filters(categories=(category,)), Filters(min_price=lo, max_price=hi),
                    Filters(in_stock=True),
                    Filters(categories=(category,), max_price=hi, in_stock=True)):
        got = gen.for_user(user, n=40, filters=filters)
        allowed = model.catalogue.mask(list(filters.categories), filters.min_price,
                                       filters.max_price, filters.in_stock)
        assert len(got) == min(40, int(allowed.sum()))
        items = model.catalogue.items.iloc[got.item_index]
        if filters.categories:
            assert (items["category"] == category).all()
        if filters.min_price is not None:
            assert (items["price"] >= lo).all()
        if filters.max_price is not None:
            assert (items["price"] <= hi).all()
        if filters.in_stock:
            assert items["in_stock"].all()
    assert not model.catalogue.in_stock.all()  # the in-stock filter had something to do


def test_seen_or_purchased_items_are_excluded(model: RetrievalModel) -> None:
    counts = np.diff(model.user_items.indptr)
    bought = np.diff(model.purchased.indptr)
    user = int(np.flatnonzero((counts >= 10) & (bought >= 1))[0])
    seen = set(model.user_items.getrow(user).indices)
    purchased = set(model.purchased.getrow(user).indices)
    n = len(model.item_ids)
    every = CandidateGenerator(model, RetrievalConfig(exclude="none")).for_user(
        model.user_ids[user], n=n)
    assert seen <= set(every.item_index)
    no_seen = CandidateGenerator(model, RetrievalConfig(exclude="seen")).for_user(
        model.user_ids[user], n=n)
    assert not seen & set(no_seen.item_index) and len(no_seen) == n - len(seen)
    no_bought = CandidateGenerator(model, RetrievalConfig(exclude="purchased")).for_user(
        model.user_ids[user], n=n)
    assert not purchased & set(no_bought.item_index)
    assert (seen - purchased) & set(no_bought.item_index)


def test_fold_in_moves_recommendations_towards_the_new_items(model: RetrievalModel) -> None:
    gen = CandidateGenerator(model, RetrievalConfig(exclude="seen"))
    codes = model.catalogue.category_codes
    counts = np.diff(model.user_items.indptr)
    n_categories = len(model.catalogue.categories)
    user = next(int(u) for u in np.flatnonzero(counts >= 8)
                if len(set(codes[model.user_items.getrow(u).indices])) <= n_categories - 2)
    history = model.user_items.getrow(user)
    # the closed-form fold-in of the user's own history reproduces the trained vector
    folded = model.als.fold_in(history)[0]
    trained = model.als.user_factors[user]
    cosine = folded @ trained / np.linalg.norm(folded) / np.linalg.norm(trained)
    assert cosine > 0.95
    # new purchases in a category the user never touched pull candidates towards it
    touched = set(codes[history.indices])
    target = next(c for c in np.argsort(-np.bincount(codes)) if c not in touched)
    in_target = np.flatnonzero((codes == target) & ~model.item_cold)
    new_items = in_target[np.argsort(-model.popularity.scores[in_target])][:6]
    before = gen.for_user(model.user_ids[user], n=20)
    after = gen.for_user(model.user_ids[user], n=20,
                         recent=[(model.item_ids[i], "purchase") for i in new_items])
    share_before = (codes[before.item_index] == target).mean()
    share_after = (codes[after.item_index] == target).mean()
    assert share_after >= share_before + 0.3
    assert not set(new_items) & set(after.item_index)


def test_exact_index_scan_equals_brute_force_with_and_without_filters() -> None:
    """With and without a mask the scan returns the true top-n by inner product, without
    excluded items, best first; n beyond what is left is cut."""
    rng = np.random.default_rng(3)
    factors = rng.standard_normal((5_000, 16)).astype(np.float32)
    index = ExactIndex(factors)
    allowed = rng.random(5_000) < 0.5
    for _ in range(20):
        q = rng.standard_normal(16).astype(np.float32)
        exclude = rng.choice(5_000, 40, replace=True)  # duplicates, as a union may have
        truth = factors @ q
        truth[exclude] = -np.inf
        for mask in (None, allowed):
            masked = truth if mask is None else np.where(mask, truth, -np.inf)
            expected = np.argsort(-masked, kind="stable")[:100]
            idx, scores = index.search(q, 100, mask, exclude)
            assert idx.dtype == np.int64 and idx.tolist() == expected.tolist()
            np.testing.assert_allclose(scores, masked[expected], rtol=1e-5, atol=1e-5)
    idx, _ = index.search(q, 6_000, None, np.arange(4_990))
    assert sorted(idx.tolist()) == list(range(4_990, 5_000))


@pytest.mark.parametrize("exclude", ["seen", "purchased", "none"])
def test_for_users_gives_what_for_user_gives_each_user(model: RetrievalModel,
                                                       exclude: str) -> None:
    """The batch path (one product per chunk) answers like one call per user, for users the
    ALS path serves and for those it does not (blend, popularity, unknown); an index
    without ``search_many`` (HNSW) takes the per-user path."""
    counts = np.diff(model.user_items.indptr)
    config = RetrievalConfig(exclude=exclude, candidate_count=30)
    active = model.user_ids[counts >= config.cold_start_min_events][:70].tolist()
    few = model.user_ids[(counts > 0) & (counts < config.cold_start_min_events)][:3].tolist()
    users = [str(u) for u in active[:40] + few + active[40:]] + ["nobody"]
    exact = CandidateGenerator(model, config)
    batched = exact.for_users(users, 30)
    assert len(batched) == len(users)
    for user, got in zip(users, batched, strict=True):
        one = exact.for_user(user, 30)
        assert got.source == one.source
        assert got.item_index.tolist() == one.item_index.tolist(), user
        np.testing.assert_allclose(got.scores, one.scores, rtol=1e-5, atol=1e-6)
        assert got.item_ids.tolist() == model.item_ids[got.item_index].tolist()
    assert {c.source for c in batched} == {"als", "blend", "popularity"}
    hnsw = CandidateGenerator(model, config, index=HNSWIndex(model.als.item_factors, m=16))
    assert [c.item_index.tolist() for c in hnsw.for_users(users[:5], 30)] == [
        hnsw.for_user(u, 30).item_index.tolist() for u in users[:5]]


def test_approximate_index_recall_against_exact(model: RetrievalModel) -> None:
    factors = model.als.item_factors
    exact, approx = ExactIndex(factors), HNSWIndex(factors, m=16, ef_search=64)
    rng = np.random.default_rng(0)
    recalls = []
    active = np.flatnonzero(np.diff(model.user_items.indptr) > 0)
    for u in rng.choice(active, 50, replace=False):
        q = model.als.user_factors[u]
        e, _ = exact.search(q, 50)
        a, scores = approx.search(q, 50)
        assert list(scores) == sorted(scores, reverse=True)
        recalls.append(len(set(e) & set(a)) / 50)
    assert np.mean(recalls) >= 0.95


# --- artifacts, MLflow, evaluation ------------------------------------------------------------

def test_artifacts_round_trip(model: RetrievalModel, tmp_path: Path) -> None:
    folder = save_model(model, tmp_path / "als")
    loaded = load_model(folder)
    np.testing.assert_array_equal(loaded.als.item_factors, model.als.item_factors)
    np.testing.assert_array_equal(loaded.als.user_factors, model.als.user_factors)
    assert loaded.user_ids.tolist() == model.user_ids.tolist()
    assert loaded.als.config == model.als.config
    assert (loaded.user_items != model.user_items).nnz == 0
    user = model.user_ids[5]
    assert (CandidateGenerator(loaded).for_user(user, n=25).item_ids.tolist()
            == CandidateGenerator(model).for_user(user, n=25).item_ids.tolist())
    (folder / "item_ids.npy").unlink()
    with pytest.raises(ArtifactError, match=r"item_ids\.npy"):
        load_model(folder)
    save_model(model, folder)
    np.save(folder / "item_factors.npy", model.als.item_factors[:-1])
    with pytest.raises(ArtifactError, match="item_factors rows"):
        load_model(folder)


@pytest.mark.integration
def test_training_run_is_logged_to_mlflow(dataset: Path, stack_settings: Settings,
                                          tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from retrieval.train import train

    settings = stack_settings.model_copy(update={"als_factors": 8, "als_iterations": 3,
                                                 "retrieval_experiment": "test-retrieval"})
    result = train(dataset, tmp_path / "out", settings=settings, show_progress=False,
                   track_loss=True)
    client = MlflowClient(tracking_uri=stack_settings.mlflow_tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["factors"] == "8" and run.data.params["weight_purchase"] == "8.0"
    assert run.data.metrics["nnz"] == result.model.metrics["nnz"] > 0
    assert len(client.get_metric_history(result.run_id, "train_loss")) == 3
    logged = {a.path for a in client.list_artifacts(result.run_id, "retrieval")}
    assert {"retrieval/item_factors.npy", "retrieval/config.json",
            "retrieval/metrics.json"} <= logged
    assert load_model(result.out).als.factors == 8


def test_evaluation_table_on_small_data(dataset: Path) -> None:
    settings = Settings(_env_file=None, als_factors=16, als_iterations=8)
    report = evaluate(dataset, tune_als=False, settings=settings, log=lambda _: None)
    table = report.markdown()
    assert table.count("\n| ") >= 5 and "nDCG@10" in table
    pop, untuned = report.rows[0].metrics, report.rows[1].metrics
    assert 0 < pop["ndcg"] <= 1 and 0 < untuned["precision"] <= 1
    assert report.rows[2].candidate_recall >= report.rows[2].metrics["recall"]


def _catalogue(n: int):  # a minimal catalogue for hand-made events
    import pandas as pd

    from retrieval.catalogue import Catalogue

    return Catalogue(pd.DataFrame({
        "item_id": [f"i{k}" for k in range(n)], "title": [f"item {k}" for k in range(n)],
        "category": ["a", "b"] * (n // 2) + ["a"] * (n % 2), "genres": None, "brand": None,
        "price": np.linspace(1, 10, n), "launch_ts": pd.NaT, "in_stock": True}))


def test_top_k_on_a_catalogue_smaller_than_k_ranks_every_item() -> None:
    import numpy as np
    import scipy.sparse as sp

    from retrieval.evaluate import top_k

    scores = np.array([[0.1, 0.9, 0.5]], dtype=np.float32)
    exclude = sp.csr_matrix(np.array([[0, 0, 1]]))
    ranked = top_k(scores, exclude, np.array([0]), k=200)[0]
    assert ranked[:2].tolist() == [1, 0]  # item 2 excluded, sorted last at -inf


def test_retrieval_defaults_are_the_settings_defaults() -> None:
    from recsys.settings import Settings
    from retrieval.config import ALSConfig, RetrievalConfig

    settings = Settings(_env_file=None)
    assert ALSConfig() == ALSConfig.from_settings(settings)
    assert RetrievalConfig() == RetrievalConfig.from_settings(settings)
