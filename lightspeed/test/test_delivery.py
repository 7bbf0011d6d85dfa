"""
Tests for :mod:`lightspeed.net.delivery`: in order, exactly once, across
reroutes, lost frames and restarts, or reported with a reason.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from lightspeed import Kernel
from lightspeed.message import ROUTED
from lightspeed.net.delivery import ACK_EVERY, RTO_INITIAL
from lightspeed.test.test_mesh import build
from lightspeed.testing import MemoryMesh


def blackhole(transport: Any) -> None:
    """
    Lose everything written to ``transport`` from now on (a relay that
    crashed with messages in its buffers, as far as the ends can tell).
    """
    transport.write = lambda data: None


def restore(transport: Any) -> None:
    del transport.write


class Receiver:
    """
    A session (alias ``rx``) that records ``(origin, n)`` for each ``got``.
    """

    def __init__(self, kernel: Kernel, alias: str = "rx") -> None:
        self.got: List[Tuple[str, Any]] = []
        kernel.spawn(inline_states={"_start": lambda e: e.kernel.alias_set(alias), "got": self.record})

    def record(self, event: Any) -> None:
        self.got.append((event.sender.remote_kernel, event.arg0))


class Sender:
    """
    A session (alias ``tx``) that posts and records its ``_undeliverable`` notices.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.notices: List[Tuple[str, str, Tuple[Any, ...]]] = []
        self.session = kernel.spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("tx"),
            "_undeliverable": lambda e: self.notices.append(e.args)})

    def post(self, dest: str, *args: Any, **options: Any) -> None:
        local = self.kernel.local
        local.current = self.session
        try:
            self.kernel.post(dest, *args, **options)
        finally:
            local.current = None


class Producer:
    """
    An ``IPushProducer`` that records what it is told in ``events``.
    """

    def __init__(self, events: List[str]) -> None:
        self.events = events

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


