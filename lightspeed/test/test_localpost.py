# -*- test-case-name: lightspeed.test.test_localpost -*-
"""
Tests for the local post path of :obj:`lightspeed.runtime`: what a cheap
local event still tells its handler (sender, caller state, file and line),
and that posting leaves nothing for the cyclic garbage collector and keeps it
quiet while many events wait.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any, List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from lightspeed import Event, Kernel, session
from lightspeed.errors import BadSpecifier

HERE = __file__.replace(".pyc", ".py")


class LocalEventTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.kernel = Kernel("box", reactor=Clock())
        self.events: List[Any] = []
        self.rec = self.kernel.spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("rec"),
            "hit": self.events.append,
        })

    def test_lines_of_one_function(self) -> None:
        """When one function posts from two lines, then each event reports its own line, read after both posts."""
        first = sys._getframe().f_lineno + 1
        self.kernel.post("rec", "hit", 1)
        self.kernel.post("rec", "hit", 2)
        self.kernel.flush()
        self.assertEqual([(e.args, e.caller_file, e.caller_line) for e in self.events],
                         [((1,), HERE, first), ((2,), HERE, first + 1)])
        self.assertEqual(self.events[1].caller, (HERE, first + 1))

    def test_yield_and_postback_lines(self) -> None:
        """When a handler yields and calls a postback, then both events name the handler's lines and state."""
        got: List[Any] = []
        backs: List[Any] = []

        def go(event: Any) -> None:
            event.kernel.yield_("seen", "y")
            backs[0](1)

        session = self.kernel.spawn(inline_states={
            "_start": lambda e: backs.append(e.session.postback("seen", "p")), "go": go, "seen": got.append})
        line = go.__code__.co_firstlineno
        self.kernel.post(session, "go")
        self.kernel.flush()
        self.assertEqual([(e.args, e.sender, e.caller_state, e.caller_file, e.caller_line) for e in got],
                         [(("y",), session, "go", HERE, line + 1), ((("p",), (1,)), session, "go", HERE, line + 2)])

    def test_sender_and_state(self) -> None:
        """When a handler posts to an alias, then the event's sender is that session and caller_state its state."""
        poster = self.kernel.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("poster"),
                                                 "go": lambda e: e.kernel.post("rec", "hit", "x")})
        self.kernel.post(poster, "go")
        self.kernel.flush()
        event = self.events[0]
        self.assertEqual((event.session, event.state, event.args, event.arg0, event.sender, event.caller_state),
                         (self.rec, "hit", ("x",), "x", poster, "go"))

    def test_event_of(self) -> None:
        """When an Event is built from its fields, then its attributes are those fields."""
        event = Event.of(self.rec, "hit", (1, 2), self.kernel, "go", "f.py", 7)
        self.assertIsInstance(event, tuple)
        self.assertEqual((event.session, event.state, event.args, event.sender, event.caller_state,
                          event.caller_file, event.caller_line, event.kernel, event.heap),
                         (self.rec, "hit", (1, 2), self.kernel, "go", "f.py", 7, self.kernel, self.rec.heap))

    def test_no_cyclic_garbage(self) -> None:
        """When 1,000 events are posted and run with the cyclic collector off, then the memory they took is back (under 4 bytes an event is left; one cycle an event would leave over 50)."""
        self.addCleanup(gc.enable)
        gc.collect()
        gc.disable()
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        for round_ in range(2):  # the first round grows the queue to its size
            start = tracemalloc.get_traced_memory()[0]
            for i in range(1000, 2000):
                self.kernel.post("rec", "hit", i, "x")
            self.kernel.flush()
            del self.events[:]
        self.assertLess(tracemalloc.get_traced_memory()[0] - start, 4000)

    def test_queued_memory_bounded(self) -> None:
        """When 1,000 events with two arguments wait, then they take under 224 bytes each (the entry, the args and three deque slots take 192), and all run."""
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        values = [(i, str(i)) for i in range(1000, 2000)]  # made before the measure: the args' own objects
        start = tracemalloc.get_traced_memory()[0]
        for number, text in values:
            self.kernel.post("rec", "hit", number, text)
        queued = tracemalloc.get_traced_memory()[0] - start
        self.kernel.flush()
        self.assertLess(queued / len(values), 224)
        self.assertEqual([e.args for e in self.events], values)

    def test_queue_quiet_for_the_collector(self) -> None:
        """When as many events wait as the collector has old objects, then it runs no full collection while they are posted (a queue it tracked would bring one at a quarter of that), and all run."""
        full: List[int] = []

        def count(phase: str, info: Any) -> None:
            if phase == "start" and info["generation"] == 2:
                full.append(1)

        gc.collect()
        number = max(20000, len(gc.get_objects(2)))
        gc.callbacks.append(count)
        self.addCleanup(gc.callbacks.remove, count)
        for i in range(number):
            self.kernel.post("rec", "hit", i, "x")
        self.assertEqual(full, [])
        self.kernel.flush()
        self.assertEqual((len(self.events), self.events[-1].args), (number, (number - 1, "x")))

    def test_post_forms_around_the_state(self) -> None:
        """When the first argument after a full destination is None, the destination is a list, or an alias has no state after it, then the first two post as given and the last is refused."""
        self.kernel.post("poe://box/rec/hit", None)
        self.kernel.post(["box", "rec", "hit"], 1, 2)
        self.assertRaises(BadSpecifier, self.kernel.post, "rec")
        self.kernel.flush()
        self.assertEqual([e.args for e in self.events], [(None,), (1, 2)])

    def test_unhashable_state_refused(self) -> None:
        """When an alias is followed by a list or dict where its state goes, then BadSpecifier says so (not TypeError) and nothing is queued."""
        for state in (["hit"], {"hit": 1}):
            with self.assertRaises(BadSpecifier) as e:
                self.kernel.post("rec", state)
            self.assertIn("state must be a string", str(e.exception))
        self.kernel.flush()
        self.assertEqual(self.events, [])


class LineCacheTests(SynchronousTestCase):
    def test_bounded_and_per_code(self) -> None:
        """When lines of more code objects than the cache holds are asked, then each is right and the cache stays bounded."""
        codes = [compile("\n" * i + "x = 1\n", f"f{i}.py", "exec") for i in range(session._LINES_MAX + 10)]
        found = [session._line(code, 2) for code in codes]  # 2: the first instruction after RESUME
        again = [session._line(code, 2) for code in codes[:3]]
        self.assertEqual((found, again, len(session._lines) <= session._LINES_MAX),
                         ([i + 1 for i in range(len(codes))], [1, 2, 3], True))
