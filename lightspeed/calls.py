# -*- test-case-name: lightspeed.test.test_kernel -*-
"""
The call family of the local runtime: a synchronous ``call`` (POE's, and
the Lightspeed form with an RSVP destination), the posting of a call's
value to its RSVP, and ``request`` (a call whose value comes back as a
Deferred, to a local session or through the network).
"""

from __future__ import annotations

import sys
from typing import Any, Optional, Tuple

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from lightspeed.errors import BadSpecifier, LightspeedError, NoRoute, NoSuchSession, RequestTimeout
from lightspeed.session import Session
from lightspeed.specifier import SCHEME, Specifier, check_name, check_state

__all__ = ["Calls", "caller"]

_WILD = ("*",)


def caller(depth: int) -> Tuple[Optional[str], Optional[int]]:
    """
    The file and line of the code ``depth`` frames above the caller.
    """
    frame = sys._getframe(depth + 1)
    return frame.f_code.co_filename, frame.f_lineno


class Calls:
    """
    Calls and requests of one runtime (``runtime`` is its
    :class:`~lightspeed.runtime.Runtime`).
    """

    log = Logger()

    def __init__(self, runtime: Any) -> None:
        self._rt = runtime

    def reply(self, session: Session, state: str, rsvp: Specifier, result: Any) -> None:
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

    def call(self, _dest: Any, *args: Any, ttl: Optional[float] = None) -> Any:
        """
        Call a state: see :meth:`lightspeed.kernel.Kernel.call`.
        """
        where = caller(1)
        if isinstance(_dest, Session) or (
            isinstance(_dest, (str, int)) and not isinstance(_dest, bool)
            and not (isinstance(_dest, str) and _dest.startswith(SCHEME))
        ):
            if not args:
                raise BadSpecifier(f"call to {_dest!r} names no state")
            state = check_state(args[0])
            session = self._rt.registry.resolve(_dest)
            if session is None:
                if isinstance(_dest, str):
                    check_name(_dest, "session")  # a malformed name is a BadSpecifier
                raise NoSuchSession(f"no session {_dest!r} in kernel {self._rt.name!r}")
            return self._rt.call_now(session, state, args[1:], self._rt.current or self._rt.owner, self._rt.current_state, *where)
        spec, args = self._rt.registry.destination(_dest, args)
        if not args:
            raise BadSpecifier(f"call to {str(spec)!r} has no RSVP destination")
        rsvp, args = self._rt.registry.destination(args[0], args[1:])
        return self._call_spec(spec, rsvp, args, where, ttl)

    def _call_spec(self, spec: Specifier, rsvp: Specifier, args: Tuple[Any, ...], where: Tuple[Any, ...],
                   ttl: Optional[float]) -> Any:
        sender = self._rt.current or self._rt.owner
        cstate = self._rt.current_state
        results = []
        for session in self._rt.targets(spec):
            try:
                result = self._rt.call_now(session, spec.state, args, sender, cstate, *where)
            except Exception:
                self.log.failure(
                    "call to state {state!r} of session {session} in kernel {kernel} raised",
                    state=spec.state, session=session.id, kernel=self._rt.name,
                )
                continue
            results.append(result)
            self.reply(session, spec.state, rsvp, result)  # type: ignore[arg-type]  # destination() set a state
        self._rt.post_spec(spec, args, sender, cstate, where[0], where[1], rsvp=rsvp, ttl=ttl)
        return results[0] if len(results) == 1 and not self._rt.registry.remote_kernels(spec) else None

    def _post_reply(self, rsvp: Specifier, value: Any, session: Session, state: str) -> None:
        try:
            self._rt.post_spec(rsvp, (value,), session, state, None, None, reply=True)
        except LightspeedError as e:  # e.g. a value that cannot travel
            self._rt.undeliverable(rsvp, f"reply of state {state!r} cannot be sent: {e}", (None, None), session, ())

    def request(self, dest: Any, args: Tuple[Any, ...], where: Tuple[Any, ...], timeout: Optional[float]) -> Deferred:
        """
        Call one state of one session and get its value: see
        :meth:`lightspeed.kernel.Kernel.request`.  Every failure, a
        malformed destination included, comes through the Deferred.
        """
        rt = self._rt
        if type(dest) is str:
            plan = rt._plans.get(dest)  # the posts' cache of parsed destinations
            if plan is not None and plan[1] is not None and len(plan[1]) == 1 and rt.remote is not None:
                sessions = plan[0].sessions
                if len(sessions) == 1 and sessions != _WILD:
                    return rt.remote.request_planned(dest, plan, args, rt.current or rt.owner, rt.current_state,
                                                     where[0], where[1], timeout)
        if (isinstance(dest, Session) or type(dest) is int) and args:
            session = dest if isinstance(dest, Session) else self._rt._sessions.get(dest)
            if session is not None and self._rt.registry.owns(session):
                try:
                    spec = Specifier((self._rt.name,), (str(session.id),), check_state(args[0]))
                except BadSpecifier as e:
                    return fail(e)
                return self._request_local(session, spec, args[1:], where, timeout)
        try:
            spec, args = self._rt.registry.destination(dest, args)
        except BadSpecifier as e:
            return fail(e)
        if len(spec.kernels) != 1 or spec.all_kernels or len(spec.sessions) != 1 or spec.all_sessions:
            return fail(BadSpecifier(f"a request names exactly one kernel and one session, not {str(spec)!r}"))
        remote = self._rt.registry.remote_kernels(spec)
        if remote:
            if type(dest) is str and dest.startswith(SCHEME) and not dest.endswith("/"):
                self._rt._remember_plan(dest, spec)
            if self._rt.remote is None:
                return fail(NoRoute(f"no route to kernel(s) {', '.join(remote)} for {str(spec)!r}"))
            return self._rt.remote.request(spec, remote[0], args, self._rt.current or self._rt.owner,
                                       self._rt.current_state, where, timeout)
        targets = self._rt.targets(spec)
        if len(targets) != 1:
            return fail(NoSuchSession(f"{str(spec)!r} does not name exactly one session of kernel {self._rt.name!r}"))
        return self._request_local(targets[0], spec, args, where, timeout)

    def _request_local(self, session: Session, spec: Specifier, args: Tuple[Any, ...],
                       where: Tuple[Any, ...], timeout: Optional[float]) -> Deferred:
        sender, cstate = self._rt.current or self._rt.owner, self._rt.current_state
        d = maybeDeferred(self._rt.call_now, session, spec.state, args, sender, cstate, *where)
        if timeout is not None:
            def timed_out(result: Any, seconds: float) -> Failure:
                return Failure(RequestTimeout(f"no answer from {str(spec)!r} within {seconds} s"))

            d.addTimeout(timeout, self._rt.reactor, onTimeoutCancel=timed_out)
        return d
