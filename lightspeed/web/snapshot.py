# -*- test-case-name: lightspeed.test.test_web -*-
"""
What the status page shows, as plain JSON-able dicts read from one kernel:
its counters (``/varz``), its links (``/connz``), the topology it knows
(``/routez``: every kernel, every two-way link with its cost, the routes)
and its sessions.

Everything here reads; nothing changes the kernel.  The counters come from
``Node.stats()`` (see ``docs/observability.rst``); :func:`node_stats` is
the one place that calls it.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["node_stats", "varz", "connz", "routez", "sessions", "link_rates", "messages", "MAX_SESSIONS"]

#: The most sessions listed (the page and ``/varz`` stay small).
MAX_SESSIONS = 200


def node_stats(kernel: Any) -> Dict[str, Any]:
    """
    The kernel's counters: ``Node.stats()`` (see ``docs/observability.rst``).
    """
    return kernel.stats()


def varz(stats: Dict[str, Any], kernel: Any) -> Dict[str, Any]:
    """
    ``/varz``: the kernel's counters (its stats without the per-link part),
    the time and its session count.
    """
    out = {k: v for k, v in stats.items() if k != "links"}
    out["now"] = time.time()
    out["sessions"] = len(kernel.sessions)
    return out


def connz(stats: Dict[str, Any], kernel: Any) -> Dict[str, Any]:
    """
    ``/connz``: one entry per neighbour, its link counters and the address
    of the link that carries the traffic.
    """
    links = []
    table = kernel.network.link_table.by_peer if kernel.network is not None else {}
    for peer, counters in sorted(stats.get("links", {}).items()):
        entry = {"peer": peer, **counters}
        carriers = table.get(peer)
        if carriers:
            address = carriers[0].transport.getPeer()
            entry["address"] = f"{address.host}:{address.port}" if hasattr(address, "port") else str(address)
            entry["parallel"] = len(carriers)
        links.append(entry)
    return {"kernel": kernel.name, "now": time.time(), "links": links}


def routez(kernel: Any) -> Dict[str, Any]:
    """
    ``/routez``: the topology as this kernel's link-state database shows it.

    :returns: ``{"kernel", "kernels": [{"name", "reachable", "incarnation",
        "local"}], "links": [{"a", "b", "cost"}], "routes": {kernel:
        {"next_hop", "cost"}}}``; a link is listed once (``a < b``) and only
        if both ends advertise it (the router's two-way rule), among
        reachable kernels; its cost is the larger of the two.
    """
    name = kernel.name
    network = kernel.network
    if network is None:
        return {"kernel": name, "kernels": [{"name": name, "reachable": True, "incarnation": None, "local": True}],
                "links": [], "routes": {}}
    router = network.router
    reachable = router.reachable()
    incarnations = network.incarnations()
    nodes = sorted(reachable | {name})
    kernels = [{"name": k, "reachable": True, "incarnation": incarnations.get(k), "local": k == name}
               for k in nodes]
    distances = router.distances()
    routes = {k: {"next_hop": router.next_hop(k), "cost": distances.get(k)} for k in sorted(reachable)}
    return {"kernel": name, "kernels": kernels, "links": _two_way_links(router, set(nodes)), "routes": routes}


def _two_way_links(router: Any, nodes: set) -> List[Dict[str, Any]]:
    adverts = {lsa.origin: dict(lsa.links) for lsa in router.database() if lsa.origin in nodes}
    seen: Dict[Tuple[str, str], int] = {}
    for origin, links in adverts.items():
        for peer, cost in links.items():
            back = adverts.get(peer, {}).get(origin)
            if back is None and origin == router.name:
                back = cost  # our own link is usable before the peer's advert lists it
            if back is None or peer not in nodes or peer == origin:
                continue
            pair = (min(origin, peer), max(origin, peer))
            seen[pair] = max(cost, back)
    return [{"a": a, "b": b, "cost": cost} for (a, b), cost in sorted(seen.items())]


def sessions(kernel: Any, limit: int = MAX_SESSIONS) -> Dict[str, Any]:
    """
    The kernel's sessions: ``{"count", "sessions": [{"id", "aliases"}]}``,
    the first ``limit`` in the order they started.
    """
    found = kernel.sessions
    listed = [{"id": s.id, "aliases": list(s._alias_names)} for s in found[:limit]]
    return {"count": len(found), "sessions": listed}


def link_rates(previous: Optional[Tuple[float, Dict[str, Any]]], now: float,
               stats: Dict[str, Any]) -> Dict[str, float]:
    """
    Messages per second on each of a kernel's links since the sample
    ``previous`` (``(time, stats)``), in and out together.

    :returns: ``{peer: rate}``; empty without a usable earlier sample.
    """
    if previous is None or now <= previous[0]:
        return {}
    before, elapsed = previous[1].get("links", {}), now - previous[0]
    out = {}
    for peer, counters in stats.get("links", {}).items():
        old = before.get(peer)
        if old is None or "messages_in" not in counters:
            continue
        moved = messages(counters) - messages(old)
        out[peer] = max(0.0, moved / elapsed)
    return out


def messages(counters: Dict[str, Any]) -> int:
    """
    Messages in and out together, of a kernel's or a link's counters.
    """
    return int(counters.get("messages_in", 0)) + int(counters.get("messages_out", 0))
