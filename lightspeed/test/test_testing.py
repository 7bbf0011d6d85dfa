# -*- test-case-name: lightspeed.test.test_testing -*-
"""
The test kit's broken links (:obj:`lightspeed.testing`): delay, jitter,
drop, reorder, cut and restore on a :obj:`MemoryMesh`, exactly, on a Clock.
"""

from __future__ import annotations

import gc
import random
from typing import Any, List, Tuple, cast

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from lightspeed.errors import LinkClosed
from lightspeed.message import ROUTED
from lightspeed.memorylinks import _FrameScanner
from lightspeed.testing import LinkCounters, LinkDirection, MemoryMesh, MemoryTransport
from lightspeed.wire.codec import loads
from lightspeed.wire.framing import Framer, frame
from lightspeed.wire.protocol import LinkOptions
from lightspeed.test.optional import given, settings, st

HIT = "poe://b/sink/hit"
BACK = "poe://a/sink/hit"


class Logged:
    """
    Every warning or worse logged while a test runs.
    """

    def __init__(self, case: SynchronousTestCase) -> None:
        self.events: List[dict] = []
        observer = cast(ILogObserver, self.observe)
        globalLogPublisher.addObserver(observer)
        case.addCleanup(globalLogPublisher.removeObserver, observer)

    def observe(self, event: dict) -> None:
        if event.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical):
            self.events.append(event)


class Frames:
    """
    The frames one direction of a plain link carries, decoded, each as
    ``(clock time, message)``: :obj:`written` as its sending end wrote them
    (the dropped ones too) and :obj:`delivered` as its receiving end got
    them.  The delivery layer puts messages back in order and drops
    duplicates, so what a link does to frames shows here, not in a sink.
    """

    def __init__(self, direction: LinkDirection) -> None:
        self.written: List[Tuple[float, list]] = []
        self.delivered: List[Tuple[float, list]] = []
        clock, carry = direction.clock, direction.carry
        protocol = direction.receiver.protocol
        received = protocol.dataReceived
        out, into = Framer(), Framer()

        def carrying(data: bytes) -> None:
            self.written.extend((clock.seconds(), loads(body)) for body in out.feed(data))
            carry(data)

        def receiving(data: bytes) -> None:
            self.delivered.extend((clock.seconds(), loads(body)) for body in into.feed(data))
            received(data)

        setattr(direction, "carry", carrying)
        protocol.dataReceived = receiving

    @staticmethod
    def posts(frames: List[Tuple[float, list]]) -> List[Tuple[float, int, Any]]:
        """
        The ROUTED frames of ``frames`` that carry a post (acks alone left
        out), each as ``(time, sequence number, the post's argument)``.
        """
        return [(when, message[3][0][2], loads(message[6])[3][0]) for when, message in frames
                if message[0] == ROUTED and message[3][0][2]]

    @property
    def posts_written(self) -> List[Tuple[float, int, Any]]:
        return self.posts(self.written)

    @property
    def posts_delivered(self) -> List[Tuple[float, int, Any]]:
        return self.posts(self.delivered)


class MeshCase(SynchronousTestCase):
    """
    Kernels ``a`` and ``b``, each with a session "sink" recording the
    argument of each "hit", joined by one link that is up.
    """

    seed: Any = 0

    def setUp(self) -> None:
        self.mesh, self.a, self.b, self.link, self.got = self.build(self.seed)
        self.logged = Logged(self)

    def build(self, seed: Any, a_options: Any = None, b_options: Any = None) -> Tuple[Any, ...]:
        mesh = MemoryMesh(seed=seed)
        a, b = mesh.kernel("a"), mesh.kernel("b")
        got: dict = {"a": [], "b": []}
        self.times: List[float] = []  # when b's sink got each hit
        for kernel in (a, b):
            kernel.spawn(inline_states={
                "_start": lambda e: e.kernel.alias_set("sink"),
                "hit": lambda e: (got[e.kernel.name].append(e.arg0),
                                  self.times.append(mesh.clock.seconds()) if e.kernel is b else None),
            })
        link = mesh.link(a, b, a_options, b_options)
        mesh.settle()
        for kernel in (a, b):
            # One post per frame, so that the faults below hit posts one by one.
            kernel.network.delivery.batching = False
        return mesh, a, b, link, got

    def post(self, *values: Any, kernel: Any = None) -> None:
        """
        Post each value to b's sink from a (or to a's from b), all in one
        turn, and settle: the frames are on their way, at the current time.
        """
        for value in values:
            if kernel is None or kernel is self.a:
                self.a.post(HIT, value)
            else:
                self.b.post(BACK, value)
        self.mesh.settle()

    def run_for(self, seconds: float, mesh: Any = None) -> None:
        """
        Move the clock ``seconds`` forward, stopping at each timer on the
        way, so that each runs at its own time (``mesh.advance(60)`` would
        run every timer due by then at 60 s: a retransmission due at 1 s
        and the next one would both run late).
        """
        mesh = mesh or self.mesh
        clock = mesh.clock
        end = clock.seconds() + seconds
        while clock.seconds() < end:
            due = min([call.getTime() for call in clock.getDelayedCalls()], default=end)
            mesh.advance(max(0.0, min(due, end) - clock.seconds()))


