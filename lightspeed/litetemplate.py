# -*- test-case-name: lightspeed.test.test_litetemplate -*-
"""
The fixed bytes of ClientLite's requests to one destination over one
stream, and of their answers: a request is one ``struct`` pack of its
frame's head (length, routed head, seq, ack, hops, ttl, payload head) and
one join of its payload; an answer is taken if its bytes up to the value
are exactly those a kernel writes for it (one unpack compared with what
is expected), and only its value is decoded.  Anything else is left to
the full path (:meth:`lightspeed.litelink.LiteLink._take`), which stays
the reference: this module accepts no frame that path would refuse.
"""

from __future__ import annotations

import struct
from typing import Any, List, Optional, Tuple

from lightspeed.errors import ProtocolError
from lightspeed.liteparts import RTO_MIN, Out
from lightspeed.message import routed_head
from lightspeed.wire.codec import loads_value

__all__ = ["RequestTemplate"]

#: Body bytes after the routed head and before the payload: seq, ack, hops, ttl, the payload's head; in a
#: request (a 16-bit ttl) and in an answer (none).
_MIDDLE, _ANSWER_MIDDLE = 17, 15
#: The start of a RESPONSE payload up to its id: a 5-item array, RESPONSE, no sessions, a 32-bit id follows.
_RESPONSE = b"\x85\x05\x80\x1a"
#: By a CBOR item's first byte: whether it is one that cannot nest, decoded alone as in its array (integers,
#: definite byte and text strings, simple values, floats; not arrays, maps, tags or indefinite strings).
_LEAF = bytes(0 if byte in (0x5f, 0x7f) or 0x80 <= byte < 0xe0 else 1 for byte in range(256))


class RequestTemplate:
    """
    Requests to one destination (``kernel`` and the :obj:`payload head
    <lightspeed.liteparts.payload_head>` ``phead``) in the stream ``out``,
    from one start of the client (``name``, ``incarnation``).

    :meth:`lightspeed.clientlite.ClientLite._fast` writes a request with
    :attr:`pack` (its payload under 256 bytes, hops DEFAULT_HOPS, ttl in ms
    from 256 to 65,535: a 16-bit integer, its shortest form) as
    :func:`~lightspeed.message.routed_from` writes it (which is the layout
    a kernel reads without cbor2), and the payload's end
    after the args with :data:`~lightspeed.liteparts.TAIL`, as
    :obj:`~lightspeed.liteparts.request_payload` does.
    """

    __slots__ = ("kernel", "out", "phead", "state", "head", "reply", "pack", "fixed", "unpack", "unpack_short",
                 "size", "start")

    def __init__(self, kernel: str, out: Out, phead: bytes, state: str, name: str, incarnation: int) -> None:
        self.kernel, self.out, self.phead, self.state = kernel, out, phead, state
        #: The routed head of our requests, and of the kernel's answers to us.
        self.head = routed_head(name, incarnation, kernel, out.incarnation)
        self.reply = routed_head(kernel, out.incarnation, name, incarnation)
        #: length, head, 0x1a seq, 0x1a ack, 0x18 hops, 0x19 ttl, 0x58 payload length.
        self.pack = struct.Struct(">I%dsBIBIBBBHBB" % len(self.head)).pack
        #: A request frame's length but its payload's.
        self.fixed = len(self.head) + _MIDDLE
        #: length, reply, 0x1a seq, 0x1a ack, 0x18 (hops skipped), 0xf6 (no ttl), 0x58 payload length,
        #: _RESPONSE, id, ok, the value's first byte: an answer's bytes up to its value, and its head's first.
        answer = struct.Struct(">I%dsBIBIBxBBB4sIBB" % len(self.reply))
        self.unpack, self.size = answer.unpack_from, answer.size
        #: The same with a payload under 24 bytes: its head is one byte.
        self.unpack_short = struct.Struct(">I%dsBIBIBxBB4sIBB" % len(self.reply)).unpack_from
        #: Where an answer's payload starts, if its head is two bytes.
        self.start = 4 + len(self.reply) + _ANSWER_MIDDLE

    def answer(self, data: bytes, max_frame: int, stream: List[int], request_id: int) -> Optional[Tuple[bool, Any]]:
        """
        ``(ok, value)`` if ``data`` (one read) is exactly one frame
        holding the answer to ``request_id`` as a kernel writes it: the
        reply head, the next seq of ``stream`` (whose start must be the
        stream's), an ack of everything in :attr:`out`, one-byte hops, no
        ttl, a payload of at most 255 bytes that ends the frame and is
        ``[RESPONSE, [], request_id, ok, value]``; then ``out`` is
        acknowledged and ``stream`` moves on as the full path would move it.
        :obj:`None` and nothing changed otherwise.  Only a value that
        cannot nest (not an array, map or tag: its depth does not depend on
        the array around it) is decoded alone, with :obj:`loads_value`.
        """
        end = len(data)
        out, reply = self.out, self.reply
        n = end - self.start  # the payload's length, if its head is two bytes
        if end - 4 > max_frame or stream[0] != out.incarnation:
            return None
        try:
            if 24 <= n < 256:  # 0x58, the length
                got = self.unpack(data)
                if got[:12] != (end - 4, reply, 0x1a, stream[1] + 1, 0x1a, out.seq, 0x18, 0xf6, 0x58, n, _RESPONSE,
                                request_id):
                    return None
                ok, first, start = got[12], got[13], self.size - 1
            elif 9 <= n + 1 < 24:  # one byte, 0x40 + the length
                got = self.unpack_short(data)
                if got[:11] != (end - 4, reply, 0x1a, stream[1] + 1, 0x1a, out.seq, 0x18, 0xf6, 0x41 + n, _RESPONSE,
                                request_id):
                    return None
                ok, first, start = got[11], got[12], self.size - 2
            else:
                return None
            if (ok != 0xf5 and ok != 0xf4) or not _LEAF[first]:
                return None
            value = loads_value(data, start)
        except (struct.error, ProtocolError):  # shorter than that; not CBOR
            return None
        if out.unacked:  # all of them (Out.acked)
            out.unacked.clear()
            out.rto = RTO_MIN
        stream[1] += 1
        stream[2] += 1
        return ok == 0xf5, value
