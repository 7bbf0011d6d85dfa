# -*- test-case-name: lightspeed.test.test_batch -*-
"""
Tests for batches: the messages one reactor turn sends to one kernel go in
one ROUTED message (eight items) to neighbours that offered ``"batch"``,
arrive in order and once, pass relays as one message (or split, for a
neighbour that takes none), and malformed batches close the link.
"""

from __future__ import annotations

import dataclasses
from typing import Any, List

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.errors import ProtocolError
from lightspeed.message import MAX_BATCH, ROUTED, parse_payload, routed_batch, routed_head
from lightspeed.test.test_delivery import Receiver, Sender
from lightspeed.test.test_forgery import post_payload
from lightspeed.test.test_mesh import build
from lightspeed.test.test_monitor import Events
from lightspeed.wire.codec import MAX_DEPTH, dumps, loads
from lightspeed.wire.framing import frame


def payloads(message: list) -> int:
    return 1 + len(message[7]) if len(message) == 8 else 1


def routed_written(link: Any) -> List[list]:
    """
    Record every ROUTED message ``link`` (a LinkProtocol) writes, decoded.
    """
    seen: List[list] = []
    send_body = link.send_body

    def recording(body: bytes) -> None:
        message = loads(body)
        if message[0] == ROUTED:
            seen.append(message)
        send_body(body)

    link.send_body = recording
    return seen


def batch_after_one(mesh: Any, k: Any, links: Any, payloads: List[bytes]) -> Any:
    """
    Settle the a - b mesh, then feed b's end of the link one post from a
    (so that the stream exists and the batch comes next on it) and a batch
    of ``payloads``, and settle.

    :returns: b's end of the link.
    """
    mesh.settle()
    head = routed_head("a", k["a"].network.incarnation, "b", k["b"].network.incarnation)
    link = links["ab"].server
    link.dataReceived(frame(routed_batch(head, 1, 0, 5, [post_payload("rx", "got", "first")])))
    link.dataReceived(frame(routed_batch(head, 2, 0, 5, payloads)))
    mesh.settle()
    return link


