# -*- test-case-name: lightspeed.test.test_router -*-
"""
Tests for :obj:`lightspeed.router`: link-state advertisements and routes.
"""

from __future__ import annotations

import random
import tracemalloc
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.router import LinkState, Router
from lightspeed.test.optional import given, settings, st

#: Edges as ``{(x, y): (cost x advertises, cost y advertises)}`` with ``x < y``.
Edges = Dict[Tuple[str, str], Tuple[int, int]]
#: An LSA in flight: ``(to, from, lsa)``.
Message = Tuple[str, str, LinkState]

NAMES = ["ash", "bay", "cob", "dun", "elm", "fir", "gum", "hob"]
INF = float("inf")


def lsa(origin: str, links: Dict[str, int], incarnation: int = 1, seq: int = 1) -> LinkState:
    """
    An LSA of ``origin`` listing ``links``.
    """
    return LinkState(origin, incarnation, seq, tuple(sorted(links.items())))


def edge(x: str, y: str, cx: int = 1, cy: Optional[int] = None) -> Edges:
    """
    One edge; ``cy`` defaults to ``cx``.
    """
    cy = cx if cy is None else cy
    return {(x, y): (cx, cy)} if x < y else {(y, x): (cy, cx)}


def chain(spec: str) -> Edges:
    """
    Unit-cost edges written like ``"a-b b-c"``.
    """
    edges: Edges = {}
    for pair in spec.split():
        x, y = pair.split("-")
        edges.update(edge(x, y))
    return edges


def costs_of(edges: Edges, x: str, y: str) -> Tuple[int, int]:
    """
    The costs ``x`` and ``y`` advertise for their edge.
    """
    if x < y:
        return edges[(x, y)]
    cy, cx = edges[(y, x)]
    return cx, cy


def adverts(edges: Edges) -> Dict[str, Dict[str, int]]:
    """
    What each kernel advertises for ``edges``.
    """
    out: Dict[str, Dict[str, int]] = {}
    for (x, y), (cx, cy) in edges.items():
        out.setdefault(x, {})[y] = cx
        out.setdefault(y, {})[x] = cy
    return out


def router_for(me: str, edges: Edges, order: Optional[Iterable[str]] = None) -> Router:
    """
    A router for ``me`` with its links up and every other kernel's LSA held.
    """
    ads = adverts(edges)
    router = Router(me, 1)
    for peer, cost in sorted(ads.get(me, {}).items()):
        router.link_up(peer, cost)
    for origin in (order if order is not None else sorted(ads)):
        if origin != me:
            router.receive(lsa(origin, ads[origin]), "wire")
    return router


def oracle(names: Iterable[str], edges: Edges) -> Tuple[Dict[str, Dict[str, int]], Dict[str, Dict[str, str]]]:
    """
    Shortest distances (Floyd-Warshall) and the expected next hops: the
    smallest-named neighbour on some shortest path.
    """
    names = sorted(names)
    weight: Dict[str, Dict[str, int]] = {n: {} for n in names}
    for (x, y), (cx, cy) in edges.items():
        weight[x][y] = weight[y][x] = max(cx, cy)
    dist = {a: {b: 0 if a == b else weight[a].get(b, INF) for b in names} for a in names}
    for k in names:
        for i in names:
            for j in names:
                if dist[i][k] + dist[k][j] < dist[i][j]:
                    dist[i][j] = dist[i][k] + dist[k][j]
    distances = {a: {b: int(d) for b, d in dist[a].items() if b != a and d < INF} for a in names}
    hops = {
        a: {b: min(n for n, w in weight[a].items() if w + dist[n][b] == dist[a][b]) for b in distances[a]}
        for a in names
    }
    return distances, hops


def simulate_flood(routers: Dict[str, Router], links: Set[FrozenSet[str]], pending: List[Message],
                   choose: Callable[[int], int], limit: Optional[int] = None) -> int:
    """
    Deliver in-flight LSAs the way :obj:`lightspeed.network` does: a new one is
    flooded to every neighbour but its sender, and routes are queried after
    every delivery.

    :param routers: the live routers by name.
    :param links: the links that are up.
    :param pending: the messages in flight; consumed.
    :param choose: picks the index of the next message among ``n``.
    :param limit: deliver at most this many, or all.
    :returns: how many were delivered.
    """
    delivered = 0
    while pending and (limit is None or delivered < limit):
        to, sender, message = pending.pop(choose(len(pending)))
        if frozenset((to, sender)) not in links:
            continue
        router = routers[to]
        before = router.own()
        if router.receive(message, sender):
            pending.extend((n, to, message) for n in sorted(router.neighbours()) if n != sender)
        elif router.own() != before:  # a leftover in our name: re-advertise
            pending.extend((n, to, router.own()) for n in sorted(router.neighbours()))
        router.reachable()
        delivered += 1
    return delivered


