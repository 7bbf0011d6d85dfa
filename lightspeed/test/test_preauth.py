# -*- test-case-name: lightspeed.test.test_preauth -*-
"""
Limits on connections that have not finished their handshake: the gate on
its own, and hostile peers over real loopback TCP that send partial frames
and never finish.
"""

from __future__ import annotations

import struct
from typing import Any, List, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from lightspeed.test.test_network import Collector, RealKernels, wait_for
from lightspeed.wire.preauth import PreauthGate


class GateTests(SynchronousTestCase):
    def setUp(self):
        self.dropped: List[str] = []
        self.logged: List[dict] = []
        observer = cast(ILogObserver, self.logged.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def admit(self, gate: PreauthGate, link: str, address: str, per_address: bool = True) -> bool:
        return gate.admit(link, address, per_address, lambda: self.dropped.append(link))

    def refusals(self) -> List[str]:
        return [e["address"] for e in self.logged if "refusing unauthenticated" in e.get("log_format", "")]

    def test_counts_and_once_per_address(self):
        """When connections pass each limit, then each is refused, counted, and logged once per address."""
        gate = PreauthGate("k", max_connections=4, max_per_address=2, max_bytes=1000)
        self.assertEqual([self.admit(gate, f"x{i}", "10.0.0.1") for i in range(4)], [True, True, False, False])
        self.assertEqual([self.admit(gate, f"y{i}", "10.0.0.2") for i in range(3)], [True, True, False])
        self.assertEqual([self.admit(gate, f"z{i}", "10.0.0.3") for i in range(2)], [False, False])
        self.assertEqual(gate.refused, {"connections": 3, "per-address": 2, "bytes": 0})
        self.assertEqual(self.refusals(), ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        gate.release("x0")
        gate.release("x0")  # twice is harmless
        self.assertTrue(self.admit(gate, "u", "unix", per_address=False))
        self.assertEqual(len(gate), 4)

    def test_bytes_drop_the_largest(self):
        """When the buffered total passes max_bytes, then the connections buffering most are dropped until it fits."""
        gate = PreauthGate("k", max_connections=10, max_per_address=10, max_bytes=1000)
        for name in "abc":
            self.admit(gate, name, "10.0.0.1")
        gate.update("a", 300)
        gate.update("b", 600)
        self.assertEqual((gate.buffered, self.dropped), (900, []))
        gate.update("c", 200)  # 1100: b, the largest, goes
        self.assertEqual((gate.buffered, self.dropped, len(gate)), (500, ["b"], 2))
        gate.update("b", 5000)  # no longer counted
        gate.update("a", 0)
        self.assertEqual((gate.buffered, gate.refused["bytes"]), (200, 1))
        gate.release("c")
        self.assertEqual(gate.buffered, 0)

    def test_logged_addresses_bounded(self):
        """When more addresses are refused than the log remembers, then it forgets them all and stays bounded."""
        gate = PreauthGate("k", max_connections=0)
        for i in range(1500):
            self.admit(gate, f"l{i}", f"10.1.{i // 256}.{i % 256}")
        self.assertEqual(len(self.refusals()), 1500)
        self.assertLessEqual(len(gate._logged), 1024)
        self.assertEqual(gate.refused["connections"], 1500)


class _Hostile(Protocol):
    """
    Sends the start of a frame that announces ``length`` bytes and never
    finishes it.
    """

    def __init__(self, length: int, send: int) -> None:
        self.length, self.send = length, send
        self.lost: Deferred = Deferred()
        self.closed = False

    def connectionMade(self) -> None:
        cast(Any, self.transport).write(struct.pack(">I", self.length) + b"\0" * self.send)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self.lost.callback(None)


class HostileTests(RealKernels):

    def setUp(self):
        self.logged: List[dict] = []
        observer = cast(ILogObserver, self.logged.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.hostiles: List[_Hostile] = []

    def refusals(self) -> List[str]:
        return [e["address"] for e in self.logged if "refusing unauthenticated" in e.get("log_format", "")]

    def hostile(self, port: int, source: str, length: int = 60000, send: int = 20000) -> _Hostile:
        protocol = _Hostile(length, send)
        factory = ClientFactory.forProtocol(lambda: protocol)
        connector = cast(Any, reactor).connectTCP("127.0.0.1", port, factory, bindAddress=(source, 0))
        self.addCleanup(connector.disconnect)
        self.hostiles.append(protocol)
        return protocol

    @inlineCallbacks
    def listening(self, **options: Any) -> Any:
        a, b = self.kernel("pre-a"), self.kernel("pre-b")
        log: List[Any] = []
        b.spawn(Collector("s", log))
        listener = b.listen("tcp:0:interface=127.0.0.1", **options)
        port = (yield listener.whenListening()).getHost().port
        yield a.connect(f"tcp:host=127.0.0.1:port={port}:bindAddress=127.0.0.1").whenConnected()
        return a, b, log, port, listener.factory.gate

    @inlineCallbacks
    def delivers(self, a: Any, log: List[Any], text: str) -> Any:
        a.post("poe://pre-b/s/hit", text)
        yield wait_for(lambda: log and log[-1][1] == (text,))

    @inlineCallbacks
    def test_each_limit_over_tcp(self):
        """When hostile peers hold partial frames, then each limit refuses exactly its connections, logs once per address, and honest links deliver."""
        a, b, log, port, gate = yield self.listening(
            max_unauthenticated=6, max_unauthenticated_per_address=3, max_unauthenticated_bytes=150000)
        for _ in range(5):
            self.hostile(port, "127.0.0.2")
        # Each buffers its frame's 4-byte header and 20000 bytes of body.
        yield wait_for(lambda: gate.refused["per-address"] == 2 and gate.buffered == 3 * 20004)
        for _ in range(3):
            self.hostile(port, "127.0.0.3")
        yield wait_for(lambda: gate.buffered == 6 * 20004)
        yield self.delivers(a, log, "during")
        for _ in range(2):
            self.hostile(port, "127.0.0.4")
        yield wait_for(lambda: gate.refused["connections"] == 2)
        self.assertEqual(len(gate), 6)
        one = self.hostiles[5]  # from 127.0.0.3
        cast(Any, one.transport).write(b"\0" * 39000)  # 59004 buffered: the total passes 150000, this one goes
        yield one.lost
        self.assertEqual((gate.buffered, len(gate)), (5 * 20004, 5))
        c = self.kernel("pre-c")
        yield c.connect(f"tcp:host=127.0.0.1:port={port}:bindAddress=127.0.0.5").whenConnected()
        self.assertEqual(sorted(link.peer.name for link in b.network.links()), ["pre-a", "pre-c"])
        yield self.delivers(a, log, "after")
        self.assertEqual(gate.refused, {"connections": 2, "per-address": 2, "bytes": 1})
        self.assertEqual(self.refusals(), ["127.0.0.2", "127.0.0.4", "127.0.0.3"])
        # Nothing else is logged per refused connection.
        self.assertEqual([e for e in self.logged if "before its handshake" in e.get("log_format", "")], [])
        yield wait_for(lambda: sum(h.closed for h in self.hostiles) >= 5)
        self.assertEqual(sum(h.closed for h in self.hostiles), 5)  # every refused one closed, no other
        self.assertEqual(len(gate), 5)

    @inlineCallbacks
    def test_flood_with_defaults(self):
        """When 150 hostile connections from 6 addresses each send 64 KiB of a frame, then at most 1 MiB is buffered and an honest link delivers throughout."""
        a, b, log, port, gate = yield self.listening()
        highest = 0
        for i in range(150):
            self.hostile(port, f"127.0.1.{i % 6 + 1}", length=65532, send=65530)
            if i % 10 == 9:
                yield self.delivers(a, log, f"post {i}")
                highest = max(highest, gate.buffered)
        yield wait_for(lambda: sum(gate.refused.values()) + len(gate) == 150)
        highest = max(highest, gate.buffered)
        self.assertLessEqual(highest, 1024 * 1024)
        # The bytes limit keeps 16 of 65534 bytes (header and body): a 17th passes 1 MiB.
        yield wait_for(lambda: gate.buffered == 16 * 65534 and len(gate) == 16)
        self.assertEqual(sum(gate.refused.values()), 150 - 16)
        # Each refused peer sees its close a little later, over TCP: wait for
        # all of them, then check that no admitted one was closed.
        yield wait_for(lambda: sum(h.closed for h in self.hostiles) >= 150 - 16)
        self.assertEqual(sum(h.closed for h in self.hostiles), 150 - 16)
        # Refusals from each address, each logged once.
        self.assertEqual(sorted(self.refusals()), [f"127.0.1.{i}" for i in range(1, 7)])
        yield self.delivers(a, log, "last")


class InflateTests(SynchronousTestCase):
    def test_zlib_bomb_before_handshake(self):
        """When a peer that agreed on zlib sends 16 MiB of zeros compressed to a few KiB before READY, then at most a small frame is inflated at once and the link closes frame-too-large."""
        import tracemalloc
        import zlib

        from lightspeed.wire.connection import Connection, LinkConfig

        closes: List[tuple] = []
        ours = Connection(LinkConfig("inf-a", 1, compression=True), lambda name, inc: None, lambda peer: None,
                          lambda message: None, lambda *a: closes.append(a), lambda: None)
        theirs = Connection(LinkConfig("inf-b", 2, compression=True), lambda name, inc: None, lambda peer: None,
                            lambda message: None, lambda *a: None, lambda: None)
        ours.start()
        theirs.start()
        hello = theirs.take_output()
        deflate = zlib.compressobj()
        bomb = deflate.compress(struct.pack(">I", 16 * 1024 * 1024 - 8) + bytes(16 * 1024 * 1024))
        bomb += deflate.flush(zlib.Z_SYNC_FLUSH)
        self.assertLess(len(bomb), 64 * 1024)
        tracemalloc.start()
        try:
            ours.receive(hello + bomb)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertEqual(closes[0][0], "frame-too-large")
        self.assertLess(peak, 1024 * 1024)  # was 16 MiB: a whole max_frame inflated at once
