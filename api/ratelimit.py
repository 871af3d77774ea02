"""Per-client token buckets: ``api_rate_limit_per_s`` requests a second, ``api_rate_limit_burst``
at once.

A bucket holds at most ``burst`` tokens and gains ``rate`` a second; a request takes one or
is refused with the time until one is there. Memory is bounded: buckets are kept in
least-recently-seen order, a bucket idle long enough to be full again is dropped (a new one
starts full, so that client sees no difference), and beyond ``max_clients`` the least recently
seen is dropped. Called from the event loop only, so it takes no lock.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from recsys.settings import Settings


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int = 0, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0 (0 means no limiter at all)")
        self.rate = float(rate_per_s)
        self.burst = float(burst or max(1, math.ceil(rate_per_s)))
        self.max_clients = max_clients
        self.clock = clock
        self.full_after_s = self.burst / self.rate  # an idle bucket is full again by then
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, seen at

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter | None:
        """The configured limiter, or None when ``api_rate_limit_per_s`` is 0 (off)."""
        if settings.api_rate_limit_per_s <= 0:
            return None
        return cls(settings.api_rate_limit_per_s, settings.api_rate_limit_burst,
                   settings.api_rate_limit_clients)

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when the request may go on, else the seconds to wait."""
        now = self.clock()
        buckets = self._buckets
        while buckets:  # oldest first: stop at the first bucket that may not be full yet
            oldest = next(iter(buckets.values()))
            if now - oldest[1] < self.full_after_s:
                break
            buckets.popitem(last=False)
        previous = buckets.pop(key, None)
        tokens = self.burst if previous is None else min(
            self.burst, previous[0] + (now - previous[1]) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        buckets[key] = (tokens, now)  # re-inserted: now the most recently seen
        if len(buckets) > self.max_clients:
            buckets.popitem(last=False)
        return wait