class Mesh:
    """
    Routers joined by links in memory, with LSAs in flight.
    """

    def __init__(self, choose: Callable[[int], int]) -> None:
        self.choose = choose
        self.routers: Dict[str, Router] = {}
        self.links: Set[FrozenSet[str]] = set()
        self.edges: Edges = {}
        self.pending: List[Message] = []

    def start(self, name: str, incarnation: int = 100) -> Router:
        self.routers[name] = Router(name, incarnation)
        return self.routers[name]

    def _flood(self, name: str, message: LinkState) -> None:
        self.pending.extend((n, name, message) for n in sorted(self.routers[name].neighbours()))

    def connect(self, x: str, y: str, cx: int = 1, cy: Optional[int] = None) -> None:
        """
        Bring a link up: database sync both ways, then both ends advertise.
        """
        cy = cx if cy is None else cy
        self.links.add(frozenset((x, y)))
        self.edges.update(edge(x, y, cx, cy))
        for a, b in ((x, y), (y, x)):
            self.pending.extend((b, a, m) for m in self.routers[a].database())
        self._flood(x, self.routers[x].link_up(y, cx))
        self._flood(y, self.routers[y].link_up(x, cy))

    def _cut(self, x: str, y: str) -> None:
        self.links.discard(frozenset((x, y)))
        self.edges.pop((min(x, y), max(x, y)), None)
        self.pending = [m for m in self.pending if {m[0], m[1]} != {x, y}]

    def disconnect(self, x: str, y: str) -> None:
        """
        Bring a link down; both ends advertise.
        """
        self._cut(x, y)
        for a, b in ((x, y), (y, x)):
            message = self.routers[a].link_down(b)
            assert message is not None
            self._flood(a, message)

    def restart(self, name: str, same_incarnation: bool = False) -> Router:
        """
        Kill ``name`` (its neighbours see their links drop) and start it again
        with no links and the next incarnation (or the same one).
        """
        old = self.routers[name]
        for peer in sorted(old.neighbours()):
            self._cut(name, peer)
            message = self.routers[peer].link_down(name)
            assert message is not None
            self._flood(peer, message)
        self.pending = [m for m in self.pending if name not in m[:2]]
        return self.start(name, old.incarnation + (0 if same_incarnation else 1))

    def settle(self, limit: Optional[int] = None) -> int:
        return simulate_flood(self.routers, self.links, self.pending, self.choose, limit)


@st.composite
def meshes(draw: Callable, min_nodes: int = 2, max_nodes: int = 8, cyclic: bool = False) -> Tuple[List[str], Edges]:
    """
    A connected graph: a random spanning tree plus random chords (at least
    one if ``cyclic``), each end advertising a cost of 1 to 4.
    """
    n = draw(st.integers(min_nodes, max_nodes))
    names = draw(st.permutations(NAMES))[:n]
    pairs: Set[Tuple[str, str]] = set()
    for i in range(1, n):
        j = draw(st.integers(0, i - 1))
        pairs.add((min(names[i], names[j]), max(names[i], names[j])))
    missing = sorted((a, b) for a in names for b in names if a < b and (a, b) not in pairs)
    if missing:
        pairs.update(draw(st.lists(st.sampled_from(missing), min_size=1 if cyclic else 0, max_size=n)))
    costs = st.tuples(st.integers(1, 4), st.integers(1, 4))
    return names, {p: draw(costs) for p in sorted(pairs)}


def components(names: Iterable[str], edges: Edges) -> List[Set[str]]:
    """
    The connected components of ``edges``.
    """
    groups = {n: {n} for n in names}
    for x, y in edges:
        if groups[x] is not groups[y]:
            merged = groups[x] | groups[y]
            for n in merged:
                groups[n] = merged
    return list({id(g): g for g in groups.values()}.values())


class ConvergenceMixin(SynchronousTestCase):  # a base: it runs no test of its own
    """
    Checks that a whole :obj:`Mesh` agrees with the oracle.
    """

    def assert_converged(self, mesh: Mesh) -> None:
        self.assertEqual(mesh.pending, [])
        distances, hops = oracle(mesh.routers, mesh.edges)
        for name, router in sorted(mesh.routers.items()):
            self.assertEqual(router.distances(), distances[name], name)
            self.assertEqual({k: router.next_hop(k) for k in mesh.routers if k != name}, {
                k: hops[name].get(k) for k in mesh.routers if k != name}, name)
            self.assertEqual(router.reachable(), frozenset(distances[name]), name)
            for kernel in distances[name]:
                self.assertEqual(router.incarnation_of(kernel), mesh.routers[kernel].incarnation)
        for group in components(mesh.routers, mesh.edges):
            self.assertEqual(len({tuple(mesh.routers[n].database()) for n in group}), 1, sorted(group))


class LinkStateTests(SynchronousTestCase):
    def test_newer_than_none(self):
        """When nothing is held, then any LSA is newer."""
        self.assertTrue(lsa("a", {}, 1, 1).newer_than(None))

    def test_newer_seq(self):
        """When the seq is larger in the same incarnation, then the LSA is newer, and not the other way."""
        self.assertTrue(lsa("a", {}, 1, 2).newer_than(lsa("a", {}, 1, 1)))
        self.assertFalse(lsa("a", {}, 1, 1).newer_than(lsa("a", {}, 1, 2)))

    def test_incarnation_beats_seq(self):
        """When the incarnation is larger, then the LSA is newer even with a smaller seq."""
        self.assertTrue(lsa("a", {}, 2, 1).newer_than(lsa("a", {}, 1, 99)))
        self.assertFalse(lsa("a", {}, 1, 99).newer_than(lsa("a", {}, 2, 1)))

    def test_slots_and_link_map(self):
        """When 1,000 LSAs are made, then each takes under 160 bytes (each kernel holds one per kernel; one with a dictionary of attributes takes over 250), its links are a mapping built once, and equality and hashing ignore that mapping."""
        links = (("b", 1), ("c", 2))
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        start = tracemalloc.get_traced_memory()[0]
        made = [LinkState("a", 1, seq, links) for seq in range(1000, 2000)]  # the seq ints count too
        self.assertLess((tracemalloc.get_traced_memory()[0] - start) / len(made), 160)
        one = lsa("a", {"b": 1, "c": 2}, 1, 1)
        self.assertEqual(one.link_map, {"b": 1, "c": 2})
        self.assertIs(one.link_map, one.link_map)
        other = lsa("a", {"b": 1, "c": 2}, 1, 1)
        self.assertEqual((one, hash(one)), (other, hash(other)))
        self.assertNotIn("_link_map", repr(one))

    def test_equal_not_newer(self):
        """When incarnation and seq are equal, then the LSA is not newer, whatever its links."""
        self.assertFalse(lsa("a", {"b": 1}, 3, 4).newer_than(lsa("a", {}, 3, 4)))


