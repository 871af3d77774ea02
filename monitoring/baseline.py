"""The drift baseline saved with every ranker model version.

Training records, for each ranker feature and for the model's scores, quantile
bin edges with the share of rows in each bin (for PSI), the share of rows where
it is missing (NaN: an expired or absent feature row), and a seeded random
sample of raw values (for the two-sample KS test). The monitor compares live
windows against exactly this object, read back from the model's artifacts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BASELINE_FILE = "drift_baseline.json"
DEFAULT_BINS = 10
DEFAULT_SAMPLE = 2_000


@dataclass(frozen=True)
class Distribution:
    """One variable's reference distribution."""

    edges: list[float]  # interior quantile edges, ascending and unique
    shares: list[float]  # len(edges) + 1 bin shares of the finite values, summing to 1
    sample: list[float]
    count: int  # finite values
    missing: float = 0.0  # share of all values that were missing (not finite)

    @classmethod
    def of(cls, values: np.ndarray, bins: int = DEFAULT_BINS, sample: int = DEFAULT_SAMPLE,
           seed: int = 0) -> Distribution:
        x = np.asarray(values, dtype=np.float64).ravel()
        total = len(x)
        x = x[np.isfinite(x)]
        if len(x) == 0:
            raise ValueError("a baseline needs at least one finite value")
        inner = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])
        edges = np.unique(inner)
        counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
        rng = np.random.default_rng(seed)
        kept = x if len(x) <= sample else rng.choice(x, size=sample, replace=False)
        return cls(edges=edges.tolist(), shares=(counts / len(x)).tolist(),
                   sample=np.sort(kept).tolist(), count=len(x),
                   missing=1.0 - len(x) / total)

    def bin_shares(self, values: np.ndarray) -> np.ndarray:
        """Shares of ``values`` in this distribution's bins (same edges)."""
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        counts = np.bincount(np.searchsorted(self.edges, x, side="right"),
                             minlength=len(self.edges) + 1)
        return counts / max(len(x), 1)


@dataclass(frozen=True)
class DriftBaseline:
    features: dict[str, Distribution]
    scores: Distribution
    meta: dict[str, str | float | int] = field(default_factory=dict)

    @classmethod
    def build(cls, features: Mapping[str, np.ndarray], scores: np.ndarray,
              bins: int = DEFAULT_BINS, sample: int = DEFAULT_SAMPLE, seed: int = 0,
              meta: Mapping[str, str | float | int] | None = None) -> DriftBaseline:
        return cls(
            features={name: Distribution.of(v, bins, sample, seed) for name, v in features.items()},
            scores=Distribution.of(scores, bins, sample, seed),
            meta=dict(meta or {}),
        )

    def to_dict(self) -> dict:
        return {
            "features": {name: d.__dict__ for name, d in self.features.items()},
            "scores": self.scores.__dict__,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, raw: Mapping) -> DriftBaseline:
        try:
            return cls(
                features={name: Distribution(**d) for name, d in raw["features"].items()},
                scores=Distribution(**raw["scores"]),
                meta=dict(raw.get("meta", {})),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a drift baseline: {exc}") from exc

    def save(self, folder: Path) -> Path:
        path = Path(folder) / BASELINE_FILE
        path.write_text(json.dumps(self.to_dict()))
        return path

    @classmethod
    def load(cls, folder: Path) -> DriftBaseline:
        return cls.from_dict(json.loads((Path(folder) / BASELINE_FILE).read_text()))
