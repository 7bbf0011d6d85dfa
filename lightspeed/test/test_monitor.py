# -*- test-case-name: lightspeed.test.test_monitor -*-
"""
The monitor: local and remote watchers of network events, their hooks,
and the guarantees that watchers cannot loop and registrations do not go
stale.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from lightspeed import BadSpecifier, NoRoute
from lightspeed.errors import RemoteError
from lightspeed.monitor import MONITOR_STATE
from lightspeed.test.test_introspection import Recorder
from lightspeed.test.test_mesh import Sink, build
from lightspeed.testing import MemoryMesh


class Events:
    """
    A callable target that records (topic, info).
    """

    def __init__(self) -> None:
        self.seen: List[Tuple[str, dict]] = []

    def __call__(self, topic: str, info: dict) -> None:
        self.seen.append((topic, info))

    def topics(self) -> List[str]:
        return [topic for topic, _ in self.seen]

    def of(self, topic: str) -> List[dict]:
        return [info for t, info in self.seen if t == topic]


class LocalMonitorTests(SynchronousTestCase):
    def test_links_and_kernels(self):
        """When links come up and go down, then link_up, kernel_up, kernel_down and link_down are reported with their details."""
        mesh = MemoryMesh()
        a, b, c = mesh.kernel("a"), mesh.kernel("b"), mesh.kernel("c")
        events = Events()
        a.monitor_register("*", events)
        ab = mesh.link(a, b)
        bc = mesh.link(b, c)
        mesh.settle()
        self.assertEqual([i["peer"] for i in events.of("link_up")], ["b"])
        self.assertEqual(sorted(i["peer"] for i in events.of("kernel_up")), ["b", "c"])
        self.assertEqual({i["peer"]: i["incarnation"] for i in events.of("kernel_up")},
                         {"b": b.network.incarnation, "c": c.network.incarnation})
        self.assertTrue(all(i["kernel"] == "a" for _, i in events.seen))
        bc.close()
        mesh.settle()
        self.assertEqual([(i["peer"], i["incarnation"]) for i in events.of("kernel_down")],
                         [("c", c.network.incarnation)])
        ab.client.close("shutdown", "bye now")
        mesh.settle()
        (down,) = events.of("link_down")
        self.assertEqual((down["peer"], down["code"]), ("b", "shutdown"))
        self.assertIn("bye now", down["reason"])

    def test_relink_does_not_flap(self):
        """When a lost kernel links again (its database sync briefly says it has no links), then it is reported up once."""
        mesh, k, links = build("abc", "ab bc")
        events = Events()
        k["a"].monitor_register(["kernel_up", "kernel_down"], events)
        links["bc"].close()
        mesh.settle()
        mesh.link(k["b"], k["c"])
        mesh.settle()
        self.assertEqual([(t, i["peer"]) for t, i in events.seen], [("kernel_down", "c"), ("kernel_up", "c")])

    def test_restart_is_down_and_up(self):
        """When a kernel comes back with a new incarnation, then it is reported as leaving and joining."""
        mesh = MemoryMesh()
        a, b = mesh.kernel("a"), mesh.kernel("b", incarnation=1)
        events = Events()
        a.monitor_register(["kernel_up", "kernel_down"], events)
        link = mesh.link(a, b)
        mesh.settle()
        link.close()
        b2 = mesh.kernel("b", incarnation=2)
        mesh.link(a, b2)
        mesh.settle()
        self.assertEqual(events.topics(), ["kernel_up", "kernel_down", "kernel_up"])
        self.assertEqual([i["incarnation"] for _, i in events.seen], [1, 1, 2])

    def test_sent_arrived_undeliverable(self):
        """When a posts to c, then a reports 'sent', c reports 'arrived', and a lost message is 'undeliverable'."""
        mesh, k, _ = build("abc", "ab bc")
        log: List[Any] = []
        k["c"].spawn(Sink("s", log))
        at_a, at_c = Events(), Events()
        k["a"].monitor_register(["sent", "undeliverable"], at_a)
        k["c"].monitor_register(["arrived", "undeliverable"], at_c)
        k["a"].post("poe://c/s/hit", 1)
        k["a"].post("poe://c/nobody/hit", 2)
        k["a"].post("poe://zz/s/hit", 3)
        mesh.settle()
        self.assertEqual([(i["destination"], i["kind"]) for i in at_a.of("sent")],
                         [("poe://c/s/hit", "post"), ("poe://c/nobody/hit", "post")])
        self.assertEqual([i["destination"] for i in at_a.of("undeliverable")], ["poe://zz/s/hit"])
        arrived = at_c.of("arrived")
        self.assertEqual([(i["origin"], i["destination"], i["kind"]) for i in arrived],
                         [("a", "poe://c/s/hit", "post"), ("a", "poe://c/nobody/hit", "post")])
        (lost,) = at_c.of("undeliverable")
        self.assertEqual((lost["destination"], lost["origin"]), ("poe://c/nobody/hit", "a"))
        self.assertIn("no session 'nobody'", lost["reason"])

    def test_session_target(self):
        """When the target is a session's state, then events are posted there with the kernel as sender and caller_state _monitor."""
        mesh, k, _ = build("ab", "")
        seen: List[Any] = []
        k["a"].spawn(inline_states={
            "_start": lambda e: (e.kernel.alias_set("w"), e.kernel.monitor_register("link_up", "on_event")),
            "on_event": lambda e: seen.append((e.args, e.sender, e.caller_state)),
        })
        mesh.settle()
        mesh.link(k["a"], k["b"])
        mesh.settle()
        ((args, sender, caller_state),) = seen
        self.assertEqual(args[0], "link_up")
        self.assertEqual(args[1]["peer"], "b")
        self.assertIs(sender, k["a"])
        self.assertEqual(caller_state, MONITOR_STATE)

    def test_unregister(self):
        """When a target is unregistered, then it hears nothing more, and unregistering twice says so."""
        mesh, k, _ = build("abc", "ab")
        events = Events()
        k["a"].monitor_register("kernel_up", events)
        self.assertIs(self.successResultOf(k["a"].monitor_unregister("kernel_up", events)), True)
        self.assertIs(self.successResultOf(k["a"].monitor_unregister("kernel_up", events)), False)
        mesh.link(k["b"], k["c"])
        mesh.settle()
        self.assertEqual(events.seen, [])

    def test_bad_arguments(self):
        """When a topic is unknown or a target names no state, then a clear error at once."""
        k = build("a", "")[1]["a"]
        self.failureResultOf(k.monitor_register("nonsense", Events()), ValueError)
        self.failureResultOf(k.monitor_register([], Events()), ValueError)
        self.failureResultOf(k.monitor_register("sent", "poe://a/s/"), BadSpecifier)
        self.failureResultOf(k.monitor_register("sent", 42), BadSpecifier)

    def test_failing_target_logged(self):
        """When a callable target raises, then the error is logged and other targets still hear the event."""
        mesh, k, _ = build("ab", "")
        events = Events()

        def broken(topic, info):
            raise RuntimeError("watcher broke")

        k["a"].monitor_register("link_up", broken)
        k["a"].monitor_register("link_up", events)
        mesh.link(k["a"], k["b"])
        mesh.settle()
        self.assertEqual(events.topics(), ["link_up"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class RemoteMonitorTests(SynchronousTestCase):
    def setUp(self):
        self.mesh, self.k, self.links = build("abc", "ab bc")
        self.log: List[Any] = []
        self.k["c"].spawn(Sink("s", self.log))
        self.me = Recorder(self.k["a"], "me")
        self.mesh.settle()

    def register(self, topics: Any, target: str = "poe://a/me/got", kernel: str = "c") -> Any:
        d = self.k["a"].monitor_register(topics, target, kernel=kernel)
        self.mesh.settle()
        return d

    def test_watch_other_kernel(self):
        """When a registers at c for 'arrived', then b's post to c is reported to a's session."""
        self.assertIs(self.successResultOf(self.register("arrived")), True)
        self.k["b"].post("poe://c/s/hit", "x")
        self.mesh.settle()
        ((topic, info),) = self.me.got
        self.assertEqual((topic, info["kernel"], info["origin"]), ("arrived", "c", "b"))

    def test_state_name_target(self):
        """When a session registers a state name at another kernel, then its own poe:// address is registered."""
        seen: List[Any] = []
        self.k["a"].spawn(inline_states={
            "_start": lambda e: (e.kernel.alias_set("w"), e.kernel.monitor_register("arrived", "ev", kernel="c")),
            "ev": lambda e: seen.append(e.args[0]),
        })
        self.mesh.settle()
        self.assertEqual(list(self.k["a"].monitor.remote["c"]), ["poe://a/w/ev"])
        self.k["b"].post("poe://c/s/hit", "x")
        self.mesh.settle()
        self.assertEqual(seen, ["arrived"])

    def test_no_loops(self):
        """When a and c watch each other's sent and arrived events, then one post makes a finite number of events."""
        self.register(["sent", "arrived"])
        watcher = Recorder(self.k["c"], "cw")
        self.k["c"].monitor_register(["sent", "arrived"], "poe://c/cw/got", kernel="a")
        self.mesh.settle()
        self.assertEqual((self.me.got, watcher.got), ([], []))  # registrations are not reported
        self.k["a"].post("poe://c/s/hit", 1)
        self.mesh.settle()
        self.assertEqual([t for t, _ in self.me.got], ["arrived"])
        self.assertEqual([t for t, _ in watcher.got], ["sent"])

    def test_refused(self):
        """When c's monitor_register hook refuses, then the Deferred fails with the reason and nothing is kept."""
        seen: List[Any] = []
        self.k["c"].auth_register("monitor_register", "*", lambda r: seen.append(r) or "not you")
        error = self.failureResultOf(self.register("sent"), RemoteError).value
        self.assertEqual((error.remote_type, error.remote_message), ("Refused", "not you"))
        self.assertEqual(self.k["a"].monitor.remote.get("c"), {})
        (request,) = seen
        self.assertEqual((request.kind, request.rsvp, request.args), ("monitor_register", "poe://a/me/got", (["sent"],)))
        self.assertEqual(request.sender.remote_kernel, "a")
        self.assertFalse(self.k["c"].monitor.watching("sent"))

    def test_unregister_remote(self):
        """When a unregisters at c, then the events stop; c's monitor_unregister hook is asked."""
        self.register("arrived")
        asked: List[Any] = []
        self.k["c"].auth_register("monitor_unregister", "*", lambda r: asked.append(r.kind) or True)
        d = self.k["a"].monitor_unregister("arrived", "poe://a/me/got", kernel="c")
        self.mesh.settle()
        self.assertIs(self.successResultOf(d), True)
        self.assertEqual(asked, ["monitor_unregister"])
        self.k["b"].post("poe://c/s/hit", "x")
        self.mesh.settle()
        self.assertEqual(self.me.got, [])
        self.assertEqual(self.k["a"].monitor.remote["c"], {})

    def test_target_must_be_on_registering_kernel(self):
        """When a registration names a target on a third kernel, then it is refused (no monitor spam by proxy)."""
        d = self.k["a"].network.control("c", "monitor_register", [], (["sent"], "poe://b/x/y"), self.k["a"], None,
                                        (None, None), 5)
        self.mesh.settle()
        self.assertEqual(self.failureResultOf(d, RemoteError).value.remote_type, "BadSpecifier")
        self.failureResultOf(self.k["a"].monitor_register("sent", "poe://b/x/y", kernel="c"), BadSpecifier)

    def test_survives_lost_link(self):
        """When c becomes unreachable and comes back, then c dropped a's registration meanwhile and a sends it again."""
        self.register("arrived")
        self.links["bc"].close()
        self.mesh.settle()
        self.assertFalse(self.k["c"].monitor.watching("arrived"))
        self.mesh.link(self.k["b"], self.k["c"])
        self.mesh.settle()
        self.assertTrue(self.k["c"].monitor.watching("arrived"))
        self.k["b"].post("poe://c/s/hit", "again")
        self.mesh.settle()
        self.assertEqual([t for t, _ in self.me.got], ["arrived"])

    def test_unreachable_now_kept(self):
        """When the kernel is not reachable yet, then the Deferred fails with NoRoute but the registration is sent once it is."""
        mesh = MemoryMesh()
        a, c = mesh.kernel("a"), mesh.kernel("c")
        Recorder(a, "me")
        mesh.settle()
        self.failureResultOf(a.monitor_register("arrived", "poe://a/me/got", kernel="c"), NoRoute)
        mesh.link(a, c)
        mesh.settle()
        self.assertTrue(c.monitor.watching("arrived"))

    def test_gone_target_unregisters(self):
        """When the watching session is gone, then the first event makes a unregister it at c instead of failing for ever."""
        self.register("arrived")
        self.k["a"].alias_remove("me", self.me.session)
        self.mesh.settle()
        self.k["b"].post("poe://c/s/hit", "x")
        self.mesh.settle()
        self.assertFalse(self.k["c"].monitor.watching("arrived"))
        self.assertEqual(self.k["a"].monitor.remote["c"], {})

    def test_post_hooks_still_apply(self):
        """When a's post hook refuses messages from c, then monitor events from c are not delivered either."""
        self.register("arrived")
        self.k["a"].auth_register("post", "*", lambda r: r.sender.remote_kernel != "c")
        self.k["b"].post("poe://c/s/hit", "x")
        self.mesh.settle()
        self.assertEqual(self.me.got, [])


class ControlFuzzTests(SynchronousTestCase):
    """
    CONTROL operations with generated arguments: every one is answered,
    nothing is logged as a crash, and the link stays up.
    """

    def test_generated_arguments(self):
        """When another kernel sends CONTROL operations with arbitrary plain arguments, then each gets an answer and the link stays up."""
        from lightspeed.test.optional import HAVE_HYPOTHESIS, MISSING, given, settings, st

        if not HAVE_HYPOTHESIS:
            raise SkipTest(MISSING)

        mesh, k, _ = build("ab", "ab")
        k["b"].spawn(Sink("s", []))
        mesh.settle()
        plain = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=4),
                             lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                          max_size=3),
                             max_leaves=8)
        answers: List[Any] = []

        @settings(max_examples=120, deadline=None)
        @given(op=st.sampled_from(["sessions", "states", "monitor_register", "monitor_unregister", "bogus", ""]),
               sessions=st.one_of(st.just("*"), st.lists(st.text(max_size=6), max_size=3)),
               args=st.lists(plain, max_size=3))
        def check(op, sessions, args):
            d = k["a"].network.control("b", op, sessions, tuple(args), k["a"], None, (None, None), 5)
            d.addBoth(answers.append)
            mesh.settle()
            self.assertEqual(len(answers), 1)
            answers.clear()
            self.assertEqual([link.peer.name for link in k["b"].network.links()], ["a"])

        check()
        self.assertEqual(self.flushLoggedErrors(), [])


