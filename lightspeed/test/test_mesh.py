# -*- test-case-name: lightspeed.test.test_mesh -*-
"""
Remote post, call and request across in-memory meshes (:obj:`lightspeed.testing`).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from lightspeed import BadSpecifier, NoRoute, NoSuchSession, Session
from lightspeed.errors import LinkClosed, RemoteError, RequestTimeout
from lightspeed.testing import MemoryMesh


class Sink(Session):
    """
    Records every event, answers 'ask' with a value, and keeps an alias.
    """

    def __init__(self, alias: str, log: List[Any]) -> None:
        super().__init__()
        self.alias = alias
        self.log = log

    def _start(self, event):
        event.kernel.alias_set(self.alias)

    def hit(self, event):
        self.log.append((event.kernel.name, self.alias, event.args, event.sender))

    def ask(self, event):
        return {"from": event.kernel.name, "args": list(event.args)}

    def boom(self, event):
        raise ValueError("it broke")

    def slow(self, event):
        return Deferred()

    async def later(self, event):
        return "async-" + event.args[0]


def build(names: str, edges: str) -> tuple:
    """
    A mesh of kernels named by single letters and links like 'ab bc'.
    """
    mesh = MemoryMesh()
    kernels = {n: mesh.kernel(n) for n in names}
    links = {}
    for edge in edges.split():
        links[edge] = mesh.link(kernels[edge[0]], kernels[edge[1]])
    mesh.settle()
    return mesh, kernels, links


class Warnings:
    def __init__(self, case: SynchronousTestCase) -> None:
        self.events: List[dict] = []
        observer = cast(ILogObserver, self.observe)  # a callable taking an event is one
        globalLogPublisher.addObserver(observer)
        case.addCleanup(globalLogPublisher.removeObserver, observer)

    def observe(self, event: dict) -> None:
        if event.get("log_level") == LogLevel.warn:
            self.events.append(event)


class SeedExampleTests(SynchronousTestCase):
    def test_seed_ping_pong(self):
        """When the seed's two programs run on two kernels, then ping, both pongs and 'confused' arrive with the seed's fields."""
        mesh, k, _ = build("", "")
        testbox, otherbox = mesh.kernel("testbox"), mesh.kernel("otherbox")
        mesh.link(testbox, otherbox)
        mesh.settle()
        seen: Dict[str, Any] = {}

        def ping(e):
            seen["ping"] = (e.sender.id, e.arg0, e.sender.is_lightspeed, e.caller_state)
            e.kernel.post(e.sender, "pong", "wassup!")
            e.kernel.post(e.sender.id, "pong", "wazzup!")
            e.kernel.post("poe://testbox/mysession/confused", "huH!")

        otherbox.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("mysession"), "ping": ping})
        post_line = []

        def do_stuff(e):
            post_line.append(sys._getframe().f_lineno + 1)
            e.kernel.post("poe://otherbox/mysession/ping", "how are you?")

        testbox.spawn(inline_states={
            "_start": lambda e: (e.kernel.alias_set("mysession"), e.kernel.delay_set("do_stuff", 5)),
            "do_stuff": do_stuff,
            "pong": lambda e: seen.setdefault("pong", []).append((e.sender.id, e.arg0)),
            "confused": lambda e: seen.setdefault("confused", e.sender),
        })
        mesh.advance(5)
        self.assertEqual(seen["ping"], ("poe://testbox/mysession/", "how are you?", True, "do_stuff"))
        self.assertEqual(seen["pong"], [("poe://otherbox/mysession/", "wassup!"),
                                        ("poe://otherbox/mysession/", "wazzup!")])
        sender = seen["confused"]
        self.assertTrue(sender.is_lightspeed)
        self.assertEqual((sender.remote_kernel, sender.remote_session, sender.remote_state),
                         ("otherbox", "mysession", "ping"))
        # Relative to its sys.path entry: the default caller_files policy.
        self.assertEqual(sender.remote_file, os.path.join("lightspeed", "test", "test_mesh.py"))


class RemotePostTests(SynchronousTestCase):
    def setUp(self):
        self.log: List[Any] = []
        self.mesh, self.k, self.links = build("abc", "ab bc")
        for name, kernel in self.k.items():
            kernel.spawn(Sink("s", self.log))
            kernel.spawn(Sink("t", self.log))

    def deliveries(self):
        return sorted((k, s, a) for k, s, a, _ in self.log)

    def test_every_post_form(self):
        """When a remote destination is given in each seed form, then each arrives once."""
        a = self.k["a"]
        a.post("poe://b/s/hit", 1)
        a.post(["b", "s", "hit"], 2)
        a.post({"KERNEL": "b", "SESSION": "s", "STATE": "hit"}, 3)
        a.post("poe://b/s/", "hit", 4)
        a.post(["b", ["s", "t"], "hit"], 5)
        self.mesh.settle()
        self.assertEqual(self.deliveries(), [("b", "s", (i,)) for i in (1, 2, 3, 4, 5)] + [("b", "t", (5,))])

    def test_multi_kernel_includes_local(self):
        """When a post names several kernels including our own, then each gets it once, locally too."""
        self.k["a"].post("poe://a,b,c/s,t/hit", "x")
        self.mesh.settle()
        self.assertEqual(self.deliveries(), sorted((k, s, ("x",)) for k in "abc" for s in "st"))

    def test_broadcast_kernels(self):
        """When '*' names the kernels, then every other kernel gets it, not our own."""
        self.k["b"].post("poe://*/s/hit", 1)
        self.mesh.settle()
        self.assertEqual(self.deliveries(), [("a", "s", (1,)), ("c", "s", (1,))])

    def test_broadcast_everything(self):
        """When 'poe://*/*/state' is posted, then every aliased session on every other kernel gets it once."""
        self.k["a"].post("poe://*/*/hit", 1)
        self.mesh.settle()
        self.assertEqual(self.deliveries(), sorted((k, s, (1,)) for k in "bc" for s in "st"))

    def test_three_hops_and_answer(self):
        """When a post crosses a relay, then it arrives and the answer to its sender comes back."""
        back = []
        self.k["c"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("echo"),
                                         "echo": lambda e: e.kernel.post(e.sender, "got", e.arg0)})
        self.k["a"].spawn(inline_states={
            "_start": lambda e: (e.kernel.alias_set("asker"), e.kernel.post("poe://c/echo/echo", 7)),
            "got": lambda e: back.append((e.args, e.sender.id))})
        self.mesh.settle()
        self.assertEqual(back, [((7,), "poe://c/echo/")])

    def test_kernel_sender_cannot_be_answered(self):
        """When a post came from outside any session, then answering its sender raises BadSpecifier in the handler."""
        self.k["c"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("echo"),
                                         "echo": lambda e: e.kernel.post(e.sender, "got", e.arg0)})
        self.k["a"].post("poe://c/echo/echo", 8)
        self.mesh.settle()
        self.assertEqual(len(self.flushLoggedErrors(BadSpecifier)), 1)

    def test_answer_by_id_without_alias(self):
        """When the sending session has no alias, then its id names it remotely and answers reach it."""
        got = []
        self.k["c"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("echo"),
                                         "echo": lambda e: e.kernel.post(e.sender.id + "got", e.arg0)})

        def start(e):
            e.kernel.post("poe://c/echo/echo", 5)
            e.kernel.delay_set("wait", 10)

        self.k["a"].spawn(inline_states={"_start": start, "got": lambda e: got.append(e.args), "wait": lambda e: None})
        self.mesh.settle()
        self.assertEqual(got, [(5,)])

    def test_postback_from_remote_sender(self):
        """When a handler makes a postback from a remote sender, then calling it posts back across the network."""
        got = []
        self.k["c"].spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("pb"),
            "go": lambda e: e.sender.postback("got", "made")("called"),
        })
        self.k["a"].spawn(inline_states={
            "_start": lambda e: (e.kernel.alias_set("origin"), e.kernel.post("poe://c/pb/go")),
            "got": lambda e: got.append(e.args),
        })
        self.mesh.settle()
        self.assertEqual(got, [(["made"], ["called"])])

    def test_unknown_kernel_and_session_logged(self):
        """When the kernel or session is unknown, then a warning names origin and destination and nothing crashes."""
        warnings = Warnings(self)
        self.k["a"].post("poe://nowhere/s/hit")
        self.k["a"].post("poe://c/nobody/hit")
        self.mesh.settle()
        text = [str(e.get("destination", "")) + str(e.get("reason", "")) + str(e.get("origin", "")) for e in warnings.events]
        self.assertTrue(any("nowhere" in t for t in text), text)
        self.assertTrue(any("nobody" in t and "a" in t for t in text), text)

    def test_unencodable_argument(self):
        """When an argument cannot travel, then post raises EncodeError at the call site."""
        from lightspeed.errors import EncodeError

        self.assertRaises(EncodeError, self.k["a"].post, "poe://b/s/hit", object())

    def test_fail_horrendously_forms(self):
        """When the seed's 'fail horrendously' forms are used, then BadSpecifier is raised at the call site."""
        a = self.k["a"]
        self.assertRaises(BadSpecifier, a.post, "poe://b/s/")
        self.assertRaises(BadSpecifier, a.call, "poe://b/s/hit")
        self.assertRaises(BadSpecifier, a.call, "poe://b/s/", "poe://a/s/hit")
        self.assertRaises(BadSpecifier, a.post, "poe://b/s/", "poe://a/s/hit")


