"""Implicit ALS: training on the confidence matrix, and fold-in of users without retraining."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from retrieval.config import ALSConfig

log = logging.getLogger(__name__)

#: ``callback(iteration, seconds, loss)`` after every ALS sweep (implicit's signature).
IterationCallback = Callable[[int, float, float | None], None]


@dataclass
class ALSModel:
    """User and item factors of a fitted model, plus the config that produced them."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    config: ALSConfig
    _solver: AlternatingLeastSquares | None = field(default=None, repr=False, compare=False)

    @property
    def factors(self) -> int:
        return int(self.item_factors.shape[1])

    def solver(self) -> AlternatingLeastSquares:
        """An implicit model holding these factors (used for its least-squares fold-in)."""
        if self._solver is None or self._solver.item_factors is not self.item_factors:
            with threadpool_limits(1, "blas"):
                model = AlternatingLeastSquares(
                    factors=self.factors, regularization=self.config.regularization,
                    alpha=self.config.alpha, num_threads=self.config.num_threads)
            model.item_factors = self.item_factors
            model.user_factors = self.user_factors
            self._solver = model
        return self._solver

    def fold_in(self, user_items: sp.csr_matrix) -> np.ndarray:
        """Fresh user vectors from confidence rows (one per user) over the model's items.

        This is the closed-form least-squares step of ALS with the item factors held fixed
        (implicit's ``recalculate_user``), so a user whose events arrived after training
        gets a vector without retraining. Returns ``(rows, factors)`` float32.
        """
        user_items = sp.csr_matrix(user_items, dtype=np.float32)
        if user_items.shape[1] != self.item_factors.shape[0]:
            raise ValueError(f"user_items has {user_items.shape[1]} columns, the model "
                             f"{self.item_factors.shape[0]} items")
        rows = user_items.shape[0]
        return np.asarray(self.solver().recalculate_user(np.arange(rows), user_items),
                          dtype=np.float32).reshape(rows, self.factors)


def train_als(
    user_items: sp.csr_matrix,
    config: ALSConfig,
    show_progress: bool = True,
    callback: IterationCallback | None = None,
    track_loss: bool = False,
) -> ALSModel:
    """Fit ALS on a user × item confidence matrix (weights already applied; alpha scales them).

    Progress: implicit's tqdm bar (``show_progress``) and/or ``callback`` after every
    iteration, with the training loss when ``track_loss`` (costs one extra pass).

    OpenBLAS/MKL are limited to one thread while implicit runs its own thread pool, which
    is what implicit asks for (it warns otherwise).
    """
    started = time.perf_counter()
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=config.factors,
            regularization=config.regularization,
            alpha=config.alpha,
            iterations=config.iterations,
            random_state=config.seed,
            num_threads=config.num_threads,
            calculate_training_loss=track_loss,
        )
        model.fit(sp.csr_matrix(user_items, dtype=np.float32), show_progress=show_progress,
                  callback=callback)
    log.info("ALS %s users x %s items, %s nnz: %.1fs", *user_items.shape, user_items.nnz,
             time.perf_counter() - started)
    return ALSModel(np.asarray(model.user_factors), np.asarray(model.item_factors), config)