class OwnLinkTests(SynchronousTestCase):
    def test_initial(self):
        """When a router starts, then its own LSA carries its name and incarnation and no links."""
        router = Router("a", 7)
        own = router.own()
        self.assertEqual((own.origin, own.incarnation, own.links), ("a", 7, ()))
        self.assertEqual((router.name, router.incarnation), ("a", 7))
        self.assertEqual(router.neighbours(), frozenset())
        self.assertEqual(router.database(), [own])

    def test_link_up(self):
        """When a link comes up, then the returned LSA is the new own one, one seq later, listing it."""
        router = Router("a", 1)
        seq = router.own().seq
        new = router.link_up("b", 3)
        self.assertEqual(new, LinkState("a", 1, seq + 1, (("b", 3),)))
        self.assertIs(router.own(), new)
        self.assertEqual(router.neighbours(), frozenset({"b"}))

    def test_links_sorted(self):
        """When links come up out of name order, then the LSA lists them sorted by neighbour."""
        router = Router("m", 1)
        for peer in ["z", "b", "q"]:
            router.link_up(peer)
        self.assertEqual(router.own().links, (("b", 1), ("q", 1), ("z", 1)))

    def test_link_up_again(self):
        """When link_up repeats with the same cost, then a fresh LSA with a larger seq and the same links comes back."""
        router = Router("a", 1)
        first = router.link_up("b")
        second = router.link_up("b")
        self.assertTrue(second.newer_than(first))
        self.assertEqual(second.links, first.links)

    def test_cost_change(self):
        """When link_up repeats with another cost, then the new cost is advertised."""
        router = Router("a", 1)
        router.link_up("b", 1)
        self.assertEqual(router.link_up("b", 5).links, (("b", 5),))

    def test_bad_cost(self):
        """When a cost is below 1 or not an integer, then link_up raises ValueError and changes nothing."""
        router = Router("a", 1)
        before = router.own()
        for cost in [0, -1, 1.5, True]:
            self.assertRaises(ValueError, router.link_up, "b", cost)
        self.assertEqual(router.own(), before)

    def test_self_link(self):
        """When a router is told of a link to itself, then link_up raises ValueError."""
        self.assertRaises(ValueError, Router("a", 1).link_up, "a")

    def test_link_down_unknown(self):
        """When a link that is not up goes down, then link_down returns None and the own LSA stays."""
        router = Router("a", 1)
        router.link_up("b")
        before = router.own()
        self.assertIsNone(router.link_down("c"))
        self.assertIs(router.own(), before)

    def test_link_down(self):
        """When a link goes down, then a newer own LSA without it comes back."""
        router = Router("a", 1)
        router.link_up("b")
        up = router.link_up("c")
        down = router.link_down("b")
        assert down is not None
        self.assertTrue(down.newer_than(up))
        self.assertEqual(down.links, (("c", 1),))
        self.assertEqual(router.neighbours(), frozenset({"c"}))
        self.assertIsNone(router.link_down("b"))