class RemoteCallTests(SynchronousTestCase):
    def setUp(self):
        self.log: List[Any] = []
        self.mesh, self.k, _ = build("abc", "ab bc")
        for kernel in self.k.values():
            kernel.spawn(Sink("s", self.log))
        self.replies: List[Any] = []
        self.k["a"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("r"),
                                         "reply": lambda e: self.replies.append((e.args, e.sender.id))})

    def test_call_forms(self):
        """When calling remotely in each seed form, then the value reaches the RSVP."""
        a = self.k["a"]
        a.call("poe://b/s/ask", "poe://a/r/reply", 1)
        a.call(["b", "s", "ask"], ["a", "r", "reply"], 2)
        a.call("poe://b/s/", "ask", "poe://a/r/reply", 3)
        self.mesh.settle()
        self.assertEqual(sorted(r[0][0]["args"][0] for r in self.replies), [1, 2, 3])
        self.assertEqual(self.replies[0][1], "poe://b/s/")

    def test_rsvp_on_third_kernel(self):
        """When the RSVP names a third kernel, then the value goes there."""
        got = []
        self.k["c"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("r"),
                                         "reply": lambda e: got.append(e.args)})
        self.k["a"].call("poe://b/s/ask", "poe://c/r/reply", "x")
        self.mesh.settle()
        self.assertEqual(got, [({"from": "b", "args": ["x"]},)])

    def test_call_async_handler(self):
        """When the remote handler is async def, then the reply waits for its value."""
        self.k["a"].call("poe://c/s/later", "poe://a/r/reply", "v")
        self.mesh.settle()
        self.assertEqual(self.replies[0][0], ("async-v",))


