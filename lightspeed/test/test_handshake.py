# -*- test-case-name: lightspeed.test.test_handshake -*-
"""
Tests for the password handshake (:obj:`lightspeed.wire.handshake`): SPAKE2
with key confirmation leaves no offline oracle to a rogue peer in either
role, the right password links up and a wrong or missing one gets BYE
``auth`` on both ends over real loopback TCP (and TLS), and failed
guesses are limited per source address.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from typing import Any, Callable, List, Optional, Tuple

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from spake2.spake2 import DefaultParams, finalize_SPAKE2_symmetric
from twisted.trial.unittest import SynchronousTestCase

from lightspeed import Kernel
from lightspeed.errors import HandshakeRefused, LinkClosed
from lightspeed.message import BYE, HELLO, PROTOCOL_VERSION, READY
from lightspeed.test.test_kernel import LogCatcher
from lightspeed.test.test_network import RealKernels, wait_for
from lightspeed.test.test_tls import node
from lightspeed.wire.codec import dumps, loads
from lightspeed.wire.connection import Connection, LinkConfig
from lightspeed.wire.framing import Framer, frame
from lightspeed.wire.handshake import PAKE_ID, GuessLimiter, PasswordProof, PeerHello, confirmations, transcript
from lightspeed.wire.protocol import LinkFactory, LinkOptions

RIGHT = b"correct horse"
#: The rogue's dictionary; it holds the right password.
WORDS = [b"123456", b"password", b"letmein", RIGHT, b"dragon", b"monkey"]


def entropy(seed: int) -> Callable[[int], bytes]:
    """
    Deterministic randomness for the rogue, so it can redo its own SPAKE2
    with the same secret scalar under any other password.
    """
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


class Rogue:
    """
    A peer that runs the handshake only as far as it must to get
    everything a kernel sends before the kernel has proved anything, then
    tries each word of a dictionary offline against it.
    """

    name, incarnation, nonce = "rogue", 99, b"r" * 16

    def __init__(self, guess: Optional[bytes]) -> None:
        self.proof = PasswordProof(guess or b"", entropy(1))
        self.pake: Any = self.proof.message if guess is not None else None
        self.frames: List[Any] = []
        self._framer = Framer()

    def hello(self) -> bytes:
        fields = {"version": PROTOCOL_VERSION, "kernel": self.name, "incarnation": self.incarnation,
                  "nonce": self.nonce, "serializers": ["cbor"], "compression": [], "password": True}
        if self.pake is not None:
            fields["pake"] = self.pake
        return frame(dumps([HELLO, fields]))

    def feed(self, data: bytes) -> None:
        self.frames += [loads(body) for body in self._framer.feed(data)]

    def node_hello(self) -> Any:
        fields = self.frames[0][1]
        return PeerHello(fields["kernel"], fields["incarnation"], fields["nonce"], False, fields.get("pake"),
                         fields)

    def offline_matches(self) -> List[bytes]:
        """
        The words that the kernel's output confirms, by everything a rogue
        can compute offline: the old HMAC proof under each word, and the
        kernel's key confirmation as it would be if the kernel's password
        were the word (the SPAKE2 key from the kernel's message, the rogue's
        own secret scalar and the word).  Without the kernel's secret
        scalar the latter is right only for the one password the rogue put
        in its own SPAKE2 message.
        """
        node = self.node_hello()
        sent = [f[1].get("confirm") or f[1].get("proof") for f in self.frames if f[0] == READY]
        group, y = DefaultParams.group, self.proof._spake.xy_scalar
        x_elem = group.bytes_to_element(node.pake[1:])
        order = transcript((node.name, node.incarnation, node.nonce, node.pake),
                           (self.name, self.incarnation, self.nonce, self.pake))
        matches = []
        for word in WORDS:
            old = hmac.new(word, b"|".join([b"lightspeed-1 proof", node.name.encode(), self.name.encode(),
                                            self.nonce, node.nonce]), hashlib.sha256).digest()
            k_elem = x_elem.add(DefaultParams.S.scalarmult(-group.password_to_scalar(word))).scalarmult(y)
            key = finalize_SPAKE2_symmetric(PAKE_ID, node.pake[1:], self.pake[1:], k_elem.to_bytes(), word)
            node_first = node.name.encode() < self.name.encode()
            candidate = confirmations(key, order)[0 if node_first else 1]
            if old in sent or candidate in sent:
                matches.append(word)
        return matches


def connection(password: Optional[bytes], name: str = "node") -> Tuple[Connection, List[Any], List[Any]]:
    closes: List[Any] = []
    ups: List[Any] = []
    conn = Connection(LinkConfig(name, 1, password=password), lambda n, i: None, ups.append,
                      lambda m: None, lambda *a: closes.append(a), lambda: None)
    return conn, closes, ups


class OfflineOracleTests(SynchronousTestCase):
    """
    A rogue peer gets a kernel's HELLO and READY (its key confirmation)
    without knowing the password, and tries a dictionary against them.
    """

    def rogue_against(self, password: bytes, guess: Optional[bytes]) -> Rogue:
        conn, closes, ups = connection(password)
        rogue = Rogue(guess)
        conn.start()
        rogue.feed(conn.take_output())
        conn.receive(rogue.hello())
        rogue.feed(conn.take_output())
        self.assertEqual(ups, [])
        return rogue

    def test_no_offline_check(self):
        """
        When a rogue that guessed wrong online has everything the kernel
        sent, then no word of its dictionary (the right one included) is
        confirmed by it, whichever password the kernel holds: it cannot
        tell the right password from a wrong one.
        """
        for password in (RIGHT, b"dragon"):
            rogue = self.rogue_against(password, b"letmein")
            self.assertEqual([f[0] for f in rogue.frames], [HELLO, READY])
            self.assertIsInstance(rogue.frames[1][1]["confirm"], bytes)
            self.assertEqual(rogue.offline_matches(), [])

    def test_one_online_guess(self):
        """When the rogue's online guess is the right password, then that one word is all it learns."""
        self.assertEqual(self.rogue_against(RIGHT, RIGHT).offline_matches(), [RIGHT])

    def test_confirmation_bound_to_transcript(self):
        """When any part of the transcript differs, then the confirmations differ."""
        a, b = PasswordProof(RIGHT), PasswordProof(RIGHT)
        hello_b = PeerHello("b", 2, b"b" * 16, False, b.message, {})
        hello_a = PeerHello("a", 1, b"a" * 16, False, a.message, {})
        mine = a.confirm(("a", 1, b"a" * 16), hello_b)
        b.confirm(("b", 2, b"b" * 16), hello_a)
        b.check(mine, "a")  # the same transcript: accepted
        for changed in [("a", 1, b"x" * 16), ("a", 3, b"a" * 16)]:
            c, d = PasswordProof(RIGHT), PasswordProof(RIGHT)
            d.confirm(("b", 2, b"b" * 16), PeerHello("a", changed[1], changed[2], False, c.message, {}))
            other = c.confirm(("a", 1, b"a" * 16), PeerHello("b", 2, b"b" * 16, False, d.message, {}))
            self.assertRaises(HandshakeRefused, d.check, other, "a")
        self.assertNotEqual(transcript(("a", 1, b"n", b"p"), ("b", 2, b"n", b"q")),
                            transcript(("a", 1, b"n", b"p"), ("c", 2, b"n", b"q")))

    def test_bad_pake(self):
        """When the peer's pake is missing, malformed or not a point, then BYE 'malformed'; reflected: 'auth'."""
        for pake, code in [(None, "malformed"), (b"S" * 2, "malformed"), (b"A" + b"\x00" * 32, "malformed"),
                           (b"S" + b"\xff" * 32, "malformed"), (b"S" + b"\x02" * 32, "malformed"),  # not on the curve
                           ("reflect", "auth")]:
            conn, closes, ups = connection(RIGHT)
            conn.start()
            rogue = Rogue(None)
            rogue.feed(conn.take_output())
            rogue.pake = rogue.frames[0][1]["pake"] if pake == "reflect" else pake
            conn.receive(rogue.hello())
            self.assertEqual(closes[0][0], code, (pake, closes))
            self.assertFalse(conn.answered)
            self.assertEqual(loads(Framer().feed(conn.take_output())[0])[:2], [BYE, code])


