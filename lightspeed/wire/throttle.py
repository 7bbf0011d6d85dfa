# -*- test-case-name: lightspeed.test.test_ratelimit -*-
"""
The per-link message rate limit: every message a link hands on once up is
charged to its :obj:`~lightspeed.ratelimit.TokenBucket`; once the bucket is
in debt, reading from the link stops (the transport's ``pauseProducing``)
until the debt is paid back.  Back-pressure, not dropping: the peer's
messages wait in the socket buffers and then in its own backlog, and
nothing is lost.  One busy link so cannot take more than its share of a
kernel.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from lightspeed.ratelimit import TokenBucket

__all__ = ["ReadThrottle", "MESSAGE_RATE", "MESSAGE_BURST"]

#: Messages a second a link may bring once up, and how many may come at
#: once: well above what one fast sender delivers (about 100 k/s on the
#: project's machine), so only a flood is slowed.
MESSAGE_RATE = 200_000
MESSAGE_BURST = 200_000


class ReadThrottle:
    """
    The rate limit of one link.

    :ivar paused: how many times it stopped reading.
    """

    log = Logger()

    def __init__(self, link: Any, rate: float, burst: int, reactor: IReactorTime) -> None:
        self._link = link
        self._reactor = reactor
        self._bucket = TokenBucket(rate, burst, reactor.seconds())
        self._call: Any = None
        self.paused = 0

    @property
    def reading(self) -> bool:
        """
        Whether the link reads (it is not paused by this limit).
        """
        return self._call is None

    def charge(self, count: int) -> None:
        """
        ``count`` messages arrived; pause reading if the link is over its rate.
        """
        wait = self._bucket.take(self._reactor.seconds(), count)
        if wait and self._call is None:
            link = self._link
            if not self.paused:
                self.log.warn("kernel {kernel}: link to {peer} sends more than {rate} messages/s; reading from "
                              "it pauses until it is back within the limit (logged once per link)",
                              kernel=link.owner.name, peer=link.peer.name if link.peer else "?",
                              rate=self._bucket.rate)
            self.paused += 1
            link.transport.pauseProducing()
            self._call = self._reactor.callLater(wait, self._resume)

    def _resume(self) -> None:
        self._call = None
        self._link.transport.resumeProducing()

    def stop(self) -> None:
        """
        The link is closing: read no more, resume no more.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