class BatchTests(SynchronousTestCase):

    def send(self, names: str, edges: str, watched: str, count: int) -> Any:
        """
        Build the mesh, record what the client end of link ``watched``
        writes, post ``count`` numbers from a to the last kernel in one
        turn, and settle.

        :returns: ``(mesh, kernels, receiver, written)``.
        """
        mesh, k, links = build(names, edges)
        rx, tx = Receiver(k[names[-1]]), Sender(k["a"])
        seen = routed_written(links[watched].client)
        for n in range(count):
            tx.post(f"poe://{names[-1]}/rx/got", n)
        mesh.settle()
        return mesh, k, rx, seen

    def test_one_message_per_turn(self):
        """
        When a kernel posts 100 times in one turn to a neighbour, then the
        first goes at once and one ROUTED message carries the other 99, in
        order.
        """
        mesh, k, rx, seen = self.send("ab", "ab", "ab", 100)
        self.assertEqual([(len(m), payloads(m)) for m in seen], [(7, 1), (8, 99)])
        self.assertEqual(seen[1][3][0][2], 2)  # from sequence number 2
        self.assertEqual(rx.got, [("a", n) for n in range(100)])
        mesh.advance(0.1)
        self.assertEqual(k["a"].backlog("b"), 0)

    def test_bounded(self):
        """When more than MAX_BATCH messages go in one turn, then they are split into batches of at most MAX_BATCH."""
        mesh, k, rx, seen = self.send("ab", "ab", "ab", MAX_BATCH + 10)
        self.assertEqual([payloads(m) for m in seen], [1, MAX_BATCH, 9])
        self.assertEqual(len(rx.got), MAX_BATCH + 10)

    def test_window_bounds_a_batch(self):
        """When a turn posts more than the window holds, then its batch stops at the window and the rest follow the acks."""
        mesh, k, links = build("ab", "ab")
        rx, tx = Receiver(k["b"]), Sender(k["a"])
        k["a"].network.delivery.window = 10
        seen = routed_written(links["ab"].client)
        for n in range(25):
            tx.post("poe://b/rx/got", n)
        self.assertEqual(k["a"].backlog("b"), 25)
        mesh.settle()
        self.assertEqual(([payloads(m) for m in seen if m[6]], len(rx.got)), ([1, 9], 10))
        for _ in range(3):
            mesh.advance(0.1)  # the acks let the rest go
        self.assertEqual((rx.got, k["a"].backlog("b")), ([("a", n) for n in range(25)], 0))

    def test_deadline_not_batched(self):
        """When a message has a time to live, then it goes alone, after the batch before it."""
        mesh, k, links = build("ab", "ab")
        rx, tx = Receiver(k["b"]), Sender(k["a"])
        seen = routed_written(links["ab"].client)
        for n in range(3):
            tx.post("poe://b/rx/got", n)
        tx.post("poe://b/rx/got", 3, ttl=5.0)
        tx.post("poe://b/rx/got", 4)
        tx.post("poe://b/rx/got", 5)
        mesh.settle()
        self.assertEqual([(len(m), payloads(m)) for m in seen], [(7, 1), (8, 2), (7, 1), (8, 2)])
        self.assertEqual(seen[2][5], 5000)  # the ttl, in ms
        self.assertEqual(rx.got, [("a", n) for n in range(6)])

    def test_relay_passes_a_batch_on_whole(self):
        """When a batch crosses a relay, then it leaves the relay as one message and its payloads are counted as relayed."""
        mesh, k, rx, seen = self.send("abc", "ab bc", "bc", 50)
        self.assertEqual([payloads(m) for m in seen], [1, 49])
        self.assertEqual(seen[1][4], 31)  # one hop used
        self.assertEqual(rx.got, [("a", n) for n in range(50)])
        self.assertEqual(k["b"].network.relay.relayed, 50)

    def test_relay_splits_for_a_neighbour_without_batches(self):
        """When the next neighbour did not offer "batch", then the relay sends it one message per payload."""
        mesh, k, links = build("abc", "ab bc")
        rx, tx = Receiver(k["c"]), Sender(k["a"])
        to_c = links["bc"].client
        to_c.peer = dataclasses.replace(to_c.peer, batch=False)
        seen = routed_written(to_c)
        for n in range(5):
            tx.post("poe://c/rx/got", n)
        mesh.settle()
        self.assertEqual([(len(m), m[3][0][2]) for m in seen], [(7, seq) for seq in range(1, 6)])
        self.assertEqual(rx.got, [("a", n) for n in range(5)])

    def test_lost_batch_resent(self):
        """When a batch is lost, then the next one waits at the receiver and the resend brings both, in order."""
        mesh, k, links = build("ab", "ab")
        rx, tx = Receiver(k["b"]), Sender(k["a"])
        transport = links["ab"].client.transport
        transport.write = lambda data: None
        for n in range(10):
            tx.post("poe://b/rx/got", n)
        mesh.settle()
        del transport.write
        for n in range(10, 20):
            tx.post("poe://b/rx/got", n)
        mesh.settle()
        self.assertEqual(rx.got, [])  # 11..20 held early
        mesh.advance(1.0)
        mesh.settle()
        self.assertEqual(rx.got, [("a", n) for n in range(20)])