class ExactlyOnceTests(SynchronousTestCase):
    """
    Between two kernels that stay up, every message arrives once, in order.
    """

    def test_reroute_with_frames_lost_in_flight(self):
        """When the link a message is on loses it and goes down, then it is resent on the other path, in order."""
        mesh, k, links = build("abcd", "ab bc ad dc")
        rx, tx = Receiver(k["c"]), Sender(k["a"])
        self.assertEqual(k["a"].network.router.next_hop("c"), "b")
        for n in range(50):
            tx.post("poe://c/rx/got", n)
        blackhole(links["ab"].client.transport)  # what a has written to b is lost
        links["ab"].close()
        mesh.settle()
        for n in range(50, 100):
            tx.post("poe://c/rx/got", n)
        mesh.advance(RTO_INITIAL)
        self.assertEqual(rx.got, [("a", n) for n in range(100)])
        self.assertEqual(tx.notices, [])
        self.assertEqual(k["a"].backlog("c"), 0)

    def test_lost_acks_resend_and_duplicates_dropped(self):
        """When the acks are lost, then the origin resends, the destination drops the copies and delivers once."""
        mesh, k, links = build("ab", "ab")
        rx, tx = Receiver(k["b"]), Sender(k["a"])
        blackhole(links["ab"].server.transport)  # nothing from b reaches a
        for n in range(10):
            tx.post("poe://b/rx/got", n)
        mesh.settle()
        mesh.advance(RTO_INITIAL)
        self.assertEqual(k["a"].network.delivery.retransmitted, 10)
        self.assertEqual(k["b"].network.delivery.receiving.duplicates, 10)
        self.assertEqual(k["a"].backlog("b"), 10)
        restore(links["ab"].server.transport)
        mesh.advance(2 * RTO_INITIAL)
        self.assertEqual(rx.got, [("a", n) for n in range(10)])
        self.assertEqual(k["a"].backlog("b"), 0)
        self.assertEqual(tx.notices, [])

    def test_retransmit_clock_restarts_with_the_window(self):
        """
        When the window empties and a message goes out later, then the
        timer left from before does not resend it early: the resend comes
        one RTO after that message, not after the first one.
        """
        mesh, k, links = build("ab", "ab")
        rx, tx = Receiver(k["b"]), Sender(k["a"])
        tx.post("poe://b/rx/got", 0)
        mesh.settle()
        mesh.advance(0.1)  # delivered and acked: the window is empty
        self.assertEqual(k["a"].backlog("b"), 0)
        mesh.advance(0.4)
        blackhole(links["ab"].server.transport)  # from now on b's acks are lost
        tx.post("poe://b/rx/got", 1)
        mesh.settle()
        mesh.advance(RTO_INITIAL - 0.2)  # past the first timer's time, before this message's
        self.assertEqual(k["a"].network.delivery.retransmitted, 0)
        mesh.advance(0.3)
        self.assertEqual(k["a"].network.delivery.retransmitted, 1)
        self.assertEqual(rx.got, [("a", 0), ("a", 1)])

    def test_multicast_acked_per_destination(self):
        """When a post names two kernels, then each gets it once and each acks its own copy."""
        mesh, k, links = build("abc", "ab ac")
        rb, rc, tx = Receiver(k["b"]), Receiver(k["c"]), Sender(k["a"])
        for n in range(5):
            tx.post("poe://b,c/rx/got", n)
        mesh.settle()
        mesh.advance(0.1)  # the acks wait 10 ms for traffic back
        self.assertEqual((rb.got, rc.got), ([("a", n) for n in range(5)], [("a", n) for n in range(5)]))
        self.assertEqual((k["a"].backlog("b"), k["a"].backlog("c")), (0, 0))

    def test_acks_batched(self):
        """When one kernel posts steadily to another, then acks travel alone at most once per 32 messages."""
        mesh, k, links = build("ab", "ab")
        rx, tx = Receiver(k["b"]), Sender(k["a"])
        acks = []
        network = k["a"].network
        original = network.message_received

        def record(link: Any, message: list) -> None:
            if message[0] == ROUTED and message[3][0][2] == 0:
                acks.append(message[3][0][3])
            original(link, message)

        network.message_received = record
        for turn in range(10):
            for n in range(ACK_EVERY):
                tx.post("poe://b/rx/got", n)
            mesh.settle()
        mesh.advance(0.1)
        self.assertEqual(len(rx.got), 10 * ACK_EVERY)
        self.assertEqual(acks, [ACK_EVERY * (i + 1) for i in range(10)])
        self.assertEqual(k["b"].network.delivery.receiving.duplicates, 0)
        self.assertEqual(k["a"].backlog("b"), 0)

    def test_acks_ride_on_traffic_back(self):
        """When the destination answers, then its answer carries the ack and no ack travels alone."""
        mesh, k, links = build("ab", "ab")
        tx = Sender(k["a"])
        k["b"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("echo"),
                                    "ping": lambda e: e.kernel.post(e.sender, "pong")})
        k["a"].local.aliases["tx"]._states["pong"] = lambda e: None
        alone = []
        original = k["a"].network.message_received

        def record(link: Any, message: list) -> None:
            if message[0] == ROUTED and message[3][0][2] == 0:
                alone.append(message)
            original(link, message)

        k["a"].network.message_received = record
        tx.post("poe://b/echo/ping")
        mesh.settle()
        self.assertEqual(k["a"].backlog("b"), 0)
        self.assertEqual(alone, [])


