# -*- test-case-name: lightspeed.test.test_protocol -*-
"""
Tests for L{lightspeed.wire.protocol}: one link protocol on an in-memory
transport and a L{task.Clock}.
"""

from __future__ import annotations

from typing import List

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from lightspeed import Kernel
from lightspeed.errors import LinkClosed
from lightspeed.message import BYE, HELLO, PING, PONG, READY
from lightspeed.testing import MemoryMesh
from lightspeed.wire.codec import dumps, loads
from lightspeed.wire.framing import Framer, frame
from lightspeed.wire.protocol import LinkFactory, LinkOptions


def messages(data: bytes) -> List[list]:
    return [loads(body) for body in Framer().feed(data)]


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
        failures = []
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
        protocol.dataReceived(frame(dumps([HELLO, {
            "version": 1, "kernel": "peer", "incarnation": 7, "nonce": b"n" * 16,
            "serializers": ["cbor"], "compression": [], "password": False}])))
        protocol.dataReceived(frame(dumps([READY, {"compression": None, "proof": None}])))
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
        writes = []
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
        ab, cb = mesh.link(a, b), mesh.link(c, b)
        mesh.settle()
        got = []
        b.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("s"), "hit": lambda e: got.append(e.args)})
        ab.server.dataReceived(frame(b"\xff\xfe"))
        mesh.settle()
        self.assertEqual([link.peer.name for link in b.network.links()], ["c"])
        c.post("poe://b/s/hit", 1)
        mesh.settle()
        self.assertEqual(got, [(1,)])
