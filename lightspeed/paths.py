# -*- test-case-name: lightspeed.test.test_paths -*-
"""
Shortest paths over the usable edges of a link-state database, pure: the
computation behind :obj:`lightspeed.router.Router`, kept apart so that the
graph it runs on is kept up to date as adverts come, not rebuilt for each
computation, and so that a change can be judged unable to move any route.

:obj:`TwoWay` holds the usable edges between other kernels: an edge A-B is
usable when A's advert lists B *and* B's lists A, at the larger of the two
costs (at least 1).  Edges to and from our own kernel are not in it: our own
links are usable at once (the caller reports a link up only once both ends
shook hands), at the larger of our cost and the neighbour's for us if its
advert lists us, and :func:`shortest_paths` starts from them.

Routes are lexicographic minima over paths of ``(cost, first hop)``, so a
change of one edge ``u -> v`` can move a route only if it offers ``v`` a
label below its current one, or if ``v``'s label came over that edge (or
ties with it): :func:`moves_routes`.
"""

from __future__ import annotations

import heapq
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Set, Tuple

__all__ = ["TwoWay", "shortest_paths", "moves_routes", "connected", "Edge"]

#: One usable edge that changed: ``(a, b, cost before, cost now)``, a cost
#: :obj:`None` when the edge was (or is) not usable.
Edge = Tuple[str, str, Optional[int], Optional[int]]


class TwoWay:
    """
    The usable (two-way) edges between the kernels whose adverts are held,
    our own kernel left out.

    :ivar edges: ``{kernel: {neighbour: cost}}``, symmetric; read only.
    """

    def __init__(self, name: str) -> None:
        """
        :param name: our own kernel, whose edges are left out.
        """
        self._name = name
        self._links: Dict[str, Mapping[str, int]] = {}
        self.edges: Dict[str, Dict[str, int]] = {}

    def update(self, origin: str, links: Optional[Mapping[str, int]]) -> List[Edge]:
        """
        ``origin``'s advert now lists ``links`` (:obj:`None`: it is no longer held).

        :returns: the usable edges that appeared, went or changed cost.
        """
        old = self._links.get(origin, {})
        new = links if links is not None else {}
        if links is None:
            self._links.pop(origin, None)
        else:
            self._links[origin] = links
        changed: List[Edge] = []
        for peer in set(old) | set(new) if old else new:
            if peer == origin or peer == self._name:
                continue
            back = self._links.get(peer, {}).get(origin)
            before = None if back is None or peer not in old else max(old[peer], back, 1)
            after = None if back is None or peer not in new else max(new[peer], back, 1)
            if before != after:
                changed.append((origin, peer, before, after))
                self._set(origin, peer, after)
                self._set(peer, origin, after)
        return changed

    def _set(self, a: str, b: str, cost: Optional[int]) -> None:
        if cost is not None:
            self.edges.setdefault(a, {})[b] = cost
            return
        near = self.edges.get(a)
        if near is not None:
            near.pop(b, None)
            if not near:
                del self.edges[a]


def shortest_paths(name: str, own: Mapping[str, int], backs: Mapping[str, Optional[int]],
                   edges: Mapping[str, Mapping[str, int]],
                   hidden: FrozenSet[str] | Set[str]) -> Tuple[Dict[str, str], Dict[str, int]]:
    """
    Dijkstra from ``name`` over its own links ``own`` (``{neighbour: cost}``;
    ``backs[neighbour]`` the neighbour's cost for us, or :obj:`None`) and
    then the two-way ``edges`` of :obj:`TwoWay`; a kernel of ``hidden`` is a
    leaf, never a relay.  Among equal-cost paths the one whose first hop
    has the smallest name wins.

    :returns: ``(next hops, distances)`` of every reachable kernel but ``name``.
    """
    best: Dict[str, Tuple[int, str]] = {}
    queue: List[Tuple[int, str, str]] = []
    for peer, cost in own.items():
        back = backs.get(peer)
        label = (max(cost, back if back is not None else cost, 1), peer)
        if peer != name and (peer not in best or label < best[peer]):
            best[peer] = label
            queue.append((label[0], peer, peer))
    heapq.heapify(queue)
    hops: Dict[str, str] = {}
    distances: Dict[str, int] = {}
    pop, push = heapq.heappop, heapq.heappush
    nothing: Dict[str, int] = {}
    while queue:
        distance, hop, node = pop(queue)
        if node in hops:
            continue
        hops[node] = hop
        distances[node] = distance
        if node in hidden:
            continue  # a hidden kernel is a leaf: never a relay
        for peer, cost in edges.get(node, nothing).items():
            if peer in hops:
                continue
            total = distance + cost
            held = best.get(peer)
            if held is None or total < held[0] or (total == held[0] and hop < held[1]):
                best[peer] = (total, hop)
                push(queue, (total, hop, peer))
    return hops, distances


def moves_routes(changed: Iterable[Edge], hops: Mapping[str, str], distances: Mapping[str, int],
                 hidden: FrozenSet[str] | Set[str], edges: Mapping[str, Mapping[str, int]]) -> bool:
    """
    Whether the ``changed`` edges of :obj:`TwoWay` may move any route
    computed as ``hops``/``distances`` (before the change): if not, a new
    computation would give the same routes.  ``edges`` are those of
    :obj:`TwoWay` after the change: an edge that gave ``v`` its label may
    go if another that is left gives ``v`` the same one (from a kernel
    nearer than ``v``, whose label does not depend on ``v``).
    """
    for a, b, before, after in changed:
        for u, v in ((a, b), (b, a)):
            hop = hops.get(u)
            if hop is None or u in hidden:
                continue  # an edge out of an unreachable kernel, or a leaf, carries no route
            if v not in hops:
                return True  # v may become reachable
            label = (distances[v], hops[v])
            if after is not None and (before is None or after < before):
                if (distances[u] + after, hop) < label:
                    return True  # a better route to v
            elif before is not None and (distances[u] + before, hop) <= label \
                    and not _held_up(v, label, hops, distances, hidden, edges):
                return True  # v's route used it
    return False


def _held_up(v: str, label: Tuple[int, str], hops: Mapping[str, str], distances: Mapping[str, int],
             hidden: FrozenSet[str] | Set[str], edges: Mapping[str, Mapping[str, int]]) -> bool:
    """Whether an edge of ``edges`` into ``v`` gives it ``label`` as it is."""
    for w, cost in edges.get(v, {}).items():
        if w in hops and w not in hidden and (distances[w] + cost, hops[w]) == label:
            return True
    return False


def connected(start: str, avoid: str, edges: Mapping[str, Mapping[str, int]],
              extra: Iterable[Tuple[str, str]]) -> FrozenSet[str]:
    """
    The kernels that reach ``start`` over ``edges`` (of :obj:`TwoWay`) and
    the ``extra`` pairs (both ways) without passing through ``avoid``,
    ``start`` included.
    """
    adjacent: Dict[str, List[str]] = {node: list(near) for node, near in edges.items()}
    for a, b in extra:
        adjacent.setdefault(a, []).append(b)
        adjacent.setdefault(b, []).append(a)
    seen = {start}
    stack = [start]
    while stack:
        for peer in adjacent.get(stack.pop(), ()):
            if peer != avoid and peer not in seen:
                seen.add(peer)
                stack.append(peer)
    return frozenset(seen)
