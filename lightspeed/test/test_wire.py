# -*- test-case-name: lightspeed.test.test_wire -*-
"""
Tests for the sans-IO wire layer: framing, codec, messages and the
handshake state machine of :obj:`lightspeed.wire.connection`.
"""

from __future__ import annotations

import datetime
from typing import Any, List, Optional

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.errors import EncodeError, FrameTooLarge, ProtocolError
from lightspeed.message import BYE, HELLO, LSA, PING, PONG, ROUTED, payload_body, routed_body, routed_from, \
    routed_head
from lightspeed.wire.codec import MAX_DEPTH, dumps, dumps_args, dumps_value, loads, loads_joined, loads_value
from lightspeed.wire.connection import Connection, LinkConfig, PeerInfo
from lightspeed.wire.framing import Framer, frame
from lightspeed.test.optional import given, settings, st


class FramingTests(SynchronousTestCase):
    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.binary(max_size=300), max_size=20), st.data())
    def test_any_chunking(self, bodies, data):
        """When frames arrive cut at any points, then the same bodies come out in order."""
        stream = b"".join(frame(b) for b in bodies)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
        framer = Framer()
        out: List[bytes] = []
        start = 0
        for cut in cuts + [len(stream)]:
            out += framer.feed(stream[start:cut])
            start = cut
        self.assertEqual(out, bodies)
        self.assertEqual(framer.buffered, 0)

    def test_too_large(self):
        """When a length prefix exceeds the maximum, then FrameTooLarge before the body is buffered."""
        framer = Framer(max_frame=10)
        self.assertEqual(framer.feed(frame(b"x" * 10)), [b"x" * 10])
        self.assertRaises(FrameTooLarge, framer.feed, frame(b"x" * 11)[:4])

    def test_whole_frames_alone(self):
        """When reads hold exactly one whole frame each (Framer.feed's quick path), then one over the maximum still
        raises FrameTooLarge, and a read after a partial one is joined to it."""
        framer = Framer(max_frame=10)
        self.assertEqual([framer.feed(frame(b"x" * n)) for n in (0, 10)], [[b""], [b"x" * 10]])
        self.assertRaises(FrameTooLarge, Framer(max_frame=10).feed, frame(b"x" * 11))
        # A read that completes a partial frame is joined to it, even one that looks whole on its own:
        # the frame of b"Z" + frame(b"Q") read as its first 5 bytes, then the 5 of frame(b"Q").
        body = b"Z" + frame(b"Q")
        self.assertEqual(framer.feed(frame(body)[:5]), [])
        self.assertEqual(framer.feed(frame(b"Q")), [body])
        self.assertEqual(framer.buffered, 0)


class CodecTests(SynchronousTestCase):
    def test_plain_types_round_trip(self):
        """When plain types are encoded, then they decode equal (tuples as lists)."""
        value = [None, True, 1, -2**70, 1.5, "s", b"b", {"k": [1, {"n": None}]}]
        self.assertEqual(loads(dumps(value)), value)
        self.assertEqual(loads(dumps((1, 2))), [1, 2])

    def test_rich_types_refused_on_encode(self):
        """When a date, set, or arbitrary object is encoded, then EncodeError (a TypeError)."""
        for bad in [datetime.date(2020, 1, 1), {1, 2}, object(), [frozenset()]]:
            self.assertRaises(EncodeError, dumps, bad)
        self.assertTrue(issubclass(EncodeError, TypeError))

    def test_tags_refused_on_decode(self):
        """When CBOR holds a date, set or unknown tag, then ProtocolError."""
        import cbor2

        for data in [cbor2.dumps(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)),
                     cbor2.dumps({1, 2}), cbor2.dumps(cbor2.CBORTag(4000, 1)), b"\xff", b"\x82\x01", b""]:
            self.assertRaises(ProtocolError, loads, data)

    def test_deep_nesting_refused(self):
        """When containers nest deeper than the limit, then ProtocolError, not a crash."""
        self.assertRaises(ProtocolError, loads, b"\x81" * 10000 + b"\x00")

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_garbage(self, data):
        """When garbage is decoded, then it is a value or ProtocolError, nothing else."""
        try:
            loads(data)
        except ProtocolError:
            pass


