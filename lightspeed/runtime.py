# -*- test-case-name: lightspeed.test.test_kernel -*-
"""
The local runtime: POE's semantics in one kernel — a FIFO event queue on a
reactor, post, call, yield, requests to local sessions and postbacks.

It knows nothing of the network.  Destinations that name other kernels go
to :attr:`Runtime.remote`, an :class:`~lightspeed.interfaces.INetworkPort`
(``None`` until the kernel joins a network).

The queue is drained in batches: a burst of posts costs one reactor call,
not one per event, and at most :attr:`Runtime.batch` events run per reactor
turn so that timers and I/O still get their turn.
"""

from __future__ import annotations

import sys
import types
from collections import deque
from typing import Any, Callable, Deque, Optional, Tuple

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from lightspeed.errors import NoCurrentSession, NoSuchSession
from lightspeed.bounded import BoundedCache
from lightspeed.calls import Calls, caller
from lightspeed.interfaces import IDelivery
from lightspeed.registry import Registry
from lightspeed.session import Back, Event, Session, Where, caller_of
from lightspeed.specifier import SCHEME, Specifier, check_state
from lightspeed.timers import Timers

__all__ = ["Runtime", "caller"]

_getframe = sys._getframe

#: What post's state parameter holds when no argument follows the destination.
_NO_STATE: Any = object()


