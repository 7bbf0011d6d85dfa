# -*- test-case-name: lightspeed.test.test_clientlite -*-
"""
The pieces of :obj:`lightspeed.clientlite` that hold no socket: endpoints,
the TLS context, the client's own (signed) LSA, events, one outgoing
stream, reachability from adverts.
"""

from __future__ import annotations

import socket
import ssl
import struct
from typing import Any, Container, Dict, List, NamedTuple, Optional, Tuple

from lightspeed.adverts import AdvertSigner
from lightspeed.errors import LightspeedError
from lightspeed.message import LSA
from lightspeed.router import LinkState
from lightspeed.wire.codec import dumps
from lightspeed.wire import CIPHERS

__all__ = ["MAX_KERNELS", "forget_unreachable",
           "Delivery", "Event", "Out", "WindowFull", "open_socket", "own_lsa", "parse_endpoint", "payload_head",
           "reachable", "request_payload", "SENDER", "TAIL", "timeval", "tls_context",
           "RTO_MIN", "RTO_MAX", "WINDOW"]


#: Retransmission: the first and the longest wait for an ack, in seconds.
RTO_MIN, RTO_MAX = 1.0, 30.0
#: At most this many messages to one kernel travel unacknowledged (ClientLite's ``window``).
WINDOW = 1024
#: The most kernels a client keeps an advert or an incoming stream of: what the server sends beyond is
#: not kept (as a kernel's flooding keeps at most 1024 kernels), so memory stays bounded.
MAX_KERNELS = 1024


class WindowFull(LightspeedError):
    """
    A send found ``window`` messages to its kernel unacknowledged and no
    room came within its time-out: it was not sent.
    """


class Event(NamedTuple):
    """
    A message to the client: a POST, CALL, CALLREPLY or UNDELIVERABLE
    (``kind``), for ``state`` of ``session``, from kernel ``origin``.
    """

    kind: int
    origin: str
    session: str
    state: str
    args: List[Any]
    sender: Optional[str]


class Delivery(NamedTuple):
    """
    What :meth:`~lightspeed.clientlite.ClientLite.flush` (and ``close``)
    found: ``unacked``, ``{kernel: messages it did not acknowledge}``;
    ``undeliverable``, the reports that came back since the last flush
    (UNDELIVERABLE events, ``args`` ``[destination, reason, args]``); and
    ``lost``, ``{kernel: messages given up since the last flush}``, sent
    to a start of the kernel that ended (it restarted) before it
    acknowledged them: the new start never gets them.
    """

    unacked: Dict[str, int]
    undeliverable: List[Event]
    lost: Dict[str, int] = {}

    @property
    def ok(self) -> bool:
        """Whether everything was acknowledged, nothing came back undeliverable and nothing was lost."""
        return not self.unacked and not self.undeliverable and not self.lost

    def describe(self) -> str:
        """
        One line: ``"2 messages to beta not acknowledged; 1 message to
        gamma lost (the kernel restarted); undeliverable:
        poe://beta/nosuch/x (no session 'nosuch' in kernel 'beta')"``.
        """
        parts = [f"{count} message{'s' if count != 1 else ''} to {kernel} not acknowledged"
                 for kernel, count in sorted(self.unacked.items())]
        parts += [f"{count} message{'s' if count != 1 else ''} to {kernel} lost (the kernel restarted)"
                  for kernel, count in sorted(self.lost.items())]
        reports = [f"{e.args[0]} ({e.args[1]})" if len(e.args) >= 2 else repr(e.args) for e in self.undeliverable]
        if reports:
            parts.append("undeliverable: " + ", ".join(reports))
        return "; ".join(parts) or "all delivered"


def parse_endpoint(text: Any) -> Tuple[str, Any, bool]:
    """
    ``(family, address, tls)`` of ``"tcp:HOST:PORT"``, ``"tcp:host=H:port=P"``,
    ``"tls:..."`` (also ``ssl:``), ``"unix:PATH"``, ``"unix:path=PATH"``,
    ``"HOST:PORT"`` or a ``(host, port)`` pair.  An IPv6 host goes in
    brackets (``tcp:[::1]:9876``) or with its colons escaped as Twisted's
    endpoint strings have them (``tcp:host=\\:\\:1:port=9876``); a Unix
    path may hold ``:`` (``unix:/a:b``).

    :raises ValueError: one line saying what is wrong: none of these forms,
        an unknown key, no port or no path.
    """
    if isinstance(text, tuple) and len(text) == 2:
        return "tcp", (str(text[0]), int(text[1])), False
    kind, _, rest = str(text).partition(":")
    if kind not in ("tcp", "tls", "ssl", "unix"):
        kind, rest = "tcp", str(text)
    fields, plain = _endpoint_parts(text, rest)
    known = ("path",) if kind == "unix" else ("host", "port")
    unknown = [key for key in fields if key not in known]
    if unknown:
        raise ValueError(f"endpoint {text!r}: unknown key {unknown[0]!r} (a {kind}: endpoint takes "
                         + ", ".join(f"{k}=" for k in known) + ")")
    if kind == "unix":
        # The parts that are no option are the path, or go on path=: "/a:b" is one path.
        path = ":".join(([fields["path"]] if "path" in fields else []) + plain)
        if not path:
            raise ValueError(f"endpoint {text!r}: want unix:PATH or unix:path=PATH")
        return "unix", path, False
    host = fields.get("host") or (plain[0] if len(plain) > 1 else "127.0.0.1")
    port = fields.get("port") or (plain[-1] if plain else "")
    if not port.isdigit() or len(plain) > 2 or not host:
        raise ValueError(f"endpoint {text!r}: want tcp:HOST:PORT, tcp:[IPV6]:PORT, tcp:host=H:port=P, tls:..., "
                         "or unix:PATH")
    return "tcp", (host, int(port)), kind in ("tls", "ssl")