def wrong_hello_and_ready() -> bytes:
    rogue = Rogue(b"wrong")
    return rogue.hello() + frame(dumps([READY, {"compression": None, "confirm": b"\x00" * 32}]))


class GuessLimitTests(SynchronousTestCase):
    """
    A listener with a password limits failed handshakes per source address.
    """

    def setUp(self):
        self.clock = Clock()
        self.kernel = Kernel("me", reactor=self.clock)
        self.network = self.kernel.network_start()
        self.factory = LinkFactory(self.network, LinkOptions(password=RIGHT, auth_burst=3, auth_interval=10.0,
                                                             keepalive=0), self.clock, listening=True)
        self.log = LogCatcher(self)

    @property
    def logged(self) -> List[str]:
        """The addresses logged as refused."""
        return [e["address"] for e in self.log.events if "too many failed" in e.get("log_format", "")]

    def connect(self, host: str = "10.0.0.1") -> Tuple[Any, StringTransport]:
        protocol = self.factory.buildProtocol(IPv4Address("TCP", host, 4000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, 4000))
        protocol.makeConnection(transport)
        self.network.after_read(protocol)
        return protocol, transport

    def attempt(self, host: str = "10.0.0.1", data: Optional[bytes] = None) -> Tuple[str, str]:
        """One connection that sends a wrong guess; the BYE code and text it got."""
        protocol, transport = self.connect(host)
        if protocol.conn.state != "closed":
            protocol.dataReceived(wrong_hello_and_ready() if data is None else data)
        frames = [loads(b) for b in Framer().feed(transport.value())]
        protocol.connectionLost(None)
        return (frames[-1][1], frames[-1][2]) if frames[-1][0] == BYE else ("", "")

    def test_refused_after_burst(self):
        """
        When an address has failed auth_burst times, then its next
        connections get BYE 'auth' before any handshake (no HELLO), logged
        once; other addresses are not affected; after auth_interval it may
        try once more.
        """
        for _ in range(3):
            self.assertEqual(self.attempt(), ("auth", "wrong password: kernel 'rogue' failed the key confirmation"))
        protocol, transport = self.connect()
        frames = [loads(b) for b in Framer().feed(transport.value())]
        self.assertEqual([f[:2] for f in frames], [[BYE, "auth"]])
        self.assertEqual(frames[0][2], "too many failed password attempts from 10.0.0.1; try again in 10 s")
        protocol.connectionLost(None)
        self.assertEqual(self.attempt()[1], frames[0][2])
        self.assertEqual(self.logged, ["10.0.0.1"])
        self.assertEqual(self.attempt("10.0.0.2")[0], "auth")
        self.assertIn("key confirmation", self.attempt("10.0.0.2")[1])
        self.clock.advance(10)
        self.assertIn("key confirmation", self.attempt()[1])
        self.assertIn("too many", self.attempt()[1])
        self.assertEqual(self.logged, ["10.0.0.1", "10.0.0.1"])

    def test_parallel_cannot_overdraw(self):
        """When more handshakes than the burst start at once, then the extra ones are refused."""
        started = [self.connect() for _ in range(4)]
        self.assertEqual([p.conn.state for p, _ in started], ["hello-sent"] * 3 + ["closed"])

    def test_guess_without_confirming_counts(self):
        """When a peer gets our confirmation and hangs up without its own, then that is a failed guess."""
        for _ in range(3):
            self.attempt(data=Rogue(b"wrong").hello())
        self.assertIn("too many", self.attempt()[1])

    def test_no_guess_costs_nothing(self):
        """When connections end before a guess (no password, bad HELLO, silence) or come up, then no token is used."""
        nopw = frame(dumps([HELLO, {"version": PROTOCOL_VERSION, "kernel": "x", "incarnation": 1, "nonce": b"n" * 16,
                                    "serializers": ["cbor"], "compression": [], "password": False}]))
        for _ in range(5):
            self.assertEqual(self.attempt(data=nopw)[1], "password required")
            self.assertEqual(self.attempt(data=b"\x00\x00\x00\x01\xff")[0], "malformed")
        for _ in range(5):
            conn, closes, ups = connection(RIGHT, "honest")
            protocol, transport = self.connect()
            conn.start()
            protocol.dataReceived(conn.take_output())
            self.network.after_read(protocol)
            conn.receive(transport.value())
            protocol.dataReceived(conn.take_output())
            self.assertEqual((len(ups), protocol.peer.name), (1, "honest"))
            protocol.close("shutdown", "bye")
            protocol.connectionLost(None)
        self.assertEqual(self.attempt()[0], "auth")
        self.assertIn("key confirmation", self.attempt()[1])
        self.assertEqual(self.logged, [])

    def test_connector_not_limited(self):
        """When the factory is not a listener's, then it keeps no limiter."""
        self.assertIsNone(LinkFactory(self.network, LinkOptions(password=RIGHT), self.clock).guesses)
        self.assertIsNone(LinkFactory(self.network, LinkOptions(), self.clock, listening=True).guesses)

    def test_limiter_memory_bounded(self):
        """When many addresses fail, then at most `bound` are remembered, and full buckets are forgotten."""
        limiter = GuessLimiter(2, 10.0, bound=100)
        for i in range(1000):
            self.assertIsNone(limiter.take(f"10.{i}", 0.0))
        self.assertEqual(len(limiter._buckets), 100)
        limiter.give_back("10.999", 0.0)
        self.assertEqual(len(limiter._buckets), 99)