class LimitTests(SynchronousTestCase):
    def test_targets_per_kernel_bounded(self):
        """When another kernel registers more targets than the limit, then the extra ones are refused and memory stays bounded."""
        from lightspeed.monitor import MAX_TARGETS_PER_KERNEL

        mesh, k, _ = build("ab", "ab")
        results: List[Any] = []
        for i in range(MAX_TARGETS_PER_KERNEL + 3):
            d = k["a"].network.control("b", "monitor_register", [], (["sent"], f"poe://a/s{i}/x"), k["a"], None,
                                       (None, None), 5)
            d.addBoth(results.append)
        mesh.settle()
        self.assertEqual(results[:MAX_TARGETS_PER_KERNEL], [True] * MAX_TARGETS_PER_KERNEL)
        refused = results[MAX_TARGETS_PER_KERNEL:]
        self.assertEqual([(r.type, r.value.remote_type) for r in refused], [(RemoteError, "Refused")] * 3)
        self.assertEqual(len(k["b"].monitor._by_origin["a"]), MAX_TARGETS_PER_KERNEL)
        # Registering an existing target again is still fine.
        d = k["a"].network.control("b", "monitor_register", [], (["arrived"], "poe://a/s0/x"), k["a"], None,
                                   (None, None), 5)
        mesh.settle()
        self.assertIs(self.successResultOf(d), True)


