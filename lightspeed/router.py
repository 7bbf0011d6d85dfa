# -*- test-case-name: lightspeed.test.test_router -*-
"""
Link-state routing between kernels, pure: no I/O, no clock, no reactor.

Every kernel advertises its own links in a :obj:`LinkState` (an LSA) stamped
with its incarnation and an increasing sequence number.  Each kernel floods
its LSAs to its neighbours, which flood every LSA that is new to them on to
their other neighbours, so every kernel ends up holding the newest LSA of
every kernel it can reach.  From that database each :obj:`Router` computes
shortest paths with Dijkstra's algorithm.

Rules of the computation:

  - An edge A-B is usable only when A's LSA lists B *and* B's LSA lists A
    (the two-way check); its cost is the larger of the two advertised costs.
    Our own links are the exception: the caller reports a link up only once
    its handshake is done at both ends, so it is usable at once, before the
    neighbour's LSA listing it arrives.
  - Among equal-cost paths the one whose first hop has the smallest name
    wins, so the result depends only on the set of LSAs held, never on the
    order in which they arrived.
  - Routes are computed lazily: a change only marks them stale (and only
    a change that can move one, see :obj:`lightspeed.paths`), the next
    query recomputes them once, so a burst of LSAs costs one computation.

LSAs of unreachable kernels stay in the database (they are not routed to and
:obj:`Router.incarnation_of` ignores them) until they age out: every kernel
sends a fresh LSA of its own every few minutes, and :obj:`Router.expire` drops
an LSA that nothing has refreshed for longer than that (the caller runs it
on a timer).  Dropping an LSA merely because its kernel is unreachable
would be unsafe: a kernel that joins receives its neighbour's database
*before* the LSA that makes those kernels reachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from lightspeed.paths import TwoWay, connected, moves_routes, shortest_paths

__all__ = ["LinkState", "Router", "MAX_FADING"]

#: The most withdrawn edges :obj:`Router.behind` keeps counting.
MAX_FADING = 4096
#: The most aged-out LSAs :obj:`Router.newer` remembers.
MAX_EXPIRED = 4096


@dataclass(frozen=True, slots=True)
class LinkState:
    """
    One kernel's advertisement of its links (an LSA).

    :ivar origin: the kernel that advertises.
    :ivar incarnation: the per-start id of that kernel; a larger one is newer
        (a restart).
    :ivar seq: increases with every new LSA of the same incarnation.
    :ivar links: ``(neighbour, cost)`` pairs, cost at least 1, sorted by
        neighbour name.
    :ivar proof: the origin's signature as it travels (see
        :obj:`lightspeed.adverts`), or :obj:`None`; passed on with the LSA, never
        compared.
    :ivar hidden: whether the origin is a hidden kernel: a leaf that is
        never a relay and that ``*`` does not reach.
    :ivar vouches: ``(neighbour, incarnation)`` pairs, the incarnations the
        origin's neighbours said HELLO with (see :obj:`lightspeed.vouching`);
        passed on with the LSA, never compared.
    """

    origin: str
    incarnation: int
    seq: int
    links: Tuple[Tuple[str, int], ...]
    proof: Any = field(default=None, compare=False, repr=False)
    hidden: bool = False
    vouches: Tuple[Tuple[str, int], ...] = field(default=(), compare=False, repr=False)
    # Slots, not a __dict__: an object fewer per LSA for the collector (each kernel holds N)
    _link_map: Optional[Dict[str, int]] = field(default=None, init=False, compare=False, repr=False)

    @property
    def link_map(self) -> Dict[str, int]:
        """:obj:`links` as a mapping, built once per LSA (for each route recompute); read only."""
        made = self._link_map  # not functools.cached_property: 3.11's takes a lock
        if made is None:
            made = dict(self.links)
            object.__setattr__(self, "_link_map", made)
        return made

    def newer_than(self, other: Optional["LinkState"]) -> bool:
        """
        Whether this LSA supersedes ``other`` (the LSA held so far for the same
        origin): ``other`` is :obj:`None` or this LSA's ``(incarnation, seq)``
        is lexicographically larger.
        """
        if other is None:
            return True
        return (self.incarnation, self.seq) > (other.incarnation, other.seq)


class Router:
    """
    One kernel's link-state database and the routes computed from it.

    :ivar name: this kernel's name.
    :ivar incarnation: this kernel's per-start id.
    :ivar hidden: whether this kernel is hidden (its LSAs say so).
    :ivar version: grows when routes are recomputed or an incarnation or
        :obj:`outdated` mark held may change (what :obj:`incarnations` reads).
    """
    hidden = False
    version = 0

    def __init__(self, name: str, incarnation: int, clock: Optional[Callable[[], float]] = None) -> None:
        """
        :param name: this kernel's name.
        :param incarnation: this kernel's per-start id.
        :param clock: seconds now, to stamp withdrawn edges (see :obj:`fading`).
        """
        self._clock = clock or (lambda: 0.0)
        self.name = name
        self.incarnation = incarnation
        self._links: Dict[str, int] = {}
        self._own = LinkState(name, incarnation, 1, ())
        self._lsas: Dict[str, LinkState] = {}
        #: The usable edges between the kernels of ``_lsas``, kept as they change.
        self._graph = TwoWay(name)
        self._dirty = True
        self._hops: Dict[str, str] = {}
        self._distances: Dict[str, int] = {}
        self._visible: FrozenSet[str] = frozenset()
        self._hidden: Set[str] = set()
        self._behind: Dict[str, FrozenSet[str]] = {}
        self._fading: Dict[Tuple[str, str], float] = {}
        self._stamps: Dict[str, float] = {}
        #: The last LSA of each origin that aged out: a copy that is not
        #: newer (a replay, or an old database) never comes back.
        self._expired: Dict[str, LinkState] = {}
        #: Kernels whose held LSA may be outdated (see :obj:`outdated`), with
        #: when it was found so (oldest first).
        self._outdated: Dict[str, float] = {}
        #: Neighbours that said in their HELLO that they are hidden.
        self._hidden_peers: Set[str] = set()

    # -- own links -----------------------------------------------------------

    def _advertise(self, seq: int) -> LinkState:
        """Replace our own LSA by one with ``seq`` and the current links; return it."""
        links = tuple(sorted(self._links.items()))
        if links != self._own.links:
            self._dirty = True
        self._own = LinkState(self.name, self.incarnation, seq, links, hidden=self.hidden)
        return self._own

    def link_up(self, neighbour: str, cost: int = 1) -> LinkState:
        """
        A link to ``neighbour`` is up, or its cost changed.

        :param neighbour: the kernel at the other end.
        :param cost: the cost of the link, at least 1.
        :returns: our new LSA, to flood to every neighbour.  It is fresh even
            if nothing changed; the caller may then ignore it.
        :raises ValueError: if ``cost`` is below 1 or ``neighbour`` is us.
        """
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
            raise ValueError(f"link cost must be an integer of at least 1, not {cost!r}")
        if neighbour == self.name:
            raise ValueError(f"kernel {self.name!r} cannot link to itself")
        self._links[neighbour] = cost
        return self._advertise(self._own.seq + 1)

    def link_down(self, neighbour: str) -> Optional[LinkState]:
        """
        The (last) link to ``neighbour`` is down: our new LSA to flood, or
        :obj:`None` if no link to ``neighbour`` was up.
        """
        if self._links.pop(neighbour, None) is None:
            return None
        self._hidden_peers.discard(neighbour)  # its next HELLO (or LSA) says again
        return self._advertise(self._own.seq + 1)

    def readvertise(self) -> LinkState:
        """A fresh own LSA (same links, next seq), to flood when it is now signed or hidden."""
        return self._advertise(self._own.seq + 1)

    def own(self) -> LinkState:
        return self._own

    def neighbours(self) -> FrozenSet[str]:
        """The kernels we have a link up to."""
        return frozenset(self._links)

    # -- the database --------------------------------------------------------

    def receive(self, lsa: LinkState, from_neighbour: str) -> bool:
        """
        Take an LSA that a neighbour sent.

        An LSA with our own name is never stored.  If it is newer than ours
        (a forgery, or a leftover of an earlier start with the same
        incarnation) our sequence number jumps above it, so that :obj:`own` and
        every later own LSA supersede it wherever it went.  That cannot win
        against a larger incarnation: that is another live kernel with our
        name, which the caller must refuse.

        :returns: ``True`` if it was new and is now held (flood it to every
            neighbour except ``from_neighbour``, whence it came); ``False``
            if it was a duplicate, stale or in our name (drop it).
        """
        if lsa.origin == self.name:
            own = self._own
            if lsa != own and (lsa.incarnation, lsa.seq) >= (own.incarnation, own.seq):
                self._advertise(max(own.seq, lsa.seq) + 1)
            return False
        fresh = self.newer(lsa)
        if fresh:
            self.store(lsa)
        return fresh

    def store(self, lsa: LinkState) -> None:
        """Hold ``lsa`` for its origin, whatever was held (see :obj:`lightspeed.vouching`)."""
        held = self._lsas.get(lsa.origin)
        self._expired.pop(lsa.origin, None)
        if self._outdated.pop(lsa.origin, None) is not None or held is None or held.incarnation != lsa.incarnation:
            self.version += 1
        self._lsas[lsa.origin] = lsa
        self._stamps[lsa.origin] = self._clock()
        if held is None or held.links != lsa.links or held.hidden != lsa.hidden:
            self._changed(lsa.origin, held, lsa)
            if held is not None:
                self._withdrawn(lsa.origin, held, lsa)

    def _changed(self, origin: str, held: Optional[LinkState], lsa: Optional[LinkState]) -> None:
        """
        ``origin``'s advert went from ``held`` to ``lsa`` (either may be
        :obj:`None`): keep the usable edges, and mark the routes stale
        unless the change cannot move any of them (see :obj:`lightspeed.paths`).
        """
        changed = self._graph.update(origin, lsa.link_map if lsa is not None else None)
        self._behind = {}
        if self._dirty:
            return
        old = held.link_map if held is not None else {}
        new = lsa.link_map if lsa is not None else {}
        hidden = held is not None and held.hidden
        if hidden != (lsa is not None and lsa.hidden) or old.get(self.name) != new.get(self.name) \
                or (changed and moves_routes(changed, self._hops, self._distances, self._hidden, self._graph.edges)):
            self._dirty = True

    def newer(self, lsa: LinkState) -> bool:
        """
        Whether another kernel's ``lsa`` is news: newer than the one held
        for its origin, and than the last one of that origin that aged out
        (so a replay of an old advert never comes back).
        """
        return lsa.newer_than(self._lsas.get(lsa.origin) or self._expired.get(lsa.origin))

    def _withdrawn(self, origin: str, held: LinkState, lsa: LinkState) -> None:
        """
        Stamp the edges ``lsa`` withdraws that were usable (both ends listed
        them) until now, and mark the LSA of the kernel at the other end,
        which still lists the edge, as outdated.
        """
        kept = dict(lsa.links)
        now = self._clock()
        for peer, _ in held.links:
            other = self._lsas.get(peer)
            if peer not in kept and other is not None and origin in other.link_map:
                self._fading.pop((origin, peer), None)
                self._fading[(origin, peer)] = now
                self._outdated.pop(peer, None)
                self._outdated[peer] = now
                self.version += 1
        while len(self._fading) > MAX_FADING:
            del self._fading[next(iter(self._fading))]  # the oldest

    def fading(self) -> Dict[Tuple[str, str], float]:
        """
        :returns: the usable edges ``(origin, peer)`` that an LSA of
            ``origin`` withdrew, with the time each was withdrawn (oldest
            first; at most :obj:`MAX_FADING`).
        """
        return dict(self._fading)

    def forget_fading(self, before: Optional[float] = None) -> Optional[float]:
        """
        Stop counting in :obj:`behind` the edges withdrawn at or before
        ``before`` (default: all of them), and stop taking for :obj:`outdated`
        the LSAs found so at or before ``before``.  The caller does this a
        while (longer than a message can take across the network) after
        each withdrawal.

        :returns: when the oldest edge still counted was withdrawn (or the
            oldest LSA still outdated was found so, if earlier), or :obj:`None`
            if none is left.
        """
        removed = False
        for edge, when in list(self._fading.items()):
            if before is not None and when > before:
                break
            del self._fading[edge]
            removed = True
        if removed:
            self._behind = {}
        for kernel, when in list(self._outdated.items()):
            if before is not None and when > before:
                break
            del self._outdated[kernel]
            self.version += 1
        stamps = [next(iter(d.values())) for d in (self._fading, self._outdated) if d]
        return min(stamps) if stamps else None

    def outdated(self, kernel: str) -> bool:
        """
        Whether the LSA held for ``kernel`` may predate a change there (its
        incarnation not to be trusted): a neighbour withdrew its link while
        ``kernel``'s LSA, still listing it, was not replaced.  Alive, ``kernel``
        floods a newer LSA; dead, a restart of its name may be on its way.
        The mark goes with a newer LSA of ``kernel`` or :obj:`forget_fading`.
        """
        return kernel in self._outdated

    def expire(self, max_age: float) -> List[str]:
        """
        Drop the LSAs that no newer copy has replaced for more than
        ``max_age`` seconds: their kernels are gone (a live kernel sends a
        fresh LSA more often than that).  Without this, a former neighbour
        of a departed kernel could keep it "reachable" for ever by
        advertising its old link to it.

        :returns: the origins dropped.
        """
        now = self._clock()
        return self.drop([origin for origin, stamp in self._stamps.items() if now - stamp > max_age])

    def drop(self, origins: List[str]) -> List[str]:
        """Drop the LSAs of ``origins`` as if they aged out; return ``origins``."""
        for origin in origins:
            self._stamps.pop(origin, None)
            self._outdated.pop(origin, None)
            self._expired[origin] = self._lsas.pop(origin)
            self._changed(origin, self._expired[origin], None)
            self.version += 1
        while len(self._expired) > MAX_EXPIRED:
            del self._expired[next(iter(self._expired))]  # the oldest
        return origins

    def __len__(self) -> int:
        """How many other kernels' LSAs are held."""
        return len(self._lsas)

    def drop_unsigned(self) -> List[str]:
        """
        Drop every held LSA that carries no proof (signing was just turned
        on: only signed adverts count from now on); return their origins.
        """
        gone = [origin for origin, lsa in self._lsas.items() if lsa.proof is None]
        for origin in gone:
            self._changed(origin, self._lsas.pop(origin), None)
            self.version += 1
            self._stamps.pop(origin, None)
            self._outdated.pop(origin, None)
        return gone

    def held(self, origin: str) -> Optional[LinkState]:
        """
        :returns: the LSA held for ``origin`` (our own for our name), or
            :obj:`None`.
        """
        return self._own if origin == self.name else self._lsas.get(origin)

    def database(self) -> List[LinkState]:
        """
        :returns: every LSA held, our own included, sorted by origin: what a
            new neighbour needs to catch up.
        """
        lsas = dict(self._lsas)
        lsas[self.name] = self._own
        return [lsas[origin] for origin in sorted(lsas)]

    # -- routes --------------------------------------------------------------

    def _recompute(self) -> None:
        """
        Run Dijkstra from us over every usable edge (see
        :obj:`lightspeed.paths`); fill the next-hop and distance tables.
        """
        hidden = self.hidden_kernels()
        own = self._own.link_map
        backs = {peer: lsa.link_map.get(self.name) for peer in own if (lsa := self._lsas.get(peer)) is not None}
        self._hops, self._distances = shortest_paths(self.name, own, backs, self._graph.edges, hidden)
        self._visible = frozenset(kernel for kernel in self._hops if kernel not in hidden)
        self._hidden = hidden  # what the routes went by: a change of it marks them stale
        self.version += 1
        self._behind = {}
        self._dirty = False

    def _routes(self) -> Dict[str, str]:
        """
        :returns: the next-hop table, recomputed first if it is stale.
        """
        if self._dirty:
            self._recompute()
        return self._hops

    def hidden_kernels(self) -> Set[str]:
        """The kernels hidden by their LSA, or by their HELLO for a neighbour."""
        return {o for o, lsa in self._lsas.items() if lsa.hidden} | self._hidden_peers

    def peer_hidden(self, neighbour: str, hidden: bool) -> None:
        """Record what ``neighbour``'s HELLO said, before its LSA arrives."""
        if hidden != (neighbour in self._hidden_peers):
            self._hidden_peers.symmetric_difference_update({neighbour})
            self._dirty = True

    def visible(self) -> FrozenSet[str]:
        """The reachable kernels that are not hidden (what ``*`` means), kept with the routes."""
        self._routes()
        return self._visible

    def next_hop(self, kernel: str) -> Optional[str]:
        """
        :param kernel: a destination kernel.
        :returns: the neighbour to send to for ``kernel``, or :obj:`None` if it is
            unreachable or is us.
        """
        return self._routes().get(kernel)

    def reachable(self) -> FrozenSet[str]:
        """Every kernel we have a route to, us excepted."""
        return frozenset(self._routes())

    def distances(self) -> Dict[str, int]:
        """The cost of the shortest path to each reachable kernel."""
        self._routes()
        return dict(self._distances)

    def incarnations(self) -> Dict[str, int]:
        """
        The incarnation in the LSA of every reachable kernel whose LSA is
        held and not :obj:`outdated`: :obj:`incarnation_of` for them all at once.
        """
        lsas, outdated = self._lsas, self._outdated
        return {k: lsa.incarnation for k in self._routes() if (lsa := lsas.get(k)) is not None and k not in outdated}

    def incarnation_of(self, kernel: str) -> Optional[int]:
        """
        The incarnation in ``kernel``'s LSA if it is reachable, else :obj:`None`
        (also for a neighbour whose LSA has not arrived yet).
        """
        held = self._lsas.get(kernel)
        if held is None or kernel not in self._routes():
            return None
        return held.incarnation

    def behind(self, neighbour: str) -> FrozenSet[str]:
        """
        The kernels a message arriving from ``neighbour`` can honestly come
        from: ``neighbour`` itself and every kernel that reaches it over
        usable (two-way) edges without passing through us.

        In a tree that is the subtree behind the link; in a cycle it holds
        every kernel of the cycle, since any of them may route through
        ``neighbour`` after a change.  Edges that went away recently (see
        :obj:`fading`) still count, so that a message sent before a change
        that overtook it is not taken for a forgery.  Computed on demand
        and cached until the database changes.

        :param neighbour: a kernel we have a link to.
        :returns: the set, ``neighbour`` included.
        """
        if self._dirty:
            self._recompute()
        cached = self._behind.get(neighbour)
        if cached is not None:
            return cached
        result = self._behind[neighbour] = connected(neighbour, self.name, self._graph.edges, self._fading)
        return result

    def split(self, kernels: Iterable[str]) -> Tuple[Dict[str, List[str]], List[str]]:
        """
        Group destination kernels by the neighbour to send them to.

        :param kernels: destination kernels; our own name is skipped (the
            caller delivers locally) and a repeated name counts once.
        :returns: ``({next_hop: [kernel, ...]}, [unreachable kernel, ...])``,
            each list in the order given.
        """
        hops = self._routes()
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
