# -*- test-case-name: lightspeed.test.test_costs -*-
"""
Link costs from measured round trips.

Every link times its PINGs (see :obj:`lightspeed.wire.protocol`) and reports
each round trip to its owner.  Here each link keeps a smoothed round-trip
time, the SRTT of TCP (RFC 6298): the first sample as it is, then
``srtt += (sample - srtt) / 8``.  The SRTT becomes an integer cost with
:func:`quantise`: one plus the number of whole :data:`QUANTUM` (1 ms) in it,
at most :data:`MAX_COST`.  So a link of less than 1 ms costs 1, one of 10 ms
costs 11.

The cost advertised for a neighbour is that of its best (lowest-cost) link,
which also carries the traffic to it.  It changes only by a significant step
(:func:`significant`): by at least :data:`MIN_STEP` units *and* at least a
quarter (1/:data:`STEP_DIVISOR`) of the cost advertised now.  Until the first
significant measurement a link costs 1, as it does when measuring is off.

Why this does not flap: say the SRTT jitters so that its quantised cost takes
values in ``[lo, hi]`` only, with ``hi - lo < max(MIN_STEP, lo / 4)``
(a band that straddles one quantum boundary always qualifies:
``hi - lo = 1``).  Any change sets the advertised cost ``A`` to a value in
the band, and from then on every candidate ``Q`` is in the band too, so
``|Q - A| <= hi - lo < max(MIN_STEP, A / 4)``: no further change.  So under
such jitter the advert changes at most once, and not at all if it already
lies in the band.  The price is precision: an advertised cost may stay up to
a quarter (or one unit) away from the current measurement.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from twisted.logger import Logger

__all__ = ["LinkCosts", "RoundTrip", "quantise", "significant", "QUANTUM", "MAX_COST", "ALPHA",
           "MIN_STEP", "STEP_DIVISOR"]

#: Seconds of smoothed round trip per unit of cost.
QUANTUM = 0.001

#: The highest cost a measured link gets (a round trip of about a second
#: or more).
MAX_COST = 1000

#: The weight of a new sample in the smoothed round trip (TCP's alpha).
ALPHA = 1 / 8

#: The least change of the advertised cost, in units...
MIN_STEP = 2

#: ...and as a fraction of it: at least 1/STEP_DIVISOR of the cost advertised.
STEP_DIVISOR = 4

_QUANTUM_US = round(QUANTUM * 1_000_000)


def quantise(srtt: float) -> int:
    """
    :param srtt: a smoothed round trip, in seconds (at least 0).
    :returns: its cost: ``1 + floor(srtt / QUANTUM)`` (``srtt`` taken to the
        nearest microsecond), at most :data:`MAX_COST`.
    """
    return min(MAX_COST, 1 + max(0, round(srtt * 1_000_000)) // _QUANTUM_US)


def significant(advertised: int, cost: int) -> bool:
    """
    :param advertised: the cost advertised now.
    :param cost: a new candidate cost.
    :returns: whether ``cost`` is far enough from ``advertised`` to be
        advertised instead: by at least :data:`MIN_STEP` and at least
        ``advertised / STEP_DIVISOR``.
    """
    step = abs(cost - advertised)
    return step >= MIN_STEP and step * STEP_DIVISOR >= advertised


class RoundTrip:
    """
    The smoothed round-trip time of one link.

    :ivar srtt: seconds.
    :ivar samples: how many samples it has taken.
    """

    def __init__(self, seconds: float) -> None:
        """
        :param seconds: the first measured round trip, taken as it is.
        """
        self.srtt = seconds
        self.samples = 1

    def sample(self, seconds: float) -> float:
        """
        Take one more measured round trip.

        :returns: the new smoothed value.
        """
        self.srtt += ALPHA * (seconds - self.srtt)
        self.samples += 1
        return self.srtt

    def cost(self) -> int:
        """
        :returns: the quantised smoothed value.
        """
        return quantise(self.srtt)


class LinkCosts:
    """
    The measured costs of one network's links, and their adverts.

    :ivar changes: how many times an advertised cost changed.
    """

    log = Logger()

    def __init__(self, network: Any) -> None:
        self._network = network
        self._links = network.link_table
        self._enabled = True
        self._trips: Dict[Any, RoundTrip] = {}
        self.changes = 0

    @property
    def enabled(self) -> bool:
        """
        Whether measured round trips set the link costs (the default).  Set
        it to :obj:`False` for a fixed cost of 1 on every link, as without
        measuring; that takes effect at once, and so does turning it on
        again with the round trips measured meanwhile.
        """
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        for peer in sorted(self._links.by_peer):
            if self._enabled:
                self._update(peer)
            else:
                self._advertise(peer, 1)

    def round_trip(self, link: Any) -> Optional[float]:
        """
        :returns: the smoothed round trip of ``link`` in seconds, or
            :obj:`None` if it has not been measured.
        """
        trip = self._trips.get(link)
        return None if trip is None else trip.srtt

    def cost(self, peer: str) -> int:
        """
        :returns: the cost advertised for neighbour ``peer`` (1 if it is not
            one).
        """
        return dict(self._network.router.own().links).get(peer, 1)

    def measured(self, link: Any, seconds: float) -> None:
        """
        ``link`` timed a round trip of ``seconds``.
        """
        if link not in self._links or not 0 <= seconds < float("inf"):
            return
        trip = self._trips.get(link)
        if trip is None:
            self._trips[link] = RoundTrip(seconds)
        else:
            trip.sample(seconds)
        if self._enabled:
            self._update(link.peer.name)

    def link_down(self, link: Any, last: bool) -> None:
        """
        ``link`` went down; ``last`` if it was the last to its neighbour.
        Otherwise the cost of the links left counts from now on.
        """
        self._trips.pop(link, None)
        if not last and self._enabled:
            self._update(link.peer.name)

    def _update(self, peer: str) -> None:
        """
        Advertise the cost of ``peer``'s best link if it differs
        significantly from the one advertised, and let the best link carry
        the traffic.  If it does not, but the link that carries the traffic
        now no longer matches the advertised cost, hand the traffic to the
        best link (whose cost does).
        """
        links: List[Any] = self._links.by_peer.get(peer, [])
        measured = [(trip.cost(), i) for i, trip in enumerate(map(self._trips.get, links)) if trip is not None]
        if not measured:
            return
        best, index = min(measured)
        advertised = self.cost(peer)
        carrier = self._trips.get(links[0])
        if significant(advertised, best):
            self._advertise(peer, best, self._trips[links[index]].srtt)
        elif carrier is not None and not significant(advertised, carrier.cost()):
            return
        if index:
            self._links.prefer(links[index])
            self._network.relay.routes_changed()

    def _advertise(self, peer: str, cost: int, srtt: Optional[float] = None) -> None:
        """
        Advertise ``cost`` for neighbour ``peer`` if it is not the cost
        advertised now.

        :param srtt: the smoothed round trip it comes from, for the log.
        """
        old = self.cost(peer)
        if cost == old:
            return
        self.changes += 1
        network = self._network
        self.log.info("link cost {kernel} -> {peer}: {old} -> {new} ({why})", kernel=network.name, peer=peer,
                      old=old, new=cost, why="fixed" if srtt is None else f"smoothed round trip {srtt * 1000:.3f} ms")
        network.flooding.originate(network.router.link_up(peer, cost))
        network.routes_changed()
