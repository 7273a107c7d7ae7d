"""A clock the test sets by hand, for the parts that take one (`clock=`): rate limits, idle timeouts."""

from __future__ import annotations


class Clock:
    """Returns `now` (seconds) when called; a test advances it with `clock.now += ...`."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
