# -*- test-case-name: lightspeed.test.test_clientlite -*-
"""
ClientLite: a blocking lightspeed client on plain sockets, without a reactor.

It joins the network over one link as a *hidden* leaf kernel (see
``docs/protocol.rst``, "Hidden kernels"): ``*`` does not reach it, it is
not listed, it relays nothing.  It speaks the protocol with the sans-IO
:obj:`lightspeed.wire.connection.Connection` (so the handshake and password
proof are the kernels' own), keeps its own LSA, numbers and acknowledges
its streams, and sends again what is not acknowledged while it waits.

    with ClientLite("tcp:127.0.0.1:9876") as client:
        client.post("poe://otherbox/pong/ping", "hello")
        print(client.request("poe://otherbox/math/add", 1, 2, timeout=5))
"""

from __future__ import annotations

import socket
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from lightspeed.errors import LinkClosed, RequestTimeout, remote_error
from lightspeed.litelink import SESSION, LiteLink
from lightspeed.liteparts import RTO_MIN, SENDER, TAIL, Delivery, Event, WindowFull, parse_endpoint, payload_head, \
    request_payload, tls_context
from lightspeed.litetemplate import RequestTemplate
from lightspeed.message import CALL, CONTROL, DEFAULT_HOPS, POST, REQUEST, TRACE
from lightspeed.specifier import check_name, parse
from lightspeed.wire.codec import check_plain, dumps_args
from lightspeed.wire.tracehops import check_hops

__all__ = ["ClientLite", "Delivery", "Event", "WindowFull", "parse_endpoint", "tls_context"]

#: The most parsed destination strings a client keeps (then it starts again).
MAX_DESTINATIONS = 1024
#: What :meth:`ClientLite._fast` returns when it sent nothing (the stream was not ready).
_NOT_SENT = object()


