# -*- test-case-name: lightspeed.test.test_vouching -*-
"""
Issue 11 (5): in an unsigned mesh a forged advert cannot cut off a kernel
that still has a neighbour (:obj:`lightspeed.vouching`).

The mesh: ``a - b - c - d`` and a liar ``l`` linked to ``a`` and ``d``;
``b`` is the target, ``a`` and ``c`` are its neighbours, ``d`` is far from it.
"""

from __future__ import annotations

import gc
from typing import Any, Dict, List

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.message import LSA
from lightspeed.router import LinkState, Router
from lightspeed.test.test_mesh import Sink, build
from lightspeed.testing import MemoryMesh
from lightspeed.vouching import Vouching, parse_vouches

HONEST = "abcd"


class ForgedIncarnationTests(SynchronousTestCase):

    def setUp(self):
        self.mesh, self.k, self.links = build("abcdl", "ab bc cd al dl")
        self.log: List[Any] = []
        self.k["b"].spawn(Sink("s", self.log))
        self.genuine = self.k["b"].network.router.own()

    def lie(self, *message: Any) -> None:
        """``l`` sends ``message`` to both its neighbours."""
        for name in ("al", "dl"):
            self.links[name].server.send_message(list(message))
        self.mesh.settle()

    def restart(self, *neighbours: str) -> Any:
        """b stops (its links close) and starts again linked to ``neighbours``."""
        self.links["ab"].close()
        self.links["bc"].close()
        self.mesh.settle()
        b2 = self.k["b"] = self.mesh.kernel("b")
        b2.spawn(Sink("s", self.log))
        for name in neighbours:
            self.mesh.link(b2, self.k[name])
        self.mesh.settle()
        return b2

    def assert_b_reached(self, incarnation: int) -> None:
        """Every honest kernel believes b's advert of ``incarnation``, routes to b, and a post arrives."""
        before = len(self.log)
        for name in HONEST:
            if name != "b":
                held = self.k[name].network.router.held("b")
                self.assertEqual(held.incarnation, incarnation, name)
                self.assertIn("b", self.k[name].network.router.reachable(), name)
                self.k[name].post("poe://b/s/hit", name)
        self.mesh.settle()
        self.assertEqual(sorted(e[2][0] for e in self.log[before:]), ["a", "c", "d"])

    def test_later_incarnation_without_links(self):
        """When a liar floods an advert claiming a later start of b with no links, then every kernel keeps believing b's genuine advert, reaches b throughout, and the lie is kept aside, never flooded, and gone after the grace once the liar left."""
        g = self.genuine
        self.lie(LSA, "b", g.incarnation + (1 << 20), 1, [])
        self.assert_b_reached(g.incarnation)
        for name in "ad":
            (aside,) = self.k[name].network.flooding.vouching.aside("b")
            self.assertEqual(aside.incarnation, g.incarnation + (1 << 20))
        self.assertEqual(self.k["c"].network.flooding.vouching.aside("b"), [])  # never flooded on
        self.links["al"].close()
        self.links["dl"].close()
        self.mesh.settle()
        self.assert_b_reached(g.incarnation)
        for _ in range(10):
            self.mesh.advance(10)
        for name in "acd":
            self.assertEqual(self.k[name].network.flooding.vouching.aside("b"), [])
            self.assertEqual(self.k[name].network.router.held("b").links, self.k["b"].network.router.own().links)

    def test_later_incarnation_with_copied_links(self):
        """When the forged later start copies b's genuine links, then it is still not believed: no neighbour vouches for that incarnation."""
        g = self.genuine
        self.lie(LSA, "b", g.incarnation + 1, 1, [list(link) for link in g.links])
        self.assert_b_reached(g.incarnation)

    def test_liar_vouching_for_the_lie(self):
        """When the liar also advertises a link to b and vouches for the forged start, then the start that b's real neighbours vouched for first still wins."""
        g = self.genuine
        own = self.k["l"].network.router.own()
        forged = g.incarnation + 1
        self.lie(LSA, "l", own.incarnation, own.seq + 10, [["a", 1], ["b", 1], ["d", 1]], None,
                 {"vouches": [["b", forged]]})
        self.lie(LSA, "b", forged, 1, [["l", 1]])
        self.assert_b_reached(g.incarnation)

    def test_same_incarnation_higher_seq(self):
        """When the forgery keeps b's incarnation with a higher sequence number and no links, then b sees it and outbids it within one flooding round."""
        g = self.genuine
        self.lie(LSA, "b", g.incarnation, g.seq + 50, [])
        self.assertGreater(self.k["b"].network.router.own().seq, g.seq + 50)
        self.assert_b_reached(g.incarnation)
        for name in "acd":
            self.assertEqual(self.k[name].network.router.held("b"), self.k["b"].network.router.own())

    def test_forged_neighbour_vouch_is_outbid(self):
        """When the liar forges c's advert (c's incarnation, a higher sequence) vouching for a later start of b, then c outbids it and b's genuine start is believed again after that flooding round."""
        g = self.genuine
        c = self.k["c"].network.router.own()
        forged = g.incarnation + 1
        self.lie(LSA, "b", forged, 1, [["c", 1]])
        self.lie(LSA, "c", c.incarnation, c.seq + 10, [["b", 1], ["d", 1]], None,
                 {"vouches": [["b", forged], ["d", 0]]})
        self.assertGreater(self.k["c"].network.router.own().seq, c.seq + 10)
        self.assert_b_reached(g.incarnation)

    def test_honest_restart(self):
        """When b restarts (a new incarnation) and links to c only, then every kernel believes the new start at once and posts reach it."""
        b2 = self.restart("c")
        self.assert_b_reached(b2.network.incarnation)
        self.assertGreater(b2.network.incarnation, self.genuine.incarnation)

    def test_restart_while_a_lie_is_aside(self):
        """When a lie about a later start of b is kept aside and b then really restarts, then the real new start is believed everywhere and the lie stays aside."""
        g = self.genuine
        self.lie(LSA, "b", g.incarnation + (1 << 40), 1, [])
        b2 = self.restart("a", "c")
        self.assert_b_reached(b2.network.incarnation)
        self.assertEqual([lsa.incarnation for lsa in self.k["d"].network.flooding.vouching.aside("b")],
                         [g.incarnation, g.incarnation + (1 << 40)])


