# -*- test-case-name: lightspeed.test.test_mesh -*-
"""
Payloads that arrived for this kernel, one handler per kind: POST and
CALLREPLY are queued, CALL runs and posts its value to the RSVP, REQUEST
and CONTROL are answered with a RESPONSE, UNDELIVERABLE reaches the
sender's ``_undeliverable`` state, RESPONSE settles a pending request.

The kernel is reached only through its
:class:`~lightspeed.interfaces.IKernelPort`.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Dict, Iterable, List, Optional, Tuple

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from lightspeed.bounded import BoundedCache
from lightspeed.errors import BadSpecifier, LightspeedError, NoRoute, NoSuchSession, ProtocolError, RequestTimeout
from lightspeed.message import CALL, CALLREPLY, CONTROL, MONITOR_STATE, POST, REQUEST, RESPONSE, UNDELIVERABLE, \
    parse_payload, post_template
from lightspeed.session import RESERVED_STATES, RemoteSender
from lightspeed.specifier import check_state, parse
from lightspeed.wire.codec import MAX_DEPTH, loads, loads_joined

__all__ = ["Dispatcher", "KIND_NAMES"]

KIND_NAMES = {POST: "post", CALL: "call", CALLREPLY: "callreply", REQUEST: "request",
              UNDELIVERABLE: "undeliverable", CONTROL: "control"}

#: The authentication hook kind that each payload kind passes.
_HOOK_KINDS = {POST: "post", CALL: "call", CALLREPLY: "callreply", REQUEST: "call"}

Bounce = Optional[Tuple[str, Optional[str], Any]]

_NONE = type(None)
#: The types a sender's session, state and file may have, and its line
#: (:func:`~lightspeed.message.parse_payload`), for
#: :meth:`Dispatcher.arrived`'s fast path.
_STR_OR_NONE = (str, _NONE)
_INT_OR_NONE = (int, _NONE)
#: Results a handler returns that are surely not a Deferred (asking
#: ``isinstance(result, Deferred)`` runs the ABC machinery: Deferred is an
#: Awaitable).
_PLAIN = frozenset({_NONE, bool, int, float, str, bytes, list, dict, tuple})


class Dispatcher:
    """
    Delivers payloads to the local kernel.
    """

    log = Logger()

    def __init__(self, network: Any) -> None:
        self._network = network
        self._port = network.port
        self._local = network.port.local
        self._name = network.name
        self._senders = BoundedCache(1024)
        self._states = BoundedCache(4096)  # states seen valid (and not reserved)
        self._handlers = {POST: self._post, CALLREPLY: self._post, CALL: self._call, REQUEST: self._request,
                          UNDELIVERABLE: self._notice, CONTROL: self._control}

    def arrived(self, origin: str, payload: Any) -> None:
        """
        Handle a decoded payload that came straight from kernel ``origin``,
        not checked yet.  The common request, to one aliased session in a
        state already seen valid, with no hook or event to tell, is
        answered at once, and an answer goes straight to its request;
        everything else is checked by
        :func:`~lightspeed.message.parse_payload` and goes to
        :meth:`deliver`.
        """
        if type(payload) is list and len(payload) >= 9:
            # Each item's type as parse_payload requires it of a REQUEST
            # (``type(x) is`` in the bytecode: map(type, ...) costs twice as much).
            kind, sessions, state, args, s_session, s_state, s_file, s_line, request_id = payload[:9]
            if kind == REQUEST and type(kind) is int and type(sessions) is list and type(state) is str \
                    and type(args) is list and type(s_session) in _STR_OR_NONE and type(s_state) in _STR_OR_NONE \
                    and type(s_file) in _STR_OR_NONE and type(s_line) in _INT_OR_NONE and type(request_id) is int \
                    and state in self._states and len(sessions) == 1 and type(sessions[0]) is str \
                    and not self._network.events.arrived and not self._port.guarded:
                session = self._local.aliases.get(sessions[0])
                if session is not None:
                    self._answer(origin, payload, session, self._sender(origin, payload))
                    return
        elif type(payload) is list and len(payload) >= 5 and payload[0] == RESPONSE and type(payload[0]) is int \
                and type(payload[2]) is int and type(payload[3]) is bool:
            # An answer, checked as parse_payload checks one, to the request it answers.
            self._network.requests.response(origin, payload)
            return
        self.deliver(origin, parse_payload(payload))

    def deliver(self, origin: str, payload: list) -> Optional[Tuple[Any, RemoteSender]]:
        """
        Handle a parsed payload from kernel ``origin``.

        :returns: ``(session, sender)`` when it was a post queued for one
            aliased session with no hook, event or monitor to tell: a post
            right after it with the same destination and sender may be
            queued the same way (:meth:`deliver_all`); else ``None``.
        """
        kind = payload[0]
        if kind == RESPONSE:
            self._network.requests.response(origin, payload)
            return None
        sessions, state, args = payload[1], payload[2], payload[3]
        sender = self._sender(origin, payload)
        monitor = payload[4] is None and payload[5] == MONITOR_STATE and kind == POST and type(sessions) is list
        if monitor and self._port.monitor_event(origin, sessions, state, args, sender):
            return None
        events = self._network.events
        told = events.arrived
        if told and not (kind == CONTROL and state.startswith("monitor_")):
            events.emit("arrived", origin=origin, kind=KIND_NAMES.get(kind, "?"), sender=sender.id,
                        destination=self._destination(sessions, state))
        if kind == POST and state in self._states and len(sessions) == 1 and type(sessions) is list \
                and not self._port.guarded:
            # Hot path: a post to one aliased session, no hooks to ask.
            session = self._local.aliases.get(sessions[0])
            if session is not None:
                self._local.enqueue(session, state, tuple(args), sender, payload[5], payload[6], payload[7])
                return None if told or monitor else (session, sender)
        self._handlers[kind](origin, payload, sender)
        return None

    def deliver_all(self, origin: str, payloads: Iterable[Any], stream: Any) -> None:
        """
        Check and handle decoded payloads from ``origin`` in order (a
        batch): a post with the destination and sender of the hot-path
        post before it is queued for the same session with no lookups
        (nothing that could change them runs in between).

        :param stream: the inbox they came on: its ``delivered`` counts
            each payload before it is handled (so an answer a handler sends
            acknowledges exactly what was handled).
        """
        enqueue = self._local.enqueue
        hot: Optional[Tuple[Any, RemoteSender]] = None
        key: List[Any] = []
        head: List[Any] = []
        for payload in payloads:
            stream.delivered += 1
            # Fields equal to those parse_payload accepted are valid too, if
            # of the same type where == mixes types (1, 1.0 and True: the
            # kind and the line; a str or None equals only its own kind).
            if hot is not None and type(payload) is list and len(payload) >= 8 and type(payload[0]) is int \
                    and payload[0] == POST and type(payload[3]) is list and payload[4:8] == key \
                    and type(payload[7]) is type(key[3]) and payload[1:3] == head:
                enqueue(hot[0], head[1], tuple(payload[3]), hot[1], key[1], key[2], key[3])
                continue
            payload = parse_payload(payload)
            hot = self.deliver(origin, payload)
            if hot is not None:
                key, head = payload[4:8], payload[1:3]

    def same_posts(self, first: list, hot: Tuple[Any, Any], payloads: List[bytes], stream: Any) -> int:
        """
        The rule of :meth:`deliver_all`, read from bytes: queue the payloads
        after ``first`` (a post queued on the hot path for ``hot``,
        ``(session, sender)``) whose bytes are those
        :func:`~lightspeed.message.payload_body` writes for a post with
        ``first``'s fields, reading only their arguments (one string from
        its bytes, other arrays decoded strictly, runs of them together);
        each counts on ``stream`` first.  They stop at the first that
        differs.  :returns: how many were queued.
        """
        head, tail = post_template(first[1], first[2], first[4], first[5], first[6], first[7])
        at, cut = len(head), -len(tail)
        at2 = at + 2
        target = (hot[0], first[2], hot[1], first[5], first[6], first[7])
        session, state, sender, cstate, cfile, cline = target
        enqueue = self._local.enqueue
        before = stream.delivered
        arrays: List[bytes] = []  # argument arrays to decode, in order
        for payload in islice(payloads, 1, None):
            end = len(payload) + cut  # the argument array is payload[at:end]
            if end - at < 1 or payload[:at] != head or payload[end:] != tail:
                break
            start = 0  # where a single string argument starts, if it is one
            if payload[at] == 0x81 and end - at > 1:
                initial = payload[at + 1]
                kind = initial & 0xDF  # a text string's initial byte as a byte string's
                if kind < 0x58:  # the length in the initial byte (a byte below 0x40 never matches)
                    if kind - 0x40 == end - at2:
                        start = at2
                elif kind == 0x58 and payload[at2] == end - at2 - 1:
                    start = at2 + 1  # the length in the next byte
            if not start:
                arrays.append(payload[at:end])
                continue
            arg: Any = payload[start:end]
            if initial > 0x58:
                try:
                    arg = arg.decode("utf-8")
                except UnicodeDecodeError:
                    arrays.append(payload[at:end])  # refused when decoded: the run stops there
                    continue
            if arrays and not _queue_decoded(enqueue, arrays, target, stream):
                return stream.delivered - before
            stream.delivered += 1
            enqueue(session, state, (arg,), sender, cstate, cfile, cline)
        if arrays:
            _queue_decoded(enqueue, arrays, target, stream)
        return stream.delivered - before

    def _sender(self, origin: str, payload: list) -> RemoteSender:
        key = (origin, payload[4], payload[5], payload[6], payload[7])
        sender = self._senders.get(key)
        if sender is None:
            sender = self._senders.remember(key, RemoteSender(self._port, *key))
        return sender

    def _destination(self, sessions: Any, state: str) -> str:
        return f"poe://{self._name}/{sessions if sessions == '*' else ','.join(sessions)}/{state}"

    # -- one handler per kind ----------------------------------------------------

    def _post(self, origin: str, payload: list, sender: RemoteSender) -> None:
        targets = self._accepted(origin, payload, sender)
        if targets:
            args = tuple(payload[3])
            for session in targets:
                self._local.enqueue(session, payload[2], args, sender, payload[5], payload[6], payload[7])

    def _call(self, origin: str, payload: list, sender: RemoteSender) -> None:
        targets = self._accepted(origin, payload, sender)
        if targets is None:
            return
        state = payload[2]
        try:
            rsvp = parse(payload[8])
            if rsvp.state is None:
                raise BadSpecifier(f"RSVP {payload[8]!r} names no state")
        except BadSpecifier as e:
            self.undeliverable(origin, payload[1], state, f"bad RSVP: {e}", self._bounce(origin, payload))
            return
        args = tuple(payload[3])
        local = self._local
        for session in targets:
            try:
                result = local.call_now(session, state, args, sender, payload[5], payload[6], payload[7])
            except NoSuchSession as e:  # neither the state nor _default
                self.undeliverable(origin, [local.wire_name(session)], state, str(e), self._bounce(origin, payload))
                continue
            except Exception:
                local.log_failure(session, state)
                continue
            local.reply(session, state, rsvp, result)

    def _request(self, origin: str, payload: list, sender: RemoteSender) -> None:
        requests = self._network.requests
        sessions, state, request_id = payload[1], payload[2], payload[8]
        reason = self._bad_state(state)
        if reason is not None:
            requests.respond(origin, request_id, False, ["BadSpecifier", reason])
            self.undeliverable(origin, sessions, state, reason)
            return
        targets = self._targets(origin, sessions, state)
        if len(targets) != 1:
            requests.respond(origin, request_id, False,
                             ["NoSuchSession", f"no session {','.join(sessions)!r} in kernel {self._name!r}"])
            return
        if self._port.guarded:
            refused = self._port.authorize("call", targets[0], state, None, sender, tuple(payload[3]))
            if refused is not None:
                requests.respond(origin, request_id, False, ["Refused", refused])
                return
        self._answer(origin, payload, targets[0], sender)

    def _answer(self, origin: str, payload: list, session: Any, sender: RemoteSender) -> None:
        """
        Run a checked REQUEST's handler in ``session`` and answer it: at
        once with a plain value, or when its Deferred fires.
        """
        requests = self._network.requests
        try:
            result = self._local.call_now(session, payload[2], tuple(payload[3]), sender, payload[5], payload[6],
                                          payload[7])
        except Exception as e:
            requests.respond_error(origin, payload[8], e)
            return
        if type(result) in _PLAIN or not isinstance(result, Deferred):
            requests.respond(origin, payload[8], True, result)  # the common case: no Deferred at all
        else:
            requests.respond_when(origin, payload[8], result)

    def _notice(self, origin: str, payload: list, sender: RemoteSender) -> None:
        state = payload[2]
        reason = self._bad_state(state, notice=True)
        if reason is not None:
            self.undeliverable(origin, payload[1], state, reason)
            return
        args = tuple(payload[3])
        for session in self._targets(origin, payload[1], state):
            if self._local.handles(session, "_undeliverable"):
                self._local.enqueue(session, state, args, sender, payload[5], payload[6], payload[7])

    def _control(self, origin: str, payload: list, sender: RemoteSender) -> None:
        """
        Run a CONTROL operation another kernel asked for and answer it.
        """
        op = payload[2]
        d = maybeDeferred(self._port.control, op, payload[1], tuple(payload[3]), sender)

        def log_bug(f: Failure) -> Failure:
            if not f.check(LightspeedError, ValueError):
                self.log.failure("control operation {op!r} from {origin} failed", f, op=op, origin=origin)
            return f

        self._network.requests.respond_when(origin, payload[8], d.addErrback(log_bug))

    # -- shared steps ------------------------------------------------------------

    def _bounce(self, origin: str, payload: list) -> Bounce:
        return (origin, payload[4], payload[3])

    def _bad_state(self, state: Any, notice: bool = False) -> Optional[str]:
        """
        Why ``state`` cannot be run for another kernel, or ``None``.
        """
        if state in self._states:
            return None
        try:
            check_state(state)
        except BadSpecifier as e:
            return str(e)
        if state in RESERVED_STATES:
            if notice:
                return None
            return f"state {state!r} is reserved and cannot be sent from another kernel"
        self._states.remember(state, None)
        return None

    def _accepted(self, origin: str, payload: list, sender: RemoteSender) -> Optional[List[Any]]:
        """
        The targets of a POST, CALL or CALLREPLY that exist and that the
        authentication hooks accept; the others are reported undeliverable
        and bounced.  ``None`` if the state itself is bad.
        """
        sessions, state = payload[1], payload[2]
        bounce = self._bounce(origin, payload)
        reason = self._bad_state(state)
        if reason is not None:
            self.undeliverable(origin, sessions, state, reason, bounce)
            return None
        targets = self._targets(origin, sessions, state, bounce)
        if not self._port.guarded:
            return targets
        kind = _HOOK_KINDS[payload[0]]
        rsvp = payload[8] if payload[0] == CALL else None
        args = tuple(payload[3])
        accepted = []
        for session in targets:
            refused = self._port.authorize(kind, session, state, rsvp, sender, args)
            if refused is None:
                accepted.append(session)
            else:
                self.undeliverable(origin, [self._local.wire_name(session)], state, refused, bounce, "refused")
        return accepted

    def _targets(self, origin: str, sessions: Any, state: str, bounce: Bounce = None) -> List[Any]:
        local = self._local
        if sessions == "*":
            return local.aliased_sessions()
        if len(sessions) == 1:
            session = local.aliases.get(sessions[0]) or local.lookup(sessions[0])
            if session is not None:
                return [session]
        found: Dict[Any, None] = {}
        for name in sessions:
            session = local.lookup(name)
            if session is None:
                self.undeliverable(origin, [name], state, f"no session {name!r} in kernel {self._name!r}", bounce)
            else:
                found[session] = None
        return list(found)

    def lost(self, kernel: str, payload: bytes, reason: str) -> None:
        """
        A message of ours to ``kernel`` will not be delivered: report it to
        its sender, a local session's ``_undeliverable`` state or a
        request's Deferred, and to the event sink.
        """
        try:
            body = parse_payload(loads(payload))
        except ProtocolError:
            return
        kind = body[0]
        if kind == REQUEST or kind == CONTROL:
            self._network.events.tally(reason)
            error = RequestTimeout(reason) if reason == "deadline passed" else NoRoute(reason)
            self._network.requests.fail(body[8], error)
            return
        if kind == RESPONSE:
            self.log.info("answer to request {id} of kernel {kernel} lost: {why}", id=body[2], kernel=kernel,
                          why=reason)
            return
        if body[4] is None and body[5] == MONITOR_STATE:
            return  # a monitor event: its loss is not itself reported
        local = self._local
        sender = local.lookup(body[4]) if body[4] is not None else None
        destination = f"poe://{kernel}/{body[1] if body[1] == '*' else ','.join(body[1])}/{body[2]}"
        if kind == UNDELIVERABLE:
            sender = None  # a notice is never bounced
        local.undeliverable(destination, reason, (body[6], body[7]), sender, tuple(body[3]))

    def undeliverable(self, origin: str, sessions: Any, state: Any, reason: str, bounce: Bounce = None,
                      category: Optional[str] = None) -> None:
        """
        Log a message that cannot be delivered here and, when ``bounce`` is
        ``(origin, sender_session, args)``, send it back to its sender as an
        ``_undeliverable`` event.
        """
        destination = self._destination(sessions, state)
        self.log.warn("undeliverable message from kernel {origin} to {destination}: {reason}",
                      origin=origin, destination=destination, reason=reason)
        events = self._network.events
        events.tally(reason, category)
        if events.undeliverable:
            events.emit("undeliverable", destination=destination, reason=reason, origin=origin)
        if bounce is not None:
            self._network.relay.bounce(bounce[0], bounce[1], destination, reason, bounce[2])


def _queue_decoded(enqueue: Any, arrays: List[bytes], target: Tuple[Any, ...], stream: Any) -> bool:
    """
    Decode the argument arrays of posts for ``target`` (session, state,
    sender, caller state, file, line) in one strict decoding (one level
    less deep than the payload around them) and queue them in order with
    ``enqueue`` (the runtime's), until one is not an array; ``arrays`` is
    emptied.  Each counts on ``stream`` before it is queued.

    :returns: whether all were queued.
    """
    decoded = loads_joined(arrays, MAX_DEPTH - 1)
    arrays.clear()
    if decoded is None:
        return False
    session, state, sender, cstate, cfile, cline = target
    for args in decoded:
        if type(args) is not list:
            return False
        stream.delivered += 1
        enqueue(session, state, tuple(args), sender, cstate, cfile, cline)
    return True
