"""
Write the protocol test vectors (``*.json`` next to this file) from the
reference implementation.  Run once when the protocol changes::

    PYTHONPATH=. python lightspeed/test/vectors/generate.py

The files are data for any implementation: docs/protocol.rst ("Test
vectors") describes their format.  ``lightspeed.test.test_vectors`` checks
the reference against them.  The signing certificates are valid for 100
years, so the advert vectors stay valid.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def plain(value: Any) -> Any:
    """
    A decoded CBOR value as JSON: bytes as ``{"bytes": hex}``, integers
    outside JSON's safe range as ``{"int": decimal}``, floats as
    ``{"float": repr}``, so that nothing is lost or confused.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2 ** 53 else {"int": str(value)}
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {"map": [[plain(k), plain(v)] for k, v in value.items()]}
    raise TypeError(type(value))


def codec_vectors() -> dict:
    from lightspeed.wire.codec import dumps

    values = [0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 63 - 1, 2 ** 64 - 1, 2 ** 64,
              -1, -24, -25, -2 ** 63, -2 ** 64, -2 ** 64 - 1, 1.0, -0.0, 1.5, False, True, None, "", "ɸ",
              b"", b"\x00\xff", [], [1, [2, 3]], {"a": 1, "b": [True, None]}]
    good = [{"value": plain(v), "cbor": dumps(v).hex()} for v in values]
    refused = [
        {"name": "tag 0 (a date)", "cbor": "c074323032352d30312d30315430303a30303a30305a"},
        {"name": "tag 24 (embedded CBOR)", "cbor": "d81841f6"},
        {"name": "tag 258 (a set)", "cbor": "d9010281" "01"},
        {"name": "invalid UTF-8 in a text string", "cbor": "62c328"},
        {"name": "truncated array", "cbor": "830102"},
        {"name": "lone break code", "cbor": "ff"},
        {"name": "65 nested arrays", "cbor": "81" * 65 + "01"},
    ]
    accepted_not_sent = [
        {"name": "non-shortest integer", "cbor": "1b0000000000000001", "value": 1},
        {"name": "indefinite-length array", "cbor": "9f0102ff", "value": [1, 2]},
        {"name": "half-precision float", "cbor": "f93c00", "value": {"float": "1.0"}},
        {"name": "64 nested arrays", "cbor": "81" * 63 + "8101", "value": plain(nest(64))},
        {"name": "trailing bytes after the item are ignored", "cbor": "01ff00", "value": 1},
    ]
    return {"encode_and_decode": good, "refused": refused, "decoded_only": accepted_not_sent}


def nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def frame_vectors() -> dict:
    from lightspeed.message import routed_body, routed_from, routed_head
    from lightspeed.wire.codec import dumps, loads
    from lightspeed.wire.framing import frame

    alpha, gamma = 444336537631604788, 444336537767506347
    payload = dumps([1, ["pong"], "ping", ["hello", 1], "pinger", "go", "ex.py", 7])
    messages = {
        "PING with a token": [4, 7],
        "PONG answering it": [5, 7],
        "BYE shutdown": [3, "shutdown", "kernel shutting down"],
        "READY without compression or password": [2, {"compression": None, "confirm": None}],
        "HELLO without a password": [1, {"version": 3, "kernel": "alpha", "incarnation": alpha,
                                         "nonce": bytes(range(16)), "compression": ["zlib"],
                                         "serializers": ["cbor"], "password": False}],
        "LSA, unsigned": [6, "alpha", alpha, 3, [["beta", 1], ["gamma", 4]]],
    }
    out = []
    for name, message in messages.items():
        body = dumps(message)
        out.append({"name": name, "message": plain(message), "frame": frame(body).hex()})
    routed = routed_body("alpha", alpha, [("gamma", gamma, 1, 0)], 32, None, payload)
    out.append({"name": "ROUTED POST (docs/protocol.rst, Worked examples)", "message": plain(loads(routed)),
                "frame": frame(routed).hex()})
    fast = routed_from(routed_head("alpha", alpha, "gamma", gamma), 2, 1, 32, None, payload)
    out.append({"name": "ROUTED POST, the reference's fast path (seq and ack as 4-byte integers)",
                "message": plain(loads(fast)), "frame": frame(fast).hex(), "decode_only": True})
    return {"frames": out}