def _endpoint_parts(text: Any, rest: str) -> Tuple[Dict[str, str], List[str]]:
    """
    ``({key: value}, [positional])`` of the ``:``-separated parts of an
    endpoint string after its kind: ``\\`` escapes the next character, a
    ``[...]`` is one host (its colons kept), a part ``KEY=VALUE`` with a
    KEY that is a name is an option.
    """
    parts: List[str] = []
    current: List[str] = []
    i = 0
    while i < len(rest):
        c = rest[i]
        if c == "\\" and i + 1 < len(rest):
            current.append(rest[i + 1])
            i += 1
        elif c == "[" and not current:
            end = rest.find("]", i)
            if end < 0:
                raise ValueError(f"endpoint {text!r}: '[' without ']'")
            current.append(rest[i + 1:end])
            i = end
        elif c == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    if rest:
        parts.append("".join(current))
    fields: Dict[str, str] = {}
    plain: List[str] = []
    for part in parts:
        key, eq, value = part.partition("=")
        if eq and key.isidentifier():
            fields[key] = value
        else:
            plain.append(part)
    return fields, plain


def tls_context(cert: Optional[str] = None, key: Optional[str] = None, ca: Optional[str] = None) -> ssl.SSLContext:
    """
    A client TLS context: TLS 1.2 at least with the node's AEAD suites only
    (:data:`lightspeed.wire.CIPHERS`), the server checked against ``ca``
    (or the system's CAs), and ``cert``/``key`` as the client certificate
    for a mesh that wants mutual TLS.
    """
    context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def open_socket(family: str, address: Any, tls: Optional[ssl.SSLContext], connect_timeout: float,
                send_timeout: float) -> socket.socket:
    """
    A connected socket to ``address`` (of ``family``, "tcp" or "unix"),
    wrapped in ``tls`` if given.  A plain one is left blocking with kernel
    time-outs (``SO_SNDTIMEO`` is ``send_timeout``; the reader sets
    ``SO_RCVTIMEO``), so that each read or write is one system call, not
    ``poll()`` and then it; a TLS one keeps Python's time-outs.

    :raises OSError: if it cannot connect in ``connect_timeout`` seconds.
    """
    if family == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(connect_timeout)
        sock.connect(address)
    else:
        sock = socket.create_connection(address, timeout=connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is not None:
        return tls.wrap_socket(sock, server_hostname=address[0] if family == "tcp" else None)
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(send_timeout))
    return sock


def timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO: at least 1 ms (0 would mean "never")."""
    seconds = max(seconds, 0.001)
    return struct.pack("@ll", int(seconds), int((seconds % 1.0) * 1_000_000))


def lite_tls(tls: Any, wants_tls: bool, cert: Optional[str], key: Optional[str],
             ca: Optional[str]) -> Tuple[Optional[ssl.SSLContext], Optional[AdvertSigner]]:
    """
    ``(context, signer)`` of ClientLite's TLS options: ``tls`` (a context,
    ``True`` or :obj:`None`) or else one made of ``cert``, ``key`` and ``ca``;
    and with all three, the signer of the client's adverts (a node with a
    CA requires them signed).

    :raises ValueError: if the key does not fit the certificate, or the CA
        did not issue it (or it is out of date).
    """
    if tls is True or (tls is None and (wants_tls or cert or key or ca)):
        tls = tls_context(cert, key, ca)
    return tls, AdvertSigner(cert, key, ca) if cert and key and ca else None


def own_lsa(name: str, incarnation: int, seq: int, server: str, signer: Optional[AdvertSigner]) -> list:
    """
    The client's LSA: one link, to ``server``, and the hidden flag; with
    a ``signer``, its proof as a kernel's (the flags map is not signed).
    """
    links = ((server, 1),)
    proof = None if signer is None else signer.sign(LinkState(name, incarnation, seq, links, hidden=True))
    return [LSA, name, incarnation, seq, [list(link) for link in links], proof, {"hidden": True}]


def payload_head(kind: int, sessions: Any, state: str) -> bytes:
    """
    The start of a REQUEST or CONTROL payload, ``[kind, sessions, state,
    args, "lite", None, None, None, id]``, up to its args: what
    :obj:`request_payload` completes (made once per destination).
    """
    return b"\x89" + dumps([kind, sessions, state])[1:]


#: The payload after the args: the sender session ("lite") and no state, file or line.
SENDER = dumps(["lite", None, None, None])[1:]
#: :data:`SENDER`, then a request id as a 32-bit integer (the REQUEST payload's end after its args).
TAIL = struct.Struct(f">{len(SENDER)}sBI").pack


def request_payload(head: bytes, args: Any, request_id: int) -> bytes:
    """
    The CBOR of the payload :obj:`payload_head` began, with ``args``
    (checked: :class:`~lightspeed.errors.EncodeError` for anything not
    plain) and ``request_id``, as ``dumps`` of the whole list would make
    it (an id below 2**32 as a 32-bit integer, valid if not shortest).
    """
    if request_id < 0x100000000:
        return b"".join((head, dumps(args), TAIL(SENDER, 0x1a, request_id)))  # a tuple encodes as a list
    return b"".join((head, dumps(args), SENDER, dumps(request_id)))


class Out:
    """One outgoing stream: to one start of one kernel."""

    def __init__(self, incarnation: int) -> None:
        self.incarnation = incarnation
        self.seq = 0
        self.unacked: Dict[int, Tuple[bytes, Optional[float]]] = {}
        self.sent = 0.0
        self.rto = RTO_MIN
        #: The start of each ROUTED body of this stream (see :func:`lightspeed.message.routed_head`).
        self.head: Optional[bytes] = None

    def push(self, payload: bytes, expires: Optional[float]) -> int:
        """Number ``payload`` (until ``expires``, monotonic) and keep it until acknowledged: its seq."""
        seq = self.seq = self.seq + 1
        self.unacked[seq] = (payload, expires)
        return seq

    def acked(self, ack: int) -> None:
        """The peer has every payload up to ``ack``: forget them (and wait the least again if any were held)."""
        unacked = self.unacked
        if ack >= self.seq:  # all of them (the usual case: one at a time)
            if unacked:
                unacked.clear()
                self.rto = RTO_MIN
            return
        done = [s for s in unacked if s <= ack]
        for s in done:
            del unacked[s]
        if done:
            self.rto = RTO_MIN



def reachable(lsas: Dict[str, Tuple[int, int, Dict[str, int], bool]], server: str, incarnation: int,
              me: str) -> Dict[str, int]:
    """
    ``{kernel: incarnation}`` of the kernels reachable over two-way edges
    from ``server`` by the adverts ``lsas`` (``{origin: (incarnation, seq,
    links, hidden)}``), hidden ones included but never passed through.
    """
    found = {server: incarnation}
    todo = [server]
    while todo:
        node = todo.pop()
        held = lsas.get(node)
        if held is None or (held[3] and node != server):
            continue
        for peer in held[2]:
            back = lsas.get(peer)
            if peer not in found and peer != me and back is not None and node in back[2]:
                found[peer] = back[0]
                todo.append(peer)
    return found


def forget_unreachable(lsas: Dict[str, Tuple[int, int, Dict[str, int], bool]], known: Container[str]) -> bool:
    """
    Forget the adverts of kernels not in ``known`` (those reachable; a
    kernel's own adverts age out instead).

    :returns: whether there is room for another under :data:`MAX_KERNELS`.
    """
    for kernel in [kernel for kernel in lsas if kernel not in known]:
        del lsas[kernel]
    return len(lsas) < MAX_KERNELS


def receive_entries(name: str, incarnation: int, origin: str, origin_incarnation: int, entries: List[Any],
                    streams: Dict[str, List[int]], kernels: Container[str], out: Optional[Out],
                    tombstone: bool) -> bool:
    """
    Apply the entries of a ROUTED message from ``origin`` (see "Streams" in
    ``docs/protocol.rst``): the one for this start of us moves the incoming
    stream (``streams[origin] = [incarnation, delivered, acks owed]``) and
    applies its ack to ``out``, our stream to ``origin``; past
    :data:`MAX_KERNELS` streams, only an origin in ``kernels`` (those whose
    advert is held) gets a new one.  Early payloads
    are not held (the origin sends them again).  ``tombstone``: the
    payload is empty.

    :returns: whether the payload is next in order, to be delivered now.
    """
    deliver = False
    for dest, dest_incarnation, seq, ack in entries:
        if dest != name or dest_incarnation != incarnation:
            continue
        stream = streams.get(origin)
        if stream is None and len(streams) >= MAX_KERNELS and origin not in kernels:
            continue  # past the bound, only a kernel whose advert is held gets a stream (the origin resends)
        if stream is None or origin_incarnation > stream[0]:
            stream = streams[origin] = [origin_incarnation, 0, 0]
        elif origin_incarnation < stream[0]:
            continue
        if ack and out is not None and out.incarnation == origin_incarnation and out.unacked:
            out.acked(ack)
        if seq == 0:
            continue
        stream[2] += 1
        if seq == stream[1] + 1 or (tombstone and seq > stream[1]):
            stream[1] = seq  # a tombstone: the origin gave up everything up to seq
            deliver = not tombstone
    return deliver