class NoFaultTests(MeshCase):
    def test_counters_of_a_clean_link(self):
        """When a link comes up and carries two posts, then each is one frame, sent and delivered on the same turn."""
        up = self.link.forward.counters
        self.assertEqual(up, LinkCounters(sent=up.sent, delivered=up.sent))
        self.assertGreaterEqual(up.sent, 2)  # HELLO, READY and the adverts
        self.post(1, 2)
        self.mesh.settle()
        self.assertEqual(self.got["b"], [1, 2])
        self.assertEqual(self.link.forward.counters - up, LinkCounters(sent=2, delivered=2))
        self.assertEqual(self.link.forward.in_flight, 0)
        self.assertEqual(self.link.counters, self.link.forward.counters + self.link.backward.counters)

    def test_frames_leave_no_garbage(self):
        """When frames are carried, delayed or not, then nothing of them is left for the garbage collector: a unit and its clock call do not hold each other."""
        if gc.isenabled():
            self.addCleanup(gc.enable)  # cleanups run last first: the debug flag, the garbage, then this
        gc.disable()
        gc.collect()
        self.addCleanup(gc.garbage.clear)
        self.addCleanup(gc.set_debug, gc.get_debug())
        gc.set_debug(gc.DEBUG_SAVEALL)
        self.post(1, 2)
        self.link.delay(0.5)
        self.post(3)
        self.mesh.advance(1)
        self.assertEqual(self.got["b"], [1, 2, 3])
        gc.collect()
        self.assertEqual([o for o in gc.garbage if type(o).__module__ == "lightspeed.memorylinks"], [])

    def test_advance_settles_first(self):
        """When a post is made and the mesh advanced, then it arrives before the clock moves, and the clock moves by exactly that much."""
        start = self.mesh.clock.seconds()
        self.a.post(HIT, 1)
        self.mesh.advance(10)
        self.assertEqual(self.got["b"], [1])
        self.assertEqual(self.times, [start])
        self.assertEqual(self.mesh.clock.seconds(), start + 10)

    def test_counters_arithmetic(self):
        """When counters are added and subtracted, then field by field."""
        one, two = LinkCounters(1, 2, 3, 4, 5, 6), LinkCounters(6, 5, 4, 3, 2, 1)
        self.assertEqual(one + two, LinkCounters(7, 7, 7, 7, 7, 7))
        self.assertEqual(one - one, LinkCounters())

    def test_towards(self):
        """When a direction is asked for by kernel or name, then it is the one carrying frames to it."""
        self.assertIs(self.link.towards(self.b), self.link.forward)
        self.assertIs(self.link.towards("a"), self.link.backward)
        self.assertEqual(self.link.directions, (self.link.forward, self.link.backward))
        self.assertRaises(ValueError, self.link.towards, "c")

    def test_bad_settings(self):
        """When a fault is set out of range, then ValueError and nothing changes."""
        for call in (lambda: self.link.drop(1.5), lambda: self.link.reorder(-0.1),
                     lambda: self.link.delay(-1), lambda: self.link.delay(1, jitter=-1),
                     lambda: self.link.reorder(0.5, window=-1)):
            self.assertRaises(ValueError, call)
        self.post(1)
        self.mesh.settle()
        self.assertEqual(self.got["b"], [1])