class ByHandTests(SynchronousTestCase):
    """
    ``dumps_value``, ``dumps_args`` and ``loads_value`` write and read short
    strings by hand: the bytes and values must be exactly cbor2's, and what
    cbor2 refuses they refuse with the same exception.
    """

    VALUES = [b"", b"x", b"y" * 23, b"z" * 24, b"w" * 255, b"v" * 256, "", "a", "\u00e9t\u00e9", "x" * 63, "x" * 64,
              "\U0001f600" * 15, "\U0001f600" * 16, 0, -1, 2**64, 1.5, None, True, [b"x"], {"k": "v"}]

    def test_dumps_value_as_dumps(self):
        """When a value is written by dumps_value, then it is the bytes of dumps()."""
        for value in self.VALUES:
            self.assertEqual(dumps_value(value), dumps(value), value)

    def test_dumps_args_as_dumps(self):
        """When arguments are written by dumps_args, then they are the bytes of dumps() of the tuple or list."""
        for value in self.VALUES:
            self.assertEqual(dumps_args((value,)), dumps((value,)), value)
            self.assertEqual(dumps_args([value, value]), dumps([value, value]), value)
        self.assertEqual(dumps_args(()), dumps(()))

    def test_refused_as_dumps(self):
        """When a value cannot travel (a set, a lone surrogate, in a list), then EncodeError, as dumps() raises."""
        for bad in [{1}, "\ud800", "a\udfff" * 40, [object()]]:
            self.assertRaises(EncodeError, dumps, bad)
            self.assertRaises(EncodeError, dumps_value, bad)
            self.assertRaises(EncodeError, dumps_args, (bad,))

    def test_loads_value_as_loads(self):
        """When an item that ends the data is read by loads_value, then it is the value loads() gives."""
        for value in self.VALUES:
            data = b"\x85\x05" + dumps(value)
            got = loads_value(data, 2)
            self.assertEqual((type(got), got), (type(loads(data[2:])), loads(data[2:])), value)

    def test_loads_value_leaves_the_rest_to_loads(self):
        """
        When the item is not a shortest-form string that ends the data (bytes after it, a long head, one
        cut short), then loads() decides: the same value, or ProtocolError.
        """
        for data in [b"\x43abcdef", b"\x58\x03abc", b"\x79\x00\x02ab", b"\x58", b"\x78", b"\x40",
                     b"\x45ab", b"\x58\x05ab", b"\x01"]:
            try:
                expected: Any = (loads(data),)
            except ProtocolError:
                self.assertRaises(ProtocolError, loads_value, data, 0)
            else:
                self.assertEqual((loads_value(data, 0),), expected, data)

    def test_loads_value_refuses_bad_utf8(self):
        """When a text item is not valid UTF-8 (a bare continuation byte, an encoded surrogate), then ProtocolError."""
        for data in [b"\x61\x80", b"\x63\xed\xa0\x80", b"\x78\x18" + b"\xff" * 24]:
            self.assertRaises(ProtocolError, loads, data)
            self.assertRaises(ProtocolError, loads_value, data, 0)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=40), st.integers(0, 3))
    def test_loads_value_garbage(self, data, start):
        """When garbage is read by loads_value, then it is what loads() makes of it: that value or ProtocolError."""
        data = b"\x00" * start + data
        if len(data) <= start:
            return
        try:
            expected = repr(loads(data[start:]))  # (a NaN is not equal to itself)
        except ProtocolError:
            self.assertRaises(ProtocolError, loads_value, data, start)
        else:
            self.assertEqual(repr(loads_value(data, start)), expected)


