"""A queue's dispatch token bucket: refilled continuously, starting full, one token per dispatch."""

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rate = rate
        self._capacity = capacity
        self._tokens = float(capacity)
        self._updated = clock()

    def reconfigure(self, rate: float, capacity: int) -> None:
        self._refill()
        self._rate = rate
        self._capacity = capacity
        self._tokens = min(self._tokens, capacity)

    def seconds_until_token(self) -> float:
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self._rate

    def take(self) -> None:
        self._refill()
        self._tokens -= 1

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