class _SameMeshTests(SynchronousTestCase):
    """
    The mesh of :obj:`RemoteMonitorTests`, for the classes below.
    """

    mesh: MemoryMesh
    k: Dict[str, Any]
    links: Dict[str, Any]
    log: List[Any]
    me: Recorder

    setUp = RemoteMonitorTests.setUp


class MonitorEventDeliveryTests(_SameMeshTests):
    """
    Monitor events between kernels: what counts as one, and the hooks
    they pass (same mesh as :obj:`RemoteMonitorTests`).
    """

    def test_marked_post_is_not_hidden(self):
        """When a kernel marks an ordinary post as a monitor event, then it is still reported as arrived and nothing is unregistered."""
        from lightspeed.message import POST
        from lightspeed.testing import forge
        from lightspeed.wire.codec import dumps

        events = Events()
        self.k["c"].monitor_register("arrived", events)
        self.links["bc"].client.send_body(forge("b", [self.k[n] for n in ("c",)], hops=5, payload=dumps(
            [POST, ["s"], "hit", [1], None, MONITOR_STATE, None, None])))
        self.mesh.settle()  # the next forgery follows on in b's stream
        self.links["bc"].client.send_body(forge("b", [self.k[n] for n in ("c",)], hops=5, payload=dumps(
            [POST, ["gone"], "hit", [1], None, MONITOR_STATE, None, None])))
        self.mesh.settle()
        self.assertEqual([i["destination"] for i in events.of("arrived")], ["poe://c/s/hit", "poe://c/gone/hit"])
        self.assertEqual(len(self.log), 1)
        self.assertEqual(self.k["c"].network.requests.pending, {})  # no unregister sent anywhere

    def test_refused_event_kept_quiet(self):
        """When a's post hook refuses a monitor event, then it is dropped quietly and the registration stays."""
        self.k["a"].monitor_register("arrived", "poe://a/me/got", kernel="c")
        self.mesh.settle()
        undeliverable = Events()
        self.k["a"].monitor_register("undeliverable", undeliverable)
        self.k["a"].auth_register("post", "me", lambda r: False)
        self.k["b"].post("poe://c/s/hit", 1)
        self.mesh.settle()
        self.assertEqual((self.me.got, undeliverable.seen), ([], []))
        self.assertTrue(self.k["c"].monitor.watching("arrived"))