class RequestTests(SynchronousTestCase):
    def setUp(self):
        self.log: List[Any] = []
        self.mesh, self.k, self.links = build("abc", "ab bc")
        for kernel in self.k.values():
            kernel.spawn(Sink("s", self.log))

    def test_result(self):
        """When a remote state answers, then request() fires with its value, across a relay too."""
        d = self.k["a"].request("poe://c/s/ask", 1, 2)
        self.mesh.settle()
        self.assertEqual(self.successResultOf(d), {"from": "c", "args": [1, 2]})
        d = self.k["a"].request("poe://c/s/later", "z")
        self.mesh.settle()
        self.assertEqual(self.successResultOf(d), "async-z")

    def test_remote_exception(self):
        """When the remote handler raises, then request() fails with RemoteError naming type and message."""
        d = self.k["a"].request("poe://b/s/boom")
        self.mesh.settle()
        error = self.failureResultOf(d, RemoteError).value
        self.assertEqual((error.remote_type, error.remote_message), ("ValueError", "it broke"))

    def test_no_such_session(self):
        """When the session does not exist remotely, then request() fails with NoSuchSession."""
        d = self.k["a"].request("poe://b/nobody/ask")
        self.mesh.settle()
        self.failureResultOf(d, NoSuchSession)

    def test_no_such_kernel(self):
        """When the kernel is unknown, then request() fails with NoRoute at once."""
        self.failureResultOf(self.k["a"].request("poe://zz/s/ask"), NoRoute)

    def test_timeout(self):
        """When no answer comes before the deadline, then request() fails with RequestTimeout."""
        d = self.k["a"].request("poe://b/s/slow", timeout=3)
        self.mesh.advance(2.9)
        self.assertNoResult(d)
        self.mesh.advance(0.1)
        self.failureResultOf(d, RequestTimeout)

    def test_unreachable_fails_pending(self):
        """When the destination becomes unreachable, then pending requests fail with NoRoute."""
        d = self.k["a"].request("poe://c/s/slow", timeout=None)
        self.mesh.settle()
        self.links["bc"].close()
        self.mesh.settle()
        self.failureResultOf(d, NoRoute)