class DropTests(MeshCase):
    def test_drop_all(self):
        """When a link that is up drops every frame, then a post never arrives: its sender sends it again at 1, 3, 7, 15 and 31 s (the timer doubling from 1 s), every frame counts as dropped, and nothing is logged."""
        frames = Frames(self.link.forward)
        before = self.link.forward.counters
        self.link.drop(1.0)
        self.post(1)
        self.run_for(60)
        self.assertEqual(self.got["b"], [])
        self.assertEqual(frames.posts_written, [(when, 1, 1) for when in (0.0, 1.0, 3.0, 7.0, 15.0, 31.0)])
        self.assertEqual(self.a.network.delivery.retransmitted, 5)
        self.assertEqual(frames.delivered, [])
        sent = len(frames.written)  # the post's six copies and a's first PING
        self.assertEqual(self.link.forward.counters - before, LinkCounters(sent=sent, dropped=sent))
        self.assertEqual(self.logged.events, [])
        self.assertIsNotNone(self.link.server.peer)  # nobody noticed

    def test_drop_one_way(self):
        """When only the direction towards b drops, then b still reaches a."""
        self.link.towards(self.b).drop(1.0)
        self.post(1)
        self.post(2, kernel=self.b)
        self.mesh.settle()
        self.assertEqual(self.got, {"a": [2], "b": []})

    def test_drop_then_stop(self):
        """When drop is set back to 0 after a post was dropped, then the next post arrives but waits for the first, which the sender's retransmission brings 1 s later: b's sink gets both, in order, once."""
        frames = Frames(self.link.forward)
        self.link.drop(1.0)
        self.post(1)
        self.link.drop(0)
        self.post(2)
        self.assertEqual(frames.posts_delivered, [(0.0, 2, 2)])
        self.run_for(0.99)
        self.assertEqual(self.got["b"], [])  # b holds 2 until 1 comes
        self.run_for(0.01)
        self.assertEqual(self.got["b"], [1, 2])
        self.assertEqual(frames.posts_delivered, [(0.0, 2, 2), (1.0, 1, 1), (1.0, 2, 2)])
        self.run_for(60)
        self.assertEqual(self.got["b"], [1, 2])
        delivery = self.a.network.delivery
        self.assertEqual((delivery.retransmitted, self.b.network.delivery.receiving.duplicates), (2, 1))
        self.assertEqual(delivery.pending("b"), 0)

    def test_drop_by_seed(self):
        """When half the frames drop, then which ones depends on the seed alone, every frame is counted once, and the retransmissions (at 1, 3, 7, 15 and 31 s) bring b's sink every post, in order, once."""
        def run(seed):
            mesh, a, b, link, got = self.build(seed)
            frames = Frames(link.forward)
            link.drop(0.5)
            before = link.forward.counters
            for value in range(20):
                a.post(HIT, value)
            mesh.settle()
            return mesh, got, [value for _, _, value in frames.posts_delivered], link.forward.counters - before

        mesh, got, first, counters = run(7)
        self.assertEqual(run(7)[2:], (first, counters))
        self.assertEqual(first, [2, 4, 7, 13, 16, 17, 18])
        self.assertEqual(counters, LinkCounters(sent=20, delivered=7, dropped=13))
        self.assertEqual(got["b"], [])  # 0 was dropped: b holds what came after it
        for wait, count in zip((1, 2, 4, 8, 16), (1, 6, 9, 9, 20)):  # the acks drop too
            self.run_for(wait, mesh)
            self.assertEqual(got["b"], list(range(count)))
        self.assertNotEqual(run(8)[2], first)

    def test_handshake_spared(self):
        """When a link drops every frame from the start, then the handshake still completes (HELLO and READY are spared)."""
        mesh = MemoryMesh()
        a, b = mesh.kernel("a"), mesh.kernel("b")
        link = mesh.link(a, b)
        link.drop(1.0)
        mesh.settle()
        self.assertIs(self.successResultOf(link.client.when_ready()), link.client)
        self.assertIs(self.successResultOf(link.server.when_ready()), link.server)
        forward = link.forward.counters
        self.assertEqual((forward.delivered, forward.dropped), (2, forward.sent - 2))

    def test_handshake_dropped_when_asked(self):
        """When the handshake may drop too, then neither end comes up and both time out."""
        mesh = MemoryMesh()
        a, b = mesh.kernel("a"), mesh.kernel("b")
        link = mesh.link(a, b)
        link.drop(1.0, handshake=True)
        ready = [link.client.when_ready(), link.server.when_ready()]
        mesh.advance(9.9)
        self.assertNoResult(ready[0])
        mesh.advance(0.1)  # the handshake timeout
        for d in ready:
            self.assertEqual(self.failureResultOf(d, LinkClosed).value.code, "timeout")
        self.assertTrue(link.closed)


