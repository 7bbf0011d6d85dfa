# -*- test-case-name: lightspeed.test.test_kernel -*-
"""
Tests for :obj:`lightspeed.kernel` and :obj:`lightspeed.session`: the local kernel.
"""

from __future__ import annotations

import gc
import sys
from typing import Any, List, cast

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from lightspeed import (
    AliasInUse,
    BadSpecifier,
    Kernel,
    NoCurrentSession,
    NoRoute,
    NoSuchSession,
    Session,
)


class Recorder(Session):
    """
    A session that records every event it receives.
    """

    def __init__(self, alias: str = "rec") -> None:
        super().__init__()
        self.alias = alias
        self.events: List[Any] = []

    def _start(self, event):
        event.kernel.alias_set(self.alias)

    def hit(self, event):
        self.events.append(event)
        return ("hit", event.args)

    def _helper(self, event):  # not a state: starts with '_'
        raise AssertionError("private method ran as a state")


def make_kernel(name: str = "testbox") -> tuple:
    clock = Clock()
    return Kernel(name, reactor=clock), clock


class LogCatcher:
    def __init__(self, case: SynchronousTestCase) -> None:
        self.events: List[dict] = []
        observer = cast(ILogObserver, self.events.append)  # a callable taking an event is one
        globalLogPublisher.addObserver(observer)
        case.addCleanup(globalLogPublisher.removeObserver, observer)

    def levels(self, level: LogLevel) -> List[dict]:
        return [e for e in self.events if e.get("log_level") == level]


class KernelNameTests(SynchronousTestCase):
    def test_valid_name(self):
        """When a valid name is given, then the kernel carries it."""
        self.assertEqual(Kernel("otherbox", reactor=Clock()).name, "otherbox")

    def test_bad_names(self):
        """When a name holds '*', '/', ',' or is empty, then BadSpecifier."""
        for bad in ["", "a*b", "a/b", "a,b", 3]:
            self.assertRaises(BadSpecifier, Kernel, bad, reactor=Clock())

    def test_default_unique(self):
        """When no name is given, then each kernel gets its own valid name."""
        names = {Kernel(reactor=Clock()).name for _ in range(20)}
        self.assertEqual(len(names), 20)
        for name in names:
            self.assertNotRegex(name, r"[*/,]")

    def test_kernels_independent(self):
        """When two kernels live in one process, then each has its own sessions and aliases."""
        k1, c1 = make_kernel("one")
        k2, c2 = make_kernel("two")
        r1, r2 = k1.spawn(Recorder()), k2.spawn(Recorder())
        k1.post("rec", "hit", 1)
        k1.flush()
        k2.flush()
        self.assertEqual(len(r1.events), 1)
        self.assertEqual(r2.events, [])