class MonitorTargetTests(_SameMeshTests):
    """
    Which targets a registration may name (same mesh as :obj:`RemoteMonitorTests`).
    """

    def test_wildcard_target_refused(self):
        """When a target names '*' sessions or kernels, then it is refused at once."""
        self.failureResultOf(self.k["a"].monitor_register("sent", "poe://a/*/got"), BadSpecifier)
        self.failureResultOf(self.k["a"].monitor_register("sent", "poe://*/me/got"), BadSpecifier)
        self.failureResultOf(self.k["a"].monitor_register("sent", "poe://a/*/got", kernel="c"), BadSpecifier)


class RegistrationTopicsTests(_SameMeshTests):
    """
    Topics registered for one target at another kernel (same mesh as
    :obj:`RemoteMonitorTests`).
    """

    def test_topics_add_up(self):
        """When a target is registered at another kernel twice with different topics, then both survive a lost link."""
        self.k["a"].monitor_register("arrived", "poe://a/me/got", kernel="c")
        self.k["a"].monitor_register("undeliverable", "poe://a/me/got", kernel="c")
        self.mesh.settle()
        self.assertEqual(self.k["a"].monitor.remote["c"]["poe://a/me/got"], ("arrived", "undeliverable"))
        self.links["bc"].close()
        self.mesh.settle()
        self.mesh.link(self.k["b"], self.k["c"])
        self.mesh.settle()
        self.assertTrue(self.k["c"].monitor.watching("arrived"))
        self.assertTrue(self.k["c"].monitor.watching("undeliverable"))


