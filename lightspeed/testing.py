# -*- test-case-name: lightspeed.test.test_mesh -*-
"""
In-memory links between kernels of one process, on one :obj:`task.Clock`:
for your tests and for simulating large meshes.

    mesh = MemoryMesh()
    a, b, c = mesh.kernel("a"), mesh.kernel("b"), mesh.kernel("c")
    mesh.link(a, b); mesh.link(b, c)
    mesh.settle()                     # run until nothing is due
    a.post("poe://c/svc/state", 1)
    mesh.settle()

Bytes written on one end arrive at the other on a later clock turn, as with
a real reactor; links run the real handshake, framing and routing.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Union

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionDone, ConnectionLost

from lightspeed.kernel import Kernel
from lightspeed.message import routed_body
from lightspeed.wire.protocol import LinkFactory, LinkOptions, LinkProtocol

__all__ = ["MemoryMesh", "MemoryTransport"]


class MemoryTransport(StringTransport):
    """
    A transport whose writes reach its peer protocol on the next clock turn,
    or :attr:`delay` seconds later.

    :ivar delay: seconds each write takes to arrive (0: the next turn).  It
        may change at any time; writes still arrive in order, as on a
        stream, and a close arrives after them.
    """

    def __init__(self, clock: Clock, host: Any, peer: Any) -> None:
        super().__init__(hostAddress=host, peerAddress=peer)
        self.clock = clock
        self.other: Optional["MemoryTransport"] = None
        self.protocol: Any = None
        self.closed = False
        self.written = 0
        self.delay = 0.0
        self._due = 0.0
        self._in_flight: Deque[Union[bytes, Exception]] = deque()

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self.written += len(data)
        self._send(data)

    def _send(self, item: Union[bytes, Exception]) -> None:
        now = self.clock.seconds()
        self._due = max(self._due, now + self.delay)
        self._in_flight.append(item)
        self.clock.callLater(self._due - now, self._arrive)

    def _arrive(self) -> None:
        item = self._in_flight.popleft()  # the oldest, whatever the timers' rounding
        if isinstance(item, bytes):
            self.other._receive(item)  # type: ignore[union-attr]
        else:
            self._lost(item)

    def writeSequence(self, seq: List[bytes]) -> None:
        self.write(b"".join(seq))

    def _receive(self, data: bytes) -> None:
        if not self.closed:
            self.protocol.dataReceived(data)

    def loseConnection(self) -> None:
        self._close(ConnectionDone("closed"))

    def abortConnection(self) -> None:
        self._close(ConnectionLost("aborted"))

    def _close(self, why: Exception) -> None:
        if self.closed:
            return
        # Data already written still arrives, then both ends see the close.
        self._send(why)

    def _lost(self, why: Exception) -> None:
        for end in (self, self.other):
            if end is not None and not end.closed:
                end.closed = True
                end.protocol.connectionLost(Failure(why))


class MemoryLink:
    """
    Both ends of one in-memory link.
    """

    def __init__(self, client: LinkProtocol, server: LinkProtocol) -> None:
        self.client = client
        self.server = server

    def close(self) -> None:
        """
        Drop the link as a network failure would (no BYE).
        """
        self.client.transport.abortConnection()


class MemoryMesh:
    """
    Kernels on one clock, joined by in-memory links.

    :ivar clock: the shared :obj:`task.Clock`.
    """

    def __init__(self, clock: Optional[Clock] = None) -> None:
        self.clock = clock or Clock()
        self.kernels: Dict[str, Kernel] = {}
        self._ports = iter(range(20000, 60000))

    def kernel(self, name: str, incarnation: Optional[int] = None) -> Kernel:
        """
        A new networked kernel on the mesh's clock.
        """
        kernel = Kernel(name, reactor=self.clock)
        kernel.network_start(incarnation)
        self.kernels[name] = kernel
        return kernel

    def link(self, a: Kernel, b: Kernel, a_options: Optional[LinkOptions] = None,
             b_options: Optional[LinkOptions] = None) -> MemoryLink:
        """
        Connect ``a`` (client end) to ``b`` (server end).  Call :obj:`settle` to
        let the handshake run.
        """
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
        client.makeConnection(t_client)
        server.makeConnection(t_server)
        return MemoryLink(client, server)

    def settle(self, limit: int = 100000) -> int:
        """
        Run the clock at the current time until nothing more is due (timers
        in the future are left alone) and flush every kernel's queue.

        :returns: how many turns it took.
        :raises RuntimeError: if it does not settle within ``limit`` turns.
        """
        for turn in range(limit):
            now = self.clock.seconds()
            if not any(call.getTime() <= now for call in self.clock.getDelayedCalls()):
                return turn
            self.clock.advance(0)
        raise RuntimeError(f"mesh did not settle in {limit} turns")

    def advance(self, seconds: float) -> None:
        """
        Move the clock forward, then settle.
        """
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