class PostTests(SynchronousTestCase):
    def setUp(self):
        self.kernel, self.clock = make_kernel()
        self.rec = self.kernel.spawn(Recorder())

    def test_asynchronous(self):
        """When an event is posted, then it runs on a later reactor turn, not during post."""
        self.kernel.post("rec", "hit")
        self.assertEqual(self.rec.events, [])
        self.clock.advance(0)
        self.assertEqual(len(self.rec.events), 1)

    def test_every_form(self):
        """When posting with each specifier form naming the local session, then each arrives."""
        k = self.kernel
        forms = [
            ("rec", "hit", 1),
            (self.rec.id, "hit", 2),
            (str(self.rec.id), "hit", 3),
            (self.rec, "hit", 4),
            ("poe://testbox/rec/hit", 5),
            ("poe://testbox/rec/", "hit", 6),
            (["testbox", "rec", "hit"], 7),
            ({"KERNEL": "testbox", "SESSION": "rec", "STATE": "hit"}, 8),
            ("poe://testbox/*/hit", 9),
            (["testbox", ["rec"], "hit"], 10),
        ]
        for form in forms:
            k.post(*form)
        k.flush()
        self.assertEqual([e.args for e in self.rec.events], [(i,) for i in range(1, 11)])

    def test_fifo_across_sessions(self):
        """When events are posted to several sessions, then they run in posting order."""
        order = []
        self.kernel.spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("other"),
            "hit": lambda e: order.append(("other", e.args[0])),
        })
        self.rec.hit = None
        rec_states = self.rec._states
        rec_states["hit"] = lambda e: order.append(("rec", e.args[0]))
        for i in range(100):
            self.kernel.post("rec" if i % 3 else "other", "hit", i)
        self.kernel.flush()
        self.assertEqual([i for _, i in order], list(range(100)))

    def test_batched_drain(self):
        """When a burst is posted, then one reactor call drains at most `batch` events per turn."""
        self.kernel.batch = 10
        for i in range(25):
            self.kernel.post("rec", "hit", i)
        turns = 0
        while self.clock.getDelayedCalls():
            (call,) = self.clock.getDelayedCalls()  # one reactor call at a time
            self.clock.calls.remove(call)
            call.func(*call.args, **call.kw)
            turns += 1
            self.assertEqual(len(self.rec.events), min(25, 10 * turns))
        self.assertEqual(turns, 3)
        self.assertEqual([e.args[0] for e in self.rec.events], list(range(25)))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_multi_session(self):
        """When a specifier lists several sessions, then each gets it once, duplicates too."""
        other = self.kernel.spawn(Recorder("other"))
        self.kernel.post(f"poe://testbox/rec,other,rec,{self.rec.id}/hit", "x")
        self.kernel.flush()
        self.assertEqual(len(self.rec.events), 1)
        self.assertEqual(len(other.events), 1)

    def test_broadcast_sessions(self):
        """When '*' names the sessions, then every aliased session gets it once, unaliased ones not."""
        other = self.kernel.spawn(Recorder("other"))
        self.kernel.alias_set("rec2", self.rec)
        plain = self.kernel.spawn(inline_states={"hit": lambda e: None, "_start": lambda e: e.kernel.delay_set("hit", 10)})
        seen: List[Any] = []
        plain._states["hit"] = seen.append
        self.kernel.post("poe://testbox/*/hit")
        self.kernel.flush()
        self.assertEqual((len(self.rec.events), len(other.events), seen), (1, 1, []))

    def test_broadcast_kernels_excludes_self(self):
        """When '*' names the kernels, then the local kernel is not among them."""
        self.kernel.post("poe://*/rec/hit")
        self.kernel.flush()
        self.assertEqual(self.rec.events, [])

    def test_bad_destination_raises(self):
        """When a destination is malformed or lacks a state, then post raises BadSpecifier at once."""
        k = self.kernel
        for form in [("poe://testbox/rec",), ("poe://testbox/rec/",), ("rec",), (self.rec,),
                     ("rec", "poe://testbox/rec/hit"), (["testbox", "rec"],), (None, "hit"), (k, "hit")]:
            self.assertRaises(BadSpecifier, k.post, *form)

    def test_unknown_session_logged(self):
        """When the session does not exist, then post logs it with origin and destination, and raises nothing."""
        logs = LogCatcher(self)
        self.kernel.post("poe://testbox/nobody/hit")
        self.kernel.post("nobody", "hit")
        self.kernel.flush()
        warnings = [e for e in logs.levels(LogLevel.warn) if "undeliverable" in e["log_format"]]
        self.assertEqual(len(warnings), 2)
        self.assertIn("nobody", warnings[0]["destination"])
        self.assertEqual(warnings[0]["kernel"], "testbox")

    def test_unknown_kernel_logged(self):
        """When the kernel is unknown and there is no network, then the post is logged as undeliverable."""
        logs = LogCatcher(self)
        self.kernel.post("poe://otherbox/rec/hit")
        warnings = logs.levels(LogLevel.warn)
        self.assertEqual(len(warnings), 1)
        self.assertIn("otherbox", warnings[0]["reason"])
        self.assertEqual(warnings[0]["file"], __file__.replace(".pyc", ".py"))

    def test_sender_and_caller(self):
        """When a handler posts, then the receiver sees that session as sender and the caller's state, file and line."""
        self.kernel.spawn(inline_states={
            "_start": lambda e: e.kernel.yield_("go"),
            "go": lambda e: e.kernel.post("rec", "hit"),
        })
        line = sys._getframe().f_lineno - 2
        self.kernel.flush()
        event = self.rec.events[0]
        self.assertFalse(event.sender.is_lightspeed)
        self.assertEqual(event.sender.id, 2)
        self.assertEqual(event.caller_state, "go")
        self.assertEqual(event.caller_file, __file__.replace(".pyc", ".py"))
        self.assertEqual(event.caller_line, line)
        self.assertIs(event.heap, self.rec.heap)
        self.assertEqual(event.state, "hit")

    def test_sender_outside_session(self):
        """When posting from outside any handler, then the sender is the kernel and caller_state is None."""
        self.kernel.post("rec", "hit")
        line = sys._getframe().f_lineno - 1
        self.kernel.flush()
        event = self.rec.events[0]
        self.assertIs(event.sender, self.kernel)
        self.assertIsNone(event.caller_state)
        self.assertEqual(event.caller_line, line)

    def test_answer_sender(self):
        """When a handler posts to its sender or sender.id plus a state, then the sender gets it."""
        got = []
        self.rec._states["hit"] = lambda e: (e.kernel.post(e.sender, "back", 1), e.kernel.post(e.sender.id, "back", 2))
        self.kernel.spawn(inline_states={
            "_start": lambda e: (e.kernel.alias_set("asker"), e.kernel.post("rec", "hit")),
            "back": lambda e: got.append((e.args[0], e.sender)),
        })
        self.kernel.flush()
        self.assertEqual(got, [(1, self.rec), (2, self.rec)])

    def test_default_state(self):
        """When a state is unknown and _default exists, then _default runs with the asked state and args."""
        seen = []
        self.kernel.spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("d"),
            "_default": lambda e: seen.append((e.state, e.args)),
        })
        self.kernel.post("d", "whatever", 1, 2)
        self.kernel.flush()
        self.assertEqual(seen, [("whatever", (1, 2))])

    def test_unknown_state_logged(self):
        """When a state is unknown and there is no _default, then a warning names it."""
        logs = LogCatcher(self)
        self.kernel.post("rec", "nosuch")
        self.kernel.post("rec", "_helper")
        self.kernel.flush()
        states = [e["state"] for e in logs.levels(LogLevel.warn)]
        self.assertEqual(states, ["nosuch", "_helper"])

    def test_handler_exception_logged(self):
        """When a handler raises, then the failure is logged with session and state and the kernel keeps going."""
        logs = LogCatcher(self)

        def boom(event):
            raise ZeroDivisionError("boom")

        self.rec._states["boom"] = boom
        self.kernel.post("rec", "boom")
        self.kernel.post("rec", "hit")
        self.kernel.flush()
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        failures = logs.levels(LogLevel.critical)
        self.assertEqual((failures[0]["state"], failures[0]["session"]), ("boom", self.rec.id))
        self.assertEqual(len(self.rec.events), 1)

    def test_async_handler_failure_logged(self):
        """When an async handler fails later, then the failure is logged."""
        d: Deferred[Any] = Deferred()

        async def later(event):
            await d
            raise KeyError("late")

        self.rec._states["later"] = later
        self.kernel.post("rec", "later")
        self.kernel.flush()
        self.assertEqual(self.flushLoggedErrors(KeyError), [])
        d.callback(None)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)


