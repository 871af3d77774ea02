"""Content vectors for items without interactions, mapped into the ALS item-factor space.

Features: one-hot category, brand and price band (quantiles of the warm items' prices),
plus TF-IDF over title and genres. A ridge regression, trained on the items that have
ALS factors, maps features to factors, so a new item lands next to the items whose
content it shares and the same dot-product scoring retrieves it. Predicted vectors are
shrunk towards the mean by the ridge; they are rescaled to the median norm of the warm
items so a new item scores like a typical item of its neighbourhood, not like a rare one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from retrieval.catalogue import Catalogue

PRICE_BANDS = 8


def _features(items: pd.DataFrame, edges: np.ndarray) -> pd.DataFrame:
    price = items["price"].to_numpy(dtype=np.float64, na_value=np.nan)
    band = np.where(np.isnan(price), "none",
                    np.char.add("p", np.searchsorted(edges, np.nan_to_num(price)).astype(str)))
    text = (items["title"].fillna("") + " " + items["genres"].fillna("").str.replace("|", " "))
    return pd.DataFrame({
        "category": items["category"].fillna("unknown").astype(str),
        "brand": items["brand"].fillna("none").astype(str),
        "price_band": band,
        "text": text.str.replace(r"[^\w\s']", " ", regex=True),
    })


@dataclass
class ContentMapper:
    """Item content → ALS factor space (ridge regression on a sparse feature matrix)."""

    pipeline: Pipeline
    price_edges: np.ndarray
    target_norm: float

    @classmethod
    def fit(cls, catalogue: Catalogue, item_factors: np.ndarray, warm: np.ndarray,
            alpha: float = 1.0) -> ContentMapper:
        """Train on the ``warm`` items (boolean mask over the catalogue)."""
        items = catalogue.items
        prices = items["price"].to_numpy(dtype=np.float64, na_value=np.nan)[warm]
        prices = prices[~np.isnan(prices)]
        edges = (np.unique(np.quantile(prices, np.linspace(0, 1, PRICE_BANDS + 1)[1:-1]))
                 if len(prices) else np.empty(0))
        encoder = ColumnTransformer([
            ("onehot", OneHotEncoder(handle_unknown="ignore"), ["category", "brand",
                                                                "price_band"]),
            ("text", TfidfVectorizer(min_df=2, sublinear_tf=True,
                                     token_pattern=r"(?u)\b[^\W\d]\w+\b"), "text"),
        ])
        pipeline = Pipeline([("features", encoder), ("ridge", Ridge(alpha=alpha))])
        targets = item_factors[warm]
        pipeline.fit(_features(items[warm], edges), targets)
        norm = float(np.median(np.linalg.norm(targets, axis=1))) if len(targets) else 1.0
        return cls(pipeline, edges, norm)

    def transform(self, items: pd.DataFrame) -> np.ndarray:
        """Factor vectors for items (rows of a catalogue frame), float32."""
        pred = np.asarray(self.pipeline.predict(_features(items, self.price_edges)),
                          dtype=np.float64).reshape(len(items), -1)
        norms = np.linalg.norm(pred, axis=1, keepdims=True)
        return (pred * (self.target_norm / np.maximum(norms, 1e-12))).astype(np.float32)


def fill_cold_items(catalogue: Catalogue, item_factors: np.ndarray, warm: np.ndarray,
                    alpha: float = 1.0) -> tuple[np.ndarray, ContentMapper | None]:
    """Item factors where items outside ``warm`` get their content vector; and the mapper."""
    cold = ~warm
    if not cold.any() or warm.sum() < 2:
        return item_factors, None
    mapper = ContentMapper.fit(catalogue, item_factors, warm, alpha)
    filled = item_factors.copy()
    filled[cold] = mapper.transform(catalogue.items[cold])
    return filled, mapper
