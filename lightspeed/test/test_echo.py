# -*- test-case-name: lightspeed.test.test_echo -*-
"""
What the decoder accepts, the encoder can answer: peer-supplied values
that a kernel echoes or passes on (PING tokens, LSA proofs, request ids,
arguments bounced or answered) never yield a traceback or BYE
``internal``; a value that cannot be sent back gets BYE ``malformed``.
"""

from __future__ import annotations

from typing import Any, Callable, List

import cbor2
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from lightspeed import Kernel, Session
from lightspeed.message import BYE, CALL, CONTROL, LSA, PING, POST, PROTOCOL_VERSION, REQUEST, ROUTED, HELLO
from lightspeed.test.test_kernel import LogCatcher
from lightspeed.test.test_protocol import PEER_HELLO, PEER_READY, messages
from lightspeed.wire.codec import dumps
from lightspeed.wire.framing import frame
from lightspeed.wire.protocol import LinkFactory, LinkOptions

SIMPLE = cbor2.CBORSimpleValue(99)
#: Values the decoder accepts and the encoder refuses.
UNSENDABLE = [SIMPLE, cbor2.undefined, {SIMPLE: 1}, [1, [cbor2.undefined]]]


class Echo(Session):
    def _start(self, event):
        event.kernel.alias_set("echo")

    def hit(self, event):
        return list(event.args)


class EchoTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.kernel = Kernel("me", reactor=self.clock)
        self.network = self.kernel.network_start()
        self.kernel.spawn(Echo())
        self.clock.advance(0)
        self.log = LogCatcher(self)

    @property
    def critical(self) -> List[Any]:
        """Failures and critical events logged."""
        return [e for e in self.log.events if e.get("log_failure") is not None
                or getattr(e.get("log_level"), "name", "") == "critical"]

    def link(self, name: bytes = PEER_HELLO, host: str = "127.0.0.9") -> Any:
        protocol = LinkFactory(self.network, LinkOptions(keepalive=0), self.clock).buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, 5555))
        protocol.makeConnection(transport)
        self.clock.advance(0)
        protocol.dataReceived(name)
        protocol.dataReceived(PEER_READY)
        self.clock.advance(0)
        transport.clear()
        return protocol, transport

    def send(self, *bodies: bytes) -> List[Any]:
        """The BYEs our kernel answers ``bodies`` with, from an admitted peer."""
        protocol, transport = self.link()
        for body in bodies:
            protocol.dataReceived(frame(body))
            self.clock.advance(0)
        self.clock.advance(60)
        self.assertEqual(self.critical, [])
        self.assertEqual(self.flushLoggedErrors(), [])
        return [m[:2] for m in messages(transport.value()) if m[0] == BYE]

    def routed(self, payload: list, seq: int = 1) -> bytes:
        return cbor2.dumps([ROUTED, "peer", 7, [["me", self.network.incarnation, seq, 0]], 32, None,
                            cbor2.dumps(payload)])

    def test_ping_token(self):
        """When a PING's token cannot be encoded, then BYE 'malformed', no traceback; a plain one is echoed."""
        for token in UNSENDABLE:
            self.assertEqual(self.send(cbor2.dumps([PING, token])), [[BYE, "malformed"]], token)
        self.assertEqual(self.send(cbor2.dumps([PING, [1, {"a": b"x"}]])), [])

    def test_lsa_proof(self):
        """When an LSA's proof cannot be passed on, then BYE 'malformed', and it is not kept to sync others."""
        self.assertEqual(self.send(cbor2.dumps([LSA, "x", 7, 5, [["peer", 1]], SIMPLE])), [[BYE, "malformed"]])
        other = frame(dumps([HELLO, {"version": PROTOCOL_VERSION, "kernel": "peer2", "incarnation": 8,
                                     "nonce": b"n" * 16, "serializers": ["cbor"], "compression": [],
                                     "password": False}]))
        protocol, transport = self.link(other, "127.0.0.8")
        self.assertIsNone(self.network.router.held("x"))
        self.assertEqual(protocol.peer.name, "peer2")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_payload_values(self):
        """
        When unsendable values arrive as the arguments of posts, calls,
        requests and control operations (answered, bounced or reported),
        then no link closes and nothing critical is logged.
        """
        payloads: List[Callable[[Any], list]] = [
            lambda v: [POST, ["echo"], "hit", [v], "s", "st", "f", 1],
            lambda v: [POST, ["nosuch"], "hit", [v], "s", "st", "f", 1],
            lambda v: [CALL, ["echo"], "hit", [v], "s", "st", "f", 1, "poe://peer/s/r"],
            lambda v: [REQUEST, ["echo"], "hit", [v], "s", "st", "f", 1, 5],
            lambda v: [REQUEST, ["nosuch"], "hit", [v], "s", "st", "f", 1, 5],
        ] + [
            (lambda op: lambda v: [CONTROL, ["echo"], op, [v, v], "s", "st", "f", 1, 6])(op)
            for op in ("sessions", "states", "monitor_register", "monitor_unregister", "stats", "no-such-op")
        ]
        for make in payloads:
            for value in UNSENDABLE:
                self.assertEqual(self.send(self.routed(make(value))), [], (make(value)))