class DelayTests(MeshCase):
    def test_delay(self):
        """When a link is 0.25 s long, then a post arrives only once the clock moved 0.25 s, counted as delayed, and b's ack (10 ms later) reaches a 0.25 s after that, before a would send the post again."""
        before, back = self.link.forward.counters, self.link.backward.counters
        self.link.delay(0.25)
        self.post(1)
        self.run_for(0.24)
        self.assertEqual(self.got["b"], [])
        self.assertEqual(self.link.forward.in_flight, 1)
        self.run_for(0.01)
        self.assertEqual(self.got["b"], [1])
        self.assertEqual(self.link.forward.counters - before, LinkCounters(sent=1, delivered=1, delayed=1))
        self.run_for(0.25)
        self.assertEqual(self.link.backward.in_flight, 1)
        self.assertEqual(self.a.network.delivery.pending("b"), 1)
        self.run_for(0.01)
        self.assertEqual(self.link.backward.counters - back, LinkCounters(sent=1, delivered=1, delayed=1))
        self.assertEqual(self.a.network.delivery.pending("b"), 0)
        self.run_for(5)
        self.assertEqual(self.got["b"], [1])
        self.assertEqual(self.a.network.delivery.retransmitted, 0)

    def test_delay_longer_than_the_retransmit_timer(self):
        """When a link is 5 s long, then a post arrives once, at 5 s; the copies its sender sent at 1, 3 and 7 s, before b's ack could come back at 10.01 s, arrive at 6, 8 and 12 s and b drops them as duplicates."""
        frames = Frames(self.link.forward)
        self.link.delay(5)
        self.post(1)
        self.run_for(4.9)
        self.assertEqual(self.got["b"], [])
        self.run_for(0.1)
        self.assertEqual((self.got["b"], self.times), ([1], [5.0]))
        self.run_for(30)
        self.assertEqual(frames.posts_written, [(when, 1, 1) for when in (0.0, 1.0, 3.0, 7.0)])
        self.assertEqual(frames.posts_delivered, [(when, 1, 1) for when in (5.0, 6.0, 8.0, 12.0)])
        self.assertEqual(self.got["b"], [1])
        self.assertEqual(self.b.network.delivery.receiving.duplicates, 3)
        self.assertEqual(self.a.network.delivery.pending("b"), 0)

    def test_jitter_keeps_order(self):
        """When frames get random extra delay, then every frame (retransmissions too) arrives in the order written, between the delay and the delay plus the jitter after it was written, and b's sink gets each post once."""
        frames = Frames(self.link.forward)
        self.link.delay(1, jitter=5)
        before = self.link.forward.counters
        for value in range(30):
            self.post(value)
            self.run_for(0.1)
        self.run_for(20)
        self.assertEqual([message for _, message in frames.delivered], [message for _, message in frames.written])
        latencies = [round(got - sent, 9) for (sent, _), (got, _) in zip(frames.written, frames.delivered)]
        self.assertTrue(all(1 <= latency <= 6 for latency in latencies), latencies)
        self.assertEqual(self.got["b"], list(range(30)))
        self.assertEqual(self.b.network.delivery.receiving.duplicates, len(frames.posts_delivered) - 30)
        self.assertGreater(self.b.network.delivery.receiving.duplicates, 0)  # the round trip is longer than 1 s
        sent = len(frames.written)
        self.assertEqual(self.link.forward.counters - before, LinkCounters(sent=sent, delivered=sent, delayed=sent))

    def test_jitter_per_frame(self):
        """When frames get random extra delay, then each its own, between the delay and the delay plus the jitter."""
        self.link.delay(0.5, jitter=0.4)
        sent = []
        for value in range(10):
            sent.append(self.mesh.clock.seconds())
            self.post(value)
            for step in range(100):
                self.mesh.advance(0.01)
        self.assertEqual(self.got["b"], list(range(10)))
        latencies = [round(arrived - left, 2) for arrived, left in zip(self.times, sent)]
        self.assertTrue(all(0.5 < latency <= 0.91 for latency in latencies), latencies)
        self.assertGreater(len(set(latencies)), 5)

    def test_held_back_behind_a_slow_frame(self):
        """When one frame of a write draws a long extra delay, then those behind it wait for it (no overtaking)."""
        frames = Frames(self.link.forward)
        self.link.delay(0, jitter=1)
        self.post(*range(10))
        for step in range(20):
            self.mesh.advance(0.05)
        self.assertEqual(self.got["b"], list(range(10)))
        # The sink would get them in order anyway (the delivery layer holds early ones): look at the frames.
        self.assertEqual([value for _, _, value in frames.posts_delivered], list(range(10)))
        times = [when for when, _, _ in frames.posts_delivered]
        self.assertEqual(times, sorted(times))

    def test_delay_then_none(self):
        """When the delay is taken away, then a later frame still waits for the earlier, slower one."""
        frames = Frames(self.link.forward)
        self.link.delay(5)
        self.post(1)
        self.mesh.settle()
        self.link.delay(0)
        self.post(2)
        self.mesh.advance(1)
        self.assertEqual(self.got["b"], [])
        self.assertEqual(frames.delivered, [])  # not even 2, which b would hold (the delivery layer)
        self.mesh.advance(4)
        self.assertEqual(self.got["b"], [1, 2])
        self.assertEqual(frames.delivered, [(5.0, message) for _, message in frames.written])

    def test_close_waits_for_the_delay(self):
        """When an end closes a delayed link with a BYE, then the peer reads the BYE (and its reason) after the delay."""
        self.link.delay(2)
        self.link.client.close("going", "for a walk")
        self.mesh.advance(1.9)
        self.assertTrue(self.link.forward.sender.closed)
        self.assertFalse(self.link.forward.receiver.closed)
        self.assertIsNone(self.link.server.closed_reason)
        self.mesh.advance(0.1)
        self.assertEqual(self.link.server.closed_reason.code, "going")
        self.assertTrue(self.link.closed)

    def test_failure_loses_what_is_in_flight(self):
        """When a delayed link fails, then both ends see it at once and what was on its way is lost."""
        self.link.delay(5)
        before = self.link.forward.counters
        self.post(1, 2)
        self.mesh.settle()
        self.link.close()
        self.mesh.settle()
        self.assertTrue(self.link.closed)
        self.assertEqual(self.link.forward.counters - before, LinkCounters(sent=2, lost=2))
        self.mesh.advance(10)
        self.assertEqual(self.got["b"], [])
        self.assertEqual(self.link.forward.counters - before, LinkCounters(sent=2, lost=2))


