# -*- test-case-name: lightspeed.test.test_testing,lightspeed.test.test_mesh -*-
"""
In-memory links between kernels of one process, on one clock (a
:obj:`lightspeed.heapclock.HeapClock` unless you give a :obj:`task.Clock`):
for your tests and for simulating large meshes.

    mesh = MemoryMesh()
    a, b, c = mesh.kernel("a"), mesh.kernel("b"), mesh.kernel("c")
    mesh.link(a, b); mesh.link(b, c)
    mesh.settle()                     # run until nothing is due
    a.post("poe://c/svc/state", 1)
    mesh.settle()

Bytes written on one end arrive at the other on a later clock turn, as with
a real reactor; links run the real handshake, framing and routing.

Links break on purpose, each direction on its own or both at once: delay
and jitter, frame loss and reordering, a cut cable
(:obj:`MemoryLink.delay`, :obj:`MemoryLink.drop`, :obj:`MemoryLink.reorder`,
:obj:`MemoryLink.cut`), with every chance drawn from the mesh's seeded
:obj:`random.Random`, so a run repeats exactly.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock

from lightspeed.heapclock import HeapClock
from lightspeed.kernel import Kernel
from lightspeed.message import routed_body
from lightspeed.memorylinks import HANDSHAKE_FRAMES, LinkCounters, LinkDirection, MemoryTransport
from lightspeed.wire.protocol import LinkFactory, LinkOptions, LinkProtocol

__all__ = ["MemoryMesh", "HeapClock", "forge", "MemoryLink", "MemoryTransport", "LinkDirection", "LinkCounters",
           "HANDSHAKE_FRAMES"]


class MemoryLink:
    """
    Both ends of one in-memory link, and the faults on it.

    The fault methods here set both directions; :obj:`forward`,
    :obj:`backward` and :obj:`towards` give one direction, with the same
    methods (see :obj:`LinkDirection`).

    :ivar client: the :obj:`LinkProtocol` of kernel ``a``, the client end.
    :ivar server: the :obj:`LinkProtocol` of kernel ``b``, the server end.
    :ivar a: the client end's kernel.
    :ivar b: the server end's kernel.
    :ivar options: the ``(a_options, b_options)`` it was made with.
    :ivar forward: the direction from ``a`` to ``b``.
    :ivar backward: the direction from ``b`` to ``a``.
    """

    def __init__(self, client: LinkProtocol, server: LinkProtocol,
                 forward: Optional[LinkDirection] = None, backward: Optional[LinkDirection] = None,
                 a: Optional[Kernel] = None, b: Optional[Kernel] = None,
                 options: Tuple[Optional[LinkOptions], Optional[LinkOptions]] = (None, None)) -> None:
        self.client = client
        self.server = server
        self.a = a
        self.b = b
        self.options = options
        self.forward = forward or _outgoing(client)
        self.backward = backward or _outgoing(server)

    @property
    def directions(self) -> Tuple[LinkDirection, LinkDirection]:
        """
        ``(forward, backward)``.
        """
        return (self.forward, self.backward)

    def towards(self, kernel: Union[Kernel, str]) -> LinkDirection:
        """
        The direction carrying frames to ``kernel`` (a :obj:`Kernel` or its name).
        """
        name = kernel if isinstance(kernel, str) else kernel.name
        for direction, end in ((self.forward, self.b), (self.backward, self.a)):
            if end is not None and end.name == name:
                return direction
        raise ValueError(f"kernel {name!r} is not an end of this link")

    def delay(self, seconds: float, jitter: float = 0.0) -> None:
        """
        :obj:`LinkDirection.delay` both ways.
        """
        for direction in self.directions:
            direction.delay(seconds, jitter)

    def drop(self, probability: float, handshake: bool = False) -> None:
        """
        :obj:`LinkDirection.drop` both ways.
        """
        for direction in self.directions:
            direction.drop(probability, handshake)

    def reorder(self, probability: float, window: float = 0.0, handshake: bool = False) -> None:
        """
        :obj:`LinkDirection.reorder` both ways.
        """
        for direction in self.directions:
            direction.reorder(probability, window, handshake)

    def cut(self) -> None:
        """
        :obj:`LinkDirection.cut` both ways: a dead cable.
        """
        for direction in self.directions:
            direction.cut()

    def restore(self) -> None:
        """
        :obj:`LinkDirection.restore` both ways.
        """
        for direction in self.directions:
            direction.restore()

    def clear(self) -> None:
        """
        :obj:`LinkDirection.clear` both ways: no fault left.
        """
        for direction in self.directions:
            direction.clear()

    @property
    def counters(self) -> LinkCounters:
        """
        Both directions' :obj:`LinkCounters` added up (a new object each time).
        """
        return self.forward.counters + self.backward.counters

    @property
    def closed(self) -> bool:
        """
        Whether both ends have seen the connection go.
        """
        return self.forward.sender.closed and self.forward.receiver.closed

    def close(self) -> None:
        """
        Drop the link as a network failure would (no BYE): both ends see
        ``ConnectionLost`` on the next turn, cut or not.  What was written
        before still arrives if it was due now; what a delay or a cut held
        is lost (:obj:`LinkCounters.lost`).
        """
        for direction in self.directions:
            direction.fail()
        end = self.forward.sender
        end.clock.callLater(0, end._lost, ConnectionLost("aborted"))


def _outgoing(end: LinkProtocol) -> LinkDirection:
    """
    The direction carrying what ``end`` writes.
    """
    direction = getattr(end.transport, "outgoing", None)
    if direction is None:
        raise TypeError("a MemoryLink needs ends on MemoryTransports joined by LinkDirections")
    return direction


class MemoryMesh:
    """
    Kernels on one clock, joined by in-memory links.

    :ivar clock: the shared clock: ``clock`` if given, else a new
        :obj:`HeapClock` (``task.Clock``'s semantics, in logarithmic time).
    :ivar random: the :obj:`random.Random` every fault draws from, seeded
        with ``seed``: 0 unless you say otherwise, so a run repeats exactly;
        ``seed=None`` seeds it from the system.
    :ivar links: every link made, in order.
    """

    def __init__(self, clock: Optional[Clock] = None, seed: Any = 0) -> None:
        self.clock: Clock = clock or HeapClock()  # type: ignore[assignment]
        self.random = random.Random(seed)
        self.kernels: Dict[str, Kernel] = {}
        self.links: List[MemoryLink] = []
        self._ports = iter(range(20000, 60000))

    def kernel(self, name: str, incarnation: Optional[int] = None, hidden: bool = False) -> Kernel:
        """
        A new networked kernel on the mesh's clock (``hidden``: see
        ``docs/protocol.rst``, "Hidden kernels").
        """
        kernel = Kernel(name, reactor=self.clock, hidden=hidden)
        kernel.network_start(incarnation)
        self.kernels[name] = kernel
        return kernel

    def link(self, a: Kernel, b: Kernel, a_options: Optional[LinkOptions] = None,
             b_options: Optional[LinkOptions] = None) -> MemoryLink:
        """
        Connect ``a`` (client end) to ``b`` (server end).  Call :obj:`settle` to
        let the handshake run.
        """
        options = (a_options, b_options)
        a_options = a_options or LinkOptions(keepalive=0)
        b_options = b_options or LinkOptions(keepalive=0)
        host = IPv4Address("TCP", "127.0.0.1", next(self._ports))
        peer = IPv4Address("TCP", "127.0.0.1", next(self._ports))
        client = LinkFactory(a.network_start(), a_options, self.clock).buildProtocol(peer)
        server = LinkFactory(b.network_start(), b_options, self.clock).buildProtocol(host)
        t_client = MemoryTransport(self.clock, host, peer)
        t_server = MemoryTransport(self.clock, peer, host)
        t_client.other, t_server.other = t_server, t_client
        t_client.protocol, t_server.protocol = client, server
        compressed = a_options.compression and b_options.compression
        t_client.outgoing = LinkDirection(self.clock, self.random, t_client, t_server, compressed)
        t_server.outgoing = LinkDirection(self.clock, self.random, t_server, t_client, compressed)
        client.makeConnection(t_client)
        server.makeConnection(t_server)
        link = MemoryLink(client, server, t_client.outgoing, t_server.outgoing, a, b, options)
        self.links.append(link)
        return link

    def relink(self, link: MemoryLink) -> MemoryLink:
        """
        A new link between the kernels of ``link``, with its options and no
        faults: the reconnection after :obj:`MemoryLink.close` or a
        keepalive timeout.  Call :obj:`settle` to let the handshake run.
        """
        if link.a is None or link.b is None:
            raise ValueError("this link was not made by a MemoryMesh")
        return self.link(link.a, link.b, *link.options)

    def settle(self, limit: int = 100000) -> int:
        """
        Run the clock at the current time until nothing more is due (timers
        in the future are left alone) and flush every kernel's queue.

        :returns: how many turns it took.
        :raises RuntimeError: if it does not settle within ``limit`` turns.
        """
        next_time = getattr(self.clock, "next_time", None)  # a HeapClock's: no scan of every call
        for turn in range(limit):
            now = self.clock.seconds()
            if next_time is not None:
                due = next_time()
                if due is None or due > now:
                    return turn
            elif not any(call.getTime() <= now for call in self.clock.getDelayedCalls()):
                return turn
            self.clock.advance(0)
        raise RuntimeError(f"mesh did not settle in {limit} turns")

    def advance(self, seconds: float) -> None:
        """
        Settle, move the clock forward, then settle again: whatever is due
        now (a post just made, a frame on its way) happens before the clock
        moves, so ``seconds`` is measured from a quiet mesh and timers see
        the effects of what came before them.
        """
        self.settle()
        self.clock.advance(seconds)
        self.settle()


def forge(origin: str, dests: Sequence[Kernel], hops: int = 5, payload: bytes = b"") -> bytes:
    """
    The body of a ROUTED message that claims to come from kernel ``origin``
    and that each of ``dests`` would accept as the next of ``origin``'s
    stream (as a forger who knew the streams would write it): for tests of
    hostile input.  Frame it with :func:`lightspeed.wire.framing.frame`, or
    hand it to a link's ``send_body``.
    """
    entries = []
    incarnation = 1
    for kernel in dests:
        inbox = kernel.network_start().delivery.inboxes.get(origin)
        if inbox is not None:
            incarnation = inbox.incarnation
        entries.append((kernel.name, kernel.network.incarnation, (inbox.delivered if inbox else 0) + 1, 0))
    return routed_body(origin, incarnation, entries, hops, None, payload)
