# -*- test-case-name: lightspeed.test.test_wire -*-
"""
One link's byte stream, without I/O: framing, optional zlib compression,
the handshake state machine, and message decoding.

States::

    new --start()--> hello-sent --peer HELLO ok--> ready-sent --peer READY ok--> up
       any state --protocol error / refusal--> closed (a BYE is queued first)
       any state --peer BYE--> closed

Both ends send HELLO at once; neither sends anything else before it has the
other's HELLO.  With a password, HELLO carries our SPAKE2 message and READY
our key confirmation; the link is up only once the peer's confirmation is
right (:obj:`lightspeed.wire.handshake`).  From then on, if both offered zlib, everything each end
writes after its HELLO is one zlib stream (sync-flushed per write), and so
is everything it reads after the peer's HELLO.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

from twisted.logger import Logger

from lightspeed.errors import EncodeError, HandshakeRefused, ProtocolError
from lightspeed.message import (
    BYE,
    HELLO,
    PING,
    PONG,
    PROTOCOL_VERSION,
    READY,
    ROUTED,
    check_message,
    routed_head,
)
from lightspeed.wire.codec import dumps, loads
from lightspeed.wire.framing import DEFAULT_MAX_FRAME, PREAUTH_MAX_FRAME, Framer, frame
from lightspeed.wire.handshake import PasswordProof, check_hello

__all__ = ["LinkConfig", "PeerInfo", "Connection"]

_log = Logger()

@dataclass
class LinkConfig:
    """
    What one end brings to a link.

    :ivar name: our kernel name.
    :ivar incarnation: our per-start id.
    :ivar compression: whether we ask for zlib.
    :ivar password: the shared secret, or :obj:`None` for none.
    :ivar max_frame: the longest frame body we accept.
    :ivar hidden: whether we join as a hidden kernel (HELLO ``"hidden"``).
    :ivar batch: whether we take ROUTED messages with several payloads
        (HELLO ``"batch"``).
    """

    name: str
    incarnation: int
    compression: bool = False
    password: Optional[bytes] = None
    max_frame: int = DEFAULT_MAX_FRAME
    hidden: bool = False
    batch: bool = True


@dataclass(frozen=True)
class PeerInfo:
    """
    The other end, once its HELLO was accepted.
    """

    name: str
    incarnation: int
    compression: bool
    hidden: bool = False
    #: Whether it takes ROUTED messages with several payloads (HELLO "batch").
    batch: bool = False


class Connection:
    """
    The sans-IO core of one link.

    :param config: our side's settings.
    :param admit: called with the peer's name and incarnation; returns
        :obj:`None` to go on, a reason to refuse (BYE ``duplicate-name``), or a
        ``(code, reason)`` pair.
    :param on_up: called with the :obj:`PeerInfo` when the handshake is done.
    :param on_message: called with each decoded message once up.
    :param on_close: called once with ``(code, message, by_peer)`` when the
        link must end; queued output (a BYE) should still be written.
    :param on_output: called when output is waiting in :obj:`take_output`.
    :param on_pong: called with each PONG once up, or :obj:`None` to hand
        PONGs to ``on_message`` like the other messages.
    :param on_routed: called instead of ``on_message`` with each ROUTED
        message of the peer's own stream to us that :func:`_routed_from_peer`
        read: its origin is the peer, its one destination us, its items of
        the types :func:`~lightspeed.message.parse_routed` requires (the
        relay need not check them again); :obj:`None`: ``on_message``.
    """

    def __init__(
        self,
        config: LinkConfig,
        admit: Callable[[str, int], Optional[str]],
        on_up: Callable[[PeerInfo], None],
        on_message: Callable[[list], None],
        on_close: Callable[[str, str, bool], None],
        on_output: Callable[[], None],
        on_pong: Optional[Callable[[list], None]] = None,
        on_routed: Optional[Callable[[list], None]] = None,
    ) -> None:
        self.config = config
        self.state = "new"
        self.peer: Optional[PeerInfo] = None
        self._admit = admit
        self._on_up = on_up
        self._on_message = on_message
        self._on_close = on_close
        self._on_output = on_output
        self._on_pong = on_pong
        self._on_routed = on_message if on_routed is None else on_routed
        # Small frames only until the handshake is done: an unauthenticated
        # peer may not make us buffer a large frame.
        self._framer = Framer(min(config.max_frame, PREAUTH_MAX_FRAME))
        #: Once up: how each ROUTED body from the peer itself to us starts
        #: (see :func:`_routed_from_peer`).
        self._routed_head: Optional[bytes] = None
        self._routed_ids: Any = None
        self._refeed = False
        self._nonce = os.urandom(16)
        self._pake: Optional[PasswordProof] = None
        #: Whether we sent our key confirmation: the peer then knows whether
        #: the password it used is right (one online guess).
        self.answered = False
        self._raw: List[bytes] = []
        self._out: List[bytes] = []
        #: Bytes queued and not yet taken (before compression): read it.
        self.pending_output = 0
        self._deflate: Any = None
        self._inflate: Any = None
        #: Frames and bytes (as on the wire, compressed where agreed) each way.
        self.frames_in = self.frames_out = self.bytes_in = self.bytes_out = 0

    # -- output --------------------------------------------------------

    def start(self) -> None:
        """
        Queue our HELLO.
        """
        self.state = "hello-sent"
        if self.config.password is not None:
            self._pake = PasswordProof(self.config.password)
        hello = {
            "version": PROTOCOL_VERSION,
            "kernel": self.config.name,
            "incarnation": self.config.incarnation,
            "nonce": self._nonce,
            "serializers": ["cbor"],
            "compression": ["zlib"] if self.config.compression else [],
            "password": self.config.password is not None,
            "batch": self.config.batch,
        }
        if self._pake is not None:
            hello["pake"] = self._pake.message
        if self.config.hidden:
            hello["hidden"] = True
        self.send_message([HELLO, hello])

    def send_message(self, message: list) -> None:
        """
        Queue one message.
        """
        self.send_body(dumps(message))

    def send_body(self, body: bytes) -> int:
        """
        Queue one already-encoded message body.

        :returns: :obj:`pending_output` now.
        """
        size = self.pending_output = self.pending_output + len(body) + 4
        out = self._out
        out.append(frame(body))
        if len(out) == 1:
            self._on_output()
        return size

    def take_output(self) -> bytes:
        """
        Everything queued, compressed where agreed, ready to write.
        """
        out = b"".join(self._out)
        self.frames_out += len(self._out)
        self._out = []
        self.pending_output = 0
        if self._deflate is not None and out:
            out = self._deflate.compress(out) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        if self._raw:
            out = b"".join(self._raw) + out
            self.frames_out += len(self._raw)
            self._raw = []
        self.bytes_out += len(out)
        return out

    @property
    def buffered_input(self) -> int:
        """
        Bytes received and not yet part of a complete frame.
        """
        return self._framer.buffered

    def release(self) -> None:
        """
        The transport is gone: free the zlib streams (hundreds of KiB
        each) and the output, whoever still holds the link.
        """
        self.state = "closed"
        self._deflate = self._inflate = None
        self._out, self._raw, self.pending_output = [], [], 0

    def close(self, code: str, message: str) -> None:
        """
        End the link from our side: queue a BYE naming the reason.
        """
        if self.state == "closed":
            return
        self.send_message([BYE, code, message])
        self.state = "closed"
        self._on_close(code, message, False)

    # -- input ---------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """
        Feed bytes from the peer.  Protocol errors close the link with a
        BYE; they are not raised.  Any other error while handling a message
        is logged and closes this link only ("internal").
        """
        self.bytes_in += len(data)
        try:
            if self.state == "closed":
                return
            if self._inflate is not None:
                self._inflated(data)
            elif self._handle(self._framer.feed(data)) and self._inflate is not None and self.state != "closed":
                # Everything after the peer's HELLO is compressed.
                self._inflated(self._framer.take_buffer())
        except ProtocolError as e:
            self.close(e.code, str(e))
        except Exception as e:
            _log.failure("error while handling a message; closing the link")
            self.close("internal", f"{type(e).__name__} while handling a message")

    def _handle(self, bodies: Any) -> bool:
        """
        Handle frame bodies in order.

        :returns: whether the rest must wait: the link closed, or the peer
            began to compress (the bytes still buffered are compressed).
        """
        plain = self._inflate is None
        self.frames_in += len(bodies)
        for body in bodies:
            if self.state == "up":
                # Hot path: a link that is up hands most messages on as they are;
                # the peer's own ROUTED messages to us are read without cbor2.
                head = self._routed_head
                if head is not None and body.startswith(head):
                    message = _routed_from_peer(body, head, self._routed_ids)
                    if message is not None:
                        self._on_routed(message)
                        continue
                message = loads(body)
                if type(message) is list and message and message[0] == ROUTED and type(message[0]) is int:
                    self._on_message(message)
                    continue
                self._up_message(message)
            else:
                self._body(body)
            if self.state == "closed" or (plain and self._inflate is not None):
                return True
        if self._refeed:  # the limit was raised: frames held back may follow
            self._refeed = False
            return self._handle(self._framer.feed(b""))
        return False

    def _inflated(self, data: bytes) -> None:
        inflate = self._inflate
        limit = self._framer.max_frame + 4  # before the handshake, a small frame's worth at a time
        try:
            chunk = inflate.decompress(data, limit)
            while True:
                if self._handle(self._framer.feed(chunk)):
                    return
                if not inflate.unconsumed_tail:
                    break
                chunk = inflate.decompress(inflate.unconsumed_tail, limit)
        except zlib.error as e:
            raise ProtocolError(f"bad zlib stream: {e}", "malformed") from None

    def _up_message(self, message: Any) -> None:
        kind = check_message(message)
        if kind == BYE:
            self._bye(message)
        elif kind == PING:
            self.send_body(_pong(message))
        elif kind == PONG and self._on_pong is not None:
            self._on_pong(message)
        else:
            self._on_message(message)

    def _body(self, body: bytes) -> None:
        message = loads(body)
        kind = check_message(message)
        if kind == BYE:
            self._bye(message)
        elif self.state == "hello-sent" and kind == HELLO:
            self._hello(message)
        elif self.state == "ready-sent" and kind == READY:
            self._ready(message)
        else:
            raise ProtocolError(f"message type {kind} before the handshake finished", "protocol")

    def _bye(self, message: list) -> None:
        code = message[1] if len(message) > 1 and type(message[1]) is str else "?"
        text = message[2] if len(message) > 2 and type(message[2]) is str else ""
        self.state = "closed"
        self._on_close(code[:100], text[:1000], True)

    def _hello(self, message: list) -> None:
        config = self.config
        hello = check_hello(message, config.name, config.password is not None)
        reason = self._admit(hello.name, hello.incarnation)
        if isinstance(reason, tuple):  # (code, message)
            raise HandshakeRefused(reason[1], reason[0])
        if reason is not None:
            raise HandshakeRefused(reason, "duplicate-name")
        confirm = None
        if self._pake is not None:
            confirm = self._pake.confirm((config.name, config.incarnation, self._nonce), hello)
        compression = config.compression and hello.zlib
        self.peer = PeerInfo(hello.name, hello.incarnation, compression, hello.fields.get("hidden") is True,
                             self.config.batch and hello.fields.get("batch") is True)
        if compression:
            self._raw, self._out = self._out, []
            self._deflate = zlib.compressobj()
            self._inflate = zlib.decompressobj()
        self.state = "ready-sent"
        self.send_message([READY, {"compression": "zlib" if compression else None, "confirm": confirm}])
        self.answered = confirm is not None

    def _ready(self, message: list) -> None:
        ready = message[1] if len(message) > 1 else None
        if type(ready) is not dict:
            raise HandshakeRefused("READY without a map", "malformed")
        assert self.peer is not None
        if self._pake is not None:
            self._pake.check(ready.get("confirm"), self.peer.name)
        self._routed_ids = (self.peer.name, self.peer.incarnation, self.config.name, self.config.incarnation)
        self._routed_head = routed_head(*self._routed_ids)
        self.state = "up"
        self._framer.max_frame = self.config.max_frame
        self._refeed = True
        self._on_up(self.peer)


#: The two usual layouts of what follows a ROUTED head, as routed_from
#: writes them: seq and ack as 32-bit integers, hops after 0x18, then a ttl
#: of 256 ms to a minute (a request of ClientLite) or null (a kernel's
#: message), and a payload of 24 to 255 bytes.
_WITH_TTL = struct.Struct(">BIBIBBBHBB").unpack_from
_WITH_TTL_HEADS = (0x1A, 0x1A, 0x18, 0x19, 0x58)
_NO_TTL = struct.Struct(">BIBIBBBBB").unpack_from
_NO_TTL_HEADS = (0x1A, 0x1A, 0x18, 0xF6)


def _routed_from_peer(body: bytes, head: bytes, ids: Any) -> Optional[list]:
    """
    The ROUTED message of a frame body that starts with ``head`` (the
    peer's own stream to us, see :func:`~lightspeed.message.routed_head`;
    ``ids``: the origin, its incarnation, the destination and its
    incarnation in it), as :obj:`loads` decodes it, when the rest is laid
    out in one of the two usual ways (see ``_WITH_TTL``) with the payload
    ending the body.  Anything else: :obj:`None`, for :obj:`loads` (whose
    cbor2 call costs about 10,000 instructions) to decode, or refuse.
    """
    i = len(head)
    try:
        fields = _WITH_TTL(body, i)
        if fields[::2] == _WITH_TTL_HEADS and i + 17 + fields[9] == len(body):
            return [ROUTED, ids[0], ids[1], [[ids[2], ids[3], fields[1], fields[3]]], fields[5], fields[7],
                    body[i + 17:]]
    except struct.error:  # too short for it
        return None
    fields = _NO_TTL(body, i)
    if fields[:7:2] == _NO_TTL_HEADS and fields[7] == 0x58 and i + 15 + fields[8] == len(body):
        return [ROUTED, ids[0], ids[1], [[ids[2], ids[3], fields[1], fields[3]]], fields[5], None, body[i + 15:]]
    return None


def _pong(ping: list) -> bytes:
    """
    The PONG body for ``ping``, echoing its token.

    :raises ProtocolError: (``malformed``) if the token is a value the
        decoder accepts but the encoder cannot send back (a CBOR simple
        value, ``undefined``, a map used as a map key).
    """
    try:
        return dumps([PONG, ping[1] if len(ping) > 1 else None])
    except EncodeError as e:
        raise ProtocolError(f"PING token cannot be echoed: {e}", "malformed") from None
