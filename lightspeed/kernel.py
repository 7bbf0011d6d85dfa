# -*- test-case-name: lightspeed.test.test_kernel -*-
"""
The kernel: a registry of sessions and a FIFO event queue on a reactor.

The queue is drained in batches: a burst of posts costs one reactor call,
not one per event, and at most L{Kernel.batch} events run per reactor turn
so that timers and I/O still get their turn.
"""

from __future__ import annotations

import itertools
import os
import types
import secrets
import socket
import sys
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Tuple

from twisted.internet.defer import Deferred, ensureDeferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from lightspeed.errors import (
    AliasInUse,
    BadSpecifier,
    LightspeedError,
    NoCurrentSession,
    NoRoute,
    NoSuchSession,
    RequestTimeout,
)
from lightspeed.auth import AuthHooks
from lightspeed.monitor import Monitor, target_of, topics_of
from lightspeed.session import Back, Event, Session
from lightspeed.specifier import SCHEME, Specifier, check_name, check_state, coerce, parse

__all__ = ["Kernel", "default_kernel_name", "DEFAULT_REQUEST_TIMEOUT"]

#: Seconds a request waits for its answer unless told otherwise.
DEFAULT_REQUEST_TIMEOUT = 60.0

_new = tuple.__new__

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

    return reactor  # type: ignore[return-value]