class CallTests(SynchronousTestCase):
    def setUp(self):
        self.kernel, self.clock = make_kernel()
        self.rec = self.kernel.spawn(Recorder())
        self.replies: List[Any] = []
        self.asker = self.kernel.spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("asker"),
            "reply": lambda e: self.replies.append((e.args, e.sender, e.caller_state)),
        })

    def test_local_call_returns_value(self):
        """When a local-form call is made, then the handler runs at once and its value is returned."""
        self.assertEqual(self.kernel.call("rec", "hit", 1), ("hit", (1,)))
        self.assertEqual(self.kernel.call(self.rec, "hit", 2), ("hit", (2,)))
        self.assertEqual(self.kernel.call(self.rec.id, "hit", 3), ("hit", (3,)))
        self.assertEqual(len(self.rec.events), 3)

    def test_local_call_exception_propagates(self):
        """When the handler of a local-form call raises, then the caller gets the exception."""
        def boom(event):
            raise ValueError("no")

        self.rec._states["boom"] = boom
        self.assertRaises(ValueError, self.kernel.call, "rec", "boom")

    def test_local_call_errors(self):
        """When the session or state is missing, then call raises a clear error."""
        self.assertRaises(NoSuchSession, self.kernel.call, "nobody", "hit")
        self.assertRaises(BadSpecifier, self.kernel.call, "rec")
        self.assertRaises(NoSuchSession, self.kernel.call, "rec", "nosuch")

    def test_rsvp_forms(self):
        """When a Lightspeed-form call is made, then the value is returned and posted to the RSVP."""
        k = self.kernel
        self.assertEqual(k.call("poe://testbox/rec/hit", "poe://testbox/asker/reply", 1), ("hit", (1,)))
        k.call(["testbox", "rec", "hit"], ["testbox", "asker", "reply"], 2)
        k.call("poe://testbox/rec/", "hit", {"KERNEL": "testbox", "SESSION": "asker", "STATE": "reply"}, 3)
        k.flush()
        self.assertEqual([r[0] for r in self.replies], [(("hit", (i,)),) for i in (1, 2, 3)])
        self.assertIs(self.replies[0][1], self.rec)
        self.assertEqual(self.replies[0][2], "hit")

    def test_rsvp_missing(self):
        """When the RSVP is missing or is not a specifier, then BadSpecifier is raised at the call site."""
        k = self.kernel
        self.assertRaises(BadSpecifier, k.call, "poe://testbox/rec/hit")
        self.assertRaises(BadSpecifier, k.call, "poe://testbox/rec/hit", 42)
        self.assertRaises(BadSpecifier, k.call, self.rec.id, "poe://testbox/asker/reply")

    def test_rsvp_waits_for_deferred(self):
        """When the called handler returns a Deferred, then the RSVP reply waits for it."""
        d: Deferred[Any] = Deferred()
        self.rec._states["slow"] = lambda e: d
        self.kernel.call("poe://testbox/rec/slow", "poe://testbox/asker/reply")
        self.kernel.flush()
        self.assertEqual(self.replies, [])
        d.callback("done")
        self.kernel.flush()
        self.assertEqual(self.replies[0][0], ("done",))

    def test_rsvp_async_def(self):
        """When the called handler is async def, then the RSVP gets its result."""
        async def compute(event):
            return event.args[0] * 2

        self.rec._states["compute"] = compute
        self.kernel.call("poe://testbox/rec/compute", "poe://testbox/asker/reply", 21)
        self.kernel.flush()
        self.assertEqual(self.replies[0][0], (42,))

    def test_request(self):
        """When request() names a local state, then the Deferred fires with the value."""
        self.assertEqual(self.successResultOf(self.kernel.request("poe://testbox/rec/hit", 1)), ("hit", (1,)))
        self.assertEqual(self.successResultOf(self.kernel.request("rec", "hit", 2)), ("hit", (2,)))

    def test_request_errors(self):
        """When request() names nothing, an unreachable kernel or a failing state, then it fails clearly."""
        self.failureResultOf(self.kernel.request("poe://testbox/nobody/hit"), NoSuchSession)
        self.failureResultOf(self.kernel.request("poe://otherbox/rec/hit"), NoRoute)

        def boom(event):
            raise ValueError("x")

        self.rec._states["boom"] = boom
        self.failureResultOf(self.kernel.request("rec", "boom"), ValueError)

    def test_request_timeout(self):
        """When the handler's Deferred never fires, then request() times out."""
        from lightspeed.errors import RequestTimeout

        self.rec._states["never"] = lambda e: Deferred()
        d = self.kernel.request("rec", "never", timeout=5)
        self.clock.advance(4)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.failureResultOf(d, RequestTimeout)


