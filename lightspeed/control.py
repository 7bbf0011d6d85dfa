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
  - ``ping``: ``{"kernel": name, "time": epoch seconds}``, at once.
  - ``route``: args ``[kernel]``: this kernel's next hop towards it, the
    cost of that link and the whole distance (``lightspeed route`` asks
    hop after hop).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Tuple

from lightspeed.errors import BadSpecifier
from lightspeed.interfaces import IKernel
from lightspeed.introspection import sessions_answer, states_answer
from lightspeed.monitor import register_op
from lightspeed.stats import stats_answer

__all__ = ["OPERATIONS", "run"]

OPERATIONS = frozenset({"sessions", "states", "monitor_register", "monitor_unregister", "stats", "ping", "route"})


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
    if op == "ping":
        return {"kernel": kernel.name, "time": time.time()}
    if op == "route":
        return route_answer(kernel, args)
    raise BadSpecifier(f"unknown control operation {op!r}; one of {sorted(OPERATIONS)}")


def route_answer(kernel: IKernel, args: Tuple[Any, ...]) -> Dict[str, Any]:
    """
    ``{"next": hop or None, "cost": cost of our link to it, "distance":
    total cost}`` towards kernel ``args[0]`` (``next`` is None for us or an
    unreachable kernel).
    """
    if len(args) != 1 or not isinstance(args[0], str):
        raise BadSpecifier(f"route wants [kernel], not {list(args)!r}")
    network = getattr(kernel, "network", None)
    router = network.router if network is not None else None
    hop = router.next_hop(args[0]) if router is not None else None
    links = dict(router.own().links) if router is not None else {}
    distance = router.distances().get(args[0]) if router is not None else None
    return {"next": hop, "cost": links.get(hop) if hop else None, "distance": distance}
