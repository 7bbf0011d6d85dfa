# -*- test-case-name: lightspeed.test.test_handshake -*-
"""
The checks and the password part of the handshake, without I/O.

A peer's HELLO is checked by :obj:`check_hello`.  With a password both ends
run symmetric SPAKE2 (the ``spake2`` package, as magic-wormhole does): each
HELLO carries the sender's SPAKE2 message, each READY a key confirmation
derived from the SPAKE2 key and bound to the whole transcript (both names,
incarnations, nonces and SPAKE2 messages).  Whoever runs a handshake learns
one thing only: whether the single password it used in its own SPAKE2
message is right.  Nothing a kernel sends lets anyone test other guesses
offline (see ``docs/security.rst``).

:obj:`GuessLimiter` counts, per source address, the handshakes that got as
far as our confirmation without coming up: each is one online guess.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from lightspeed.errors import HandshakeRefused
from lightspeed.message import PROTOCOL_VERSION
from lightspeed.specifier import check_name
from lightspeed.wire.codec import dumps

__all__ = ["PeerHello", "check_hello", "transcript", "PasswordProof", "GuessLimiter",
           "PAKE_ID", "CONFIRM_INFO", "TRANSCRIPT_LABEL", "PAKE_LENGTH"]

#: SPAKE2's ``idSymmetric``: hashed into its key.
PAKE_ID = b"lightspeed-3"
#: The HKDF ``info`` of the two confirmation keys.
CONFIRM_INFO = b"lightspeed-3 confirmation keys"
#: The first item of the transcript array.
TRANSCRIPT_LABEL = "lightspeed-3 pake"
#: A symmetric SPAKE2 message: the side byte ``S`` and an Ed25519 point.
PAKE_LENGTH = 33


@dataclass(frozen=True)
class PeerHello:
    """
    A HELLO that passed :obj:`check_hello`.

    :ivar pake: the peer's SPAKE2 message, or :obj:`None` without a password.
    :ivar fields: the whole HELLO map (for keys other modules read).
    """

    name: str
    incarnation: int
    nonce: bytes
    zlib: bool
    pake: Optional[bytes]
    fields: Dict[Any, Any]


def check_hello(message: list, own_name: str, password: bool) -> PeerHello:
    """
    Check a peer's HELLO in the order ``docs/protocol.rst`` gives.

    :param password: whether we have a password.
    :raises HandshakeRefused: with the code of the first check that fails.
    """
    hello = message[1] if len(message) > 1 else None
    if type(hello) is not dict:
        raise HandshakeRefused("HELLO without a map", "malformed")
    version = hello.get("version")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise HandshakeRefused(
            f"protocol version mismatch: we speak {PROTOCOL_VERSION}, peer speaks {version!r}", "version"
        )
    name, incarnation, nonce = hello.get("kernel"), hello.get("incarnation"), hello.get("nonce")
    try:
        name = check_name(name, "kernel name")
    except ValueError as e:
        raise HandshakeRefused(f"bad kernel name in HELLO: {e}", "bad-name") from None
    if type(incarnation) is not int or type(nonce) is not bytes or not 16 <= len(nonce) <= 64:
        raise HandshakeRefused("HELLO incarnation or nonce malformed", "malformed")
    offers, serializers = hello.get("compression"), hello.get("serializers")
    if type(offers) is not list or type(serializers) is not list or "cbor" not in serializers:
        raise HandshakeRefused("HELLO offers no common serializer (cbor)", "serializer")
    if name == own_name:
        raise HandshakeRefused(f"kernel {name!r} cannot link to itself (or another kernel has its name)",
                               "duplicate-name")
    if (hello.get("password") is True) != password:
        raise HandshakeRefused("password required" if password else "peer requires a password we do not have",
                               "auth")
    pake = hello.get("pake") if password else None
    if password and (type(pake) is not bytes or len(pake) != PAKE_LENGTH):
        raise HandshakeRefused(f"HELLO pake is not a byte string of {PAKE_LENGTH} bytes", "malformed")
    return PeerHello(name, incarnation, nonce, "zlib" in offers, pake, hello)


def transcript(a: Tuple[str, int, bytes, bytes], b: Tuple[str, int, bytes, bytes]) -> bytes:
    """
    The CBOR transcript both ends confirm: the label, then ``[name,
    incarnation, nonce, pake]`` of each end, the end whose name's UTF-8
    bytes sort first first.
    """
    first, second = sorted([a, b], key=lambda side: side[0].encode("utf-8"))
    return dumps([TRANSCRIPT_LABEL, list(first), list(second)])


def confirmations(key: bytes, transcript_bytes: bytes) -> Tuple[bytes, bytes]:
    """
    The confirmations of the first and the second end of ``transcript``:
    ``HMAC-SHA256(Kc_i, transcript)`` where ``Kc_1 || Kc_2`` is
    ``HKDF-SHA256(key, salt="", info=CONFIRM_INFO, length=64)``.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    keys = HKDF(algorithm=hashes.SHA256(), length=64, salt=b"", info=CONFIRM_INFO).derive(key)
    return (hmac.new(keys[:32], transcript_bytes, hashlib.sha256).digest(),
            hmac.new(keys[32:], transcript_bytes, hashlib.sha256).digest())


