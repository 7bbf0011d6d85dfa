# -*- test-case-name: lightspeed.test.test_introspection -*-
"""
CONTROL operations: what one kernel can ask another to do besides running
a state.  Each answers like a request (a RESPONSE with a value or an
error).

  - ``sessions``: :obj:`lightspeed.introspection.sessions_answer`.
  - ``states``: :obj:`lightspeed.introspection.states_answer` for the payload's
    sessions.
  - ``monitor_register``, ``monitor_unregister``: args ``[topics, target]``,
    see :obj:`lightspeed.monitor.register_op`.
  - ``stats``: :obj:`lightspeed.stats.stats_answer`.
"""

from __future__ import annotations

from typing import Any, Tuple

from lightspeed.errors import BadSpecifier
from lightspeed.interfaces import IKernel
from lightspeed.introspection import sessions_answer, states_answer
from lightspeed.monitor import register_op
from lightspeed.stats import stats_answer

__all__ = ["OPERATIONS", "run"]

OPERATIONS = frozenset({"sessions", "states", "monitor_register", "monitor_unregister", "stats"})


def run(kernel: IKernel, op: str, sessions: Any, args: Tuple[Any, ...], sender: Any, remote: bool) -> Any:
    """
    Run operation ``op`` for ``sender`` (a remote sender when ``remote``).

    :returns: the answer (plain values only).
    :raises BadSpecifier: for an unknown operation or malformed arguments.
    """
    if op == "sessions":
        return sessions_answer(kernel, sender, remote)
    if op == "states":
        return states_answer(kernel, sessions, sender, remote)
    if op == "monitor_register":
        return register_op(kernel, args, sender, remote, True)
    if op == "monitor_unregister":
        return register_op(kernel, args, sender, remote, False)
    if op == "stats":
        return stats_answer(kernel, sender, remote)
    raise BadSpecifier(f"unknown control operation {op!r}; one of {sorted(OPERATIONS)}")
