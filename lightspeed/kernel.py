# -*- test-case-name: lightspeed.test.test_kernel -*-
"""
The public, networked kernel: a Twisted service that composes the local
runtime (:mod:`lightspeed.runtime`) and, once it joins a network, the
network (:mod:`lightspeed.network`).  Its methods are short and delegate.

A kernel is a :class:`~twisted.application.service.MultiService` (see
:class:`~lightspeed.node.Node`): the services :meth:`Kernel.listen` and
:meth:`Kernel.connect` return are its children, so an application that does
``kernel.setServiceParent(application)`` sees every listener and connector
in its tree.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from lightspeed import control, introspection, monitor as monitoring
from lightspeed.auth import AuthHooks, AuthRequest
from lightspeed.errors import NoRoute
from lightspeed.interfaces import IKernel, IKernelPort
from lightspeed.monitor import Monitor
from lightspeed.node import Node
from lightspeed.calls import caller
from lightspeed.runtime import Runtime
from lightspeed.session import Session
from lightspeed.specifier import Specifier, check_name

__all__ = ["Kernel", "default_kernel_name", "DEFAULT_REQUEST_TIMEOUT"]

#: Seconds a request waits for its answer unless told otherwise.
DEFAULT_REQUEST_TIMEOUT = 60.0

_process_counter = itertools.count(1)


def default_kernel_name() -> str:
    """
    A kernel name unique in the network, as POE's kernel ID: the host name,
    the process id, a per-process counter and a random suffix.
    """
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-._") or "host"
    return f"{host}-{os.getpid()}-{next(_process_counter)}-{secrets.token_hex(3)}"


def _global_reactor() -> IReactorTime:
    from twisted.internet import reactor

    return reactor


@implementer(IKernel, IKernelPort)
class Kernel(Node):
    """
    A POE kernel on the Twisted reactor, and a node of the network (the
    service half, listening and connecting, is :class:`~lightspeed.node.Node`).

    :ivar name: this kernel's name, unique in the network (also its
        service name).
    :ivar local: the local runtime (:class:`~lightspeed.runtime.Runtime`).
    :ivar network: the :class:`~lightspeed.network.Network`, once joined;
        ``None`` before.
    :ivar auth: the authentication hooks for messages from other kernels.
    :ivar monitor: the watchers of network events (see :meth:`monitor_register`).
    """

    is_lightspeed = False

    def __init__(self, name: Optional[str] = None, reactor: Optional[IReactorTime] = None,
                 hidden: bool = False) -> None:
        super().__init__()
        self.hidden = hidden  # see docs/protocol.rst, "Hidden kernels"
        self.name: str = check_name(name, "kernel name") if name is not None else default_kernel_name()
        self.reactor: IReactorTime = reactor if reactor is not None else _global_reactor()
        self.local = Runtime(self.name, self.reactor, self)
        self.network: Any = None
        self.auth = AuthHooks()
        self.monitor = Monitor(self)
        self.events = self.local.events = self.monitor
        # The hot paths are the runtime's own bound methods: no extra frame.
        self.post = self.local.post  # type: ignore[method-assign]
        self.yield_ = self.local.yield_  # type: ignore[method-assign]

    @property
    def id(self) -> str:
        """
        The kernel's id as a sender: its name.
        """
        return self.name

    @property
    def batch(self) -> int:
        """
        The most events run in one reactor turn.
        """
        return self.local.batch

    @batch.setter
    def batch(self, value: int) -> None:
        self.local.batch = value

    def __repr__(self) -> str:
        return f"<Kernel {self.name!r}>"

    # -- sessions --------------------------------------------------------------

    def spawn(self, session: Optional[Session] = None, *, inline_states: Optional[Dict[str, Callable]] = None,
              heap: Any = None, args: Iterable[Any] = ()) -> Session:
        """
        Start a session and run its ``_start`` state at once (as POE does),
        with ``args`` as the event's args.

        :param session: a :class:`Session` (or subclass) instance; or leave
            it out and give ``inline_states``, ``heap`` and ``args``.
        :returns: the running session.
        :raises ValueError: if the session already runs.
        """
        if session is None:
            session = Session(inline_states=inline_states, heap=heap, args=tuple(args))
        elif inline_states is not None or heap is not None:
            raise TypeError("give either a session or inline_states/heap, not both")
        elif tuple(args):
            session.args = tuple(args)
        return self.local.spawn(session, caller(1))

    def stop_session(self, session: Session) -> None:
        """
        Stop ``session`` now: remove its aliases and timers, run ``_stop``.
        Events still queued for it are logged as undeliverable.
        """
        self.local.registry.stop(session)

    @property
    def sessions(self) -> List[Session]:
        """
        The running sessions, oldest first.
        """
        return list(self.local.registry.sessions.values())

    def resolve(self, name: Any) -> Optional[Session]:
        """
        Find a local session by alias, by id (an int or its decimal string)
        or by the session object itself.  An alias wins over an id.

        :returns: the session, or ``None``.
        """
        return self.local.registry.resolve(name)

    def alias_set(self, alias: str, session: Optional[Session] = None) -> None:
        """
        Give ``session`` (default: the current one) an alias.

        :raises BadSpecifier: if the alias is malformed or all digits.
        :raises AliasInUse: if another session holds it.
        """
        check_name(alias, "alias")
        self.local.registry.alias_set(alias, self.local.current_session(session))

    def alias_remove(self, alias: str, session: Optional[Session] = None) -> None:
        """
        Remove an alias of ``session`` (default: the current one).  A session
        left with no alias, event or timer stops.

        :raises NoSuchSession: if ``session`` does not hold ``alias``.
        """
        session = self.local.current_session(session)
        self.local.registry.alias_remove(alias, session)
        if self.local.current is not session:
            self.local.registry.maybe_stop(session)

    def alias_list(self, session: Optional[Session] = None) -> List[str]:
        """
        :returns: the aliases of ``session`` (default: the current one), in
            the order they were set.
        """
        return list(self.local.current_session(session)._alias_names)

    def destination(self, dest: Any, args: Tuple[Any, ...]) -> Tuple[Specifier, Tuple[Any, ...]]:
        """
        Turn the first arguments of ``post``/``call`` into a full specifier
        and the remaining arguments.

        :raises BadSpecifier: if the destination or state is malformed or missing.
        """
        return self.local.registry.destination(dest, args)

    # -- post / call / request -------------------------------------------------

    def post(self, _dest: Any, *args: Any, ttl: Optional[float] = None) -> None:
        """
        Post an event: asynchronous, FIFO across the kernel.

        ``post('poe://K/S/state', *args)``, ``post(['K','S','state'], *args)``,
        ``post({'KERNEL': …}, *args)``, ``post(sender, 'state', *args)``,
        ``post(sender.id, 'state', *args)`` and the local
        ``post(alias_or_id, 'state', *args)`` all work.

        :param ttl: seconds the message may take to reach another kernel;
            past them it is dropped where it waits and reported to the
            sender as undeliverable, "deadline passed".  (A local post is
            queued at once and has no deadline.)
        :raises BadSpecifier: if the destination is malformed.
        :raises EncodeError: if an argument cannot travel to another kernel.
        """
        self.local.post(_dest, *args, ttl=ttl)  # replaced per instance by the runtime's own method

    def yield_(self, _state: str, *args: Any) -> None:
        """
        Post ``_state`` to the current session (POE's ``yield``).

        :raises NoCurrentSession: outside of a handler.
        """
        self.local.yield_(_state, *args)  # replaced per instance by the runtime's own method

    def call(self, _dest: Any, *args: Any, ttl: Optional[float] = None) -> Any:
        """
        Call a state synchronously and return the handler's value.

        Local form, as POE: ``call(alias_or_id_or_session, 'state', *args)``;
        the handler's exception propagates.  Lightspeed form:
        ``call(full_destination, rsvp, *args)`` or ``call(sender, 'state',
        rsvp, *args)``: the handler's value (once a returned Deferred or
        coroutine has finished) is posted to ``rsvp``; a local target runs
        at once and its value is also returned when the destination names
        exactly one local session, otherwise ``None`` is.  ``ttl`` bounds
        the time the call may take to reach another kernel, as for
        :meth:`post`.

        :raises BadSpecifier: if a destination or the RSVP is malformed or missing.
        :raises NoSuchSession: if a local-form call names no session.
        """
        return self.local.call(_dest, *args, ttl=ttl)

    def request(self, _dest: Any, *args: Any, timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT) -> Deferred:
        """
        Call one state of one session, local or remote, and get its value.

        :param timeout: seconds after which the Deferred fails with
            :class:`~lightspeed.errors.RequestTimeout`; ``None`` waits for ever.
        :returns: a Deferred that fires with the handler's value (waiting on
            a returned Deferred or coroutine) or fails, and through which
            every failure comes: :class:`BadSpecifier`, :class:`NoRoute`,
            :class:`NoSuchSession`, :class:`~lightspeed.errors.RemoteError`
            (the remote handler raised; a local handler's own exception is
            passed through), :class:`~lightspeed.errors.RequestTimeout`,
            :class:`~lightspeed.errors.EncodeError`.
        """
        frame = sys._getframe(1)  # the call site, as a post keeps it (see caller_of)
        return self.local.request(_dest, args, (frame.f_code, frame.f_lasti), timeout)

    def flush(self) -> None:
        """
        Run queued events until the queue is empty (tests use this with a
        :class:`~twisted.internet.task.Clock` instead of turning a reactor).
        """
        self.local.flush()

    def run_soon(self) -> None:
        """
        Run one batch of queued events now, if any wait and no handler runs.
        """
        self.local.run_soon()

    # -- timers ------------------------------------------------------------------

    def delay_set(self, _dest: Any, _seconds: float, *args: Any) -> int:
        """
        After ``_seconds``, post to ``_dest``: a state name of the current
        session (as POE) or any destination form naming local sessions.
        The timer keeps those sessions alive until it fires or is removed.

        :returns: an alarm id for :meth:`alarm_remove` and :meth:`delay_adjust`.
        :raises BadSpecifier: if ``_dest`` is malformed or names another kernel.
        """
        return self.local.timers.delay_set(_dest, _seconds, args)

    def alarm_set(self, _dest: Any, _when: float, *args: Any) -> int:
        """
        As :meth:`delay_set`, at the reactor time ``_when``.
        """
        return self.local.timers.delay_set(_dest, _when - self.reactor.seconds(), args)

    def delay_adjust(self, alarm_id: int, seconds: float) -> bool:
        """
        Make a pending alarm fire ``seconds`` from now.

        :returns: whether the alarm was pending.
        """
        return self.local.timers.delay_adjust(alarm_id, seconds)

    def alarm_remove(self, alarm_id: int) -> Optional[Tuple[str, float, Tuple[Any, ...]]]:
        """
        Remove a pending alarm.

        :returns: ``(state, when, args)`` of the removed alarm, or ``None``.
        """
        return self.local.timers.remove(alarm_id)

    def alarm_remove_all(self, session: Optional[Session] = None) -> int:
        """
        Remove every alarm of ``session`` (default: the current one).

        :returns: how many were removed.
        """
        return self.local.timers.remove_all(self.local.current_session(session))

    # -- authentication, introspection, the monitor ------------------------------

    def auth_register(self, kind: str, session: Any, hook: Callable[[Any], Any]) -> None:
        """
        Decide which messages from other kernels reach ``session`` (an alias,
        a session id or ``'*'``; the specific hook wins).  See
        :mod:`lightspeed.auth` for the kinds and what a hook returns.

        :raises ValueError: for an unknown kind.
        """
        self.auth.register(kind, session, hook)

    def auth_unregister(self, kind: str, session: Any) -> bool:
        """
        Remove a hook.

        :returns: whether there was one.
        """
        return self.auth.unregister(kind, session)

    def list_kernels(self, *, incarnations: bool = False, hidden: bool = False) -> Any:
        """
        Every kernel of the network this kernel can reach, itself included,
        sorted by name.

        :param incarnations: if true, return a dict instead: each of those
            names (in the same order) to the incarnation of that kernel, as
            the monitor's ``kernel_up`` reports it; ``None`` for a kernel
            whose start this kernel cannot vouch for yet (for a moment after
            it restarts), and for this kernel if it is not networked.
        :param hidden: if true, list hidden kernels too.
        """
        network = self.network
        names = sorted({self.name} | (network.reachable(hidden) if network is not None else frozenset()))
        if not incarnations:
            return names
        known = network.incarnations() if network is not None else {}
        return {name: known.get(name) for name in names}

    def list_sessions(self, kernels: Any = None, rsvp: Any = None, *,
                      timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT) -> Optional[Deferred]:
        """
        The sessions of kernels: see :func:`lightspeed.introspection.list_sessions`.
        """
        return introspection.list_sessions(self, kernels, rsvp, timeout, caller(1))

    def list_states(self, dest: Any, rsvp: Any = None, *,
                    timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT) -> Optional[Deferred]:
        """
        The states of sessions: see :func:`lightspeed.introspection.list_states`.
        """
        return introspection.list_states(self, dest, rsvp, timeout, caller(1))

    def monitor_register(self, topics: Any, target: Any, *, kernel: Optional[str] = None,
                         timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT) -> Deferred:
        """
        Watch network events here or, with ``kernel``, at another kernel:
        see :func:`lightspeed.monitor.register`.
        """
        return monitoring.register(self, topics, target, kernel, timeout, caller(1))

    def monitor_unregister(self, topics: Any, target: Any, *, kernel: Optional[str] = None,
                           timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT) -> Deferred:
        """
        Stop watching: see :func:`lightspeed.monitor.unregister`.
        """
        return monitoring.unregister(self, topics, target, kernel, timeout, caller(1))

    def control_at(self, kernel: str, op: str, sessions: Any, args: Tuple[Any, ...], timeout: Optional[float],
                   where: Tuple[Optional[str], Optional[int]] = (None, None)) -> Deferred:
        """
        Run a control operation (:mod:`lightspeed.control`) at ``kernel``,
        this one or another, as the current session.

        :returns: a Deferred of the answer.
        """
        sender = self.local.current or self
        if kernel == self.name:
            return maybeDeferred(control.run, self, op, sessions, args, sender, False)
        if self.network is None:
            return fail(NoRoute(f"no route to kernel {kernel!r}"))
        return self.network.control(kernel, op, sessions, args, sender, self.local.current_state, where, timeout)

    # -- what the features and the network may ask (IKernel, IKernelPort) ---------

    def current_session(self) -> Session:
        return self.local.current_session()

    def sessions_list(self) -> List[Session]:
        return self.sessions

    def post_as_kernel(self, cstate: Optional[str], dest: Any, *args: Any) -> None:
        self.call_as_kernel(self.local.post, dest, *args, cstate=cstate)

    def call_as_kernel(self, function: Callable[..., Any], *args: Any, cstate: Optional[str] = None) -> Any:
        local = self.local
        previous = local.current, local.current_state
        local.current, local.current_state = None, cstate
        try:
            return function(*args)
        finally:
            local.current, local.current_state = previous

    @property
    def guarded(self) -> bool:
        return bool(self.auth.hooks)  # (not bool(self.auth): one Python call fewer per message)

    def authorize(self, kind: str, session: Session, state: str, rsvp: Optional[str], sender: Any,
                  args: Tuple[Any, ...]) -> Optional[str]:
        return self.auth.check(AuthRequest(kind, session, state, rsvp, sender, args),
                               self.local.session_names(session))

    def control(self, op: str, sessions: Any, args: Tuple[Any, ...], sender: Any) -> Any:
        return control.run(self, op, sessions, args, sender, True)

    def monitor_event(self, origin: str, sessions: List[str], state: str, args: list, sender: Any) -> bool:
        return self.monitor.remote_event(origin, sessions, state, args, sender)

    def membership_changed(self, gone: List[Tuple[str, Optional[int]]],
                           joined: List[Tuple[str, Optional[int]]]) -> None:
        self.monitor.membership_changed(gone, joined)