class ReportedTests(SynchronousTestCase):
    """
    What cannot be delivered comes back to its sender with a reason.
    """

    def test_destination_restarted(self):
        """When the destination restarts, then what it did not acknowledge is reported, with the count, and never delivered twice."""
        mesh, k, links = build("ab", "ab")
        Receiver(k["b"])
        tx = Sender(k["a"])
        blackhole(links["ab"].server.transport)
        for n in range(3):
            tx.post("poe://b/rx/got", n)
        mesh.settle()
        links["ab"].close()
        mesh.settle()
        b2 = mesh.kernel("b", k["b"].network.incarnation + 1)
        rx2 = Receiver(b2)
        mesh.link(k["a"], b2)
        mesh.advance(RTO_INITIAL)
        reason = "kernel 'b' restarted; 3 message(s) to it were not delivered"
        self.assertEqual(tx.notices, [("poe://b/rx/got", reason, (n,)) for n in range(3)])
        self.assertEqual(rx2.got, [])
        tx.post("poe://b/rx/got", "new")
        mesh.settle()
        self.assertEqual(rx2.got, [("a", "new")])

    def test_destination_left(self):
        """When the destination stays unreachable past the grace period, then it is reported as left the network."""
        mesh, k, links = build("ab", "ab")
        Receiver(k["b"])
        tx = Sender(k["a"])
        blackhole(links["ab"].server.transport)
        tx.post("poe://b/rx/got", 1)
        mesh.settle()
        links["ab"].close()
        mesh.settle()
        mesh.advance(k["a"].network.delivery.leave_grace - 1)
        self.assertEqual(tx.notices, [])
        mesh.advance(1)
        self.assertEqual(tx.notices, [("poe://b/rx/got",
                                       "kernel 'b' left the network; 1 message(s) to it were not delivered", (1,))])

    def test_never_acknowledged(self):
        """
        When a relay drops what it should pass on while its links stay up,
        then after the give-up time the sender hears that its messages got
        no acknowledgement, and the next message starts a fresh stream.
        """
        mesh, k, links = build("abc", "ab bc")
        rx, tx = Receiver(k["c"]), Sender(k["a"])
        k["a"].network.delivery.give_up = 20.0
        blackhole(links["bc"].client.transport)  # b's writes to c are lost
        for n in range(3):
            tx.post("poe://c/rx/got", n)
        mesh.settle()
        mesh.advance(19.0)
        self.assertEqual(tx.notices, [])
        mesh.advance(20.0)
        self.assertEqual(tx.notices, [("poe://c/rx/got", "no acknowledgement from kernel 'c' for 20 s; 3 message(s) "
                                       "to it may not have been delivered", (n,)) for n in range(3)])
        self.assertEqual(k["a"].backlog("c"), 0)
        restore(links["bc"].client.transport)
        tx.post("poe://c/rx/got", 3)
        mesh.settle()
        mesh.advance(0.1)
        self.assertEqual(rx.got, [("a", 3)])

    def test_back_within_grace_resends(self):
        """When the destination comes back (same start) within the grace period, then what it missed arrives."""
        mesh, k, links = build("ab", "ab")
        rx, tx = Receiver(k["b"]), Sender(k["a"])
        blackhole(links["ab"].client.transport)
        tx.post("poe://b/rx/got", 1)
        links["ab"].close()
        mesh.advance(5)
        mesh.link(k["a"], k["b"])
        mesh.advance(RTO_INITIAL)
        self.assertEqual(rx.got, [("a", 1)])
        self.assertEqual(tx.notices, [])

    def test_back_after_the_grace_period(self):
        """When the same start comes back after it was given up, then a tombstone lets it skip what was reported, and new posts arrive."""
        mesh, k, links = build("ab", "ab")
        rx, tx = Receiver(k["b"]), Sender(k["a"])
        tx.post("poe://b/rx/got", 1)
        mesh.settle()
        mesh.advance(0.1)  # its ack is back
        blackhole(links["ab"].client.transport)
        tx.post("poe://b/rx/got", 2)
        links["ab"].close()
        mesh.settle()
        mesh.advance(k["a"].network.delivery.leave_grace)
        self.assertEqual([reason for _, reason, _ in tx.notices],
                         ["kernel 'b' left the network; 1 message(s) to it were not delivered"])
        mesh.link(k["a"], k["b"])
        mesh.settle()
        tx.post("poe://b/rx/got", 3)
        mesh.settle()
        mesh.advance(0.1)
        self.assertEqual(rx.got, [("a", 1), ("a", 3)])
        self.assertEqual(k["a"].backlog("b"), 0)

    def test_remote_call_to_a_missing_state(self):
        """When a remote call names a state the session lacks, then the caller's _undeliverable hears why."""
        mesh, k, links = build("ab", "ab")
        Receiver(k["b"])
        tx = Sender(k["a"])
        local = k["a"].local
        local.current = tx.session
        try:
            k["a"].call("poe://b/rx/nosuch", "poe://a/tx/answer", 1)
        finally:
            local.current = None
        mesh.settle()
        self.assertEqual(tx.notices, [(
            "poe://b/rx/nosuch", "session 1 of kernel 'b' has no state 'nosuch' and no _default", [1])])

    def test_producer_kept_across_a_restart(self):
        """When the destination restarts, then a registered producer keeps following the new stream."""
        mesh, k, links = build("ab", "ab")
        events: List[str] = []

        Receiver(k["b"])
        tx = Sender(k["a"])
        k["a"].register_producer("b", Producer(events))
        links["ab"].close()
        mesh.settle()
        b2 = mesh.kernel("b", k["b"].network.incarnation + 1)
        Receiver(b2)
        link = mesh.link(k["a"], b2)
        mesh.settle()
        k["a"].network.delivery.window, k["a"].network.delivery.max_backlog = 1, 5
        blackhole(link.server.transport)
        tx.post("poe://b/rx/got", 1)
        tx.post("poe://b/rx/got", 2)
        self.assertEqual(events, ["pause"])

    def test_deadline_passed(self):
        """When a message's time to live runs out before it can be delivered, then it is dropped and reported."""
        mesh, k, links = build("ab", "ab")
        rx, tx = Receiver(k["b"]), Sender(k["a"])
        blackhole(links["ab"].client.transport)
        tx.post("poe://b/rx/got", "late", ttl=0.5)
        tx.post("poe://b/rx/got", "on time")
        mesh.advance(0.1)
        restore(links["ab"].client.transport)
        mesh.advance(RTO_INITIAL)
        self.assertEqual(rx.got, [("a", "on time")])
        self.assertEqual(tx.notices, [("poe://b/rx/got", "deadline passed", ["late"])])  # b's notice: a list
        box = k["a"].network.delivery.outboxes["b"]
        self.assertEqual((len(box.unacked), box.deadlines), (0, {}))  # acknowledged, its deadline forgotten


