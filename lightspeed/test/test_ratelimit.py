# -*- test-case-name: lightspeed.test.test_ratelimit -*-
"""
The token bucket, and the per-link message rate limit that pauses reading
from a flooding link (back-pressure: nothing is lost) while the others keep
delivering.
"""

from __future__ import annotations

from typing import Any, Dict, List, cast

from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from lightspeed.ratelimit import TokenBucket
from lightspeed.testing import MemoryMesh
from lightspeed.wire.protocol import LinkOptions
from lightspeed.wire.throttle import MESSAGE_BURST, MESSAGE_RATE


class BucketTests(SynchronousTestCase):
    def test_try_take(self):
        """When tokens are taken one by one, then the burst is available at once and refills at the rate."""
        bucket = TokenBucket(rate=2, burst=3, now=0.0)
        self.assertEqual([bucket.try_take(0.0) for _ in range(4)], [True, True, True, False])
        self.assertFalse(bucket.try_take(0.4))
        self.assertTrue(bucket.try_take(0.5))  # 0.5 s x 2/s = one token
        self.assertEqual([bucket.try_take(100.0) for _ in range(4)], [True, True, True, False])  # capped at 3

    def test_zero_rate(self):
        """When the rate is 0 (an advert rate may be set so), then the burst is taken and then try_take says no, never raising."""
        bucket = TokenBucket(rate=0, burst=1, now=0.0)
        self.assertEqual([bucket.try_take(now) for now in (0.0, 1.0, 2.0)], [True, False, False])
        self.assertEqual(bucket.take(3.0, 1), float("inf"))

    def test_take_on_credit(self):
        """When more is taken than held, then the bucket is in debt and says how long until it is paid back."""
        bucket = TokenBucket(rate=100, burst=50, now=10.0)
        self.assertEqual(bucket.take(10.0, 30), 0.0)
        self.assertEqual(bucket.take(10.0, 120), 1.0)  # 100 in debt at 100/s
        self.assertEqual(bucket.tokens, -100)
        self.assertEqual(bucket.take(10.5, 0), 0.5)
        self.assertEqual(bucket.take(11.0, 0), 0.0)
        self.assertEqual(bucket.take(9.0, 0), 0.0)  # time going backwards adds nothing

    def test_defaults(self):
        """When no rate is given, then a link allows 200,000 messages a second with a burst of 200,000."""
        options = LinkOptions()
        self.assertEqual((options.message_rate, options.message_burst), (MESSAGE_RATE, MESSAGE_BURST))
        self.assertEqual((MESSAGE_RATE, MESSAGE_BURST), (200_000, 200_000))


class FloodTests(SynchronousTestCase):
    """
    Kernel a floods b; c, also linked to b, sends a little.  b's links allow
    1000 messages a second, burst 1000.
    """

    def setUp(self):
        self.logged: List[dict] = []
        observer = cast(ILogObserver, self.logged.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.mesh = mesh = MemoryMesh()
        self.a, self.b, self.c = mesh.kernel("fa"), mesh.kernel("fb"), mesh.kernel("fc")
        limited = LinkOptions(keepalive=0, message_rate=1000, message_burst=1000)
        self.ab = mesh.link(self.a, self.b, b_options=limited)
        self.cb = mesh.link(self.c, self.b, b_options=limited)
        mesh.settle()
        self.got: Dict[str, List[Any]] = {"fa": [], "fc": []}
        self.b.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("s"),
                                    "hit": lambda e: self.got[e.sender.remote_kernel].append(e.arg0)})
        self.undeliverable: List[Any] = []
        self.a.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("src"),
                                    "_undeliverable": lambda e: self.undeliverable.append(e.args)})

    def flood(self, count: int) -> None:
        """
        a posts ``count`` messages, 250 a turn (each turn's go out in one write, read at once by b).
        """
        for start in range(0, count, 250):
            for i in range(start, start + 250):
                self.a.post("poe://fb/s/hit", i)
            self.mesh.settle()

    def test_flood_paused_and_resumed(self):
        """When a sends 5000 messages at once, then b stops reading a's link, c still delivers, and all of a's arrive in order over about 4 s."""
        flooder, transport = self.ab.server, cast(Any, self.ab.server.transport)
        self.flood(5000)
        self.assertEqual(transport.producerState, "paused")
        first = len(self.got["fa"])
        self.assertEqual(first, 1000)  # four reads of 250: the adverts at link-up took a few tokens, the 4th passed the burst
        for i in range(3):
            self.c.post("poe://fb/s/hit", i)
            self.mesh.advance(0.1)
            self.assertEqual(self.got["fc"], list(range(i + 1)))  # the honest link is not held up
        self.assertEqual(cast(Any, self.cb.server.throttle).paused, 0)
        for _ in range(100):
            if len(self.got["fa"]) == 5000:
                break
            self.mesh.advance(0.1)
        self.assertEqual(self.got["fa"], list(range(5000)))  # nothing lost, in order
        # They came in batches (one ROUTED per turn), each counted as its payloads.
        self.assertLess(self.ab.forward.counters.delivered, 100)
        self.assertGreaterEqual(self.mesh.clock.seconds(), 3.5)  # (5000 - 1000 burst) at 1000/s
        self.assertGreater(cast(Any, flooder.throttle).paused, 1)
        self.mesh.advance(10)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(self.undeliverable, [])
        self.assertEqual([e for e in self.b.network.links() if e.closed_reason is not None], [])
        warnings = [e for e in self.logged if "messages/s" in e.get("log_format", "")]
        self.assertEqual([(e["peer"], e["rate"]) for e in warnings], [("fa", 1000)])  # once per link

    def test_closing_while_paused(self):
        """When a paused link closes, then no resume is left scheduled and nothing raises."""
        self.flood(3000)
        flooder = self.ab.server
        throttle = flooder.throttle
        assert throttle is not None
        self.assertFalse(throttle.reading)
        flooder.close("shutdown", "test")
        self.mesh.advance(10)
        self.assertTrue(throttle.reading)
        self.assertEqual([c for c in self.mesh.clock.getDelayedCalls() if "_resume" in repr(c)], [])
