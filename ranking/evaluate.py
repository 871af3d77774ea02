"""Offline evaluation of ALS + ranker with the Microsoft Recommenders protocol.

    recsys ranking evaluate ../shared/data/ml-100k

The protocol and the first rows are those of :mod:`retrieval.evaluate` (every rating an
interaction; per-user stratified random 75/25 split, seed 42; top-10 over items unseen in
training; binary relevance; ALS tuned on a validation split of the training part). The
ranker never sees the test part:

1. *ranker training*: the training part is split again (the same inner 75/25 split ALS is
   tuned on); ALS trained on the inner part gives 200 candidates per user, labels are the
   user's inner held-out items, features are Feast point-in-time joins at the user's
   last inner event over offline tables backfilled from the inner part only. A few
   configurations (label grading, tree size) are compared on held-out users of this
   inner set, with early stopping there; the best one is exported to ONNX (parity
   checked);
2. *test*: ALS retrained on the whole training part gives 200 candidates per test user,
   features at the user's last training event over tables backfilled from the training
   part, the ONNX ranker re-orders them, and the top 10 are scored once on the test part.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ranking.backfill import backfill_metadata_views, backfill_stream_views
from ranking.dataset import RankingSet, protocol_split
from ranking.model import RankerConfig, rerank, retrieval_order
from ranking.pit import scratch_feature_store
from ranking.train import build_split_set, fit_and_export
from recsys.settings import Settings
from retrieval.catalogue import load_catalogue
from retrieval.config import ALSConfig, RetrievalConfig
from retrieval.evaluate import (
    UNIFORM,
    Row,
    _as_dataset,
    metrics_table,
    popularity_rankings,
    tune,
)
from retrieval.interactions import load_interactions
from retrieval.metrics import mean_metrics, recall_at
from retrieval.popularity import Popularity
from retrieval.split import relevant_items

Log = Callable[[str], None]
#: Ranker configurations compared on the inner validation users.
GRID: tuple[dict, ...] = (
    {"labels": "binary", "num_leaves": 7, "min_data_in_leaf": 200},
    {"labels": "binary", "num_leaves": 31, "min_data_in_leaf": 50},
    {"labels": "graded", "num_leaves": 7, "min_data_in_leaf": 200},
    {"labels": "graded", "num_leaves": 31, "min_data_in_leaf": 50},
)


@dataclass
class RankingReport:
    rows: list[Row]
    als: ALSConfig
    ranker: RankerConfig
    validation: list[tuple[str, float, float, int]]  # config, ranker nDCG, ALS nDCG, trees
    parity: float
    importance: list[tuple[str, float]]
    k: int = 10
    n_candidates: int = 200
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        k = self.k
        lines = metrics_table(self.rows, k, self.n_candidates)
        a = self.als
        lines += ["", f"ALS (tuned on the validation split): factors={a.factors}, "
                      f"regularization={a.regularization}, alpha={a.alpha}, "
                      f"iterations={a.iterations}, half_life_days={a.half_life_days}.",
                  "", f"Ranker configurations on the inner validation users (nDCG@{k}, "
                      "ranker vs ALS order of the same candidates):", ""]
        lines += [f"- {name}: {ours:.4f} vs {als:.4f}, {trees} trees"
                  for name, ours, als, trees in self.validation]
        r = self.ranker
        lines += ["", f"Chosen: labels={r.labels}, num_leaves={r.num_leaves}, "
                      f"min_data_in_leaf={r.min_data_in_leaf}, learning_rate={r.learning_rate}"
                      f"; ONNX parity max |diff| {self.parity:.1e}.",
                  "Top features by gain: " + ", ".join(
                      f"{name} {share:.0%}" for name, share in self.importance[:8]) + ".",
                  *self.notes, f"Runtime {self.seconds:.0f} s."]
        return "\n".join(lines)


def _config_name(cfg: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.items())


def _with_labels(data: RankingSet, scheme: str) -> RankingSet:
    """The same rows with binary labels (any interaction) when asked."""
    if scheme == "graded":
        return data
    queries = [replace(q, labels=(q.labels > 0).astype(np.float32)) for q in data.queries]
    return RankingSet(data.x, (data.y > 0).astype(np.float32), queries, data.timings)


def evaluate(dataset: Path, seed: int = 42, k: int = 10, n_candidates: int = 200,
             tune_als: bool = True, settings: Settings | None = None,
             grid: tuple[dict, ...] = GRID, log: Log = print) -> RankingReport:
    started = time.perf_counter()
    settings = settings or Settings(_env_file=None)
    dataset = _as_dataset(Path(dataset), log)
    events, catalogue = load_interactions(dataset), load_catalogue(dataset)
    outer = protocol_split(events, 0.75, seed)
    train = outer.history
    truth = relevant_items(outer.labels)
    users = np.array(sorted(truth), dtype=np.int64)
    log(f"{len(events):,} interactions; train {len(train):,} / test {len(outer.labels):,}")

    rows: list[Row] = []
    pop = Popularity.fit(train, catalogue.category_codes, UNIFORM, 0.0)
    pop_big = popularity_rankings(pop, train.binary(), users, n_candidates)
    rows.append(Row("popularity (training counts)", mean_metrics(pop_big, truth, k),
                    recall_at(pop_big, truth, n_candidates)))

    base = ALSConfig.from_settings(settings).with_(seed=seed)
    als = tune(train, base, k, seed, log)[0] if tune_als else base
    rconfig = RetrievalConfig(exclude="seen", candidate_count=n_candidates)
    base_ranker = RankerConfig.from_settings(settings).with_(eval_at=k, seed=seed)

    log("ranker training set: ALS on the inner split of the training part …")
    inner = protocol_split(train, 0.75, seed + 1)  # the split ALS was tuned on
    with scratch_feature_store(settings) as (scratch, store):
        backfill_stream_views(inner.history, scratch.offline_store_path, "inner", log=log)
        backfill_metadata_views(dataset, scratch.offline_store_path, "inner")
        inner_set, inner_truth, _ = build_split_set(inner, catalogue, als, rconfig, store,
                                                    "graded", log)
    fit_users, valid_users = inner_set.split_users(base_ranker.validation_share, seed)
    validation = []
    best = None
    for cfg in grid:
        config = base_ranker.with_(**cfg)
        fit = _with_labels(fit_users, config.labels)
        val = _with_labels(valid_users, config.labels)
        exported = fit_and_export(fit, val, inner_truth, config, settings, log)
        ours = exported.metrics[f"val_ndcg_at_{k}"]
        validation.append((_config_name(cfg), ours,
                           exported.metrics[f"val_retrieval_ndcg_at_{k}"],
                           exported.model.best_iteration))
        if best is None or ours > best[0]:
            best = (ours, config, exported)
    assert best is not None
    _, config, exported = best

    log("test: ALS on the whole training part, the ranker re-orders its candidates …")
    with scratch_feature_store(settings) as (scratch, store):
        backfill_stream_views(train, scratch.offline_store_path, "train", log=log)
        backfill_metadata_views(dataset, scratch.offline_store_path, "train")
        test_set, _, _ = build_split_set(outer, catalogue, als, rconfig, store, "binary", log)
    als_order = retrieval_order(test_set)
    reranked = rerank(test_set, exported.score(test_set.x))
    cand_recall = recall_at(als_order, truth, n_candidates)
    rows.append(Row("ALS tuned (candidate generator, alone)", mean_metrics(als_order, truth, k),
                    cand_recall))
    rows.append(Row("ALS tuned + LightGBM ranker (ONNX)", mean_metrics(reranked, truth, k),
                    cand_recall))
    gain = exported.model.importance
    total = sum(gain.values()) or 1.0
    importance = sorted(((n, g / total) for n, g in gain.items()), key=lambda t: -t[1])
    return RankingReport(rows, als, config, validation, exported.parity.max_abs_diff,
                         importance, k, n_candidates, time.perf_counter() - started)