class _RogueProtocol(Protocol):
    factory: "_RogueFactory"
    transport: Any
    """
    A rogue server or client on real TCP: sends its HELLO, keeps what the
    kernel sends, and hangs up once it has the kernel's READY.
    """

    def connectionMade(self) -> None:
        self.transport.write(self.factory.rogue.hello())

    def dataReceived(self, data: bytes) -> None:
        rogue = self.factory.rogue
        rogue.feed(data)
        if any(f[0] == READY for f in rogue.frames) and not self.factory.done.called:
            self.transport.loseConnection()
            self.factory.done.callback(rogue)


class _RogueFactory(ServerFactory):
    def __init__(self, guess: bytes) -> None:
        self.protocol = _RogueProtocol  # type: ignore[assignment]
        self.rogue = Rogue(guess)
        self.done: Deferred = Deferred()


def rogue_factory(guess: bytes) -> _RogueFactory:
    return _RogueFactory(guess)


class AuthLog(LogCatcher):
    """
    The log events of links closed with code ``auth``, as (kernel, peer).
    """

    @property
    def auth(self) -> List[Tuple[str, str]]:
        return [(e.get("kernel", "?"), str(e.get("peer", e.get("address")))) for e in self.events
                if e.get("code") == "auth" or "too many failed" in e.get("log_format", "")]