class JoinedDecodingTests(SynchronousTestCase):
    """
    ``loads_joined`` decodes several items in one call, exactly as ``loads``
    one by one, or gives up (``None``) for the caller to decode them alone.
    """

    def test_same_as_one_by_one(self):
        """When items of any count and size are joined, then they decode to what loads gives each."""
        for count in (1, 2, 23, 24, 255, 256, 300):
            items = [dumps([i, "s" * (i % 40), b"b" * i, {"k": [i]}]) for i in range(count)]
            self.assertEqual(loads_joined(items), [loads(item) for item in items])

    def test_gives_up(self):
        """When an item is truncated, tagged, missing or as deep as the limit, then None."""
        import cbor2

        too_deep = b"\x81" * (MAX_DEPTH + 1) + b"\x00"
        for items in ([b"\x82\x01"], [b"\x01", cbor2.dumps(cbor2.CBORTag(4000, 1))], [b"\x01", b""], [too_deep]):
            self.assertIsNone(loads_joined(items))

    def test_as_deep_as_the_limit(self):
        """When an item is as deep as loads takes alone, then it decodes joined too."""
        deepest = b"\x81" * MAX_DEPTH + b"\x00"
        self.assertEqual(loads_joined([b"\x01", deepest]), [1, loads(deepest)])

    def test_shifted_boundaries(self):
        """When items decode only across their declared boundaries, then None (each must fill its own bytes)."""
        a, b = dumps([1, "two", b"three"]), dumps(["four", 5])
        joined = a + b
        for cut in (1, 3, len(a) - 1, len(a) + 1, len(joined) - 1):
            self.assertIsNone(loads_joined([joined[:cut], joined[cut:]]))
        # Two items in the first string (the last string's item left over).
        self.assertIsNone(loads_joined([dumps(1) + dumps(2), dumps(3)]))
        self.assertEqual(loads_joined([a, b]), [loads(a), loads(b)])

    def test_long_items(self):
        """When items are longer than the decoder reads at a time, then each is still checked where it ends."""
        items = [dumps(["s" * n, b"b" * (3 * n)]) for n in (100, 1000, 5000, 3)]
        self.assertEqual(loads_joined(items), [loads(item) for item in items])
        self.assertIsNone(loads_joined([items[0] + items[1][:7], items[1][7:]] + items[2:]))


class PayloadBodyTests(SynchronousTestCase):
    """
    ``payload_body`` writes a payload from cached pieces: byte for byte what
    encoding the whole list writes, or the receivers' vectors would change.
    """

    CASES = [
        (1, ("sink",), "hit", (b"x" * 32,), "ctl", None, "/a/b.py", 12),
        (3, "*", "st", (), None, None, None, None),
        (1, ("a", "b"), "s", (b"",), "x", "y", "f", 5000),
        (1, ("a",), "s", (b"y" * 300,), "x", "y", "f", 2**40),
        (1, ("a",), "s", (b"z" * 70000,), "x", "y", "f", -3),
        (1, ("a",), "s", (1, "two", [3], {"k": None}, 2.5, True, -2**70), "x", "y", "f", 0),
    ]

    def test_same_bytes_as_dumps(self):
        """When a payload is written from cached pieces, then it is the bytes of dumps() of its list."""
        for case in self.CASES * 2:  # the second time from the caches
            self.assertEqual(payload_body(*case), dumps(list(case)))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=30), st.integers(), st.none()),
                    max_size=3),
           st.one_of(st.none(), st.integers(min_value=-5, max_value=2**65)))
    def test_same_bytes_any_args(self, args, line):
        """When any plain arguments and line are written, then the bytes are those of dumps()."""
        case = (1, ("s",), "st", tuple(args), "me", None, "f.py", line)
        self.assertEqual(payload_body(*case), dumps(list(case)))

    def test_extra_item(self):
        """When an extra item (a request id) is given, then it is the ninth item, as dumps() of the longer list."""
        for case in self.CASES * 2:
            for extra in (0, 23, 2 ** 63 - 1, 2 ** 64):
                self.assertEqual(payload_body(*case, extra=extra), dumps([*case, extra]))

    def test_refuses_rich_arguments(self):
        """When an argument cannot travel, then EncodeError, as dumps() raises."""
        self.assertRaises(EncodeError, payload_body, 1, ("s",), "st", ({1},), None, None, None, 1)


