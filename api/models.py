"""The models the API serves, and how it follows the MLflow aliases (hot swap).

A :class:`ServedModel` is everything one registered ranker version needs to answer
requests: the ranker bundle, the retrieval model trained with it (so a swap swaps both),
its candidate generator, similar items and frequently-bought-together. The served pair
(champion, challenger) is one immutable :class:`ServingState`; a swap replaces the
reference in one assignment, and a request holds the state it started with, so no
in-flight request ever sees half a swap.

:meth:`ModelManager.refresh` reads the aliases; a version that is not served yet is
loaded and checked first — the bundle's own checks (files, feature list, ONNX parity with
LightGBM on stored rows) and one probe request through candidates → features → ranking
with finite scores. A version failing any of it is refused (listed on ``GET /models``,
counted in ``recsys_model_refused_total``) and the previous model keeps serving.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from api.ab import CHALLENGER, CHAMPION, arm_for
from api.catalogue import ServingCatalogue
from api.metrics import ApiMetrics
from recsys.settings import Settings
from retrieval.candidates import CandidateGenerator, Candidates, Filters
from retrieval.config import RetrievalConfig
from retrieval.fbt import FrequentlyBoughtTogether
from retrieval.interactions import PURCHASE, Interactions
from retrieval.model import RetrievalModel
from retrieval.similar import SimilarItems

log = logging.getLogger(__name__)
VIEW = 1  # EVENT_TYPES.index("view")
#: A version whose load fails for a transient reason this often in a row is refused.
MAX_TRANSIENT_FAILURES = 3


class ModelRefused(Exception):
    """The version failed a check; it will not be served."""


@dataclass(frozen=True, eq=False)
class ServedModel:
    name: str
    version: str
    source: str
    loaded_at: datetime
    bundle: Any  # ranking.bundle.RankerBundle
    retrieval: RetrievalModel
    catalogue: ServingCatalogue
    generator: CandidateGenerator
    similar: SimilarItems
    fbt: FrequentlyBoughtTogether
    popular_cache: dict = field(default_factory=dict)
    #: (user, filters) -> (item_index, scores, source): a version's candidates for a user
    #: never change (no fold-in on this path), so a repeat visit skips the search
    candidate_cache: OrderedDict = field(default_factory=OrderedDict)
    #: the same for the popularity lists served to known users while Redis is away: a
    #: fallback must not cost more than the path it replaces, or an overload that trips
    #: the breaker feeds itself (measured: 1 ms of scoring 100K items per request)
    fallback_cache: OrderedDict = field(default_factory=OrderedDict)


@dataclass(frozen=True)
class ServingState:
    champion: ServedModel | None = None
    challenger: ServedModel | None = None
    challenger_share: float = 0.0
    salt: str = ""

    def pick(self, user_id: str) -> tuple[str, ServedModel | None]:
        if self.challenger is not None and arm_for(user_id, self.challenger_share,
                                                   self.salt) == CHALLENGER:
            return CHALLENGER, self.challenger
        return CHAMPION, self.champion

    def shares(self) -> dict[str, float]:
        if self.challenger is None:
            return {CHAMPION: 1.0}
        return {CHAMPION: 1.0 - self.challenger_share, CHALLENGER: self.challenger_share}


#: A candidate-cache key: (user_id, categories, min_price, max_price, in_stock).
CandidateKey = tuple[str, tuple[str, ...], float | None, float | None, bool]


def candidate_key(user_id: str, filters: Filters) -> CandidateKey:
    return (user_id, tuple(filters.categories), filters.min_price, filters.max_price,
            filters.in_stock)


def search_candidates(model: ServedModel, key: CandidateKey, n: int) -> Candidates:
    """The version's top-``n`` candidates for one cache key (the uncached path)."""
    user_id, categories, min_price, max_price, in_stock = key
    return model.generator.for_user(user_id, n, Filters(categories, min_price, max_price,
                                                        in_stock), None,
                                    list(categories) or None)


#: Keys prewarmed per step: the unfiltered ones of a step share one matrix product.
PREWARM_CHUNK = 32
_NO_FILTERS = ((), None, None, False)


