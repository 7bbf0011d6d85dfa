"""
Tests for :obj:`lightspeed.paths`: the usable edges kept as adverts change,
and routes left alone only when a change cannot move them.
"""

from __future__ import annotations

import random
from typing import Dict, List, Optional, Tuple

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.paths import TwoWay, moves_routes, shortest_paths
from lightspeed.router import LinkState, Router

NAMES = [f"k{i}" for i in range(9)]


def fresh(router: Router) -> Tuple[Dict[str, Optional[str]], Dict[str, int]]:
    """The routes of a new router holding what ``router`` holds, computed from scratch."""
    other = Router(router.name, router.incarnation)
    for peer, cost in router.own().links:
        other.link_up(peer, cost)
    for lsa in router.database():
        if lsa.origin != router.name:
            other.store(lsa)
    for peer in router._hidden_peers:
        other.peer_hidden(peer, True)
    return {k: other.next_hop(k) for k in other.reachable()}, other.distances()


class TwoWayTests(SynchronousTestCase):
    def test_edge_needs_both_ends(self):
        """When one end lists an edge, then it is not usable; when both do, it is, at the larger cost."""
        graph = TwoWay("me")
        self.assertEqual(graph.update("a", {"b": 2, "me": 1}), [])
        self.assertEqual(graph.update("b", {"a": 3}), [("b", "a", None, 3)])
        self.assertEqual(graph.edges, {"a": {"b": 3}, "b": {"a": 3}})
        self.assertEqual(graph.update("a", {"b": 5}), [("a", "b", 3, 5)])
        self.assertEqual(graph.update("b", None), [("b", "a", 5, None)])
        self.assertEqual(graph.edges, {})

    def test_shortest_paths_smallest_first_hop(self):
        """When two first hops give equal costs, then the smaller name wins; a hidden kernel relays nothing."""
        edges = {"b": {"d": 1}, "c": {"d": 1, "e": 1}, "d": {"b": 1, "c": 1}, "e": {"c": 1}}
        hops, distances = shortest_paths("a", {"c": 1, "b": 1}, {"b": 1, "c": None}, edges, set())
        self.assertEqual(hops, {"b": "b", "c": "c", "d": "b", "e": "c"})
        self.assertEqual(distances, {"b": 1, "c": 1, "d": 2, "e": 2})
        hops, _ = shortest_paths("a", {"c": 1, "b": 1}, {}, edges, {"c"})
        self.assertEqual(hops, {"b": "b", "c": "c", "d": "b"})

    def test_unused_edge_does_not_move(self):
        """When an edge no route uses goes, then routes do not move; when a used one goes, they may."""
        hops = {"b": "b", "c": "c", "d": "b"}
        distances = {"b": 1, "c": 1, "d": 2}
        self.assertFalse(moves_routes([("c", "d", 1, None)], hops, distances, set(), {}))
        self.assertTrue(moves_routes([("b", "d", 1, None)], hops, distances, set(), {}))
        self.assertTrue(moves_routes([("d", "x", None, 1)], hops, distances, set(), {}))  # x becomes reachable
        self.assertFalse(moves_routes([("d", "x", None, 1)], hops, distances, {"d"}, {}))  # not through a leaf
        self.assertFalse(moves_routes([("c", "d", None, 1)], hops, distances, set(), {}))  # as good, later hop
        self.assertTrue(moves_routes([("c", "d", 2, 1)], {**hops, "d": "c"}, {**distances, "d": 3}, set(), {}))

    def test_edge_held_up_by_another(self):
        """When an edge that gave a kernel its label goes but another gives the same, then routes do not move."""
        hops = {"b": "b", "x": "b", "y": "b", "z": "b"}
        distances = {"b": 1, "x": 2, "y": 2, "z": 3}
        after = {"b": {"x": 1, "y": 1}, "x": {"b": 1}, "y": {"b": 1, "z": 1}, "z": {"y": 1}}
        self.assertFalse(moves_routes([("x", "z", 1, None)], hops, distances, set(), after))
        without = {"b": {"x": 1, "y": 1}, "x": {"b": 1}, "y": {"b": 1}}
        self.assertTrue(moves_routes([("x", "z", 1, None)], hops, distances, set(), without))
        self.assertTrue(moves_routes([("x", "z", 1, None)], hops, distances, {"y"}, after))  # not through a leaf


class IncrementalTests(SynchronousTestCase):
    def random_links(self, rng: random.Random, origin: str) -> Tuple[Tuple[str, int], ...]:
        peers = rng.sample([n for n in NAMES if n != origin], rng.randint(0, 4))
        return tuple(sorted((p, rng.choice((1, 1, 2, 3))) for p in peers))

    def step(self, rng: random.Random, router: Router, seqs: Dict[str, int]) -> None:
        roll = rng.random()
        origin = rng.choice(NAMES[1:])
        if roll < 0.1:
            router.link_up(origin, rng.choice((1, 2)))
        elif roll < 0.15:
            router.link_down(origin)
        elif roll < 0.2:
            router.peer_hidden(origin, rng.random() < 0.5)
        elif roll < 0.25 and router.held(origin) is not None:
            router.drop([origin])
        else:
            seqs[origin] = seqs.get(origin, 0) + 1
            router.store(LinkState(origin, 1, seqs[origin], self.random_links(rng, origin),
                                   hidden=rng.random() < 0.05))

    def test_same_routes_as_from_scratch(self):
        """When random adverts, drops and own link changes come, then routes are always those computed afresh."""
        skipped = 0
        for seed in range(60):
            rng = random.Random(seed)
            router = Router(NAMES[0], 1)
            seqs: Dict[str, int] = {}
            checks: List[bool] = []
            for _ in range(80):
                self.step(rng, router, seqs)
                checks.append(router._dirty)
                hops = {k: router.next_hop(k) for k in router.reachable()}
                self.assertEqual((hops, router.distances()), fresh(router), f"seed {seed}")
            skipped += checks.count(False)
        self.assertGreater(skipped, 500)  # many changes moved no route and cost no computation