class MalformedBatchTests(SynchronousTestCase):

    def assertClosed(self, body: Any, why: str) -> None:
        mesh, k, links = build("ab", "ab")
        head = routed_head("a", k["a"].network.incarnation, "b", k["b"].network.incarnation)
        link = links["ab"].server
        link.dataReceived(frame(body(head) if callable(body) else body))
        mesh.settle()
        self.assertEqual((link.closed_reason.code, str(link.closed_reason)), ("malformed", f"malformed: malformed message: {why}"))

    def test_payload_not_bytes(self):
        """When a batch holds an item that is not a byte string, then BYE malformed."""
        def body(head: bytes) -> bytes:
            good = routed_batch(head, 1, 0, 5, [post_payload("rx", "got", 1), b"ok"])
            return good[:-3] + b"\x81\x01"  # the further payloads: [1]
        self.assertClosed(body, "ROUTED batch payload")

    def test_too_many(self):
        """When a batch holds MAX_BATCH payloads or more after the first, then BYE malformed."""
        self.assertClosed(lambda head: routed_batch(head, 1, 0, 5, [b"\x80"] * (MAX_BATCH + 1)), "ROUTED batch")

    def test_empty_payload(self):
        """When a batch holds an empty payload (a tombstone), then BYE malformed."""
        self.assertClosed(lambda head: routed_batch(head, 1, 0, 5, [b"\x80", b""]), "ROUTED batch payload")


class RoutedBatchLayoutTests(SynchronousTestCase):
    """
    ``routed_batch`` writes the payloads' heads from a table when they are
    short and one by one when they are not.
    """

    def test_payloads_of_any_size(self):
        """When payloads are short, long, mixed or alone, then the batch decodes to exactly them."""
        head = routed_head("a", 5, "b", 7)
        for sizes in ([1], [3, 40], [3, 300, 20], [23, 24, 255, 256], [70000, 5]):
            payloads = [bytes([65 + i]) * n for i, n in enumerate(sizes)]
            message = loads(routed_batch(head, 9, 2, 32, payloads))
            self.assertEqual(message, [ROUTED, "a", 5, [["b", 7, 9, 2]], 32, None, payloads[0], payloads[1:]])