def advert_vectors() -> dict:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from lightspeed.adverts import AdvertSigner, signed_content
    from lightspeed.router import LinkState
    from lightspeed.tls import create_ca, create_node

    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    ca_key, ca_crt = create_ca("vectors CA", days=36500)
    keys = {}
    for name in ("alpha", "beta"):
        keys[name] = create_node(ca_key, ca_crt, name, days=36500, not_before=start)
    signer = AdvertSigner(keys["alpha"][1], keys["alpha"][0], ca_crt)
    lsa = LinkState("alpha", 444336537631604788, 3, (("beta", 1), ("gamma", 4)))
    proof = signer.sign(lsa)
    der = x509.load_pem_x509_certificate(keys["beta"][1]).public_bytes(serialization.Encoding.DER)
    cases = [
        ("as signed", lsa, proof, None),
        ("seq changed", LinkState("alpha", lsa.incarnation, 4, lsa.links), proof, None),
        ("a link's cost changed", LinkState("alpha", lsa.incarnation, 3, (("beta", 1), ("gamma", 5))), proof, None),
        ("the certificate of another kernel", lsa, [der, proof[1]], None),
        ("no proof", lsa, None, None),
        ("a proof of one item", lsa, [proof[0]], None),
    ]
    out = []
    for name, advert, item, _ in cases:
        out.append({"name": name, "origin": advert.origin, "incarnation": advert.incarnation, "seq": advert.seq,
                    "links": [list(link) for link in advert.links], "proof": plain(item),
                    "signed_bytes": signed_content(advert).hex(), "refused": signer.verify(advert, item)})
    # A throw-away test key: the reference's verifier is built from a node's
    # own certificate and key; another implementation needs only the CA.
    return {"ca_certificate_pem": ca_crt.decode(), "verifier_certificate_pem": keys["beta"][1].decode(),
            "verifier_key_pem": keys["beta"][0].decode(), "adverts": out}


def route_vectors() -> dict:
    from lightspeed.router import LinkState, Router

    lsas = {"b": [("a", 1), ("c", 1), ("d", 1)], "c": [("a", 2), ("b", 1), ("e", 1)],
            "d": [("b", 1), ("e", 5)], "e": [("c", 1), ("d", 1)], "f": [("e", 1)]}
    own = [("b", 1), ("c", 2)]
    router = Router("a", 1)
    for neighbour, cost in own:
        router.link_up(neighbour, cost)
    for origin, links in lsas.items():
        router.receive(LinkState(origin, 1, 1, tuple(sorted(links))), "b")
    routes = {k: {"next_hop": router.next_hop(k), "cost": router.distances().get(k)}
              for k in sorted(set(lsas) | {"z"}) if k != "a"}
    return {"self": "a", "own_links": [list(link) for link in own],
            "lsas": {o: [list(link) for link in links] for o, links in lsas.items()}, "routes": routes}


def fixed_entropy(seed: bytes) -> Any:
    """
    Deterministic "randomness" for a SPAKE2 end: SHA-512 of ``seed``, repeated.
    """
    import hashlib

    data, taken = hashlib.sha512(seed).digest() * 4, [0]

    def entropy(n: int) -> bytes:
        start = taken[0]
        taken[0] += n
        return data[start:start + n]

    return entropy


def password_vectors() -> dict:
    from lightspeed.wire.handshake import PAKE_ID, PasswordProof, PeerHello, confirmations, transcript

    password = b"secret"
    ends = [("alpha", 444336537631604788, bytes(range(16))), ("beta", 444336537767506347, bytes(range(16, 32)))]
    proofs = [PasswordProof(password, fixed_entropy(name.encode())) for name, _, _ in ends]
    sides = [(name, inc, nonce, proof.message) for (name, inc, nonce), proof in zip(ends, proofs)]
    key = proofs[0]._spake.finish(proofs[1].message)
    first, second = confirmations(key, transcript(sides[0], sides[1]))
    confirm_a = PasswordProof(password, fixed_entropy(b"alpha")).confirm(
        ends[0], PeerHello(*ends[1], False, proofs[1].message, {}))
    assert confirm_a == first
    return {
        "password": password.decode(), "spake2": "SPAKE2 symmetric, Ed25519 group, identity " + repr(PAKE_ID),
        "ends": [{"kernel": name, "incarnation": inc, "nonce": nonce.hex(),
                  "scalar": format(proof._spake.xy_scalar, "x"), "pake": proof.message.hex()}
                 for (name, inc, nonce), proof in zip(ends, proofs)],
        "key": key.hex(), "transcript": transcript(sides[0], sides[1]).hex(),
        "confirm_first": first.hex(), "confirm_second": second.hex(),
        "wrong_password_confirm_first": confirmations(
            PasswordProof(b"secreT", fixed_entropy(b"alpha"))._spake.finish(proofs[1].message),
            transcript(sides[0], sides[1]))[0].hex(),
    }


def main() -> None:
    for name, make in (("codec", codec_vectors), ("frames", frame_vectors), ("adverts", advert_vectors),
                       ("routes", route_vectors), ("password", password_vectors)):
        with open(os.path.join(HERE, f"{name}.json"), "w") as f:
            json.dump(make(), f, indent=1, ensure_ascii=False)
            f.write("\n")


if __name__ == "__main__":
    main()
