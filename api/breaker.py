"""A small circuit breaker: stop calling a dependency that keeps failing, retry by itself.

closed     calls go through; ``failures`` consecutive failures open the circuit.
open       calls are refused at once (the caller falls back) for ``reset_s`` seconds.
half-open  after ``reset_s`` one trial call goes through: success closes the circuit,
           failure opens it again for another ``reset_s``.

Thread-safe (the broker's sender thread and the event loop share one breaker each).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(self, name: str, failures: int = 3, reset_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str, str], None] | None = None) -> None:
        self.name = name
        self.threshold = failures
        self.reset_s = reset_s
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_at = 0.0
        self.last_error: str | None = None

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.reset_s:
                return HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May the caller try the dependency now? (In half-open: one trial at a time.)"""
        with self._lock:
            if self._state == CLOSED:
                return True
            now = self._clock()
            if self._state == OPEN and now - self._opened_at >= self.reset_s:
                self._set(HALF_OPEN)
                self._trial_at = now
                return True
            if self._state == HALF_OPEN and now - self._trial_at >= self.reset_s:
                self._trial_at = now  # the previous trial never reported back
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self.last_error = None
            if self._state != CLOSED:
                self._set(CLOSED)

    def failure(self, error: BaseException | str | None = None) -> None:
        with self._lock:
            self._failures += 1
            if error is not None:
                self.last_error = error if isinstance(error, str) else repr(error)
            if self._state == HALF_OPEN or self._failures >= self.threshold:
                self._opened_at = self._clock()
                if self._state != OPEN:
                    self._set(OPEN)

    def _set(self, state: str) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(self.name, state)