class ReceiveTests(SynchronousTestCase):
    def test_new(self):
        """When an unknown kernel's LSA arrives, then it is new and held."""
        router = Router("a", 1)
        b = lsa("b", {"a": 1})
        self.assertTrue(router.receive(b, "b"))
        self.assertIn(b, router.database())

    def test_duplicate(self):
        """When the same LSA arrives twice, then the second is dropped."""
        router = Router("a", 1)
        router.receive(lsa("b", {"a": 1}, 1, 3), "b")
        self.assertFalse(router.receive(lsa("b", {"a": 1}, 1, 3), "c"))

    def test_stale(self):
        """When an older seq arrives after a newer one, then it is dropped and the newer one stays."""
        router = Router("a", 1)
        newer = lsa("b", {"a": 1}, 1, 5)
        router.receive(newer, "b")
        self.assertFalse(router.receive(lsa("b", {}, 1, 4), "b"))
        self.assertEqual(router.database(), [router.own(), newer])

    def test_restart_replaces(self):
        """When a restarted kernel's LSA arrives, then it replaces the old one despite a smaller seq."""
        router = Router("a", 1)
        router.receive(lsa("b", {"a": 1}, 1, 90), "b")
        restarted = lsa("b", {"c": 1}, 2, 1)
        self.assertTrue(router.receive(restarted, "b"))
        self.assertEqual(router.database(), [router.own(), restarted])

    def test_earlier_incarnation_dropped(self):
        """When an LSA of an earlier incarnation arrives, then it is dropped whatever its seq."""
        router = Router("a", 1)
        router.receive(lsa("b", {}, 2, 1), "b")
        self.assertFalse(router.receive(lsa("b", {"a": 1}, 1, 90), "b"))

    def test_database_sorted(self):
        """When LSAs arrive in any order, then the database holds them and our own, sorted by origin."""
        router = Router("m", 1)
        for name in ["z", "b", "q"]:
            router.receive(lsa(name, {}), name)
        self.assertEqual([x.origin for x in router.database()], ["b", "m", "q", "z"])

    def test_own_echo(self):
        """When our own current LSA comes back round a cycle, then it is dropped and nothing changes."""
        router = Router("a", 1)
        own = router.link_up("b")
        self.assertFalse(router.receive(own, "b"))
        self.assertIs(router.own(), own)

    def test_own_name_forgery(self):
        """When an LSA in our name with a larger seq arrives, then it is dropped and our seq jumps above it."""
        router = Router("a", 1)
        router.link_up("b")
        forged = lsa("a", {"x": 1}, 1, 50)
        self.assertFalse(router.receive(forged, "b"))
        self.assertEqual(router.own().links, (("b", 1),))
        self.assertTrue(router.own().newer_than(forged))
        self.assertEqual([x for x in router.database() if x.origin == "a"], [router.own()])
        self.assertTrue(router.link_up("c").newer_than(forged))

    def test_own_name_forgery_not_routed(self):
        """When a forged LSA in our name lists a link, then that link carries no route."""
        router = Router("a", 1)
        router.link_up("b")
        router.receive(lsa("a", {"x": 1}, 1, 50), "b")
        router.receive(lsa("b", {"a": 1}), "b")
        router.receive(lsa("x", {"a": 1}), "b")
        self.assertEqual(router.reachable(), frozenset({"b"}))

    def test_own_name_conflict(self):
        """When an LSA in our name with our seq but other links arrives, then our seq jumps above it."""
        router = Router("a", 1)
        own = router.link_up("b")
        conflict = LinkState("a", 1, own.seq, ())
        self.assertFalse(router.receive(conflict, "b"))
        self.assertTrue(router.own().newer_than(conflict))
        self.assertEqual(router.own().links, own.links)

    def test_own_earlier_incarnation(self):
        """When an LSA of our earlier incarnation arrives, then it is dropped and our own LSA stays."""
        router = Router("a", 2)
        own = router.link_up("b")
        self.assertFalse(router.receive(lsa("a", {"x": 1}, 1, 99), "b"))
        self.assertIs(router.own(), own)