class AliasTests(SynchronousTestCase):
    def setUp(self):
        self.kernel, self.clock = make_kernel()
        self.rec = self.kernel.spawn(Recorder())

    def test_resolution(self):
        """When resolving, then aliases, ids, id strings and session objects work; an all-digit alias is refused."""
        k = self.kernel
        self.assertIs(k.resolve("rec"), self.rec)
        self.assertIs(k.resolve(self.rec.id), self.rec)
        self.assertIs(k.resolve(str(self.rec.id)), self.rec)
        self.assertIs(k.resolve(self.rec), self.rec)
        self.assertIsNone(k.resolve("nobody"))
        self.assertRaises(BadSpecifier, k.alias_set, str(self.rec.id + 1), self.rec)
        self.assertIsNone(k.resolve("\u00b2"))  # a digit to isdigit(), not a session id

    def test_set_list_remove(self):
        """When aliases are set and removed, then alias_list follows."""
        k = self.kernel
        k.alias_set("two", self.rec)
        self.assertEqual(k.alias_list(self.rec), ["rec", "two"])
        k.alias_remove("rec", self.rec)
        self.assertEqual(k.alias_list(self.rec), ["two"])
        self.assertRaises(NoSuchSession, k.alias_remove, "rec", self.rec)

    def test_alias_in_use(self):
        """When another session holds an alias, then alias_set raises AliasInUse."""
        other = self.kernel.spawn(Recorder("other"))
        self.assertRaises(AliasInUse, self.kernel.alias_set, "rec", other)

    def test_bad_alias(self):
        """When an alias is malformed, then BadSpecifier."""
        for bad in ["", "a,b", "a/b", "*"]:
            self.assertRaises(BadSpecifier, self.kernel.alias_set, bad, self.rec)

    def test_no_current_session(self):
        """When alias_set has no session and runs outside a handler, then NoCurrentSession."""
        self.assertRaises(NoCurrentSession, self.kernel.alias_set, "x")
        self.assertRaises(NoCurrentSession, self.kernel.yield_, "hit")
        self.assertRaises(NoCurrentSession, self.kernel.delay_set, "hit", 1)


