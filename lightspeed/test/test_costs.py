# -*- test-case-name: lightspeed.test.test_costs -*-
"""
Tests for link costs from measured round trips: the PING tokens that time
them (:obj:`lightspeed.wire.protocol`), the smoothing, quantisation and
hysteresis of :obj:`lightspeed.net.costs`, and routes that follow the faster
path, on a :obj:`MemoryMesh` and over real loopback TCP.
"""

from __future__ import annotations

import math
import random
from typing import Any, Dict, List, Optional, Tuple, cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from lightspeed import Kernel
from lightspeed.message import LSA, PING, PONG
from lightspeed.net.costs import ALPHA, MAX_COST, MIN_STEP, QUANTUM, RoundTrip, quantise, significant
from lightspeed.test.test_network import wait_for
from lightspeed.test.test_protocol import PEER_HELLO, PEER_READY
from lightspeed.testing import MemoryLink, MemoryMesh
from lightspeed.wire.codec import dumps, loads
from lightspeed.wire.framing import Framer, frame
from lightspeed.wire.protocol import FIRST_PING, LinkFactory, LinkOptions, LinkProtocol


def messages(data: bytes) -> List[list]:
    return [loads(body) for body in Framer().feed(data)]


# -- costs.py alone ---------------------------------------------------------------


class QuantiseTests(SynchronousTestCase):
    def test_quantum_steps(self):
        """When a smoothed round trip is quantised, then each whole millisecond adds one to a base cost of 1."""
        self.assertEqual(QUANTUM, 0.001)
        self.assertEqual([quantise(s) for s in (0, 0.0004, 0.000999, 0.001, 0.0015, 0.003, 0.0999, 0.1)],
                         [1, 1, 1, 2, 2, 4, 100, 101])

    def test_float_noise_rounded_to_microseconds(self):
        """When a round trip is a difference of clock readings, then float noise does not drop it a quantum."""
        self.assertEqual(quantise(1.15 - 1.05), 101)
        self.assertEqual(quantise(0.003), 4)

    def test_capped(self):
        """When the round trip is a second or more, then the cost is MAX_COST; a negative one costs 1."""
        self.assertEqual(MAX_COST, 1000)
        self.assertEqual(quantise(0.999), 1000)
        self.assertEqual(quantise(60.0), 1000)
        self.assertEqual(quantise(-1.0), 1)


class HysteresisTests(SynchronousTestCase):
    def test_small_costs_need_two_units(self):
        """When costs are small, then a change needs at least MIN_STEP units."""
        self.assertEqual(MIN_STEP, 2)
        self.assertFalse(significant(1, 2))
        self.assertTrue(significant(1, 3))
        self.assertFalse(significant(3, 2))
        self.assertTrue(significant(3, 1))
        self.assertFalse(significant(5, 5))

    def test_large_costs_need_a_quarter(self):
        """When costs are large, then a change needs at least a quarter of the advertised cost, both ways."""
        self.assertTrue(significant(100, 125))
        self.assertFalse(significant(100, 124))
        self.assertTrue(significant(100, 75))
        self.assertFalse(significant(100, 76))
        self.assertTrue(significant(8, 6))
        self.assertFalse(significant(8, 7))
        self.assertFalse(significant(8, 9))

    def test_no_flap_in_any_narrow_band(self):
        """When candidates stay in a band narrower than the step at its bottom, then no advert inside it moves."""
        for lo in range(1, MAX_COST + 1):
            width = max(MIN_STEP, math.ceil(lo / 4)) - 1  # the widest band: hi - lo < max(2, lo / 4)
            band = range(lo, min(lo + width, MAX_COST) + 1)
            for advertised in band:
                for candidate in band:
                    self.assertFalse(significant(advertised, candidate), (lo, advertised, candidate))

    def test_jitter_simulation_changes_at_most_once(self):
        """When samples jitter around every quantum boundary, then the advert changes at most once per run."""
        rng = random.Random(6)
        for boundary in (0.002, 0.003, 0.010, 0.050, 0.300):
            for start in (1, 2, 5, 50, 400):
                trip = RoundTrip(boundary)
                advertised, changes, seen = start, 0, set()
                for _ in range(2000):
                    trip.sample(boundary + rng.uniform(-0.0004, 0.0004))
                    seen.add(trip.cost())
                    if significant(advertised, trip.cost()):
                        advertised, changes = trip.cost(), changes + 1
                self.assertGreater(len(seen), 1)  # the jitter does cross the boundary
                self.assertLessEqual(changes, 1, (boundary, start))


