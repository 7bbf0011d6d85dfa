# -*- test-case-name: lightspeed.test.test_introspection -*-
"""
Introspection (the seed's Lightspeed::Introspection): which kernels are in
the network, which sessions a kernel has, which states a session has.

:obj:`Kernel.list_kernels` answers from this kernel's routing database.
:obj:`Kernel.list_sessions` and :obj:`Kernel.list_states` ask the kernels named
(this one included) with a CONTROL request; each answer either fires a
Deferred or, as in the seed, is posted to an RSVP destination as
``(kernel_name, answer)``.

Another kernel's questions pass through the ``introspection``
authentication hooks of the kernel asked, once per session: a session the
hook refuses is left out of the answer, and a question about a single
named session that is refused fails with :obj:`Refused`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, fail

from lightspeed.auth import AuthRequest
from lightspeed.errors import BadSpecifier, NoSuchSession, Refused
from lightspeed.interfaces import IKernel
from lightspeed.session import Session
from lightspeed.specifier import SCHEME, Specifier, check_name, coerce, parse

__all__ = ["list_sessions", "list_states", "session_names", "sessions_answer", "states_answer",
           "session_specifier", "kernels_of"]


def list_sessions(kernel: IKernel, kernels: Any, rsvp: Any, timeout: Optional[float],
                  where: Tuple[Optional[str], Optional[int]]) -> Optional[Deferred]:
    """
    The sessions of a kernel: a list with, per session, every alias it has
    (or its id if it has none).

    Without ``rsvp``, ask one kernel (default: this one) and get a Deferred
    through which every failure comes.  With ``rsvp`` (a full
    destination), ask ``kernels`` (a name, a list, ``'*'`` or a remote
    sender) and post ``(kernel_name, sessions)`` there for each answer, as
    the seed did; a kernel that cannot answer is reported to the current
    session's ``_undeliverable`` state, and a malformed argument raises
    :class:`BadSpecifier` at once.

    ``'*'`` here means *every kernel of the network, this one included*
    (in a destination specifier, ``*`` leaves out the kernel that posts).

    Another kernel's ``introspection`` hooks may leave sessions out.
    """
    if rsvp is None:
        try:
            names = kernels_of(kernel, kernels)
        except BadSpecifier as e:
            return fail(e)
        return _ask_one(kernel, names, "sessions", "*", timeout, where)
    _ask_all(kernel, kernels_of(kernel, kernels), "sessions", "*", rsvp, timeout, where)
    return None


def list_states(kernel: IKernel, dest: Any, rsvp: Any, timeout: Optional[float],
                where: Tuple[Optional[str], Optional[int]]) -> Optional[Deferred]:
    """
    The states of sessions: a dict ``{session_name: [state, ...]}``.

    ``dest`` names kernels and sessions without a state: ``'poe://K/S'``,
    ``[K, S]``, ``{'KERNEL': K, 'SESSION': S}`` or a remote sender; ``S``
    may be a list or ``'*'`` (every session with an alias), ``K`` ``'*'``
    (every kernel, this one included).  Without ``rsvp`` it must name one
    kernel and the result is a Deferred, through which every failure comes
    (:class:`BadSpecifier` for a malformed ``dest``); with ``rsvp``,
    ``(kernel_name, states)`` is posted there for each kernel, as in
    :func:`list_sessions`, and a malformed ``dest`` raises at once.
    """
    try:
        spec = session_specifier(dest)
    except BadSpecifier as e:
        if rsvp is None:
            return fail(e)
        raise
    kernels: Any = "*" if spec.all_kernels else list(spec.kernels)
    sessions: Any = "*" if spec.all_sessions else list(spec.sessions)
    if rsvp is None:
        return _ask_one(kernel, kernels_of(kernel, kernels), "states", sessions, timeout, where)
    _ask_all(kernel, kernels_of(kernel, kernels), "states", sessions, rsvp, timeout, where)
    return None


def _ask_one(kernel: IKernel, names: Tuple[str, ...], op: str, sessions: Any, timeout: Optional[float],
             where: Tuple[Optional[str], Optional[int]]) -> Deferred:
    if len(names) != 1:
        return fail(BadSpecifier(f"without an RSVP, ask one kernel, not {list(names)!r}"))
    return kernel.control_at(names[0], op, sessions, (), timeout, where)


def _ask_all(kernel: IKernel, names: Tuple[str, ...], op: str, sessions: Any, rsvp: Any,
             timeout: Optional[float], where: Tuple[Optional[str], Optional[int]]) -> None:
    target = coerce(rsvp)
    if target.state is None:
        raise BadSpecifier(f"RSVP {str(target)!r} names no state")
    sender = kernel.local.current or kernel
    for name in names:
        d = kernel.control_at(name, op, sessions, (), timeout, where)
        d.addCallbacks(
            lambda value, name=name: kernel.post_as_kernel(None, target, name, value),
            lambda f, name=name: kernel.local.undeliverable(
                Specifier((name,), ("*",) if sessions == "*" else tuple(sessions), op),
                f"{op} of kernel {name!r} failed: {f.getErrorMessage()}", where, sender),
        )


def session_names(session: Session) -> List[str]:
    """
    Every name ``session`` answers to: its aliases, or its id if it has none.
    """
    return list(session._alias_names) or [str(session.id)]


def _refused(kernel: IKernel, session: Session, op: str, sender: Any) -> Optional[str]:
    if not kernel.auth:
        return None
    request = AuthRequest("introspection", session, op, None, sender, ())
    return kernel.auth.check(request, session._alias_names + [str(session.id)])


def sessions_answer(kernel: IKernel, sender: Any, remote: bool) -> List[List[str]]:
    """
    The answer to "sessions": one list of names per session (every alias,
    or the id of a session without one), in the order sessions started.
    """
    out = []
    for session in kernel.sessions_list():
        if remote and _refused(kernel, session, "sessions", sender) is not None:
            continue
        out.append(session_names(session))
    return out


def states_answer(kernel: IKernel, sessions: Any, sender: Any, remote: bool) -> Dict[str, List[str]]:
    """
    The answer to "states": for each session named (``'*'``: every session
    with an alias), its name and its sorted states.  Sessions that do not
    exist or that a hook refuses are left out; if that leaves nothing of a
    question that named sessions, it fails.

    :raises NoSuchSession: if no named session exists.
    :raises Refused: if every named session that exists was refused.
    """
    if sessions == "*":
        found = [(session._alias_names[0], session) for session in kernel.local.aliased_sessions()]
    else:
        if type(sessions) is not list or not sessions:
            raise BadSpecifier(f"states of which sessions? got {sessions!r}")
        found = []
        for name in sessions:
            session = kernel.local.lookup(check_name(name, "session"))
            if session is not None:
                found.append((name, session))
        if not found:
            raise NoSuchSession(f"no session {','.join(sessions)!r} in kernel {kernel.name!r}")
    out: Dict[str, List[str]] = {}
    reason = None
    for name, session in found:
        if remote:
            reason = _refused(kernel, session, "states", sender) or None
            if reason is not None:
                continue
        out[name] = sorted(session.states)
    if not out and found and sessions != "*":
        raise Refused(reason or "refused by an authentication hook")
    return out


def session_specifier(dest: Any) -> Specifier:
    """
    A kernel/session destination without a state, in any of the seed's
    forms: ``'poe://K/S'`` (with or without the last slash), ``[K, S]``,
    ``{'KERNEL': K, 'SESSION': S}``, a remote sender, or a :obj:`Specifier`.

    :raises BadSpecifier: naming the bad part.
    """
    if isinstance(dest, Specifier):
        if dest.state is not None:
            raise BadSpecifier(f"{str(dest)!r} names a state; introspection wants poe://KERNEL/SESSION")
        return dest
    if isinstance(dest, str):
        if not dest.startswith(SCHEME):
            raise BadSpecifier(f"{dest!r} is not a poe://KERNEL/SESSION destination")
        if dest.count("/") == 3:
            dest += "/"
        spec = parse(dest)
        if spec.state is not None:
            raise BadSpecifier(f"{dest!r} names a state; introspection wants poe://KERNEL/SESSION")
        return spec
    if isinstance(dest, (list, tuple)):
        if len(dest) != 2:
            raise BadSpecifier(f"list destination must be [kernel, session], not {dest!r}")
        return Specifier.build(dest[0], dest[1])
    if isinstance(dest, dict):
        if set(dest) != {"KERNEL", "SESSION"}:
            raise BadSpecifier(f"dict destination must have exactly the keys KERNEL and SESSION, not {sorted(map(str, dest))}")
        return Specifier.build(dest["KERNEL"], dest["SESSION"])
    sender_spec = getattr(dest, "specifier", None)
    if isinstance(sender_spec, Specifier):
        return sender_spec.session_only()
    raise BadSpecifier(f"not a kernel/session destination: {type(dest).__name__} {dest!r}")


def kernels_of(kernel: IKernel, dest: Any) -> Tuple[str, ...]:
    """
    The kernel names ``dest`` means: a name, a list of names, ``'*'`` (every
    kernel of the network, this one included), or a remote sender.

    :raises BadSpecifier: naming the bad part.
    """
    if dest is None:
        return (kernel.name,)
    if dest == "*":
        return tuple(kernel.list_kernels())
    remote = getattr(dest, "remote_kernel", None)
    if isinstance(remote, str):
        return (remote,)
    if isinstance(dest, str):
        return tuple(dict.fromkeys(check_name(name) for name in dest.split(",")))
    if isinstance(dest, (list, tuple)) and dest:
        return tuple(dict.fromkeys(check_name(name) for name in dest))
    raise BadSpecifier(f"not a kernel name, list of names or '*': {dest!r}")
