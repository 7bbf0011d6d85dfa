# -*- test-case-name: lightspeed.test.test_trace -*-
"""
The hops a TRACE carries (see "Traces" in ``docs/protocol.rst``) and their
checks: shared by kernels (:mod:`lightspeed.trace`) and ClientLite.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional

from lightspeed.errors import BadSpecifier
from lightspeed.message import malformed
from lightspeed.specifier import check_name

__all__ = ["MAX_TRACE_HOPS", "check_hops"]

#: The most hops a trace holds, its origin's and its destination's included.
MAX_TRACE_HOPS = 32

#: The highest cost a hop may claim (the router's limit on link costs).
_MAX_COST = 2 ** 31


def _check_hop(hop: Any, first: bool) -> None:
    if type(hop) is not list or len(hop) != 3:
        raise malformed("trace hop is not [kernel, time, cost]")
    name, when, cost = hop
    try:
        check_name(name, "kernel name")
    except BadSpecifier:
        raise malformed("trace hop kernel name") from None
    if type(when) not in (int, float) or not math.isfinite(when):
        raise malformed("trace hop time")
    if first:
        if cost is not None:
            raise malformed("trace origin hop with a cost")
    elif type(cost) is not int or not 0 <= cost <= _MAX_COST:
        raise malformed("trace hop cost")


def check_hops(hops: Any, origin: str, destination: Optional[str] = None) -> List[list]:
    """
    Check a trace's hops: a list of 1 to :data:`MAX_TRACE_HOPS` hops
    ``[kernel, time, cost]``, the first ``origin``'s (cost ``None``), each
    other with an integer cost, and with ``destination`` the last
    ``destination``'s.

    :raises ProtocolError: ("malformed") if they are not.
    """
    if type(hops) is not list or not 1 <= len(hops) <= MAX_TRACE_HOPS:
        raise malformed(f"trace holds no hops or more than {MAX_TRACE_HOPS}")
    for i, hop in enumerate(hops):
        _check_hop(hop, i == 0)
    if hops[0][0] != origin:
        raise malformed("trace does not start at its origin")
    if destination is not None and (len(hops) < 2 or hops[-1][0] != destination):
        raise malformed("trace does not end at its destination")
    return hops
