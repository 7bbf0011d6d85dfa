# -*- test-case-name: lightspeed.test.test_auth -*-
"""
Authentication hooks (the seed's Lightspeed::Authentication): decide, per
destination session or for all (``'*'``), whether a message from another
kernel may be delivered.  The hook for the specific session wins over the
``'*'`` hook.

A hook is called with an :obj:`AuthRequest` and returns a true value to accept;
a false value, a string (the reason) or an exception refuses.  A refused
message is not delivered and comes back to its sender as an
``_undeliverable`` event naming the reason (a refused request fails).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from twisted.logger import Logger

__all__ = ["AuthRequest", "AuthHooks", "KINDS"]

#: What hooks can be registered for.  ``introspection`` hooks are asked
#: once per session another kernel's ``list_sessions`` / ``list_states``
#: would show (a refused session is left out); ``monitor_register`` and
#: ``monitor_unregister`` hooks, registered for ``'*'``, are asked when
#: another kernel registers or unregisters a monitor target here.
KINDS = frozenset({"post", "call", "callreply", "introspection", "monitor_register", "monitor_unregister"})


@dataclass(frozen=True)
class AuthRequest:
    """
    What a hook sees.

    :ivar kind: one of :obj:`KINDS`.
    :ivar session: the destination session (the :obj:`Session`); for the
        monitor kinds :obj:`None` (they concern the kernel).
    :ivar state: the destination state; for ``introspection`` the question
        (``"sessions"`` or ``"states"``), for the monitor kinds the kind.
    :ivar rsvp: for a call, the RSVP destination string; for the monitor
        kinds the target events would be posted to; else :obj:`None`.
    :ivar sender: the :obj:`RemoteSender` (its ``remote_kernel``,
        ``remote_session``, ``remote_state``, ``remote_file``,
        ``remote_line``).
    :ivar args: the arguments; for the monitor kinds ``([topic, ...],)``.
    """

    kind: str
    session: Any
    state: str
    rsvp: Optional[str]
    sender: Any
    args: Tuple[Any, ...]


Hook = Callable[[AuthRequest], Any]


class AuthHooks:
    """
    The hooks of one kernel.
    """

    log = Logger()

    def __init__(self) -> None:
        #: The hooks by ``(kind, session)``: read it, change it through
        #: :meth:`register` and :meth:`unregister`.
        self.hooks: Dict[Tuple[str, str], Hook] = {}

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def register(self, kind: str, session: str, hook: Hook) -> None:
        """
        Register ``hook`` for ``kind`` messages to ``session`` (an alias, a
        session id as a string, or ``'*'``), replacing any earlier one.

        :raises ValueError: for an unknown kind.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown hook kind {kind!r}; one of {sorted(KINDS)}")
        self.hooks[(kind, str(session))] = hook

    def unregister(self, kind: str, session: str) -> bool:
        """
        :returns: whether a hook was registered there.
        """
        return self.hooks.pop((kind, str(session)), None) is not None

    def check(self, request: AuthRequest, names: Iterable[str]) -> Optional[str]:
        """
        Ask the hook for the session (by any of ``names``), else the ``'*'``
        hook.

        :returns: :obj:`None` to deliver, or the reason for refusing.
        """
        hook = None
        for name in names:
            hook = self.hooks.get((request.kind, name))
            if hook is not None:
                break
        if hook is None:
            hook = self.hooks.get((request.kind, "*"))
        if hook is None:
            return None
        try:
            verdict = hook(request)
        except Exception:
            self.log.failure("auth hook for {kind} raised; message refused", kind=request.kind)
            return "refused by an authentication hook (it raised)"
        if isinstance(verdict, str):
            return verdict or "refused by an authentication hook"
        return None if verdict else "refused by an authentication hook"