class MeshTests(SynchronousTestCase):
    def test_five_kernel_cycle_exactly_once(self):
        """When broadcasting in a 5-kernel mesh with cycles, then every intended session gets it exactly once."""
        log: List[Any] = []
        mesh, k, links = build("abcde", "ab bc cd de ea ac")
        for kernel in k.values():
            kernel.spawn(Sink("s", log))
            kernel.spawn(Sink("t", log))
        k["a"].post("poe://*/*/hit", 1)
        k["c"].post("poe://a,b,d/s/hit", 2)
        k["e"].post("poe://*/t/hit", 3)
        mesh.settle()
        got = sorted((kn, s, a) for kn, s, a, _ in log)
        expected = sorted(
            [(n, s, (1,)) for n in "bcde" for s in "st"]
            + [(n, "s", (2,)) for n in "abd"]
            + [(n, "t", (3,)) for n in "abcd"]
        )
        self.assertEqual(got, expected)

    def test_reroute_after_link_closes(self):
        """When a link in a cycle closes, then messages take the other way round."""
        log: List[Any] = []
        mesh, k, links = build("abcd", "ab bc cd da")
        k["c"].spawn(Sink("s", log))
        # Two paths of cost 2 (a-b-c, a-d-c): the first hop with the smallest name wins.
        self.assertEqual(k["a"].network.router.next_hop("c"), "b")
        links["ab"].close()
        mesh.settle()
        self.assertEqual(k["a"].network.router.next_hop("c"), "d")
        k["a"].post("poe://c/s/hit", 1)
        mesh.settle()
        self.assertEqual([(x[0], x[2]) for x in log], [("c", (1,))])

    def test_chain_forwarding(self):
        """When kernels form a 5-long chain, then a post from one end reaches the other."""
        log: List[Any] = []
        mesh, k, _ = build("abcde", "ab bc cd de")
        k["e"].spawn(Sink("s", log))
        k["a"].post("poe://e/s/hit", "far")
        mesh.settle()
        self.assertEqual([(x[0], x[2]) for x in log], [("e", ("far",))])

    def test_simultaneous_joins(self):
        """When many links come up at the same moment, then every kernel ends with the same correct map."""
        mesh = MemoryMesh()
        names = [f"k{i}" for i in range(12)]
        kernels = [mesh.kernel(n) for n in names]
        for i in range(12):  # a ring plus chords, all started in the same turn
            mesh.link(kernels[i], kernels[(i + 1) % 12])
            mesh.link(kernels[i], kernels[(i + 5) % 12])
        mesh.settle()
        for kernel in kernels:
            self.assertEqual(kernel.network.router.reachable(), frozenset(names) - {kernel.name})
        log: List[Any] = []
        for kernel in kernels:
            kernel.spawn(Sink("s", log))
        kernels[0].post("poe://*/s/hit", 1)
        mesh.settle()
        self.assertEqual(sorted(x[0] for x in log), sorted(names[1:]))

    def test_restart_new_incarnation(self):
        """When a kernel restarts with a new incarnation, then it replaces its old self and messages reach it."""
        log: List[Any] = []
        mesh, k, links = build("abc", "ab bc")
        links["bc"].close()
        mesh.settle()
        c2 = mesh.kernel("c", incarnation=k["c"].network.incarnation + 1)
        c2.spawn(Sink("s", log))
        mesh.link(c2, k["b"])
        mesh.settle()
        self.assertEqual(k["a"].network.router.incarnation_of("c"), c2.network.incarnation)
        k["a"].post("poe://c/s/hit", 1)
        mesh.settle()
        self.assertEqual([(x[0], x[2]) for x in log], [("c", (1,))])

    def test_duplicate_name_refused(self):
        """When a second live kernel joins with a name in use, then its link is refused with a reason."""
        mesh, k, _ = build("abc", "ab bc")
        impostor = mesh.kernel("c")  # a different incarnation, while c lives
        link = mesh.link(impostor, k["a"])
        mesh.settle()
        failure = self.failureResultOf(link.client.when_ready(), LinkClosed)
        self.assertEqual(failure.value.code, "duplicate-name")
        self.assertIn("already used", str(failure.value))
        self.assertEqual(link.server.closed_reason.code, "duplicate-name")  # a refused it
        self.assertEqual(k["a"].network.router.incarnation_of("c"), k["c"].network.incarnation)

    def test_self_link_refused(self):
        """When a kernel links to itself, then the link is refused."""
        mesh, k, _ = build("a", "")
        link = mesh.link(k["a"], k["a"])
        mesh.settle()
        failure = self.failureResultOf(link.client.when_ready(), LinkClosed)
        self.assertEqual(failure.value.code, "duplicate-name")
        self.assertIn("cannot link to itself", str(failure.value))
        self.assertEqual(k["a"].network.links(), [])

    def test_parallel_links(self):
        """When two kernels have two links and one closes, then messages still flow on the other."""
        log: List[Any] = []
        mesh, k, _ = build("ab", "")
        first = mesh.link(k["a"], k["b"])
        mesh.link(k["b"], k["a"])
        mesh.settle()
        k["b"].spawn(Sink("s", log))
        first.close()
        mesh.settle()
        k["a"].post("poe://b/s/hit", 1)
        mesh.settle()
        self.assertEqual(len(log), 1)