class BatchDecodingTests(SynchronousTestCase):
    """
    A batch's payloads are decoded in one call when they are valid as a
    whole, else one by one: what is wrong fails where, and as, it would alone.
    """

    def receive(self, payloads: List[bytes]) -> Any:
        mesh, k, links = build("ab", "ab")
        rx = Receiver(k["b"])
        link = batch_after_one(mesh, k, links, payloads)
        self.assertEqual(rx.got[:1], [("a", "first")])
        del rx.got[:1]
        return rx, link

    def test_valid_batch(self):
        """When every payload is valid, then each is delivered, in order, and the link stays up."""
        rx, link = self.receive([post_payload("rx", "got", n) for n in range(30)])
        self.assertEqual((rx.got, link.closed_reason), ([("a", n) for n in range(30)], None))

    def test_bad_payload_in_the_middle(self):
        """When the third of five payloads is truncated, then the two before it are delivered, then BYE malformed."""
        good = [post_payload("rx", "got", n) for n in range(5)]
        rx, link = self.receive(good[:2] + [good[2][:-1]] + good[3:])
        self.assertEqual((rx.got, link.closed_reason.code), ([("a", 0), ("a", 1)], "malformed"))

    def test_tagged_payload(self):
        """When a payload holds a CBOR tag, then those before it are delivered, then BYE malformed for the tag."""
        import cbor2

        tagged = cbor2.dumps([1, ["rx"], "got", [cbor2.CBORTag(4000, 1)], None, None, None, None])
        rx, link = self.receive([post_payload("rx", "got", 0), tagged, post_payload("rx", "got", 2)])
        self.assertEqual((rx.got, link.closed_reason.code, str(link.closed_reason)),
                         ([("a", 0)], "malformed", "malformed: malformed CBOR: error decoding semantic tag 4000"))

    def test_mixed_destinations_and_senders(self):
        """When posts of a batch change destination and sender, then each reaches its session with its own sender."""
        mesh, k, links = build("ab", "ab")
        seen: List[Any] = []
        for alias in ("rx", "ry"):
            k["b"].spawn(inline_states={
                "_start": lambda e, alias=alias: e.kernel.alias_set(alias),
                "got": lambda e, alias=alias: seen.append((alias, e.sender.remote_session, e.arg0)),
            })
        mesh.settle()
        head = routed_head("a", k["a"].network.incarnation, "b", k["b"].network.incarnation)
        plan = [("rx", None), ("rx", None), ("ry", None), ("ry", "s1"), ("ry", "s1"), ("rx", "s1"), ("rx", None)]
        payloads = [post_payload(alias, "got", n, sender=who) for n, (alias, who) in enumerate(plan)]
        links["ab"].server.dataReceived(frame(routed_batch(head, 1, 0, 5, [post_payload("rx", "got", -1)])))
        links["ab"].server.dataReceived(frame(routed_batch(head, 2, 0, 5, payloads)))
        mesh.settle()
        self.assertEqual(seen, [("rx", None, -1)] + [(alias, who, n) for n, (alias, who) in enumerate(plan)])

    def test_arrived_events_for_each(self):
        """When a batch of posts to one session arrives with an "arrived" listener, then one event per post."""
        mesh, k, links = build("ab", "ab")
        rx = Receiver(k["b"])
        events = Events()
        k["b"].monitor_register(["arrived"], events)
        mesh.settle()
        head = routed_head("a", k["a"].network.incarnation, "b", k["b"].network.incarnation)
        for seq, count in ((1, 1), (2, 4)):  # the batch comes next on a stream that exists
            payloads = [post_payload("rx", "got", n) for n in range(count)]
            links["ab"].server.dataReceived(frame(routed_batch(head, seq, 0, 5, payloads)))
        mesh.settle()
        self.assertEqual((rx.got, [(i["origin"], i["destination"]) for i in events.of("arrived")]),
                         ([("a", 0)] + [("a", n) for n in range(4)], [("a", "poe://b/rx/got")] * 5))

    def test_look_alike_fields_checked(self):
        """When a post repeats the one before but with 1.0 for its line or True for its kind, then BYE malformed after the ones before."""
        import cbor2

        first = [1, ["rx"], "got", [0], "s", None, "f.py", 1]  # POST
        for bad in ([1, ["rx"], "got", [1], "s", None, "f.py", 1.0], [True, ["rx"], "got", [1], "s", None, "f.py", 1]):
            # The first finds the state valid, the second takes the hot path, the third looks like it.
            rx, link = self.receive([cbor2.dumps(first)] * 2 + [cbor2.dumps(bad), cbor2.dumps(first)])
            self.assertEqual((rx.got, link.closed_reason.code), ([("a", 0)] * 2, "malformed"))


