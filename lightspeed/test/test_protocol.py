# -*- test-case-name: lightspeed.test.test_protocol -*-
"""
Tests for :obj:`lightspeed.wire.protocol`: one link protocol on an in-memory
transport and a :obj:`task.Clock`.
"""

from __future__ import annotations

from typing import Any, List, Optional, cast

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from lightspeed import Kernel
from lightspeed.errors import ProtocolError
from lightspeed.message import PROTOCOL_VERSION, BYE, HELLO, PING, PONG, READY
from lightspeed.testing import MemoryMesh
from lightspeed.wire.codec import dumps, loads
from lightspeed.wire.framing import Framer, frame
from lightspeed.wire.protocol import LinkFactory, LinkOptions, LinkProtocol, write_now


def messages(data: bytes) -> List[list]:
    return [loads(body) for body in Framer().feed(data)]


def bye_code(link: LinkProtocol) -> Optional[str]:
    """
    The code of ``link``'s :attr:`~lightspeed.wire.protocol.LinkProtocol.closed_reason`,
    or :obj:`None` if it has none.
    """
    return link.closed_reason.code if link.closed_reason is not None else None



#: The frames a password-less peer named "peer" (incarnation 7) answers a
#: link's HELLO with: its HELLO, then its READY.
PEER_HELLO = frame(dumps([HELLO, {
    "version": PROTOCOL_VERSION, "kernel": "peer", "incarnation": 7, "nonce": b"n" * 16,
    "serializers": ["cbor"], "compression": [], "password": False}]))
PEER_READY = frame(dumps([READY, {"compression": None, "proof": None}]))

class ProtocolTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.kernel = Kernel("me", reactor=self.clock)
        self.network = self.kernel.network_start()

    def connect(self, **options) -> tuple:
        factory = LinkFactory(self.network, LinkOptions(**options), self.clock)
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.9", 5555))
        protocol.makeConnection(transport)
        return protocol, transport

    def test_hello_first(self):
        """When the connection is made, then our HELLO is written on the next turn, alone."""
        protocol, transport = self.connect()
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0)
        (hello,) = messages(transport.value())
        self.assertEqual(hello[0], HELLO)
        self.assertEqual(hello[1]["kernel"], "me")

    def test_handshake_timeout(self):
        """When the peer never finishes the handshake, then the link closes with 'timeout' after the limit."""
        protocol, transport = self.connect(handshake_timeout=5)
        failures: List[Any] = []
        protocol.when_ready().addErrback(failures.append)
        self.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(messages(transport.value())[-1][:2], [BYE, "timeout"])
        self.assertEqual(failures[0].value.code, "timeout")

    def test_accept_hook(self):
        """When the accept hook refuses the addresses, then the connection is dropped before any HELLO."""
        seen = []

        def accept(local, remote):
            seen.append((local, remote))
            return remote.host != "127.0.0.9"

        protocol, transport = self.connect(accept=accept)
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(seen[0][1].port, 5555)

    def test_accept_hook_allows(self):
        """When the accept hook agrees, then the handshake starts."""
        protocol, transport = self.connect(accept=lambda local, remote: True)
        self.clock.advance(0)
        self.assertEqual(messages(transport.value())[0][0], HELLO)

    def handshake(self, protocol, transport) -> None:
        self.clock.advance(0)
        transport.clear()
        protocol.dataReceived(PEER_HELLO)
        protocol.dataReceived(PEER_READY)
        self.clock.advance(0)

    def test_keepalive_detects_dead_peer(self):
        """When the peer stays silent for three keepalive periods, then the link closes with 'timeout'."""
        protocol, transport = self.connect(keepalive=10)
        self.handshake(protocol, transport)
        self.assertEqual(protocol.peer.name, "peer")
        transport.clear()
        self.clock.advance(10)
        self.assertEqual(messages(transport.value())[-1][0], PING)
        protocol.dataReceived(frame(dumps([PONG, 0])))  # alive: the count restarts
        self.clock.advance(10)
        self.clock.advance(10)
        self.clock.advance(10)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(10)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(messages(transport.value())[-1][:2], [BYE, "timeout"])

    def test_writes_coalesced(self):
        """When many messages are sent in one turn, then they go out in one write."""
        protocol, transport = self.connect(keepalive=0)
        self.handshake(protocol, transport)
        writes: List[bytes] = []
        transport.write = writes.append
        for i in range(100):
            protocol.send_message([PING, i])
        self.assertEqual(writes, [])
        self.clock.advance(0)
        self.assertEqual(len(writes), 1)
        self.assertEqual(len(messages(writes[0])), 100)

    def test_malformed_closes_only_that_link(self):
        """When one link gets garbage, then it closes and another link keeps delivering."""
        mesh = MemoryMesh()
        a, b, c = mesh.kernel("a"), mesh.kernel("b"), mesh.kernel("c")
        ab = mesh.link(a, b)
        mesh.link(c, b)
        mesh.settle()
        got = []
        b.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("s"), "hit": lambda e: got.append(e.args)})
        ab.server.dataReceived(frame(b"\xff\xfe"))
        mesh.settle()
        self.assertEqual([link.peer.name for link in b.network.links()], ["c"])
        self.assertEqual((bye_code(ab.server), bye_code(ab.client)), ("malformed", "malformed"))
        c.post("poe://b/s/hit", 1)
        mesh.settle()
        self.assertEqual(got, [(1,)])