class ReorderTests(MeshCase):
    def test_swap_two(self):
        """When every frame may be held back, then the frames of two posts of one turn arrive swapped, one counted reordered, and b's sink still gets the posts in the order posted (b holds the early one)."""
        frames = Frames(self.link.forward)
        before = self.link.forward.counters
        self.link.reorder(1.0)
        self.post(1, 2)
        self.mesh.settle()
        self.assertEqual(frames.posts_delivered, [(0.0, 2, 2), (0.0, 1, 1)])
        self.assertEqual(self.link.forward.counters - before, LinkCounters(sent=2, delivered=2, reordered=1))
        self.assertEqual(self.got["b"], [1, 2])

    def test_pairs(self):
        """When five posts go in one turn, then their frames swap in pairs and the odd one goes alone; b's sink gets the posts in order."""
        frames = Frames(self.link.forward)
        self.link.reorder(1.0)
        self.post(1, 2, 3, 4, 5)
        self.mesh.settle()
        self.assertEqual([value for _, _, value in frames.posts_delivered], [2, 1, 4, 3, 5])
        self.assertEqual(self.link.forward.counters.reordered, 2)
        self.assertEqual(self.got["b"], [1, 2, 3, 4, 5])

    def test_by_seed(self):
        """When frames swap with probability 0.5, then their order depends on the seed alone, and b's sink gets the posts in order whatever it is."""
        def run(seed):
            mesh, a, b, link, got = self.build(seed)
            frames = Frames(link.forward)
            link.reorder(0.5)
            for value in range(10):
                a.post(HIT, value)
            mesh.settle()
            return [value for _, _, value in frames.posts_delivered], link.forward.counters.reordered, got["b"]

        self.assertEqual(run(3), run(3))
        self.assertEqual(run(3), ([1, 0, 2, 4, 3, 5, 6, 8, 7, 9], 3, list(range(10))))
        self.assertNotEqual(run(4)[0], run(3)[0])

    def test_window(self):
        """When a frame towards b may be held 0.5 s, then it waits for the next frame to overtake it, or goes alone after 0.5 s (a window past the 1 s retransmission timer would let the post's copy overtake it)."""
        frames = Frames(self.link.forward)
        self.link.towards(self.b).reorder(1.0, window=0.5)  # b's acks come back at once
        self.post(1)
        self.run_for(0.25)
        self.assertEqual((frames.delivered, self.got["b"]), ([], []))
        self.post(2)
        self.assertEqual(frames.posts_delivered, [(0.25, 2, 2), (0.25, 1, 1)])
        self.assertEqual(self.got["b"], [1, 2])
        self.post(3)
        self.run_for(0.375)
        self.assertEqual(self.got["b"], [1, 2])
        self.run_for(0.125)
        self.assertEqual(self.got["b"], [1, 2, 3])
        self.assertEqual(frames.posts_delivered[2:], [(0.75, 3, 3)])
        self.assertEqual(self.link.forward.counters.reordered, 1)
        self.run_for(5)
        self.assertEqual(self.a.network.delivery.retransmitted, 0)
        self.assertEqual(self.logged.events, [])

    def test_handshake_spared(self):
        """When a link reorders everything from the start, then it still comes up."""
        mesh = MemoryMesh()
        a, b = mesh.kernel("a"), mesh.kernel("b")
        link = mesh.link(a, b)
        link.reorder(1.0)
        mesh.settle()
        self.successResultOf(link.client.when_ready())
        self.successResultOf(link.server.when_ready())

    def test_handshake_reordered_when_asked(self):
        """When the handshake may be reordered too, then READY overtakes HELLO and the link is refused."""
        mesh = MemoryMesh()
        a, b = mesh.kernel("a"), mesh.kernel("b")
        link = mesh.link(a, b)
        link.towards(b).reorder(1.0, handshake=True, window=1)
        mesh.advance(1)
        self.assertEqual(self.failureResultOf(link.server.when_ready(), LinkClosed).value.code, "protocol")


