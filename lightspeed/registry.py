# -*- test-case-name: lightspeed.test.test_kernel -*-
"""
The registry of one kernel's sessions: ids, aliases, the lifetime rule,
and the resolution of names and destinations to sessions.

It knows nothing of the network: a destination naming other kernels
resolves here to no local session, and :meth:`Registry.remote_kernels`
says which other kernels it names.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, List, Optional, Tuple

from lightspeed.errors import AliasInUse, BadSpecifier, NoSuchSession
from lightspeed.interfaces import IKernel
from lightspeed.session import Session
from lightspeed.specifier import SCHEME, Specifier, check_name, coerce, parse

__all__ = ["Registry"]


class Registry:
    """
    The sessions of one kernel.

    :ivar sessions: ``{id: session}`` of the running sessions, oldest first.
    :ivar aliases: ``{alias: session}``.
    """

    def __init__(self, runtime: Any) -> None:
        self.name = runtime.name
        self._runtime = runtime
        self.sessions: Dict[int, Session] = {}
        self.aliases: Dict[str, Session] = {}
        self._ids = itertools.count(1)

    # -- lifetime ------------------------------------------------------------

    def add(self, session: Session, kernel: Any) -> None:
        """
        Adopt ``session`` into ``kernel`` (the public kernel its events name).

        :raises ValueError: if it already runs somewhere.
        """
        if session.kernel is not None:
            raise ValueError(f"{session!r} is already running")
        session.kernel = kernel
        session.id = next(self._ids)
        self.sessions[session.id] = session

    def stop(self, session: Session) -> None:
        """
        Stop ``session`` now: remove its aliases and timers, run ``_stop``.
        """
        if session.stopped or session.id not in self.sessions or self.sessions[session.id] is not session:
            return
        session.stopped = True
        for alias in session._alias_names:
            del self.aliases[alias]
        session._alias_names = []
        runtime = self._runtime
        runtime.timers.cancel_all(session)
        handler = session._states.get("_stop")
        try:
            if handler is not None:
                runtime.run(session, handler, "_stop", (), runtime.owner, None, None, None)
        finally:
            del self.sessions[session.id]
            session._states = {}  # queued events now take the slow, logging path

    def maybe_stop(self, session: Session) -> None:
        """
        Stop ``session`` if nothing keeps it alive: no alias, pending event,
        timer or live postback.
        """
        if (
            session._pending == 0
            and session._holds == 0
            and not session._timers
            and not session.stopped
            and not session._alias_names
        ):
            self.stop(session)

    def owns(self, session: Session) -> bool:
        """
        Whether ``session`` is a running session of this kernel.
        """
        return not session.stopped and self.sessions.get(session.id) is session

    # -- names ---------------------------------------------------------------

    def resolve(self, name: Any) -> Optional[Session]:
        """
        Find a local session by alias, by id (an int or its decimal string)
        or by the session object itself.  An alias wins over an id.
        """
        if isinstance(name, Session):
            return name if self.owns(name) else None
        if isinstance(name, str):
            session = self.aliases.get(name)
            if session is not None or not (name.isascii() and name.isdecimal()) or len(name) > 18:
                return session
            name = int(name)
        if isinstance(name, int):
            return self.sessions.get(name)
        return None

    def alias_set(self, alias: str, session: Session) -> None:
        """
        Give ``session`` an alias.

        :raises BadSpecifier: if the alias is malformed or all digits.
        :raises NoSuchSession: if ``session`` does not run here.
        :raises AliasInUse: if another session holds it.
        """
        check_name(alias, "alias")
        if alias.isdecimal():
            raise BadSpecifier(f"alias {alias!r} is all digits: it would shadow a session id")
        if not self.owns(session):
            raise NoSuchSession(f"{session!r} is not a running session of kernel {self.name!r}")
        holder = self.aliases.get(alias)
        if holder is not None and holder is not session:
            raise AliasInUse(f"alias {alias!r} is held by session {holder.id} of kernel {self.name!r}")
        if holder is None:
            self.aliases[alias] = session
            session._alias_names.append(alias)

    def alias_remove(self, alias: str, session: Session) -> None:
        """
        Remove an alias of ``session``.

        :raises NoSuchSession: if ``session`` does not hold ``alias``.
        """
        if self.aliases.get(alias) is not session:
            raise NoSuchSession(f"session {session.id} has no alias {alias!r}")
        del self.aliases[alias]
        session._alias_names.remove(alias)

    def aliased_sessions(self) -> List[Session]:
        """
        Every session with an alias, each once.
        """
        return list(dict.fromkeys(self.aliases.values()))

    # -- destinations --------------------------------------------------------

    def destination(self, dest: Any, args: Tuple[Any, ...]) -> Tuple[Specifier, Tuple[Any, ...]]:
        """
        Turn the first arguments of ``post``/``call`` into a full specifier
        and the remaining arguments.

        Full forms (``'poe://K/S/STATE'``, ``[K, S, STATE]``, a dict, a
        :class:`Specifier` with a state) use no argument.  Session forms (an
        alias, a session id, a :class:`Session` or sender, ``'poe://K/S/'``,
        a :class:`Specifier` without a state) take the state from the first
        argument.

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
        elif IKernel.providedBy(dest):
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

    def targets(self, spec: Specifier) -> Tuple[List[Session], List[str]]:
        """
        The local sessions that ``spec`` names, each once, in order, and the
        names of this kernel that name no session.
        """
        if spec.all_kernels or self.name not in spec.kernels:
            return [], []
        if spec.all_sessions:
            return self.aliased_sessions(), []
        found: Dict[Session, None] = {}
        missing = []
        for name in spec.sessions:
            session = self.resolve(name)
            if session is None:
                missing.append(name)
            else:
                found[session] = None
        return list(found), missing

    def remote_kernels(self, spec: Specifier) -> Tuple[str, ...]:
        """
        The other kernels ``spec`` names (``('*',)`` for every other one).
        """
        if spec.all_kernels:
            return spec.kernels
        return tuple(k for k in spec.kernels if k != self.name)