class PasswordProof:
    """
    Our end of one handshake's SPAKE2 and key confirmation.

    :ivar message: our SPAKE2 message, for our HELLO.
    """

    def __init__(self, password: bytes, entropy: Callable[[int], bytes] = os.urandom) -> None:
        # Imported here: programs without a password never load spake2.
        from spake2 import SPAKE2_Symmetric

        self._spake = SPAKE2_Symmetric(password, idSymmetric=PAKE_ID, entropy_f=entropy)
        self.message: bytes = self._spake.start()
        self._expected: Optional[bytes] = None

    def confirm(self, me: Tuple[str, int, bytes], peer: PeerHello) -> bytes:
        """
        Finish SPAKE2 with the peer's message.

        :param me: our name, incarnation and nonce.
        :returns: our confirmation, for our READY.
        :raises HandshakeRefused: ``malformed`` if the peer's message is not
            a symmetric SPAKE2 message holding a valid point, ``auth`` if it
            is our own reflected.
        """
        pake = peer.pake
        assert pake is not None
        if pake[:1] != b"S":
            raise HandshakeRefused("HELLO pake is not a symmetric SPAKE2 message", "malformed")
        from spake2.spake2 import ReflectionThwarted

        try:
            key = self._spake.finish(pake)
        except ReflectionThwarted:
            raise HandshakeRefused("HELLO pake is our own SPAKE2 message reflected", "auth") from None
        except Exception as e:  # ValueError, spake2's NotOnCurve and SPAKEError: a peer's bytes, never a bug here
            raise HandshakeRefused(f"HELLO pake is not a valid point: {e}", "malformed") from None
        ours = (me[0], me[1], me[2], self.message)
        theirs = (peer.name, peer.incarnation, peer.nonce, pake)
        first, second = confirmations(key, transcript(ours, theirs))
        we_are_first = me[0].encode("utf-8") < peer.name.encode("utf-8")
        mine, self._expected = (first, second) if we_are_first else (second, first)
        return mine

    def check(self, given: Any, peer: str) -> None:
        """
        Check the peer's confirmation from its READY.

        :raises HandshakeRefused: ``auth`` if it is not the one the password
            gives.
        """
        assert self._expected is not None
        if type(given) is not bytes or not hmac.compare_digest(given, self._expected):
            raise HandshakeRefused(f"wrong password: kernel {peer!r} failed the key confirmation", "auth")


#: Default number of failed password handshakes a source address may have in
#: a row (:obj:`GuessLimiter`).
AUTH_BURST = 5
#: Default seconds after which a source address may try one more.
AUTH_INTERVAL = 30.0


class GuessLimiter:
    """
    Online password guesses per source address: a token bucket of ``burst``
    tokens, one more every ``interval`` seconds.  A handshake takes a token
    when it starts (:meth:`take`) and gives it back (:meth:`give_back`)
    unless it answered a guess and did not come up, so parallel handshakes
    cannot overdraw.  Full buckets are forgotten; at most ``bound`` addresses
    are remembered (beyond that the oldest is forgotten).
    """

    def __init__(self, burst: int = AUTH_BURST, interval: float = AUTH_INTERVAL, bound: int = 65536) -> None:
        self.burst = burst
        self.interval = interval
        self.bound = bound
        self._buckets: Dict[str, Tuple[float, float]] = {}
        self._refusing: Dict[str, bool] = {}

    def _tokens(self, address: str, now: float) -> float:
        tokens, then = self._buckets.pop(address, (float(self.burst), now))
        return min(float(self.burst), tokens + max(0.0, now - then) / self.interval)

    def _store(self, address: str, tokens: float, now: float) -> None:
        if tokens >= self.burst:
            self._refusing.pop(address, None)
            return
        if len(self._buckets) >= self.bound:
            del self._buckets[next(iter(self._buckets))]
        self._buckets[address] = (tokens, now)

    def take(self, address: str, now: float) -> Optional[Tuple[float, bool]]:
        """
        Take a token for a new handshake from ``address``.

        :returns: :obj:`None` if one was taken, else ``(seconds until the
            next one, whether this is the first refusal since the address
            last had one)`` — log the first refusal only.
        """
        tokens = self._tokens(address, now)
        if tokens >= 1:
            self._refusing.pop(address, None)
            self._store(address, tokens - 1, now)
            return None
        self._store(address, tokens, now)
        first = address not in self._refusing
        if first and len(self._refusing) >= self.bound:
            self._refusing.clear()
        self._refusing[address] = True
        return (1 - tokens) * self.interval, first

    def give_back(self, address: str, now: float) -> None:
        """
        The handshake that took a token came up, or ended before it answered
        a guess.
        """
        self._store(address, self._tokens(address, now) + 1, now)