class SentEventKindTests(_SameMeshTests):
    """
    The kind that 'sent' events report (same mesh as :obj:`RemoteMonitorTests`).
    """

    def test_callreply_sent_kind(self):
        """When a call's reply leaves for another kernel, then 'sent' says callreply."""
        events = Events()
        self.k["c"].monitor_register("sent", events)
        self.k["a"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("asker"),
                                         "go": lambda e: e.kernel.call("poe://c/s/ask", "poe://a/asker/answer"),
                                         "answer": lambda e: None})
        self.mesh.settle()
        self.k["a"].post("asker", "go")
        self.mesh.settle()
        self.assertEqual([i["kind"] for i in events.of("sent")], ["callreply"])


class RefusedAdditionTests(SynchronousTestCase):
    def test_refused_topics_keep_earlier_registration(self):
        """When adding topics to a registration is refused, then the earlier accepted topics stay remembered."""
        mesh, k, _ = build("ac", "ac")
        Recorder(k["a"], "me")
        mesh.settle()
        k["a"].monitor_register("arrived", "poe://a/me/got", kernel="c")
        mesh.settle()
        k["c"].auth_register("monitor_register", "*", lambda r: "arrived" in r.args[0] and len(r.args[0]) == 1)
        d = k["a"].monitor_register("sent", "poe://a/me/got", kernel="c")
        mesh.settle()
        self.assertEqual(self.failureResultOf(d, RemoteError).value.remote_type, "Refused")
        self.assertEqual(k["a"].monitor.remote["c"]["poe://a/me/got"], ("arrived",))