class BoundedMemoryTests(SynchronousTestCase):
    """
    What a destination holds for an origin is bounded, whatever it sends.
    """

    def test_early_arrivals_bounded_in_count_and_bytes(self):
        """When arrivals come early past the bounds, then the excess is dropped, and delivered once sent again."""
        from lightspeed.message import POST
        from lightspeed.wire.codec import dumps

        mesh, k, links = build("ab", "ab")
        rx = Receiver(k["b"])
        delivery = k["b"].network.delivery
        delivery.receiving.max_early, delivery.receiving.max_early_bytes = 3, 200
        a_inc, b_inc = k["a"].network.incarnation, k["b"].network.incarnation

        def arrive(seq: int, size: int) -> None:
            payload = dumps([POST, ["rx"], "got", [seq, b"x" * size], None, None, None, None])
            delivery.arrived("a", a_inc, ("b", b_inc, seq, 0), None, payload, "a")

        arrive(2, 10)
        arrive(3, 180)   # over the byte bound with 2: dropped
        arrive(4, 10)
        arrive(5, 10)
        arrive(6, 10)    # over the count bound: dropped
        self.assertEqual(sorted(delivery.inboxes["a"].early), [2, 4, 5])
        arrive(1, 10)
        mesh.settle()
        self.assertEqual([n for _, n in rx.got], [1, 2])
        arrive(3, 180)
        mesh.settle()
        self.assertEqual([n for _, n in rx.got], [1, 2, 3, 4, 5])
        self.assertEqual(delivery.inboxes["a"].early_bytes, 0)


    def test_released_arrivals_owed_once(self):
        """When an in-order message releases early ones, then each message is owed one ack count, not the releasing one twice."""
        from lightspeed.message import POST
        from lightspeed.wire.codec import dumps

        mesh, k, links = build("ab", "ab")
        Receiver(k["b"])
        delivery = k["b"].network.delivery
        a_inc, b_inc = k["a"].network.incarnation, k["b"].network.incarnation
        delivery.inboxes.pop("a", None)
        for seq in (2, 3, 1):
            payload = dumps([POST, ["rx"], "got", [seq], None, None, None, None])
            delivery.arrived("a", a_inc, ("b", b_inc, seq, 0), None, payload, "a")
        inbox = delivery.inboxes["a"]
        self.assertEqual((inbox.delivered, inbox.owed), (3, 3))

