# -*- test-case-name: lightspeed.test.test_vectors -*-
"""
The reference implementation against the protocol test vectors in
``lightspeed/test/vectors/*.json`` (docs/protocol.rst, "Test vectors"):
the same files another implementation runs against.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.errors import ProtocolError
from lightspeed.message import check_message
from lightspeed.test.vectors.generate import plain
from lightspeed.wire.codec import dumps, loads
from lightspeed.wire.framing import Framer, frame

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors")


def load(name: str) -> Any:
    with open(os.path.join(VECTORS, f"{name}.json"), encoding="utf-8") as f:
        return json.load(f)


def unplain(value: Any) -> Any:
    """
    The inverse of :obj:`plain`: JSON back to the value CBOR carries.
    """
    if isinstance(value, list):
        return [unplain(v) for v in value]
    if isinstance(value, dict):
        (kind, item), = value.items()
        if kind == "bytes":
            return bytes.fromhex(item)
        if kind == "int":
            return int(item)
        if kind == "float":
            return float(item)
        return {unplain(k): unplain(v) for k, v in item}
    return value


class CodecVectorTests(SynchronousTestCase):
    def test_encode_and_decode(self):
        """When each value is encoded and its CBOR decoded, then the bytes and the value (int and float apart) are the vector's."""
        for case in load("codec")["encode_and_decode"]:
            self.assertEqual(dumps(unplain(case["value"])).hex(), case["cbor"], case)
            self.assertEqual(plain(loads(bytes.fromhex(case["cbor"]))), case["value"], case)

    def test_refused(self):
        """When a refused item is decoded, then ProtocolError with code malformed."""
        for case in load("codec")["refused"]:
            error = self.assertRaises(ProtocolError, loads, bytes.fromhex(case["cbor"]))
            self.assertEqual(error.code, "malformed", case["name"])

    def test_decoded_only(self):
        """When an item the encoder never produces is decoded, then it gives the vector's value."""
        for case in load("codec")["decoded_only"]:
            self.assertEqual(plain(loads(bytes.fromhex(case["cbor"]))), case["value"], case["name"])


class FrameVectorTests(SynchronousTestCase):
    def test_frames(self):
        """When each message is framed and each frame read back, then the bytes and the message are the vector's."""
        for case in load("frames")["frames"]:
            message = unplain(case["message"])
            if not case.get("decode_only"):
                self.assertEqual(frame(dumps(message)).hex(), case["frame"], case["name"])
            framer = Framer()
            (body,) = framer.feed(bytes.fromhex(case["frame"]))
            self.assertEqual(plain(loads(body)), case["message"], case["name"])
            check_message(loads(body))


class AdvertVectorTests(SynchronousTestCase):
    def test_adverts(self):
        """When each advert's proof is checked, then the signed bytes are the vector's and only the first is accepted, for the vector's reason."""
        from lightspeed.adverts import AdvertSigner, signed_content
        from lightspeed.router import LinkState

        data = load("adverts")
        verifier = AdvertSigner(data["verifier_certificate_pem"].encode(), data["verifier_key_pem"].encode(),
                                data["ca_certificate_pem"].encode())
        for case in data["adverts"]:
            lsa = LinkState(case["origin"], case["incarnation"], case["seq"],
                            tuple(tuple(link) for link in case["links"]))
            self.assertEqual(signed_content(lsa).hex(), case["signed_bytes"], case["name"])
            self.assertEqual(verifier.verify(lsa, unplain(case["proof"])), case["refused"], case["name"])
        self.assertIsNone(data["adverts"][0]["refused"])


class RouteVectorTests(SynchronousTestCase):
    def test_routes(self):
        """When the vector's LSAs are held, then every kernel's next hop and cost are the vector's."""
        from lightspeed.router import LinkState, Router

        data = load("routes")
        router = Router(data["self"], 1)
        for neighbour, cost in data["own_links"]:
            router.link_up(neighbour, cost)
        for origin, links in data["lsas"].items():
            router.receive(LinkState(origin, 1, 1, tuple(sorted(tuple(link) for link in links))),
                           data["own_links"][0][0])
        for kernel, route in data["routes"].items():
            self.assertEqual((router.next_hop(kernel), router.distances().get(kernel)),
                             (route["next_hop"], route["cost"]), kernel)


class PasswordVectorTests(SynchronousTestCase):
    def test_password(self):
        """When the vector's two ends run SPAKE2 and key confirmation, then the transcript, key and confirmations are the vector's, and a wrong confirmation is refused with auth."""
        from lightspeed.errors import HandshakeRefused
        from lightspeed.test.vectors.generate import fixed_entropy
        from lightspeed.wire.handshake import PasswordProof, PeerHello, confirmations, transcript

        data = load("password")
        (a, b) = data["ends"]
        sides = [(e["kernel"], e["incarnation"], bytes.fromhex(e["nonce"]), bytes.fromhex(e["pake"])) for e in (a, b)]
        self.assertEqual(transcript(sides[0], sides[1]).hex(), data["transcript"])
        self.assertEqual(transcript(sides[1], sides[0]).hex(), data["transcript"])  # either end's view
        first, second = confirmations(bytes.fromhex(data["key"]), bytes.fromhex(data["transcript"]))
        self.assertEqual((first.hex(), second.hex()), (data["confirm_first"], data["confirm_second"]))
        proof = PasswordProof(data["password"].encode(), fixed_entropy(b"alpha"))
        self.assertEqual(proof.message.hex(), a["pake"])
        self.assertEqual(format(proof._spake.xy_scalar, "x"), a["scalar"])
        peer = PeerHello(sides[1][0], sides[1][1], sides[1][2], False, sides[1][3], {})
        self.assertEqual(proof.confirm(sides[0][:3], peer).hex(), data["confirm_first"])
        proof.check(bytes.fromhex(data["confirm_second"]), "beta")
        error = self.assertRaises(HandshakeRefused, proof.check, bytes.fromhex(data["wrong_password_confirm_first"]),
                                  "beta")
        self.assertEqual(error.code, "auth")