class SplitTests(SynchronousTestCase):
    def test_each_link_once_with_its_destinations(self):
        """When a post names several kernels, then each link carries it once, naming only the kernels behind it."""
        from lightspeed.message import ROUTED

        mesh, k, _ = build("abcd", "ab ac bd")
        carried = []
        for kernel in k.values():
            network = kernel.network
            original = network.message_received

            def record(link, message, network=network, original=original):
                if message[0] == ROUTED:
                    carried.append((link.peer.name, network.name, tuple(entry[0] for entry in message[3])))
                return original(link, message)

            network.message_received = record
        log: List[Any] = []
        for kernel in k.values():
            kernel.spawn(Sink("s", log))
        k["a"].post("poe://b,c,d/s/hit", 1)
        mesh.settle()
        self.assertEqual(sorted(carried), [("a", "b", ("b", "d")), ("a", "c", ("c",)), ("b", "d", ("d",))])
        self.assertEqual(sorted(x[0] for x in log), ["b", "c", "d"])


class PlanCacheTests(SynchronousTestCase):
    def test_session_only_string_not_cached_with_a_state(self):
        """When 'poe://K/S/' is posted with different states, then each post reaches its own state."""
        mesh, k, _ = build("ab", "ab")
        got = []
        k["b"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("s"),
                                    "one": lambda e: got.append(("one", e.args)),
                                    "two": lambda e: got.append(("two", e.args))})
        for _ in range(2):
            k["a"].post("poe://b/s/", "one", 1)
            k["a"].post("poe://b/s/", "two", 2)
            k["a"].post("poe://b/s/one", 3)
        mesh.settle()
        self.assertEqual(got, [("one", (1,)), ("two", (2,)), ("one", (3,))] * 2)