class RelayedBatchTests(SynchronousTestCase):
    """
    a - r - b: a batch from a that r passes on is delivered at b in one go;
    a payload in it that fails at b came from a, not from r, so b drops it
    alone (and counts it), delivers the rest, and the r - b link stays up.
    """

    def receive(self, payloads: List[bytes]) -> Any:
        mesh, k, links = build("arb", "ar rb")
        rx = Receiver(k["b"])
        mesh.settle()
        relay = k["b"].network.relay
        one_by_one = relay.deliver_payload
        self.alone: List[bytes] = []
        relay.deliver_payload = lambda origin, peer, payload: (self.alone.append(payload),
                                                               one_by_one(origin, peer, payload))[1]
        head = routed_head("a", k["a"].network.incarnation, "b", k["b"].network.incarnation)
        link = links["ar"].client
        # One message first, so that the stream exists and the batch comes next on it.
        link.send_body(routed_batch(head, 1, 0, 5, [post_payload("rx", "got", "first")]))
        link.send_body(routed_batch(head, 2, 0, 5, payloads))
        mesh.settle()
        self.assertEqual(sorted(link.peer.name for link in k["b"].network.links()), ["r"])
        self.assertEqual(rx.got[:1], [("a", "first")])
        return rx.got[1:], k["b"].network.bad_payloads

    def test_valid_batch(self):
        """When every payload is valid, then each is delivered, in order, in one go (only the first alone), and none is counted bad."""
        self.assertEqual(self.receive([post_payload("rx", "got", n) for n in range(30)]),
                         ([("a", n) for n in range(30)], 0))
        self.assertEqual(self.alone, [post_payload("rx", "got", "first"), post_payload("rx", "got", 0)])

    def test_not_payloads(self):
        """When the second and fourth of five decode but are no payloads, then they are dropped and counted, the rest delivered."""
        good = [post_payload("rx", "got", n) for n in range(5)]
        bad = dumps({"not": "a payload"})
        self.assertEqual(self.receive([good[0], bad, good[2], bad, good[4]]), ([("a", 0), ("a", 2), ("a", 4)], 2))
        self.assertEqual(len(self.alone), 2)  # the first message and the batch's first; the rest in one go

    def test_truncated_payload(self):
        """When the third of five payloads is truncated, then it alone is dropped and counted."""
        good = [post_payload("rx", "got", n) for n in range(5)]
        self.assertEqual(self.receive(good[:2] + [good[2][:-1]] + good[3:]),
                         ([("a", 0), ("a", 1), ("a", 3), ("a", 4)], 1))
        # The stream's first message and the batch's first alone, the second as a
        # repeated post, the truncated one and those after it one by one.
        self.assertEqual(len(self.alone), 5)


    def test_repeated_posts(self):
        """When a batch repeats a post with string arguments, one of them not UTF-8, then it alone is dropped and counted."""
        good = [post_payload("rx", "got", f"n{n}") for n in range(6)]
        bad = good[3].replace(b"n3", b"\xff3")
        self.assertEqual(self.receive(good[:3] + [bad] + good[4:]), ([("a", f"n{n}") for n in (0, 1, 2, 4, 5)], 1))

    def test_bad_first_payload(self):
        """When a batch's first payload is malformed, then it alone is dropped and counted, the rest delivered."""
        good = [post_payload("rx", "got", f"n{n}") for n in range(4)]
        self.assertEqual(self.receive([good[0][:-1]] + good[1:]), ([("a", f"n{n}") for n in (1, 2, 3)], 1))