class LifetimeTests(SynchronousTestCase):
    def setUp(self):
        self.kernel, self.clock = make_kernel()
        self.log: List[Any] = []

    def spawn(self, **states):
        base = {"_start": lambda e: self.log.append(("start", e.args)), "_stop": lambda e: self.log.append("stop")}
        base.update(states)
        return self.kernel.spawn(inline_states=base, args=(1, 2))

    def test_start_args_and_stop_without_references(self):
        """When a session has no alias, event or timer after _start, then it stops at once."""
        s = self.spawn()
        self.assertEqual(self.log, [("start", (1, 2)), "stop"])
        self.assertTrue(s.stopped)
        self.assertEqual(self.kernel.sessions, [])

    def test_alias_keeps_alive(self):
        """When the last alias is removed, then the session stops."""
        s = self.spawn(_start=lambda e: e.kernel.alias_set("a"))
        self.assertFalse(s.stopped)
        self.kernel.alias_remove("a", s)
        self.assertTrue(s.stopped)
        self.assertEqual(self.log, ["stop"])

    def test_pending_events_keep_alive(self):
        """When a session yields to itself, then it lives until its events ran."""
        s = self.spawn(_start=lambda e: e.kernel.yield_("next", 3), next=lambda e: self.log.append(e.args))
        self.assertFalse(s.stopped)
        self.kernel.flush()
        self.assertEqual(self.log, [(3,), "stop"])

    def test_timer_keeps_alive(self):
        """When a session has a timer, then it lives until the timer's event ran."""
        s = self.spawn(_start=lambda e: e.kernel.delay_set("tick", 5, "t"), tick=lambda e: self.log.append(e.args))
        self.clock.advance(4)
        self.assertFalse(s.stopped)
        self.clock.advance(1)
        self.clock.advance(0)
        self.assertEqual(self.log, [("t",), "stop"])

    def test_postback_keeps_alive(self):
        """When a postback exists, then the session lives; calling it posts (creation args, call args)."""
        backs = []
        s = self.spawn(_start=lambda e: backs.append(e.session.postback("got", "made")),
                       got=lambda e: self.log.append(e.args))
        self.assertFalse(s.stopped)
        backs[0]("called", 1)
        self.kernel.flush()
        self.assertEqual(self.log, [(("made",), ("called", 1))])
        del backs[:]
        gc.collect()
        self.clock.advance(0)
        self.assertTrue(s.stopped)

    def test_callback_synchronous(self):
        """When a callback is called, then the handler runs at once and its value is returned."""
        backs = []
        self.spawn(_start=lambda e: backs.append(e.session.callback("got", "made")),
                   got=lambda e: ("value", e.args))
        self.assertEqual(backs[0]("c"), ("value", (("made",), ("c",))))

    def test_stop_session(self):
        """When stop_session is called, then _stop runs, aliases and timers go, queued events are logged."""
        s = self.spawn(_start=lambda e: (e.kernel.alias_set("a"), e.kernel.delay_set("t", 5)))
        self.kernel.post("a", "t")
        self.kernel.stop_session(s)
        self.assertEqual(self.log, ["stop"])
        self.assertIsNone(self.kernel.resolve("a"))
        self.assertEqual(self.clock.getDelayedCalls()[0].active(), True)  # the drain call only
        self.kernel.flush()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class TimerTests(SynchronousTestCase):
    def setUp(self):
        self.kernel, self.clock = make_kernel()
        self.fired: List[Any] = []
        self.session = self.kernel.spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("t"),
            "tick": lambda e: self.fired.append((e.args, self.clock.seconds())),
        })

    def run_for(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.kernel.flush()

    def test_delay_set(self):
        """When delay_set names a local session by specifier, then the state runs after the delay with args."""
        self.kernel.delay_set("poe://testbox/t/tick", 2, "a")
        self.run_for(1.9)
        self.assertEqual(self.fired, [])
        self.run_for(0.1)
        self.assertEqual(self.fired, [(("a",), 2.0)])

    def test_alarm_set(self):
        """When alarm_set is given an absolute time, then it fires then."""
        self.clock.advance(10)
        self.kernel.alarm_set(["testbox", "t", "tick"], 15)
        self.run_for(5)
        self.assertEqual(self.fired, [((), 15.0)])

    def test_remove_and_adjust(self):
        """When an alarm is removed or adjusted, then it does not fire, or fires at the new time."""
        a = self.kernel.delay_set("poe://testbox/t/tick", 2, "removed")
        b = self.kernel.delay_set("poe://testbox/t/tick", 2, "adjusted")
        self.assertEqual(self.kernel.alarm_remove(a), ("tick", 2.0, ("removed",)))
        self.assertIsNone(self.kernel.alarm_remove(a))
        self.assertTrue(self.kernel.delay_adjust(b, 7))
        self.run_for(6)
        self.assertEqual(self.fired, [])
        self.run_for(1)
        self.assertEqual(self.fired, [(("adjusted",), 7.0)])
        self.assertFalse(self.kernel.delay_adjust(b, 1))

    def test_remove_all(self):
        """When alarm_remove_all runs, then none of the session's alarms fire."""
        for i in range(3):
            self.kernel.delay_set("poe://testbox/t/tick", 1, i)
        self.assertEqual(self.kernel.alarm_remove_all(self.session), 3)
        self.run_for(2)
        self.assertEqual(self.fired, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_remote_timer_refused(self):
        """When a timer names another kernel, then BadSpecifier."""
        self.assertRaises(BadSpecifier, self.kernel.delay_set, "poe://otherbox/t/tick", 1)


class SessionClassTests(SynchronousTestCase):
    def test_states_from_methods(self):
        """When subclassing, then public methods and the reserved ones are states, private ones not."""
        self.assertEqual(Recorder().states, frozenset({"_start", "hit"}))

    def test_inline_states_validated(self):
        """When an inline state name is malformed or its handler not callable, then it is refused."""
        self.assertRaises(BadSpecifier, Session, inline_states={"a/b": lambda e: None})
        self.assertRaises(TypeError, Session, inline_states={"a": 3})

    def test_spawn_twice(self):
        """When a running session is spawned again, then ValueError."""
        k, _ = make_kernel()
        s = k.spawn(Recorder())
        self.assertRaises(ValueError, k.spawn, s)


class OneKernelCase(SynchronousTestCase):
    """
    A base for the classes below: one kernel on a clock, nothing spawned.
    """

    def setUp(self):
        self.kernel, self.clock = make_kernel()


class DeferredCallResultTests(OneKernelCase):
    """
    A Lightspeed-form call whose handler answers later.
    """

    def test_call_rsvp_deferred_value_returned(self):
        """When a Lightspeed-form call's handler returns a Deferred, then the caller's Deferred fires with the value too."""
        d: Deferred[Any] = Deferred()
        self.kernel.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("s"), "slow": lambda e: d,
                                         "reply": lambda e: None})
        result = self.kernel.call("poe://testbox/s/slow", "poe://testbox/s/reply")
        d.callback(5)
        self.assertEqual(self.successResultOf(result), 5)


