# -*- test-case-name: lightspeed.test.test_specifier -*-
"""
Destination specifiers: parse, validate and print them.

A destination names one or more kernels, one or more sessions and a state::

    poe://K/S/STATE          one kernel, one session, one state
    poe://k1,k2/s1,s2/STATE  every listed session on every listed kernel
    poe://*/S/STATE          every kernel in the network except our own
    poe://K/*/STATE          every session with an alias on K
    poe://K/S/               a session only (a sender's id); add a state

The same destination may be given as ``[K, S, STATE]`` (where ``K`` and ``S``
may be comma strings or lists of names), as
``{'KERNEL': K, 'SESSION': S, 'STATE': STATE}``, or as a :obj:`Specifier`.

This module is pure: it knows nothing of kernels or sockets.  Everything
malformed raises :obj:`BadSpecifier`, whose message names the bad part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Optional, Tuple

from lightspeed.errors import BadSpecifier

__all__ = [
    "SCHEME",
    "WILDCARD",
    "Specifier",
    "parse",
    "coerce",
    "check_name",
    "check_state",
]

SCHEME = "poe://"
WILDCARD = "*"

# Kernel names and session aliases may not hold '*', '/', ',' (the seed's
# rule) nor control characters (they would corrupt logs).  States may not
# hold '/' (it would make the string form ambiguous) nor control characters;
# a state named '*' is an ordinary state.
_BAD_NAME = re.compile(r"[*/,\x00-\x1f\x7f-\x9f]")
_BAD_STATE = re.compile(r"[/\x00-\x1f\x7f-\x9f]")


def check_name(name: Any, what: str = "kernel name") -> str:
    """
    Validate a kernel name or session alias.

    :param name: the candidate.
    :param what: how to call it in the error message.
    :returns: ``name``, unchanged.
    :raises BadSpecifier: if ``name`` is not a non-empty string free of
        ``* / ,`` and control characters.
    """
    if not isinstance(name, str):
        raise BadSpecifier(f"{what} must be a string, not {type(name).__name__}: {name!r}")
    if not name:
        raise BadSpecifier(f"{what} is empty")
    bad = _BAD_NAME.search(name)
    if bad is not None:
        raise BadSpecifier(f"{what} {name!r} holds forbidden character {bad.group()!r}")
    return name


def check_state(state: Any) -> str:
    """
    Validate a state name.

    :param state: the candidate.
    :returns: ``state``, unchanged.
    :raises BadSpecifier: if ``state`` is not a non-empty string free of ``/``
        and control characters.
    """
    if not isinstance(state, str):
        raise BadSpecifier(f"state must be a string, not {type(state).__name__}: {state!r}")
    if not state:
        raise BadSpecifier("state is empty")
    bad = _BAD_STATE.search(state)
    if bad is not None:
        raise BadSpecifier(f"state {state!r} holds forbidden character {bad.group()!r}")
    return state


def _names(part: Any, what: str) -> Tuple[str, ...]:
    """
    Turn a kernel or session part (comma string or list of names) into a
    tuple of unique names in their first order, or ``('*',)``.
    """
    if isinstance(part, str):
        if not part:
            raise BadSpecifier(f"{what} part is empty")
        items: Iterable[Any] = part.split(",")
    elif isinstance(part, (list, tuple)):
        if not part:
            raise BadSpecifier(f"{what} list is empty")
        items = part
    else:
        raise BadSpecifier(
            f"{what} part must be a string or a list of strings, not {type(part).__name__}: {part!r}"
        )
    items = list(items)
    for item in items:
        if not isinstance(item, str):
            raise BadSpecifier(f"{what} must be a string, not {type(item).__name__}: {item!r}")
    if WILDCARD in items:
        if len(items) > 1:
            raise BadSpecifier(f"{what} wildcard '*' mixed into a list: {part!r}")
        return (WILDCARD,)
    names = tuple(dict.fromkeys(items))  # unique, order kept
    for name in names:
        check_name(name, what)
    return names


@dataclass(frozen=True)
class Specifier:
    """
    A parsed destination: immutable, hashable; ``str()`` gives the canonical
    string, which :obj:`parse` turns back into an equal value.

    :ivar kernels: kernel names, or ``('*',)`` for every other kernel.
    :ivar sessions: session aliases or ids, or ``('*',)`` for every aliased
        session.
    :ivar state: the state, or :obj:`None` for a session-only specifier.
    """

    __slots__ = ("kernels", "sessions", "state")

    kernels: Tuple[str, ...]
    sessions: Tuple[str, ...]
    state: Optional[str]

    @classmethod
    def build(cls, kernels: Any, sessions: Any, state: Optional[str] = None) -> "Specifier":
        """
        Validate the parts and build a specifier.

        :param kernels: a kernel name, comma string, list of names or ``'*'``.
        :param sessions: a session alias/id, comma string, list or ``'*'``.
        :param state: a state name, or :obj:`None` for a session-only specifier.
        :raises BadSpecifier: naming the bad part.
        """
        if state is not None:
            check_state(state)
        return cls(_names(kernels, "kernel"), _names(sessions, "session"), state)

    @property
    def all_kernels(self) -> bool:
        """
        Whether this names every other kernel (``*``).
        """
        return self.kernels == (WILDCARD,)

    @property
    def all_sessions(self) -> bool:
        """
        Whether this names every aliased session (``*``).
        """
        return self.sessions == (WILDCARD,)

    def with_state(self, state: str) -> "Specifier":
        """
        :returns: a copy naming ``state``.
        :raises BadSpecifier: if ``state`` is malformed.
        """
        return Specifier(self.kernels, self.sessions, check_state(state))

    def session_only(self) -> "Specifier":
        """
        :returns: a copy with no state (what a sender's id looks like).
        """
        return Specifier(self.kernels, self.sessions, None)

    def __str__(self) -> str:
        return "%s%s/%s/%s" % (
            SCHEME,
            ",".join(self.kernels),
            ",".join(self.sessions),
            self.state or "",
        )


def parse(text: str) -> Specifier:
    """
    Parse the string form ``poe://K/S/STATE`` or ``poe://K/S/``.

    Results are cached, so posting to the same string again costs one
    dictionary look-up.

    :raises BadSpecifier: naming the bad part.
    """
    if not isinstance(text, str):
        raise BadSpecifier(f"specifier must be a string, not {type(text).__name__}: {text!r}")
    return _parse(text)


@lru_cache(maxsize=4096)
def _parse(text: str) -> Specifier:
    if not text.startswith(SCHEME):
        raise BadSpecifier(f"specifier {text!r} does not start with {SCHEME!r}")
    parts = text[len(SCHEME):].split("/")
    if len(parts) != 3:
        raise BadSpecifier(
            f"specifier {text!r} must have exactly three parts, kernel/session/state, "
            f"not {len(parts)}"
        )
    kernels, sessions, state = parts
    return Specifier.build(kernels, sessions, state or None)


def coerce(value: Any) -> Specifier:
    """
    Turn any full specifier form into a :obj:`Specifier`: the string form,
    ``[K, S, STATE]``, ``{'KERNEL':…, 'SESSION':…, 'STATE':…}`` or a
    :obj:`Specifier`.

    :raises BadSpecifier: if ``value`` is none of these or is malformed.
    """
    if isinstance(value, Specifier):
        return value
    if isinstance(value, str):
        return parse(value)
    if isinstance(value, (list, tuple)):
        if len(value) != 3:
            raise BadSpecifier(
                f"list specifier must be [kernel, session, state], not {len(value)} items: {value!r}"
            )
        kernels, sessions, state = value
        return Specifier.build(kernels, sessions, check_state(state))
    if isinstance(value, dict):
        keys = set(value)
        if keys != {"KERNEL", "SESSION", "STATE"}:
            raise BadSpecifier(
                f"dict specifier must have exactly the keys KERNEL, SESSION, STATE, not {sorted(map(str, keys))}"
            )
        return Specifier.build(value["KERNEL"], value["SESSION"], check_state(value["STATE"]))
    raise BadSpecifier(f"not a destination specifier: {type(value).__name__} {value!r}")