class ForgedAdvertTests(SynchronousTestCase):
    def test_forged_lsa_of_a_live_kernel_is_overridden(self):
        """When a kernel floods a forged advert for another live kernel, then that kernel re-floods its own and routes recover."""
        from lightspeed.message import LSA

        log: List[Any] = []
        mesh, k, links = build("abc", "ab bc")
        k["c"].spawn(Sink("s", log))
        c_own = k["c"].network.router.own()
        # 'a' lies: c has no links at all, with a newer sequence number.
        forged = [LSA, "c", c_own.incarnation, c_own.seq + 5, []]
        links["ab"].client.send_message(forged)
        mesh.settle()
        self.assertEqual(k["a"].network.router.next_hop("c"), "b")
        k["a"].post("poe://c/s/hit", 1)
        mesh.settle()
        self.assertEqual([x[0] for x in log], ["c"])
        self.assertEqual(k["c"].network.router.own().seq, c_own.seq + 6)  # one above the forged advert


class ThreeKernelLineCase(SynchronousTestCase):
    """
    A base for the classes below: a - b - c, each kernel with Sinks 's'
    and 't' logging to ``self.log``.
    """

    def setUp(self):
        self.log: List[Any] = []
        self.mesh, self.k, _ = build("abc", "ab bc")
        for kernel in self.k.values():
            kernel.spawn(Sink("s", self.log))
            kernel.spawn(Sink("t", self.log))


class RequestAnswerTests(ThreeKernelLineCase):
    """
    Which answers settle a pending request.
    """

    def test_relay_no_route_answer(self):
        """When a relay answers a request with NoRoute, then the request fails with NoRoute at once."""
        from lightspeed.message import RESPONSE

        d = self.k["a"].request("poe://c/s/slow", timeout=None)
        (request_id,) = list(self.k["a"].network.requests.pending)
        self.k["a"].network.dispatch.deliver("b", [RESPONSE, [], request_id, False, ["NoRoute", "no route to kernel 'c'"]])
        self.failureResultOf(d, NoRoute)

    def test_answer_from_wrong_kernel_ignored(self):
        """When a success answer comes from a kernel the request was not sent to, then it is ignored."""
        from lightspeed.message import RESPONSE

        d = self.k["a"].request("poe://c/s/slow", timeout=None)
        (request_id,) = list(self.k["a"].network.requests.pending)
        self.k["a"].network.dispatch.deliver("b", [RESPONSE, [], request_id, True, "forged"])
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d, CancelledError)


class RequestTimeoutTests(ThreeKernelLineCase):
    """
    Time-outs share one timer, set for the earliest deadline.
    """

    def test_each_times_out_at_its_own_deadline(self):
        """
        When requests with different time-outs wait (a later one shorter),
        then each fails at its own deadline, an answered one never, and
        only one timer waits for them.
        """
        a = self.k["a"]
        slow = [a.request("poe://c/s/slow", timeout=t) for t in (5.0, 2.0, 3.0)]
        answered = a.request("poe://c/s/ask", "x", timeout=1.0)
        self.mesh.settle()
        self.assertEqual(self.successResultOf(answered), {"from": "c", "args": ["x"]})
        pending = [c for c in self.mesh.clock.getDelayedCalls() if c.func == a.network.requests._timeouts]
        self.assertEqual(len(pending), 1)
        self.mesh.advance(1.5)
        self.assertNoResult(slow[1])
        self.mesh.advance(0.6)  # t = 2.1
        self.failureResultOf(slow[1], RequestTimeout)
        self.assertNoResult(slow[2])
        self.mesh.advance(1.0)  # t = 3.1
        self.failureResultOf(slow[2], RequestTimeout)
        self.assertNoResult(slow[0])
        self.mesh.advance(2.0)  # t = 5.1
        self.assertIn("within 5.0 s", str(self.failureResultOf(slow[0], RequestTimeout).value))
        self.assertEqual(a.network.requests.pending, {})

    def test_stopped_network_leaves_no_timer(self):
        """When the network stops with an answered request behind it, then its time-out timer is gone too."""
        a = self.k["a"]
        d = a.request("poe://c/s/ask", "x", timeout=30.0)
        self.mesh.settle()
        self.assertEqual(self.successResultOf(d), {"from": "c", "args": ["x"]})
        a.network.close_links()
        self.assertEqual([c for c in self.mesh.clock.getDelayedCalls() if c.func == a.network.requests._timeouts], [])


