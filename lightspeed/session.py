# -*- test-case-name: lightspeed.test.test_kernel -*-
"""
Sessions, the events their handlers receive, and postbacks.

A session is a set of named states.  Give them either by subclassing
:obj:`Session` (every method whose name does not start with ``_`` is a state, plus
the reserved ``_start``, ``_stop``, ``_default`` and ``_undeliverable``) or with
``inline_states={'name': callable}``.  A handler takes one argument, the
:obj:`Event`.

Lifetime (as POE): a session lives while it has an alias, a pending event,
a timer or a live postback/callback.  When none is left after one of its
events ran, it stops and its ``_stop`` state runs.  :obj:`Kernel.stop_session`
stops it at once.
"""

from __future__ import annotations

import weakref
from operator import itemgetter
from types import CodeType
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

__all__ = ["Session", "Event", "RESERVED_STATES", "Where", "caller_of"]

RESERVED_STATES = frozenset({"_start", "_stop", "_default", "_undeliverable"})

Handler = Callable[["Event"], Any]

#: Where a post was made, as an event holds it: a file name (with a line
#: number beside it), or a code object (with an instruction offset beside
#: it); see :func:`caller_of`.
Where = Union[None, str, CodeType]


class Event(tuple):
    """
    What a handler receives: everything POE passes in ``@_``, built from
    the kernel's queue entry (a plain tuple of the same items) when the
    event runs.  Build one with :meth:`of`.

    :ivar kernel: the :obj:`Kernel` dispatching the event.
    :ivar session: the :obj:`Session` that handles it.
    :ivar heap: ``session.heap``.
    :ivar sender: who posted it: a :obj:`Session`, a remote sender (whose
        ``is_lightspeed`` is true), or the kernel itself for posts made from
        outside any handler.
    :ivar state: the state being run (for ``_default``, the state that was
        asked for).
    :ivar args: the arguments, a tuple.
    :ivar arg0: the first argument (POE's ``ARG0``), or :obj:`None`.
    :ivar caller_state: the state that was running when the post was made,
        or :obj:`None`.
    :ivar caller_file: the file of the ``post``/``call`` that caused this.
    :ivar caller_line: its line.

    An ``Event`` is a tuple, but its items are not part of the interface:
    read the attributes above.  In particular items 5 and 6 are, for a
    local post, a code object and an instruction offset, not the file and
    line; only :attr:`caller_file` and :attr:`caller_line` give those.
    """

    # The items: session, state, args, sender, caller state, then where the
    # post was made: (file, line), or, from a local post, (code object,
    # instruction offset), which caller_file and caller_line turn into a
    # file and line only when read (see caller_of).  No __new__ of its own:
    # Event(items) is tuple's own constructor, the cheapest there is.
    __slots__ = ()

    @classmethod
    def of(
        cls,
        session: "Session",
        state: str,
        args: Tuple[Any, ...],
        sender: Any,
        caller_state: Optional[str],
        caller_file: Optional[str],
        caller_line: Optional[int],
    ) -> "Event":
        """
        An event from its fields.
        """
        return cls((session, state, args, sender, caller_state, caller_file, caller_line))

    session = property(itemgetter(0))
    state = property(itemgetter(1))
    args = property(itemgetter(2))
    sender = property(itemgetter(3))
    caller_state = property(itemgetter(4))

    @property
    def caller_file(self) -> Optional[str]:
        where = self[5]
        return where.co_filename if type(where) is CodeType else where

    @property
    def caller_line(self) -> Optional[int]:
        where = self[5]
        return _line(where, self[6]) if type(where) is CodeType else self[6]

    @property
    def caller(self) -> Tuple[Optional[str], Optional[int]]:
        """
        ``(caller_file, caller_line)``.
        """
        return caller_of(self[5], self[6])

    @property
    def kernel(self) -> Any:
        return self[0].kernel

    @property
    def heap(self) -> Any:
        return self[0].heap

    @property
    def arg0(self) -> Any:
        args = self[2]
        return args[0] if args else None

    def __repr__(self) -> str:
        return (
            f"<Event {self.state!r} for session {self.session.id} from {_sender_id(self.sender)!r} "
            f"args={self.args!r}>"
        )


