"""Per-client request rate limits: one token bucket per API key (per client IP without a key).

The buckets live in this process. With several API replicas, each enforces the limit on the
requests it receives, so a client spread over N replicas may send up to N times the rate.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from warmzoo.service.core.errors import Reason, WarmzooError

PRUNE_ABOVE = 10_000  # buckets kept before full (idle) ones are dropped: memory stays bounded


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """`rate` requests per second per identity, after an initial `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, identity: str) -> float:
        """Spend one token of `identity`'s bucket: 0.0 when allowed, else the seconds until a
        token is available (nothing is spent then)."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(identity)
            if bucket is None:
                if len(self._buckets) >= PRUNE_ABOVE:
                    self._prune(now)
                bucket = self._buckets[identity] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens < 1:
                return (1 - bucket.tokens) / self.rate
            bucket.tokens -= 1
            return 0.0

    def _prune(self, now: float) -> None:
        """Drop the buckets that have refilled: forgetting them changes nothing."""
        full = [key for key, b in self._buckets.items() if b.tokens + (now - b.updated) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]


def rate_limited(wait_s: float, identity: str) -> WarmzooError:
    """429 with `Retry-After` in whole seconds (at least 1, as the header allows no fractions)."""
    retry_after = max(1, math.ceil(wait_s))
    return WarmzooError(
        Reason.TOO_MANY,
        f"too many requests from {identity}; retry in {retry_after} s"
        " (settings WARMZOO_RATE_LIMIT_PER_S and WARMZOO_RATE_LIMIT_BURST)",
        code="rate_limited",
        retry_after_s=retry_after,
    )