class RouteTests(SynchronousTestCase):
    def test_chain(self):
        """When kernels form a 4-long chain, then every far kernel goes through the first neighbour."""
        router = router_for("a", chain("a-b b-c c-d"))
        self.assertEqual([router.next_hop(k) for k in "bcd"], ["b", "b", "b"])
        self.assertEqual(router.distances(), {"b": 1, "c": 2, "d": 3})
        middle = router_for("c", chain("a-b b-c c-d"))
        self.assertEqual([middle.next_hop(k) for k in "abd"], ["b", "b", "d"])

    def test_cheaper_two_hops(self):
        """When a direct link costs more than a two-hop path, then the two-hop path wins."""
        edges = {**edge("a", "c", 10), **chain("a-b b-c")}
        router = router_for("a", edges)
        self.assertEqual(router.next_hop("c"), "b")
        self.assertEqual(router.distances()["c"], 2)

    def test_cost_is_larger_side(self):
        """When the two ends advertise different costs, then the edge costs the larger one."""
        edges = {**edge("a", "b", 1, 5), **chain("a-c c-b")}
        router = router_for("a", edges)
        self.assertEqual(router.next_hop("b"), "c")
        self.assertEqual(router.distances()["b"], 2)

    def test_tie_smaller_name(self):
        """When two equal-cost paths exist, then the next hop with the smaller name wins whatever the order."""
        edges = chain("a-c c-d a-b b-d")
        for order in (["b", "c", "d"], ["d", "c", "b"]):
            router = Router("a", 1)
            router.link_up("c")
            router.link_up("b")
            for origin in order:
                router.receive(lsa(origin, adverts(edges)[origin]), "wire")
            self.assertEqual(router.next_hop("d"), "b")

    def test_two_way(self):
        """When only one end of a remote link lists it, then the link carries no route."""
        router = Router("a", 1)
        router.link_up("b")
        router.receive(lsa("b", {"a": 1, "c": 1}), "b")
        router.receive(lsa("c", {"d": 1}), "b")
        router.receive(lsa("d", {"c": 1}), "b")
        self.assertEqual(router.reachable(), frozenset({"b"}))
        self.assertEqual((router.next_hop("c"), router.next_hop("d")), (None, None))

    def test_own_link_at_once(self):
        """When our link is up before the neighbour's LSA lists it, then the neighbour is routed at once."""
        router = Router("a", 1)
        router.link_up("b", 2)
        self.assertEqual((router.next_hop("b"), router.distances()), ("b", {"b": 2}))
        self.assertIsNone(router.incarnation_of("b"))  # no LSA of b yet
        router.receive(lsa("b", {"c": 1}, 7), "b")  # b's sync, sent before b saw the link
        router.receive(lsa("c", {"b": 1}), "b")
        self.assertEqual(router.next_hop("c"), "b")
        self.assertEqual(router.incarnation_of("b"), 7)
        router.link_down("b")
        self.assertEqual(router.reachable(), frozenset())

    def test_self_and_unknown(self):
        """When asked about ourselves or an unknown kernel, then there is no next hop."""
        router = router_for("a", chain("a-b"))
        self.assertIsNone(router.next_hop("a"))
        self.assertIsNone(router.next_hop("nowhere"))
        self.assertEqual(router.reachable(), frozenset({"b"}))

    def test_incarnation_of(self):
        """When a kernel is reachable, then its incarnation is known; else None."""
        router = Router("a", 1)
        router.link_up("b")
        router.receive(lsa("b", {"a": 1}, 42, 1), "b")
        router.receive(lsa("z", {}, 43, 1), "b")
        self.assertEqual(router.incarnation_of("b"), 42)
        self.assertIsNone(router.incarnation_of("z"))
        self.assertIsNone(router.incarnation_of("a"))

    def test_unreachable_leaves(self):
        """When the only link towards kernels goes down, then they leave the table."""
        router = router_for("a", chain("a-b b-c"))
        router.link_down("b")
        self.assertEqual(router.reachable(), frozenset())
        self.assertEqual(router.distances(), {})
        self.assertEqual((router.next_hop("b"), router.next_hop("c"), router.incarnation_of("c")), (None, None, None))

    def test_unreachable_comes_back(self):
        """When an unreachable kernel's newer LSA arrives, then it is taken and routed once linked."""
        router = router_for("a", chain("a-b b-c"))
        router.link_down("b")
        router.reachable()
        self.assertTrue(router.receive(lsa("c", {"b": 1, "d": 1}, 1, 2), "b"))
        self.assertTrue(router.receive(lsa("d", {"c": 1}), "b"))
        router.link_up("b")
        self.assertEqual(router.next_hop("d"), "b")

    def test_early_lsa_kept(self):
        """When a kernel's LSA arrives before the one that links it to us, then it is kept and used."""
        router = Router("a", 1)
        router.link_up("b")
        for origin, links in [("b", {"z": 1}), ("c", {"z": 1}), ("z", {"b": 1, "c": 1})]:
            router.receive(lsa(origin, links), "b")  # b's database sync, sorted by origin
            router.reachable()
        self.assertEqual(router.next_hop("c"), "b")
        self.assertEqual(router.distances()["c"], 3)

    def test_restart_relinks(self):
        """When a restarted kernel advertises other links, then routes follow the new LSA."""
        router = router_for("a", chain("a-b b-c a-d"))
        self.assertEqual(router.next_hop("c"), "b")
        router.receive(lsa("b", {"a": 1}, 1, 2), "b")
        router.receive(lsa("c", {"d": 1}, 2, 1), "d")
        router.receive(lsa("d", {"a": 1, "c": 1}, 1, 2), "d")
        self.assertEqual(router.next_hop("c"), "d")
        self.assertEqual(router.incarnation_of("c"), 2)


class LazyTests(SynchronousTestCase):
    def count(self, router: Router) -> List[int]:
        calls = [0]
        compute = router._recompute

        def counting() -> None:
            calls[0] += 1
            compute()

        router._recompute = counting  # type: ignore[method-assign]
        return calls

    def test_burst_one_computation(self):
        """When a burst of LSAs arrives, then the next queries cost one computation."""
        router = Router("a", 1)
        calls = self.count(router)
        router.link_up("b")
        for origin, links in adverts(chain("a-b b-c c-d d-e")).items():
            if origin != "a":
                router.receive(lsa(origin, links), "b")
        self.assertEqual(calls[0], 0)
        router.next_hop("e")
        router.reachable()
        router.distances()
        router.split(["c", "d"])
        router.incarnation_of("c")
        self.assertEqual(calls[0], 1)
        self.assertEqual(router.next_hop("e"), "b")

    def test_no_change_no_computation(self):
        """When a duplicate or a same-links LSA arrives, then routes are not recomputed."""
        router = router_for("a", chain("a-b b-c"))
        calls = self.count(router)
        router.reachable()
        router.receive(lsa("c", {"b": 1}), "b")
        router.receive(lsa("c", {"b": 1}, 1, 2), "b")
        router.reachable()
        self.assertEqual(calls[0], 1)
        router.receive(lsa("c", {"b": 1, "d": 1}, 1, 3), "b")
        router.reachable()
        self.assertEqual(calls[0], 1)  # c-d is not usable until d lists c
        router.receive(lsa("d", {"c": 1}), "b")
        self.assertEqual(router.next_hop("d"), "b")
        self.assertEqual(calls[0], 2)


class SplitTests(SynchronousTestCase):
    def setUp(self):
        self.router = router_for("a", chain("a-b a-c b-d c-e"))

    def test_groups(self):
        """When destinations lie behind several neighbours, then they are grouped by next hop in the given order."""
        groups, unreachable = self.router.split(["e", "d", "b", "c"])
        self.assertEqual(groups, {"c": ["e", "c"], "b": ["d", "b"]})
        self.assertEqual(unreachable, [])

    def test_unreachable(self):
        """When some destinations have no route, then they are listed in the given order."""
        groups, unreachable = self.router.split(["zz", "d", "yy"])
        self.assertEqual((groups, unreachable), ({"b": ["d"]}, ["zz", "yy"]))

    def test_self_and_duplicates(self):
        """When our own name and repeats are given, then ours is skipped and each kernel counts once."""
        groups, unreachable = self.router.split(["d", "a", "d", "zz", "b", "zz"])
        self.assertEqual((groups, unreachable), ({"b": ["d", "b"]}, ["zz"]))


