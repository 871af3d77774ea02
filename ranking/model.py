"""LightGBM LambdaRank: training with early stopping, and ranking metrics of the result."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np

from ranking.dataset import RankingSet
from ranking.features import FEATURE_NAMES
from recsys.settings import Settings
from retrieval.metrics import mean_metrics


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class RankerConfig:
    max_trees: int = _default("ranker_max_trees")
    learning_rate: float = _default("ranker_learning_rate")
    num_leaves: int = _default("ranker_num_leaves")
    min_data_in_leaf: int = _default("ranker_min_data_in_leaf")
    feature_fraction: float = _default("ranker_feature_fraction")
    early_stopping_rounds: int = _default("ranker_early_stopping_rounds")
    labels: str = _default("ranker_labels")
    validation_share: float = _default("ranker_validation_share")
    seed: int = _default("ranker_seed")
    eval_at: int = 10
    num_threads: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RankerConfig:
        return cls(
            max_trees=settings.ranker_max_trees, learning_rate=settings.ranker_learning_rate,
            num_leaves=settings.ranker_num_leaves,
            min_data_in_leaf=settings.ranker_min_data_in_leaf,
            feature_fraction=settings.ranker_feature_fraction,
            early_stopping_rounds=settings.ranker_early_stopping_rounds,
            labels=settings.ranker_labels, validation_share=settings.ranker_validation_share,
            seed=settings.ranker_seed,
        )

    def with_(self, **changes: Any) -> RankerConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lgb_params(self) -> dict[str, Any]:
        return {
            "objective": "lambdarank",
            "metric": "ndcg",
            "ndcg_eval_at": [self.eval_at],
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "feature_fraction_seed": self.seed,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }


@dataclass
class TrainedRanker:
    booster: lgb.Booster
    config: RankerConfig
    best_iteration: int
    seconds: float
    importance: dict[str, float]  # total gain per feature
    history: dict[str, list[float]] = field(default_factory=dict)  # validation nDCG per round

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.booster.predict(x, num_iteration=self.best_iteration)


def fit_ranker(train: RankingSet, valid: RankingSet, config: RankerConfig,
               log: Callable[[str], None] | None = None, early_stopping: bool = True
               ) -> TrainedRanker:
    """LambdaRank on ``train``, early stopping on ``valid``'s nDCG@eval_at (or exactly
    ``max_trees`` rounds without it)."""
    train, valid = train.with_positives(), valid.with_positives()
    if not train.queries or not valid.queries:
        raise ValueError("training and validation sets each need a query with a positive "
                         "label among its candidates")
    names = list(FEATURE_NAMES)
    dtrain = lgb.Dataset(train.x, train.y, group=train.group, feature_name=names,
                         free_raw_data=False)
    dvalid = lgb.Dataset(valid.x, valid.y, group=valid.group, reference=dtrain,
                         free_raw_data=False)
    history: dict[str, Any] = {}
    callbacks = [lgb.record_evaluation(history)]
    if early_stopping:
        callbacks.append(lgb.early_stopping(config.early_stopping_rounds, verbose=False))
    if log:
        every = max(config.max_trees // 5, 1)
        callbacks.append(lgb.log_evaluation(every))
    started = time.perf_counter()
    booster = lgb.train(config.lgb_params(), dtrain, num_boost_round=config.max_trees,
                        valid_sets=[dvalid], valid_names=["valid"], callbacks=callbacks)
    seconds = time.perf_counter() - started
    best = booster.best_iteration or booster.current_iteration()
    gain = booster.feature_importance("gain", iteration=best)
    importance = {n: float(g) for n, g in zip(names, gain, strict=True)}
    curve = history.get("valid", {}).get(f"ndcg@{config.eval_at}", [])
    if log:
        log(f"LightGBM: best iteration {best} (ran {booster.current_iteration()}), "
            f"{len(train.queries):,} train / {len(valid.queries):,} validation queries, "
            f"{seconds:.1f}s")
    return TrainedRanker(booster, config, int(best), seconds, importance,
                         {f"valid_ndcg@{config.eval_at}": [float(v) for v in curve]})


def rerank(data: RankingSet, scores: np.ndarray) -> dict[int, np.ndarray]:
    """user index → candidate item indices ordered by ``scores`` (best first)."""
    off = data.offsets
    out = {}
    for k, q in enumerate(data.queries):
        s = scores[off[k]:off[k + 1]]
        out[q.user] = q.candidates.item_index[np.argsort(-s, kind="stable")]
    return out


def retrieval_order(data: RankingSet) -> dict[int, np.ndarray]:
    return {q.user: np.asarray(q.candidates.item_index) for q in data.queries}


def ranking_metrics(rankings: dict[int, np.ndarray], truth: dict[int, set[int]],
                    k: int = 10) -> dict[str, float]:
    """P@k, R@k, nDCG@k, MAP@k (binary relevance, :mod:`retrieval.metrics`)."""
    return mean_metrics(rankings, truth, k)