class PayloadLimitTests(ThreeKernelLineCase):
    """
    Messages too large for a frame are refused where they are sent.
    """

    def test_oversized_post_refused_at_sender(self):
        """When a post would not fit in a frame, then EncodeError at the call site and the link stays up."""
        from lightspeed.errors import EncodeError

        self.k["a"].network.max_payload = 1000
        self.assertRaises(EncodeError, self.k["a"].post, "poe://b/s/hit", b"x" * 2000)
        self.k["a"].post("poe://b/s/hit", b"small")
        self.mesh.settle()
        self.assertEqual([x[2] for x in self.log], [(b"small",)])

    def still_linked(self):
        """
        The links stay up and carry the next post.
        """
        self.assertEqual([link.peer.name for link in self.k["a"].network.links()], ["b"])
        self.k["a"].post("poe://c/s/hit", b"after")
        self.mesh.settle()
        self.assertEqual([x[2] for x in self.log], [(b"after",)])

    def test_oversized_request_refused_at_sender(self):
        """When a request's argument exceeds the frame limit, then its Deferred fails with EncodeError at once."""
        from lightspeed.errors import EncodeError

        d = self.k["a"].request("poe://c/s/hit", b"x" * (17 * 1024 * 1024))
        self.assertIn("exceeds", str(self.failureResultOf(d, EncodeError).value))
        self.assertEqual(self.k["a"].network.requests.pending, {})
        self.still_linked()

    def test_oversized_control_refused_at_sender(self):
        """When a control operation's argument exceeds the frame limit, then EncodeError at once."""
        from lightspeed.errors import EncodeError

        d = self.k["a"].control_at("c", "states", ["s"], (b"x" * (17 * 1024 * 1024),), 60.0)
        self.failureResultOf(d, EncodeError)
        self.still_linked()

    def test_oversized_reply_fails_the_request(self):
        """When a reply exceeds the frame limit, then the request fails with RemoteError EncodeError, links stay up."""
        from lightspeed.errors import RemoteError

        self.k["c"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("big"),
                                         "get": lambda e: b"x" * (17 * 1024 * 1024)})
        d = self.k["a"].request("poe://c/big/get")
        self.mesh.settle()
        error = self.failureResultOf(d, RemoteError).value
        self.assertEqual(error.remote_type, "EncodeError")
        self.assertIn("exceeds", error.remote_message)
        self.still_linked()


class ReservedStateTests(ThreeKernelLineCase):
    """
    The reserved states cannot be reached from another kernel.
    """

    def test_reserved_states_not_remotely_postable(self):
        """When another kernel posts to _start, _stop, _default or _undeliverable, then nothing runs and the sender hears why."""
        started: List[Any] = []
        self.k["b"].spawn(inline_states={"_start": lambda e: (started.append(1), e.kernel.alias_set("x")),
                                         "_stop": lambda e: started.append("stop")})
        notices = []
        self.k["a"].spawn(inline_states={
            "_start": lambda e: [e.kernel.alias_set("poster")] + [e.kernel.post(f"poe://b/x/{state}") for state in
                                                                ("_start", "_stop", "_default", "_undeliverable")],
            "_undeliverable": lambda e: notices.append(e.args[1]),
            "wait": lambda e: None,
        })
        self.mesh.settle()
        self.assertEqual(started, [1])
        self.assertEqual(notices, [f"state {state!r} is reserved and cannot be sent from another kernel"
                                   for state in ("_start", "_stop", "_default", "_undeliverable")])


class RequestDestinationTests(ThreeKernelLineCase):
    """
    A request names exactly one session on one kernel.
    """

    def test_request_names_one_session(self):
        """When a request names several sessions or '*', then BadSpecifier, locally and remotely alike."""
        for dest in ["poe://a/s,t/ask", "poe://b/s,t/ask", "poe://a/*/ask", "poe://*/s/ask", "poe://a,b/s/ask"]:
            self.failureResultOf(self.k["a"].request(dest), BadSpecifier)
