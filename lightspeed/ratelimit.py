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

    def try_take(self, now: float) -> bool:
        """
        Take one token if there is one.
        """
        if self.take(now, 1) > 0:  # it went on credit: give the token back
            self.tokens += 1
            return False
        return True

    def take(self, now: float, count: int) -> float:
        """
        Take ``count`` tokens, on credit if need be.

        :returns: the seconds until the credit is paid back (0.0 if none).
        """
        then, self._then = self._then, now
        # Refilled for the time since the last take, capped by the burst even
        # when no time passed (it may have been lowered).
        if now > then:
            tokens = self.tokens + (now - then) * self.rate - count
        else:
            tokens = self.tokens - count
        tokens = self.tokens = min(self.burst - count, tokens)
        if tokens >= 0:
            return 0.0
        return -tokens / self.rate if self.rate > 0 else float("inf")  # a rate of 0 never pays it back