@implementer(IDelivery)
class Runtime:
    """
    The local half of a kernel.

    :ivar owner: the public kernel: what events and senders name.
    :ivar remote: where messages for other kernels go, or ``None``.
    :ivar events: an :class:`~lightspeed.interfaces.IEventSink` for
        undeliverable messages, or ``None``.
    :ivar current: the session whose handler runs now, or ``None``.
    :ivar current_state: the state it runs.
    :ivar batch: the most events run in one reactor turn.
    """

    log = Logger()
    batch = 1000

    def __init__(self, name: str, reactor: IReactorTime, owner: Any) -> None:
        self.name = name
        self.reactor = reactor
        self.owner = owner
        self.remote: Any = None
        self.events: Any = None
        self.registry = Registry(self)
        self.timers = Timers(self)
        self.calls = Calls(self)
        self.call = self.calls.call
        self.reply = self.calls.reply
        self.request = self.calls.request
        self.aliases = self.registry.aliases
        self._sessions = self.registry.sessions
        # The queue, in three deques that move together: the sessions, the
        # senders, and the rest of each event (state, args, caller state,
        # where).  The rest holds no object the cyclic collector tracks
        # (when the args hold none), so the collector drops it from its
        # lists at its first look and a long queue costs it nothing.
        self._queue: Deque[Tuple[Any, ...]] = deque()
        self._targets: Deque[Session] = deque()
        self._senders: Deque[Any] = deque()
        self._drain_call: Optional[IDelayedCall] = None
        self.current: Optional[Session] = None
        self.current_state: Optional[str] = None
        #: When the kernel started (reactor seconds), for its uptime.
        self.started = reactor.seconds()
        # Specifier strings -> (spec, kernels) when they name only other
        # kernels, (spec, None) when they name one local session by alias.
        self._plans = BoundedCache(4096)

    # -- IDelivery -------------------------------------------------------------

    def lookup(self, name: Any) -> Optional[Session]:
        return self.registry.resolve(name)

    def aliased_sessions(self) -> list:
        return self.registry.aliased_sessions()

    def wire_name(self, sender: Any) -> Optional[str]:
        names = getattr(sender, "_alias_names", None)
        if names is None:
            return None
        return names[0] if names else str(sender.id)

    def session_names(self, session: Session) -> list:
        return session._alias_names + [str(session.id)]

    def handles(self, session: Session, state: str) -> bool:
        return state in session._states

    def enqueue(self, session: Session, state: str, args: Tuple[Any, ...], sender: Any,
                cstate: Optional[str], cfile: Where, cline: Optional[int]) -> None:
        session._pending += 1
        self._targets.append(session)
        self._senders.append(sender)
        self._queue.append((state, args, cstate, cfile, cline))
        if self._drain_call is None:
            self._drain_call = self.reactor.callLater(0, self._drain)

    def call_now(self, session: Session, state: str, args: Tuple[Any, ...], sender: Any,
                 cstate: Optional[str], cfile: Where, cline: Optional[int]) -> Any:
        handler = session.handler(state)
        if handler is None:
            raise NoSuchSession(f"session {session.id} of kernel {self.name!r} has no state {state!r} and no _default")
        previous = self.current, self.current_state
        self.current, self.current_state = session, state
        try:
            result = handler(Event((session, state, args, sender, cstate, cfile, cline)))
        finally:
            self.current, self.current_state = previous
            if previous[0] is not session and not session._alias_names:
                self.registry.maybe_stop(session)  # it may have dropped its last alias
        if hasattr(result, "__await__") and not isinstance(result, Deferred):
            result = self.as_deferred(session, state, result)
        return result

    def log_failure(self, session: Session, state: str, failure: Any = None) -> None:
        self.log.failure(
            "handler for state {state!r} of session {session} in kernel {kernel} raised",
            failure, state=state, session=session.id, kernel=self.name,
        )

    def undeliverable(self, spec: Any, reason: str, caller: Tuple[Any, ...] = (None, None),
                      sender: Any = None, args: Tuple[Any, ...] = (), logged: bool = False) -> None:
        caller = caller_of(*caller)
        if not logged:
            self.log.warn(
                "undeliverable to {destination} from kernel {kernel} ({file}:{line}): {reason}",
                destination=str(spec), kernel=self.name, file=caller[0], line=caller[1], reason=reason,
            )
        events = self.events
        if events is not None:
            events.tally(reason)
            if events.undeliverable:
                events.emit("undeliverable", destination=str(spec), reason=reason, origin=self.name)
        if isinstance(sender, Session) and self.registry.owns(sender) and "_undeliverable" in sender._states:
            self.enqueue(sender, "_undeliverable", (str(spec), reason, tuple(args)), self.owner, None, *caller)

    def run_soon(self) -> None:
        if self._queue and self.current is None:
            if self._drain_call is not None and self._drain_call.active():
                self._drain_call.cancel()
            self._drain()

    # -- sessions ------------------------------------------------------------

    def spawn(self, session: Session, where: Tuple[Optional[str], Optional[int]]) -> Session:
        """
        Adopt ``session`` and run its ``_start`` state now, as POE does.
        """
        self.registry.add(session, self.owner)
        session._holds += 1  # no garbage collection in the middle of _start
        try:
            handler = session._states.get("_start")
            if handler is not None:
                self.run(session, handler, "_start", session.args, self.current or self.owner,
                         self.current_state, *where)
        finally:
            session._holds -= 1
        self.registry.maybe_stop(session)
        return session

    def current_session(self, session: Optional[Session] = None) -> Session:
        """
        ``session`` if given, else the session whose handler runs now.

        :raises NoCurrentSession: if there is none.
        """
        if session is not None:
            return session
        if self.current is None:
            raise NoCurrentSession("no session is running; name one")
        return self.current

    def targets(self, spec: Specifier, caller: Tuple[Any, ...] = (None, None), sender: Any = None,
                args: Tuple[Any, ...] = ()) -> list:
        """
        The local sessions ``spec`` names; names that match no session are
        reported undeliverable.
        """
        found, missing = self.registry.targets(spec)
        for name in missing:
            self.undeliverable(spec, f"no session {name!r} in kernel {self.name!r}", caller, sender, args)
        return found

    # -- post / call / yield -------------------------------------------------

    def post(self, _dest: Any, _state: Any = _NO_STATE, *args: Any, ttl: Optional[float] = None) -> None:
        """
        Post an event: see :meth:`lightspeed.kernel.Kernel.post`.
        """
        frame = _getframe(1)
        # Hot path: post(alias, state, *args); a 'poe://' text is never an alias.
        try:
            session = self.aliases.get(_dest)
            if session is not None and _state not in session._states:
                session = None
        except TypeError:  # unhashable destination or state: refused below, saying why
            session = None
        if session is not None:
            session._pending += 1
            self._targets.append(session)
            self._senders.append(self.current or self.owner)
            self._queue.append((_state, args, self.current_state, frame.f_code, frame.f_lasti))
            if self._drain_call is None:
                self._drain_call = self.reactor.callLater(0, self._drain)
            return
        if _state is not _NO_STATE:
            args = (_state, *args)
        self._post_slow(_dest, args, frame.f_code, frame.f_lasti, ttl)

    def _post_slow(self, dest: Any, args: Tuple[Any, ...], cfile: Where, cline: int, ttl: Optional[float]) -> None:
        sender = self.current or self.owner
        cstate = self.current_state
        if type(dest) is str:
            plan = self._plans.get(dest)
            if plan is not None:
                if plan[1] is None:  # one local session, named by alias
                    session = self.aliases.get(plan[0].sessions[0])
                    if session is not None:
                        self.enqueue(session, plan[0].state, args, sender, cstate, cfile, cline)
                        return
                elif self.remote is not None:
                    self.remote.post_planned(dest, plan, args, sender, cstate, cfile, cline, ttl)
                    return
        if (isinstance(dest, Session) or type(dest) is int) and args:
            # A session object or id names exactly that session, even if
            # another one holds an alias that looks like its id.
            session = dest if isinstance(dest, Session) else self._sessions.get(dest)
            if session is not None and self.registry.owns(session):
                self.enqueue(session, check_state(args[0]), args[1:], sender, cstate, cfile, cline)
                return
        spec, args = self.registry.destination(dest, args)
        if type(dest) is str and not dest.endswith("/") and dest.startswith(SCHEME) and not spec.all_kernels:
            self._remember_plan(dest, spec)
        self.post_spec(spec, args, sender, cstate, cfile, cline, ttl=ttl)

    def _remember_plan(self, text: str, spec: Specifier) -> None:
        if self.name not in spec.kernels:
            self._plans.remember(text, (spec, spec.kernels))
        elif spec.kernels == (self.name,) and len(spec.sessions) == 1 and not spec.all_sessions:
            self._plans.remember(text, (spec, None))

    def post_spec(self, spec: Specifier, args: Tuple[Any, ...], sender: Any, cstate: Optional[str],
                  cfile: Where, cline: Optional[int], reply: bool = False,
                  rsvp: Optional[Specifier] = None, ttl: Optional[float] = None) -> None:
        """
        Deliver to the local targets of ``spec`` and send to remote ones;
        ``reply`` marks a call's reply for the remote kernels' hooks.
        """
        if rsvp is None:
            for session in self.targets(spec, (cfile, cline), sender, args):
                self.enqueue(session, spec.state, args, sender, cstate, cfile, cline)  # type: ignore[arg-type]
        remote = self.registry.remote_kernels(spec)
        if not remote:
            return
        if self.remote is None:
            if not spec.all_kernels:
                self.undeliverable(spec, f"no route to kernel(s) {', '.join(remote)}", (cfile, cline), sender, args)
            return
        self.remote.send(spec, remote, args, sender, cstate, *caller_of(cfile, cline), rsvp, reply, ttl)

    def yield_(self, _state: str, *args: Any) -> None:
        """
        Post ``_state`` to the current session (POE's ``yield``).
        """
        session = self.current_session()
        frame = _getframe(1)
        self.enqueue(session, check_state(_state), args, session, self.current_state, frame.f_code, frame.f_lasti)

    def as_deferred(self, session: Session, state: str, awaitable: Any) -> Deferred:
        """
        Run a handler's coroutine as a Deferred, with ``session`` and
        ``state`` current at every step (not just until its first
        ``await``), so that posts, ``yield_`` and ``alias_set`` inside it
        behave as in a plain handler.
        """
        return ensureDeferred(_with_current(self, session, state, awaitable))

    # -- postbacks -----------------------------------------------------------

    def make_back(self, session: Session, state: str, args: Tuple[Any, ...], synchronous: bool) -> Back:
        """
        A postback (or, ``synchronous``, a callback) to ``state`` of
        ``session``; it keeps the session alive while it exists.
        """
        check_state(state)
        session._holds += 1

        def deliver(given: Tuple[Any, ...]) -> Any:
            if session.stopped:
                self.undeliverable(f"session {session.id}", f"postback to stopped session, state {state!r}")
                return None
            frame = _getframe(2)
            where = frame.f_code, frame.f_lasti
            sender = self.current or self.owner
            if synchronous:
                return self.call_now(session, state, (args, given), sender, self.current_state, *where)
            self.enqueue(session, state, (args, given), sender, self.current_state, *where)
            return None

        def release() -> None:
            session._holds -= 1
            if not session.stopped and session._holds == 0:
                self.reactor.callLater(0, self.registry.maybe_stop, session)

        return Back(deliver, release)

    # -- the queue -----------------------------------------------------------

    def _drain(self) -> None:
        """
        Run at most :attr:`batch` queued events; come back next turn for more.
        """
        self._drain_call = None
        queue = self._queue
        targets = self._targets
        senders = self._senders
        maybe_stop = self.registry.maybe_stop
        previous = self.current, self.current_state
        try:
            for _ in range(min(len(queue), self.batch)):
                # deque.popleft() is specialised; a bound method in a variable is not
                session = targets.popleft()
                state, args, cstate, cfile, cline = queue.popleft()
                event = Event((session, state, args, senders.popleft(), cstate, cfile, cline))
                session._pending -= 1
                try:
                    handler = session._states[state]  # a subscript: cheaper than .get() on a hit
                except KeyError:
                    self._dispatch_missing(event)
                else:
                    # Inlined run(): this loop is the kernel's hot path.
                    self.current = session
                    self.current_state = state
                    try:
                        result = handler(event)
                    except Exception:
                        self.log_failure(session, state)
                    else:
                        if result is not None and hasattr(result, "__await__"):
                            self._watch(session, state, result)
                if not session._pending:
                    maybe_stop(session)
        finally:
            self.current, self.current_state = previous
        if queue and self._drain_call is None:
            self._drain_call = self.reactor.callLater(0, self._drain)
        if self.remote is not None:
            self.remote.flush()

    def flush(self) -> None:
        """
        Run queued events until the queue is empty.
        """
        if self._drain_call is not None and self._drain_call.active():
            self._drain_call.cancel()
        while self._queue:
            self._drain()
        if self._drain_call is not None and self._drain_call.active():
            self._drain_call.cancel()
        self._drain_call = None

    def _dispatch_missing(self, event: Event) -> None:
        """
        An event for a state the session lacks: run ``_default``, or tell
        the sender it was not delivered.
        """
        session, state, args, sender, cstate, cfile, cline = event  # cfile, cline: see caller_of
        if session.stopped:
            self._lost(event, f"session {session.id} stopped before state {state!r} ran")
            return
        handler = session._states.get("_default")
        if handler is None:
            self._lost(event, f"session {session.id} of kernel {self.name!r} has no state {state!r} and no _default")
        else:
            self.run(session, handler, state, args, sender, cstate, cfile, cline)

    def _lost(self, event: Event, reason: str) -> None:
        """
        Report an event that cannot run to its sender: a local session's
        ``_undeliverable`` state, or a remote sender's through the network.
        """
        session, state, args, sender = event[:4]
        cfile, cline = event.caller
        if state == "_undeliverable":
            self.log.warn("undeliverable notice for session {session} dropped: {reason}", session=session.id,
                          reason=reason)
            return
        names = session._alias_names
        destination = f"poe://{self.name}/{names[0] if names else session.id}/{state}"
        self.log.warn("{reason}; event from {sender} ({file}:{line}) not delivered", reason=reason,
                      session=session.id, kernel=self.name, state=state, sender=getattr(sender, "id", sender),
                      file=cfile, line=cline)
        remote = getattr(sender, "is_lightspeed", False) and self.remote is not None
        self.undeliverable(destination, reason, (cfile, cline), None if remote else sender, args, logged=True)
        if remote and sender.remote_session is not None:
            self.remote.bounce(sender.remote_kernel, sender.remote_session, destination, reason, args)

    def _watch(self, session: Session, state: str, result: Any) -> None:
        """
        Log the failure of a handler's Deferred or coroutine.
        """
        d = result if isinstance(result, Deferred) else self.as_deferred(session, state, result)
        d.addErrback(lambda f: self.log_failure(session, state, f))

    def run(self, session: Session, handler: Callable[[Event], Any], state: str, args: Tuple[Any, ...],
            sender: Any, cstate: Optional[str], cfile: Where, cline: Optional[int]) -> Any:
        """
        Run ``handler`` for ``session`` now; log (do not raise) its failure.
        """
        previous = self.current, self.current_state
        self.current, self.current_state = session, state
        try:
            result = handler(Event((session, state, args, sender, cstate, cfile, cline)))
        except Exception:
            self.log_failure(session, state)
            return None
        finally:
            self.current, self.current_state = previous
        if result is not None and hasattr(result, "__await__"):
            self._watch(session, state, result)
        return result


@types.coroutine
def _with_current(runtime: Runtime, session: Session, state: str, awaitable: Any) -> Any:
    """
    Drive ``awaitable`` step by step, making ``session`` in ``state`` the
    runtime's current session while each step runs.
    """
    steps = awaitable.__await__()
    value: Any = None
    error: Optional[BaseException] = None
    while True:
        previous = runtime.current, runtime.current_state
        runtime.current, runtime.current_state = session, state
        try:
            yielded = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        finally:
            runtime.current, runtime.current_state = previous
        try:
            value, error = (yield yielded), None
        except BaseException as e:  # thrown in by the driver: pass it on
            value, error = None, e
