# -*- test-case-name: lightspeed.test.test_mesh -*-
"""
Request correlation: REQUEST and CONTROL messages out, each with a random
id and a Deferred kept until its RESPONSE, its time-out, or the loss of
its kernel; RESPONSE messages in; and our own answers to other kernels'
requests.

Time-outs cost no timer per request: the deadlines wait in a heap and one
timer, set for the earliest, fails what is due (an answered request's
deadline is skipped when it comes up, and the heap is rebuilt when such
leftovers outnumber the pending requests).

Ids cost no system call each: they are drawn from the operating system's
random source :data:`ID_BATCH` at a time.  A request's payload is put
together from cached encodings of its destination and its sender: only its
arguments and id are encoded each time (the bytes are those of encoding
the whole list, since a CBOR array is its head and its items one after
another).
"""

from __future__ import annotations

import heapq
import os
import struct
from typing import Any, Callable, Collection, Dict, List, Optional, Tuple, Union

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from lightspeed.errors import BacklogFull, EncodeError, LightspeedError, NoRoute, RemoteError, RequestTimeout, remote_error
from lightspeed.message import RESPONSE, payload_body
from lightspeed.wire.codec import check_plain, dumps, dumps_trusted, dumps_value

__all__ = ["Requests", "remote_error", "ID_BATCH", "encode_id"]

#: Request ids read from ``os.urandom`` in one go.
ID_BATCH = 256
_IDS = struct.Struct(f">{ID_BATCH}Q")

#: What a time-out says: a text, or a function that makes it (made only
#: when a request times out, not for every request).
Late = Union[str, Callable[[], str]]

#: A RESPONSE's first two items, ``RESPONSE`` and its empty sessions, under
#: the head of a five-item array.
_RESPONSE_HEAD = b"\x85" + dumps_trusted(RESPONSE) + b"\x80"
_TRUE_FALSE = (b"\xf4", b"\xf5")
_U64 = struct.Struct(">BQ").pack
_U32 = struct.Struct(">BI").pack


def encode_id(request_id: int) -> bytes:
    """
    The CBOR of a request id; ids of 2**16 and more (nearly every random
    one, and ClientLite's, counted from below 2**30) written by hand, in
    their shortest form as :func:`dumps_trusted` writes them.
    """
    if 0xFFFF < request_id < 0x10000000000000000:
        return _U32(0x1A, request_id) if request_id < 0x100000000 else _U64(0x1B, request_id)
    return dumps_trusted(request_id)