class HostileInputTests(SynchronousTestCase):
    """
    A peer that misbehaves closes its own link, and only that one.
    """

    def setUp(self):
        self.mesh = MemoryMesh()
        self.a, self.b, self.c = self.mesh.kernel("a"), self.mesh.kernel("b"), self.mesh.kernel("c")
        self.ab, self.cb = self.mesh.link(self.a, self.b), self.mesh.link(self.c, self.b)
        self.mesh.settle()
        self.got: List[Any] = []
        self.b.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("s"),
                                    "hit": lambda e: self.got.append(e.args)})

    def attack(self, data: bytes, code: str) -> None:
        """
        Feed ``data`` to b's end of the a-b link, then check that b closed
        that link with BYE ``code`` (and a heard it), that c still reaches b
        and a's link is gone.
        """
        self.ab.server.dataReceived(data)
        self.mesh.settle()
        self.assertEqual(bye_code(self.ab.server), code)
        self.assertEqual(bye_code(self.ab.client), code)
        self.assertEqual([link.peer.name for link in self.b.network.links()], ["c"])
        self.c.post("poe://b/s/hit", "still here")
        self.mesh.settle()
        self.assertEqual(self.got, [("still here",)])

    def test_forged_origin(self):
        """When a message claims to come from the receiving kernel itself, then that link closes."""
        from lightspeed.message import POST
        from lightspeed.testing import forge

        payload = dumps([POST, ["s"], "hit", [1], None, None, None, None])
        self.attack(frame(forge("b", [self.b], hops=5, payload=payload)), "forged-origin")

    def test_huge_container_claims(self):
        """When CBOR claims enormous arrays, maps or strings, then the link closes at once without allocating them."""
        for claim in [b"\x9b" + (2 ** 60).to_bytes(8, "big"), b"\xbb" + (2 ** 60).to_bytes(8, "big"),
                      b"\x5b" + (2 ** 60).to_bytes(8, "big")]:
            self.assertEqual(self.assertRaises(ProtocolError, loads, claim).code, "malformed")
        self.attack(frame(b"\x9b" + (2 ** 60).to_bytes(8, "big")), "malformed")

    def test_wrong_types_in_routed(self):
        """When ROUTED fields have the wrong types, then the link closes."""
        from lightspeed.message import ROUTED

        self.attack(frame(dumps([ROUTED, 5, ["b"], 3, b"x"])), "malformed")

    def test_bad_payload(self):
        """When a payload is not a valid payload, then the link closes."""
        from lightspeed.testing import forge

        self.attack(frame(forge("a", [self.b], hops=5, payload=dumps({"not": "a payload"}))), "malformed")

    def test_unknown_type(self):
        """When an unknown message type arrives, then the link closes."""
        self.attack(frame(dumps([99, "x"])), "unknown-type")

    def test_oversized(self):
        """When a frame is over the maximum, then the link closes before the body arrives."""
        self.attack((20 * 1024 * 1024).to_bytes(4, "big"), "frame-too-large")

    def test_slow_reader(self):
        """When the peer does not read and the backlog passes the limit, then the link closes as slow-reader."""
        self.ab.client.options.max_backlog = 10000
        self.ab.client.pauseProducing()  # what the transport does when the peer stops reading
        for i in range(50):
            self.a.post("poe://b/s/hit", b"x" * 100)
        self.assertEqual(self.got, [])
        for i in range(100):
            self.a.post("poe://b/s/hit", b"x" * 100)
        self.mesh.settle()
        self.assertEqual([link.peer.name for link in self.b.network.links()], ["c"])
        self.assertEqual(self.a.network.links(), [])
        self.assertEqual(bye_code(self.ab.client), "slow-reader")
        self.assertEqual(bye_code(self.ab.server), "slow-reader")  # b heard why

    def test_paused_then_resumed_delivers(self):
        """When the transport pauses and resumes the link, then everything queued meanwhile arrives in order."""
        self.ab.client.pauseProducing()
        for i in range(20):
            self.a.post("poe://b/s/hit", i)
        self.mesh.settle()
        self.assertEqual(self.got, [])
        self.ab.client.resumeProducing()
        self.mesh.settle()
        self.assertEqual(self.got, [(i,) for i in range(20)])


