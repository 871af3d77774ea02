"""Typed requests and responses (they are also the OpenAPI documentation).

Requests are validated by FastAPI (422 lists every problem with its field). Responses are
built as plain dicts on the hot path and serialized once; these models document them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from feature_repo.events import ID_PATTERN, ContextValue

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=100)]
MAX_CONTEXT_KEYS = 30  # the impression event adds "arm" and "position" (events allow 32)
MAX_CONTEXT_VALUE = 256  # copied into every impression event


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no 0 for false, "5" for 5

    categories: list[Category] = Field(default_factory=list, max_length=100,
                                       description="Only items of these categories.")
    category: Category | None = Field(None, description="Shorthand for one category.")
    min_price: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_price: float | None = Field(None, ge=0, allow_inf_nan=False)
    in_stock: bool = False

    @model_validator(mode="after")
    def _price_range(self) -> Filters:
        if (self.min_price is not None and self.max_price is not None
                and self.max_price < self.min_price):
            raise ValueError("max_price must not be below min_price")
        return self

    @property
    def all_categories(self) -> tuple[str, ...]:
        extra = (self.category,) if self.category and self.category not in self.categories else ()
        return (*self.categories, *extra)


class RecommendationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"user_id": "u42", "k": 10, "filters": {"categories": ["books"], "max_price": 50},
         "context": {"surface": "home", "device": "ios"}}]})

    user_id: Identifier
    k: int = Field(10, ge=1, le=1_000, description="How many items (at most api_max_k).")
    filters: Filters = Field(default_factory=Filters)
    context: dict[Annotated[str, StringConstraints(max_length=64)], ContextValue] = Field(
        default_factory=dict, max_length=MAX_CONTEXT_KEYS,
        description="Scalars about the request (surface, device, …); copied into the "
        "impression events.")
    exclude_item_ids: list[Identifier] = Field(default_factory=list, max_length=1_000,
                                               description="Never return these (e.g. in cart).")

    @field_validator("context")
    @classmethod
    def _short_values(cls, value: dict[str, ContextValue]) -> dict[str, ContextValue]:
        for key, item in value.items():
            if isinstance(item, str) and len(item) > MAX_CONTEXT_VALUE:
                raise ValueError(f"context[{key!r}] is longer than {MAX_CONTEXT_VALUE} "
                                 "characters")
        return value


Stage = Literal["ranker", "retrieval", "popularity"]


class RecommendedItem(BaseModel):
    item_id: str
    title: str | None
    score: float
    rank: int
    category: str | None
    price: float | None
    stage: Stage = Field(description="ranker: re-ordered by the ONNX ranker; retrieval: "
                         "retrieval order (ranker unavailable); popularity: cold start or "
                         "fallback.")
    source: Literal["als", "blend", "popularity"] = Field(
        description="Where the candidate came from.")


class RecommendationResponse(BaseModel):
    request_id: str
    user_id: str
    model_name: str
    model_version: str
    arm: Literal["champion", "challenger"]
    cold_start: bool
    fallback: str | None = Field(None, description="Why the full path was not used: "
                                 "redis_unavailable, ranker_error.")
    items: list[RecommendedItem]


class ScoredItem(BaseModel):
    item_id: str
    title: str | None
    score: float
    category: str | None


class SimilarItemsResponse(BaseModel):
    item_id: str
    model_version: str
    items: list[ScoredItem]


class PairedItem(BaseModel):
    item_id: str
    title: str | None
    support: int
    confidence: float
    lift: float
    category: str | None


class FrequentlyBoughtTogetherResponse(BaseModel):
    item_id: str
    model_version: str
    items: list[PairedItem]


class PopularResponse(BaseModel):
    category: str | None
    model_version: str
    items: list[ScoredItem]


class EventsAccepted(BaseModel):
    accepted: int
    status: Literal["published", "buffered"] = Field(
        description="published: the broker acknowledged every event; buffered: held by the "
        "API until the broker answers (at least once).")


class ArmInfo(BaseModel):
    arm: str
    version: str
    loaded_at: str
    share: float
    source: str


class RefusedModel(BaseModel):
    version: str
    reason: str
    at: str


class ModelsResponse(BaseModel):
    registered_model: str
    aliases: dict[str, str | None]
    arms: list[ArmInfo]
    refused: list[RefusedModel]


class Problem(BaseModel):
    field: str
    message: str


class ValidationProblems(BaseModel):
    detail: list[Problem]


class Reason(BaseModel):
    """Why a request was refused (401, 403, 404, 413, 429, 503)."""

    detail: str


class Status(BaseModel):
    status: str
    checks: dict[str, str] | None = None