class CutTests(MeshCase):
    def test_cut_and_restore(self):
        """When the cable is cut, then nothing arrives and nobody is told, while each end sends its posts again at 1, 3, 7, 15 and 31 s; when it is restored, every frame that waited arrives, in order, and each post reaches its sink once (b and a drop the 10 and 5 copies as duplicates)."""
        forward, backward = Frames(self.link.forward), Frames(self.link.backward)
        before = self.link.counters
        self.link.cut()
        self.assertTrue(self.link.forward.is_cut)
        self.post(1, 2)
        self.post(3, kernel=self.b)
        self.run_for(60)
        self.assertEqual(self.got, {"a": [], "b": []})
        self.assertIsNotNone(self.link.client.peer)
        self.assertFalse(self.link.closed)
        rounds = (0.0, 1.0, 3.0, 7.0, 15.0, 31.0)
        self.assertEqual(forward.posts_written, [(when, seq, seq) for when in rounds for seq in (1, 2)])
        self.assertEqual(backward.posts_written, [(when, 1, 3) for when in rounds])
        waited = len(forward.written) + len(backward.written)  # the posts and each end's first PING
        self.assertEqual(self.link.counters - before, LinkCounters(sent=waited))
        self.link.restore()
        self.mesh.settle()
        self.assertEqual(self.got, {"a": [3], "b": [1, 2]})
        self.assertEqual((self.b.network.delivery.receiving.duplicates, self.a.network.delivery.receiving.duplicates), (10, 5))
        for frames in (forward, backward):
            self.assertEqual([message for _, message in frames.delivered], [message for _, message in frames.written])
        after = self.link.counters - before  # what waited, and the answers to it
        self.assertEqual(after, LinkCounters(sent=after.sent, delivered=after.sent, delayed=waited))
        self.post(4)
        self.mesh.settle()
        self.assertEqual(self.got["b"], [1, 2, 4])
        self.assertEqual(self.logged.events, [])

    def test_cut_holds_what_is_in_flight(self):
        """When the cable is cut after a delayed frame left, then it waits too, and arrives at restore if its time has come."""
        self.link.delay(5)
        self.post(1)
        self.mesh.advance(1)
        self.link.cut()
        self.mesh.advance(10)
        self.assertEqual(self.got["b"], [])
        self.link.restore()
        self.mesh.settle()
        self.assertEqual(self.got["b"], [1])

    def test_one_way_cut(self):
        """When only the direction towards b is cut, then a still hears from b."""
        self.link.towards(self.b).cut()
        self.post(1)
        self.post(2, kernel=self.b)
        self.mesh.settle()
        self.assertEqual(self.got, {"a": [2], "b": []})

    def test_keepalive_notices(self):
        """When a cut link has keepalive, then each end times out on its own, and relink brings a new link up."""
        options = LinkOptions(keepalive=1)
        mesh, a, b, link, got = self.build(0, options, options)
        link.cut()
        for second in range(3):  # step: Clock.advance(3) would run each timer late, at 3 s
            mesh.advance(1)
        self.assertIsNone(link.client.closed_reason)
        mesh.advance(1)  # silent at 2, 3 and 4 s
        self.assertEqual(link.client.closed_reason.code, "timeout")
        self.assertEqual(link.server.closed_reason.code, "timeout")
        self.assertTrue(link.closed)
        again = mesh.relink(link)
        mesh.settle()
        self.assertEqual(mesh.links, [link, again])
        self.successResultOf(again.client.when_ready())
        a.post(HIT, "again")
        mesh.settle()
        self.assertEqual(got["b"], ["again"])
        for kernel in (a, b):
            kernel.shutdown()
        mesh.settle()

    def test_close_while_cut(self):
        """When one end closes while the cable is cut, then the other end hears of it only at restore."""
        self.link.cut()
        self.link.client.close("going", "now")
        self.mesh.advance(60)
        self.assertTrue(self.link.forward.sender.closed)
        self.assertIsNone(self.link.server.closed_reason)
        self.assertIsNotNone(self.link.server.peer)
        self.link.restore()
        self.mesh.settle()
        self.assertEqual(self.link.server.closed_reason.code, "going")
        self.assertTrue(self.link.closed)

    def test_failure_while_cut(self):
        """When a cut link fails, then both ends are told at once and what waited is lost."""
        self.link.cut()
        self.post(1)
        self.mesh.settle()
        self.link.close()
        self.mesh.settle()
        self.assertTrue(self.link.closed)
        self.assertEqual(self.link.forward.counters.lost, 1)
        self.assertEqual(self.link.forward.in_flight, 0)

    def test_clear(self):
        """When every fault is cleared, then the link carries everything at once again."""
        self.link.delay(5)
        self.link.drop(1.0)
        self.link.cut()
        self.link.clear()
        self.post(1)
        self.mesh.settle()
        self.assertEqual(self.got["b"], [1])
        self.assertFalse(self.link.forward.is_cut)

    def test_relink_after_close(self):
        """When a failed link is relinked, then the kernels talk again over the new one, with no faults."""
        self.link.drop(1.0)
        self.link.close()
        self.mesh.settle()
        again = self.mesh.relink(self.link)
        self.mesh.settle()
        self.post(1)
        self.mesh.settle()
        self.assertEqual(self.got["b"], [1])
        self.assertEqual(again.options, self.link.options)