class Requests:
    """
    The pending requests of one network, by id: ``(deferred, kernel,
    deadline, late)``: the time it fails with :class:`RequestTimeout`
    saying ``late`` (or :obj:`None`: never); ``late`` is a :data:`Late`.
    """

    log = Logger()

    def __init__(self, network: Any) -> None:
        self._network = network
        self.pending: Dict[int, Tuple[Deferred, str, Optional[float], Late]] = {}
        #: ``(deadline, request id)`` of pending requests (and answered ones).
        self._deadlines: List[Tuple[float, int]] = []
        self._sweep: Any = None
        #: Random ids not used yet (see :meth:`new_id`).
        self._ids: List[int] = []

    def __len__(self) -> int:
        return len(self.pending)

    def new_id(self) -> int:
        """
        A random 63-bit id that no pending request has: other kernels
        cannot guess it to answer (or fail) a request they did not get.
        """
        ids = self._ids
        while True:
            if not ids:
                ids.extend(n >> 1 for n in _IDS.unpack(os.urandom(_IDS.size)))
            request_id = ids.pop()
            if request_id not in self.pending:
                return request_id

    def payload(self, kind: int, sessions: Any, state: str, args: Tuple[Any, ...],
                sender: Tuple[Optional[str], Optional[str], Optional[str], Optional[int]], request_id: int) -> bytes:
        """
        The encoded payload ``[kind, sessions, state, [*args], *sender,
        request_id]`` (``sender``: session, state, file, line), byte for
        byte what encoding that list gives (see
        :func:`~lightspeed.message.payload_body`).

        :raises EncodeError: if an argument cannot travel or the payload
            exceeds the network's ``max_payload``.
        """
        check_plain(sessions)  # (payload_body trusts the names it is given)
        try:
            body = payload_body(kind, tuple(sessions) if type(sessions) is list else sessions, state, args, *sender,
                                extra=request_id)
        except TypeError:  # unhashable: not names; encoded whole
            body = dumps([kind, sessions, state, list(args), *sender, request_id])
        return self._network._limited(body)

    def start(self, kernel: str, build: Callable[[int], bytes], timeout: Optional[float], late: Late) -> Deferred:
        """
        Send the payload ``build(request_id)`` (see :meth:`payload`; it
        raises :class:`EncodeError` for one that cannot travel) to
        ``kernel`` and keep its
        Deferred until the RESPONSE, a time-out (:class:`RequestTimeout`
        saying ``late``) or the loss of the kernel.  A message too large to
        travel fails the Deferred at once with :class:`EncodeError`.
        """
        network = self._network
        if network.router.next_hop(kernel) is None:
            return fail(NoRoute(f"no route to kernel {kernel!r}"))
        request_id, d, deadline = self.expect(kernel, timeout, late)
        try:
            body = build(request_id)
        except EncodeError as e:
            self._forget(request_id)
            return fail(e)
        for _, why in network.delivery.send((kernel,), body, deadline):  # (not us: we have no route to us)
            self.fail(request_id, BacklogFull(f"backlog full for kernel {kernel!r}") if why == "backlog full"
                      else NoRoute(f"no route to kernel {kernel!r}"))
        return d

    def expect(self, kernel: str, timeout: Optional[float], late: Late) -> Tuple[int, Deferred, Optional[float]]:
        """
        Keep a Deferred for the RESPONSE from ``kernel`` to a new request
        id, failed with :class:`RequestTimeout` saying ``late`` after
        ``timeout`` seconds (or when the kernel is lost).

        :returns: ``(request_id, deferred, deadline)``.
        """
        request_id = self.new_id()
        d: Deferred[Any] = Deferred(lambda _: self._forget(request_id))
        deadline = None
        if timeout is not None:
            deadline = self._network.reactor.seconds() + timeout
            self._wait_until(deadline, request_id)
        self.pending[request_id] = (d, kernel, deadline, late)
        return request_id, d, deadline

    def _wait_until(self, deadline: float, request_id: int) -> None:
        deadlines = self._deadlines
        if len(deadlines) > 2 * len(self.pending) + 64:  # mostly answered ones: start afresh
            deadlines[:] = [(entry[2], rid) for rid, entry in self.pending.items() if entry[2] is not None]
            heapq.heapify(deadlines)
        heapq.heappush(deadlines, (deadline, request_id))
        sweep = self._sweep
        if sweep is None or deadline < sweep.getTime():
            if sweep is not None:
                sweep.cancel()
            reactor = self._network.reactor
            self._sweep = reactor.callLater(max(deadline - reactor.seconds(), 0), self._timeouts)

    def _forget(self, request_id: int) -> None:
        self.pending.pop(request_id, None)

    def stop(self) -> None:
        """
        The network stops: its time-out timer with it.
        """
        self._deadlines.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def _timeouts(self) -> None:
        """
        Fail every request whose deadline has come; wait for the next.
        """
        self._sweep = None
        reactor = self._network.reactor
        deadlines = self._deadlines
        now = reactor.seconds() + 1e-9  # a deadline reached up to rounding counts
        while deadlines and deadlines[0][0] <= now:
            deadline, request_id = heapq.heappop(deadlines)
            entry = self.pending.get(request_id)
            if entry is not None and entry[2] == deadline:
                late = entry[3]
                self.fail(request_id, RequestTimeout(late if isinstance(late, str) else late()))
        if self.pending and deadlines and self._sweep is None:
            self._sweep = reactor.callLater(max(deadlines[0][0] - reactor.seconds(), 0), self._timeouts)

    def fail(self, request_id: int, error: Exception) -> None:
        """
        Fail one pending request with ``error``.
        """
        entry = self.pending.pop(request_id, None)
        if entry is not None:
            entry[0].errback(Failure(error))

    def fail_lost(self, reachable: Collection[str], gone: Collection[str]) -> None:
        """
        Fail the requests to kernels that are not ``reachable`` or that are
        ``gone`` (left or restarted: no answer will come).
        """
        for request_id, (d, kernel, _, _) in list(self.pending.items()):
            if kernel not in reachable or kernel in gone:
                self.fail(request_id, NoRoute(f"kernel {kernel!r} became unreachable or restarted"))

    def response(self, origin: str, payload: list) -> None:
        """
        A RESPONSE from ``origin`` (or a relay's NoRoute on its behalf).
        """
        request_id, ok, value = payload[2], payload[3], payload[4]
        entry = self.pending.get(request_id)
        if entry is None or (entry[1] != origin and not (not ok and type(value) is list and value[:1] == ["NoRoute"])):
            # (Only the kernel asked answers, or a relay saying it has no route to it.)
            self.log.warn("answer from {origin} to unknown or expired request {id}", origin=origin, id=request_id)
            return
        del self.pending[request_id]
        d = entry[0]
        if ok:
            d.callback(value)
            return
        if type(value) is list and len(value) >= 2 and type(value[0]) is str and type(value[1]) is str:
            error: Exception = remote_error(value[0], value[1])
        else:
            error = RemoteError("?", repr(value))
        d.errback(Failure(error))

    # -- answering -----------------------------------------------------------------

    def respond(self, origin: str, request_id: int, ok: bool, value: Any) -> None:
        """
        Send the RESPONSE to request ``request_id`` of kernel ``origin``.  A
        value that cannot travel (or is too large) is answered with an
        ``EncodeError``.
        """
        network = self._network
        try:  # [RESPONSE, [], request_id, ok, value], with only the id and value encoded now
            body = b"".join((_RESPONSE_HEAD, encode_id(request_id), _TRUE_FALSE[ok], dumps_value(value)))
            if len(body) > network.max_payload:
                network._limited(body)
        except LightspeedError as e:
            body = dumps([RESPONSE, [], request_id, False, ["EncodeError", str(e)]])
        network.relay.send(origin, body)

    def respond_when(self, origin: str, request_id: int, d: Deferred) -> None:
        """
        Answer request ``request_id`` of kernel ``origin`` with ``d``'s
        result: its value, or ``[type_name, message]`` of its failure.
        """
        d.addCallbacks(
            lambda value: self.respond(origin, request_id, True, value),
            lambda f: self.respond_error(origin, request_id, f.value),
        )

    def respond_error(self, origin: str, request_id: int, error: BaseException) -> None:
        """
        Answer request ``request_id`` of kernel ``origin`` with ``error``
        as ``[type_name, message]``.
        """
        self.respond(origin, request_id, False, [type(error).__name__, str(error)])