class Kernel:
    """
    A POE kernel on the Twisted reactor.

    :ivar name: this kernel's name, unique in the network.
    :ivar batch: the most events run in one reactor turn.
    """

    is_lightspeed = False
    batch = 1000
    log = Logger()

    def __init__(self, name: Optional[str] = None, reactor: Optional[IReactorTime] = None) -> None:
        self.name: str = check_name(name, "kernel name") if name is not None else default_kernel_name()
        self._reactor: IReactorTime = reactor if reactor is not None else _global_reactor()
        self._queue: Deque[Event] = deque()
        self._drain_call: Optional[IDelayedCall] = None
        self._sessions: Dict[int, Session] = {}
        self._aliases: Dict[str, Session] = {}
        self._session_ids = itertools.count(1)
        self._alarm_ids = itertools.count(1)
        self._alarms: Dict[int, Tuple[IDelayedCall, Tuple[Session, ...], str, Tuple[Any, ...]]] = {}
        self._current: Optional[Session] = None
        self._current_state: Optional[str] = None
        #: Where messages for other kernels go; L{None} while not networked.
        self.network: Any = None
        #: Authentication hooks for messages from other kernels.
        self.auth = AuthHooks()
        #: Watchers of network events (see L{monitor_register}).
        self.monitor = Monitor(self)
        # Full specifier strings -> (spec, kernels) when they name only other
        # kernels, (spec, None) when they name one local session.
        self._remote_plans: Dict[str, Tuple[Specifier, Optional[Tuple[str, ...]]]] = {}

    # -- identity ----------------------------------------------------------

    @property
    def id(self) -> str:
        """
        The kernel's id as a sender: its name.
        """
        return self.name

    @property
    def reactor(self) -> IReactorTime:
        return self._reactor

    def __repr__(self) -> str:
        return f"<Kernel {self.name!r}>"

    # -- authentication hooks ------------------------------------------------

    def auth_register(self, kind: str, session: Any, hook: Callable[[Any], Any]) -> None:
        """
        Decide which messages from other kernels reach C{session} (an
        alias, a session id or C{'*'} for every session; the specific hook
        wins).  C{kind} is one of C{post}, C{call} (requests too),
        C{callreply}, C{introspection}, C{monitor_register},
        C{monitor_unregister}.  The hook gets a L{lightspeed.auth.AuthRequest}
        and returns true to accept; false, a reason string or an exception
        refuses, and the message comes back to its sender as an
        C{_undeliverable} event (a request fails with L{RemoteError}
        C{Refused}).
        """
        self.auth.register(kind, session, hook)

    def auth_unregister(self, kind: str, session: Any) -> bool:
        """
        Remove a hook.

        :returns: whether there was one.
        """
        return self.auth.unregister(kind, session)

    # -- introspection -----------------------------------------------------

    def list_kernels(self) -> List[str]:
        """
        Every kernel of the network this kernel can reach, itself included,
        sorted by name.
        """
        names = {self.name}
        if self.network is not None:
            names.update(self.network.router.reachable())
        return sorted(names)

    def list_sessions(self, kernels: Any = None, rsvp: Any = None, *,
                      timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT) -> Optional[Deferred]:
        """
        The sessions of a kernel: a list with, per session, every alias it
        has (or its id if it has none).

        Without C{rsvp}, ask one kernel (default: this one) and get a
        Deferred.  With C{rsvp} (a full destination), ask C{kernels} (a
        name, a list, C{'*'} for every kernel, or a remote sender) and post
        C{(kernel_name, sessions)} there for each answer, as the seed did;
        a kernel that cannot answer is reported to the current session's
        C{_undeliverable} state.

        Another kernel's C{introspection} hooks may leave sessions out.
        """
        return self._introspect(kernels, "sessions", "*", rsvp, timeout, _caller(1))

    def list_states(self, dest: Any, rsvp: Any = None, *,
                    timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT) -> Optional[Deferred]:
        """
        The states of sessions: a dict C{{session_name: [state, ...]}}.

        C{dest} names kernels and sessions without a state:
        C{'poe://K/S'}, C{[K, S]}, C{{'KERNEL': K, 'SESSION': S}} or a
        remote sender; C{S} may be a list or C{'*'} (every session with an
        alias).  Without C{rsvp} it must name one kernel and the result is
        a Deferred; with C{rsvp}, C{(kernel_name, states)} is posted there
        for each kernel, as in L{list_sessions}.

        :raises BadSpecifier: if C{dest} is malformed.
        """
        from lightspeed.introspection import session_specifier

        spec = session_specifier(dest)
        kernels: Any = "*" if spec.all_kernels else list(spec.kernels)
        sessions: Any = "*" if spec.all_sessions else list(spec.sessions)
        return self._introspect(kernels, "states", sessions, rsvp, timeout, _caller(1))

    def _introspect(self, kernels: Any, op: str, sessions: Any, rsvp: Any, timeout: Optional[float],
                    caller: Tuple[Optional[str], Optional[int]]) -> Optional[Deferred]:
        from lightspeed.introspection import kernels_of

        names = kernels_of(self, kernels)
        if rsvp is None:
            if len(names) != 1:
                return fail(BadSpecifier(f"without an RSVP, ask one kernel, not {list(names)!r}"))
            return self._control(names[0], op, sessions, (), timeout, caller)
        target = coerce(rsvp)
        if target.state is None:
            raise BadSpecifier(f"RSVP {str(target)!r} names no state")
        sender = self._current or self
        for name in names:
            d = self._control(name, op, sessions, (), timeout, caller)
            d.addCallbacks(
                lambda value, name=name: self._post_as_kernel(target, name, value),
                lambda f, name=name: self._undeliverable(
                    Specifier((name,), ("*",) if sessions == "*" else tuple(sessions), op),
                    f"{op} of kernel {name!r} failed: {f.getErrorMessage()}", caller, sender),
            )
        return None

    def _post_as_kernel(self, dest: Any, *args: Any) -> None:
        """
        Post with the kernel as sender, whatever session is current.
        """
        previous = self._current, self._current_state
        self._current, self._current_state = None, None
        try:
            self.post(dest, *args)
        finally:
            self._current, self._current_state = previous

    def _control(self, kernel: str, op: str, sessions: Any, args: Tuple[Any, ...], timeout: Optional[float],
                 caller: Tuple[Optional[str], Optional[int]]) -> Deferred:
        """
        Run a control operation at C{kernel} (this one or another).
        """
        sender = self._current or self
        if kernel == self.name:
            from lightspeed.control import run

            return maybeDeferred(run, self, op, sessions, args, sender, False)
        if self.network is None:
            return fail(NoRoute(f"no route to kernel {kernel!r}"))
        return self.network.control(kernel, op, sessions, args, sender, self._current_state, caller, timeout)

    # -- the monitor ---------------------------------------------------------

    def monitor_register(self, topics: Any, target: Any, *, kernel: Optional[str] = None,
                         timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT) -> Deferred:
        """
        Watch network events: C{topics} is a topic, a list of topics or
        C{'*'} (see L{lightspeed.monitor}); C{target} a callable
        C{target(topic, info)}, a state name of the current session, or a
        full destination, where each event is posted with C{(topic,
        info)}.

        With C{kernel}, watch that kernel's events instead: the target must
        then be a destination in this kernel (a state name of the current
        session will do).  The registration is sent again whenever that
        kernel becomes reachable, so it survives lost links and restarts.

        :returns: a Deferred that fires when the registration holds (at
            once for this kernel), or fails (L{RemoteError} C{Refused} if
            the other kernel's C{monitor_register} hook refuses).
        :raises ValueError: for an unknown topic.
        :raises BadSpecifier: for a malformed target.
        """
        names = topics_of(topics)
        spec = target_of(self, target)
        if kernel is None or kernel == self.name:
            self.monitor.add(names, spec)
            return succeed(True)
        if not isinstance(spec, Specifier) or spec.kernels != (self.name,):
            raise BadSpecifier(f"a target for another kernel's events must be a state in kernel {self.name!r}")
        mine = self.monitor.remote.setdefault(kernel, {})
        before = mine.get(str(spec))
        names = mine[str(spec)] = tuple(dict.fromkeys((before or ()) + names))
        d = self._control(kernel, "monitor_register", [], (list(names), str(spec)), timeout, _caller(1))

        def failed(f: Failure) -> Failure:
            if not f.check(NoRoute, RequestTimeout):  # refused or malformed: do not send it again
                if before:
                    self.monitor.remote.setdefault(kernel, {})[str(spec)] = before
                else:
                    self.monitor.remote.get(kernel, {}).pop(str(spec), None)
            return f

        return d.addErrback(failed)

    def monitor_unregister(self, topics: Any, target: Any, *, kernel: Optional[str] = None,
                           timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT) -> Deferred:
        """
        Stop watching C{topics} with C{target} (as given to
        L{monitor_register}).

        :returns: a Deferred firing with whether it was watching.
        """
        names = topics_of(topics)
        spec = target_of(self, target)
        if kernel is None or kernel == self.name:
            return maybeDeferred(self.monitor.remove, names, spec)
        mine = self.monitor.remote.get(kernel, {})
        kept = tuple(topic for topic in mine.get(str(spec), ()) if topic not in names)
        if kept:
            mine[str(spec)] = kept
        else:
            mine.pop(str(spec), None)
        return self._control(kernel, "monitor_unregister", [], (list(names), str(spec)), timeout, _caller(1))

    # -- the network -------------------------------------------------------

    def network_start(self, incarnation: Optional[int] = None) -> Any:
        """
        Join the network layer (done for you by L{listen} and L{connect}).

        :returns: the kernel's L{lightspeed.network.Network}.
        """
        if self.network is None:
            from lightspeed.network import Network

            self.network = Network(self, incarnation)
            from twisted.application.service import MultiService

            self._services = MultiService()
            self._services.startService()
        return self.network

    def sign_adverts(self, tls: Any) -> None:
        """
        Sign this kernel's routing adverts (LSAs) with the key of its node
        certificate, and from now on believe another kernel's advert only
        if it is signed by a certificate that the CA issued and that names
        that kernel (unsigned adverts held so far are dropped); a forged
        advert closes the link it came on (BYE C{bad-advert}).  Every
        kernel of the mesh must do the same.

        :param tls: a L{lightspeed.tls.TLSConfig} with a CA, or a
            L{lightspeed.adverts.AdvertSigner}.
        :raises ValueError: if there is no CA or the certificate cannot sign.
        """
        from lightspeed.adverts import AdvertSigner

        signer = tls if isinstance(tls, AdvertSigner) else AdvertSigner.from_tls(tls)
        network = self.network_start()
        network.signer = signer
        if network.router.drop_unsigned():
            network._routes_changed()
        if network.links():
            # Neighbours hold our unsigned advert: outbid it with a signed one.
            network._flood(network.router.readvertise(), None)

    def listen(self, endpoint: Any = "tcp:9876:interface=127.0.0.1", *, tls: Any = None, **options: Any) -> Any:
        """
        Accept links from other kernels (the seed's Server).

        :param endpoint: a Twisted server endpoint string (C{'tcp:9876'},
            C{'tcp:0:interface=127.0.0.1'}, C{'unix:/path'}, C{'ssl:...'})
            or an endpoint object.
        :param tls: a L{lightspeed.tls.TLSConfig} to speak TLS (mutual
            when it names a CA).
        :param options: see L{lightspeed.wire.protocol.LinkOptions}:
            C{password}, C{compression}, C{keepalive},
            C{handshake_timeout}, C{max_frame}, C{accept}.
        :returns: a started L{lightspeed.service.ListenService}; wait on
            C{whenListening()}, stop with C{stopService()}.
        """
        from lightspeed.service import ListenService, server_endpoint, tls_server_factory
        from lightspeed.wire.protocol import LinkFactory, LinkOptions

        network = self.network_start()
        if tls is not None and tls.ca is not None and tls.bind_names:
            options.setdefault("tls_names", True)
        factory: Any = LinkFactory(network, LinkOptions(**options))
        if tls is not None:
            factory = tls_server_factory(tls, factory)
        service = ListenService(server_endpoint(self._reactor, endpoint), factory)
        self._join(service)
        return service

    def connect(self, endpoint: Any, *, reconnect: bool = True, tls: Any = None, **options: Any) -> Any:
        """
        Keep a link to another kernel (the seed's Client), reconnecting with
        back-off when it drops.

        :param endpoint: a Twisted client endpoint string
            (C{'tcp:host=127.0.0.1:port=9876:bindAddress=127.0.0.2'},
            C{'unix:path=/path'}, C{'tls:...'}) or an endpoint object.
        :param reconnect: whether to reconnect after the link drops.
        :param tls: a L{lightspeed.tls.TLSConfig}: the server's certificate
            must chain to its CA and name C{tls.name} (default: the host
            connected to); ours is shown to the server.
        :param options: as for L{listen}.
        :returns: a started L{lightspeed.service.ConnectService}; C{whenConnected()} fires with
            the link once its handshake is done; stop with C{stopService()}.
        """
        from lightspeed.service import client_endpoint, connect_service, tls_client_endpoint
        from lightspeed.wire.protocol import LinkOptions

        network = self.network_start()
        if tls is not None and tls.ca is not None and tls.bind_names:
            options.setdefault("tls_names", True)
        client = client_endpoint(self._reactor, endpoint)
        if tls is not None:
            client = tls_client_endpoint(tls, endpoint, client)
        service = connect_service(network, client, LinkOptions(**options), reconnect)
        self._join(service)
        return service

    def _join(self, service: Any) -> None:
        if not self._services.running:  # e.g. listening again after shutdown()
            self._services.startService()
        service.setServiceParent(self._services)

    def shutdown(self) -> Deferred:
        """
        Leave the network: stop listening and reconnecting, close every link
        with a BYE (the seed's C{shutdown} command).

        :returns: a Deferred that fires when all is stopped.
        """
        if self.network is None:
            from twisted.internet.defer import succeed

            return succeed(None)
        self.network.close_links()
        return maybeDeferred(self._services.stopService)

    # -- sessions ----------------------------------------------------------

    def spawn(
        self,
        session: Optional[Session] = None,
        *,
        inline_states: Optional[Dict[str, Callable[[Event], Any]]] = None,
        heap: Any = None,
        args: Iterable[Any] = (),
    ) -> Session:
        """
        Start a session in this kernel and run its C{_start} state at once
        (synchronously, as POE does), with C{args} as the event's args.

        :param session: a L{Session} (or subclass) instance; or leave it out
            and give C{inline_states}, C{heap} and C{args}.
        :returns: the running session.
        """
        if session is None:
            session = Session(inline_states=inline_states, heap=heap, args=tuple(args))
        elif inline_states is not None or heap is not None:
            raise TypeError("give either a session or inline_states/heap, not both")
        else:
            args = tuple(args)
            if args:
                session.args = args
        if session.kernel is not None:
            raise ValueError(f"{session!r} is already running")
        session.kernel = self
        session.id = next(self._session_ids)
        self._sessions[session.id] = session
        session._holds += 1  # no garbage collection in the middle of _start
        try:
            handler = session._states.get("_start")
            if handler is not None:
                self._run(session, handler, "_start", session.args, self._sender(), self._current_state, *_caller(1))
        finally:
            session._holds -= 1
        self._maybe_stop(session)
        return session

    def stop_session(self, session: Session) -> None:
        """
        Stop C{session} now: remove its aliases and timers, run C{_stop}.
        Events still queued for it are logged as undeliverable.
        """
        if session.stopped or session.kernel is not self:
            return
        session.stopped = True
        for alias in session._alias_names:
            del self._aliases[alias]
        session._alias_names = []
        for alarm_id in list(session._timers):
            self._cancel_alarm(alarm_id)
        handler = session._states.get("_stop")
        try:
            if handler is not None:
                self._run(session, handler, "_stop", (), self, None, None, None)
        finally:
            del self._sessions[session.id]
            session._states = {}  # queued events now take the slow, logging path

    def _maybe_stop(self, session: Session) -> None:
        if (
            session._pending == 0
            and session._holds == 0
            and not session._timers
            and not session.stopped
            and not session._alias_names
        ):
            self.stop_session(session)

    @property
    def sessions(self) -> List[Session]:
        """
        The running sessions, oldest first.
        """
        return list(self._sessions.values())

    def resolve(self, name: Any) -> Optional[Session]:
        """
        Find a local session by alias, by id (an int or its decimal string)
        or by the session object itself.  An alias wins over an id.

        :returns: the session, or L{None}.
        """
        if isinstance(name, Session):
            return name if name.kernel is self and not name.stopped else None
        if isinstance(name, str):
            session = self._aliases.get(name)
            if session is not None or not (name.isascii() and name.isdecimal()) or len(name) > 18:
                return session
            name = int(name)
        if isinstance(name, int):
            return self._sessions.get(name)
        return None

    # -- aliases -----------------------------------------------------------

    def alias_set(self, alias: str, session: Optional[Session] = None) -> None:
        """
        Give C{session} (default: the current one) an alias.

        :raises BadSpecifier: if the alias is malformed.
        :raises AliasInUse: if another session holds it.
        """
        check_name(alias, "alias")
        if alias.isdecimal():
            raise BadSpecifier(f"alias {alias!r} is all digits: it would shadow a session id")
        session = self._session_or_current(session)
        if session.kernel is not self or session.stopped:
            raise NoSuchSession(f"{session!r} is not a running session of kernel {self.name!r}")
        holder = self._aliases.get(alias)
        if holder is not None and holder is not session:
            raise AliasInUse(f"alias {alias!r} is held by session {holder.id} of kernel {self.name!r}")
        if holder is None:
            self._aliases[alias] = session
            session._alias_names.append(alias)

    def alias_remove(self, alias: str, session: Optional[Session] = None) -> None:
        """
        Remove an alias of C{session} (default: the current one).  A session
        left with no alias, event or timer stops.

        :raises NoSuchSession: if C{session} does not hold C{alias}.
        """
        session = self._session_or_current(session)
        if self._aliases.get(alias) is not session:
            raise NoSuchSession(f"session {session.id} has no alias {alias!r}")
        del self._aliases[alias]
        session._alias_names.remove(alias)
        if self._current is not session:
            self._maybe_stop(session)

    def alias_list(self, session: Optional[Session] = None) -> List[str]:
        """
        :returns: the aliases of C{session} (default: the current one), in
            the order they were set.
        """
        session = self._session_or_current(session)
        return list(session._alias_names)

    def _session_or_current(self, session: Optional[Session]) -> Session:
        if session is not None:
            return session
        if self._current is None:
            raise NoCurrentSession("no session is running; name one")
        return self._current

    # -- destinations ------------------------------------------------------

    def destination(self, dest: Any, args: Tuple[Any, ...]) -> Tuple[Specifier, Tuple[Any, ...]]:
        """
        Turn the first arguments of C{post}/C{call} into a full specifier and
        the remaining arguments.

        Full forms (C{'poe://K/S/STATE'}, C{[K, S, STATE]}, a dict, a
        L{Specifier} with a state) use no argument.  Session forms (an alias,
        a session id, a L{Session} or sender, C{'poe://K/S/'}, a L{Specifier}
        without a state) take the state from the first argument.

        :raises BadSpecifier: if the destination or state is malformed or
            missing.
        """
        if isinstance(dest, str) and dest.startswith(SCHEME):
            spec = parse(dest)
        elif isinstance(dest, (str, int)) and not isinstance(dest, bool):
            spec = Specifier((self.name,), (check_name(str(dest), "session"),), None)
        elif isinstance(dest, Session):
            if dest.kernel is None:
                raise BadSpecifier(f"{dest!r} is not running in a kernel")
            spec = Specifier((dest.kernel.name,), (str(dest.id),), None)
        elif isinstance(dest, Kernel):
            raise BadSpecifier(
                f"{dest!r} is a kernel, not a session: an event posted from outside any "
                "session has the kernel as its sender and cannot be answered"
            )
        elif hasattr(dest, "specifier") and not isinstance(dest, (list, tuple, dict)):
            spec = dest.specifier  # a remote sender
        else:
            spec = coerce(dest)
        if spec.state is None:
            if not args:
                raise BadSpecifier(f"destination {str(spec)!r} names no state and no state follows it")
            spec = spec.with_state(args[0])
            args = args[1:]
        return spec, args

    def _targets(self, spec: Specifier, caller: Tuple[Any, ...] = (None, None), sender: Any = None,
                 args: Tuple[Any, ...] = ()) -> List[Session]:
        """
        The local sessions that C{spec} names, each once, in order.
        """
        if spec.all_kernels or self.name not in spec.kernels:
            return []
        if spec.all_sessions:
            return list(dict.fromkeys(self._aliases.values()))
        found: Dict[Session, None] = {}
        for name in spec.sessions:
            session = self.resolve(name)
            if session is None:
                self._undeliverable(spec, f"no session {name!r} in kernel {self.name!r}", caller, sender, args)
            else:
                found[session] = None
        return list(found)

    def _remote_kernels(self, spec: Specifier) -> Tuple[str, ...]:
        if spec.all_kernels:
            return spec.kernels
        return tuple(k for k in spec.kernels if k != self.name)

    def _undeliverable(self, spec: Any, reason: str, caller: Tuple[Any, ...] = (None, None),
                       sender: Any = None, args: Tuple[Any, ...] = ()) -> None:
        """
        Log a message that cannot be delivered and, if its sender is a local
        session with an C{_undeliverable} state, post it there with
        C{args == (destination, reason, original_args)}.
        """
        self.log.warn(
            "undeliverable to {destination} from kernel {kernel} ({file}:{line}): {reason}",
            destination=str(spec),
            kernel=self.name,
            file=caller[0],
            line=caller[1],
            reason=reason,
        )
        if self.monitor.undeliverable:
            self.monitor.emit("undeliverable", destination=str(spec), reason=reason, origin=self.name)
        if isinstance(sender, Session) and sender.kernel is self and "_undeliverable" in sender._states:
            self._enqueue(sender, "_undeliverable", (str(spec), reason, tuple(args)), self, None, *caller)

    # -- post / call / yield -----------------------------------------------

    def post(self, _dest: Any, *args: Any) -> None:
        """
        Post an event: asynchronous, FIFO across the kernel.

        C{post('poe://K/S/state', *args)}, C{post(['K','S','state'], *args)},
        C{post({'KERNEL':…}, *args)}, C{post(sender, 'state', *args)},
        C{post(sender.id, 'state', *args)} and the local
        C{post(alias_or_id, 'state', *args)} all work.

        :raises BadSpecifier: if the destination is malformed.
        """
        frame = sys._getframe(1)
        if type(_dest) is str and args:
            # Hot path: the POE-style local post(alias, state, *args).  An
            # alias never holds '/', so a 'poe://' string never matches, and
            # a state the session has was validated when it was defined.
            session = self._aliases.get(_dest)
            if session is not None and args[0] in session._states:
                session._pending += 1
                self._queue.append(_new(Event, (session, args[0], args[1:], self._current or self,
                                                self._current_state, frame.f_code.co_filename,
                                                frame.f_lineno)))
                if self._drain_call is None:
                    self._drain_call = self._reactor.callLater(0, self._drain)
                return
        sender = self._current or self
        cstate = self._current_state
        cfile = frame.f_code.co_filename
        cline = frame.f_lineno
        if type(_dest) is str:
            # A string naming remote kernels only: its route plan is cached.
            plan = self._remote_plans.get(_dest)
            if plan is not None:
                if plan[1] is None:  # one local session, named by alias
                    session = self._aliases.get(plan[0].sessions[0])
                    if session is not None:
                        self._enqueue(session, plan[0].state, args, sender, cstate, cfile, cline)  # type: ignore
                        return
                elif self.network is not None:
                    self.network.send(plan[0], plan[1], args, sender, cstate, cfile, cline)
                    return
        if (isinstance(_dest, Session) or type(_dest) is int) and args:
            # A session object or id names exactly that session, even if
            # another one holds an alias that looks like its id.
            session = _dest if isinstance(_dest, Session) else self._sessions.get(_dest)
            if session is not None and session.kernel is self and not session.stopped:
                self._enqueue(session, check_state(args[0]), args[1:], sender, cstate, cfile, cline)
                return
        spec, args = self.destination(_dest, args)
        if type(_dest) is str and not _dest.endswith("/") and _dest.startswith(SCHEME) and not spec.all_kernels:
            if len(self._remote_plans) > 4096:
                self._remote_plans.clear()
            if self.name not in spec.kernels:
                self._remote_plans[_dest] = (spec, spec.kernels)
            elif spec.kernels == (self.name,) and len(spec.sessions) == 1 and not spec.all_sessions:
                self._remote_plans[_dest] = (spec, None)
        self._post(spec, args, sender, cstate, cfile, cline)

    def _post(self, spec: Specifier, args: Tuple[Any, ...], sender: Any,
              cstate: Optional[str], cfile: Optional[str], cline: Optional[int], kind: Optional[int] = None) -> None:
        """
        Deliver to local targets and send to remote ones; C{kind} marks a
        call's reply (CALLREPLY) for the remote kernels' hooks.
        """
        for session in self._targets(spec, (cfile, cline), sender, args):
            self._enqueue(session, spec.state, args, sender, cstate, cfile, cline)  # type: ignore[arg-type]
        remote = self._remote_kernels(spec)
        if remote:
            self._send_remote(spec, remote, args, sender, cstate, cfile, cline, kind=kind)

    def _send_remote(self, spec: Specifier, kernels: Tuple[str, ...], args: Tuple[Any, ...],
                     sender: Any, cstate: Optional[str], cfile: Optional[str], cline: Optional[int],
                     rsvp: Optional[Specifier] = None, kind: Optional[int] = None) -> None:
        if self.network is None:
            if not spec.all_kernels:
                self._undeliverable(spec, f"no route to kernel(s) {', '.join(kernels)}", (cfile, cline),
                                    sender, args)
            return
        self.network.send(spec, kernels, args, sender, cstate, cfile, cline, rsvp, kind)

    def _enqueue(self, session: Session, state: str, args: Tuple[Any, ...], sender: Any,
                 cstate: Optional[str], cfile: Optional[str], cline: Optional[int]) -> None:
        session._pending += 1
        self._queue.append(_new(Event, (session, state, args, sender, cstate, cfile, cline)))
        if self._drain_call is None:
            self._drain_call = self._reactor.callLater(0, self._drain)

    def yield_(self, _state: str, *args: Any) -> None:
        """
        Post C{_state} to the current session (POE's C{yield}).

        :raises NoCurrentSession: outside of a handler.
        """
        session = self._session_or_current(None)
        frame = sys._getframe(1)
        self._enqueue(session, check_state(_state), args, session, self._current_state,
                      frame.f_code.co_filename, frame.f_lineno)

    def call(self, _dest: Any, *args: Any) -> Any:
        """
        Call a state synchronously and return the handler's value.

        Local form, as POE: C{call(alias_or_id_or_session, 'state', *args)}.

        Lightspeed form: C{call(full_destination, rsvp, *args)} or
        C{call(sender, 'state', rsvp, *args)}: the handler's value (once a
        returned Deferred or coroutine has finished) is posted to the RSVP
        destination C{rsvp}.  A local target still runs at once and its value
        is also returned when the destination names exactly one local
        session; otherwise L{None} is returned.

        An exception raised by the handler propagates to the caller of a
        local-form call; in the Lightspeed form it is logged.

        :raises BadSpecifier: if a destination or the RSVP is malformed or
            missing.
        :raises NoSuchSession: if a local-form call names no session.
        """
        caller = _caller(1)
        if isinstance(_dest, Session) or (
            isinstance(_dest, (str, int)) and not isinstance(_dest, bool)
            and not (isinstance(_dest, str) and _dest.startswith(SCHEME))
        ):
            if not args:
                raise BadSpecifier(f"call to {_dest!r} names no state")
            state = check_state(args[0])
            session = self.resolve(_dest)
            if session is None:
                if isinstance(_dest, str):
                    check_name(_dest, "session")  # a malformed name is a BadSpecifier
                raise NoSuchSession(f"no session {_dest!r} in kernel {self.name!r}")
            return self._call(session, state, args[1:], self._current or self, self._current_state, *caller)
        spec, args = self.destination(_dest, args)
        if not args:
            raise BadSpecifier(f"call to {str(spec)!r} has no RSVP destination")
        rsvp, args = self.destination(args[0], args[1:])
        return self._call_spec(spec, rsvp, args, caller)

    def _call_spec(self, spec: Specifier, rsvp: Specifier, args: Tuple[Any, ...], caller: Tuple[Any, ...]) -> Any:
        sender = self._current or self
        cstate = self._current_state
        results = []
        for session in self._targets(spec):
            try:
                result = self._call(session, spec.state, args, sender, cstate, *caller)  # type: ignore[arg-type]
            except Exception:
                self.log.failure(
                    "call to state {state!r} of session {session} in kernel {kernel} raised",
                    state=spec.state, session=session.id, kernel=self.name,
                )
                continue
            results.append(result)
            self._reply(session, spec.state, rsvp, result)  # type: ignore[arg-type]
        remote = self._remote_kernels(spec)
        if remote:
            self._send_remote(spec, remote, args, sender, cstate, caller[0], caller[1], rsvp)
        return results[0] if len(results) == 1 and not remote else None

    def _reply(self, session: Session, state: str, rsvp: Specifier, result: Any) -> None:
        """
        Post C{result} to C{rsvp} once it is ready, as C{session} in C{state}.
        """
        if isinstance(result, Deferred):
            def done(value: Any) -> Any:
                self._post_reply(rsvp, value, session, state)
                return value  # the caller of call() gets the value too

            def failed(failure: Any) -> Any:
                self.log.failure("call to state {state!r} of session {session} failed; no reply to {rsvp}",
                                 failure, state=state, session=session.id, rsvp=str(rsvp))
                return None

            result.addCallbacks(done, failed)
            return
        self._post_reply(rsvp, result, session, state)

    def _post_reply(self, rsvp: Specifier, value: Any, session: Session, state: str) -> None:
        try:
            from lightspeed.message import CALLREPLY

            self._post(rsvp, (value,), session, state, None, None, CALLREPLY)
        except LightspeedError as e:  # e.g. a value that cannot travel
            self._undeliverable(rsvp, f"reply of state {state!r} cannot be sent: {e}", (None, None), session,
                                ())

    def _call(self, session: Session, state: str, args: Tuple[Any, ...], sender: Any,
              cstate: Optional[str], cfile: Optional[str], cline: Optional[int]) -> Any:
        """
        Run a state now and return its value (a coroutine becomes a
        Deferred).  Exceptions propagate.
        """
        handler = session.handler(state)
        if handler is None:
            raise NoSuchSession(f"session {session.id} of kernel {self.name!r} has no state {state!r} and no _default")
        previous = self._current, self._current_state
        self._current, self._current_state = session, state
        try:
            result = handler(_new(Event, (session, state, args, sender, cstate, cfile, cline)))
        finally:
            self._current, self._current_state = previous
            if previous[0] is not session:
                self._maybe_stop(session)  # it may have dropped its last alias
        if hasattr(result, "__await__") and not isinstance(result, Deferred):
            result = self._as_deferred(session, state, result)
        return result

    def _as_deferred(self, session: Session, state: str, awaitable: Any) -> Deferred:
        """
        Run a handler's coroutine as a Deferred, with C{session} and
        C{state} current at every step (not just until its first C{await}),
        so that posts, C{yield_} and C{alias_set} inside it behave as in a
        plain handler.
        """
        return ensureDeferred(_with_current(self, session, state, awaitable))

    def request(self, _dest: Any, *args: Any, timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT) -> Deferred:
        """
        Call one state of one session, local or remote, and get its value as
        a Deferred: it fires with the handler's value (waiting on a returned
        Deferred or coroutine) or fails with a clear error: L{NoRoute} (no
        such kernel, or it became unreachable), L{NoSuchSession},
        L{RemoteError} (the remote handler raised; a local handler's own
        exception is passed through), L{RequestTimeout}.

        :param timeout: seconds after which the Deferred fails with
            L{RequestTimeout} (default 60); L{None} waits for ever.
        """
        caller = _caller(1)
        if (isinstance(_dest, Session) or type(_dest) is int) and args:
            session = _dest if isinstance(_dest, Session) else self._sessions.get(_dest)
            if session is not None and session.kernel is self and not session.stopped:
                spec = Specifier((self.name,), (str(session.id),), check_state(args[0]))
                return self._request_local(session, spec, args[1:], caller, timeout)
        spec, args = self.destination(_dest, args)
        if len(spec.kernels) != 1 or spec.all_kernels or len(spec.sessions) != 1 or spec.all_sessions:
            return fail(BadSpecifier(f"a request names exactly one kernel and one session, not {str(spec)!r}"))
        remote = self._remote_kernels(spec)
        if remote:
            if self.network is None:
                return fail(NoRoute(f"no route to kernel(s) {', '.join(remote)} for {str(spec)!r}"))
            return self.network.request(spec, remote, args, self._current or self,
                                        self._current_state, caller, timeout)
        targets = self._targets(spec)
        if len(targets) != 1:
            return fail(NoSuchSession(f"{str(spec)!r} does not name exactly one session of kernel {self.name!r}"))
        return self._request_local(targets[0], spec, args, caller, timeout)

    def _request_local(self, session: Session, spec: Specifier, args: Tuple[Any, ...],
                       caller: Tuple[Any, ...], timeout: Optional[float]) -> Deferred:
        sender, cstate = self._current or self, self._current_state
        d = maybeDeferred(self._call, session, spec.state, args, sender, cstate, *caller)
        if timeout is not None:
            def timed_out(result: Any, seconds: float) -> Failure:
                return Failure(RequestTimeout(f"no answer from {str(spec)!r} within {seconds} s"))

            d.addTimeout(timeout, self._reactor, onTimeoutCancel=timed_out)
        return d

    # -- timers --------------------------------------------------------------

    def delay_set(self, _dest: Any, _seconds: float, *args: Any) -> int:
        """
        After C{_seconds}, post to C{_dest}: a state name of the current
        session (as POE) or any destination form naming local sessions.
        The timer keeps those sessions alive until it fires or is removed.

        :returns: an alarm id for L{alarm_remove} and L{delay_adjust}.
        """
        if isinstance(_dest, str) and not _dest.startswith(SCHEME):
            sessions: Tuple[Session, ...] = (self._session_or_current(None),)
            state = check_state(_dest)
        else:
            spec, args = self.destination(_dest, args)
            if self._remote_kernels(spec):
                raise BadSpecifier(f"timers can only name local sessions, not {str(spec)!r}")
            sessions = tuple(self._targets(spec))
            state = spec.state  # type: ignore[assignment]
        alarm_id = next(self._alarm_ids)
        call = self._reactor.callLater(max(0.0, _seconds), self._fire, alarm_id)
        self._alarms[alarm_id] = (call, sessions, state, args)
        for session in sessions:
            session._timers[alarm_id] = call
        return alarm_id

    def alarm_set(self, _dest: Any, _when: float, *args: Any) -> int:
        """
        As L{delay_set}, at the reactor time C{_when} (C{reactor.seconds()}
        scale).
        """
        return self.delay_set(_dest, _when - self._reactor.seconds(), *args)

    def delay_adjust(self, alarm_id: int, seconds: float) -> bool:
        """
        Make a pending alarm fire C{seconds} from now.

        :returns: whether the alarm was pending.
        """
        entry = self._alarms.get(alarm_id)
        if entry is None:
            return False
        entry[0].reset(max(0.0, seconds))
        return True

    def alarm_remove(self, alarm_id: int) -> Optional[Tuple[str, float, Tuple[Any, ...]]]:
        """
        Remove a pending alarm.

        :returns: C{(state, when, args)} of the removed alarm, or L{None}.
        """
        entry = self._alarms.get(alarm_id)
        if entry is None:
            return None
        call, sessions, state, args = entry
        when = call.getTime()
        self._cancel_alarm(alarm_id)
        for session in sessions:
            if session is not self._current:
                self._maybe_stop(session)
        return state, when, args

    def alarm_remove_all(self, session: Optional[Session] = None) -> int:
        """
        Remove every alarm of C{session} (default: the current one).

        :returns: how many were removed.
        """
        session = self._session_or_current(session)
        ids = list(session._timers)
        for alarm_id in ids:
            self.alarm_remove(alarm_id)
        return len(ids)

    def _cancel_alarm(self, alarm_id: int) -> None:
        call, sessions, _, _ = self._alarms.pop(alarm_id)
        if call.active():
            call.cancel()
        for session in sessions:
            session._timers.pop(alarm_id, None)

    def _fire(self, alarm_id: int) -> None:
        _, sessions, state, args = self._alarms.pop(alarm_id)
        for session in sessions:
            session._timers.pop(alarm_id, None)
            if not session.stopped:
                self._enqueue(session, state, args, session, None, None, None)

    # -- postbacks -----------------------------------------------------------

    def _make_back(self, session: Session, state: str, args: Tuple[Any, ...], synchronous: bool) -> Back:
        check_state(state)
        session._holds += 1

        def deliver(given: Tuple[Any, ...]) -> Any:
            if session.stopped:
                self._undeliverable(f"session {session.id}", f"postback to stopped session, state {state!r}")
                return None
            frame = sys._getframe(2)
            where = (frame.f_code.co_filename, frame.f_lineno)
            sender = self._current or self
            if synchronous:
                return self._call(session, state, (args, given), sender, self._current_state, *where)
            self._enqueue(session, state, (args, given), sender, self._current_state, *where)
            return None

        def release() -> None:
            session._holds -= 1
            if not session.stopped and session._holds == 0:
                self._reactor.callLater(0, self._maybe_stop, session)

        return Back(deliver, release)

    # -- the queue -----------------------------------------------------------

    def _drain(self) -> None:
        """
        Run at most L{batch} queued events; come back next turn for more.
        """
        self._drain_call = None
        queue = self._queue
        popleft = queue.popleft
        previous = self._current, self._current_state
        try:
            for _ in range(min(len(queue), self.batch)):
                event = popleft()
                session = event[0]
                session._pending -= 1
                handler = session._states.get(event[1])
                if handler is None:
                    self._dispatch_missing(event)
                else:
                    # Inlined _run: this loop is the kernel's hot path.
                    self._current = session
                    self._current_state = event[1]
                    try:
                        result = handler(event)
                    except Exception:
                        self._log_failure(session, event[1])
                    else:
                        if result is not None and hasattr(result, "__await__"):
                            self._watch(session, event[1], result)
                if not session._pending:
                    self._maybe_stop(session)
        finally:
            self._current, self._current_state = previous
        if queue and self._drain_call is None:
            self._drain_call = self._reactor.callLater(0, self._drain)
        if self.network is not None:
            self.network.flush()

    def run_soon(self) -> None:
        """
        Run one batch of queued events now, if any wait and no handler is
        running: links call this after a read, so that arriving messages
        are handled (and answers written) in the same reactor turn.
        """
        if self._queue and self._current is None:
            if self._drain_call is not None and self._drain_call.active():
                self._drain_call.cancel()
            self._drain()

    def flush(self) -> None:
        """
        Run queued events until the queue is empty (tests use this with a
        L{task.Clock} instead of turning a reactor).
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
        An event for a state the session lacks: run C{_default}, or log.
        """
        session, state, args, sender, cstate, cfile, cline = event
        if session.stopped:
            self._undeliverable(f"session {session.id}", f"session stopped before state {state!r} ran")
            return
        handler = session._states.get("_default")
        if handler is None:
            self.log.warn(
                "session {session} of kernel {kernel} has no state {state!r} and no _default; "
                "event from {sender} ({file}:{line}) dropped",
                session=session.id, kernel=self.name, state=state,
                sender=getattr(sender, "id", sender), file=cfile, line=cline,
            )
        else:
            self._run(session, handler, state, args, sender, cstate, cfile, cline)

    def _log_failure(self, session: Session, state: str, failure: Any = None) -> None:
        self.log.failure(
            "handler for state {state!r} of session {session} in kernel {kernel} raised",
            failure, state=state, session=session.id, kernel=self.name,
        )

    def _watch(self, session: Session, state: str, result: Any) -> None:
        """
        Log the failure of a handler's Deferred or coroutine.
        """
        d = result if isinstance(result, Deferred) else self._as_deferred(session, state, result)
        d.addErrback(lambda f: self._log_failure(session, state, f))

    def _run(self, session: Session, handler: Callable[[Event], Any], state: str, args: Tuple[Any, ...],
             sender: Any, cstate: Optional[str], cfile: Optional[str], cline: Optional[int]) -> Any:
        previous = self._current, self._current_state
        self._current, self._current_state = session, state
        try:
            result = handler(_new(Event, (session, state, args, sender, cstate, cfile, cline)))
        except Exception:
            self._log_failure(session, state)
            return None
        finally:
            self._current, self._current_state = previous
        if result is not None and hasattr(result, "__await__"):
            self._watch(session, state, result)
        return result

    def _sender(self) -> Any:
        return self._current or self


@types.coroutine
def _with_current(kernel: Kernel, session: Session, state: str, awaitable: Any) -> Any:
    """
    Drive C{awaitable} step by step, making C{session} in C{state} the
    kernel's current session while each step runs.
    """
    steps = awaitable.__await__()
    value: Any = None
    error: Optional[BaseException] = None
    while True:
        previous = kernel._current, kernel._current_state
        kernel._current, kernel._current_state = session, state
        try:
            yielded = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        finally:
            kernel._current, kernel._current_state = previous
        try:
            value, error = (yield yielded), None
        except BaseException as e:  # thrown in by the driver: pass it on
            value, error = None, e


def _caller(depth: int) -> Tuple[Optional[str], Optional[int]]:
    frame = sys._getframe(depth + 1)
    return frame.f_code.co_filename, frame.f_lineno
