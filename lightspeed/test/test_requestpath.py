"""
The request path's costs: output made while a link handles a read is
written at the end of the read without a timer; a round trip's acks travel
on the answer and the next request, never alone while traffic flows both
ways; ids come in batches; payloads are put together from cached parts,
byte for byte as encoding them whole.
"""

from __future__ import annotations

import os
import sys
from typing import Any, List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from lightspeed.errors import EncodeError, ProtocolError
from lightspeed.message import CONTROL, REQUEST, RESPONSE
from lightspeed.net.links import Links
from lightspeed.net.requests import Requests
from lightspeed.testing import MemoryMesh
from lightspeed.wire.codec import dumps, loads


class FakeLink:
    def __init__(self) -> None:
        self.flushed = 0

    def flush(self) -> None:
        self.flushed += 1


class WriteSchedulingTests(SynchronousTestCase):
    def test_no_timer_while_reading(self) -> None:
        """
        Output marked while a read is handled waits for the read's end
        (:meth:`Links.flush_read`), with no timer; outside a read it gets
        one, as before.
        """
        clock, link = Clock(), FakeLink()
        links = Links(clock)
        links.reading = True
        links.mark_dirty(link)
        self.assertEqual((clock.getDelayedCalls(), link.flushed), ([], 0))
        links.flush_read()
        self.assertEqual((link.flushed, links.reading), (1, False))
        links.mark_dirty(link)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(0)
        self.assertEqual((link.flushed, clock.getDelayedCalls()), (2, []))

    def test_read_ends_even_if_a_write_fails(self) -> None:
        """
        A link whose flush raises does not leave the table believing a
        read goes on (which would hold later output without a timer).
        """
        class Broken(FakeLink):
            def flush(self) -> None:
                raise RuntimeError("boom")

        links = Links(Clock())
        links.reading = True
        links.mark_dirty(Broken())
        self.assertRaises(RuntimeError, links.flush_read)
        self.assertFalse(links.reading)


def frames_out(kernel: Any) -> int:
    return sum(link.conn.frames_out for link in kernel.network.links())


class RoundTripTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.mesh = MemoryMesh()
        self.a, self.b = self.mesh.kernel("a"), self.mesh.kernel("b")
        self.b.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("echo"),
                                    "echo": lambda e: e.args[0]})
        self.mesh.link(self.a, self.b)
        self.mesh.advance(5.0)

    def chain(self, n: int) -> List[Any]:
        """
        ``n`` requests from a to b, each sent when the last is answered.
        """
        got: List[Any] = []

        def next_one(value: Any = None) -> None:
            if value is not None:
                got.append(value)
            if len(got) < n:
                self.a.request("poe://b/echo/echo", len(got) + 1).addCallback(next_one)

        next_one()
        self.mesh.settle()
        return got

    def test_acks_ride_on_the_traffic(self) -> None:
        """
        Ten sequential requests: b writes its ten answers and nothing else
        (each answer carries the ack of its request); a writes its ten
        requests (each after the first carrying the ack of the last
        answer) and, once traffic stops, one ack alone for the last answer.
        """
        a0, b0 = frames_out(self.a), frames_out(self.b)
        self.assertEqual(self.chain(10), list(range(1, 11)))
        self.mesh.advance(0.1)  # past ACK_DELAY, before any retransmission
        self.assertEqual((frames_out(self.a) - a0, frames_out(self.b) - b0), (11, 10))
        self.assertEqual([len(k.network.delivery.outboxes[o].unacked) for k, o in ((self.a, "b"), (self.b, "a"))],
                         [0, 0])

    def test_destination_parsed_once(self) -> None:
        """
        A destination string is parsed by the first request only; the next
        ones take it from the runtime's cache, and still reach b.
        """
        parsed: List[Any] = []
        registry = self.a.local.registry
        destination = registry.destination
        self.patch(registry, "destination", lambda *a: parsed.append(a[0]) or destination(*a))
        self.assertEqual(self.chain(3), [1, 2, 3])
        self.assertEqual(parsed, ["poe://b/echo/echo"])

    def test_time_out_text(self) -> None:
        """
        The text of a time-out, made only when it happens, names the
        destination and the time.
        """
        self.mesh.links[0].cut()
        failures: List[Any] = []
        self.a.request("poe://b/echo/echo", 1, timeout=2.0).addErrback(failures.append)
        self.mesh.advance(2.5)
        self.assertEqual(str(failures[0].value), "no answer from 'poe://b/echo/echo' within 2.0 s")


    def test_fast_path_refuses_what_the_check_refuses(self) -> None:
        """
        A request straight from its origin, to a state already seen valid:
        one whose items have types the payload check refuses (a bool for an
        int, a float line, a number as a session name) is malformed, as
        before; a well-formed one is answered.
        """
        self.assertEqual(self.chain(1), [1])  # "echo" is now a state seen valid
        dispatch = self.b.network.dispatch
        good = [REQUEST, ["echo"], "echo", [1], None, None, None, 3, 12345]
        for i, bad in ((0, True), (7, True), (7, 1.0), (8, True), (8, 1.5), (1, [7]), (3, "x"), (4, 5), (2, None)):
            payload = list(good)
            payload[i] = bad
            self.assertRaises(ProtocolError, dispatch.arrived, "a", payload)
        self.assertRaises(ProtocolError, dispatch.arrived, "a", good[:8])
        answers: List[Any] = []
        self.patch(self.b.network.requests, "respond", lambda *a: answers.append(a))
        dispatch.arrived("a", good + ["later item"])
        self.assertEqual(answers, [("a", 12345, True, 1)])


    def test_answer_fast_path_refuses_what_the_check_refuses(self) -> None:
        """
        An answer straight from the kernel asked: one whose kind, id or
        ok has a type the payload check refuses (a bool for an int, an int
        for a bool), or that is short, is malformed and leaves the request
        waiting; a well-formed one settles it.
        """
        d = self.a.request("poe://b/echo/echo", 1)
        (request_id,) = self.a.network.requests.pending
        dispatch = self.a.network.dispatch
        good = [RESPONSE, [], request_id, True, "x"]
        for i, bad in ((0, True), (2, True), (2, 1.0), (3, 1), (3, None)):
            payload = list(good)
            payload[i] = bad
            self.assertRaises(ProtocolError, dispatch.arrived, "b", payload)
        self.assertRaises(ProtocolError, dispatch.arrived, "b", good[:4])
        self.assertNoResult(d)
        dispatch.arrived("b", good)
        self.assertEqual(self.successResultOf(d), "x")

    def test_repeated_request_payloads(self) -> None:
        """
        Requests from one call site (the second on are put together from
        the encoded fields kept for it, Network.request_planned) are byte
        for byte what encoding the whole payload gives, with the caller's
        line and a new id each; a request from another line carries that
        line.
        """
        sent: List[bytes] = []
        send = self.a.network.delivery.send
        self.patch(self.a.network.delivery, "send", lambda kernels, payload, deadline=None:
                   sent.append(payload) or send(kernels, payload, deadline))
        line = sys._getframe().f_lineno + 2
        for i in range(3):
            self.a.request("poe://b/echo/echo", i)
        self.a.request("poe://b/echo/echo", 9, timeout=None)
        payloads = [loads(p) for p in sent]
        self.assertEqual([dumps(p) for p in payloads], sent)
        self.assertEqual([p[:8] for p in payloads],
                         [[REQUEST, ["echo"], "echo", [i], None, None, p[6], line + (i == 9)] for i, p in
                          zip([0, 1, 2, 9], payloads)])
        self.assertEqual(payloads[0][6], os.path.join("lightspeed", "test", "test_requestpath.py"))
        self.assertEqual(len({p[8] for p in payloads}), 4)
        self.mesh.settle()
        self.assertEqual(len(self.a.network.requests.pending), 0)