class SamePostsTests(SynchronousTestCase):
    """
    Posts of a batch straight from their origin that repeat the post before
    them but for a string argument are queued from their bytes: each
    arrives exactly as the general path would deliver it, and anything else
    takes the general path.
    """

    def receive(self, payloads: List[bytes]) -> Any:
        mesh, k, links = build("ab", "ab")
        self.seen: List[Any] = []
        k["b"].spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("rx"),
            "got": lambda e: self.seen.append((e.args, e.sender.remote_session, e.sender.remote_state,
                                               e.caller_file, e.caller_line)),
        })
        link = batch_after_one(mesh, k, links, payloads)
        self.assertEqual(self.seen[0][0], ("first",))
        del self.seen[0]
        return link

    def post(self, *args: Any, line: Any = 7, who: Any = "s") -> bytes:
        return dumps([1, ["rx"], "got", list(args), who, "st", "f.py", line])

    def test_arguments_of_every_form(self):
        """When posts repeat one another with string, number, list and multi-item arguments, then each arrives with its own."""
        args = [(b"",), (b"x" * 23,), (b"y" * 24,), (b"z" * 255,), (b"w" * 256,), ("",), ("\u00e9t\u00e9",),
                ("t" * 24,), ("u" * 300,), (5,), (b"a", b"b"), ([b"in"],), (None,), (b"again",)]
        link = self.receive([self.post(b"lead")] + [self.post(*a) for a in args])
        self.assertEqual((self.seen, link.closed_reason),
                         ([((b"lead",), "s", "st", "f.py", 7)] + [(a, "s", "st", "f.py", 7) for a in args], None))

    def test_other_lines_and_senders(self):
        """When the line or the sender changes within a batch, then each post arrives with its own."""
        plan = [(7, "s"), (7, "s"), (8, "s"), (8, "s"), (8, None), (5000, None), (5000, None), (None, "s")]
        link = self.receive([self.post(b"%d" % i, line=line, who=who) for i, (line, who) in enumerate(plan)])
        self.assertEqual((self.seen, link.closed_reason),
                         ([((b"%d" % i,), who, "st", "f.py", line) for i, (line, who) in enumerate(plan)], None))

    def test_longer_string_heads(self):
        """When a string's length is written in a longer form than needed, then the post still arrives as decoded."""
        lead = self.post(b"lead")
        odd = lead.replace(b"\x81\x44lead", b"\x81\x58\x03abc")  # 3 bytes with a one-byte length
        link = self.receive([lead, odd, lead])
        self.assertEqual(([a for a, *_ in self.seen], link.closed_reason), ([(b"lead",), (b"abc",), (b"lead",)], None))

    def test_bad_text(self):
        """When a repeated post's text argument is not UTF-8, then the ones before it arrive, then BYE malformed."""
        lead = self.post("lead")
        bad = lead.replace(b"\x64lead", b"\x64le\xffd")
        link = self.receive([lead, lead, bad, lead])
        self.assertEqual(([a for a, *_ in self.seen], link.closed_reason.code), ([("lead",), ("lead",)], "malformed"))

    def test_shifted_boundaries(self):
        """When two posts' bytes are split elsewhere than between them, then the first arrives, then BYE malformed."""
        one, two = self.post(b"one"), self.post(b"two")
        link = self.receive([one, one + two[:5], two[5:]])
        self.assertEqual(([a for a, *_ in self.seen], link.closed_reason.code), ([(b"one",), (b"one",)], "malformed"))

    def test_mutated_batches(self):
        """When repeated posts are mutated at random (a byte changed, cut or added), then each batch delivers what decoding its payloads one by one gives, and closes where that fails."""
        import random

        rnd = random.Random(11)
        for _ in range(60):
            sent = [self.post(b"lead")]
            for _ in range(rnd.randint(1, 10)):
                arg = rnd.choice([b"x" * rnd.randint(0, 300), "t" * rnd.randint(0, 40), "\u00e9" * rnd.randint(0, 30),
                                  rnd.randint(-5, 5000)])
                mutated = bytearray(self.post(arg, line=rnd.choice([7, 7, 8]), who=rnd.choice(["s", "s", None])))
                mutation = rnd.random()
                if mutation < 0.3:
                    mutated[rnd.randrange(len(mutated))] = rnd.randrange(256)
                elif mutation < 0.4:
                    del mutated[rnd.randrange(1, len(mutated)):]
                elif mutation < 0.5:
                    mutated.append(rnd.randrange(256))
                sent.append(bytes(mutated))
            link = self.receive(sent)
            self.assertEqual((self.seen, link.closed_reason is not None), one_by_one(sent))

    def test_nested_arguments(self):
        """When repeated posts' arguments nest up to and past the depth limit, then each arrives or closes as alone."""
        deep = [b"\x81" * n + b"\x00" for n in range(MAX_DEPTH - 3, MAX_DEPTH + 1)]
        lead = self.post(b"lead")
        for arg in deep:
            sent = [lead, lead, lead.replace(b"\x81\x44lead", b"\x81" + arg), lead]
            link = self.receive(sent)
            self.assertEqual((self.seen, link.closed_reason is not None), one_by_one(sent))
        self.assertEqual(one_by_one([lead, lead.replace(b"\x81\x44lead", b"\x81" + deep[-1])])[1], True)
        self.assertEqual(one_by_one([lead, lead.replace(b"\x81\x44lead", b"\x81" + deep[-3])])[1], False)


def one_by_one(sent: List[bytes]) -> Any:
    """
    What a batch of posts to rx's ``got`` delivers when each payload is
    decoded alone: ``([(args, s_session, s_state, s_file, s_line), ...],
    closes)``.
    """
    expected, closes = [], False
    for payload in sent:
        try:
            body = parse_payload(loads(payload))
        except ProtocolError:
            closes = True
            break
        if body[:3] == [1, ["rx"], "got"]:
            expected.append((tuple(body[3]), *body[4:8]))
    return expected, closes

