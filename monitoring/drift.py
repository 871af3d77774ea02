"""Drift maths: PSI against a baseline's bin shares, two-sample KS, sliding windows.

Missing values (NaN: a feature row that expired or was never written) are a bin of
their own in PSI, so a feature that goes missing at serving shows as drift instead of
vanishing from the statistics; KS compares the finite values only.

``psi`` and ``ks`` are pure functions (hand-checked in the tests); :class:`SlidingWindow`
keeps a bounded, uniform sample of the values seen in the last ``window_s`` seconds,
in time buckets so that old values expire bucket by bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from monitoring.baseline import Distribution

DEFAULT_PSI_EPS = 1e-4


def psi(expected_shares: Iterable[float], actual_shares: Iterable[float],
        eps: float = DEFAULT_PSI_EPS) -> float:
    """Population stability index: ``sum((a - e) * ln(a / e))`` over bins.

    Shares below ``eps`` are floored at ``eps`` so that an empty bin gives a large
    but finite contribution instead of infinity.
    """
    e = np.maximum(np.asarray(list(expected_shares), dtype=np.float64), eps)
    a = np.maximum(np.asarray(list(actual_shares), dtype=np.float64), eps)
    if e.shape != a.shape:
        raise ValueError(f"psi: {len(e)} expected shares but {len(a)} actual shares")
    return float(np.sum((a - e) * np.log(a / e)))


def ks(reference_sample: Iterable[float], live: Iterable[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test: (statistic D, p-value), via scipy."""
    result = stats.ks_2samp(np.asarray(list(reference_sample), dtype=np.float64),
                            np.asarray(list(live), dtype=np.float64))
    return float(result.statistic), float(result.pvalue)


@dataclass(frozen=True)
class DriftMeasure:
    psi: float
    ks: float  # NaN when no live value is finite
    ks_pvalue: float
    samples: int
    missing: float = 0.0  # live share of missing values


def measure(reference: Distribution, live: np.ndarray, eps: float = DEFAULT_PSI_EPS,
            missing: float | None = None) -> DriftMeasure:
    """PSI over the reference's quantile bins plus a missing-value bin; KS against its
    sample over the finite values.

    ``missing`` is the live share of missing values when ``live`` is a sample of the
    finite values only (a :class:`SlidingWindow` counts the missing ones without
    keeping them); by default it is the share of NaN in ``live``.
    """
    x = np.asarray(live, dtype=np.float64).ravel()
    finite = x[np.isfinite(x)]
    if missing is None:
        missing = (len(x) - len(finite)) / len(x) if len(x) else 0.0
    if not 0.0 <= missing <= 1.0:
        raise ValueError(f"measure: missing share {missing} is not in [0, 1]")
    if len(finite) == 0 and missing == 0.0:
        raise ValueError("measure: no live values")
    expected = [*np.asarray(reference.shares) * (1.0 - reference.missing), reference.missing]
    actual = [*reference.bin_shares(finite) * (1.0 - missing), missing]
    d, p = ks(reference.sample, finite) if len(finite) else (math.nan, math.nan)
    return DriftMeasure(psi=psi(expected, actual, eps), ks=d, ks_pvalue=p,
                        samples=len(x), missing=missing)


class _Reservoir:
    """Algorithm R over one bucket: a uniform sample of at most ``cap`` finite values,
    and a count of the missing ones."""

    __slots__ = ("cap", "missing", "seen", "values")

    def __init__(self, cap: int):
        self.cap = cap
        self.seen = 0
        self.missing = 0
        self.values = np.empty(0, dtype=np.float64)

    def add(self, x: np.ndarray, rng: np.random.Generator) -> None:
        room = self.cap - len(self.values)
        if room > 0:
            self.values = np.concatenate([self.values, x[:room]])
            self.seen += min(room, len(x))
            x = x[room:]
        if len(x) == 0:
            return
        # value number i (1-based over the whole stream) replaces slot j < cap with
        # probability cap / i; numpy's fancy assignment keeps the last write per slot,
        # which is what doing it one value at a time would give.
        index = np.arange(self.seen + 1, self.seen + len(x) + 1)
        slots = rng.integers(0, index)
        kept = slots < self.cap
        self.values[slots[kept]] = x[kept]
        self.seen += len(x)


class SlidingWindow:
    """Values of the last ``window_s`` seconds, bucketed by ``bucket_s``, bounded in size.

    Each bucket keeps a uniform sample of at most ``max_samples / buckets`` values; a
    window's sample is the union of its buckets' samples, so heavy buckets are somewhat
    under-weighted when traffic is very uneven (documented in docs/monitoring.md).
    """

    def __init__(self, window_s: float, bucket_s: float, max_samples: int, seed: int = 0):
        if bucket_s <= 0 or window_s < bucket_s:
            raise ValueError("window_s must be at least bucket_s, and bucket_s positive")
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.n_buckets = max(1, math.ceil(window_s / bucket_s))
        self.cap = max(1, max_samples // self.n_buckets)
        self._buckets: dict[int, _Reservoir] = {}
        self._rng = np.random.default_rng(seed)

    def _index(self, ts: float) -> int:
        return math.floor(ts / self.bucket_s)

    def is_late(self, ts: float, now: float) -> bool:
        return self._index(ts) <= self._index(now) - self.n_buckets

    def add(self, ts: float, values: Iterable[float] | np.ndarray, now: float) -> bool:
        """Add values observed at ``ts`` (NaN counted as missing); False (nothing added)
        if ``ts`` is out of the window."""
        if self.is_late(ts, now):
            return False
        x = np.asarray(values, dtype=np.float64).ravel()
        if len(x):
            finite = np.isfinite(x)
            bucket = self._buckets.setdefault(self._index(ts), _Reservoir(self.cap))
            bucket.missing += int(len(x) - finite.sum())
            bucket.add(x[finite], self._rng)
        return True

    def expire(self, now: float) -> None:
        oldest = self._index(now) - self.n_buckets + 1
        for key in [k for k in self._buckets if k < oldest]:
            del self._buckets[key]

    def values(self, now: float) -> np.ndarray:
        self.expire(now)
        newest = self._index(now)
        parts = [b.values for k, b in self._buckets.items() if k <= newest]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)

    def seen(self, now: float) -> int:
        """Finite values observed in the window (before sampling)."""
        self.expire(now)
        return sum(b.seen for k, b in self._buckets.items() if k <= self._index(now))

    def missing(self, now: float) -> int:
        """Missing (non-finite) values observed in the window."""
        self.expire(now)
        return sum(b.missing for k, b in self._buckets.items() if k <= self._index(now))

    def __bool__(self) -> bool:
        return bool(self._buckets)