class MissingStateTests(SynchronousTestCase):
    """
    A post to a session that has neither the state nor ``_default`` comes
    back to its sender.
    """

    def test_remote_sender_told(self):
        """When a remote post names a state the session lacks, then the sender's _undeliverable hears why."""
        mesh, k, links = build("ab", "ab")
        Receiver(k["b"])
        tx = Sender(k["a"])
        tx.post("poe://b/rx/nosuch", 1)
        mesh.settle()
        self.assertEqual(tx.notices, [(
            "poe://b/rx/nosuch", "session 1 of kernel 'b' has no state 'nosuch' and no _default", [1])])

    def test_local_sender_told(self):
        """When a local post names a state the session lacks, then the sender's _undeliverable hears why."""
        mesh, k, links = build("a", "")
        Receiver(k["a"])
        tx = Sender(k["a"])
        tx.post("poe://a/rx/nosuch", 2)
        mesh.settle()
        self.assertEqual(tx.notices, [(
            "poe://a/rx/nosuch", "session 1 of kernel 'a' has no state 'nosuch' and no _default", (2,))])


class FlowControlTests(SynchronousTestCase):
    """
    A bounded window per destination that posters can follow.
    """

    def setUp(self):
        self.mesh, self.k, self.links = build("ab", "ab")
        self.rx, self.tx = Receiver(self.k["b"]), Sender(self.k["a"])
        delivery = self.k["a"].network.delivery
        delivery.window, delivery.max_backlog = 4, 3
        blackhole(self.links["ab"].server.transport)  # no acks come back

    def test_window_backlog_and_refusal(self):
        """When the window and the backlog are full, then producers pause, a waiter waits, and the next post is refused."""
        events: List[str] = []

        self.k["a"].register_producer("b", Producer(events))
        self.assertEqual(self.successResultOf(self.k["a"].when_ready("b")), None)
        for n in range(4):
            self.tx.post("poe://b/rx/got", n)
        waiting = self.k["a"].when_ready("b")  # the window is full: the next would wait
        self.assertNoResult(waiting)
        self.assertEqual(events, [])
        for n in range(4, 7):
            self.tx.post("poe://b/rx/got", n)
        self.assertEqual(events, ["pause"])
        self.assertNoResult(waiting)
        self.tx.post("poe://b/rx/got", 7)
        self.mesh.settle()
        self.assertEqual(self.tx.notices, [("poe://b/rx/got", "backlog full", (7,))])
        self.assertEqual(self.k["a"].backlog("b"), 7)
        restore(self.links["ab"].server.transport)
        self.mesh.advance(RTO_INITIAL)
        self.mesh.advance(RTO_INITIAL)
        self.assertEqual(events, ["pause", "resume"])
        self.assertEqual(self.successResultOf(waiting), None)
        self.assertEqual(self.rx.got, [("a", n) for n in range(7)])
        self.assertEqual(self.k["a"].backlog("b"), 0)


class ByteWindowTests(SynchronousTestCase):
    """
    The window and the backlog are bounded in bytes as well as in messages.
    """

    def test_bytes_bound_window_and_backlog(self):
        """When messages are large, then the byte bounds fill the window and the backlog before the counts do."""
        mesh, k, links = build("ab", "ab")
        rx, tx = Receiver(k["b"]), Sender(k["a"])
        delivery = k["a"].network.delivery
        delivery.window_bytes, delivery.max_backlog_bytes = 2500, 2500
        blackhole(links["ab"].server.transport)  # no acks come back
        for n in range(6):
            tx.post("poe://b/rx/got", n, b"x" * 1000)
        box = delivery.outboxes["b"]
        self.assertEqual((len(box.unacked), len(box.backlog)), (3, 2))
        self.assertEqual(tx.notices, [])
        mesh.settle()
        self.assertEqual([(dest, reason, args[0]) for dest, reason, args in tx.notices],
                         [("poe://b/rx/got", "backlog full", 5)])
        restore(links["ab"].server.transport)
        for _ in range(4):
            mesh.advance(RTO_INITIAL)
        self.assertEqual([n for _, n in rx.got], [0, 1, 2, 3, 4])
        self.assertEqual((box.unacked_bytes, box.backlog_bytes), (0, 0))


    def test_acks_drop_exactly_what_they_cover(self):
        """When acks cover part, then all, then more than was sent, then the window keeps exactly the rest."""
        mesh, k, links = build("ab", "ab")
        Receiver(k["b"])
        tx = Sender(k["a"])
        delivery = k["a"].network.delivery
        blackhole(links["ab"].server.transport)  # acks come only from the test
        for n in range(6):
            tx.post("poe://b/rx/got", b"x" * (10 * n + 1))
        box = delivery.outboxes["b"]
        sizes = [len(payload) for payload in box.unacked]
        delivery._acked("b", box.incarnation, 0)  # acks nothing
        delivery._acked("b", box.incarnation, 4)
        self.assertEqual((box.next_seq - len(box.unacked), len(box.unacked)), (5, 2))
        self.assertEqual(box.unacked_bytes, sum(sizes[4:]))
        delivery._acked("b", box.incarnation, 4)  # again: nothing more
        self.assertEqual((len(box.unacked), box.unacked_bytes), (2, sum(sizes[4:])))
        delivery._acked("b", box.incarnation, 100)
        self.assertEqual((len(box.unacked), box.unacked_bytes), (0, 0))