def caller_of(where: Where, line: Optional[int]) -> Tuple[Optional[str], Optional[int]]:
    """
    The file and line of a post from what an event holds: ``(file, line)``
    as given, or a code object and an instruction offset in it (what a
    local post captures: two attribute reads, where the line number would
    cost a walk of the code's line table on every post).
    """
    if type(where) is CodeType:
        return where.co_filename, _line(where, line)
    return where, line


#: Lines found, by id(code): (code, {offset: line}).  Keyed on the id, not
#: the code object: hashing a code object hashes its whole contents (about
#: 0.9 µs); the entry keeps the code alive, so its id is not reused while
#: the entry exists, and the identity check catches a reused id after a
#: clear.  Bounded: cleared when it holds _LINES_MAX code objects.
_lines: Dict[int, Tuple[CodeType, Dict[Optional[int], Optional[int]]]] = {}
_LINES_MAX = 512


def _line(code: CodeType, offset: Optional[int]) -> Optional[int]:
    """
    The source line of the instruction at byte ``offset`` of ``code``, as
    ``frame.f_lineno`` gives it.
    """
    entry = _lines.get(id(code))
    if entry is None or entry[0] is not code:
        if len(_lines) >= _LINES_MAX:
            _lines.clear()
        entry = _lines[id(code)] = (code, {})
    known = entry[1]
    if offset in known:
        return known[offset]
    line = known[offset] = _find_line(code, offset)
    return line


def _find_line(code: CodeType, offset: Optional[int]) -> Optional[int]:
    for start, end, line in code.co_lines():
        if offset is not None and start <= offset < end:
            return line
    return code.co_firstlineno


def _sender_id(sender: Any) -> Any:
    return getattr(sender, "id", sender)


class Session:
    """
    A POE session.  Subclass it and define handler methods, or pass
    ``inline_states``; then hand it to :obj:`Kernel.spawn`.

    :ivar id: the session id, an integer unique within its kernel, set when
        the kernel adopts it.
    :ivar heap: the session's own storage (a dict unless given).
    :ivar kernel: the kernel it lives in, once spawned.
    """

    is_lightspeed = False

    def __init__(
        self,
        inline_states: Optional[Dict[str, Handler]] = None,
        heap: Any = None,
        args: Tuple[Any, ...] = (),
    ) -> None:
        self.heap: Any = {} if heap is None else heap
        self.args = tuple(args)
        self.id: int = 0
        self.kernel: Optional[Any] = None
        self.stopped = False
        # Reference counts that keep the session alive (see module docstring).
        self._pending = 0
        self._timers: Dict[int, Any] = {}
        self._holds = 0
        self._alias_names: List[str] = []
        self._states: Dict[str, Handler] = self._collect_states()
        if inline_states:
            from lightspeed.specifier import check_state

            for name, handler in inline_states.items():
                check_state(name)
                if not callable(handler):
                    raise TypeError(f"handler for state {name!r} is not callable: {handler!r}")
                self._states[name] = handler

    def _collect_states(self) -> Dict[str, Handler]:
        states: Dict[str, Handler] = {}
        for klass in reversed(type(self).__mro__):
            if klass is Session or not issubclass(klass, Session):
                continue
            for name, value in vars(klass).items():
                if callable(value) and (name in RESERVED_STATES or not name.startswith("_")):
                    states[name] = getattr(self, name)
        return states

    @property
    def states(self) -> frozenset:
        """
        The names of the states this session handles.
        """
        return frozenset(self._states)

    def handler(self, state: str) -> Optional[Handler]:
        """
        :returns: the handler for ``state``, else the ``_default`` handler,
            else :obj:`None`.
        """
        states = self._states
        return states.get(state) or states.get("_default")

    def postback(self, _state: str, *args: Any) -> Callable[..., None]:
        """
        A callable that, each time it is called with ``*given``, posts
        ``_state`` to this session with ``args == (args, given)`` (POE's
        postback: ARG0 the creation arguments, ARG1 the call's).  While the
        postback exists it keeps the session alive.
        """
        return self._make_back(_state, args, synchronous=False)

    def callback(self, _state: str, *args: Any) -> Callable[..., Any]:
        """
        As :obj:`postback`, but the call is synchronous and returns the handler's
        value.
        """
        return self._make_back(_state, args, synchronous=True)

    def _make_back(self, state: str, args: Tuple[Any, ...], synchronous: bool) -> Callable[..., Any]:
        kernel = self.kernel
        if kernel is None:
            raise RuntimeError("session is not running in a kernel")
        return kernel.local.make_back(self, state, args, synchronous)

    def __repr__(self) -> str:
        kernel = self.kernel.name if self.kernel is not None else None
        return f"<{type(self).__name__} {self.id} in kernel {kernel!r}>"


