"""The serving path of ``POST /recommendations``.

candidates (the arm's retrieval model, in memory) → online features of the user and every
candidate (one Redis round trip, item rows cached briefly) → ONNX ranking → business rules.

- A user the retrieval model knows nothing about is a cold start: popularity (category
  aware) answers, not the ranker, and the response says ``cold_start``.
- Redis failing or its circuit open: popularity answers (``fallback: redis_unavailable``).
- The ranker failing: the retrieval order answers (``fallback: ranker_error``).

Each response publishes, after it is built, one serving-log record (for drift) and one
``impression`` event per item (for CTR per model version and arm) through the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
from redis.exceptions import RedisError

from api.breaker import CircuitBreaker
from api.features import FeatureFetcher
from api.metrics import ApiMetrics
from api.models import (
    CandidateKey,
    ModelManager,
    ServedModel,
    candidate_key,
    search_candidates,
)
from api.outbox import Outbox
from api.publisher import ProcessOutbox
from api.schemas import RecommendationRequest
from api.serving_log import ServedResponse
from ranking.rules import apply_rules
from recsys.settings import Settings
from retrieval.candidates import Candidates, Filters
from retrieval.index import top_n

log = logging.getLogger(__name__)
T = TypeVar("T")
#: What a failing online store raises (api.resp.RespError is an OSError; redis-py's for the
#: Feast SDK reader).
REDIS_ERRORS = (OSError, asyncio.TimeoutError, ValueError, RedisError)


class NoModel(Exception):
    """No model is loaded for the arm (503)."""


@dataclass
class Served:
    body: dict[str, Any]
    timings: dict[str, float]

    @property
    def server_timing(self) -> str:
        return ", ".join(f"{stage};dur={ms:.3f}" for stage, ms in self.timings.items())


class Recommender:
    def __init__(self, settings: Settings, manager: ModelManager, fetcher: FeatureFetcher,
                 redis_breaker: CircuitBreaker, outbox: Outbox | ProcessOutbox,
                 metrics: ApiMetrics) -> None:
        from ranking.features import assemble

        self.settings = settings
        self.manager = manager
        self.fetcher = fetcher
        self.breaker = redis_breaker
        self.outbox = outbox
        self.metrics = metrics
        self.assemble = assemble
        self.n_candidates = settings.candidate_count
        self.pool = (ThreadPoolExecutor(settings.api_worker_threads, "serving")
                     if settings.api_worker_threads else None)
        self.fallback_counter = {reason: metrics.fallbacks.labels(reason) for reason in
                                 ("cold_start", "redis_unavailable", "ranker_error")}

    async def recommend(self, req: RecommendationRequest) -> Served:
        arm, model = self.manager.state.pick(req.user_id)
        if model is None:
            raise NoModel("no model is loaded yet")
        stage = self.metrics.stage
        user_id = req.user_id
        categories = req.filters.all_categories
        filters = Filters(categories, req.filters.min_price, req.filters.max_price,
                          req.filters.in_stock)
        t0 = time.perf_counter()
        cands = await self._candidates(model, user_id, filters)
        t1 = time.perf_counter()
        timings = {"candidates": (t1 - t0) * 1000}
        stage["candidates"].observe(t1 - t0)

        fallback: str | None = None
        item_stage = "ranker"
        x: np.ndarray | None = None
        cold_start = cands.source == "popularity"
        if cold_start or not len(cands):  # nothing to rank (filters can leave no candidate)
            item_stage = "popularity" if cold_start else "ranker"
            scores = cands.scores
            if cold_start:
                self.fallback_counter["cold_start"].inc()
        else:
            features = None
            if self.breaker.allow():
                try:
                    features = await self.fetcher.fetch(user_id, cands.item_ids.tolist())
                    self.breaker.success()
                except REDIS_ERRORS as exc:
                    self.breaker.failure(exc)
            t2 = time.perf_counter()
            timings["features"] = (t2 - t1) * 1000
            stage["features"].observe(t2 - t1)
            if features is None:
                fallback, item_stage = "redis_unavailable", "popularity"
                cands = self._fallback(model, user_id, filters)
                scores = cands.scores
            else:
                try:
                    x, scores = await self._call(self.rank, model, cands, user_id, features)
                except Exception:
                    log.exception("ranker %s failed; serving retrieval order", model.version)
                    fallback, item_stage, x = "ranker_error", "retrieval", None
                    scores = cands.scores
            t1 = time.perf_counter()
            timings["ranking"] = (t1 - t2) * 1000
            stage["ranking"].observe(t1 - t2)
            if fallback:
                self.fallback_counter[fallback].inc()

        excluded = (set(model.retrieval.item_indices(req.exclude_item_ids).tolist())
                    if req.exclude_item_ids else ())
        allowed = model.catalogue.mask(list(categories), filters.min_price, filters.max_price,
                                       filters.in_stock)
        chosen = apply_rules(cands.item_index, scores, req.k, model.catalogue.category_codes,
                             allowed, excluded, self.settings.api_max_category_share)
        t3 = time.perf_counter()
        timings["rules"] = (t3 - t1) * 1000
        stage["rules"].observe(t3 - t1)

        index = cands.item_index.tolist()
        ids = cands.item_ids.tolist()
        catalogue = model.catalogue
        category_of, price_of, title_of = (catalogue.category_of, catalogue.price_of,
                                           catalogue.title_of)
        source = cands.source
        items = []
        item_ids, item_scores = [], []
        for rank, pos in enumerate(chosen, 1):
            item = index[pos]
            score = float(scores[pos])
            item_ids.append(ids[pos])
            item_scores.append(score)
            items.append({"item_id": ids[pos], "title": title_of[item], "score": score,
                          "rank": rank, "category": category_of[item],
                          "price": price_of[item], "stage": item_stage, "source": source})
        request_id = uuid.uuid4().hex
        body = {"request_id": request_id, "user_id": user_id, "model_name": model.name,
                "model_version": model.version, "arm": arm, "cold_start": cold_start,
                "fallback": fallback, "items": items}
        self.metrics.ab_requests.labels(arm, model.version).inc()
        if item_stage == "ranker":
            self.metrics.observe_scores(arm, model.version, item_scores)
        if self.settings.api_publish_impressions:
            features_served = x[chosen].tobytes() if x is not None else b""
            asyncio.get_running_loop().call_soon(self._publish, ServedResponse(
                request_id, datetime.now(UTC), user_id, arm, model.version, cold_start,
                fallback, item_ids, item_scores, features_served, req.context))
        return Served(body, timings)

    async def _candidates(self, model: ServedModel, user_id: str, filters: Filters
                          ) -> Candidates:
        """The version's candidates for the user, from its LRU cache when seen before."""
        key = candidate_key(user_id, filters)
        cands, hit = self._cached(model, model.candidate_cache, key)
        if cands is None:
            cands = await self._call(search_candidates, model, key, self.n_candidates)
            self._remember(model.candidate_cache, key, cands)
        if self.settings.api_candidate_cache_size:
            self.metrics.candidate_cache.labels("hit" if hit else "miss").inc()
        return cands

    def _fallback(self, model: ServedModel, user_id: str, filters: Filters) -> Candidates:
        """:meth:`popular_for`, cached per (user, filters) like the candidates."""
        key = candidate_key(user_id, filters)
        cands, _ = self._cached(model, model.fallback_cache, key)
        if cands is None:
            cands = self.popular_for(model, user_id, filters)
            self._remember(model.fallback_cache, key, cands)
        return cands

    def _cached(self, model: ServedModel, cache: OrderedDict, key: CandidateKey
                ) -> tuple[Candidates | None, bool]:
        hit = cache.get(key) if self.settings.api_candidate_cache_size else None
        if hit is None:
            return None, False
        cache.move_to_end(key)
        idx, scores, source = hit
        return Candidates(idx, model.retrieval.item_ids[idx], scores, source), True

    def _remember(self, cache: OrderedDict, key: CandidateKey, cands: Candidates) -> None:
        """Keep ``cands`` under ``key``, dropping the least recently used past the size."""
        size = self.settings.api_candidate_cache_size
        if size:
            cache[key] = (cands.item_index, cands.scores, cands.source)
            if len(cache) > size:
                cache.popitem(last=False)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Inline on the event loop, or on a worker thread (``api_worker_threads``)."""
        if self.pool is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def rank(self, model: ServedModel, cands: Candidates, user_id: str,
             features: tuple[dict[str, Any], dict[str, list[Any]]]
             ) -> tuple[np.ndarray, np.ndarray]:
        """The ranker's input matrix and its scores (ValueError when they are unusable)."""
        x = self.assemble(cands, user_id, features[0], features[1], model.retrieval,
                          datetime.now(UTC))
        scores = np.asarray(model.bundle.score(x), dtype=np.float64)
        if scores.shape != (len(cands),) or not np.isfinite(scores).all():
            raise ValueError(f"ranker returned shape {scores.shape} or non-finite scores")
        return x, scores

    def popular_for(self, model: ServedModel, user_id: str, filters: Filters) -> Candidates:
        """Popularity candidates for a known user when online features are unavailable:
        weighted by the user's category affinity, without what the user bought."""
        retrieval = model.retrieval
        popularity = retrieval.popularity
        user = retrieval.user_index(user_id)
        codes = np.array([model.catalogue.category_index[c] for c in filters.categories
                          if c in model.catalogue.category_index], np.int64)
        if user is not None:
            m = retrieval.user_items
            lo, hi = m.indptr[user], m.indptr[user + 1]
            affinity = popularity.category_affinity(m.indices[lo:hi], m.data[lo:hi], codes)
        else:
            affinity = popularity.category_affinity(np.empty(0, np.int64), None, codes)
        scores = popularity.user_scores(affinity).astype(np.float32, copy=True)
        allowed = model.catalogue.mask(list(filters.categories), filters.min_price,
                                       filters.max_price, filters.in_stock)
        if allowed is not None:
            scores[~allowed] = -np.inf
        if user is not None:
            p = retrieval.purchased
            scores[p.indices[p.indptr[user]:p.indptr[user + 1]]] = -np.inf
        idx = top_n(scores, self.n_candidates)
        return Candidates(idx, retrieval.item_ids[idx], scores[idx], "popularity")

    def _publish(self, served: ServedResponse) -> None:
        """Hand the response's serving log and impressions to the outbox."""
        try:
            if not self.outbox.offer_served(served):
                log.warning("outbox full: impressions of request %s not published (counted "
                            "as rejected)", served.request_id)
        except Exception:
            log.exception("could not publish the serving log of request %s",
                          served.request_id)