class PreauthFrameTests(SynchronousTestCase):
    """
    Before the handshake only small frames are accepted (issue 11).
    """

    def setUp(self):
        self.clock = Clock()
        self.kernel = Kernel("me", reactor=self.clock)
        self.network = self.kernel.network_start()

    def test_large_header_before_handshake(self):
        """When a frame header before the handshake claims 16 MiB, then the link closes with frame-too-large at once, buffering nothing."""
        factory = LinkFactory(self.network, LinkOptions(), self.clock)
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.9", 5555))
        protocol.makeConnection(transport)
        protocol.dataReceived((16 * 1024 * 1024 - 1).to_bytes(4, "big") + b"x" * 1000)
        self.assertEqual(bye_code(protocol), "frame-too-large")
        self.assertEqual(protocol.conn._framer.buffered, 0)  # type: ignore[union-attr]
        self.assertTrue(transport.disconnecting)

    def test_large_frame_right_after_ready(self):
        """When a large frame arrives in the same chunk as READY, then it is accepted (the limit rises with the handshake)."""
        factory = LinkFactory(self.network, LinkOptions(keepalive=0), self.clock)
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.9", 5555))
        protocol.makeConnection(transport)
        self.clock.advance(0)
        protocol.dataReceived(PEER_HELLO)
        protocol.dataReceived(PEER_READY
                              + frame(dumps([PONG, b"x" * 200000])))
        self.assertIsNone(protocol.closed_reason)
        self.assertEqual(protocol.peer.name, "peer")  # type: ignore[union-attr]


class AddressTextTests(SynchronousTestCase):
    def test_address_text(self):
        """When an address is shown in a log line, then it is host:port, [v6]:port or a UNIX path, never a repr."""
        from twisted.internet.address import IPv6Address, UNIXAddress

        from lightspeed.wire.protocol import address_text

        self.assertEqual(address_text(IPv4Address("TCP", "127.0.0.9", 5555)), "127.0.0.9:5555")
        self.assertEqual(address_text(IPv6Address("TCP", "::1", 5555)), "[::1]:5555")
        self.assertEqual(address_text(UNIXAddress(b"/tmp/ls.sock")), "/tmp/ls.sock")
        self.assertEqual(address_text(object()), "object")


class WriteNowTests(SynchronousTestCase):
    """
    Output goes to a plain TCP connection at once when nothing waits before
    it, in order behind what waits, and through ``write`` on any other
    transport.
    """

    def connection(self) -> Any:
        import socket

        from twisted.internet import tcp
        from twisted.internet.protocol import Protocol

        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        transport: Any = tcp.Connection(ours, Protocol(), cast(Any, Clock()))
        transport.connected = True
        transport.startWriting = transport.stopWriting = lambda: None  # no reactor: written only when asked
        return transport, theirs

    def test_sent_at_once(self) -> None:
        """When nothing is buffered, then the bytes are on the socket before any reactor turn."""
        transport, theirs = self.connection()
        write_now(transport, b"answer")
        self.assertEqual((theirs.recv(100), transport.dataBuffer, transport._tempDataBuffer), (b"answer", b"", []))

    def test_in_order_behind_buffered(self) -> None:
        """When bytes wait in the transport, then new ones go behind them, not ahead."""
        transport, theirs = self.connection()
        transport.write(b"first ")
        write_now(transport, b"second")
        self.assertRaises(BlockingIOError, theirs.recv, 100)
        transport.doWrite()
        self.assertEqual(theirs.recv(100), b"first second")

    def test_nothing_after_abort(self) -> None:
        """When the connection was aborted (it is still 'connected' until the next turn), then nothing is sent."""
        transport, theirs = self.connection()
        transport.stopReading = lambda: None  # no reactor
        transport.abortConnection()
        write_now(transport, b"after-abort")
        self.assertRaises(BlockingIOError, theirs.recv, 100)

    def test_other_transports(self) -> None:
        """When the transport is not plain TCP, then its write() is used."""
        transport = StringTransport()
        write_now(transport, b"x")
        self.assertEqual(transport.value(), b"x")
