"""Ranking against real services: Feast point-in-time joins (no leakage), materialize of
the metadata views into Redis, training → ONNX → MLflow registry, aliases, promotion
and loading a version by alias (also from the local cache when MLflow is down)."""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from ranking.backfill import backfill_metadata_views, backfill_stream_views, write_view
from ranking.bundle import BundleError, RankerBundle, cache_root
from ranking.dataset import Query, build_ranking_set
from ranking.features import FEATURE_NAMES
from ranking.pit import historical_features, scratch_feature_store
from ranking.registry import (
    CHALLENGER,
    CHAMPION,
    CHAMPION_SINCE_TAG,
    VALUE_TAG,
    client_for,
    get_alias_version,
    get_aliases,
    promote,
    register,
    set_alias,
)
from ranking.train import VALIDATION_METRIC, train_ranker
from recsys.settings import Settings, settings_env
from recsys.stack import free_port
from retrieval.candidates import CandidateGenerator
from retrieval.catalogue import load_catalogue
from retrieval.config import ALSConfig
from retrieval.interactions import load_interactions
from retrieval.model import fit_retrieval

pytestmark = pytest.mark.integration
LABEL_TIME = pd.Timestamp("2026-01-10 12:00", tz="UTC")
RECSYS = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "recsys")


def activity_rows(user_id: str, rows: list[tuple[pd.Timestamp, int]]) -> pd.DataFrame:
    """user_activity_24h rows as the stream writer appends them."""
    n = len(rows)
    return pd.DataFrame({
        "user_id": [user_id] * n, "event_time": [t for t, _ in rows],
        "impressions": [0] * n, "views": [v for _, v in rows], "clicks": [1] * n,
        "carts": [0] * n, "purchases": [0] * n, "ctr": [0.0] * n})


def test_point_in_time_join_never_sees_a_later_row(stack_settings: Settings) -> None:
    """In the stack's own Feast repository: a row written after the label time is not in
    that label's row; the row before it is; a row older than the view's TTL gives NaN."""
    from feature_repo.store import get_feature_store

    tag = uuid.uuid4().hex[:8]
    before, after, stale = f"pit-before-{tag}", f"pit-mixed-{tag}", f"pit-stale-{tag}"
    frame = pd.concat([
        activity_rows(before, [(LABEL_TIME - timedelta(hours=2), 3)]),
        activity_rows(after, [(LABEL_TIME - timedelta(hours=1), 5),
                              (LABEL_TIME + timedelta(minutes=1), 99)]),
        activity_rows(stale, [(LABEL_TIME - timedelta(hours=30), 7)]),
    ])
    write_view(stack_settings.offline_store_path, "user_activity_24h", frame, f"pit-{tag}")
    rows = pd.DataFrame({
        "user_id": [before, after, stale, after],
        "event_timestamp": [LABEL_TIME, LABEL_TIME, LABEL_TIME,
                            LABEL_TIME + timedelta(minutes=2)],
    }, index=[10, 11, 12, 13])
    got = historical_features(get_feature_store(stack_settings), rows,
                              ["user_activity_24h:views"])
    assert list(got.index) == [10, 11, 12, 13]
    views = got["user_activity_24h__views"]
    assert views[10] == 3
    assert views[11] == 5  # the 99 written a minute after the label time is not joined
    assert np.isnan(views[12])  # older than the 24h TTL: missing, and the row is kept
    assert views[13] == 99  # a cutoff after it sees it
    with pytest.raises(ValueError, match="recsys feast apply"):
        historical_features(get_feature_store(stack_settings), rows, ["no_such_view:views"])


@pytest.mark.parametrize("offline_store", ["duckdb", "file"])
def test_rows_of_one_event_time_resolve_to_the_newest_created(stack_settings: Settings,
                                                              offline_store: str) -> None:
    """A sliding window emits again when events leave it, with the same event time: the
    row created last wins, in the join and in materialize, with either offline store.
    Three parts, the newest row in the middle one, so file order cannot decide it."""
    from ranking.pit import scratch_feature_store

    settings = stack_settings.model_copy(update={
        "feast_offline_store": offline_store, "feast_project": f"ties_{uuid.uuid4().hex[:8]}"})
    user = f"tie-{offline_store}"
    at = LABEL_TIME - timedelta(hours=1)
    with scratch_feature_store(settings) as (scratch, store):
        for part, (views, created_min) in enumerate([(5, 1), (9, 30), (7, 10)]):
            write_view(scratch.offline_store_path, "user_activity_24h",
                       activity_rows(user, [(at, views)]).assign(
                           created=at + timedelta(minutes=created_min)), f"tie-{part}")
        got = historical_features(store, pd.DataFrame(
            {"user_id": [user], "event_timestamp": [LABEL_TIME]}), ["user_activity_24h:views"])
        store.materialize(start_date=(at - timedelta(hours=1)).to_pydatetime(),
                          end_date=LABEL_TIME.to_pydatetime(),
                          feature_views=["user_activity_24h"])
        online = store.get_online_features(["user_activity_24h:views"],
                                           [{"user_id": user}]).to_dict()
    assert got["user_activity_24h__views"].tolist() == [9]
    assert online["views"] == [9]


