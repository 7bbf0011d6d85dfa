# -*- test-case-name: lightspeed.test.test_router -*-
"""
Link-state routing, pure: no I/O, no clock.

Every kernel advertises its own links in a L{LinkState} (LSA) with its
incarnation and an increasing sequence number; every kernel keeps the newest
LSA of each kernel and computes shortest paths over the whole graph.  An
edge counts only when both ends advertise it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

__all__ = ["LinkState", "Router"]


@dataclass(frozen=True)
class LinkState:
    """
    One kernel's advertisement of its links.

    :ivar origin: the advertising kernel.
    :ivar incarnation: its per-start id; a larger one is a restart.
    :ivar seq: increases with each LSA of one incarnation.
    :ivar links: C{(neighbour, cost)} pairs, sorted by neighbour.
    """

    origin: str
    incarnation: int
    seq: int
    links: Tuple[Tuple[str, int], ...]

    def newer_than(self, other: Optional["LinkState"]) -> bool:
        """
        Whether this LSA supersedes C{other}.
        """
        return other is None or (self.incarnation, self.seq) > (other.incarnation, other.seq)


class Router:
    """
    The link-state database and the routes computed from it.
    """

    def __init__(self, name: str, incarnation: int) -> None:
        self.name = name
        self.incarnation = incarnation
        self._seq = 0
        self._links: Dict[str, int] = {}
        self._db: Dict[str, LinkState] = {}
        self._own = self._advertise()
        self._hops: Optional[Dict[str, str]] = None
        self._dist: Dict[str, int] = {}

    def _advertise(self) -> LinkState:
        self._seq += 1
        lsa = LinkState(self.name, self.incarnation, self._seq, tuple(sorted(self._links.items())))
        self._db[self.name] = lsa
        self._hops = None
        return lsa

    def own(self) -> LinkState:
        return self._own

    def link_up(self, neighbour: str, cost: int = 1) -> LinkState:
        """
        A link to C{neighbour} is up (or its cost changed).

        :returns: our new LSA, to flood to every neighbour.
        """
        self._links[neighbour] = max(1, int(cost))
        self._own = self._advertise()
        return self._own

    def link_down(self, neighbour: str) -> Optional[LinkState]:
        """
        :returns: our new LSA, or L{None} if the link was not up.
        """
        if self._links.pop(neighbour, None) is None:
            return None
        self._own = self._advertise()
        return self._own

    def receive(self, lsa: LinkState, from_neighbour: str) -> bool:
        """
        Take an LSA heard from a neighbour.

        :returns: whether it was new (flood it on, except to
            C{from_neighbour}).
        """
        if lsa.origin == self.name:
            # A stale copy of an earlier self, or a forgery: ours must win.
            if (lsa.incarnation, lsa.seq) >= (self.incarnation, self._seq) and lsa.incarnation == self.incarnation:
                self._seq = lsa.seq
                self._own = self._advertise()
            return False
        if not lsa.newer_than(self._db.get(lsa.origin)):
            return False
        self._db[lsa.origin] = lsa
        self._hops = None
        return True

    def database(self) -> List[LinkState]:
        return [self._db[k] for k in sorted(self._db)]

    def neighbours(self) -> FrozenSet[str]:
        return frozenset(self._links)

    def _compute(self) -> Dict[str, str]:
        if self._hops is not None:
            return self._hops
        adverts = {origin: dict(lsa.links) for origin, lsa in self._db.items()}
        dist: Dict[str, int] = {self.name: 0}
        hops: Dict[str, str] = {}
        queue: List[Tuple[int, str, str]] = [(0, "", self.name)]
        done = set()
        while queue:
            d, hop, node = heapq.heappop(queue)
            if node in done:
                continue
            done.add(node)
            if node != self.name:
                hops[node] = hop
            for peer, cost in adverts.get(node, {}).items():
                back = adverts.get(peer, {}).get(node)
                if node == self.name and back is None:
                    # Our own up link is usable at once: the peer finished
                    # its handshake before ours, whatever its LSA says yet.
                    back = cost
                if back is None or peer in done:
                    continue
                nd = d + max(cost, back)
                first = peer if node == self.name else hop
                if nd < dist.get(peer, nd + 1) or (nd == dist.get(peer) and first < hops.get(peer, first)):
                    dist[peer] = nd
                    hops[peer] = first
                    heapq.heappush(queue, (nd, first, peer))
        self._dist = {k: v for k, v in dist.items() if k != self.name}
        for origin in [o for o in self._db if o != self.name and o not in hops]:
            del self._db[origin]  # unreachable: forget it; a newer LSA is welcome later
        self._hops = hops
        return hops

    def next_hop(self, kernel: str) -> Optional[str]:
        return self._compute().get(kernel)

    def reachable(self) -> FrozenSet[str]:
        return frozenset(self._compute())

    def distances(self) -> Dict[str, int]:
        self._compute()
        return dict(self._dist)

    def incarnation_of(self, kernel: str) -> Optional[int]:
        if kernel not in self._compute():
            return None
        return self._db[kernel].incarnation

    def split(self, kernels: Iterable[str]) -> Tuple[Dict[str, List[str]], List[str]]:
        hops = self._compute()
        groups: Dict[str, List[str]] = {}
        unreachable: List[str] = []
        for kernel in dict.fromkeys(kernels):
            if kernel == self.name:
                continue
            hop = hops.get(kernel)
            if hop is None:
                unreachable.append(kernel)
            else:
                groups.setdefault(hop, []).append(kernel)
        return groups, unreachable