class RoundTripTests(SynchronousTestCase):
    def test_smoothing(self):
        """When samples arrive, then the first is taken as it is and each later one moves it by an eighth."""
        self.assertEqual(ALPHA, 1 / 8)
        trip = RoundTrip(0.008)
        self.assertEqual((trip.srtt, trip.samples, trip.cost()), (0.008, 1, 9))
        self.assertAlmostEqual(trip.sample(0.0), 0.007)
        self.assertAlmostEqual(trip.sample(0.015), 0.008)
        self.assertEqual(trip.samples, 3)


# -- PING tokens on one link --------------------------------------------------------


class PingTokenTests(SynchronousTestCase):
    """
    One link protocol on a StringTransport: the PINGs it sends and the
    PONGs it is fed.
    """

    def setUp(self):
        self.clock = Clock()
        self.kernel = Kernel("me", reactor=self.clock)
        self.network = self.kernel.network_start()
        self.trips: List[Tuple[Any, float]] = []
        self.network.link_rtt = lambda link, seconds: self.trips.append((link, seconds))

    def up(self, **options) -> Tuple[LinkProtocol, StringTransport]:
        protocol = LinkFactory(self.network, LinkOptions(**options), self.clock).buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.9", 5555))
        protocol.makeConnection(transport)
        self.clock.advance(0)
        protocol.dataReceived(PEER_HELLO)
        protocol.dataReceived(PEER_READY)
        self.clock.advance(0)
        self.assertEqual(cast(Any, protocol.peer).name, "peer")
        transport.clear()
        return protocol, transport

    def pings(self, transport: StringTransport) -> List[Any]:
        tokens = [m[1] for m in messages(transport.value()) if m[0] == PING]
        transport.clear()
        return tokens

    def pong(self, protocol: LinkProtocol, *token: Any) -> None:
        protocol.dataReceived(frame(dumps([PONG, *token])))

    def test_first_ping_soon_after_handshake(self):
        """When a link comes up with keepalive off, then one PING still goes out FIRST_PING seconds later, and no more."""
        protocol, transport = self.up(keepalive=0)
        self.clock.advance(FIRST_PING - 0.01)
        self.assertEqual(self.pings(transport), [])
        self.clock.advance(0.01)
        (token,) = self.pings(transport)
        self.assertIs(type(token), int)
        self.clock.advance(100)
        self.assertEqual(self.pings(transport), [])

    def test_short_keepalive_needs_no_first_ping(self):
        """When the keepalive period is shorter than FIRST_PING, then its ticks are the only PINGs."""
        protocol, transport = self.up(keepalive=0.5)
        self.clock.advance(0.5)
        self.assertEqual(len(self.pings(transport)), 1)
        self.clock.advance(0.5)
        self.assertEqual(len(self.pings(transport)), 1)

    def test_pong_times_the_round_trip(self):
        """When a PONG echoes a PING's token, then the owner hears the round trip of that PING."""
        protocol, transport = self.up(keepalive=10)
        self.clock.advance(FIRST_PING)
        (token,) = self.pings(transport)
        self.clock.advance(0.25)
        self.pong(protocol, token)
        self.assertEqual(self.trips, [(protocol, 0.25)])

    def test_tokens_differ(self):
        """When a link pings at each keepalive tick, then every PING has a new token."""
        protocol, transport = self.up(keepalive=2)
        tokens = []
        for _ in range(6):
            self.clock.advance(1)
            tokens += self.pings(transport)
            protocol.dataReceived(frame(dumps([PONG, None])))  # keep it alive
        self.assertEqual(len(tokens), 4)  # the first PING, then one per tick
        self.assertEqual(len(set(tokens)), 4)

    def test_bad_pong_tokens_ignored(self):
        """When PONGs carry tokens that are not an awaited PING's, then they time nothing and the link stays up."""
        protocol, transport = self.up(keepalive=10)
        self.clock.advance(FIRST_PING)
        (token,) = self.pings(transport)
        for bad in ([token + 1], [str(token)], [float(token)], [None], [], [True], [[token]], [{"t": token}]):
            self.pong(protocol, *bad)
        self.assertEqual(self.trips, [])
        self.clock.advance(0.5)
        self.pong(protocol, token)
        self.pong(protocol, token)  # a replay of an answered one
        self.assertEqual(self.trips, [(protocol, 0.5)])
        self.assertIsNone(protocol.closed_reason)
        self.assertFalse(transport.disconnecting)

    def test_answer_to_a_later_ping_forgets_earlier(self):
        """When the PONG of a later PING arrives, then earlier unanswered PINGs are no longer awaited."""
        protocol, transport = self.up(keepalive=10)
        self.clock.advance(FIRST_PING)
        (first,) = self.pings(transport)
        self.clock.advance(10 - FIRST_PING)
        (second,) = self.pings(transport)
        self.clock.advance(0.1)
        self.pong(protocol, second)
        self.pong(protocol, first)
        self.assertEqual([round(s, 6) for _, s in self.trips], [0.1])

    def test_foreign_ping_answered_and_harmless(self):
        """When the peer PINGs with any token, then it gets that token back and nothing is timed."""
        protocol, transport = self.up(keepalive=0)
        for token in ({"x": [1]}, -5, "hello", None):
            protocol.dataReceived(frame(dumps([PING, token])))
        self.clock.advance(0)
        self.assertEqual([m for m in messages(transport.value())],
                         [[PONG, {"x": [1]}], [PONG, -5], [PONG, "hello"], [PONG, None]])
        self.assertEqual(self.trips, [])
        self.assertIsNone(protocol.closed_reason)

    def test_silence_still_detected(self):
        """When PONGs are timed, then a silent peer is still dead after three keepalive periods."""
        protocol, transport = self.up(keepalive=10)
        for _ in range(3):
            self.clock.advance(10)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(10)
        self.assertTrue(transport.disconnecting)