class JoinTests(ConvergenceMixin, SynchronousTestCase):
    def ring(self, choose: Callable[[int], int]) -> Mesh:
        mesh = Mesh(choose)
        names = ["k0", "k1", "k2", "k3", "k4"]
        for name in names:
            mesh.start(name)
        for i, name in enumerate(names):  # a ring plus chords, all at once
            mesh.connect(name, names[(i + 1) % 5])
        mesh.connect("k0", "k2", 3)
        mesh.connect("k1", "k3", 1, 2)
        return mesh

    def test_simultaneous_joins(self):
        """When many links come up at once and LSAs interleave in any order, then every map is the same and right."""
        for choose in (lambda n: 0, lambda n: n - 1, random.Random(5).randrange):
            mesh = self.ring(choose)
            self.assertGreater(mesh.settle(), 0)
            self.assert_converged(mesh)

    def test_join_settled_mesh(self):
        """When a kernel joins a settled mesh, then it learns every kernel from its neighbour's database."""
        mesh = Mesh(lambda n: 0)
        for name in "abcd":
            mesh.start(name)
        for x, y in [("a", "b"), ("b", "c"), ("c", "d")]:
            mesh.connect(x, y)
        mesh.settle()
        mesh.start("e")
        mesh.connect("e", "d")  # d's database lists a, b, c before d itself
        mesh.settle()
        self.assertEqual(mesh.routers["e"].reachable(), frozenset("abcd"))
        self.assert_converged(mesh)

    def test_link_flap(self):
        """When a bridge goes down and comes back, then both halves split and then rejoin."""
        mesh = Mesh(lambda n: 0)
        for name in "abcd":
            mesh.start(name)
        for x, y in [("a", "b"), ("b", "c"), ("c", "d")]:
            mesh.connect(x, y)
        mesh.settle()
        mesh.disconnect("b", "c")
        mesh.settle()
        self.assertEqual(mesh.routers["a"].reachable(), frozenset("b"))
        self.assert_converged(mesh)
        mesh.connect("b", "c")
        mesh.settle()
        self.assertEqual(mesh.routers["a"].reachable(), frozenset("bcd"))
        self.assert_converged(mesh)

    def test_leftover_own_lsa(self):
        """When a kernel restarts with the same incarnation, then it outbids its leftover LSA and is routed again."""
        mesh = Mesh(lambda n: 0)
        for name in "abc":
            mesh.start(name)
        mesh.connect("a", "b")
        mesh.connect("b", "c")
        mesh.settle()
        for _ in range(5):  # re-advertisements push c's seq up
            mesh._flood("c", mesh.routers["c"].link_up("b"))
        mesh.settle()
        old = mesh.routers["c"].own()
        mesh.restart("c", same_incarnation=True)
        mesh.connect("b", "c")
        mesh.settle()
        self.assertTrue(mesh.routers["c"].own().newer_than(old))
        self.assertEqual(mesh.routers["a"].next_hop("c"), "b")
        self.assert_converged(mesh)


class OrderIndependenceTests(SynchronousTestCase):
    @given(mesh=meshes(), data=st.data())
    @settings(max_examples=50, deadline=None)
    def test_any_order_same_routes(self, mesh, data):
        """When the same LSAs (and older copies) arrive in any order, then database and routes agree and are right."""
        names, edges = mesh
        me = names[0]
        ads = adverts(edges)
        newest = [lsa(n, ads[n], 1, 3) for n in names if n != me]
        older = [lsa(n, dict(list(ads[n].items())[: data.draw(st.integers(0, len(ads[n])))]), 1, 2)
                 for n in names if n != me]
        distances, hops = oracle(names, edges)
        results = []
        for _ in range(2):
            router = router_for(me, {p: c for p, c in edges.items() if me in p}, [])
            for message in data.draw(st.permutations(newest + older)):
                router.receive(message, "wire")
                if data.draw(st.booleans()):
                    router.reachable()
            table = {k: router.next_hop(k) for k in names}
            results.append((table, router.database(), router.distances()))
            self.assertEqual(table, {k: hops[me].get(k) for k in names})
            self.assertEqual(router.distances(), distances[me])
            self.assertEqual(router.database(), sorted(newest + [router.own()], key=lambda x: x.origin))
        self.assertEqual(results[0], results[1])


