# -*- test-case-name: lightspeed.test.test_kernel -*-
"""
Delays and alarms (POE's ``delay_set``, ``alarm_set``, ``delay_adjust``,
``alarm_remove``, ``alarm_remove_all``) on the kernel's reactor.

A timer names local sessions only and keeps them alive until it fires or
is removed.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, Optional, Tuple

from lightspeed.errors import BadSpecifier
from lightspeed.session import Session
from lightspeed.specifier import SCHEME, check_state

__all__ = ["Timers"]


class Timers:
    """
    The pending timers of one kernel.
    """

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self._ids = itertools.count(1)
        self._alarms: Dict[int, Tuple[Any, Tuple[Session, ...], str, Tuple[Any, ...]]] = {}

    def delay_set(self, dest: Any, seconds: float, args: Tuple[Any, ...]) -> int:
        """
        After ``seconds``, post to ``dest``: a state name of the current
        session (as POE) or any destination form naming local sessions.

        :returns: an alarm id.
        :raises BadSpecifier: if ``dest`` is malformed or names another kernel.
        """
        runtime = self._runtime
        if isinstance(dest, str) and not dest.startswith(SCHEME):
            sessions: Tuple[Session, ...] = (runtime.current_session(),)
            state = check_state(dest)
        else:
            spec, args = runtime.registry.destination(dest, args)
            if runtime.registry.remote_kernels(spec):
                raise BadSpecifier(f"timers can only name local sessions, not {str(spec)!r}")
            sessions = tuple(runtime.targets(spec))
            state = spec.state
        alarm_id = next(self._ids)
        call = runtime.reactor.callLater(max(0.0, seconds), self._fire, alarm_id)
        self._alarms[alarm_id] = (call, sessions, state, args)
        for session in sessions:
            session._timers[alarm_id] = call
        return alarm_id

    def delay_adjust(self, alarm_id: int, seconds: float) -> bool:
        """
        Make a pending alarm fire ``seconds`` from now.

        :returns: whether the alarm was pending.
        """
        entry = self._alarms.get(alarm_id)
        if entry is None:
            return False
        entry[0].reset(max(0.0, seconds))
        return True

    def remove(self, alarm_id: int) -> Optional[Tuple[str, float, Tuple[Any, ...]]]:
        """
        Remove a pending alarm.

        :returns: ``(state, when, args)`` of the removed alarm, or ``None``.
        """
        entry = self._alarms.get(alarm_id)
        if entry is None:
            return None
        call, sessions, state, args = entry
        when = call.getTime()
        self._cancel(alarm_id)
        runtime = self._runtime
        for session in sessions:
            if session is not runtime.current:
                runtime.registry.maybe_stop(session)
        return state, when, args

    def remove_all(self, session: Session) -> int:
        """
        Remove every alarm of ``session``.

        :returns: how many were removed.
        """
        ids = list(session._timers)
        for alarm_id in ids:
            self.remove(alarm_id)
        return len(ids)

    def cancel_all(self, session: Session) -> None:
        """
        Cancel every alarm of a session that is stopping.
        """
        for alarm_id in list(session._timers):
            self._cancel(alarm_id)

    def _cancel(self, alarm_id: int) -> None:
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
                self._runtime.enqueue(session, state, args, session, None, None, None)
