# -*- test-case-name: lightspeed.test.test_stats -*-
"""
Counters of one kernel and of each of its links, as :meth:`Node.stats`
returns them and the CONTROL operation ``stats`` answers them to another
kernel (see ``docs/observability.rst`` for every key).

Nothing is counted here: the parts that handle messages keep plain
integers they increment anyway (a link's :obj:`Connection` its frames and
bytes, the relay what it passed on, delivery what it sent, the dispatcher
what it delivered, flooding its adverts), and this module reads them when
asked.  Undeliverable messages are counted by the event sink
(:meth:`Monitor.tally`) under a short category of their reason
(:func:`reason_category`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.interfaces import ISSLTransport

from lightspeed.auth import AuthRequest
from lightspeed.errors import Refused
from lightspeed.interfaces import IKernel

__all__ = ["kernel_stats", "stats_answer", "reason_category", "CATEGORIES"]

#: ``(how the reason reads, category)``, tried in order; a reason that
#: matches none counts as ``"other"``.  ``"refused"`` is also what the
#: dispatcher counts a message an authentication hook refused as.
_PATTERNS: Tuple[Tuple[str, str, str], ...] = (
    ("start", "no route", "no-route"),
    ("start", "hop limit", "hop-limit"),
    ("start", "origin ", "misrouted"),
    ("start", "backlog full", "backlog-full"),
    ("start", "deadline passed", "expired"),
    ("start", "no session", "no-session"),
    ("start", "postback to stopped session", "no-session"),
    ("start", "no acknowledgement", "no-ack"),
    ("in", " stopped before state ", "no-session"),
    ("in", "' restarted", "restarted"),
    ("in", "' left the network", "left"),
    ("in", " has no state ", "no-state"),
    ("in", "refused", "refused"),
)

#: Every category an undeliverable message may be counted under.
CATEGORIES = frozenset(category for _, _, category in _PATTERNS) | {"other"}


def reason_category(reason: str) -> str:
    """
    :returns: the category (one of :data:`CATEGORIES`) of the reason an
        undeliverable message was given.
    """
    for how, text, category in _PATTERNS:
        if reason.startswith(text) if how == "start" else text in reason:
            return category
    return "other"


def _link_counters(links: List[Any], network: Any) -> Dict[str, Any]:
    """
    The counters of one neighbour's links (summed), with the round trip,
    incarnation and start of the link that carries its traffic.
    """
    carrier = links[0]
    out: Dict[str, Any] = {"messages_in": 0, "messages_out": 0, "bytes_in": 0, "bytes_out": 0}
    for link in links:
        conn = link.conn
        out["messages_in"] += conn.frames_in
        out["messages_out"] += conn.frames_out
        out["bytes_in"] += conn.bytes_in
        out["bytes_out"] += conn.bytes_out
    peer = carrier.peer.name
    out.update(rtt=network.costs.round_trip(carrier), cost=network.costs.cost(peer),
               incarnation=carrier.peer.incarnation, since=carrier.since,
               tls=ISSLTransport.providedBy(carrier.transport))
    return out


def kernel_stats(kernel: IKernel) -> Dict[str, Any]:
    """
    The counters of ``kernel`` now: a dict of plain values (see
    ``docs/observability.rst``).
    """
    local = kernel.local
    network: Optional[Any] = getattr(kernel, "network", None)
    out: Dict[str, Any] = {
        "kernel": kernel.name, "incarnation": 0, "uptime": local.reactor.seconds() - local.started,
        "hidden": bool(getattr(kernel, "hidden", False)),
        "messages_in": 0, "messages_out": 0, "bytes_in": 0, "bytes_out": 0, "relayed": 0,
        "undeliverable": dict(sorted(kernel.monitor.undelivered.items())), "misrouted": 0,
        "pending_requests": 0, "adverts_in": 0, "adverts_out": 0, "kernels": 0, "backlog": {}, "links": {},
    }
    if network is None:
        return out
    table = network.link_table
    links = {peer: _link_counters(up, network) for peer, up in sorted(table.by_peer.items()) if up}
    retired = table.retired
    delivery = network.delivery
    out.update(
        incarnation=network.incarnation,
        messages_in=delivery.receiving.delivered(), messages_out=delivery.sent(),
        bytes_in=retired[2] + sum(link["bytes_in"] for link in links.values()),
        bytes_out=retired[3] + sum(link["bytes_out"] for link in links.values()),
        relayed=network.relay.relayed, misrouted=network.relay.misrouted,
        pending_requests=len(network.requests),
        adverts_in=network.flooding.adverts_in, adverts_out=network.flooding.adverts_out,
        kernels=len(network.reachable()),
        backlog={k: delivery.pending(k) for k in sorted(delivery.outboxes)},
        links=links,
    )
    return out


def stats_answer(kernel: IKernel, sender: Any, remote: bool) -> Dict[str, Any]:
    """
    The answer to the CONTROL operation ``stats``: :func:`kernel_stats`,
    if the ``introspection`` hook registered for ``'*'`` (asked with
    ``session=None``, ``state="stats"``) lets another kernel see it.

    :raises Refused: if it does not.
    """
    if remote and kernel.auth:
        reason = kernel.auth.check(AuthRequest("introspection", None, "stats", None, sender, ()), [])
        if reason is not None:
            raise Refused(reason)
    return kernel_stats(kernel)