class CompressedTests(MeshCase):
    def setUp(self) -> None:
        options = LinkOptions(keepalive=0, compression=True)
        self.mesh, self.a, self.b, self.link, self.got = self.build(0, options, options)
        self.logged = Logged(self)

    def test_frame_faults_refused(self):
        """When frames would drop or reorder on a compressed link, then ValueError: they are inside one zlib stream."""
        self.assertTrue(self.link.forward.compressed)
        self.assertRaises(ValueError, self.link.drop, 0.5)
        self.assertRaises(ValueError, self.link.reorder, 0.5)
        self.link.drop(0)

    def test_counted_and_delayed(self):
        """When a compressed link is delayed, then posts arrive late and its frames are still counted one by one: the three posts, then b's one ack, back before a would send them again."""
        up, back = self.link.forward.counters, self.link.backward.counters
        self.assertEqual(up, LinkCounters(sent=up.sent, delivered=up.sent))
        self.assertGreater(up.sent, 2)
        self.link.delay(0.25, jitter=0.125)  # a round trip under the 1 s retransmission timer
        self.post(1, 2, 3)
        self.run_for(0.24)
        self.assertEqual(self.got["b"], [])
        self.run_for(0.135)
        self.assertEqual(self.got["b"], [1, 2, 3])
        self.assertEqual(self.link.forward.counters - up, LinkCounters(sent=3, delivered=3, delayed=3))
        self.run_for(0.5)
        self.assertEqual(self.link.backward.counters - back, LinkCounters(sent=1, delivered=1, delayed=1))
        self.assertEqual(self.a.network.delivery.pending("b"), 0)
        self.run_for(5)
        self.assertEqual(self.a.network.delivery.retransmitted, 0)
        self.assertEqual(self.logged.events, [])

    def test_refused(self):
        """When a compressed link is refused, then the plain BYEs after the HELLOs are counted (one reaches an end already closed), and the link closes."""
        mesh = MemoryMesh()
        a, b = mesh.kernel("a"), mesh.kernel("b")
        link = mesh.link(a, b, LinkOptions(keepalive=0, compression=True),
                         LinkOptions(keepalive=0, compression=True, password="secret"))
        ready = link.client.when_ready()
        mesh.settle()
        self.assertEqual(self.failureResultOf(ready, LinkClosed).value.code, "auth")
        self.assertTrue(link.closed)
        self.assertEqual([d.counters.sent for d in link.directions], [2, 2])
        self.assertEqual(link.counters, LinkCounters(sent=4, delivered=3, lost=1))