class ChaosTests(SynchronousTestCase):
    """
    A deterministic chaos run: every message between kernels that stay up
    arrives once and in order; every other one is reported; none is silent.
    """

    def test_cyclic_mesh_with_link_failures_and_a_restart(self):
        """When links of a six-kernel cyclic mesh fail and come back and one kernel restarts under traffic, then nothing is lost silently."""
        rng = random.Random(1234)
        mesh = MemoryMesh()
        names = "abcdef"
        k: Dict[str, Kernel] = {n: mesh.kernel(n) for n in names}
        edges = ["ab", "bc", "cd", "de", "ef", "fa", "ad", "be", "cf"]
        links = {e: mesh.link(k[e[0]], k[e[1]]) for e in edges}
        mesh.settle()
        receivers = {n: Receiver(k[n]) for n in "def"}
        senders = {n: Sender(k[n]) for n in "abc"}
        sent: Dict[Tuple[str, str], List[int]] = {(s, r): [] for s in senders for r in receivers}
        restarted = None
        for step in range(60):
            for s, tx in senders.items():
                for r in receivers:
                    n = len(sent[(s, r)])
                    sent[(s, r)].append(n)
                    tx.post(f"poe://{r}/rx/got", n)
            if step % 6 == 3:
                edge = rng.choice(sorted(links))
                if rng.random() < 0.5:
                    blackhole(links[edge].client.transport)
                links[edge].close()
                mesh.advance(0.05)
                a, b = edge[0], edge[1]
                links[edge] = mesh.link(k[a] if a != "f" or restarted is None else restarted,
                                        k[b] if b != "f" or restarted is None else restarted)
            if step == 30:
                for edge in [e for e in links if "f" in e]:
                    links[edge].close()
                mesh.settle()
                restarted = mesh.kernel("f", k["f"].network.incarnation + 1)
                f2 = Receiver(restarted)
                for edge in [e for e in links if "f" in e]:
                    other = edge.replace("f", "")
                    links[edge] = mesh.link(k[other], restarted)
            mesh.advance(0.02)
        mesh.advance(5)
        mesh.advance(5)
        self.assertGreater(sum(k[n].network.delivery.retransmitted for n in "abc"), 0)  # frames were lost
        for s, tx in senders.items():
            for r in "de":
                self.assertEqual([n for origin, n in receivers[r].got if origin == s], sent[(s, r)])
            got = [n for origin, n in receivers["f"].got if origin == s]
            got2 = [n for origin, n in f2.got if origin == s]
            lost = [args[0] for dest, reason, args in tx.notices if dest == "poe://f/rx/got"]
            # Each message to f reached one of its starts, or came back (a
            # message the old start got but did not acknowledge before it
            # went is reported too: its sender cannot know), never both starts.
            self.assertEqual(sorted(set(got) | set(lost) | set(got2)), sent[(s, "f")])
            self.assertEqual(set(got) & set(got2), set())
            self.assertEqual(set(lost) & set(got2), set())
            self.assertEqual(got, sorted(set(got)))
            self.assertEqual(got2, sorted(set(got2)))
            self.assertEqual([n for dest, _, (n,) in tx.notices if dest != "poe://f/rx/got"], [])
            self.assertEqual({reason.split(";")[0] for dest, reason, _ in tx.notices}, {"kernel 'f' restarted"}
                             if lost else set())
