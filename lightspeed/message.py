# -*- test-case-name: lightspeed.test.test_wire -*-
"""
The messages kernels exchange, as CBOR arrays whose first item is the type.

See ``docs/protocol.rst`` for the normative description.  Link messages
(HELLO ... LSA) travel one hop; a ROUTED message carries a routing header
that relays read and an opaque payload (a CBOR byte string holding another
CBOR array) that only the destination kernels decode.

Receivers ignore extra trailing items in any array, so later versions can
add fields (per-destination sequence numbers, acknowledgements) without
breaking this one.
"""

from __future__ import annotations

import struct
from typing import Any, List, Optional, Sequence, Tuple

import cbor2

from lightspeed.bounded import BoundedCache
from lightspeed.errors import EncodeError, ProtocolError
from lightspeed.wire.codec import check_plain, dumps_args, dumps_trusted

#: The protocol version this code speaks.  History: 1 — first version;
#: 2 — end-to-end delivery; 3 — the password is checked by SPAKE2 and key
#: confirmation (HELLO "pake", READY "confirm") instead of an HMAC proof.
PROTOCOL_VERSION = 3

# Link messages: [type, ...]
HELLO = 1      # [1, {"version", "kernel", "incarnation", "nonce", "compression", "serializers", "password", "pake"}]
READY = 2      # [2, {"compression": str|None, "confirm": bytes|None}]
BYE = 3        # [3, code, message]
PING = 4       # [4, token]
PONG = 5       # [5, token]
LSA = 6        # [6, origin, incarnation, seq, [[neighbour, cost], ...], proof|None, {"hidden": True}]
ROUTED = 7     # [7, origin, origin_incarnation, [[dest, dest_incarnation, seq, ack], ...], hops_left, ttl_ms|None, payload,
#                 (only to peers that offered "batch") [payload for seq+1, seq+2, ...]]
TRACE = 8      # [8, origin, request_id, destination, [[kernel, time, cost|None], ...]]; see lightspeed.trace

# Payload kinds, inside ROUTED: [kind, ...]
POST = 1       # [1, sessions, state, args, s_session, s_state, s_file, s_line]
CALL = 2       # [2, sessions, state, args, s_session, s_state, s_file, s_line, rsvp]
CALLREPLY = 3  # as POST: the value of a call, posted to its RSVP
REQUEST = 4    # [4, sessions, state, args, s_session, s_state, s_file, s_line, request_id]
RESPONSE = 5   # [5, sessions(unused, []), request_id, ok, value_or_[type, message]]
UNDELIVERABLE = 6  # as POST, state "_undeliverable", args [destination, reason, args]; never bounced
CONTROL = 7    # as REQUEST, state = operation ("sessions", "states", "monitor_register", ...); answered by RESPONSE

#: The caller state of monitor events: a receiver does not report them.
MONITOR_STATE = "_monitor"

#: The most links one LSA may list.
MAX_LSA_LINKS = 4096

#: How many relays a routed message may cross.
DEFAULT_HOPS = 32

LINK_TYPES = frozenset({HELLO, READY, BYE, PING, PONG, LSA, ROUTED, TRACE})


_encodings = BoundedCache(8192)