class SessionReferenceTests(OneKernelCase):
    """
    Destinations given as a session object or a session id.
    """

    def test_session_object_and_id(self):
        """When posting or requesting with a session object or id, then exactly that session gets it."""
        first = self.kernel.spawn(Recorder("first"))
        other = self.kernel.spawn(Recorder("other"))
        self.kernel.post(first, "hit", 1)
        self.kernel.post(first.id, "hit", 2)
        self.kernel.flush()
        self.assertEqual([e.args for e in first.events], [(1,), (2,)])
        self.assertEqual(other.events, [])
        self.assertEqual(self.successResultOf(self.kernel.request(first, "hit", 3)), ("hit", (3,)))


class LastAliasInCallTests(OneKernelCase):
    """
    A session that drops its last alias while it is being called.
    """

    def test_alias_removed_during_call_stops(self):
        """When a session drops its last alias inside a called handler, then it stops after the call."""
        stopped = []
        s = self.kernel.spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("a"),
            "leave": lambda e: e.kernel.alias_remove("a"),
            "_stop": lambda e: stopped.append(True),
        })
        self.kernel.call("a", "leave")
        self.assertTrue(s.stopped)
        self.assertEqual(stopped, [True])


class AliasTargetTests(OneKernelCase):
    """
    alias_set gives aliases only to live sessions of this kernel.
    """

    def test_alias_set_foreign_session(self):
        """When alias_set names a session of another kernel or a stopped one, then NoSuchSession."""
        other, _ = make_kernel("other")
        foreign = other.spawn(Recorder())
        self.assertRaises(NoSuchSession, self.kernel.alias_set, "x", foreign)
        gone = self.kernel.spawn(inline_states={})
        self.assertTrue(gone.stopped)
        self.assertRaises(NoSuchSession, self.kernel.alias_set, "y", gone)