def prewarm_candidates(new: ServedModel, old: ServedModel, n: int, limit: int,
                       budget_s: float) -> int:
    """Fill ``new``'s candidate cache with the keys most recently used on ``old``.

    Runs before a swap, on the refresh thread (``new`` is not visible to requests yet), so
    the users being served now do not all miss the cache at once after it: without this the
    first ~30 s after a swap queued at 300 requests/s (~1.3 ms more CPU per uncached
    request). Unfiltered keys are searched ``PREWARM_CHUNK`` at a time through
    ``CandidateGenerator.for_users`` (one matrix product per chunk), the others one by one.
    Stops after ``limit`` keys or ``budget_s`` seconds (the delay this adds to the swap, a
    rollback's included); returns how many were warmed.
    """
    if limit <= 0 or budget_s <= 0:
        return 0
    for _ in range(3):  # the event loop may touch the live cache while it is copied
        try:
            keys = list(old.candidate_cache)[-limit:]
            break
        except RuntimeError:
            continue
    else:
        return 0
    deadline = time.monotonic() + budget_s
    warmed: list[tuple[CandidateKey, tuple]] = []
    pending = keys[::-1]  # the most recent first, in case the budget runs out
    for lo in range(0, len(pending), PREWARM_CHUNK):
        if time.monotonic() >= deadline:
            break
        chunk = pending[lo:lo + PREWARM_CHUNK]
        plain = [key for key in chunk if key[1:] == _NO_FILTERS]  # one product for these
        batched = dict(zip(plain, new.generator.for_users([key[0] for key in plain], n),
                           strict=True))
        for key in chunk:
            cands = batched.get(key)
            if cands is None:
                if time.monotonic() >= deadline:
                    break
                cands = search_candidates(new, key, n)
            warmed.append((key, (cands.item_index, cands.scores, cands.source)))
    for key, value in reversed(warmed):  # back in LRU order: the most recent last
        new.candidate_cache[key] = value
    return len(warmed)


def neighbours(model: RetrievalModel, settings: Settings
               ) -> tuple[SimilarItems, FrequentlyBoughtTogether]:
    """Similar items and FBT from what a retrieval model keeps (no raw events).

    The model holds each user's interactions and purchases, not their times or
    sessions, so a user is one co-view basket and one purchase basket (every timestamp
    is equal, which puts all of a user's purchases within the FBT window).
    """
    seen = model.user_items.tocoo()
    bought = model.purchased.tocoo()
    n = seen.nnz + bought.nnz
    events = Interactions(
        model.user_ids, model.item_ids,
        user=np.concatenate([seen.row, bought.row]).astype(np.int32),
        item=np.concatenate([seen.col, bought.col]).astype(np.int32),
        event_type=np.concatenate([np.full(seen.nnz, VIEW, np.int8),
                                   np.full(bought.nnz, PURCHASE, np.int8)]),
        ts_ms=np.zeros(n, np.int64))
    similar = SimilarItems(model.als.item_factors, events, settings.similar_als_weight,
                           settings.fbt_window_hours)
    fbt = FrequentlyBoughtTogether.fit(events, settings.fbt_window_hours,
                                       settings.fbt_min_support)
    return similar, fbt


def load_served(name: str, version: str, settings: Settings) -> ServedModel:
    """Load, check and warm one registered version; ModelRefused if it must not serve."""
    from ranking.bundle import BundleError, RankerBundle

    source = f"models:/{name}/{version}"
    try:
        bundle = RankerBundle.load(source, settings)
        bundle.smoke_check()
    except BundleError as exc:
        raise ModelRefused(f"bundle check failed: {exc}") from exc
    retrieval = bundle.retrieval
    catalogue = ServingCatalogue(retrieval.catalogue.items)
    retrieval.catalogue = catalogue
    retrieval.user_index("")  # build the id maps now, not on the first request
    retrieval.item_index("")
    generator = CandidateGenerator(retrieval, RetrievalConfig.from_settings(settings))
    similar, fbt = neighbours(retrieval, settings)
    served = ServedModel(name, str(version), source, datetime.now(UTC), bundle, retrieval,
                         catalogue, generator, similar, fbt)
    probe(served)
    return served


def probe(served: ServedModel) -> None:
    """One request through candidates → assemble → score without online features."""
    from ranking.features import ITEM_FEATURE_REFS, USER_FEATURE_REFS, assemble, full_name

    retrieval = served.retrieval
    counts = np.diff(retrieval.user_items.indptr)
    users = np.flatnonzero(counts > 0)
    if not len(users):
        raise ModelRefused("the retrieval model has no user with interactions")
    user_id = str(retrieval.user_ids[users[np.argmax(counts[users])]])
    candidates = served.generator.for_user(user_id)
    if not len(candidates):
        raise ModelRefused("no candidates for a probe user")
    user_features = {full_name(r): None for r in USER_FEATURE_REFS}
    item_features = {full_name(r): [None] * len(candidates) for r in ITEM_FEATURE_REFS}
    try:
        x = assemble(candidates, user_id, user_features, item_features, retrieval,
                     datetime.now(UTC))
        scores = np.asarray(served.bundle.score(x))
    except Exception as exc:
        raise ModelRefused(f"probe request failed: {exc!r}") from exc
    if scores.shape != (len(candidates),) or not np.isfinite(scores).all():
        raise ModelRefused(f"probe scores have shape {scores.shape} or are not finite")


