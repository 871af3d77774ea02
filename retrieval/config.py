"""Hyper-parameters of the retrieval stage, read from the platform settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from recsys.settings import Settings

ExcludeMode = Literal["none", "purchased", "seen"]
IndexKind = Literal["exact", "hnsw"]


def default_event_weights() -> dict[str, float]:
    return {"impression": 0.0, "view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}


@dataclass(frozen=True)
class ALSConfig:
    """ALS hyper-parameters and how events become confidence weights."""

    factors: int = 64
    regularization: float = 0.05
    alpha: float = 5.0
    iterations: int = 15
    half_life_days: float = 30.0  # 0 disables time decay
    event_weights: dict[str, float] = field(default_factory=default_event_weights)
    seed: int = 42
    num_threads: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> ALSConfig:
        return cls(
            factors=settings.als_factors,
            regularization=settings.als_regularization,
            alpha=settings.als_alpha,
            iterations=settings.als_iterations,
            half_life_days=settings.als_half_life_days,
            event_weights={
                "impression": settings.als_weight_impression,
                "view": settings.als_weight_view,
                "click": settings.als_weight_click,
                "add_to_cart": settings.als_weight_add_to_cart,
                "purchase": settings.als_weight_purchase,
            },
            seed=settings.als_seed,
            num_threads=settings.als_num_threads,
        )

    def with_(self, **changes: Any) -> ALSConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ALSConfig:
        return cls(**data)


@dataclass(frozen=True)
class RetrievalConfig:
    """Serving-side knobs: candidates, cold start, similar items, FBT."""

    candidate_count: int = 200
    exclude: ExcludeMode = "purchased"
    index: IndexKind = "exact"
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 400
    cold_start_min_events: int = 5
    popularity_half_life_days: float = 7.0
    content_ridge_alpha: float = 1.0
    similar_als_weight: float = 0.5
    fbt_min_support: int = 3
    fbt_window_hours: float = 24.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrievalConfig:
        return cls(
            candidate_count=settings.candidate_count,
            exclude=settings.candidate_exclude,
            index=settings.candidate_index,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construction=settings.hnsw_ef_construction,
            hnsw_ef_search=settings.hnsw_ef_search,
            cold_start_min_events=settings.cold_start_min_events,
            popularity_half_life_days=settings.popularity_half_life_days,
            content_ridge_alpha=settings.content_ridge_alpha,
            similar_als_weight=settings.similar_als_weight,
            fbt_min_support=settings.fbt_min_support,
            fbt_window_hours=settings.fbt_window_hours,
        )

    def with_(self, **changes: Any) -> RetrievalConfig:
        return replace(self, **changes)