class SpawnArgumentTests(OneKernelCase):
    """
    Arguments given to spawn reach a session object's _start.
    """

    def test_spawn_object_with_args(self):
        """When a session object is spawned with args, then _start sees them."""
        seen = []
        self.kernel.spawn(Session(inline_states={"_start": lambda e: seen.append(e.args)}), args=(1, 2))
        self.assertEqual(seen, [(1, 2)])


class AsyncHandlerTests(SynchronousTestCase):
    def test_current_session_after_await(self):
        """When an async handler posts, yields and sets an alias after an await, then it acts as its own session."""
        kernel, clock = make_kernel()
        gate: Deferred[Any] = Deferred()
        seen = []

        async def work(event):
            await gate
            event.kernel.alias_set("later")
            event.kernel.yield_("next", 1)
            event.kernel.post("rec", "hit", 2)
            return "done"

        target = kernel.spawn(Recorder())
        session = kernel.spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("worker"),
            "work": work,
            "next": lambda e: seen.append((e.args, e.sender)),
        })
        kernel.post("worker", "work")
        kernel.flush()
        gate.callback(None)
        kernel.flush()
        self.assertEqual(kernel.alias_list(session), ["worker", "later"])
        self.assertEqual(seen, [((1,), session)])
        self.assertIs(target.events[0].sender, session)
        self.assertIsNone(kernel.local.current)

    def test_async_failure_after_await_logged(self):
        """When an async handler raises after an await, then the failure is logged with its session."""
        kernel, clock = make_kernel()
        gate: Deferred[Any] = Deferred()

        async def work(event):
            await gate
            raise KeyError("late")

        kernel.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("w"), "work": work})
        kernel.post("w", "work")
        kernel.flush()
        gate.callback(None)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_awaited_failure_reaches_the_coroutine(self):
        """When an awaited Deferred fails, then the coroutine can catch it."""
        kernel, clock = make_kernel()
        gate: Deferred[Any] = Deferred()
        caught = []

        async def work(event):
            try:
                await gate
            except ValueError as e:
                caught.append(str(e))
            return len(caught)

        kernel.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("w"), "work": work})
        d = kernel.request("w", "work")
        gate.errback(ValueError("nope"))
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(caught, ["nope"])
