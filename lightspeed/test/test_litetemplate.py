# -*- test-case-name: lightspeed.test.test_litetemplate -*-
"""
:obj:`lightspeed.litetemplate.RequestTemplate` on bytes alone: answers taken only
when the full path (decode, :obj:`~lightspeed.message.parse_routed`,
:obj:`~lightspeed.liteparts.receive_entries`,
:obj:`~lightspeed.message.parse_payload`) takes them, with its outcome.
"""

from __future__ import annotations

import struct
from typing import Any, List, Optional, Tuple

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.errors import ProtocolError
from lightspeed.liteparts import Out, payload_head, receive_entries
from lightspeed.litetemplate import RequestTemplate
from lightspeed.message import (
    DEFAULT_HOPS, POST, REQUEST, RESPONSE, ROUTED, parse_payload, parse_routed, routed_body, routed_from,
    routed_head,
)
from lightspeed.test.optional import given, settings, st
from lightspeed.wire.codec import dumps, loads

ID = 0x2F2D521C


def template(out: Out) -> RequestTemplate:
    return RequestTemplate("k", out, payload_head(REQUEST, ["echo"], "ask"), "ask", "me", 1)


def state() -> Tuple[Out, List[int]]:
    """Our stream to ``k`` (start 5) with four payloads unacknowledged, and k's to us, nothing delivered."""
    out = Out(5)
    for _ in range(4):
        out.push(b"p", None)
    return out, [5, 0, 0]


def answer_frame(value: Any = b"x" * 32, ok: Any = True, request_id: int = ID, seq: int = 1, ack: int = 4,
                 ttl: Optional[int] = None, hops: int = DEFAULT_HOPS, shortest: bool = False) -> bytes:
    """An answer as a kernel writes it (``routed_from``), or with every integer in its ``shortest`` form."""
    payload = dumps([RESPONSE, [], request_id, ok, value])
    body = routed_body("k", 5, [("me", 1, seq, ack)], hops, ttl, payload) if shortest \
        else routed_from(routed_head("k", 5, "me", 1), seq, ack, hops, ttl, payload)
    return struct.pack(">I", len(body)) + body


def fast(data: bytes, max_frame: int = 1 << 20) -> Tuple[Any, List[int], List[int]]:
    out, stream = state()
    got = template(out).answer(data, max_frame, stream, ID)
    return got, sorted(out.unacked), stream


def full(data: bytes, max_frame: int = 1 << 20) -> Tuple[Any, List[int], List[int]]:
    """
    What the client's full path makes of ``data`` as one read: the answer
    to :data:`ID` from ``k`` if it is one complete frame that holds it.
    """
    out, stream = state()
    streams = {"k": stream}
    if len(data) < 4 or struct.unpack_from(">I", data)[0] != len(data) - 4 or len(data) - 4 > max_frame:
        return None, sorted(out.unacked), stream
    try:
        message = loads(data[4:])
        if type(message) is not list or not message or message[0] != ROUTED:
            return None, sorted(out.unacked), stream
        origin, incarnation, entries, _, _, payload = parse_routed(message)
        if origin != "k" or origin == "me":
            return None, sorted(out.unacked), stream
        if not receive_entries("me", 1, origin, incarnation, entries, streams, (), out, not payload):
            return None, sorted(out.unacked), streams["k"]
        body = parse_payload(loads(payload))
    except ProtocolError:
        return None, sorted(out.unacked), stream
    if body[0] != RESPONSE or body[2] != ID:
        return None, sorted(out.unacked), streams["k"]
    return (body[3], body[4]), sorted(out.unacked), streams["k"]


class AnswerTests(SynchronousTestCase):
    def test_answer(self) -> None:
        """When one read is exactly the next answer to the request, acknowledging all, then its value, the
        ack applied, the stream moved on with one ack owed: as the full path; a failure too."""
        for data in (answer_frame(), answer_frame("m", ok=False), answer_frame(None),
                     answer_frame(-3), answer_frame(2.5), answer_frame("t" * 200),
                     answer_frame(hops=24), answer_frame(hops=255)):
            self.assertEqual(fast(data), full(data))
            self.assertEqual(fast(data)[1:], ([], [5, 1, 1]))
        self.assertEqual(fast(answer_frame("m", ok=False))[0], (False, "m"))

    def test_other_forms_left(self) -> None:
        """When the answer is one the full path takes but in another form (a ttl, part of the window
        acknowledged, few hops, a value that nests (as an error's), a payload of 256 bytes or more, integers
        in their shortest form), then None and nothing changed: the full path takes it."""
        untouched = (None, [1, 2, 3, 4], [5, 0, 0])
        for data in (answer_frame(ttl=300), answer_frame(ack=3), answer_frame(hops=3),
                     answer_frame(["E", "m"], ok=False), answer_frame({"a": 1}), answer_frame(b"x" * 300), answer_frame(shortest=True)):
            self.assertIsNotNone(full(data)[0])
            self.assertEqual(fast(data), untouched)

    def test_anything_else_not_taken(self) -> None:
        """When the read is anything but that answer (another id, origin, start, seq; not a RESPONSE; ok not
        a bool; two frames, a part of one, a byte after it; above the limit), then None, nothing changed."""
        one = answer_frame()
        wrong_kind = routed_body("k", 5, [("me", 1, 1, 4)], DEFAULT_HOPS, None, dumps([POST, [], "x", [], None,
                                                                                     None, None, None]))
        for data in (answer_frame(request_id=ID + 1), answer_frame(seq=2), answer_frame(seq=0),
                     answer_frame(ok=1), one.replace(b"ak", b"ax"), one + one, one[:-1], one[:10],
                     one[:3] + bytes([one[3] + 1]) + one[4:] + b"\x00", struct.pack(">I", len(wrong_kind)) + wrong_kind,
                     b"\x00\x00\x00\x00", b""):
            self.assertEqual(fast(data), (None, [1, 2, 3, 4], [5, 0, 0]), data)
        self.assertEqual(fast(one, max_frame=len(one) - 5), (None, [1, 2, 3, 4], [5, 0, 0]))

    @settings(max_examples=400, deadline=None)
    @given(st.data())
    def test_mutated_answers(self, data: Any) -> None:
        """When any bytes of an answer are changed, cut or added, then the template takes it only if the
        full path takes it, with the same value, acks and stream."""
        value = data.draw(st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.binary(max_size=40),
                                    st.text(max_size=20), st.lists(st.integers(), max_size=3)))
        frame = bytearray(answer_frame(value, ok=data.draw(st.booleans())))
        for _ in range(data.draw(st.integers(1, 3))):
            at = data.draw(st.integers(0, len(frame)))
            how = data.draw(st.sampled_from(["set", "insert", "delete"]))
            if how == "insert" or at == len(frame):
                frame[at:at] = bytes([data.draw(st.integers(0, 255))])
            elif how == "set":
                frame[at] = data.draw(st.integers(0, 255))
            else:
                del frame[at]
        if data.draw(st.booleans()):  # the length prefix made to fit, so that more than the framing is tested
            frame[:4] = struct.pack(">I", max(len(frame) - 4, 0))
        got = fast(bytes(frame))
        if got[0] is not None:
            self.assertEqual(got, full(bytes(frame)))