class ClientLite(LiteLink):
    """
    A blocking client that joins as a hidden leaf kernel.

    :param server: where a kernel listens (see :obj:`parse_endpoint`).
    :param name: this client's kernel name (default: ``lite-`` and random).
    :param tls: an :class:`ssl.SSLContext` (see :obj:`tls_context`), ``True``
        for the default one, or :obj:`None` (TLS only for ``tls:`` endpoints
        or with ``cert``, ``key`` or ``ca``).
    :param cert: the client certificate (PEM file), for mutual TLS.
    :param key: its private key (PEM file).
    :param ca: the CA the server's certificate must be signed by (PEM
        file).  With ``cert``, ``key`` and ``ca`` the client signs its
        adverts as a kernel does, which a node with ``--tls-ca`` requires.
    :param password: the mesh's shared secret (str or bytes), or :obj:`None`.
    :param connect_timeout: seconds for the connection and handshake.
    :param timeout: the default seconds to wait for an answer (and for
        room in the window).
    :param window: at most this many messages to one kernel wait for its
        ack; a send that finds the window full reads acks until there is
        room, for at most its time-out, then raises :class:`WindowFull`.
    """

    def __enter__(self) -> "ClientLite":
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def flush(self, timeout: Optional[float] = None) -> Delivery:
        """
        Wait (up to ``timeout``, default :attr:`timeout`) until what was
        sent is acknowledged, and say what was not and what came back
        undeliverable since the last flush.  A kernel sends its report
        before or with the ack of what it reports, so a report of an
        acknowledged message is in the answer.
        """
        if self._conn is not None and self._conn.state == "up" and self._closed is None:
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
            try:
                self._pump(self._all_acked, deadline)
                self._housekeeping(all_acks=True)
            except (OSError, LinkClosed):
                pass  # what is not acknowledged is in the report
        self._retire()
        unacked = {kernel: len(out.unacked) for kernel, out in sorted(self._out.items()) if out.unacked}
        report = Delivery(unacked, list(self._undelivered), dict(sorted(self._lost.items())))
        self._undelivered.clear()
        self._lost.clear()
        return report

    def close(self, timeout: Optional[float] = None) -> Delivery:
        """
        :meth:`flush`, then say BYE and close.

        :returns: what :meth:`flush` found.
        """
        report = self.flush(timeout)
        if self._conn is not None and self._conn.state == "up":
            try:
                self._conn.close("shutdown", "client closing")
                self._flush()
            except (OSError, LinkClosed):
                pass
        self._drop()
        return report

    def _all_acked(self) -> bool:
        self._retire()
        return not any(out.unacked for out in self._out.values())

    def list_kernels(self, hidden: bool = False) -> List[str]:
        """
        The kernels the client can reach, sorted (``hidden``: hidden ones
        too, this client included).
        """
        self._ensure()
        names = [k for k in self._reachable() if hidden or not self._lsas.get(k, (0, 0, {}, False))[3]]
        return sorted(names + ([self.name] if hidden else []))

    def links(self) -> Dict[str, Dict[str, int]]:
        """
        The links of the reachable kernels as their adverts say:
        ``{kernel: {neighbour: cost}}``.
        """
        self._ensure()
        known = self._reachable()
        return {origin: dict(held[2]) for origin, held in sorted(self._lsas.items()) if origin in known}

    def _spec(self, dest: str) -> Tuple[Tuple[str, ...], Any, str, bool, bytes]:
        """
        ``(kernels, sessions, state, all kernels, the start of a REQUEST
        payload to it)`` of ``dest``; parsed strings are kept (a client
        sends to a few).
        """
        spec = self._specs.get(dest) if type(dest) is str else None
        if spec is None:
            parsed = parse(dest)
            if parsed.state is None:
                raise ValueError(f"destination {dest!r} names no state")
            sessions = "*" if parsed.all_sessions else list(parsed.sessions)
            spec = (tuple(parsed.kernels), sessions, parsed.state, parsed.all_kernels,
                    payload_head(REQUEST, sessions, parsed.state))
            if type(dest) is str:
                if len(self._specs) >= MAX_DESTINATIONS:
                    self._specs.clear()
                self._specs[dest] = spec
        return spec

    def _targets(self, dest: str) -> Tuple[Sequence[str], Any, str]:
        """``(kernels, sessions, state)`` of ``dest``, ``*`` as the visible kernels now."""
        spec = self._spec(dest)
        self._ensure()
        return (self.list_kernels() if spec[3] else spec[0]), spec[1], spec[2]

    def post(self, dest: str, *args: Any, ttl: Optional[float] = None) -> None:
        """
        Post ``args`` to ``poe://KERNEL/SESSION/STATE`` (``*`` for every
        visible kernel).  What is undeliverable comes back as an
        :class:`Event` of kind UNDELIVERABLE, and in the next
        :meth:`flush` or :meth:`close`.

        :raises NoRoute: if a kernel is not reachable.
        :raises WindowFull: see ``window``.
        """
        check_plain(list(args))
        kernels, sessions, state = self._targets(dest)
        for kernel in kernels:
            self._payload(kernel, [POST, sessions, state, list(args), SESSION, None, None, None], ttl)

    def call(self, dest: str, rsvp: str, *args: Any) -> None:
        """
        Call ``dest`` with ``args``; its return value is posted to ``rsvp``,
        a full destination (``poe://NAME/lite/STATE`` for this client: see
        :meth:`receive`).
        """
        check_plain(list(args))
        parse(rsvp)
        kernels, sessions, state = self._targets(dest)
        for kernel in kernels:
            self._payload(kernel, [CALL, sessions, state, list(args), SESSION, None, None, None, rsvp])

    def request(self, dest: str, *args: Any, timeout: Optional[float] = None) -> Any:
        """
        Run ``dest``'s state with ``args`` and return its value.

        :raises RequestTimeout: with no answer in ``timeout`` seconds.
        :raises RemoteError: (or NoSuchSession, NoRoute) if it failed there.
        :raises EncodeError: if ``args`` hold anything but plain values.
        """
        template = self._templates.get(dest) if type(dest) is str else None
        if template is not None:
            kernel, out, conn, known = template.kernel, template.out, self._conn, self._known
            # Ready: the stream the template was made for, the start the adverts name, room, the link up on a
            # plain socket, nothing queued or half read.
            if self._out.get(kernel) is out and conn is not None and known is not None \
                    and known.get(kernel) == out.incarnation and len(out.unacked) < self.window and self._plain \
                    and not self._reading and self._closed is None and conn.state == "up" and not self._replies \
                    and not self._partial and not conn.pending_output:
                answer = self._fast(template, args, self.timeout if timeout is None else timeout)
                if answer is not _NOT_SENT:
                    return answer
        kernels, sessions, state, every, head = self._spec(dest)
        if len(kernels) != 1 or every:
            raise ValueError(f"a request goes to one kernel, not {dest!r}")
        try:
            return self._ask(kernels[0], REQUEST, sessions, state, args, timeout, head)
        finally:
            stream = self._out.get(kernels[0])
            if stream is not None and type(dest) is str and (template is None or template.out is not stream):
                # The next request to dest is written from its template (made once per stream, not per request).
                if dest not in self._templates and len(self._templates) >= MAX_DESTINATIONS:
                    self._templates.clear()
                self._templates[dest] = RequestTemplate(kernels[0], stream, head, state, self.name,
                                                        self.incarnation)

    def _fast(self, template: RequestTemplate, args: Tuple[Any, ...], timeout: float) -> Any:
        """
        A request written from ``template`` in one frame (the ack we owe
        with it), its stream ready, and its answer if the one read after it
        is exactly that (see :meth:`RequestTemplate.answer`), else
        :meth:`_late` for it; :data:`_NOT_SENT` if it does not fit the
        template (a payload of 256 bytes or more).
        """
        kernel, out, conn, stream = template.kernel, template.out, self._conn, self._in.get(template.kernel)
        request_id = next(self._ids)
        payload = b"".join((template.phead, dumps_args(args), TAIL(SENDER, 0x1a, request_id)))
        n, ttl = len(payload), int(timeout * 1000)
        if n > 255 or request_id > 0xffffffff or not 256 <= ttl <= 0xffff or stream is None or conn is None:
            return _NOT_SENT
        now = time.monotonic()
        ack = stream[1]
        if stream[2]:
            stream[2] = 0
            self._owed.pop(kernel, None)
        seq = out.seq = out.seq + 1  # Out.push
        out.unacked[seq] = (payload, now + timeout)
        data = template.pack(template.fixed + n, template.head, 0x1a, seq, 0x1a, ack, 0x18, DEFAULT_HOPS, 0x19, ttl,
                             0x58, n) + payload  # the frame RequestTemplate.pack lays out
        out.sent = now
        conn.frames_out += 1
        conn.bytes_out += len(data)
        sock, buffer = self._sock, self._buffer
        assert sock is not None  # _plain: connected
        try:
            sock.sendall(data)
        except OSError:
            return self._late(template, request_id, None, now, timeout, sent=False)
        wait = timeout if timeout < RTO_MIN else RTO_MIN
        try:  # LiteLink._read, the read time-out as it is
            got = buffer[:sock.recv_into(buffer)].tobytes() if wait == self._wait else self._read(sock, wait)
        except (socket.timeout, BlockingIOError):
            got = None
        answer = None if got is None else template.answer(got, conn.config.max_frame, stream, request_id)
        if answer is None:
            return self._late(template, request_id, got, now, timeout)
        conn.frames_in += 1
        conn.bytes_in += len(got)  # type: ignore[arg-type]
        if kernel not in self._owed:
            self._owed[kernel] = now
        if now >= self._due or len(self._owed) > 1:
            self._housekeeping()
        return answer[1] if answer[0] else _result(*answer)

    def _late(self, template: RequestTemplate, request_id: int, got: Optional[bytes], now: float,
              timeout: float, sent: bool = True) -> Any:
        """
        The answer to ``request_id`` when it was not taken at once: ``got``
        (the read after it, :obj:`None` if nothing came) handled as any
        read, then waited for; if it was not ``sent`` (the write failed),
        sent again with a new link.
        """
        self._waiting[request_id] = template.kernel  # an answer from another kernel is not this one's
        try:
            if not sent:
                self._drop()
                self._ensure()  # sends it again, with everything not acknowledged
            else:
                if got is not None:
                    self._take(self._conn, got)  # type: ignore[arg-type]  # up: it was just read from
                self._housekeeping()
            return self._answer(request_id, now + timeout, "no answer to {!r} from kernel {!r} within {} s",
                                template.state, template.kernel, timeout)
        finally:
            self._forget(request_id)

    def control(self, kernel: str, op: str, *args: Any, sessions: Any = "*", timeout: Optional[float] = None) -> Any:
        """
        Ask ``kernel`` to run CONTROL operation ``op`` (``sessions``,
        ``states``, ``stats``, ``monitor_register``, ...) and return its answer.
        """
        return self._ask(check_name(kernel), CONTROL, sessions, op, args, timeout)

    def _ask(self, kernel: str, kind: int, sessions: Any, state: str, args: Any, timeout: Optional[float],
             head: Optional[bytes] = None) -> Any:
        """
        Send a REQUEST or CONTROL (its args checked by the encoding;
        ``head``: its :obj:`payload_head`, if known) and wait for its answer.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        request_id = next(self._ids)
        payload = request_payload(head or payload_head(kind, sessions, state), args, request_id)
        self._waiting[request_id] = kernel  # an answer from another kernel is not this one's
        try:
            self._payload(kernel, payload, timeout, deadline)
            return self._answer(request_id, deadline, "no answer to {!r} from kernel {!r} within {} s", state,
                                kernel, timeout)
        finally:
            self._forget(request_id)

    def _answer(self, request_id: int, deadline: float, late: str, *fields: Any) -> Any:
        """
        The answer to ``request_id`` (waited: in ``_waiting``, until the
        caller's :meth:`_forget`); :class:`RequestTimeout` with
        ``late.format(*fields)`` by ``deadline``.
        """
        if not self._pump(lambda: request_id in self._answers, deadline):
            raise RequestTimeout(late.format(*fields))
        return _result(*self._answers.pop(request_id))

    def _forget(self, request_id: int) -> None:
        """Wait no more for ``request_id``: an answer to it that comes later is dropped, not kept."""
        del self._waiting[request_id]
        self._answers.pop(request_id, None)

    def ping(self, kernel: Optional[str] = None, timeout: Optional[float] = None) -> float:
        """
        The round trip in seconds to ``kernel`` (default: the server), a
        CONTROL ``ping`` that it answers at once.
        """
        self._ensure()
        assert self.peer is not None
        start = time.perf_counter()
        self.control(kernel or self.peer.name, "ping", timeout=timeout)
        return time.perf_counter() - start

    def trace(self, kernel: str, timeout: Optional[float] = None) -> List[Dict[str, Any]]:
        """
        The route a message to ``kernel`` takes, hop by hop (a TRACE, see
        "Traces" in ``docs/protocol.rst``): each hop ``{"kernel", "time"
        (epoch s when it passed), "cost" (of the link it came by)}``, this
        client first.
        """
        timeout = self.timeout if timeout is None else timeout
        self._ensure()
        request_id = next(self._ids)
        self._waiting[request_id] = None  # answered by the hop it reached: the destination, or where it failed
        try:
            self._send([TRACE, self.name, request_id, check_name(kernel), [[self.name, time.time(), None]]])
            hops = self._answer(request_id, time.monotonic() + timeout,
                                "no answer to a trace to kernel {!r} within {} s", kernel, timeout)
        finally:
            self._forget(request_id)
        hops = check_hops(hops, self.name, kernel)  # a hostile server's answer: ProtocolError, not an IndexError
        return [{"kernel": hop[0], "time": hop[1], "cost": hop[2]} for hop in hops]

    def receive(self, timeout: Optional[float] = None) -> Optional[Event]:
        """
        The next message posted to this client (to ``poe://NAME/lite/...``,
        a call's reply, a monitor event, an undeliverable report), waiting
        up to ``timeout`` seconds (default :attr:`timeout`); :obj:`None` if
        none came.  At most :attr:`max_events` (10,000) wait unread: past
        that the oldest is dropped and counted in :attr:`events_dropped`.
        """
        self._ensure()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        if self._pump(lambda: bool(self.events), deadline):
            return self.events.popleft()
        return None




def _result(ok: bool, value: Any) -> Any:
    """The value of a RESPONSE ``(ok, value)``, or its error raised."""
    if ok:
        return value
    if type(value) is list and len(value) >= 2 and type(value[0]) is str and type(value[1]) is str:
        raise remote_error(value[0], value[1])
    raise remote_error("?", repr(value))
