# -*- test-case-name: lightspeed.test.test_clientlite -*-
"""
The link under :class:`lightspeed.clientlite.ClientLite`: one blocking
socket to a kernel, the sans-IO :obj:`lightspeed.wire.connection.Connection`
on it, the client's own LSA and the streams it numbers, acknowledges and
sends again.  Nothing here is public; ``ClientLite`` documents it.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, TypeVar

from lightspeed.errors import LinkClosed, NoRoute, ProtocolError
from lightspeed.message import (
    CONTROL, DEFAULT_HOPS, LSA, POST, CALL, CALLREPLY, REQUEST, RESPONSE, UNDELIVERABLE, lsa_hidden, parse_lsa,
    parse_payload, parse_routed, routed_body, routed_from, routed_head,
)
from lightspeed.liteparts import MAX_KERNELS, RTO_MAX, RTO_MIN, WINDOW, Event, Out, WindowFull, forget_unreachable, \
    lite_tls, open_socket, own_lsa, parse_endpoint, reachable, receive_entries, timeval
from lightspeed.litetemplate import RequestTemplate
from lightspeed.specifier import check_name
from lightspeed.wire.codec import dumps, loads
from lightspeed.wire.connection import Connection, LinkConfig, PeerInfo

__all__ = ["LiteLink", "SESSION"]

#: The session name the client's messages come from, and its events go to.
SESSION = "lite"
#: Acks alone: after this many seconds owed, or this many entries.
ACK_DELAY, ACK_EVERY = 0.01, 32
#: Seconds between fresh copies of the client's own LSA.
LSA_REFRESH = 600.0
#: The undeliverable reports kept for the next :meth:`LiteLink.flush` (the latest).
MAX_REPORTS = 1000
#: Events kept for :meth:`receive` that the application has not read: past it the oldest is dropped
#: (counted in ``events_dropped``), so a client that never reads stays bounded.
MAX_EVENTS = 10000
#: Seconds between looks at what is due again and at the LSA's age (not at every read).
CHECK_EVERY = 0.1
#: The most one read takes from the socket (into one buffer kept per client).
READ_SIZE = 262144


_Self = TypeVar("_Self", bound="LiteLink")


class LiteLink:
    """
    The link and the streams of a :class:`ClientLite` (its parameters are
    documented there): connecting, reading, acknowledging, sending again.
    """

    def __init__(self, server: Any = "tcp:127.0.0.1:9876", name: Optional[str] = None, *, tls: Any = None,
                 cert: Optional[str] = None, key: Optional[str] = None, ca: Optional[str] = None,
                 password: Any = None, connect_timeout: float = 10.0, timeout: float = 10.0,
                 window: int = WINDOW) -> None:
        self.family, self.address, wants_tls = parse_endpoint(server)
        self.name = check_name(name if name is not None else "lite-" + secrets.token_hex(4))
        self.incarnation = (int(time.time() * 1_000_000) << 8) | os.urandom(1)[0]
        self._tls, self._signer = lite_tls(tls, wants_tls, cert, key, ca)
        self._password = password.encode("utf-8") if isinstance(password, str) else password
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.window = window
        self.peer: Optional[PeerInfo] = None
        self.events: Deque[Event] = deque()
        self.max_events = MAX_EVENTS
        self.events_dropped = 0
        self._sock: Optional[socket.socket] = None
        self._conn: Optional[Connection] = None
        self._closed: Optional[LinkClosed] = None
        self._lsas: Dict[str, Tuple[int, int, Dict[str, int], bool]] = {}
        self._lsa_seq = 0
        self._lsa_sent = 0.0
        self._out: Dict[str, Out] = {}
        self._in: Dict[str, List[int]] = {}  # origin -> [incarnation, delivered, owed]
        self._owed: Dict[str, float] = {}  # origin -> since when it is owed an ack
        self._known: Optional[Dict[str, int]] = None
        # Request id -> the kernel asked (None: a trace, which any hop answers); a RESPONSE is kept only from it.
        self._waiting: Dict[int, Optional[str]] = {}
        self._answers: Dict[int, Tuple[bool, Any]] = {}
        self._lost: Dict[str, int] = {}  # kernel -> messages given up since the last flush (it restarted)
        self._ids = itertools.count(secrets.randbelow(1 << 30) + 1)
        self._undelivered: Deque[Event] = deque(maxlen=MAX_REPORTS)
        # Answers owed to requests that came in: sent once the read that brought them is handled.
        self._replies: List[Tuple[str, bytes]] = []
        self._reading = False  # inside Connection.receive: no socket I/O, no nested read
        self._partial = 0  # bytes of a frame not complete after the last read (Connection.buffered_input)
        self._plain = False  # a blocking socket without TLS: reads wait with SO_RCVTIMEO (one syscall, no poll)
        self._wait: Optional[float] = None  # the read time-out the socket has now
        self._due = 0.0  # when to look at resends and the LSA refresh next (monotonic)
        self._specs: Dict[str, Tuple[Tuple[str, ...], Any, str, bool, bytes]] = {}  # see ClientLite._spec
        self._templates: Dict[str, RequestTemplate] = {}  # destination -> how requests to it are written
        self._buffer = memoryview(bytearray(READ_SIZE))  # reads land here: no 256 KiB allocation (mmap) per read

    # -- the link --------------------------------------------------------------------

    def connect(self: _Self) -> _Self:
        """
        Open the link and finish the handshake (done by the first send).

        :raises LinkClosed: if the server refused (with its BYE code) or
            the handshake did not finish in ``connect_timeout``.
        :raises OSError: if the server cannot be reached.
        """
        self._drop()
        deadline = time.monotonic() + self.connect_timeout
        again = [(k, out) for k, out in self._out.items() if out.unacked]  # a reconnect: what was not acknowledged
        sock = open_socket(self.family, self.address, self._tls, self.connect_timeout,
                           max(self.timeout, self.connect_timeout))
        self._sock, self._closed, self._plain, self._wait, self._partial = sock, None, self._tls is None, None, 0
        config = LinkConfig(self.name, self.incarnation, False, self._password, hidden=True,
                            batch=False)  # it reads one payload per ROUTED message
        self._conn = Connection(config, lambda name, incarnation: None, self._up, self._message, self._on_close,
                                lambda: None)
        self._conn.start()
        self._flush()
        if not self._pump(lambda: self.peer is not None, deadline):
            self._drop()
            raise LinkClosed(f"handshake with {self.address!r} not finished within {self.connect_timeout} s",
                             "timeout")
        self._advertise()
        # The database sync comes first, then the server's advert that lists us.
        self._pump(self._listed, deadline)
        self._retire()
        for kernel, out in again:  # goes again (not what this handshake brought answers to), if its start lives
            if self._out.get(kernel) is out:
                self._resend(kernel, out)
        return self

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock, self._conn, self.peer = None, None, None

    def _listed(self) -> bool:
        held = self._lsas.get(self.peer.name) if self.peer is not None else None
        return held is not None and self.name in held[2]

    def _up(self, peer: PeerInfo) -> None:
        self.peer, self._known = peer, None

    def _on_close(self, code: str, message: str, by_peer: bool) -> None:
        self._closed = LinkClosed(f"link closed ({code}): {message}", code)

    def _flush(self) -> None:
        if self._reading:
            return  # written once the read is handled: frames never go out from inside one
        if self._conn is None or self._sock is None:
            raise LinkClosed("not connected", "closed")
        data = self._conn.take_output()
        if data:
            self._sock.sendall(data)

    def _advertise(self) -> None:
        assert self.peer is not None
        self._lsa_seq += 1
        self._lsa_sent = time.monotonic()
        self._send(own_lsa(self.name, self.incarnation, self._lsa_seq, self.peer.name, self._signer))

    def _send(self, message: list) -> None:
        assert self._conn is not None
        self._conn.send_message(message)
        self._flush()

    # -- reading -----------------------------------------------------------------------

    def _pump(self, done: Callable[[], bool], deadline: float) -> bool:
        """
        Read and handle messages until ``done()`` or ``deadline``
        (monotonic); send acks owed and what is due again on the way.

        :returns: ``done()``.
        :raises LinkClosed: if the link ends.
        """
        if self._reading:
            raise RuntimeError("ClientLite read from inside a read")
        monotonic = time.monotonic
        while not done():
            wait = deadline - monotonic()
            if wait <= 0:
                return False
            sock, conn = self._sock, self._conn
            if self._closed is not None or sock is None or conn is None:
                raise self._closed or LinkClosed("not connected", "closed")
            data = self._read(sock, wait if wait < RTO_MIN else RTO_MIN)
            if data is not None:
                self._take(conn, data)
            self._housekeeping()
        return True

    def _take(self, conn: Connection, data: bytes) -> None:
        """Hand what a read brought to ``conn`` (``b""``: the server closed)."""
        if not data:
            raise LinkClosed("the server closed the connection", "lost")
        self._reading = True
        try:
            conn.receive(data)
        finally:
            self._reading = False
            self._partial = conn.buffered_input

    def _read(self, sock: socket.socket, wait: float) -> Optional[bytes]:
        """
        What the socket has (``b""`` at its end), waiting up to ``wait``
        seconds; :obj:`None` if nothing came.
        """
        if wait != self._wait:  # set only when it changes: each setting is a system call
            self._wait = wait
            if self._plain:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(wait))
            else:
                sock.settimeout(wait)
        try:
            return self._buffer[:sock.recv_into(self._buffer)].tobytes()
        except (socket.timeout, BlockingIOError):  # BlockingIOError: SO_RCVTIMEO ran out
            return None

    def _housekeeping(self, all_acks: bool = False) -> None:
        """
        Send acks alone that are due (owed for :data:`ACK_DELAY`, or
        :data:`ACK_EVERY` of them; ``all_acks``: every one), and what is
        due again.  An ack owed when the application stops calling goes
        with its next call: the origin sends again meanwhile.
        """
        conn = self._conn
        if conn is None or conn.state != "up":
            self._flush()
            return
        if self._replies:
            self._send_replies()
        now = time.monotonic()
        for origin, since in list(self._owed.items()) if self._owed else ():
            stream = self._in[origin]
            if all_acks or stream[2] >= ACK_EVERY or now - since >= ACK_DELAY:
                stream[2] = 0
                del self._owed[origin]
                conn.send_body(routed_body(self.name, self.incarnation, [(origin, stream[0], 0, stream[1])],
                                           DEFAULT_HOPS, None, b""))
        if now >= self._due:
            self._due = now + CHECK_EVERY
            self._retire()
            for kernel, out in self._out.items():
                if out.unacked and now - out.sent >= out.rto:
                    out.rto = min(out.rto * 2, RTO_MAX)
                    self._resend(kernel, out)
            if now - self._lsa_sent > LSA_REFRESH:
                self._advertise()
        if conn.pending_output:  # acks, a PONG, answers queued while reading
            self._flush()

    def _message(self, message: list) -> None:
        kind = message[0]
        if kind == 7:
            self._routed(message)
        elif kind == LSA:
            origin, incarnation, seq, links, _ = parse_lsa(message)
            held = self._lsas.get(origin)
            if held is None and len(self._lsas) >= MAX_KERNELS:
                room = self.peer is not None and forget_unreachable(self._lsas, self._reachable())
                self._known = None
                if not room:
                    return  # past the bound while every kernel held is reachable: not kept
            if origin != self.name and (held is None or (incarnation, seq) > held[:2]):
                self._lsas[origin] = (incarnation, seq, dict(links), lsa_hidden(message))
                self._known = None

    def _routed(self, message: list) -> None:
        origin, incarnation, entries, _, _, payload = parse_routed(message)
        if origin == self.name:
            raise ProtocolError(f"routed message claims to come from this client ({origin!r})", "forged-origin")
        streams = self._in
        deliver = receive_entries(self.name, self.incarnation, origin, incarnation, entries, streams, self._lsas,
                                  self._out.get(origin), not payload)
        stream = streams.get(origin)
        if stream is not None and stream[2] and origin not in self._owed:
            self._owed[origin] = time.monotonic()
        if deliver:
            self._deliver(origin, loads(payload))

    def _deliver(self, origin: str, payload: Any) -> None:
        body = parse_payload(payload)
        kind = body[0]
        if kind == RESPONSE:
            request_id = body[2]
            # Kept only if waited, and from the kernel asked (any hop for a trace); else dropped.
            if request_id in self._waiting and self._waiting[request_id] in (None, origin):
                self._answers[request_id] = (body[3], body[4])
        elif kind in (REQUEST, CONTROL):  # answered after this read (see _send_replies)
            self._replies.append((origin, dumps([RESPONSE, [], body[8], False,
                                                 ["NoSuchSession", f"{self.name} is a ClientLite"]])))
        elif kind in (POST, CALL, CALLREPLY, UNDELIVERABLE):
            sessions = body[1]
            event = Event(kind, origin, sessions if sessions == "*" else ",".join(sessions), body[2], body[3],
                          body[4])
            if len(self.events) >= self.max_events:
                self.events.popleft()
                self.events_dropped += 1
            self.events.append(event)
            if kind == UNDELIVERABLE:
                self._undelivered.append(event)

    def _send_replies(self) -> None:
        """
        Send the answers owed to requests that came in, each in its
        kernel's stream; one to a kernel not reachable (yet) is dropped
        (its request times out there).
        """
        replies, self._replies = self._replies, []
        for kernel, payload in replies:
            incarnation = self._reachable().get(kernel)
            if incarnation is not None:
                out = self._stream(kernel, incarnation)
                self._write(kernel, out, out.push(payload, None), flush=False)

    # -- sending -----------------------------------------------------------------------

    def _ensure(self) -> None:
        if self._conn is None or self._conn.state != "up" or self._closed is not None:
            self.connect()

    def _reachable(self) -> Dict[str, int]:
        if self.peer is None:
            return {}
        if self._known is None:  # recomputed when an advert changed
            self._known = reachable(self._lsas, self.peer.name, self.peer.incarnation, self.name)
        return self._known

    def _incarnation(self, kernel: str, deadline: float) -> int:
        """
        The incarnation of ``kernel``, waiting for its advert until
        ``deadline`` (the database arrives just after the handshake).

        :raises NoRoute: if it stays unreachable.
        """
        known = self._known
        if known is not None and kernel in known:
            return known[kernel]  # the common case: no advert changed
        if not self._pump(lambda: kernel in self._reachable(), min(deadline, time.monotonic() + 1.0)):
            raise NoRoute(f"no route to kernel {kernel!r}")
        return self._reachable()[kernel]

    def _stream(self, kernel: str, incarnation: int) -> Out:
        """
        Our stream to this start of ``kernel`` (a new one for a new start:
        what the old one holds unacknowledged is lost).
        """
        out = self._out.get(kernel)
        if out is None or out.incarnation != incarnation:
            if out is not None:
                self._give_up(kernel, out)
            out = self._out[kernel] = Out(incarnation)
        return out

    def _retire(self) -> None:
        """Drop the streams to starts of kernels that the adverts say have restarted: what they hold is lost."""
        known = self._reachable()
        stale = [(k, out) for k, out in self._out.items() if known.get(k, out.incarnation) != out.incarnation]
        for kernel, out in stale:
            del self._out[kernel]
            self._give_up(kernel, out)

    def _give_up(self, kernel: str, out: Out) -> None:
        """Count what ``out``, our stream to a start of ``kernel`` that ended, holds unacknowledged as lost."""
        if out.unacked:
            self._lost[kernel] = self._lost.get(kernel, 0) + len(out.unacked)
            out.unacked.clear()

    def _room(self, kernel: str, out: Out, deadline: float) -> None:
        """
        Read acks until fewer than :attr:`window` messages to ``kernel``
        are unacknowledged.

        :raises WindowFull: if none came by ``deadline``.
        """
        if not self._pump(lambda: len(out.unacked) < self.window, deadline):
            raise WindowFull(f"{len(out.unacked)} messages to kernel {kernel!r} are not acknowledged "
                             f"(window {self.window}): not sent")

    def _payload(self, kernel: str, body: Any, ttl: Optional[float] = None,
                 deadline: Optional[float] = None) -> None:
        """
        Send one payload (a list, or its CBOR) to ``kernel`` in its stream;
        reconnect once if the link has failed.
        """
        payload = body if type(body) is bytes else dumps(body)
        queued = False
        for attempt in (0, 1):
            try:
                self._ensure()
                if queued:
                    return  # the reconnect sent it again, with everything else not acknowledged
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.timeout
                out = self._out.get(kernel)  # the common case: the stream to the start we know, no advert changed
                known = self._known
                if out is None or known is None or known.get(kernel) != out.incarnation:
                    out = self._stream(kernel, self._incarnation(kernel, deadline))
                if len(out.unacked) >= self.window:
                    self._room(kernel, out, deadline)
                    now = time.monotonic()
                    out = self._stream(kernel, self._incarnation(kernel, deadline))  # if it restarted meanwhile
                seq = out.push(payload, None if ttl is None else now + ttl)
                queued = True
                self._write(kernel, out, seq, now)
                return
            except (OSError, LinkClosed):
                self._drop()
                if attempt:
                    raise

    def _write(self, kernel: str, out: Out, seq: int, now: Optional[float] = None, flush: bool = True) -> None:
        """
        Write payload ``seq`` of ``out`` with the ack we owe ``kernel``
        (``now``: monotonic, if the caller has it).
        """
        assert self._conn is not None
        if now is None:
            now = time.monotonic()
        self._conn.send_body(self._routed_body(kernel, out, seq, self._in.get(kernel), now))
        out.sent = now
        if flush:
            self._flush()

    def _routed_body(self, kernel: str, out: Out, seq: int, stream: Optional[List[int]], now: float) -> bytes:
        """The ROUTED body of payload ``seq`` of ``out``, with the ack we owe by ``stream``, ``kernel``'s to us."""
        payload, expires = out.unacked[seq]
        ack = 0
        if stream is not None:
            ack = stream[1]
            if stream[2]:
                stream[2] = 0
                self._owed.pop(kernel, None)
        head = out.head
        if head is None:
            head = out.head = routed_head(self.name, self.incarnation, kernel, out.incarnation)
        return routed_from(head, seq, ack, DEFAULT_HOPS,
                           None if expires is None else max(int((expires - now) * 1000), 0), payload)

    def _resend(self, kernel: str, out: Out) -> None:
        for seq in sorted(out.unacked):
            self._write(kernel, out, seq)