class VouchesTests(SynchronousTestCase):
    def test_own_advert_vouches_for_neighbours(self):
        """When kernels link, then each one's advert carries its neighbours' incarnations as they said HELLO."""
        mesh, k, _ = build("abc", "ab bc")
        held = k["a"].network.router.held("b")
        self.assertEqual(dict(held.vouches), {"a": k["a"].network.incarnation, "c": k["c"].network.incarnation})

    def test_believed_vouches_kept_not_copied(self):
        """When ten adverts, each vouching for 40 neighbours, are believed, then the vouching record holds no pairs of its own: every tuple it reaches the router's adverts hold too (a copy would be 41 tuples an advert), and the vouches count."""
        router = Router("a", 1)
        vouching = Vouching(router, lambda name: None, lambda: 0.0)
        links = tuple((f"n{i:02}", 1) for i in range(40))
        for number in range(10):
            pairs = tuple((name, number * 1000 + i) for i, (name, _) in enumerate(links))
            vouching.offer(LinkState(f"o{number}", 1, 1, links, vouches=pairs), "n00")
        vouching.changed.clear()  # flooding takes them
        held = _reachable([router.held(f"o{number}") for number in range(10)], ())
        own = _reachable([vouching], (router,))
        self.assertEqual([o for o in own.values() if type(o) is tuple and id(o) not in held], [])
        self.assertEqual(vouching.vouched("n07"), set())  # n07 is not reachable from a: its vouches do not count

    def test_parse_vouches(self):
        """When vouches are malformed, not in a flags map, or name kernels the links do not list, then those items are ignored."""
        links = (("a", 1), ("b", 1))
        self.assertEqual(parse_vouches({"vouches": [["a", 5], ["x", 6], ["b", "7"], "junk"]}, links), (("a", 5),))
        self.assertEqual(parse_vouches({"vouches": {"a": 5}}, links), ())
        self.assertEqual(parse_vouches([["a", 5]], links), ())
        self.assertEqual(parse_vouches({"hidden": True, "vouches": [["b", 2], ["a", 1]]}, links), (("a", 1), ("b", 2)))

    def test_equality_ignores_vouches(self):
        """When two adverts differ only in vouches, then they are the same advert."""
        self.assertEqual(LinkState("a", 1, 2, (), vouches=(("b", 1),)), LinkState("a", 1, 2, ()))


class ReselectBudgetTests(SynchronousTestCase):
    def test_beliefs_that_keep_changing_stop(self):
        """When every re-choice changes a belief again (adverts vouching in a ring), then flooding stops after MAX_RESELECT_ROUNDS rounds instead of recursing."""
        from lightspeed.net.flooding import MAX_RESELECT_ROUNDS

        mesh = MemoryMesh()
        a, b = mesh.kernel("a"), mesh.kernel("b")
        mesh.link(a, b)
        mesh.settle()
        flooding = a.network.flooding
        own = a.network.router.own()
        rounds: List[int] = []

        class Flipping:
            changed = [(own, None)]

            def reselect(self, origins: Any = None) -> None:
                rounds.append(1)
                self.changed = [(own, None)]

        flooding.vouching = Flipping()
        flooding._believed()
        self.assertEqual(len(rounds), MAX_RESELECT_ROUNDS)
        self.assertEqual(flooding.vouching.changed, [])


def _reachable(roots: List[Any], stop: Any) -> Dict[int, Any]:
    """Every object reachable from ``roots`` (not through ``stop``), by id."""
    seen: Dict[int, Any] = {}
    work = list(roots)
    while work:
        o = work.pop()
        if id(o) in seen or any(o is s for s in stop) or callable(o) or isinstance(o, type):
            continue
        seen[id(o)] = o
        work.extend(gc.get_referents(o))
    return seen
