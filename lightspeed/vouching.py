# -*- test-case-name: lightspeed.test.test_vouching -*-
"""
Which advert of a kernel to believe in an unsigned mesh, pure: a kernel's
direct neighbours vouch for its incarnation, and their word out-votes a
forged advert's (issue 11, item 5).

Every kernel lists in its own LSA (in its flags) the incarnation each
neighbour said HELLO with (its *vouches*).  For another kernel ``B`` a kernel holds the advert
it believes (in the :obj:`Router`) and up to :data:`MAX_OTHERS` others of
other incarnations (candidates).  The believed one is chosen among them:

  - the incarnations *vouched* for ``B`` are the one of our live link to
    ``B`` if we have one (we heard its HELLO ourselves), else the ones the
    held adverts of ``B``'s neighbours vouch for;
  - if some candidate's incarnation is vouched, the newest such candidate
    is believed; otherwise the newest candidate is (as without vouches).

So an advert claiming a later start of ``B`` that no neighbour of ``B``
vouches for is kept aside, never flooded and never routed by, while ``B``'s
genuine advert stays believed; after an honest restart ``B``'s neighbours
vouch for the new incarnation (or, their links to the old start gone,
no longer for the old one), and the new advert is believed at once.
See "Believing an LSA" in ``docs/protocol.rst``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from lightspeed.router import LinkState, Router

__all__ = ["Vouching", "parse_vouches", "MAX_OTHERS"]

#: The most adverts of other incarnations kept aside per kernel.
MAX_OTHERS = 2


def parse_vouches(flags: Any, links: Tuple[Tuple[str, int], ...]) -> Tuple[Tuple[str, int], ...]:
    """
    The vouches of an LSA message, from its flags (the seventh item, a
    map): ``"vouches": [[neighbour, incarnation], ...]`` for neighbours its
    links list; anything else in it is ignored, and so is a value that is
    not an array.
    """
    value = flags.get("vouches") if type(flags) is dict else None
    if type(value) is not list:
        return ()
    listed = {peer for peer, _ in links}
    return tuple(sorted((pair[0], pair[1]) for pair in value[:len(listed)]
                        if type(pair) is list and len(pair) == 2 and type(pair[0]) is str
                        and type(pair[1]) is int and pair[0] in listed))


class Vouching:
    """
    The candidate adverts of every other kernel and the vouches held.

    :ivar changed: set by :meth:`offer` and :meth:`reselect`: the adverts
        that became believed, to flood, each with the neighbour to skip.
    """

    def __init__(self, router: Router, live: Callable[[str], Optional[int]],
                 clock: Callable[[], float]) -> None:
        """
        :param live: the incarnation of a neighbour from its HELLO, or
            :obj:`None` if we have no link up to that kernel.
        """
        self._router, self._live, self._clock = router, live, clock
        self._others: Dict[str, Dict[int, Tuple[LinkState, float]]] = {}
        #: origin -> {voucher: incarnation}, from the believed adverts.
        self._vouched: Dict[str, Dict[str, int]] = {}
        self._given: Dict[str, Tuple[Tuple[str, int], ...]] = {}
        self.changed: List[Tuple[LinkState, Optional[str]]] = []

    def vouched(self, origin: str) -> Set[int]:
        """The incarnations vouched for ``origin`` (see the module)."""
        live = self._live(origin)
        if live is not None:
            return {live}
        vouchers = self._vouched.get(origin)
        if not vouchers:
            return set()
        reachable = self._router.reachable()
        return {incarnation for voucher, incarnation in vouchers.items() if voucher in reachable}

    def offer(self, lsa: LinkState, peer: str) -> bool:
        """
        A valid LSA of another kernel from neighbour ``peer``, which the
        caller has already found not :meth:`stale`.

        :returns: whether it is news (now believed or kept aside); the
            adverts that became believed are in :attr:`changed`.
        """
        held = self._router.held(lsa.origin)
        if lsa.origin not in self._others and (held is None or held.incarnation == lsa.incarnation):
            # One start only, and this advert of it is newer: believed, as
            # _select would choose, without building its pool.
            self._router.store(lsa)
            self.changed.append((lsa, peer))
            self._follow(self._note(lsa))
            return True
        self._others.setdefault(lsa.origin, {})[lsa.incarnation] = (lsa, self._clock())
        self._select(lsa.origin, lsa, peer)
        return True

    def stale(self, lsa: LinkState) -> bool:
        """
        Whether another kernel's ``lsa`` is no news: not newer than the
        candidate of its incarnation, and, if older than the one believed,
        not of a vouched incarnation either.
        """
        aside = self._others.get(lsa.origin, {}).get(lsa.incarnation)
        if aside is not None and not lsa.newer_than(aside[0]):
            return True
        if self._router.newer(lsa):
            return False
        held = self._router.held(lsa.origin)
        return held is None or lsa.incarnation == held.incarnation or lsa.incarnation not in self.vouched(lsa.origin)

    def _select(self, origin: str, offered: Optional[LinkState] = None, peer: Optional[str] = None) -> None:
        """Believe the best candidate of ``origin``; follow the vouches it changes."""
        self._follow([origin], offered, peer)

    def _follow(self, work: List[str], offered: Optional[LinkState] = None, peer: Optional[str] = None) -> None:
        """Believe the best candidate of each kernel of ``work``, and of those whose vouches that changes."""
        for _ in range(64):  # vouches chain through neighbours; bounded against a liar's loops
            if not work:
                break
            origin = work.pop()
            others = self._others.get(origin)
            if not others:  # the advert held, if any, is the only candidate: it stays believed
                self._others.pop(origin, None)
                continue
            held = self._router.held(origin)
            pool = [lsa for lsa, _ in others.values()] + ([held] if held is not None else [])
            if not pool:
                continue
            # One start only (the common case): no vote, no route computation.
            vouched = self.vouched(origin) if len({c.incarnation for c in pool}) > 1 else set()
            confirmed = [c for c in pool if c.incarnation in vouched]
            # While vouches conflict, the start confirmed first wins.
            best = min(confirmed, key=lambda c: (c.incarnation, -c.seq)) if confirmed \
                else max(pool, key=lambda c: (c.incarnation, c.seq))
            if best is not held:
                del others[best.incarnation]
                if held is not None and held.incarnation != best.incarnation:
                    others[held.incarnation] = (held, self._clock())
                self._router.store(best)
                self.changed.append((best, peer if best is offered else None))
                work.extend(self._note(best))
            while len(others) > MAX_OTHERS:  # the unvouched and oldest go first
                del others[min(others, key=lambda i: (i in vouched, i))]
            if not others:
                self._others.pop(origin, None)

    def _note(self, lsa: LinkState) -> List[str]:
        """
        Take the vouches of ``lsa``, now believed.

        :returns: the kernels whose vouched incarnations changed.
        """
        given = self._given.get(lsa.origin, ())
        if given == lsa.vouches:
            return []  # the same vouches as its last advert (the common case)
        old = dict(given)
        new = dict(lsa.vouches or ())
        if new:
            # lsa.vouches is sorted; without a neighbour listed twice it is the
            # same pairs, kept rather than copied (fewer objects held per kernel)
            self._given[lsa.origin] = lsa.vouches if len(new) == len(lsa.vouches) else tuple(sorted(new.items()))
        else:
            self._given.pop(lsa.origin, None)
        touched = [k for k in set(old) | set(new) if old.get(k) != new.get(k)]
        for kernel in touched:
            entry = self._vouched.setdefault(kernel, {})
            if kernel in new:
                entry[lsa.origin] = new[kernel]
            else:
                entry.pop(lsa.origin, None)
            if not entry:
                del self._vouched[kernel]
        return touched

    def reselect(self, origins: Optional[List[str]] = None) -> None:
        """
        What is vouched for ``origins`` (default: every kernel with adverts
        kept aside) may have changed: a link went down, a voucher became
        unreachable.
        """
        for origin in list(self._others) if origins is None else origins:
            self._select(origin)

    def forget(self, origins: List[str]) -> None:
        """The believed adverts of ``origins`` were dropped: drop their candidates and vouches."""
        for origin in origins:
            self._others.pop(origin, None)
            for kernel in self._note(LinkState(origin, 0, 0, ())):
                self._select(kernel)

    def sweep(self, max_age: float) -> None:
        """Drop the candidates kept aside for longer than ``max_age`` seconds."""
        now = self._clock()
        for origin in list(self._others):
            others = self._others[origin]
            for incarnation in [i for i, (_, when) in others.items() if now - when > max_age]:
                del others[incarnation]
            if not others:
                del self._others[origin]

    def aside(self, origin: str) -> List[LinkState]:
        """The adverts of ``origin`` kept aside, oldest incarnation first."""
        return [lsa for _, (lsa, _) in sorted(self._others.get(origin, {}).items())]