# -- routes on a memory mesh -----------------------------------------------------------


def delay(link: MemoryLink, seconds: float, back: Optional[float] = None) -> None:
    """
    Make each direction of ``link`` take ``seconds`` (``back`` for the
    server's writes, if given).
    """
    link.forward.delay(seconds)
    link.backward.delay(seconds if back is None else back)


class MeshCostTests(SynchronousTestCase):
    def setUp(self):
        self.mesh = MemoryMesh()

    def kernels(self, names: str) -> Dict[str, Kernel]:
        return {name: self.mesh.kernel(name) for name in names}

    def link(self, a: Kernel, b: Kernel, seconds: float = 0.0, keepalive: float = 1.0) -> MemoryLink:
        link = self.mesh.link(a, b, LinkOptions(keepalive=keepalive), LinkOptions(keepalive=keepalive))
        delay(link, seconds)
        return link

    def go(self, seconds: float) -> None:
        """
        Run the clock ``seconds`` on, one due call after the other, each at
        its own time (so that round trips are timed exactly).
        """
        clock = self.mesh.clock
        end = clock.seconds() + seconds
        while True:
            due = min((call.getTime() for call in clock.getDelayedCalls()), default=end + 1)
            if due > end:
                break
            clock.rightNow = max(clock.rightNow, due)
            clock.advance(0)
        clock.rightNow = end

    def own(self, kernel: Kernel) -> Dict[str, int]:
        return dict(kernel.network.router.own().links)

    def triangle(self, slow: float, fast: float) -> Tuple[Dict[str, Kernel], MemoryLink]:
        """
        a-b direct taking ``slow`` each way; a-c and c-b taking ``fast``.
        """
        k = self.kernels("abc")
        direct = self.link(k["a"], k["b"], slow)
        self.link(k["a"], k["c"], fast)
        self.link(k["c"], k["b"], fast)
        self.go(0.5)
        return k, direct

    def test_fast_two_hops_beat_a_slow_direct_link(self):
        """When the direct link a-b is slow and a-c-b is fast, then after measuring, a routes to b through c."""
        k, _ = self.triangle(slow=0.05, fast=0.001)
        self.assertEqual(k["a"].network.router.next_hop("b"), "b")  # nothing measured yet: fewest hops
        self.go(FIRST_PING + 1)
        self.assertEqual(self.own(k["a"]), {"b": 101, "c": 3})
        self.assertEqual(self.own(k["b"]), {"a": 101, "c": 3})
        self.assertEqual(k["a"].network.router.next_hop("b"), "c")
        self.assertEqual(k["b"].network.router.next_hop("a"), "c")
        self.assertEqual(k["a"].network.router.distances()["b"], 6)
        log: List[Any] = []
        k["b"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("s"),
                                    "hit": lambda e: log.append(e.args)})
        k["a"].post("poe://b/s/hit", 1)
        self.go(0.1)
        self.assertEqual(log, [(1,)])

    def test_route_returns_when_the_link_speeds_up(self):
        """When the slow direct link becomes fast, then over a few keepalive rounds its cost falls and a routes direct again."""
        k, direct = self.triangle(slow=0.05, fast=0.001)
        self.go(FIRST_PING + 1)
        self.assertEqual(k["a"].network.router.next_hop("b"), "c")
        delay(direct, 0.0)
        self.go(60)
        self.assertLessEqual(self.own(k["a"])["b"], 2)
        self.assertEqual(k["a"].network.router.next_hop("b"), "b")

    def test_jitter_around_a_boundary_does_not_move_the_route(self):
        """When the direct link's round trip jitters across a quantum boundary near the other path's cost, then no advert and no route changes."""
        k, direct = self.triangle(slow=0.001, fast=0.0)
        rng = random.Random(9)
        floods: List[list] = []
        for kernel in k.values():
            original = kernel.network.flooding.flood
            kernel.network.flooding.flood = lambda lsa, source=None, original=original: (
                floods.append([LSA, lsa.origin, lsa.seq]), original(lsa, source))[1]
        seen = set()

        def jitter_round() -> None:
            delay(direct, rng.uniform(0.0005, 0.0015), rng.uniform(0.0005, 0.0015))
            self.go(1.0)
            seen.add(quantise(k["a"].network.costs.round_trip(direct.client)))

        for _ in range(50):  # warm up: the smoothed value settles
            jitter_round()
        before = (self.own(k["a"]), self.own(k["b"]), k["a"].network.router.next_hop("b"),
                  k["b"].network.router.next_hop("a"))
        floods.clear()
        seen.clear()
        changes = k["a"].network.costs.changes + k["b"].network.costs.changes
        for _ in range(400):
            jitter_round()
            self.assertEqual((self.own(k["a"]), self.own(k["b"]), k["a"].network.router.next_hop("b"),
                              k["b"].network.router.next_hop("a")), before)
        self.assertEqual(seen, {2, 3})  # the measurement does cross the boundary...
        self.assertEqual(floods, [])  # ...but no advert goes out
        self.assertEqual(k["a"].network.costs.changes + k["b"].network.costs.changes, changes)

    def test_parallel_links_best_one_counts_and_carries(self):
        """When a neighbour has a slow and a fast link, then the fast one's cost is advertised and it carries the traffic; when it drops, the slow one's counts."""
        k = self.kernels("ab")
        slow = self.link(k["a"], k["b"], 0.02)
        self.go(0.5)
        fast = self.link(k["b"], k["a"], 0.002)
        self.go(FIRST_PING + 0.5)
        self.assertEqual(self.own(k["a"]), {"b": 5})
        self.assertIs(k["a"].network.link_table.to("b"), fast.server)
        self.assertIs(k["b"].network.link_table.to("a"), fast.client)
        fast.close()
        self.go(0.1)
        self.assertEqual(self.own(k["a"]), {"b": 41})
        self.assertIs(k["a"].network.link_table.to("b"), slow.client)

    def test_measuring_off_keeps_cost_one(self):
        """When both kernels turn measuring off, then every link costs 1 and routes count hops."""
        k = self.kernels("abc")
        for kernel in k.values():
            kernel.network.costs.enabled = False
        self.link(k["a"], k["b"], 0.05)
        self.link(k["a"], k["c"])
        self.link(k["c"], k["b"])
        self.go(FIRST_PING + 1)
        self.assertEqual(self.own(k["a"]), {"b": 1, "c": 1})
        self.assertEqual(k["a"].network.router.next_hop("b"), "b")

    def test_turning_off_and_on(self):
        """When measuring is turned off with costs advertised, then they drop to 1 at once; turned on, they come back."""
        k, _ = self.triangle(slow=0.05, fast=0.001)
        self.go(FIRST_PING + 1)
        for kernel in (k["a"], k["b"]):
            kernel.network.costs.enabled = False
        self.go(0.2)
        self.assertEqual(self.own(k["a"]), {"b": 1, "c": 1})
        self.assertEqual(k["a"].network.router.next_hop("b"), "b")
        for kernel in (k["a"], k["b"]):
            kernel.network.costs.enabled = True
        self.go(0.2)
        self.assertEqual(self.own(k["a"]), {"b": 101, "c": 3})
        self.assertEqual(k["a"].network.router.next_hop("b"), "c")

    def test_one_end_measuring_is_enough(self):
        """When only b measures, then the edge still costs what b measured (the larger end's cost counts)."""
        k, _ = self.triangle(slow=0.05, fast=0.001)
        k["a"].network.costs.enabled = False
        self.go(FIRST_PING + 1)
        self.assertEqual(self.own(k["a"]), {"b": 1, "c": 1})
        self.assertEqual(self.own(k["b"])["a"], 101)
        self.assertEqual(k["a"].network.router.next_hop("b"), "c")

    def test_reconnect_starts_at_one(self):
        """When the last link to a neighbour drops and a new one comes up, then its cost starts at 1 again."""
        k = self.kernels("ab")
        first = self.link(k["a"], k["b"], 0.05)
        self.go(FIRST_PING + 1)
        self.assertEqual(self.own(k["a"]), {"b": 101})
        first.close()
        self.go(0.1)
        self.assertEqual(self.own(k["a"]), {})
        self.link(k["a"], k["b"])
        self.go(0.1)
        self.assertEqual(self.own(k["a"]), {"b": 1})