class Back:
    """
    A postback or callback: calling it delivers to the session.  Its life
    keeps the session alive; its end (garbage collection) releases it.
    """

    __slots__ = ("_deliver", "__weakref__")

    def __init__(self, deliver: Callable[..., Any], release: Callable[[], None]) -> None:
        self._deliver = deliver
        weakref.finalize(self, release)

    def __call__(self, *given: Any) -> Any:
        return self._deliver(given)


class RemoteSender:
    """
    The sender of an event that came from another kernel.

    Post back to it with ``kernel.post(sender, 'state', ...)`` or
    ``kernel.post(sender.id + 'state', ...)``; its postbacks post there too.

    :ivar remote_kernel: the name of the kernel it came from.
    :ivar remote_session: the sending session's first alias, else its id
        (a string); :obj:`None` when it was posted from outside any session.
    :ivar remote_state: the state that made the post, or :obj:`None`.
    :ivar remote_file: the file of the post.
    :ivar remote_line: its line.
    """

    is_lightspeed = True
    __slots__ = ("_kernel", "remote_kernel", "remote_session", "remote_state", "remote_file", "remote_line")

    def __init__(self, kernel: Any, remote_kernel: str, remote_session: Optional[str],
                 remote_state: Optional[str], remote_file: Optional[str], remote_line: Optional[int]) -> None:
        self._kernel = kernel
        self.remote_kernel = remote_kernel
        self.remote_session = remote_session
        self.remote_state = remote_state
        self.remote_file = remote_file
        self.remote_line = remote_line

    @property
    def id(self) -> str:
        """
        ``'poe://K/S/'``, so that ``id + 'state'`` is a full specifier; just
        ``'poe://K/'`` when the post came from outside any session.
        """
        if self.remote_session is None:
            return f"poe://{self.remote_kernel}/"
        return f"poe://{self.remote_kernel}/{self.remote_session}/"

    @property
    def specifier(self) -> Any:
        """
        The session-only :obj:`Specifier` of the sender.

        :raises BadSpecifier: when the post came from outside any session.
        """
        from lightspeed.errors import BadSpecifier
        from lightspeed.specifier import Specifier

        if self.remote_session is None:
            raise BadSpecifier(
                f"the sender on kernel {self.remote_kernel!r} posted from outside any session "
                "and cannot be answered"
            )
        return Specifier((self.remote_kernel,), (self.remote_session,), None)

    def postback(self, _state: str, *args: Any) -> Callable[..., None]:
        """
        A callable that posts ``_state`` to the remote session with
        ``args == (args, given)``, as a local postback does.
        """
        return self._make_back(_state, args)

    def callback(self, _state: str, *args: Any) -> Callable[..., None]:
        """
        As :obj:`postback`: a remote session cannot be run synchronously, so the
        callback posts and returns :obj:`None`.
        """
        return self._make_back(_state, args)

    def _make_back(self, state: str, args: Tuple[Any, ...]) -> Callable[..., None]:
        target = self.specifier.with_state(state)
        kernel = self._kernel

        def back(*given: Any) -> None:
            kernel.post(target, args, given)

        return back

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, RemoteSender) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<RemoteSender {self.id} state={self.remote_state!r} at {self.remote_file}:{self.remote_line}>"
