# -*- test-case-name: lightspeed.test.test_callerfiles -*-
"""
What a message to another kernel carries as its sender's source file
(``s_file``, the receiver's ``event.caller_file``): the kernel's
``caller_files`` policy.

``"relative"`` (the default)
    The path relative to the longest ``sys.path`` entry (a site-packages
    or project directory) that contains it, e.g.
    ``"examples/pingpong.py"``; a file outside every entry is sent by its
    base name.  No absolute path leaves the machine.
``"full"``
    The absolute path, as Python knows it (the seed's CALLER_FILE).
``"name"``
    The base name, ``"pingpong.py"``.
``"none"``
    The empty string.

A name that is not an absolute path (``"<stdin>"``, ``"<string>"``, a
relative path) is sent as it is by ``"relative"``.  Each transform is worked
out once per code file name and kept (:attr:`CallerFiles.cache`), so the
send path pays one dict lookup per message.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Dict, Optional

from lightspeed.bounded import BoundedCache

__all__ = ["CallerFiles", "POLICIES", "DEFAULT_POLICY", "check_policy"]

DEFAULT_POLICY = "relative"

#: Distinct code file names remembered (code made by ``exec`` may have many).
CACHE_BOUND = 4096


def _relative(path: str) -> str:
    if not os.path.isabs(path):
        return path
    best = ""
    for entry in sys.path:
        root = os.path.abspath(entry or os.curdir)
        if os.path.dirname(root) == root:
            continue  # "/" (a program started there has it as "" first): it would give the whole path away
        if len(root) > len(best) and path.startswith(root.rstrip(os.sep) + os.sep):
            best = root
    if not best:
        return os.path.basename(path)
    return os.path.relpath(path, best)


POLICIES: Dict[str, Callable[[str], str]] = {
    "relative": _relative,
    "full": lambda path: path,
    "name": os.path.basename,
    "none": lambda path: "",
}


def check_policy(policy: str) -> str:
    """
    :returns: ``policy`` if it is one of :data:`POLICIES`.
    :raises ValueError: if it is not.
    """
    if policy not in POLICIES:
        raise ValueError(f"caller_files must be one of {', '.join(POLICIES)}, not {policy!r}")
    return policy


class CallerFiles:
    """
    One kernel's caller-file policy and its cache.

    :ivar cache: code file name -> what is sent; look it up first and call
        :meth:`convert` on a miss (``None`` stays ``None``).
    """

    def __init__(self, policy: str = DEFAULT_POLICY) -> None:
        self.cache: BoundedCache = BoundedCache(CACHE_BOUND)
        self.policy = policy

    @property
    def policy(self) -> str:
        return self._policy

    @policy.setter
    def policy(self, policy: str) -> None:
        self._policy = check_policy(policy)
        self._transform = POLICIES[policy]
        self.cache.clear()

    def convert(self, filename: Optional[str]) -> Optional[str]:
        """
        :returns: what is sent for code in ``filename``; remembered.
        """
        if filename is None:
            return None
        sent = self.cache.get(filename)
        return sent if sent is not None else self.cache.remember(filename, self._transform(filename))