class LoopbackTests(RealKernels):
    """
    Kernels with passwords over real loopback TCP and TLS.
    """

    @inlineCallbacks
    def link(self, name: str, server: dict, client: dict, tls: bool = False) -> Any:
        a, b = self.kernel(f"{name}-a"), self.kernel(f"{name}-b")
        stls = node(f"{name}-b") if tls else None
        ctls = node(f"{name}-a") if tls else None
        port = yield b.listen("tcp:0:interface=127.0.0.1", tls=stls, **server).whenListening()
        address = f"tcp:host=127.0.0.1:port={port.getHost().port}"
        service = a.connect(address, reconnect=False, tls=ctls, **client)
        return a, b, service, (address, ctls)

    @inlineCallbacks
    def test_right_password(self):
        """When both ends have the same password, then the link is up over TCP and over TLS."""
        for tls in (False, True):
            a, b, service, _ = yield self.link(f"pw{int(tls)}", {"password": "pw"}, {"password": "pw"}, tls)
            link = yield service.whenConnected(failAfterFailures=1)
            self.assertEqual(link.peer.name, b.name)
            yield wait_for(lambda: [link.peer.name for link in b.network.links()] == [a.name])

    @inlineCallbacks
    def refused(self, name: str, server: dict, client: dict, reason: str, tls: bool = False) -> Any:
        log = AuthLog(self)
        a, b, service, _ = yield self.link(name, server, client, tls)
        error = yield self.assertFailure(service.whenConnected(failAfterFailures=1), LinkClosed)
        self.assertEqual(error.code, "auth")
        yield wait_for(lambda: len({k for k, _ in log.auth}) == 2)
        self.assertEqual(sorted(k for k, _ in log.auth), [a.name, b.name])  # once on each end
        self.assertIn("127.0.0.1", dict(log.auth)[b.name])  # the listener logs the address
        self.assertIn(reason, str(error))
        self.assertEqual((a.network.links(), b.network.links()), ([], []))
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_wrong_password(self):
        """When the passwords differ, then BYE 'auth' on both ends, logged once each with the address."""
        return self.refused("wrong", {"password": "right"}, {"password": "wrong"}, "wrong password")

    def test_wrong_password_tls(self):
        """When the passwords differ over TLS, then BYE 'auth' on both ends."""
        return self.refused("wrongtls", {"password": "right"}, {"password": "wrong"}, "wrong password", True)

    def test_password_on_server_only(self):
        """When only the listener has a password, then BYE 'auth' on both ends."""
        return self.refused("srvonly", {"password": "pw"}, {}, "password")

    def test_password_on_client_only(self):
        """When only the connector has a password, then BYE 'auth' on both ends."""
        return self.refused("cltonly", {}, {"password": "pw"}, "password")

    @inlineCallbacks
    def test_rate_limited_tls(self):
        """When an address failed auth_burst times over TLS, then its next connection gets BYE 'auth' at once."""
        log = AuthLog(self)
        a, b, service, (address, ctls) = yield self.link(
            "limit", {"password": "right", "auth_burst": 1, "auth_interval": 3600.0}, {"password": "wrong"}, True)
        error = yield self.assertFailure(service.whenConnected(failAfterFailures=1), LinkClosed)
        self.assertIn("wrong password", str(error))
        again = a.connect(address, reconnect=False, tls=ctls, password="right")
        error = yield self.assertFailure(again.whenConnected(failAfterFailures=1), LinkClosed)
        self.assertEqual(error.code, "auth")
        self.assertIn("too many failed password attempts from 127.0.0.1; try again in 3600 s", str(error))
        yield wait_for(lambda: any("127.0.0.1" == peer for _, peer in log.auth))
        self.assertEqual(self.flushLoggedErrors(), [])

    @inlineCallbacks
    def test_rogue_server(self):
        """When a kernel connects to a rogue server, then what it sends confirms no password offline."""
        a = self.kernel("victim-a")
        factory = rogue_factory(b"letmein")
        port: Any = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        a.connect(f"tcp:host=127.0.0.1:port={port.getHost().port}", reconnect=False, password=RIGHT)
        rogue = yield factory.done
        self.assertEqual(rogue.offline_matches(), [])

    @inlineCallbacks
    def test_rogue_client(self):
        """When a rogue client connects to a kernel, then what the kernel sends confirms no password offline."""
        b = self.kernel("victim-b")
        listening = yield b.listen("tcp:0:interface=127.0.0.1", password=RIGHT).whenListening()
        factory = rogue_factory(b"letmein")
        from twisted.internet.endpoints import TCP4ClientEndpoint
        yield TCP4ClientEndpoint(reactor, "127.0.0.1", listening.getHost().port).connect(factory)
        rogue = yield factory.done
        self.assertEqual(rogue.offline_matches(), [])