def test_entities_without_any_row_join_as_missing(stack_settings: Settings) -> None:
    """Feast's dask store can fail to sort a join where some entities have no row at all
    (it depends on how rows fall into partitions); those are never asked for, and come
    back missing beside the ones that have values."""
    from ranking.pit import scratch_feature_store

    with scratch_feature_store(stack_settings) as (scratch, store):
        known = [f"known-{k}" for k in range(300)]
        for part in range(6):  # several files: dask partitions, as the writer's parts
            write_view(scratch.offline_store_path, "user_activity_24h", pd.concat(
                [activity_rows(u, [(LABEL_TIME - timedelta(hours=1, minutes=part), k)])
                 for k, u in enumerate(known) if k % 6 == part]), f"known-{part}")
        unknown = [f"never-seen-{k}" for k in range(300)]
        rows = pd.DataFrame({"user_id": [x for pair in zip(known, unknown, strict=True)
                                         for x in pair],
                             "event_timestamp": LABEL_TIME})
        got = historical_features(store, rows, ["user_activity_24h:views"])
        everything_unknown = historical_features(
            store, rows[rows.user_id.str.startswith("never")], ["user_activity_24h:views"])
    views = got["user_activity_24h__views"]
    assert views[rows.user_id.str.startswith("known")].tolist() == list(range(300))
    assert views[rows.user_id.str.startswith("never")].isna().all()
    assert everything_unknown["user_activity_24h__views"].isna().all()


def test_training_rows_use_features_from_before_their_cutoff(stack_settings: Settings,
                                                             small_dataset: Path) -> None:
    """The training-set builder end to end (scratch Feast repo, same definitions)."""
    events = load_interactions(small_dataset)
    model = fit_retrieval(events, load_catalogue(small_dataset), ALSConfig(factors=8),
                          show_progress=False)
    user = str(model.user_ids[0])
    cands = CandidateGenerator(model).for_user(user, n=5)
    cutoff = int(LABEL_TIME.timestamp() * 1000)
    with scratch_feature_store(stack_settings) as (scratch, store):
        nothing_yet = historical_features(store, pd.DataFrame(
            {"item_id": ["i1"], "event_timestamp": [LABEL_TIME]}), ["item_activity_1h:views"])
        assert nothing_yet["item_activity_1h__views"].isna().all()  # no files: missing
        backfill_stream_views(events, scratch.offline_store_path, "small")
        backfill_metadata_views(small_dataset, scratch.offline_store_path, "small")
        write_view(scratch.offline_store_path, "user_activity_24h", activity_rows(user, [
            (LABEL_TIME - timedelta(seconds=1), 41), (LABEL_TIME + timedelta(seconds=1), 42)]),
            "leak-test")
        data = build_ranking_set(store, model, [Query(0, user, cutoff, cands,
                                                      np.zeros(5, np.float32))])
    column = data.x[:, FEATURE_NAMES.index("user_activity_24h__views")]
    assert (column == 41).all()


