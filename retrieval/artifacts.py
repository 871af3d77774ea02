"""Save and load a :class:`RetrievalModel` as a folder of plain files (no pickles).

    user_factors.npy  item_factors.npy   float32 factors
    user_ids.npy      item_ids.npy       id maps (index -> id)
    item_cold.npy     popularity.npy     content-vector flag, popularity per item
    user_items.npz    purchased.npz      histories (scipy sparse)
    catalogue.parquet                    item metadata for filters and content
    config.json       metrics.json       ALS config; training metrics
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from retrieval.als import ALSModel
from retrieval.catalogue import Catalogue
from retrieval.config import ALSConfig
from retrieval.model import RetrievalModel
from retrieval.popularity import Popularity

FILES = ("user_factors.npy", "item_factors.npy", "user_ids.npy", "item_ids.npy",
         "item_cold.npy", "popularity.npy", "user_items.npz", "purchased.npz",
         "catalogue.parquet", "config.json", "metrics.json")


class ArtifactError(ValueError):
    """A model folder is incomplete or inconsistent."""


def save_model(model: RetrievalModel, out: Path, extra_metrics: dict[str, Any] | None = None
               ) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "user_factors.npy", model.als.user_factors)
    np.save(out / "item_factors.npy", model.als.item_factors)
    np.save(out / "user_ids.npy", model.user_ids.astype(str))
    np.save(out / "item_ids.npy", model.item_ids.astype(str))
    np.save(out / "item_cold.npy", model.item_cold)
    np.save(out / "popularity.npy", model.popularity.scores)
    sp.save_npz(out / "user_items.npz", model.user_items)
    sp.save_npz(out / "purchased.npz", model.purchased)
    model.catalogue.save(out / "catalogue.parquet")
    (out / "config.json").write_text(json.dumps(model.als.config.to_dict(), indent=2) + "\n")
    metrics = {**model.metrics, **(extra_metrics or {})}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return out


def load_model(folder: Path) -> RetrievalModel:
    missing = [f for f in FILES if not (folder / f).exists()]
    if missing:
        raise ArtifactError(f"{folder}: missing {', '.join(missing)}")
    load = lambda name: np.load(folder / name, allow_pickle=False)  # noqa: E731
    config = ALSConfig.from_dict(json.loads((folder / "config.json").read_text()))
    als = ALSModel(load("user_factors.npy"), load("item_factors.npy"), config)
    user_ids, item_ids = load("user_ids.npy"), load("item_ids.npy")
    user_items = sp.load_npz(folder / "user_items.npz").tocsr()
    catalogue = Catalogue.load(folder / "catalogue.parquet")
    shapes = {
        "user_factors rows": (als.user_factors.shape[0], len(user_ids)),
        "item_factors rows": (als.item_factors.shape[0], len(item_ids)),
        "factor width": (als.user_factors.shape[1], als.item_factors.shape[1]),
        "user_items shape": (user_items.shape, (len(user_ids), len(item_ids))),
        "catalogue items": (len(catalogue), len(item_ids)),
    }
    for what, (got, want) in shapes.items():
        if got != want:
            raise ArtifactError(f"{folder}: {what} {got} != {want}")
    if not np.isfinite(als.item_factors).all() or not np.isfinite(als.user_factors).all():
        raise ArtifactError(f"{folder}: factors contain NaN or inf")
    codes = catalogue.category_codes
    popularity = Popularity(load("popularity.npy"), codes, int(codes.max()) + 1 if len(codes)
                            else 0)
    return RetrievalModel(
        als, user_ids, item_ids, catalogue, user_items,
        sp.load_npz(folder / "purchased.npz").tocsr(), load("item_cold.npy"), popularity,
        json.loads((folder / "metrics.json").read_text()),
    )
