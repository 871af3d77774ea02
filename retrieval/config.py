"""Hyper-parameters of the retrieval stage, read from the platform settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from recsys.settings import Settings

ExcludeMode = Literal["none", "purchased", "seen"]
IndexKind = Literal["exact", "hnsw"]


def _default(setting: str) -> Any:
    """Defaults come from the settings object, so the two can never disagree."""
    return Settings.model_fields[setting].default


def default_event_weights() -> dict[str, float]:
    return {t: _default(f"als_weight_{t}")
            for t in ("impression", "view", "click", "add_to_cart", "purchase")}


@dataclass(frozen=True)
class ALSConfig:
    """ALS hyper-parameters and how events become confidence weights."""

    factors: int = _default("als_factors")
    regularization: float = _default("als_regularization")
    alpha: float = _default("als_alpha")
    iterations: int = _default("als_iterations")
    half_life_days: float = _default("als_half_life_days")  # 0 disables time decay
    event_weights: dict[str, float] = field(default_factory=default_event_weights)
    seed: int = _default("als_seed")
    num_threads: int = _default("als_num_threads")

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

    candidate_count: int = _default("candidate_count")
    exclude: ExcludeMode = _default("candidate_exclude")  # noqa: RUF009 (an immutable str)
    index: IndexKind = _default("candidate_index")  # noqa: RUF009 (an immutable str)
    hnsw_m: int = _default("hnsw_m")
    hnsw_ef_construction: int = _default("hnsw_ef_construction")
    hnsw_ef_search: int = _default("hnsw_ef_search")
    cold_start_min_events: int = _default("cold_start_min_events")
    popularity_half_life_days: float = _default("popularity_half_life_days")
    content_ridge_alpha: float = _default("content_ridge_alpha")
    similar_als_weight: float = _default("similar_als_weight")
    fbt_min_support: int = _default("fbt_min_support")
    fbt_window_hours: float = _default("fbt_window_hours")

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
