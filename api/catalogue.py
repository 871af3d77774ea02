"""The catalogue as the serving path reads it: per-item arrays computed once, masks cached.

:class:`retrieval.catalogue.Catalogue` derives categories, prices and stock from its
DataFrame on every access, which costs milliseconds on a 100K-item catalogue; serving
asks for them on every request. :class:`ServingCatalogue` is the same object with those
values cached (the frame is never modified after loading) and filter masks memoized.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cached_property

import numpy as np
import pandas as pd

from retrieval.catalogue import Catalogue

MASK_CACHE = 256


class ServingCatalogue(Catalogue):
    def __init__(self, items: pd.DataFrame) -> None:
        super().__init__(items)
        self._masks: OrderedDict[tuple, np.ndarray | None] = OrderedDict()

    @cached_property
    def item_ids(self) -> np.ndarray:  # type: ignore[override]
        return super().item_ids

    @cached_property
    def categories(self) -> np.ndarray:  # type: ignore[override]
        return np.asarray(self._category.categories, dtype=str)

    @cached_property
    def category_codes(self) -> np.ndarray:  # type: ignore[override]
        return np.asarray(self._category.codes, dtype=np.int32)

    @cached_property
    def price(self) -> np.ndarray:  # type: ignore[override]
        return super().price

    @cached_property
    def in_stock(self) -> np.ndarray:  # type: ignore[override]
        return super().in_stock

    @cached_property
    def _category_present(self) -> np.ndarray:
        return self.items["category"].notna().to_numpy()

    @cached_property
    def category_of(self) -> list[str]:
        """Category name per item index, as Python strings (for responses)."""
        return self.categories[self.category_codes].tolist()

    @cached_property
    def title_of(self) -> list[str | None]:
        return [None if t is None or t != t else str(t) for t in self.items["title"].tolist()]

    @cached_property
    def price_of(self) -> list[float | None]:
        return [None if np.isnan(p) else float(p) for p in self.price]

    @cached_property
    def category_index(self) -> dict[str, int]:
        return {name: k for k, name in enumerate(self.categories.tolist())}

    def mask(self, categories: list[str] | None = None, min_price: float | None = None,
             max_price: float | None = None, in_stock: bool = False) -> np.ndarray | None:
        key = (tuple(categories or ()), min_price, max_price, in_stock)
        if key in self._masks:
            self._masks.move_to_end(key)
            return self._masks[key]
        mask = self._mask(list(key[0]), min_price, max_price, in_stock)
        if mask is not None:
            mask.flags.writeable = False
        self._masks[key] = mask
        if len(self._masks) > MASK_CACHE:
            self._masks.popitem(last=False)
        return mask

    def _mask(self, categories: list[str], min_price: float | None, max_price: float | None,
              in_stock: bool) -> np.ndarray | None:
        if not categories and min_price is None and max_price is None and not in_stock:
            return None
        keep = np.ones(len(self), dtype=bool)
        if categories:
            codes = [self.category_index[c] for c in categories if c in self.category_index]
            keep &= np.isin(self.category_codes, np.array(codes, dtype=np.int32))
            keep &= self._category_present  # like Catalogue.mask: no category never matches
        if min_price is not None:
            keep &= self.price >= min_price
        if max_price is not None:
            keep &= self.price <= max_price
        if in_stock:
            keep &= self.in_stock
        return keep