class FloodingTests(ConvergenceMixin, SynchronousTestCase):
    def joined(self, names: List[str], edges: Edges, rng: random.Random) -> Mesh:
        """
        Every kernel started and every link brought up, with deliveries
        interleaved at random between the joins.
        """
        mesh = Mesh(rng.randrange)
        for name in names:
            mesh.start(name, 100 + rng.randrange(5))
        for (x, y), (cx, cy) in rng.sample(sorted(edges.items()), len(edges)):
            mesh.connect(x, y, cx, cy)
            mesh.settle(rng.randrange(len(mesh.pending) + 1))
        mesh.settle()
        return mesh

    @given(mesh=meshes(min_nodes=3, cyclic=True), rng=st.randoms(use_true_random=False))
    @settings(max_examples=50, deadline=None)
    def test_flood_cycle_down_restart(self, mesh, rng):
        """When a cyclic mesh floods at random, loses a cycle link and restarts a kernel, then all converge each time."""
        names, edges = mesh
        live = self.joined(names, edges, rng)
        self.assert_converged(live)
        cycle = [p for p in sorted(live.edges) if len(components(names, {
            q: c for q, c in live.edges.items() if q != p})) == 1]
        self.assertTrue(cycle)
        x, y = rng.choice(cycle)
        live.disconnect(x, y)
        live.settle()
        self.assert_converged(live)
        self.assertEqual(len(components(names, live.edges)), 1)
        victim = rng.choice(names)
        peers = sorted(live.routers[victim].neighbours())
        restarted = live.restart(victim)
        live.settle(rng.randrange(len(live.pending) + 1))
        for peer in peers:
            live.connect(victim, peer, *costs_of(edges, victim, peer))
            live.settle(rng.randrange(len(live.pending) + 1))
        live.settle()
        self.assert_converged(live)
        for name in names:
            if name != victim:
                self.assertEqual(live.routers[name].incarnation_of(victim), restarted.incarnation)

    @given(mesh=meshes(min_nodes=2), rng=st.randoms(use_true_random=False))
    @settings(max_examples=50, deadline=None)
    def test_partition_heals(self, mesh, rng):
        """When any link goes down and comes back amid random delivery, then the halves agree apart and together."""
        names, edges = mesh
        live = self.joined(names, edges, rng)
        x, y = rng.choice(sorted(live.edges))
        costs = costs_of(live.edges, x, y)
        live.disconnect(x, y)
        live.settle()
        self.assert_converged(live)
        live.connect(x, y, *costs)
        live.settle()
        self.assert_converged(live)
        self.assertEqual({r.reachable() | {n} for n, r in live.routers.items()}, {frozenset(names)})


class BehindTests(SynchronousTestCase):
    """
    :obj:`Router.behind`: which origins a neighbour's link can carry.
    """

    def make(self, edges: str) -> "Router":
        """
        Router 'x' whose database holds a two-way LSA set for ``edges``
        ('xa ab bc': x's own links plus the others').
        """
        adjacency: dict = {}
        for edge in edges.split():
            adjacency.setdefault(edge[0], set()).add(edge[1])
            adjacency.setdefault(edge[1], set()).add(edge[0])
        router = Router("x", 1)
        for peer in sorted(adjacency.get("x", ())):
            router.link_up(peer)
        for node, peers in adjacency.items():
            if node != "x":
                router.receive(LinkState(node, 1, 1, tuple((p, 1) for p in sorted(peers))), "a")
        return router

    def test_tree(self):
        """When the network is a tree, then each link carries its own subtree."""
        router = self.make("xa ab xc cd")
        self.assertEqual(router.behind("a"), {"a", "b"})
        self.assertEqual(router.behind("c"), {"c", "d"})

    def test_cycle(self):
        """When a cycle joins two links, then both carry every kernel of it."""
        router = self.make("xa ab bc cx")
        self.assertEqual(router.behind("a"), {"a", "b", "c"})
        self.assertEqual(router.behind("c"), {"a", "b", "c"})

    def test_one_way_edge(self):
        """When only one end lists an edge, then it carries nothing."""
        router = self.make("xa")
        router.receive(LinkState("b", 1, 1, (("a", 1),)), "a")
        self.assertEqual(router.behind("a"), {"a"})

    def test_fading(self):
        """When an LSA withdraws an edge, then the edge still counts until forget_fading."""
        router = self.make("xa ab")
        router.receive(LinkState("b", 1, 2, ()), "a")
        self.assertEqual(set(router.fading()), {("b", "a")})
        self.assertEqual(router.behind("a"), {"a", "b"})
        router.forget_fading()
        self.assertEqual(router.behind("a"), {"a"})

    def test_one_way_never_fades(self):
        """When an LSA withdraws an edge the other end never listed, then it does not count (no vouching by one-sided claims)."""
        router = self.make("xa")
        router.receive(LinkState("a", 1, 2, (("c", 1), ("x", 1))), "a")  # a claims c; c never agreed
        router.receive(LinkState("a", 1, 3, (("x", 1),)), "a")
        self.assertEqual(router.fading(), {})
        self.assertEqual(router.behind("a"), {"a"})

    def test_each_edge_expires_on_its_own(self):
        """When edges are withdrawn at different times, then each stops counting GRACE after its own withdrawal."""
        now = [0.0]
        router = Router("x", 1, lambda: now[0])
        router.link_up("a")
        router.receive(LinkState("a", 1, 1, (("b", 1), ("c", 1), ("x", 1))), "a")
        router.receive(LinkState("b", 1, 1, (("a", 1),)), "a")
        router.receive(LinkState("c", 1, 1, (("a", 1),)), "a")
        router.receive(LinkState("b", 1, 2, ()), "a")
        now[0] = 20.0
        router.receive(LinkState("c", 1, 2, ()), "a")
        self.assertEqual(router.fading(), {("b", "a"): 0.0, ("c", "a"): 20.0})
        self.assertEqual(router.forget_fading(before=1.0), 20.0)
        self.assertEqual(router.behind("a"), {"a", "c"})
        self.assertIsNone(router.forget_fading(before=21.0))
        self.assertEqual(router.behind("a"), {"a"})

    def test_fading_is_bounded(self):
        """When more edges are withdrawn than MAX_FADING, then the oldest are forgotten."""
        from lightspeed.router import MAX_FADING

        router = Router("x", 1)
        router.link_up("a")
        names = [f"n{i}" for i in range(MAX_FADING + 10)]
        router.receive(LinkState("a", 1, 1, tuple(sorted((n, 1) for n in names + ["x"]))), "a")
        for n in names:
            router.receive(LinkState(n, 1, 1, (("a", 1),)), "a")
        for n in names:
            router.receive(LinkState(n, 1, 2, ()), "a")
        self.assertEqual(len(router.fading()), MAX_FADING)
        self.assertNotIn(("n0", "a"), router.fading())


