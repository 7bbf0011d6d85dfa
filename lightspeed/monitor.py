# -*- test-case-name: lightspeed.test.test_monitor -*-
"""
The monitor (the seed's promised "monitor" system): register for callbacks
or events whenever something happens in a kernel's part of the network.

Topics and what each event's ``info`` dict holds (every value is plain, so
events can travel to other kernels), besides ``topic`` and ``kernel`` (the
kernel that reports):

  - ``link_up``: ``peer``, ``address`` — a link finished its handshake.
  - ``link_down``: ``peer``, ``code``, ``reason`` — a link closed (``code`` is
    the BYE code, or ``lost``).
  - ``kernel_up``, ``kernel_down``: ``peer``, ``incarnation`` — a kernel
    became reachable or unreachable (a restart is a ``kernel_down`` of the
    old incarnation, then a ``kernel_up`` of the new).
  - ``sent``: ``destination``, ``kind`` — a message left this kernel for
    other kernels (``kind``: post, call, request, control).
  - ``arrived``: ``origin``, ``destination``, ``sender``, ``kind`` — a message
    from another kernel arrived here.
  - ``undeliverable``: ``destination``, ``reason``, ``origin`` — a message could
    not be delivered (here or, as a relay, onwards).

A target is a callable ``target(topic, info)``, or a destination: events
are posted there with ``args == (topic, info)``, the kernel as sender and
``caller_state == "_monitor"``.  Another kernel may register its own
sessions as targets (``monitor_register`` with ``kernel=``); that passes
through the ``monitor_register`` / ``monitor_unregister`` authentication
hooks registered for ``'*'``.  Monitor events are not themselves reported
(no event about sending an event), so watchers cannot loop.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, Union

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from lightspeed.auth import AuthRequest
from lightspeed.errors import BadSpecifier, NoRoute, Refused, RequestTimeout
from lightspeed.interfaces import IEventSink, IKernel
from lightspeed.message import MONITOR_STATE
from lightspeed.session import RESERVED_STATES
from lightspeed.specifier import Specifier, check_state, coerce
from lightspeed.stats import reason_category

__all__ = ["Monitor", "TOPICS", "MONITOR_STATE", "register", "unregister"]

TOPICS = frozenset({"link_up", "link_down", "kernel_up", "kernel_down", "sent", "arrived", "undeliverable"})

#: How many targets one other kernel may register here.
MAX_TARGETS_PER_KERNEL = 256

Target = Union[Callable[[str, Dict[str, Any]], Any], Specifier]


def topics_of(topics: Any) -> Tuple[str, ...]:
    """
    :param topics: a topic, an iterable of topics, or ``'*'`` for all.
    :raises ValueError: for an unknown topic.
    """
    if topics == "*":
        return tuple(sorted(TOPICS))
    if isinstance(topics, str):
        topics = [topics]
    if not isinstance(topics, (list, tuple, set, frozenset)) or not all(isinstance(t, str) for t in topics):
        raise ValueError(f"monitor topics must be a topic name, a list of names or '*', not {topics!r}")
    out = tuple(dict.fromkeys(topics))
    for topic in out:
        if topic not in TOPICS:
            raise ValueError(f"unknown monitor topic {topic!r}; one of {sorted(TOPICS)} or '*'")
    if not out:
        raise ValueError("no monitor topic given")
    return out


@implementer(IEventSink)
class Monitor:
    """
    The watchers of one kernel.

    For speed the network layer reads ``sent``, ``arrived`` and
    ``undeliverable`` (true while someone watches that topic) before it
    builds an event.
    """

    log = Logger()

    def __init__(self, kernel: IKernel) -> None:
        self.kernel = kernel
        self._watchers: Dict[str, Dict[Any, Target]] = {topic: {} for topic in TOPICS}
        #: For each other kernel, the targets it registered here.
        self._by_origin: Dict[str, Set[Any]] = {}
        #: Our registrations at other kernels: {kernel: {target text: topics}},
        #: sent again whenever that kernel becomes reachable.
        self.remote: Dict[str, Dict[str, Tuple[str, ...]]] = {}
        self._emitting = False
        self.sent = self.arrived = self.undeliverable = False
        #: Undeliverable messages seen here, by category (see :mod:`lightspeed.stats`).
        self.undelivered: Dict[str, int] = {}

    def _refresh(self) -> None:
        self.sent = bool(self._watchers["sent"])
        self.arrived = bool(self._watchers["arrived"])
        self.undeliverable = bool(self._watchers["undeliverable"])

    def watching(self, topic: str) -> bool:
        """
        Whether anyone watches ``topic``.
        """
        return bool(self._watchers[topic])

    def add(self, topics: Iterable[str], target: Target, origin: Optional[str] = None) -> None:
        """
        Watch ``topics`` with ``target`` (registered by kernel ``origin``, or
        locally).
        """
        key = _key(target, origin)
        for topic in topics:
            self._watchers[topic][key] = target
        if origin is not None:
            self._by_origin.setdefault(origin, set()).add(key)
        self._refresh()

    def remove(self, topics: Iterable[str], target: Target, origin: Optional[str] = None) -> bool:
        """
        Stop watching ``topics`` with ``target``.

        :returns: whether it watched any of them.
        """
        key = _key(target, origin)
        removed = False
        for topic in topics:
            removed = self._watchers[topic].pop(key, None) is not None or removed
        if origin is not None and not any(key in watchers for watchers in self._watchers.values()):
            self._by_origin.get(origin, set()).discard(key)
        self._refresh()
        return removed

    def forget_origin(self, origin: str) -> None:
        """
        Drop every target kernel ``origin`` registered (it left the network;
        it registers again when it comes back).
        """
        for key in self._by_origin.pop(origin, ()):
            for watchers in self._watchers.values():
                watchers.pop(key, None)
        self._refresh()

    def tally(self, reason: str, category: Optional[str] = None) -> None:
        """
        Count one undeliverable message under ``category``, or under the
        category of ``reason``.
        """
        category = category or reason_category(reason)
        self.undelivered[category] = self.undelivered.get(category, 0) + 1

    def emit(self, topic: str, **info: Any) -> None:
        """
        Report an event to everyone watching ``topic``.
        """
        watchers = self._watchers[topic]
        if not watchers or self._emitting:
            return
        info["topic"] = topic
        info["kernel"] = self.kernel.name
        kernel = self.kernel
        self._emitting = True
        try:
            for target in list(watchers.values()):
                try:
                    if isinstance(target, Specifier):
                        kernel.post_as_kernel(MONITOR_STATE, target, topic, dict(info))
                    else:
                        kernel.call_as_kernel(target, topic, dict(info))
                except Exception:
                    self.log.failure("monitor target {target!r} failed on {topic}", target=target, topic=topic)
        finally:
            self._emitting = False

    # -- our registrations at other kernels ------------------------------------------

    def remote_event(self, origin: str, sessions: List[str], state: str, args: list, sender: Any) -> bool:
        """
        A message from kernel ``origin`` posted by its monitor: if it is for
        a target we registered there, deliver it (it is not reported to our
        own monitor; a post hook that refuses it drops it quietly; if the
        target's sessions are gone, ask ``origin`` once to stop sending).

        :returns: whether it was such an event.
        """
        target = f"poe://{self.kernel.name}/{','.join(sessions)}/{state}"
        if target not in self.remote.get(origin, ()):
            return False
        kernel = self.kernel
        local = kernel.local
        try:
            check_state(state)
        except BadSpecifier:
            return True
        found = [s for s in (local.lookup(name) for name in sessions) if s is not None]
        if not found or state in RESERVED_STATES:
            self.log.info("monitor events from {origin} to {target} have no session: unregistering",
                          origin=origin, target=target)
            self.remote.get(origin, {}).pop(target, None)
            kernel.call_as_kernel(kernel.control_at, origin, "monitor_unregister", [], (None, target), 60.0,
                                  cstate=MONITOR_STATE).addErrback(lambda f: None)
            return True
        args_t = tuple(args)
        for session in found:
            if kernel.auth and kernel.authorize("post", session, state, None, sender, args_t) is not None:
                continue
            local.enqueue(session, state, args_t, sender, MONITOR_STATE, None, None)
        return True

    def membership_changed(self, gone: List[Tuple[str, Optional[int]]],
                           joined: List[Tuple[str, Optional[int]]]) -> None:
        """
        Kernels left (or restarted) and joined: report them, drop the
        targets of those that left, and send our registrations again to
        those that joined.
        """
        kernel = self.kernel
        for name, incarnation in gone:
            self.forget_origin(name)
            self.emit("kernel_down", peer=name, incarnation=incarnation)
        for name, incarnation in joined:
            self.emit("kernel_up", peer=name, incarnation=incarnation)
            for target, topics in self.remote.get(name, {}).items():
                d = kernel.call_as_kernel(kernel.control_at, name, "monitor_register", [], (list(topics), target),
                                          60.0, cstate=MONITOR_STATE)
                d.addErrback(lambda f, k=name: self.log.warn("monitor registration at {peer} failed: {why}",
                                                             peer=k, why=f.getErrorMessage()))


def _key(target: Target, origin: Optional[str] = None) -> Any:
    """
    How a target is told apart: a destination by its text, a callable by
    itself; another kernel's targets also by that kernel.
    """
    if origin is not None:
        return ("remote", origin, str(target))
    return str(target) if isinstance(target, Specifier) else target


def target_of(kernel: IKernel, target: Any) -> Target:
    """
    A callable as it is; a state name of the current session; any full
    destination form.

    :raises BadSpecifier: if it is none of these.
    """
    if callable(target) and not isinstance(target, (str, Specifier)):
        return target
    if isinstance(target, str) and not target.startswith("poe://"):
        session = kernel.current_session()
        names = session._alias_names
        return Specifier.build(kernel.name, names[0] if names else str(session.id), target)
    spec = coerce(target)
    if spec.state is None:
        raise BadSpecifier(f"monitor target {str(spec)!r} names no state")
    if spec.all_kernels or spec.all_sessions:
        raise BadSpecifier(f"monitor target {str(spec)!r} must name its kernel and sessions, not '*'")
    return spec


def register_op(kernel: IKernel, args: Tuple[Any, ...], sender: Any, remote: bool, adding: bool) -> bool:
    """
    The CONTROL operations ``monitor_register`` and ``monitor_unregister``
    from kernel ``sender.remote_kernel``: ``args == (topics, target)``, the
    target being a full destination on that kernel.

    :raises Refused: if a hook refuses.
    :raises BadSpecifier, ValueError: if the arguments are malformed.
    """
    if len(args) != 2 or not isinstance(args[1], str):
        raise BadSpecifier(f"monitor registration wants [topics, target], not {list(args)!r}")
    topics = topics_of(args[0] if args[0] is not None else "*")
    spec = coerce(args[1])
    origin = getattr(sender, "remote_kernel", kernel.name)
    if spec.state is None or spec.kernels != (origin,) or spec.all_sessions:
        raise BadSpecifier(f"monitor target {args[1]!r} must be a state on the registering kernel {origin!r}")
    if remote and kernel.auth:
        kind = "monitor_register" if adding else "monitor_unregister"
        reason = kernel.auth.check(AuthRequest(kind, None, kind, str(spec), sender, (list(topics),)), [])
        if reason is not None:
            raise Refused(reason)
    if adding:
        if remote and len(kernel.monitor._by_origin.get(origin, ())) >= MAX_TARGETS_PER_KERNEL \
                and _key(spec, origin) not in kernel.monitor._by_origin[origin]:
            raise Refused(f"kernel {origin!r} already has {MAX_TARGETS_PER_KERNEL} monitor targets here")
        kernel.monitor.add(topics, spec, origin if remote else None)
        return True
    return kernel.monitor.remove(topics, spec, origin if remote else None)


def register(kernel: IKernel, topics: Any, target: Any, at: Optional[str], timeout: Optional[float],
             where: Tuple[Optional[str], Optional[int]]) -> Deferred:
    """
    Watch network events: ``topics`` is a topic, a list of topics or
    ``'*'``; ``target`` a callable ``target(topic, info)``, a state name of
    the current session, or a full destination, where each event is posted
    with ``(topic, info)``.

    With ``at`` (a kernel name), watch that kernel's events instead: the
    target must then be a destination in this kernel (a state name of the
    current session will do).  The registration is sent again whenever that
    kernel becomes reachable, so it survives lost links and restarts.

    :returns: a Deferred that fires when the registration holds (at once
        for this kernel), or fails: ``ValueError`` for an unknown topic,
        :class:`BadSpecifier` for a malformed target,
        :class:`~lightspeed.errors.RemoteError` ``Refused`` if the other
        kernel's ``monitor_register`` hook refuses, :class:`NoRoute`.
    """
    try:
        names = topics_of(topics)
        spec = target_of(kernel, target)
    except ValueError as e:  # BadSpecifier is a ValueError too
        return fail(e)
    monitor = kernel.monitor
    if at is None or at == kernel.name:
        monitor.add(names, spec)
        return succeed(True)
    if not isinstance(spec, Specifier) or spec.kernels != (kernel.name,):
        return fail(BadSpecifier(f"a target for another kernel's events must be a state in kernel {kernel.name!r}"))
    mine = monitor.remote.setdefault(at, {})
    before = mine.get(str(spec))
    names = mine[str(spec)] = tuple(dict.fromkeys((before or ()) + names))
    d = kernel.control_at(at, "monitor_register", [], (list(names), str(spec)), timeout, where)

    def failed(f: Failure) -> Failure:
        if not f.check(NoRoute, RequestTimeout):  # refused or malformed: do not send it again
            if before:
                monitor.remote.setdefault(at, {})[str(spec)] = before
            else:
                monitor.remote.get(at, {}).pop(str(spec), None)
        return f

    return d.addErrback(failed)


def unregister(kernel: IKernel, topics: Any, target: Any, at: Optional[str], timeout: Optional[float],
               where: Tuple[Optional[str], Optional[int]]) -> Deferred:
    """
    Stop watching ``topics`` with ``target`` (as given to :func:`register`).

    :returns: a Deferred firing with whether it was watching; every failure
        comes through it.
    """
    try:
        names = topics_of(topics)
        spec = target_of(kernel, target)
    except ValueError as e:
        return fail(e)
    monitor = kernel.monitor
    if at is None or at == kernel.name:
        return maybeDeferred(monitor.remove, names, spec)
    mine = monitor.remote.get(at, {})
    kept = tuple(topic for topic in mine.get(str(spec), ()) if topic not in names)
    if kept:
        mine[str(spec)] = kept
    else:
        mine.pop(str(spec), None)
    return kernel.control_at(at, "monitor_unregister", [], (list(names), str(spec)), timeout, where)