class RoutedFromTests(SynchronousTestCase):
    def test_ttl_shortest_form(self):
        """When a ROUTED body carries a TTL at the edges of each CBOR integer size, then its bytes end as cbor2 writes them."""
        head = routed_head("a", 1, "b", 2)
        for ttl in [0, 23, 24, 255, 256, 4095, 4096, 10_000, 65535, 65536, 2 ** 32 - 1, 2 ** 32]:
            body = routed_from(head, 5, 4, 32, ttl, b"x")
            self.assertEqual(loads(body)[5], ttl)
            self.assertTrue(body.endswith(b"\x18\x20" + dumps(ttl) + b"\x41x"), ttl)


class Side:
    """
    One end of a pair of Connections, recording what happens.
    """

    def __init__(self, name: str, incarnation: int = 1, admit_reason: Optional[str] = None, **config: Any) -> None:
        self.ups: List[PeerInfo] = []
        self.messages: List[list] = []
        self.closes: List[tuple] = []
        self.admit_reason = admit_reason
        self.conn = Connection(LinkConfig(name, incarnation, **config), self.admit, self.ups.append,
                               self.messages.append, lambda *a: self.closes.append(a), lambda: None)

    def admit(self, name: str, incarnation: int) -> Optional[str]:
        return self.admit_reason


def pump(a: Side, b: Side, rounds: int = 10) -> None:
    for _ in range(rounds):
        out_a, out_b = a.conn.take_output(), b.conn.take_output()
        if not out_a and not out_b:
            return
        if out_a:
            b.conn.receive(out_a)
        if out_b:
            a.conn.receive(out_b)


def pair(a_kw: Optional[dict] = None, b_kw: Optional[dict] = None) -> tuple:
    a, b = Side("a", 1, **(a_kw or {})), Side("b", 2, **(b_kw or {}))
    a.conn.start()
    b.conn.start()
    pump(a, b)
    return a, b


