"""Train a ranker version end to end: data set → features → LightGBM → ONNX → bundle → MLflow.

    recsys ranking train DATASET [--split temporal|protocol] [--register] [--alias challenger]

1. split the events into history and labels (:mod:`ranking.dataset`); train the retrieval
   model on the history and take its candidates;
2. point-in-time features from Feast at each query's cutoff. ``temporal`` uses the
   platform's feature store (with ``--backfill``, the data set's events are first written
   into its offline tables: rows after the cutoff exist but never join); ``protocol``
   (random per-user split) uses a scratch store filled from the history only;
3. LightGBM LambdaRank with early stopping on held-out users; ONNX export refused unless
   it matches LightGBM on the held-out rows;
4. the retrieval model that serves with this ranker is refitted on all events;
5. the drift baseline is what this version will serve: for a sample of users, the serving
   retrieval model's candidates, the feature values at the wall clock (each view's newest
   row unless its TTL has passed, as the API reads them), ranked, top-k
   (:func:`serving_baseline`);
6. the bundle folder (:mod:`ranking.bundle`) with that baseline is logged to MLflow
   and registered as a new version (tags: validation metric, data, run id).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from monitoring.baseline import DriftBaseline
from ranking import onnx_export
from ranking.backfill import backfill_metadata_views, backfill_stream_views
from ranking.bundle import write_bundle
from ranking.dataset import (
    Query,
    RankingSet,
    Split,
    build_ranking_set,
    label_matrix,
    make_queries,
    protocol_split,
    temporal_split,
)
from ranking.features import FEATURE_NAMES
from ranking.model import (
    RankerConfig,
    TrainedRanker,
    fit_ranker,
    ranking_metrics,
    rerank,
    retrieval_order,
)
from ranking.pit import scratch_feature_store
from ranking.rules import apply_rules
from recsys.settings import Settings, get_settings
from retrieval.candidates import CandidateGenerator
from retrieval.catalogue import Catalogue, load_catalogue
from retrieval.config import ALSConfig, RetrievalConfig
from retrieval.interactions import Interactions, load_interactions
from retrieval.model import RetrievalModel, fit_retrieval
from retrieval.train import flat_params

Log = Callable[[str], None]
VALIDATION_METRIC = "val_ndcg_at_10"
PARITY_ROWS = 512  # parity rows stored in the bundle for the load-time smoke check


def truth_of(labels: sp.csr_matrix) -> dict[int, set[int]]:
    """user index → items with a positive label."""
    return {u: set(labels.indices[labels.indptr[u]:labels.indptr[u + 1]].tolist())
            for u in range(labels.shape[0]) if labels.indptr[u + 1] > labels.indptr[u]}


@dataclass
class ExportedRanker:
    model: TrainedRanker
    onnx_bytes: bytes
    session: Any
    parity: onnx_export.Parity
    parity_x: np.ndarray
    parity_expected: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)

    def score(self, x: np.ndarray) -> np.ndarray:
        return onnx_export.run(self.session, x)


def fit_and_export(train: RankingSet, valid: RankingSet, truth: dict[int, set[int]],
                   config: RankerConfig, settings: Settings, log: Log) -> ExportedRanker:
    """LambdaRank with early stopping, ONNX export and parity on the held-out rows."""
    model = fit_ranker(train, valid, config, log)
    onnx_bytes = onnx_export.to_onnx(model.booster, len(FEATURE_NAMES), model.best_iteration)
    sess = onnx_export.session(onnx_bytes, settings.ranker_onnx_threads)
    parity = onnx_export.check_parity(sess, model.booster, valid.x,
                                      settings.ranker_parity_tolerance, model.best_iteration)
    log(f"ONNX parity on {parity.rows:,} held-out rows: max |ONNX - LightGBM| = "
        f"{parity.max_abs_diff:.2e} (tolerance {parity.tolerance:g})")
    rng = np.random.default_rng(config.seed)
    keep = np.sort(rng.choice(len(valid.x), min(PARITY_ROWS, len(valid.x)), replace=False))
    parity_x = valid.x[keep]
    expected = model.predict(parity_x)
    exported = ExportedRanker(model, onnx_bytes, sess, parity, parity_x, expected)
    scores = exported.score(valid.x)
    k = config.eval_at
    ranked = ranking_metrics(rerank(valid, scores), truth, k)
    base = ranking_metrics(retrieval_order(valid), truth, k)
    exported.metrics = {
        **{f"val_{m}_at_{k}": v for m, v in ranked.items()},
        **{f"val_retrieval_{m}_at_{k}": v for m, v in base.items()},
        "trees": float(model.best_iteration), "train_seconds": model.seconds,
        "parity_max_abs_diff": parity.max_abs_diff,
        "train_queries": float(len(train.queries)), "valid_queries": float(len(valid.queries)),
        "train_rows": float(len(train.x)),
    }
    log(f"validation nDCG@{k}: ranker {ranked['ndcg']:.4f} vs retrieval order "
        f"{base['ndcg']:.4f} ({len(valid.queries):,} users)")
    return exported


def drift_baseline(data: RankingSet, scores: np.ndarray, k: int = 10,
                   meta: dict[str, Any] | None = None,
                   served: Callable[[Query, np.ndarray], list[int]] | None = None
                   ) -> DriftBaseline:
    """Distributions of the features and scores of what is served for each query: its
    top-``k``, or the positions ``served(query, its scores)`` picks (the API's rules).

    The API logs the features of the items it returns, so the baseline describes the
    same population. Features with no finite value in training are left out (listed in
    ``meta['features_without_values']``).
    """
    off = data.offsets

    def picked(q: int) -> np.ndarray:
        block = scores[off[q]:off[q + 1]]
        if served is None:
            return np.argsort(-block, kind="stable")[:k]
        return np.asarray(served(data.queries[q], block), dtype=np.int64)

    rows = np.concatenate([off[q] + picked(q) for q in range(len(data.queries))]
                          or [np.empty(0, np.int64)])
    x = data.x[rows]
    features, empty = {}, []
    for j, name in enumerate(FEATURE_NAMES):
        column = x[:, j]
        if np.isfinite(column).any():
            features[name] = column
        else:
            empty.append(name)
    info = {"rows": f"top-{k} per training query", "n_rows": len(rows),
            "features_without_values": ",".join(empty), **(meta or {})}
    return DriftBaseline.build(features, scores[rows], meta=info)


def serving_baseline(store, serving: RetrievalModel, config: RetrievalConfig,
                     events: Interactions, score: Callable[[np.ndarray], np.ndarray],
                     users: int, k: int, seed: int, max_category_share: float,
                     meta: dict[str, Any], log: Log) -> DriftBaseline:
    """The baseline of what serving will see, so a healthy version does not look drifted.

    The training queries' top-k differ from serving in four ways: their candidates come
    from the retrieval model of the history, their features are as of the cutoff, their
    clock is the cutoff, and no business rule reorders them. Here a seeded sample of
    ``users`` users with history gets the serving retrieval model's candidates,
    point-in-time features at the serving clock (the wall clock, or the newest event if
    later): the newest row of each view, absent when older than the view's TTL, which is
    what the API reads online (``api.features``), and the API's rules (diversity cap).
    """
    newest = int(events.ts_ms.max())
    now = max(newest, int(time.time() * 1000))
    active = np.unique(events.user)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(active, size=min(users, len(active)), replace=False)
    generator = CandidateGenerator(serving, config)
    queries = []
    for u in np.sort(chosen):
        cands = generator.for_user(str(events.user_ids[u]))
        if len(cands):
            queries.append(Query(int(u), str(events.user_ids[u]), now, cands,
                                 np.zeros(len(cands), np.float32), now_ms=now))
    data = build_ranking_set(store, serving, queries, log)
    info = {"population": f"serving replay: {len(queries):,} users, features and clock at "
            f"{now}", **meta}
    codes = serving.catalogue.category_codes

    def served(query: Query, scores: np.ndarray) -> list[int]:
        return apply_rules(query.candidates.item_index, scores, k, codes,
                           max_share=max_category_share)

    return drift_baseline(data, score(data.x), k, info, served)


@dataclass
class TrainingResult:
    bundle: Path | None  # None: only in MLflow (registered from a temporary folder)
    metrics: dict[str, float]
    run_id: str | None = None
    version: str | None = None
    alias: str | None = None


def dataset_tag(dataset: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", dataset.resolve().name) or "dataset"


def _history_model(split: Split, catalogue: Catalogue, als: ALSConfig,
                   config: RetrievalConfig) -> RetrievalModel:
    return fit_retrieval(split.history, catalogue, als, config, show_progress=False,
                         now_ms=int(split.history.ts_ms.max()))


def build_split_set(split: Split, catalogue: Catalogue, als: ALSConfig,
                    config: RetrievalConfig, store, scheme: str, log: Log,
                    max_queries: int | None = None, seed: int = 42
                    ) -> tuple[RankingSet, dict[int, set[int]], RetrievalModel]:
    """Retrieval on the history, candidates + labels, point-in-time features; at most
    ``max_queries`` users (a seeded sample) get a query."""
    model = _history_model(split, catalogue, als, config)
    labels = label_matrix(split.labels, scheme)
    users = split.users()
    if max_queries is not None and len(users) > max_queries:
        users = np.sort(np.random.default_rng(seed).choice(users, max_queries, replace=False))
        log(f"{max_queries:,} of {len(split.users()):,} users with labels sampled as queries")
    queries = make_queries(model, CandidateGenerator(model, config), split, labels, users,
                           log=log)
    data = build_ranking_set(store, model, queries, log)
    return data, truth_of(label_matrix(split.labels, "binary")), model


def train_ranker(dataset: Path, settings: Settings | None = None, split: str = "temporal",
                 backfill: bool = True, register: bool = True, alias: str | None = None,
                 out: Path | None = None, log: Log = print) -> TrainingResult:
    """The whole training job (see the module docstring); returns where things went."""
    settings = settings or get_settings()
    started = time.perf_counter()
    dataset = Path(dataset)
    events = load_interactions(dataset)
    catalogue = load_catalogue(dataset)
    als = ALSConfig.from_settings(settings)
    retrieval_config = RetrievalConfig.from_settings(settings)
    config = RankerConfig.from_settings(settings)
    tag = dataset_tag(dataset)
    if split == "temporal":
        parts = temporal_split(events, settings.ranker_cutoff_quantile)
    elif split == "protocol":
        parts = protocol_split(events, 0.75, settings.ranker_seed)
        retrieval_config = retrieval_config.with_(exclude="seen")
    else:
        raise ValueError(f"split must be 'temporal' or 'protocol', not {split!r}")
    log(f"{len(events):,} events: history {len(parts.history):,}, labels "
        f"{len(parts.labels):,} ({split} split)")

    if split == "temporal":
        from feature_repo.store import get_feature_store

        if backfill:
            backfill_stream_views(events, settings.offline_store_path, tag, log=log)
        backfill_metadata_views(dataset, settings.offline_store_path, tag)
        data, truth, _ = build_split_set(parts, catalogue, als, retrieval_config,
                                         get_feature_store(settings), config.labels, log,
                                         settings.ranker_max_queries, config.seed)
    else:
        with scratch_feature_store(settings) as (scratch, store):
            backfill_stream_views(parts.history, scratch.offline_store_path, tag, log=log)
            backfill_metadata_views(dataset, scratch.offline_store_path, tag)
            data, truth, _ = build_split_set(parts, catalogue, als, retrieval_config, store,
                                             config.labels, log, settings.ranker_max_queries,
                                             config.seed)

    train, valid = data.split_users(config.validation_share, config.seed)
    exported = fit_and_export(train, valid, truth, config, settings, log)
    log("refitting retrieval on all events for serving …")
    serving = fit_retrieval(events, catalogue, als, retrieval_config, show_progress=False,
                            now_ms=int(events.ts_ms.max()))
    if split == "temporal":  # the platform's own store holds what will be served
        log("drift baseline: what this version serves now …")
        baseline = serving_baseline(get_feature_store(settings), serving, retrieval_config,
                                    events, exported.score, settings.ranker_baseline_users,
                                    config.eval_at, config.seed,
                                    settings.api_max_category_share,
                                    {"dataset": str(dataset)}, log)
    else:  # an evaluation: no serving, the training queries are the population
        baseline = drift_baseline(data, exported.score(data.x), config.eval_at,
                                  {"dataset": str(dataset)})
    metrics = {**exported.metrics, **{f"data_{k}": v for k, v in data.timings.items()},
               "total_seconds": time.perf_counter() - started}
    params = {**{f"ranker_{k}": v for k, v in config.to_dict().items()},
              **{f"als_{k}": v for k, v in flat_params(als).items()},
              "split": split, "dataset": str(dataset.resolve()), "backfill": backfill,
              "candidates": retrieval_config.candidate_count,
              "candidate_exclude": retrieval_config.exclude,
              "n_features": len(FEATURE_NAMES), "feature_names": ",".join(FEATURE_NAMES)}
    meta = {"name": settings.registered_model_name, "training_data": str(dataset.resolve()),
            "split": split, "trees": exported.model.best_iteration,
            "validation_metric": {"name": VALIDATION_METRIC,
                                  "value": exported.metrics[VALIDATION_METRIC]}}
    temp = out is None
    folder = Path(tempfile.mkdtemp(prefix="ranker-bundle-")) / "ranker" if temp else out
    write_bundle(folder, onnx_bytes=exported.onnx_bytes,
                 lightgbm_text=exported.model.booster.model_to_string(
                     num_iteration=exported.model.best_iteration),
                 parity_x=exported.parity_x, parity_expected=exported.parity_expected,
                 tolerance=exported.parity.tolerance,
                 max_abs_diff=exported.parity.max_abs_diff, baseline=baseline,
                 retrieval=serving, metrics=metrics, params=params,
                 importance=exported.model.importance, meta=meta)
    result = TrainingResult(folder, metrics)
    try:
        if register:
            from ranking.registry import client_for, log_run, set_alias
            from ranking.registry import register as register_version

            client = client_for(settings)
            result.run_id = log_run(client, settings, folder, params, metrics,
                                    {"dataset": str(dataset.resolve()), "split": split})
            result.version = register_version(
                client, settings.registered_model_name, result.run_id, VALIDATION_METRIC,
                exported.metrics[VALIDATION_METRIC], str(dataset.resolve()),
                {"split": split, "trees": str(exported.model.best_iteration)})
            log(f"MLflow run {result.run_id}; registered {settings.registered_model_name} "
                f"version {result.version}")
            if alias:
                set_alias(client, settings.registered_model_name, alias, result.version)
                result.alias = alias
                log(f"alias {alias} → version {result.version}")
    finally:
        if temp and register:  # the bundle lives in MLflow now
            shutil.rmtree(folder.parent, ignore_errors=True)
            result.bundle = None
    return result