# -- over real TCP ------------------------------------------------------------------------


class _ProxyEnd(Protocol):
    """
    One side of a proxied connection: what it reads goes out of the other
    side ``delay`` seconds later.
    """

    transport: Any

    def __init__(self, proxy: "DelayProxy") -> None:
        self.proxy = proxy
        self.other: Optional["_ProxyEnd"] = None
        self.waiting: List[bytes] = []
        self.gone: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.proxy.ends.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.proxy.later(self.other_write, data)

    def other_write(self, data: bytes) -> None:
        if self.other is None:
            self.waiting.append(data)
        else:
            self.other.transport.write(data)

    def joined(self, other: "_ProxyEnd") -> None:
        self.other, other.other = other, self
        for data in self.waiting:
            other.transport.write(data)
        self.waiting = []

    def connectionLost(self, reason: Any = None) -> None:
        self.gone.callback(None)
        self.proxy.later(self.close_other)

    def close_other(self) -> None:
        if self.other is not None:
            self.other.transport.loseConnection()


class _ProxyServer(_ProxyEnd):
    def connectionMade(self) -> None:
        super().connectionMade()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.proxy.target)
        connectProtocol(endpoint, _ProxyEnd(self.proxy)).addCallback(self.joined)


class DelayProxy:
    """
    A loopback TCP relay that holds the bytes of each direction for
    ``delay`` seconds.
    """

    def __init__(self, target: int, delay: float) -> None:
        self.target = target
        self.delay = delay
        self.ends: List[_ProxyEnd] = []
        self.calls: List[Any] = []
        self.stopped = False
        self.port = cast(Any, reactor).listenTCP(0, ServerFactory.forProtocol(lambda: _ProxyServer(self)),
                                               interface="127.0.0.1")

    def later(self, f: Any, *args: Any) -> None:
        if not self.stopped:
            self.calls = [call for call in self.calls if call.active()]
            self.calls.append(reactor.callLater(self.delay, f, *args))

    @inlineCallbacks
    def stop(self) -> Any:
        self.stopped = True
        yield self.port.stopListening()
        for call in self.calls:
            if call.active():
                call.cancel()
        for end in self.ends:
            end.transport.abortConnection()
        yield DeferredList([end.gone for end in self.ends])


class TCPCostTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_route_moves_off_a_delaying_proxy(self):
        """When a-b runs through a proxy holding bytes 200 ms each way and a-c-b is direct loopback, then a routes to b through c."""
        proxies: List[DelayProxy] = []
        self.addCleanup(lambda: proxies[0].stop() if proxies else None)  # after the kernels' shutdown
        kernels = {name: Kernel(f"tc-{name}", reactor=reactor) for name in "abc"}
        for kernel in kernels.values():
            self.addCleanup(kernel.shutdown)
        ports = {}
        for name in "bc":
            port = yield kernels[name].listen("tcp:0:interface=127.0.0.1").whenListening()
            ports[name] = port.getHost().port
        proxy = DelayProxy(ports["b"], 0.2)
        proxies.append(proxy)
        a = kernels["a"]
        yield a.connect(f"tcp:host=127.0.0.1:port={cast(Any, proxy.port.getHost()).port}").whenConnected()
        yield a.connect(f"tcp:host=127.0.0.1:port={ports['c']}").whenConnected()
        yield kernels["c"].connect(f"tcp:host=127.0.0.1:port={ports['b']}").whenConnected()
        yield wait_for(lambda: a.network.router.next_hop("tc-b") == "tc-c"
                       and dict(a.network.router.own().links).get("tc-b", 0) >= 400, timeout=30)
        self.assertIn("tc-b", {link.peer.name for link in a.network.links()})  # the slow link is up
        self.assertLess(a.network.router.distances()["tc-b"], 400)
