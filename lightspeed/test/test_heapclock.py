"""
:obj:`lightspeed.heapclock.HeapClock` against :obj:`twisted.internet.task.Clock`,
call for call, on random schedules.
"""

from __future__ import annotations

import random
from typing import Any, List, Tuple

from twisted.internet import error
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from lightspeed.heapclock import HeapClock

_DELAYS = (0.0, 0.0, 0.25, 0.5, 0.5, 1.0, 2.0)


class _Program:
    """
    A random schedule run on one clock: what ran when, and what the clock
    listed, as a log to compare with another clock's.
    """

    def __init__(self, clock: Any, seed: int) -> None:
        self.clock = clock
        self.random = random.Random(seed)
        self.handles: List[Any] = []
        self.log: List[Tuple[Any, ...]] = []

    def run(self, steps: int) -> List[Tuple[Any, ...]]:
        for _ in range(steps):
            self.step(top=True)
        self.clock.advance(10.0)
        self.listing()
        return self.log

    def listing(self) -> None:
        labels = {id(h): n for n, h in enumerate(self.handles)}
        self.log.append(("calls", self.clock.seconds(),
                         [(labels[id(c)], c.getTime()) for c in self.clock.getDelayedCalls()]))

    def fire(self, label: int) -> None:
        self.log.append(("ran", label, self.clock.seconds()))
        for _ in range(self.random.choice((0, 0, 1, 2))):
            self.step(top=False)

    def step(self, top: bool) -> None:
        rng = self.random
        op = rng.choice(("later", "later", "later", "cancel", "reset", "delay", "advance", "list"))
        active = [h for h in self.handles if h.active()]
        if op == "later" or (op in ("cancel", "reset", "delay") and not active):
            self.handles.append(self.clock.callLater(rng.choice(_DELAYS), self.fire, len(self.handles)))
        elif op == "cancel":
            rng.choice(active).cancel()
        elif op == "reset":
            rng.choice(active).reset(rng.choice(_DELAYS))
        elif op == "delay":
            rng.choice(active).delay(rng.choice((-1.0, -0.25, 0.0, 0.25, 0.5, 1.0)))
        elif op == "advance" and top:
            self.clock.advance(rng.choice((0.0, 0.25, 0.5, 1.0)))
        self.listing()


class HeapClockTests(SynchronousTestCase):
    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IReactorTime, HeapClock()))

    def test_same_as_task_clock(self) -> None:
        """
        On 300 random schedules (calls made, cancelled, reset and delayed,
        from outside and from calls as they run; time advanced by steps and
        by none), HeapClock runs the same calls at the same times in the
        same order as task.Clock and lists the same pending calls in the
        same order after every step.
        """
        for seed in range(300):
            expected = _Program(Clock(), seed).run(60)
            got = _Program(HeapClock(), seed).run(60)
            self.assertEqual(got, expected, f"seed {seed}")

    def test_next_time(self) -> None:
        """
        On 100 random schedules, after every step next_time is the earliest
        time of the calls getDelayedCalls lists (None when none is).
        """
        empty = 0
        for seed in range(100):
            program = _Program(HeapClock(), seed)
            clock = program.clock
            seen: List[Tuple[Any, Any]] = []
            listing = program.listing

            def check() -> None:
                calls = clock.getDelayedCalls()
                seen.append((clock.next_time(), min(c.getTime() for c in calls) if calls else None))
                listing()

            program.listing = check  # type: ignore[method-assign]
            program.run(60)
            self.assertEqual([got for got, _ in seen], [want for _, want in seen], f"seed {seed}")
            empty += [want for _, want in seen].count(None)
        self.assertGreater(empty, 0)  # the clock was empty at times too

    def test_equal_times_in_order_scheduled(self) -> None:
        clock, ran = HeapClock(), []  # type: HeapClock, List[Any]
        for n in range(5):
            clock.callLater(1, ran.append, n)
        clock.advance(1)
        self.assertEqual(ran, [0, 1, 2, 3, 4])

    def test_delayed_call_api(self) -> None:
        clock, ran = HeapClock(), []  # type: HeapClock, List[Any]
        call = clock.callLater(2, ran.append, "x")
        self.assertEqual(call.getTime(), 2.0)
        call.reset(5)
        call.delay(1)
        self.assertEqual(call.getTime(), 6.0)
        clock.pump([1, 4])
        self.assertEqual(ran, [])
        self.assertTrue(call.active())
        clock.advance(1)
        self.assertEqual(ran, ["x"])
        self.assertFalse(call.active())
        self.assertRaises(error.AlreadyCalled, call.cancel)
        gone = clock.callLater(1, ran.append, "never")
        gone.cancel()
        self.assertRaises(error.AlreadyCancelled, gone.reset, 1)
        clock.advance(5)
        self.assertEqual((ran, clock.getDelayedCalls(), clock.calls), (["x"], [], []))

    def test_cancelled_calls_do_not_pile_up(self) -> None:
        clock = HeapClock()
        for _ in range(1000):
            clock.callLater(1, lambda: None).cancel()
        self.assertLess(len(clock._heap), 100)
        self.assertEqual(clock.getDelayedCalls(), [])