class HandshakeTests(SynchronousTestCase):
    def test_up(self):
        """When both ends agree, then both are up and know each other."""
        a, b = pair()
        self.assertEqual(a.ups, [PeerInfo("b", 2, False, batch=True)])
        self.assertEqual(b.ups, [PeerInfo("a", 1, False, batch=True)])
        a.conn.send_message([ROUTED, "a", ["b"], 3, b"x"])
        pump(a, b)
        self.assertEqual(b.messages, [[ROUTED, "a", ["b"], 3, b"x"]])

    def test_ping_answered(self):
        """When a PING arrives, then the Connection answers PONG itself."""
        a, b = pair()
        a.conn.send_message([PING, 7])
        pump(a, b)
        self.assertEqual(a.messages, [[PONG, 7]])

    def test_compression(self):
        """When both ask for zlib, then traffic is compressed and still arrives intact."""
        a, b = pair({"compression": True}, {"compression": True})
        self.assertTrue(a.ups[0].compression)
        big = [ROUTED, "a", ["b"], 3, b"z" * 100000]
        a.conn.send_message(big)
        wire = a.conn.take_output()
        self.assertLess(len(wire), 5000)
        b.conn.receive(wire)
        self.assertEqual(b.messages, [big])

    def test_compression_one_side(self):
        """When only one end asks for zlib, then the link is up uncompressed."""
        a, b = pair({"compression": True}, {})
        self.assertEqual((a.ups[0].compression, b.ups[0].compression), (False, False))

    def test_password(self):
        """When both ends share a password, then the link comes up; a wrong one is refused on both ends."""
        a, b = pair({"password": b"s3cret"}, {"password": b"s3cret"})
        self.assertEqual((a.ups, b.ups), ([PeerInfo("b", 2, False, batch=True)], [PeerInfo("a", 1, False, batch=True)]))
        a, b = pair({"password": b"s3cret"}, {"password": b"other"})
        self.assertEqual(a.ups + b.ups, [])
        codes = {c[0] for c in a.closes + b.closes}
        self.assertEqual(codes, {"auth"})

    def test_password_missing(self):
        """When only one end has a password, then the link is refused with 'auth'."""
        a, b = pair({"password": b"s3cret"}, {})
        self.assertEqual(a.ups + b.ups, [])
        self.assertEqual([c[:2] for c in a.closes], [("auth", "password required")])
        self.assertEqual([c[:2] for c in b.closes], [("auth", "peer requires a password we do not have")])

    def test_version_mismatch(self):
        """When the peer speaks another version, then BYE 'version' naming both."""
        a = Side("a")
        a.conn.start()
        a.conn.take_output()
        a.conn.receive(frame(dumps([HELLO, {"version": 99, "kernel": "b", "incarnation": 1, "nonce": b"n" * 16,
                                            "serializers": ["cbor"], "compression": []}])))
        self.assertEqual(a.closes[0][0], "version")
        self.assertIn("99", a.closes[0][1])
        bye = loads(Framer().feed(a.conn.take_output())[0])
        self.assertEqual(bye[:2], [BYE, "version"])

    def test_admit_refusal(self):
        """When admit refuses the peer's name, then the link closes with its reason."""
        s = Side("x", admit_reason="kernel name 'b' is already used")
        t = Side("b")
        s.conn.start()
        t.conn.start()
        pump(s, t)
        self.assertEqual(s.closes[0][0], "duplicate-name")
        self.assertEqual(t.closes[0][0], "duplicate-name")
        self.assertEqual(t.closes[0][2], True)  # the peer heard why
        self.assertIn("already used", t.closes[0][1])

    def test_same_name_refused(self):
        """When the peer has our own name, then the link is refused."""
        s, t = Side("a"), Side("a")
        s.conn.start()
        t.conn.start()
        pump(s, t)
        self.assertEqual((s.ups, t.ups), ([], []))
        self.assertEqual([c[0] for c in s.closes + t.closes], ["duplicate-name", "duplicate-name"])

    def test_message_before_handshake(self):
        """When a routed message comes before the handshake, then the link closes with 'protocol'."""
        a = Side("a")
        a.conn.start()
        a.conn.receive(frame(dumps([ROUTED, "b", ["a"], 3, b""])))
        self.assertEqual(a.closes[0][0], "protocol")

    def test_malformed_frames(self):
        """When a frame is not CBOR, not an array, or an unknown type, then the link closes, once."""
        for bad, code in [(b"\xff\xff", "malformed"), (dumps({"a": 1}), "malformed"), (dumps([999]), "unknown-type")]:
            a, b = pair()
            a.conn.receive(frame(bad))
            self.assertEqual([c[0] for c in a.closes], [code])
            a.conn.receive(frame(bad))
            self.assertEqual(len(a.closes), 1)

    def test_oversized_frame(self):
        """When a frame exceeds the maximum, then the link closes with frame-too-large."""
        a = Side("a", max_frame=100)
        a.conn.start()
        a.conn.receive(frame(b"x" * 101))
        self.assertEqual(a.closes[0][0], "frame-too-large")

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=400))
    def test_garbage_never_raises(self, data):
        """When garbage arrives in any state, then receive() never raises and the link is up or closed."""
        a, b = pair()
        a.conn.receive(data)
        fresh = Side("f")
        fresh.conn.start()
        fresh.conn.receive(data)
        self.assertIn(fresh.conn.state, ("hello-sent", "closed", "ready-sent"))


class MutationTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(st.data())
    def test_mutated_valid_traffic(self, data):
        """When valid traffic is mutated (bytes flipped, cut, inserted), then receive() never raises."""
        a, b = Side("a"), Side("b")
        a.conn.start()
        b.conn.start()
        stream = a.conn.take_output()
        b.conn.receive(stream)
        hello_b = b.conn.take_output()
        a.conn.receive(hello_b)
        stream += a.conn.take_output()
        a.conn.send_message([ROUTED, "a", ["b"], 3, dumps([1, ["s"], "x", [1], None, None, None, None])])
        a.conn.send_message([LSA, "a", 1, 2, [["b", 1]]])
        stream += a.conn.take_output()
        mutated = bytearray(stream)
        for _ in range(data.draw(st.integers(1, 5))):
            choice = data.draw(st.integers(0, 2))
            position = data.draw(st.integers(0, max(0, len(mutated) - 1)))
            if choice == 0 and mutated:
                mutated[position] ^= data.draw(st.integers(1, 255))
            elif choice == 1:
                del mutated[position:position + data.draw(st.integers(1, 8))]
            else:
                mutated[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        fresh = Side("b")
        fresh.conn.start()
        fresh.conn.receive(bytes(mutated))
        self.assertIn(fresh.conn.state, ("hello-sent", "ready-sent", "up", "closed"))


class PeerRoutedTests(SynchronousTestCase):
    """
    The peer's own ROUTED messages to us are read without cbor2 when laid
    out as kernels write them: what arrives is exactly what decoding the
    body gives, whatever the layout, and what decoding refuses is refused.
    """

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, 2 ** 64 - 1), st.integers(0, 2 ** 64 - 1), st.integers(0, 300),
           st.one_of(st.none(), st.integers(0, 2 ** 64 - 1)), st.binary(min_size=1, max_size=300),
           st.sampled_from(["from", "body", "trailing", "other origin"]))
    def test_as_decoded(self, seq, ack, hops, ttl, payload, layout):
        """When the peer sends a ROUTED body in any layout, then what arrives equals loads() of it, types too."""
        a, b = pair()
        if layout == "from":
            body = routed_from(routed_head("a", 1, "b", 2), seq, ack, hops, ttl, payload)
        else:
            body = routed_body("c" if layout == "other origin" else "a", 1, [("b", 2, seq, ack)], hops, ttl, payload)
            body += b"\x00" if layout == "trailing" else b""
        a.conn.send_body(body)
        pump(a, b)
        expected = loads(body)
        self.assertEqual(b.messages, [expected])
        self.assertEqual([type(item) for item in b.messages[0]], [type(item) for item in expected])
        self.assertEqual([type(item) for item in b.messages[0][3][0]], [type(item) for item in expected[3][0]])

    def test_cut_short(self):
        """When the peer's ROUTED body ends inside its payload, then BYE 'malformed', as decoding gives."""
        a, b = pair()
        a.conn.send_body(routed_from(routed_head("a", 1, "b", 2), 5, 4, 32, 30000, b"x" * 40)[:-1])
        pump(a, b)
        self.assertEqual((b.messages, [close[0] for close in b.closes]), ([], ["malformed"]))


class NoPickleTests(SynchronousTestCase):
    def test_no_code_executing_deserializer(self):
        """When the package's source is read, then no pickle, marshal, shelve or yaml loader is imported."""
        import os
        import re

        import lightspeed

        root = os.path.dirname(lightspeed.__file__)
        pattern = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|marshal|shelve|dill|yaml|jsonpickle)\b", re.M)
        offenders = []
        for folder, _, files in os.walk(root):
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(folder, name), encoding="utf-8") as f:
                        if pattern.search(f.read()):
                            offenders.append(name)
        self.assertEqual(offenders, [])


class RegisteredTypeTests(SynchronousTestCase):
    def setUp(self):
        import fractions

        from lightspeed.wire import codec

        self.Fraction = fractions.Fraction
        codec.register_type(fractions.Fraction, 40001, lambda f: [f.numerator, f.denominator],
                            lambda v: fractions.Fraction(v[0], v[1]))
        self.addCleanup(codec.unregister_type, fractions.Fraction)

    def test_round_trip(self):
        """When a type is registered, then it travels inside arguments and comes back equal."""
        value = [1, {"f": self.Fraction(3, 4)}]
        self.assertEqual(loads(dumps(value)), value)

    def test_unregistered_still_refused(self):
        """When a type is not registered, then it is still refused both ways."""
        import cbor2

        self.assertRaises(EncodeError, dumps, datetime.date(2020, 1, 1))
        self.assertRaises(ProtocolError, loads, cbor2.dumps(cbor2.CBORTag(40002, 1)))

    def test_bad_tags(self):
        """When a standard, small or taken tag is registered, then ValueError."""
        from lightspeed.wire import codec

        for tag in (1, 100, 40001):
            self.assertRaises(ValueError, codec.register_type, complex, tag, repr, complex)

    def test_bad_registered_payload(self):
        """When a registered tag carries a value its decoder rejects, then ProtocolError."""
        import cbor2

        self.assertRaises(ProtocolError, loads, cbor2.dumps(cbor2.CBORTag(40001, "nonsense")))
