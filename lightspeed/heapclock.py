# -*- test-case-name: lightspeed.test.test_heapclock -*-
"""
:obj:`HeapClock`: :obj:`twisted.internet.task.Clock` with its pending calls
in a heap, the clock under :obj:`lightspeed.testing.MemoryMesh`.

``task.Clock`` re-sorts its whole list of pending calls on every
``callLater`` and after every call it runs, so a mesh of many kernels, with
thousands of calls pending, spends its time sorting (a 50-kernel mesh took
87 s to start).  ``HeapClock`` does the same thing call for call in
logarithmic time: the same calls run at the same times in the same order,
``getDelayedCalls`` lists them in the order ``task.Clock`` would, and
``reset``/``delay``/``cancel`` behave as they do there.

The order ``task.Clock`` keeps is a stable sort of its list, made at each
``callLater``, at the start of each ``advance`` and after each call run.
Between two sorts a call whose time changed keeps its place in the list;
the next sort moves it among the calls of its new time by that place: a call
moved later goes before those already due then, one moved earlier after
them, and a new call after every call of its time.  ``HeapClock`` keeps a
``(time, rank)`` key per call that encodes exactly that place.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import implementer

__all__ = ["HeapClock"]

_Entry = Tuple[float, int, "_HeapCall"]


class _HeapCall(DelayedCall):
    """A :obj:`DelayedCall` that tells its clock when its time changes."""

    def __init__(self, clock: "HeapClock", time: float, func: Callable[..., Any],
                 args: Any, kw: Any) -> None:
        super().__init__(time, func, args, kw, clock._cancel, _no_reset, clock.seconds)
        self.key: Tuple[float, int] = (time, 0)
        self._clock = clock

    def reset(self, secondsFromNow: float) -> None:
        super().reset(secondsFromNow)
        self._clock._moved[self] = None

    def delay(self, secondsLater: float) -> None:
        super().delay(secondsLater)
        self._clock._moved[self] = None


def _no_reset(call: DelayedCall) -> None:
    """The clock learns of new times from the call itself."""


@implementer(IReactorTime)
class HeapClock:
    """
    A deterministic :obj:`IReactorTime` for tests and simulations, with the
    semantics of :obj:`twisted.internet.task.Clock` (``seconds``,
    ``callLater``, ``advance``, ``pump``, ``getDelayedCalls``), in
    logarithmic time per call.
    """

    rightNow = 0.0

    def __init__(self) -> None:
        self._heap: List[_Entry] = []
        self._moved: Dict[_HeapCall, None] = {}  # calls whose time changed since the last sort
        self._pending = 0
        self._last = itertools.count(1)  # ranks after every rank given so far
        self._first = itertools.count(-1, -1)  # ranks before every rank given so far

    def seconds(self) -> float:
        return self.rightNow

    def callLater(self, delay: float, callable: Callable[..., object], *args: object,
                  **kw: object) -> IDelayedCall:
        time = self.rightNow + delay
        call = _HeapCall(self, time, callable, args, kw)
        if self._moved:
            self._sort()
        call.key = key = (time, next(self._last))  # _place, inline: one call per frame on a mesh
        heapq.heappush(self._heap, (*key, call))
        self._pending += 1
        return call

    def getDelayedCalls(self) -> List[IDelayedCall]:
        """
        The pending calls, in the order ``task.Clock`` lists them.
        """
        return [call for time, rank, call in sorted(self._heap) if self._live(time, rank, call)]

    def next_time(self) -> Optional[float]:
        """
        When the earliest pending call is due (:obj:`None` if none is), in
        logarithmic time: what ``getDelayedCalls`` would list first.
        """
        self._sort()
        heap = self._heap
        while heap and not self._live(*heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    @property
    def calls(self) -> List[IDelayedCall]:
        """
        :obj:`getDelayedCalls` (``task.Clock`` names its list so), a copy.
        """
        return self.getDelayedCalls()

    def advance(self, amount: float) -> None:
        """
        Move time forward by ``amount`` and run every call due by then, those
        the calls schedule included.
        """
        self.rightNow += amount
        self._sort()
        heap, pop = self._heap, heapq.heappop
        while heap:
            time, rank, call = entry = heap[0]
            if call.key != entry[:2] or call.cancelled or call.called:  # not _live (inline)
                pop(heap)
                continue
            if time > self.rightNow:
                break
            pop(heap)
            self._pending -= 1
            call.called = 1
            call.func(*call.args, **call.kw)
            if self._moved:
                self._sort()

    def pump(self, timings: Iterable[float]) -> None:
        """
        Advance by each of ``timings`` in turn.
        """
        for amount in timings:
            self.advance(amount)

    # -- keeping the order ---------------------------------------------------

    @staticmethod
    def _live(time: float, rank: int, call: _HeapCall) -> bool:
        return call.key == (time, rank) and not (call.cancelled or call.called)

    def _place(self, call: _HeapCall, time: float, rank: int) -> None:
        call.key = (time, rank)
        heapq.heappush(self._heap, (time, rank, call))

    def _cancel(self, call: DelayedCall) -> None:
        self._moved.pop(call, None)  # type: ignore[call-overload]
        self._pending -= 1
        if len(self._heap) > 2 * self._pending + 64:
            self._heap = [entry for entry in self._heap if self._live(*entry) and entry[2] is not call]
            heapq.heapify(self._heap)

    def _sort(self) -> None:
        """
        Give each call moved since the last sort the place ``task.Clock``'s
        stable sort gives it: by its old place among the calls of its new
        time.
        """
        if not self._moved:
            return
        moved = [call for call in self._moved if call.active() and call.getTime() != call.key[0]]
        self._moved.clear()
        later = sorted((call for call in moved if call.getTime() > call.key[0]),
                       key=lambda call: call.key, reverse=True)
        for call in later:
            self._place(call, call.getTime(), next(self._first))
        earlier = sorted((call for call in moved if call.getTime() < call.key[0]), key=lambda call: call.key)
        for call in earlier:
            self._place(call, call.getTime(), next(self._last))
