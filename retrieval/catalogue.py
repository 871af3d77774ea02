"""Item metadata that retrieval needs: category, brand, price, stock, text, launch time."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from recsys.datasets.layout import ITEMS_FILE

COLUMNS = ["item_id", "title", "category", "genres", "brand", "price", "launch_ts", "in_stock"]


@dataclass
class Catalogue:
    """Items in the order of ``items.parquet`` (the item index used everywhere)."""

    items: pd.DataFrame

    @property
    def item_ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy(dtype=str)

    @property
    def categories(self) -> np.ndarray:
        """Category names; ``category_codes`` indexes into it."""
        return np.asarray(self._category.categories, dtype=str)

    @property
    def category_codes(self) -> np.ndarray:
        return np.asarray(self._category.codes, dtype=np.int32)

    @cached_property
    def _category(self) -> pd.Categorical:
        """Computed once (a factorize of every item: ~ms at 100K items, and candidate
        generation asks for the names on every popularity request)."""
        return pd.Categorical(self.items["category"].fillna("unknown"))

    @property
    def price(self) -> np.ndarray:
        return self.items["price"].to_numpy(dtype=np.float64, na_value=np.nan)

    @property
    def in_stock(self) -> np.ndarray:
        return self.items["in_stock"].to_numpy(dtype=bool)

    def __len__(self) -> int:
        return len(self.items)

    def mask(self, categories: list[str] | None = None, min_price: float | None = None,
             max_price: float | None = None, in_stock: bool = False) -> np.ndarray | None:
        """Boolean mask of the items passing the filters, or None when no filter is set.

        Items without a price fail a price filter.
        """
        if not categories and min_price is None and max_price is None and not in_stock:
            return None
        keep = np.ones(len(self), dtype=bool)
        if categories:
            keep &= self.items["category"].isin(categories).to_numpy()
        price = self.price
        if min_price is not None:
            keep &= price >= min_price
        if max_price is not None:
            keep &= price <= max_price
        if in_stock:
            keep &= self.in_stock
        return keep

    def save(self, path: Path) -> None:
        self.items.to_parquet(path, index=False)

    @classmethod
    def load(cls, path: Path) -> Catalogue:
        return cls(pd.read_parquet(path, columns=COLUMNS))


def load_catalogue(dataset: Path) -> Catalogue:
    return Catalogue(pq.read_table(dataset / ITEMS_FILE, columns=COLUMNS).to_pandas())