class Recorder:
    """
    A protocol that only keeps what it reads.
    """

    conn = None

    def __init__(self) -> None:
        self.data: List[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.data.append(data)


def pipe(seed: int) -> Tuple[Clock, LinkDirection, Recorder]:
    """
    One direction between two bare transports, with a recorder at the end.
    """
    clock = Clock()
    sender, receiver = MemoryTransport(clock, None, None), MemoryTransport(clock, None, None)
    sender.other, receiver.other = receiver, sender
    sender.protocol, receiver.protocol = Recorder(), Recorder()
    sender.outgoing = LinkDirection(clock, random.Random(seed), sender, receiver)
    return clock, sender.outgoing, receiver.protocol


def chunked(data: bytes, cuts: List[int]) -> List[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[i:j] for i, j in zip(points, points[1:])]


class StreamTests(SynchronousTestCase):
    """
    Whatever the chunking, a direction splits the stream at frame boundaries.
    """

    bodies = st.lists(st.binary(max_size=40), min_size=1, max_size=12)

    @settings(max_examples=200, deadline=None)
    @given(bodies=bodies, cuts=st.lists(st.integers(min_value=0), max_size=30),
           seed=st.integers(0, 1000), switch=st.integers(0, 40), reorder=st.booleans())
    def test_frames_stay_whole(self, bodies, cuts, seed, switch, reorder):
        """When frames are written in any chunks, and dropped (and reordered) from any chunk on, then the reader gets whole frames, each once, and in order unless reordered."""
        clock, direction, recorder = pipe(seed)
        chunks = chunked(b"".join(frame(body) for body in bodies), cuts)
        for i, chunk in enumerate(chunks):
            if i == switch % (len(chunks) + 1):
                direction.drop(0.3, handshake=True)
                direction.reorder(0.5 if reorder else 0.0, handshake=True)
            direction.sender.write(chunk)
            clock.advance(0)
        clock.advance(0)
        got = Framer().feed(b"".join(recorder.data))
        counters = direction.counters
        self.assertEqual((counters.sent, counters.delivered), (len(bodies), len(got)))
        self.assertEqual(counters.delivered + counters.dropped, len(bodies))
        remaining = list(bodies)
        for body in got:  # each delivered frame was sent, once
            remaining.remove(body)
        if not reorder:  # and in order: got is a subsequence of bodies
            self.assertEqual(counters.reordered, 0)
            sent = iter(bodies)
            self.assertTrue(all(any(body == other for other in sent) for body in got))

    @settings(max_examples=100, deadline=None)
    @given(bodies=bodies, cuts=st.lists(st.integers(min_value=0), max_size=30))
    def test_no_fault_passes_bytes_as_written(self, bodies, cuts):
        """When no fault is set, then the reader gets the very chunks written, on the next turn."""
        clock, direction, recorder = pipe(0)
        chunks = [c for c in chunked(b"".join(frame(body) for body in bodies), cuts) if c]
        for chunk in chunks:
            direction.sender.write(chunk)
        self.assertEqual(recorder.data, [])
        clock.advance(0)
        self.assertEqual(recorder.data, chunks)
        self.assertEqual(direction.counters, LinkCounters(sent=len(bodies), delivered=len(bodies)))

    def test_scanner_whole_frames_and_pieces(self):
        """When the scanner is fed whole frames, a frame in pieces, and bytes that look like a whole frame but finish one, then each frame ends where it does."""
        scanner = _FrameScanner()
        one, two = frame(b"abc"), frame(b"de")
        self.assertEqual(scanner.feed(one), [len(one)])
        self.assertEqual(scanner.feed(one[:2]), [])
        # the rest of ``one`` and then ``two`` whole: no fast path mid-frame
        self.assertEqual(scanner.feed(one[2:] + two), [len(one) - 2, len(one) - 2 + len(two)])
        self.assertEqual(scanner.feed(two, most=0), [])
        self.assertEqual(scanner.feed(two + two), [len(two), 2 * len(two)])
        self.assertEqual(scanner.feed(two), [len(two)])
        self.assertEqual((scanner.frames, scanner.mid_frame), (6, False))