def settle_garbage() -> None:
    """Collect what the previous models left, then freeze the survivors (the models).

    A loaded model is millions of long-lived Python objects (id maps, catalogue); a full
    cyclic collection walking them would stall requests for tens of milliseconds every so
    often. Frozen objects are left out of collections until the next swap unfreezes them.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def freeze_survivors(interval_s: float, sweep_s: float = 0.0) -> None:
    """Every ``interval_s``, freeze what has survived so far (the caches that fill after a
    model loads: item rows, candidate lists, packed commands); every ``sweep_s`` (0 = only
    at model swaps) unfreeze, collect and freeze again instead.

    Without the freeze those objects pile up in the oldest generation, and an automatic
    full collection walks all of them: pauses of the event loop up to ~160 ms at 300
    requests/s (measured with a gc callback; none after a model load with this on).
    Frozen objects are still freed by reference counting when a cache drops them; only
    reference cycles frozen while alive (an in-flight request's frames, say) wait for the
    next sweep, so the sweep bounds that leak at one deliberate full pass per ``sweep_s``.
    """
    last_sweep = time.monotonic()
    while True:
        await asyncio.sleep(interval_s)
        if sweep_s > 0 and time.monotonic() - last_sweep >= sweep_s:
            settle_garbage()
            last_sweep = time.monotonic()
        else:
            gc.freeze()


@dataclass
class Refusal:
    version: str
    reason: str
    at: str
    arm: str


Loader = Callable[[str, str, Settings], ServedModel]


class ModelManager:
    def __init__(self, settings: Settings, metrics: ApiMetrics, loader: Loader = load_served,
                 client: Any = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.loader = loader
        self.name = settings.registered_model_name
        self.aliases: dict[str, str | None] = {CHAMPION: None, CHALLENGER: None}
        self.state = ServingState(challenger_share=settings.api_challenger_share,
                                  salt=settings.api_ab_salt)
        self.refused: deque[Refusal] = deque(maxlen=50)
        self._refused_versions: set[str] = set()
        self._transient: dict[str, int] = {}
        #: version -> why its last load failed (for /ready while nothing serves)
        self.load_errors: dict[str, str] = {}
        self._client = client
        self._lock = threading.Lock()
        self.last_poll_error: str | None = None
        self.last_poll_at: float | None = None
        self._remembered: dict[str, str | None] | None = None  # as last written to the cache

    @property
    def client(self) -> Any:
        if self._client is None:
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.settings.mlflow_tracking_uri,
                                        registry_uri=self.settings.mlflow_tracking_uri)
        return self._client

    def wanted_versions(self) -> dict[str, str | None]:
        """The versions the champion and challenger aliases point at (None: no such alias
        or model; anything else, e.g. MLflow unreachable, raises). One registry call, made
        every few seconds: two calls by alias cost 4.0-4.3 ms of this process's CPU and
        10.5-11.3 ms of the MLflow server's, this one 2.4-2.6 and 8.5-8.8
        (``bench/bench_alias_poll.py``)."""
        from ranking.registry import get_aliases

        aliases = get_aliases(self.client, self.name)
        return {CHAMPION: aliases.get(self.settings.api_champion_alias),
                CHALLENGER: aliases.get(self.settings.api_challenger_alias)}

    def refresh(self) -> bool:
        """Follow the aliases once; True when the served models changed."""
        with self._lock:
            try:
                wanted = self.wanted_versions()
            except Exception as exc:
                self.last_poll_error = f"{type(exc).__name__}: {exc}"[:500]
                if self.state.champion is not None:
                    log.warning("alias poll failed, serving what is loaded: %s",
                                self.last_poll_error)
                    return False
                wanted = self._cached_aliases()
                if wanted[CHAMPION] is None:
                    log.warning("alias poll failed and no champion in the local model cache: "
                                "%s", self.last_poll_error)
                    return False
                log.warning("MLflow unreachable (%s); starting from the local model cache: "
                            "champion %s", self.last_poll_error, wanted[CHAMPION])
            else:
                self.last_poll_error = None
                self.last_poll_at = time.time()
                if wanted != self._remembered:  # the file is rewritten when they move
                    self._remember(wanted)
            self.aliases = wanted
            current = self.state
            loaded = {m.version: m for m in (current.champion, current.challenger) if m}
            chosen: dict[str, ServedModel | None] = {}
            for arm in (CHAMPION, CHALLENGER):
                served = getattr(current, arm)
                version = wanted[arm]
                if version is None:  # no champion alias: keep serving; no challenger: none
                    chosen[arm] = served if arm == CHAMPION else None
                elif version in loaded:
                    chosen[arm] = loaded[version]
                elif version in self._refused_versions:
                    chosen[arm] = served
                else:
                    chosen[arm] = self._load(arm, version) or served
                    if chosen[arm] is not served:
                        loaded[version] = chosen[arm]
                        self._prewarm(arm, chosen[arm], served)
            if (chosen[CHAMPION] is current.champion
                    and chosen[CHALLENGER] is current.challenger):
                return False
            self.state = ServingState(chosen[CHAMPION], chosen[CHALLENGER],
                                      self.settings.api_challenger_share,
                                      self.settings.api_ab_salt)
            self.metrics.set_models([(arm, m.name, m.version) for arm, m in
                                     ((CHAMPION, chosen[CHAMPION]),
                                      (CHALLENGER, chosen[CHALLENGER])) if m is not None])
            log.info("serving champion %s, challenger %s",
                     chosen[CHAMPION] and chosen[CHAMPION].version,
                     chosen[CHALLENGER] and chosen[CHALLENGER].version)
            settle_garbage()
            return True

    def _remember(self, wanted: dict[str, str | None]) -> None:
        """Note the aliases in the model cache, for a start while MLflow is down."""
        from ranking.bundle import remember_aliases

        try:
            remember_aliases(self.settings, self.name,
                             {self.settings.api_champion_alias: wanted[CHAMPION],
                              self.settings.api_challenger_alias: wanted[CHALLENGER]})
            self._remembered = dict(wanted)
        except OSError as exc:  # an unwritable cache must not stop the serving
            log.warning("could not record the aliases in the model cache: %s", exc)

    def _cached_aliases(self) -> dict[str, str | None]:
        """The aliases as last seen from MLflow, for versions complete in the cache."""
        from ranking.bundle import cached_alias

        return {CHAMPION: cached_alias(self.settings, self.name,
                                       self.settings.api_champion_alias),
                CHALLENGER: cached_alias(self.settings, self.name,
                                         self.settings.api_challenger_alias)}

    def _load(self, arm: str, version: str) -> ServedModel | None:
        started = time.perf_counter()
        try:
            served = self.loader(self.name, version, self.settings)
        except ModelRefused as exc:
            self.load_errors[version] = str(exc)[:300]
            self._refuse(arm, version, str(exc))
            return None
        except Exception as exc:
            self.load_errors[version] = f"{type(exc).__name__}: {exc}"[:300]
            failures = self._transient.get(version, 0) + 1
            self._transient[version] = failures
            log.warning("loading %s version %s failed (%d/%d): %r", self.name, version, failures,
                        MAX_TRANSIENT_FAILURES, exc)
            if failures >= MAX_TRANSIENT_FAILURES:
                self._refuse(arm, version, f"load failed {failures} times: {exc!r}"[:500])
            return None
        log.info("loaded %s version %s for %s in %.1f s", self.name, version, arm,
                 time.perf_counter() - started)
        return served

    def _prewarm(self, arm: str, new: ServedModel, old: ServedModel | None) -> None:
        if old is None or not self.settings.api_candidate_cache_size:
            return
        started = time.perf_counter()
        try:
            count = prewarm_candidates(new, old, self.settings.candidate_count,
                                       min(self.settings.api_prewarm_candidates,
                                           self.settings.api_candidate_cache_size),
                                       self.settings.api_prewarm_seconds)
        except Exception:  # an optimisation: a failure must not hold the swap back
            log.exception("prewarming version %s failed; it starts with an empty cache",
                          new.version)
            return
        self.metrics.candidate_cache.labels("prewarmed").inc(count)
        log.info("prewarmed %d candidate lists of version %s for %s (from %s) in %.2f s",
                 count, new.version, arm, old.version, time.perf_counter() - started)

    def _refuse(self, arm: str, version: str, reason: str) -> None:
        log.error("refused %s version %s (%s): %s", self.name, version, arm, reason)
        self._refused_versions.add(version)
        self.refused.append(Refusal(version, reason, datetime.now(UTC).isoformat(), arm))
        self.metrics.model_refused.labels(arm).inc()

    def describe(self) -> dict[str, Any]:
        """The ``GET /models`` body."""
        state = self.state
        shares = state.shares()
        arms = [{"arm": arm, "version": m.version, "loaded_at": m.loaded_at.isoformat(),
                 "share": shares[arm], "source": m.source}
                for arm, m in ((CHAMPION, state.champion), (CHALLENGER, state.challenger))
                if m is not None]
        return {"registered_model": self.name, "aliases": dict(self.aliases), "arms": arms,
                "refused": [{"version": r.version, "reason": r.reason, "at": r.at}
                            for r in self.refused]}