class OutdatedTests(SynchronousTestCase):
    """
    :obj:`Router.outdated`: an LSA that still lists a link its other end
    withdrew is not vouched for until a newer one replaces it.
    """

    def make(self) -> Tuple[Router, List[float]]:
        """
        Router 'a' of the chain a-b-c, on a settable clock.
        """
        now = [0.0]
        router = Router("a", 1, lambda: now[0])
        router.link_up("b")
        router.receive(lsa("b", {"a": 1, "c": 1}), "b")
        router.receive(lsa("c", {"b": 1}, 7, 1), "b")
        return router, now

    def test_withdrawn_link_marks_other_end(self):
        """When b withdraws its link to c while c's LSA still lists b, then c's LSA is outdated, b's is not."""
        router, _ = self.make()
        self.assertFalse(router.outdated("c"))
        router.receive(lsa("b", {"a": 1}, 1, 2), "b")
        self.assertTrue(router.outdated("c"))
        self.assertFalse(router.outdated("b"))

    def test_relisted_link_stays_outdated(self):
        """When b lists c again (a restarted c, say), then c's old LSA is still outdated and still routed."""
        router, _ = self.make()
        router.receive(lsa("b", {"a": 1}, 1, 2), "b")
        router.receive(lsa("b", {"a": 1, "c": 1}, 1, 3), "b")
        self.assertTrue(router.outdated("c"))
        self.assertEqual(router.incarnation_of("c"), 7)

    def test_newer_lsa_clears(self):
        """When a newer LSA of c arrives (same or new incarnation), then it is no longer outdated."""
        for incarnation, seq in [(7, 2), (8, 1)]:
            router, _ = self.make()
            router.receive(lsa("b", {"a": 1}, 1, 2), "b")
            router.receive(lsa("c", {"b": 1}, incarnation, seq), "b")
            self.assertFalse(router.outdated("c"))

    def test_forgotten_with_fading(self):
        """When forget_fading passes the time of the withdrawal, then the mark goes too; the oldest stamp is returned."""
        router, now = self.make()
        now[0] = 10.0
        router.receive(lsa("b", {"a": 1}, 1, 2), "b")
        self.assertEqual(router.forget_fading(before=5.0), 10.0)
        self.assertTrue(router.outdated("c"))
        self.assertIsNone(router.forget_fading(before=10.0))
        self.assertFalse(router.outdated("c"))

    def test_own_withdrawal_marks_nothing(self):
        """When our own link goes down, then nothing is outdated (the neighbour's LSA is not ours to doubt)."""
        router, _ = self.make()
        router.link_down("b")
        self.assertFalse(router.outdated("b"))

    def test_expired_and_dropped(self):
        """When an outdated LSA ages out or is dropped as unsigned, then its mark goes with it."""
        router, now = self.make()
        router.receive(lsa("b", {"a": 1}, 1, 2), "b")
        now[0] = 100.0
        router.receive(lsa("b", {"a": 1}, 1, 3), "b")
        self.assertEqual(router.expire(50.0), ["c"])
        self.assertFalse(router.outdated("c"))
        router.receive(lsa("c", {"b": 1}, 7, 2), "b")
        router.receive(lsa("b", {"a": 1, "c": 1}, 1, 4), "b")
        router.receive(lsa("b", {"a": 1}, 1, 5), "b")
        self.assertTrue(router.outdated("c"))
        router.drop_unsigned()
        self.assertFalse(router.outdated("c"))


class ExpireTests(SynchronousTestCase):
    def test_aged_out_not_news(self):
        """When an LSA ages out, then the same copy is not news again, but a newer one is."""
        now = [0.0]
        router = Router("x", 1, lambda: now[0])
        lsa = LinkState("a", 1, 5, ())
        self.assertTrue(router.receive(lsa, "a"))
        now[0] = 100.0
        self.assertEqual(router.expire(50.0), ["a"])
        self.assertFalse(router.newer(lsa))
        self.assertFalse(router.receive(lsa, "a"))
        self.assertTrue(router.receive(LinkState("a", 1, 6, ()), "a"))

    def test_remembered_aged_out_bounded(self):
        """When more origins age out than MAX_EXPIRED, then the oldest are forgotten."""
        from lightspeed.router import MAX_EXPIRED

        now = [0.0]
        router = Router("x", 1, lambda: now[0])
        for i in range(MAX_EXPIRED + 5):
            router.receive(LinkState(f"n{i}", 1, 1, ()), "a")
        now[0] = 100.0
        router.expire(50.0)
        self.assertEqual(len(router._expired), MAX_EXPIRED)
