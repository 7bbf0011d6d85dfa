# -*- test-case-name: lightspeed.test.test_monitor -*-
"""
Which kernels are in the network, and which start (incarnation) of each:
joins, departures and restarts are judged at the end of a reactor turn,
after a burst of adverts has settled, and reported to the kernel.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from twisted.internet.defer import Deferred, succeed

from lightspeed.errors import RequestTimeout

__all__ = ["Membership"]


class Membership:
    """
    The reachable kernels and the incarnation last seen of each.
    """

    def __init__(self, network: Any) -> None:
        self._network = network
        self._router = network.router
        #: The kernels reported up, with the incarnation reported.
        self.known: Dict[str, int] = {}
        self._check_call: Any = None
        #: What the last judgement went by (see _changes).
        self._judged: Any = None
        #: Who waits for kernels to become reachable: ``[kernels, deferred, timer]``.
        self._waiting: List[List[Any]] = []

    def incarnation_of(self, kernel: str) -> Optional[int]:
        """
        The incarnation of the kernel that ``kernel`` now names, as far as
        this kernel can vouch for it: a neighbour's from its HELLO (the
        advert held may still be that of an earlier start), another
        reachable kernel's from its advert.

        :returns: the incarnation, or ``None`` if ``kernel`` is unreachable
            or its advert may be outdated (:meth:`Router.outdated`): after a
            restart, a neighbour's advert listing the new start can make the
            old start's advert usable again until the new one arrives.
        """
        now = self._network.link_table.incarnation(kernel)
        if now is not None:
            return now
        if self._router.outdated(kernel):
            return None
        return self._router.incarnation_of(kernel)

    def schedule(self) -> None:
        """
        Routes changed: judge membership once this turn's adverts settled
        (one burst, such as a database sync, can make a kernel unreachable
        for a moment and reachable again).
        """
        if self._check_call is None:
            self._check_call = self._network.reactor.callLater(0, self.check)

    def check_now(self) -> None:
        """
        Judge membership now if a judgement is due.
        """
        if self._check_call is not None:
            self._check_call.cancel()
            self.check()

    def check(self) -> None:
        """
        Fail the requests to kernels that are unreachable or restarted, and
        report kernels that joined, left or restarted.
        """
        self._check_call = None
        reachable = self._router.reachable()
        gone, joined = self._changes(reachable)
        # Failed before the news goes out: a request sent from a kernel_up
        # callback is for the kernel as it is now, not for the one that went.
        self._network.requests.fail_lost(reachable, {name for name, _ in gone})
        if gone or joined:
            self._network.delivery.membership_changed(gone, joined)
            self._network.port.membership_changed(gone, joined)
        else:
            self._network.delivery.routes_settled()
        if self._waiting:
            self._wake(reachable)

    # -- waiting for kernels ---------------------------------------------------------

    def when_reachable(self, kernels: FrozenSet[str], timeout: Optional[float]) -> Deferred:
        """
        :returns: a Deferred that fires with ``None`` once every kernel of
            ``kernels`` (other kernels) is reachable, at once if they are;
            it fails with :class:`RequestTimeout` after ``timeout`` seconds.
            Cancelling it stops the wait.
        """
        if kernels <= self._router.reachable():
            return succeed(None)
        waiter: List[Any] = [kernels, None, None]

        def cancel(_: Deferred) -> None:
            self._stop_waiting(waiter)

        d: Deferred = Deferred(cancel)
        waiter[1] = d
        if timeout is not None:
            waiter[2] = self._network.reactor.callLater(timeout, self._late, waiter, timeout)
        self._waiting.append(waiter)
        return d

    def _stop_waiting(self, waiter: List[Any]) -> None:
        if waiter in self._waiting:
            self._waiting.remove(waiter)
        if waiter[2] is not None and waiter[2].active():
            waiter[2].cancel()

    def _late(self, waiter: List[Any], timeout: float) -> None:
        waiter[2] = None
        self._stop_waiting(waiter)
        missing = sorted(waiter[0] - self._router.reachable())
        waiter[1].errback(RequestTimeout(f"kernel(s) {', '.join(missing)} not reachable within {timeout} s"))

    def _wake(self, reachable: frozenset) -> None:
        for waiter in [w for w in self._waiting if w[0] <= reachable]:
            self._stop_waiting(waiter)
            waiter[1].callback(None)

    def _changes(self, reachable: frozenset) -> Tuple[List[Tuple[str, Optional[int]]], List[Tuple[str, int]]]:
        """
        The kernels that left (or restarted: their old incarnation) and the
        kernels that joined (or restarted: their new one), updating what is
        known.

        Membership goes by incarnation: a reachable kernel whose incarnation
        cannot be vouched for yet is not reported up (it will be once its
        advert is news), and one already reported stays up with the
        incarnation it had.  So a restart seen two hops away is one
        ``kernel_down`` of the old incarnation and one ``kernel_up`` of the
        new, never the old one up again in between.
        """
        links = self._network.link_table
        key = (self._router.version, [(peer, links.incarnation(peer)) for peer in links.by_peer])
        if key == self._judged:
            return [], []  # nothing it goes by changed since the last judgement, which left none
        self._judged = key
        known = self.known
        now: Dict[str, Optional[int]] = dict(self._router.incarnations())  # incarnation_of, all at once
        for peer in links.by_peer:
            if peer in reachable and links.incarnation(peer) is not None:
                now[peer] = links.incarnation(peer)
        gone: List[Tuple[str, Optional[int]]] = [(k, known[k]) for k in known if k not in reachable]
        joined: List[Tuple[str, int]] = []
        for k in reachable:
            incarnation = now.get(k)
            if incarnation is None:
                continue
            if k not in known:
                joined.append((k, incarnation))
            elif incarnation != known[k]:
                gone.append((k, known[k]))
                joined.append((k, incarnation))
        for k, _ in gone:
            known.pop(k, None)
        for k, incarnation in joined:
            known[k] = incarnation
        return gone, joined