class RequestIdTests(SynchronousTestCase):
    def test_ids_in_batches(self) -> None:
        """
        Ids come from ``os.urandom``, ``ID_BATCH`` at a time: 300 ids read it
        twice, and none repeats.
        """
        from lightspeed.net import requests

        reads: List[int] = []
        urandom = requests.os.urandom
        self.patch(requests.os, "urandom", lambda n: reads.append(n) or urandom(n))
        table = requests.Requests(None)
        ids = {table.new_id() for _ in range(300)}
        self.assertEqual((len(ids), reads), (300, [8 * requests.ID_BATCH] * 2))
        self.assertTrue(all(0 <= i < 2 ** 63 for i in ids))


class FakeNetwork:
    max_payload = 1000
    name = "a"

    def __init__(self) -> None:
        self.sent: List[Any] = []
        self.relay = self
        self.delivery = FakeDelivery(self.sent)

    def _limited(self, payload: bytes) -> bytes:
        if len(payload) > self.max_payload:
            raise EncodeError(f"message of {len(payload)} bytes exceeds the {self.max_payload}-byte limit")
        return payload

    def send(self, kernel: str, body: bytes) -> None:
        self.sent.append((kernel, body))


class FakeDelivery:
    def __init__(self, sent: List[Any]) -> None:
        self.sent = sent

    def send(self, kernels: Any, body: bytes) -> None:
        self.sent.extend((kernel, body) for kernel in kernels)


class PayloadTests(SynchronousTestCase):
    """
    Payloads put together from cached parts are the bytes of encoding the
    whole list.
    """

    ARGS = [(), (b"x" * 32,), ("text", None, True, False, -5, 2 ** 63, 1.5, 1e300),
            ([1, [2, {"k": [None]}]], {"a": b"b"}), tuple(range(30))]

    def test_request_payloads(self) -> None:
        table = Requests(FakeNetwork())
        for kind, sessions, state in ((REQUEST, ["echo"], "echo"), (CONTROL, "*", "op"), (REQUEST, ["a", "b"], "s")):
            for args in self.ARGS:
                for sender in ((None, None, None, None), ("ctl", "st", "f.py", 12)):
                    for request_id in (0, 23, 2 ** 63 - 1):
                        expected = dumps([kind, sessions, state, list(args), *sender, request_id])
                        self.assertEqual(table.payload(kind, sessions, state, args, sender, request_id), expected)

    def test_request_refused(self) -> None:
        """
        An argument that cannot travel, or a payload past the limit, is an
        EncodeError, as encoding the list would give.
        """
        table = Requests(FakeNetwork())
        sender = (None, None, None, None)
        self.assertRaises(EncodeError, table.payload, REQUEST, ["s"], "st", (object(),), sender, 1)
        self.assertRaises(EncodeError, table.payload, CONTROL, [{"k": object()}], "op", (), sender, 1)  # unhashable too
        self.assertRaises(EncodeError, table.payload, REQUEST, ["s"], "st", (b"x" * 2000,), sender, 1)

    def test_response_payloads(self) -> None:
        network = FakeNetwork()
        table = Requests(network)
        values = (b"x" * 32, b"", b"y" * 23, b"y" * 24, b"z" * 255, b"z" * 256, None, [1, "two", {"3": 4.5}],
                  "x" * 100, "", "é" * 63, "\U0001F600" * 63, "a" * 64, 5)
        for ok in (True, False):
            for value in values:
                for request_id in (2 ** 62, 0, 23, 2 ** 16 - 1, 2 ** 16, 2 ** 30 + 7, 2 ** 32 - 1, 2 ** 32, 2 ** 64 - 1,
                                   2 ** 64, -1):
                    table.respond("b", request_id, ok, value)
                    self.assertEqual(network.sent.pop(), ("b", dumps([RESPONSE, [], request_id, ok, value])))
        table.respond("b", 7, True, b"x" * 2000)
        kernel, body = network.sent.pop()
        self.assertEqual(loads(body)[:4], [RESPONSE, [], 7, False])
        self.assertEqual(loads(body)[4][0], "EncodeError")
        table.respond("b", 8, True, "\ud800")  # a lone surrogate cannot travel
        kernel, body = network.sent.pop()
        self.assertEqual(loads(body)[:4], [RESPONSE, [], 8, False])
        self.assertEqual(loads(body)[4][0], "EncodeError")