def _head(major: int, n: int) -> bytes:
    """
    A CBOR item head of major type ``major`` (0: unsigned integer, 2: byte
    string) with argument ``n``, in its shortest form.
    """
    if n < 24:
        return bytes((major + n,))
    if n < 0x100:
        return bytes((major + 24, n))
    if n < 0x10000:
        return bytes((major + 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((major + 26,)) + n.to_bytes(4, "big")
    return bytes((major + 27,)) + n.to_bytes(8, "big")


def _bstr_head(length: int) -> bytes:
    return _head(0x40, length)


def _uint(n: int) -> bytes:
    """
    CBOR for a small unsigned integer (a sequence number, an ack, hops).
    """
    if n < 4096:
        return _SMALL[n]
    if n < 0x10000:  # such as a request's TTL in milliseconds
        return _U16(0x19, n)
    return _uint_slow(n)


def _uint_slow(n: int) -> bytes:
    return _head(0, n) if n < 0x10000000000000000 else cbor2.dumps(n)


_SMALL = [_uint_slow(n) for n in range(4096)]
_U16 = struct.Struct(">BH").pack
#: The heads of byte strings shorter than 256 bytes.
_BSTR = [_bstr_head(n) for n in range(256)]


def _encoded(value: Any) -> bytes:
    """
    The CBOR of a name or an incarnation, from a bounded cache.
    """
    encoded = _encodings.get(value)
    if encoded is None:
        encoded = _encodings.remember(value, cbor2.dumps(value))
    return encoded


_text = _big = _encoded


#: One destination of a routed message: ``(kernel, incarnation, seq, ack)``.
Entry = Tuple[str, int, int, int]


def routed_body(origin: str, incarnation: int, entries: Sequence[Entry], hops: int, ttl: Optional[int],
                payload: bytes) -> bytes:
    """
    The CBOR body of ``[ROUTED, origin, incarnation, entries, hops, ttl,
    payload]``, written by hand from cached pieces so that only the
    sequence numbers and the payload are new bytes: relays re-wrap a
    payload without decoding it.
    """
    parts = [b"\x87\x07", _text(origin), _big(incarnation), _array_head(len(entries))]
    for dest, dest_incarnation, seq, ack in entries:
        parts.append(b"\x84" + _text(dest) + _big(dest_incarnation) + _uint(seq) + _uint(ack))
    parts.append(_uint(hops))
    parts.append(b"\xf6" if ttl is None else _uint(max(ttl, 0)))
    parts.append(_bstr_head(len(payload)))
    parts.append(payload)
    return b"".join(parts)


def routed_head(origin: str, incarnation: int, dest: str, dest_incarnation: int) -> bytes:
    """
    The fixed start of a ROUTED body from one start of a kernel to one
    start of another: what :func:`routed_from` completes.
    """
    return b"\x87\x07" + _text(origin) + _big(incarnation) + b"\x81\x84" + _text(dest) + _big(dest_incarnation)


_SEQ_ACK = struct.Struct(">BIBI")


def routed_from(head: bytes, seq: int, ack: int, hops: int, ttl: Optional[int], payload: bytes) -> bytes:
    """
    :func:`routed_body` for one destination, the common case, from its
    :func:`routed_head`.  Sequence number and ack below 2**32 are written
    as 32-bit CBOR integers (valid CBOR, if not the shortest form), the
    rest as :func:`routed_body` writes it.
    """
    n = len(payload)
    if seq < 0x100000000 and ack < 0x100000000:
        middle = _SEQ_ACK.pack(0x1a, seq, 0x1a, ack)
    else:
        middle = _uint(seq) + _uint(ack)
    return b"".join((head, middle, _SMALL[hops] if hops < 4096 else _uint_slow(hops),
                     b"\xf6" if ttl is None else _uint(max(ttl, 0)), _BSTR[n] if n < 256 else _bstr_head(n),
                     payload))


#: The most payloads one ROUTED message may carry (see :func:`routed_batch`).
MAX_BATCH = 1024


def routed_batch(head: bytes, seq: int, ack: int, hops: int, payloads: Sequence[bytes]) -> bytes:
    """
    A ROUTED body carrying several payloads for consecutive sequence
    numbers from ``seq`` (no ``ttl``): :func:`routed_from`'s layout with an
    eighth item, the array of the payloads after the first.  Only for
    links whose peer offered ``"batch"`` in its HELLO.
    """
    first = routed_from(head, seq, ack, hops, None, payloads[0])
    rest = payloads[1:]
    parts: List[bytes] = [b""] * (2 * len(rest))
    # Each payload after its head; with every payload under 256 bytes (the
    # common case) the heads come from the table without a Python step each.
    sizes = list(map(len, rest))
    parts[0::2] = map(_BSTR.__getitem__, sizes) if max(sizes, default=0) < 256 else map(_bstr_head, sizes)
    parts[1::2] = rest
    return b"".join([b"\x88", first[1:], _array_head(len(rest)), *parts])


#: The encoded fields of payloads before and after their arguments, by
#: ``(kind, sessions, state, s_session, s_state, s_file)``.
_payload_ends = BoundedCache(4096)


def payload_body(kind: int, sessions: Any, state: Optional[str], args: Tuple[Any, ...], s_session: Optional[str],
                 s_state: Optional[str], s_file: Optional[str], s_line: Optional[int],
                 extra: Optional[int] = None) -> bytes:
    """
    The CBOR of the payload ``[kind, sessions, state, args, s_session,
    s_state, s_file, s_line]`` (and ``extra`` after them unless it is
    :obj:`None`: a REQUEST's or CONTROL's id), byte for byte what
    ``cbor2.dumps`` of that list writes, from cached encodings of the
    fields before and after the arguments (by call site: the line is one of
    them): only the arguments and ``extra`` are new bytes.

    :raises EncodeError: if an argument cannot travel (see
        :func:`~lightspeed.wire.codec.check_plain`).
    """
    ends = payload_ends(kind, sessions, state, s_session, s_state, s_file, s_line)
    if extra is not None:
        head, tail = with_extra(ends)
        ends = (head, tail + dumps_trusted(extra))
    return joined_payload(ends, args)


def with_extra(ends: Tuple[bytes, bytes]) -> Tuple[bytes, bytes]:
    """
    The ends of an eight-item payload (from :func:`payload_ends`) as those
    of a nine-item one, whose ninth item (a REQUEST's id, a CALL's RSVP)
    is put after the second end.
    """
    return b"\x89" + ends[0][1:], ends[1]


def payload_ends(kind: int, sessions: Any, state: Optional[str], s_session: Optional[str], s_state: Optional[str],
                 s_file: Optional[str], s_line: Optional[int]) -> Tuple[bytes, bytes]:
    """
    The CBOR of an eight-item payload's fields before its arguments (with
    the array's head) and after them, cached: what
    :func:`joined_payload` puts around the arguments.
    """
    key = (kind, sessions, state, s_session, s_state, s_file, s_line)
    ends = _payload_ends.get(key)
    if ends is None:
        ends = _payload_ends.remember(key, _ends(*key))
    return ends


def joined_payload(ends: Tuple[bytes, bytes], args: Tuple[Any, ...]) -> bytes:
    """
    The payload that ``ends`` (from :func:`payload_ends`) make with
    ``args`` between them.

    :raises EncodeError: if an argument cannot travel (see
        :func:`~lightspeed.wire.codec.check_plain`).
    """
    return b"".join((ends[0], dumps_args(args), ends[1]))


def _ends(kind: int, sessions: Any, state: Optional[str], s_session: Optional[str], s_state: Optional[str],
          s_file: Optional[str], s_line: Optional[int]) -> Tuple[bytes, bytes]:
    """
    The CBOR of an eight-item payload's fields before its arguments (with
    the array's head) and after them.
    """
    line = _SMALL[s_line] if type(s_line) is int and 0 <= s_line < 4096 else dumps_trusted(s_line)
    return (b"\x88" + dumps_trusted([kind, sessions, state])[1:],
            dumps_trusted([s_session, s_state, s_file])[1:] + line)


#: Received payloads' templates (see :func:`post_template`), apart from the
#: sender's cache so that what peers send cannot evict it.
_templates = BoundedCache(1024)


def post_template(sessions: Any, state: str, s_session: Optional[str], s_state: Optional[str],
                  s_file: Optional[str], s_line: Optional[int]) -> Tuple[bytes, bytes]:
    """
    The bytes of a POST with these fields (as
    :func:`~lightspeed.message.parse_payload` accepts them) before and after
    its arguments, as :func:`payload_body` writes them: a payload that is
    exactly ``head + arguments + tail`` decodes to a POST with these fields.

    :returns: ``(head, tail)``.
    """
    key = (tuple(sessions) if type(sessions) is list else sessions, state, s_session, s_state, s_file, s_line)
    template = _templates.get(key)
    if template is None:
        template = _templates.remember(key, _ends(POST, *key))
    return template


def parse_batch(message: List[Any]) -> List[bytes]:
    """
    :returns: the payloads of a ROUTED message with eight items (several
        payloads, one destination, no ``ttl``); its other fields are
        checked by :func:`parse_routed`.
    :raises ProtocolError: if it is malformed.
    """
    entries, more = message[3], message[7]
    if type(more) is not list or type(entries) is not list or len(entries) != 1 or message[5] is not None \
            or type(message[6]) is not bytes or len(more) >= MAX_BATCH:
        raise malformed("ROUTED batch")
    # Every payload a non-empty byte string, checked by C loops (no Python
    # step per payload): the set of their types, then their truth.
    if not message[6] or not set(map(type, more)) <= _ONLY_BYTES or not all(more):
        raise malformed("ROUTED batch payload")
    payloads = [message[6]]
    payloads += more
    return payloads


_ONLY_BYTES = frozenset({bytes})


def _array_head(length: int) -> bytes:
    return bytes((0x80 + length,)) if length < 24 else b"\x98" + bytes((length,)) if length < 256 \
        else b"\x99" + length.to_bytes(2, "big")


def malformed(what: str) -> ProtocolError:
    return ProtocolError(f"malformed message: {what}", "malformed")


def check_message(message: Any) -> int:
    """
    :returns: the type of a decoded link message.
    :raises ProtocolError: if it is not a non-empty array starting with a
        known type.
    """
    if type(message) is not list or not message:
        raise malformed("not a non-empty array")
    kind = message[0]
    if type(kind) is not int or kind not in LINK_TYPES:
        raise ProtocolError(f"unknown message type {kind!r}", "unknown-type")
    return kind


def parse_routed(message: List[Any]) -> Tuple[str, int, List[Entry], int, Optional[int], bytes]:
    """
    :returns: ``(origin, incarnation, entries, hops_left, ttl, payload)`` of
        a ROUTED message, each entry ``(kernel, incarnation, seq, ack)``.
    :raises ProtocolError: if a field has the wrong type.
    """
    if len(message) < 7:
        raise malformed("ROUTED needs 7 items")
    _, origin, incarnation, entries, hops, ttl, payload = message[:7]
    if type(origin) is not str or type(incarnation) is not int or type(entries) is not list \
            or type(hops) is not int or type(payload) is not bytes or not (ttl is None or type(ttl) is int):
        raise malformed("ROUTED field types")
    out = []
    for entry in entries:
        if type(entry) is not list or len(entry) != 4 or type(entry[0]) is not str \
                or type(entry[1]) is not int or type(entry[2]) is not int or type(entry[3]) is not int \
                or entry[2] < 0 or entry[3] < 0:
            raise malformed("ROUTED destination entry")
        out.append((entry[0], entry[1], entry[2], entry[3]))
    return origin, incarnation, out, hops, ttl, payload


def parse_lsa(message: List[Any]) -> Tuple[str, int, int, Tuple[Tuple[str, int], ...], Any]:
    """
    :returns: ``(origin, incarnation, seq, links, proof)`` of an LSA message;
        ``proof`` is its sixth item (a signature, see :obj:`lightspeed.adverts`),
        :obj:`None` if absent, checked by the caller.
    :raises ProtocolError: if a field has the wrong type.
    """
    if len(message) < 5:
        raise malformed("LSA needs 5 items")
    _, origin, incarnation, seq, links = message[:5]
    if type(origin) is not str or type(incarnation) is not int or type(seq) is not int \
            or type(links) is not list:
        raise malformed("LSA field types")
    if len(links) > MAX_LSA_LINKS:
        raise malformed(f"LSA lists {len(links)} links, more than {MAX_LSA_LINKS}")
    out = []
    for link in links:
        if type(link) is not list or len(link) != 2 or type(link[0]) is not str \
                or type(link[1]) is not int or link[1] < 1:
            raise malformed("LSA link")
        out.append((link[0], link[1]))
    proof = message[5] if len(message) > 5 else None
    try:
        check_plain(proof)  # it is passed on: what the decoder accepts, the encoder must send
    except EncodeError as e:
        raise malformed(f"LSA proof cannot be passed on: {e}") from None
    return origin, incarnation, seq, tuple(sorted(out)), proof


def lsa_hidden(message: List[Any]) -> bool:
    """
    Whether an LSA message says its origin is hidden: a seventh item that is
    a map with ``"hidden": true`` (the sixth, the proof, is then null when
    the advert is not signed).
    """
    return len(message) > 6 and type(message[6]) is dict and message[6].get("hidden") is True


def parse_payload(payload: Any) -> List[Any]:
    """
    Check the common head of a decoded payload: ``[kind, sessions, state,
    args, s_session, s_state, s_file, s_line, extra]``.

    :raises ProtocolError: if a field has the wrong type.
    """
    if type(payload) is not list or len(payload) < 2 or type(payload[0]) is not int:
        raise malformed("payload")
    kind = payload[0]
    if kind == RESPONSE:
        if len(payload) < 5 or type(payload[2]) is not int or type(payload[3]) is not bool:
            raise malformed("RESPONSE")
        return payload
    if kind not in (POST, CALL, CALLREPLY, REQUEST, UNDELIVERABLE, CONTROL) or len(payload) < 8:
        raise malformed(f"payload kind {kind!r}")
    _, sessions, state, args, s_session, s_state, s_file, s_line = payload[:8]
    if type(sessions) is list:
        for name in sessions:
            if type(name) is not str:
                raise malformed("payload session name")
    elif sessions != "*":
        raise malformed("payload sessions")
    if type(state) is not str or type(args) is not list:
        raise malformed("payload state or args")
    if not (s_session is None or type(s_session) is str) or not (s_state is None or type(s_state) is str):
        raise malformed("payload sender")
    if not (s_file is None or type(s_file) is str) or not (s_line is None or type(s_line) is int):
        raise malformed("payload caller")
    if kind == CALL and (len(payload) < 9 or type(payload[8]) is not str):
        raise malformed("CALL rsvp")
    if (kind == REQUEST or kind == CONTROL) and (len(payload) < 9 or type(payload[8]) is not int):
        raise malformed("REQUEST id")
    return payload


def optional_str(value: Any) -> Optional[str]:
    return value if value is None or type(value) is str else None