class RestartTests(SynchronousTestCase):
    """
    Issue 8: a kernel that restarts under the same name is reported by an
    observer two hops away as exactly one ``kernel_down`` of the old
    incarnation and one ``kernel_up`` of the new, whatever order the
    adverts arrive in, and a request sent from that ``kernel_up`` succeeds.
    """

    def start(self, names: str, edges: str) -> None:
        """
        Kernels ``names`` linked by ``edges`` (see :obj:`build`); a watcher on
        'a' records ``(topic, peer, incarnation)`` for kernel events about
        'c' and, on every ``kernel_up`` of 'c', asks c's session 's' for
        its kernel's incarnation.
        """
        self.mesh, self.k, self.links = build(names, edges)
        self.old = self.k["c"]
        self.old_inc = self.old.network.incarnation
        self.seen: List[Tuple[str, str, Any]] = []
        self.answers: List[Any] = []
        self.answering(self.old)

        def watch(topic: str, info: dict) -> None:
            if info["peer"] != "c":
                return
            self.seen.append((topic, info["peer"], info.get("incarnation")))
            if topic == "kernel_up":
                self.k["a"].request("poe://c/s/ask").addBoth(self.answers.append)

        self.k["a"].monitor_register(["kernel_up", "kernel_down"], watch)
        self.mesh.settle()
        self.assertEqual(self.seen, [])

    def answering(self, kernel: Any) -> None:
        kernel.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("s"),
                                    "ask": lambda e: e.kernel.network.incarnation})

    def new_c(self) -> Any:
        """
        The restarted 'c': a new kernel object, larger incarnation, with
        the same session.
        """
        self.new = self.mesh.kernel("c", incarnation=self.old_inc + 1)
        self.new_inc = self.new.network.incarnation
        self.answering(self.new)
        return self.new

    def assert_restarted(self) -> None:
        """
        Exactly kernel_down(old) then kernel_up(new), and the request sent
        from kernel_up reached the new c.
        """
        self.mesh.settle()
        self.assertEqual(self.seen, [("kernel_down", "c", self.old_inc), ("kernel_up", "c", self.new_inc)])
        self.assertEqual(self.answers, [self.new_inc])

    def test_new_kernel_connects_to_neighbour(self):
        """When c shuts down and its new start connects to b, then a sees down(old) then up(new)."""
        self.start("abc", "ab bc")
        self.old.shutdown()
        self.mesh.settle()
        self.assertEqual(self.seen, [("kernel_down", "c", self.old_inc)])
        self.mesh.link(self.new_c(), self.k["b"])
        self.assert_restarted()

    def test_neighbour_connects_to_new_kernel(self):
        """When b connects to c's new start (b's advert reaches a before c's new one), then a does not report the old c up again."""
        self.start("abc", "ab bc")
        self.old.shutdown()
        self.mesh.settle()
        self.mesh.link(self.k["b"], self.new_c())
        self.assert_restarted()

    def test_new_link_before_observer_checks(self):
        """When b's adverts without c and with the new c reach a in one burst, then a still reports down(old) then up(new) once."""
        self.start("abc", "ab bc")
        self.old.shutdown()
        self.mesh.link(self.k["b"], self.new_c())
        self.assert_restarted()

    def test_ring(self):
        """When c, two hops away on both sides of a ring, restarts and both neighbours connect to it, then down(old) then up(new)."""
        self.start("abcd", "ab bc cd da")
        self.old.shutdown()
        self.mesh.settle()
        new = self.new_c()
        self.mesh.link(self.k["b"], new)
        self.mesh.settle()
        self.mesh.link(self.k["d"], new)
        self.assert_restarted()

    def test_ring_both_at_once(self):
        """When both neighbours in a ring link to c's new start in the same turn, then down(old) then up(new)."""
        self.start("abcd", "ab bc cd da")
        self.old.shutdown()
        self.mesh.settle()
        new = self.new_c()
        self.mesh.link(self.k["b"], new)
        self.mesh.link(new, self.k["d"])
        self.mesh.settle()
        self.assert_restarted()

    def test_new_start_before_loss_noticed(self):
        """When the new c connects while b still holds the dead c's link (no BYE), then it is refused, and once the loss is noticed and it retries, down(old) then up(new)."""
        self.start("abc", "ab bc")
        first = self.mesh.link(self.new_c(), self.k["b"])
        self.mesh.settle()
        self.assertIn("already used", str(self.failureResultOf(first.client.when_ready()).value))
        self.assertEqual(self.seen, [])
        self.links["bc"].close()  # the old c's connection is lost, as when its process died
        self.mesh.settle()
        self.assertEqual(self.seen, [("kernel_down", "c", self.old_inc)])
        self.mesh.link(self.k["b"], self.new)  # the connect service retries
        self.assert_restarted()

    def test_loss_and_new_link_same_turn(self):
        """When the dead c's connection is lost in the same turn as the new c connects, then down(old) then up(new)."""
        self.start("abc", "ab bc")
        self.links["bc"].close()
        self.mesh.link(self.k["b"], self.new_c())
        self.assert_restarted()

    def test_outdated_advert_trusted_after_grace(self):
        """When b drops its half of c's link and links again but c never noticed (it sends no new advert), then c is reported up again after the grace period."""
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure

        from lightspeed.network import FADING_GRACE

        self.start("abc", "ab bc")
        half = self.links["bc"].client  # b's end
        half.transport.closed = True
        half.connectionLost(Failure(ConnectionLost("half-open")))
        self.mesh.settle()
        self.mesh.link(self.k["b"], self.old)
        self.mesh.settle()
        self.assertEqual(self.seen, [("kernel_down", "c", self.old_inc)])  # c's advert may be outdated
        self.assertEqual(self.k["a"].list_kernels(incarnations=True)["c"], None)
        self.mesh.advance(FADING_GRACE + 1)
        self.assertEqual(self.seen, [("kernel_down", "c", self.old_inc), ("kernel_up", "c", self.old_inc)])
        self.assertEqual(self.k["a"].list_kernels(incarnations=True)["c"], self.old_inc)