def test_materialize_puts_the_metadata_views_online(stack_settings: Settings,
                                                    small_dataset: Path) -> None:
    """`recsys feast materialize-incremental` (the project's command) → Redis → online read."""
    items = pd.read_parquet(small_dataset / "items.parquet").set_index("item_id")
    users = pd.read_parquet(small_dataset / "users.parquet").set_index("user_id")
    # an own Feast project: the shared Redis may hold i3 from another data set with a
    # newer launch time, and Feast keeps the newer row online (as it should)
    own = stack_settings.model_copy(update={"feast_project": f"meta_{uuid.uuid4().hex[:8]}"})
    with scratch_feature_store(own) as (scratch, store):
        backfill_metadata_views(small_dataset, scratch.offline_store_path, "small")
        end = datetime.now(UTC).replace(microsecond=0).isoformat()
        result = subprocess.run(
            [RECSYS, "feast", "materialize-incremental", end, "--views", "item_metadata",
             "--views", "user_profile"],
            env={**os.environ, **settings_env(scratch)}, capture_output=True, text=True,
            timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        online = store.get_online_features(
            features=["item_metadata:price", "item_metadata:category", "user_profile:age"],
            entity_rows=[{"item_id": "i3", "user_id": "u5"},
                         {"item_id": "i7", "user_id": "u9"}]).to_dict()
    assert online["price"] == pytest.approx([items.loc["i3", "price"], items.loc["i7", "price"]])
    assert online["category"] == [items.loc["i3", "category"], items.loc["i7", "category"]]
    assert online["age"] == [users.loc["u5", "age"], users.loc["u9", "age"]]


@pytest.fixture(scope="module")
def registry_settings(stack_settings: Settings) -> Settings:
    """The stack, with a registered model name of its own."""
    return stack_settings.model_copy(update={
        "registered_model_name": f"test-ranker-{uuid.uuid4().hex[:8]}"})


@pytest.mark.slow
def test_train_register_alias_promote_and_load(registry_settings: Settings,
                                               small_dataset: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    uri_before = mlflow.get_tracking_uri()
    name = registry_settings.registered_model_name
    with scratch_feature_store(registry_settings) as (scratch, _):
        lines: list[str] = []
        capped = scratch.model_copy(update={"ranker_max_queries": 100})  # of 110 labelled
        result = train_ranker(small_dataset, capped, split="temporal", register=True,
                              alias=CHALLENGER, log=lines.append)
        client = client_for(scratch)
        sampled = [line for line in lines if "users with labels sampled as queries" in line]
        assert sampled and "100 of 110 " in sampled[0]
        assert result.metrics["train_queries"] + result.metrics["valid_queries"] <= 100
        assert mlflow.get_tracking_uri() == uri_before  # no global change

        # one run: params, metrics, the bundle with feature list and drift baseline
        run = client.get_run(result.run_id)
        assert run.data.params["n_features"] == str(len(FEATURE_NAMES))
        assert run.data.metrics[VALIDATION_METRIC] == pytest.approx(
            result.metrics[VALIDATION_METRIC])
        assert run.data.metrics["parity_max_abs_diff"] <= scratch.ranker_parity_tolerance
        files = {f.path for f in client.list_artifacts(result.run_id, "ranker")}
        assert {"ranker/ranker.onnx", "ranker/bundle.json", "ranker/drift_baseline.json",
                "ranker/retrieval"} <= files

        v1 = result.version
        assert get_alias_version(client, name, CHALLENGER) == v1
        mv = client.get_model_version(name, v1)
        assert float(mv.tags[VALUE_TAG]) == pytest.approx(result.metrics[VALIDATION_METRIC])
        assert mv.tags["run_id"] == result.run_id

        bundle = RankerBundle.load(f"models:/{name}@{CHALLENGER}", scratch)
        bundle.smoke_check()
        assert (bundle.name, bundle.version) == (name, v1)
        assert bundle.feature_names == FEATURE_NAMES
        assert len(bundle.retrieval.item_ids) == 150  # retrieval travels with the ranker
        assert bundle.baseline.scores.count > 0

        # the promotion rule
        first = promote(v1, scratch)
        assert first.promoted and get_alias_version(client, name, CHAMPION) == v1
        assert get_alias_version(client, name, CHALLENGER) is None  # it is champion now
        assert CHAMPION_SINCE_TAG in client.get_model_version(name, v1).tags
        value = result.metrics[VALIDATION_METRIC]
        worse = register(client, name, result.run_id, VALIDATION_METRIC, value - 0.01, "x")
        set_alias(client, name, CHALLENGER, worse)
        # what the API polls: every alias in one call; no model at all is no alias
        assert get_aliases(client, name) == {CHAMPION: v1, CHALLENGER: worse}
        assert get_aliases(client, "no-such-model") == {}
        assert not promote(worse, scratch).promoted
        assert get_alias_version(client, name, CHAMPION) == v1
        better = register(client, name, result.run_id, VALIDATION_METRIC, value + 0.01, "x")
        decision = promote(better, scratch)
        assert decision.promoted and "beats champion" in decision.reason
        assert get_alias_version(client, name, CHAMPION) == better
        assert not promote(better, scratch).promoted  # already champion
        # a registry that fails to read the aliases is not "no champion yet": nothing moves
        from mlflow.exceptions import MlflowException

        class AliasReadFails:
            def __getattr__(self, attr: str) -> object:
                return getattr(client, attr)

            def get_registered_model(self, *_: object) -> object:
                raise MlflowException("registry unavailable", error_code="INTERNAL_ERROR")

            get_model_version_by_alias = get_registered_model

        worst = register(client, name, result.run_id, VALIDATION_METRIC, value - 0.02, "x")
        with pytest.raises(MlflowException, match="registry unavailable"):
            promote(worst, scratch, client=AliasReadFails())
        assert get_alias_version(client, name, CHAMPION) == better

        # the same rule through `recsys ranking promote`
        from typer.testing import CliRunner

        from recsys.cli import app
        from recsys.settings import get_settings

        for key, value in settings_env(scratch).items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        try:
            refused = CliRunner().invoke(app, ["ranking", "promote", worse])
        finally:
            get_settings.cache_clear()
        assert refused.exit_code == 3 and "does not beat champion" in refused.output

        # MLflow down: the alias resolves from the cache of the last download
        loaded = RankerBundle.load(f"models:/{name}@{CHAMPION}", scratch)
        assert loaded.version == better
        assert (cache_root(scratch) / name / better / "registry.json").exists()
        down = scratch.model_copy(update={"mlflow_port": free_port()})
        old = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        try:
            offline = RankerBundle.load(f"models:/{name}@{CHAMPION}", down)
            assert offline.version == better
            offline.smoke_check()
            with pytest.raises(BundleError, match="no cached copy"):
                RankerBundle.load(f"models:/{name}/{worse}", down)
        finally:
            if old is None:
                os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
            else:
                os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = old
