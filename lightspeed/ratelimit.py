# -*- test-case-name: lightspeed.test.test_ratelimit -*-
"""
A token bucket: ``rate`` tokens a second, at most ``burst`` saved up.  Pure:
the caller passes the time.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """
    :ivar rate: tokens added a second.
    :ivar burst: the most tokens held.
    :ivar tokens: tokens now (negative: taken on credit, see :meth:`take`).
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self._then = now

    def _refill(self, now: float) -> None:
        # Capped by the burst even when no time passed: it may have been lowered.
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self._then) * self.rate)
        self._then = now

    def try_take(self, now: float) -> bool:
        """
        Take one token if there is one.
        """
        self._refill(now)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def take(self, now: float, count: int) -> float:
        """
        Take ``count`` tokens, on credit if need be.

        :returns: the seconds until the credit is paid back (0.0 if none).
        """
        self._refill(now)
        self.tokens -= count
        return -self.tokens / self.rate if self.tokens < 0 else 0.0
