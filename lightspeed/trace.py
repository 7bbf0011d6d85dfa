# -*- test-case-name: lightspeed.test.test_trace -*-
"""
Traces, like traceroute for the mesh: which kernels a message to another
kernel passes and when (see "Traces" in ``docs/protocol.rst``).

A trace is a TRACE link message, ``[8, origin, request_id, destination,
hops]``, passed from neighbour to neighbour along the route to
``destination``; every kernel on the way checks it, appends its own hop
``[kernel, time, cost]`` and passes it on.  The destination answers the
origin with an ordinary RESPONSE to ``request_id`` whose value is the list
of hops; a kernel that cannot pass the trace on answers ``NoRoute``.  The
origin checks the answer before it believes it.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger

from lightspeed.errors import BadSpecifier, NoRoute, ProtocolError
from lightspeed.message import TRACE, malformed
from lightspeed.specifier import check_name
from lightspeed.wire.tracehops import MAX_TRACE_HOPS, check_hops

__all__ = ["Tracer", "MAX_TRACE_HOPS", "TRACE_TIMEOUT", "check_hops"]

#: Seconds :meth:`Tracer.start` waits for the answer by default.
TRACE_TIMEOUT = 10.0


class Tracer:
    """
    The traces of one network: those it starts and those it passes on.
    """

    log = Logger()

    def __init__(self, network: Any) -> None:
        self._network = network
        self._name = network.name
        self._reactor = network.reactor

    def start(self, kernel: str, timeout: Optional[float] = TRACE_TIMEOUT) -> Deferred:
        """
        Trace the route to ``kernel``.

        :returns: a Deferred of the hops, each ``{"kernel", "time", "cost"}``
            (see :meth:`Node.trace`); it fails with :class:`NoRoute` if there
            is no route (or a kernel on the way has none), with
            :class:`RequestTimeout` after ``timeout`` seconds, and with
            :class:`ProtocolError` if the answer is malformed.
        """
        now = self._reactor.seconds()
        if kernel == self._name:
            return succeed([{"kernel": kernel, "time": now, "cost": None}])
        link = self._network.relay.link_to(kernel)
        if link is None:
            return fail(NoRoute(f"no route to kernel {kernel!r}"))
        request_id, d, _ = self._network.requests.expect(
            kernel, timeout, f"no answer to a trace to kernel {kernel!r} within {timeout} s")
        link.send_message([TRACE, self._name, request_id, kernel, [[self._name, now, None]]])
        return d.addCallback(self._answer, kernel)

    def _answer(self, hops: Any, kernel: str) -> List[Dict[str, Any]]:
        check_hops(hops, self._name, kernel)
        return [{"kernel": name, "time": float(when), "cost": cost} for name, when, cost in hops]

    def received(self, link: Any, message: list) -> None:
        """
        A TRACE from a neighbour: add our hop, then answer it or pass it on.

        :raises ProtocolError: if it is malformed (the link closes).
        """
        if len(message) < 5:
            raise malformed("TRACE needs 5 items")
        _, origin, request_id, destination, hops = message[:5]
        if type(origin) is not str or type(request_id) is not int or type(destination) is not str:
            raise malformed("TRACE field types")
        check_hops(hops, origin)
        if len(hops) >= MAX_TRACE_HOPS:
            raise malformed(f"TRACE passed on with {len(hops)} hops")
        network = self._network
        peer = link.peer.name
        if origin == self._name:
            raise ProtocolError(f"trace claims to come from this kernel ({origin!r})", "forged-origin")
        if origin != peer and origin not in network.router.behind(peer):
            network.relay.misrouted += 1
            self.log.warn("trace from {origin} dropped: not behind the link from {peer}", origin=origin, peer=peer)
            return
        hops.append([self._name, self._reactor.seconds(), network.costs.cost(peer)])
        respond = network.requests.respond
        if destination == self._name:
            respond(origin, request_id, True, hops)
            return
        onward = network.relay.link_to(destination) if len(hops) < MAX_TRACE_HOPS else None
        if onward is None:
            why = "no route" if len(hops) < MAX_TRACE_HOPS else f"trace hop limit ({MAX_TRACE_HOPS})"
            respond(origin, request_id, False, ["NoRoute", f"{why} to kernel {destination!r} at {self._name!r}"])
            return
        onward.send_message([TRACE, origin, request_id, destination, hops])
