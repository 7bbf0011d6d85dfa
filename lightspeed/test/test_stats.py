# -*- test-case-name: lightspeed.test.test_stats -*-
"""
Counters: Node.stats() on in-memory meshes, the CONTROL operation "stats"
(Node.stats_of) and the introspection hook that guards it.
"""

from __future__ import annotations

import json
from typing import Any, List

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ISSLTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides

from lightspeed import Kernel, NoRoute
from lightspeed.errors import RemoteError
from lightspeed.stats import CATEGORIES, reason_category
from lightspeed.test.test_introspection import Recorder
from lightspeed.test.test_mesh import Sink, build
from lightspeed.testing import forge
from lightspeed.wire.protocol import LinkOptions

KERNEL_KEYS = {"kernel", "incarnation", "uptime", "hidden", "messages_in", "messages_out", "bytes_in", "bytes_out",
               "relayed", "undeliverable", "misrouted", "pending_requests", "adverts_in", "adverts_out", "kernels",
               "backlog", "links"}
LINK_KEYS = {"messages_in", "messages_out", "bytes_in", "bytes_out", "rtt", "cost", "incarnation", "since", "tls"}


def post_as(session: Any, kernel: Kernel, dest: str, *args: Any) -> None:
    local = kernel.local
    local.current = session
    try:
        kernel.post(dest, *args)
    finally:
        local.current = None


class ShapeTests(SynchronousTestCase):
    def test_keys_of_a_networked_kernel(self):
        """When a kernel with a link is asked, then stats() has exactly the documented keys and is JSON."""
        mesh, k, _ = build("ab", "ab")
        stats = k["a"].stats()
        self.assertEqual(set(stats), KERNEL_KEYS)
        self.assertEqual(set(stats["links"]), {"b"})
        self.assertEqual(set(stats["links"]["b"]), LINK_KEYS)
        self.assertEqual(json.loads(json.dumps(stats)), stats)
        self.assertEqual((stats["kernel"], stats["incarnation"], stats["hidden"], stats["kernels"]),
                         ("a", k["a"].network.incarnation, False, 1))
        link = stats["links"]["b"]
        self.assertEqual((link["incarnation"], link["since"], link["tls"], link["cost"], link["rtt"]),
                         (k["b"].network.incarnation, 0.0, False, 1, None))

    def test_tls(self):
        """When the link's transport is a TLS one, then the link says tls."""
        mesh, k, links = build("ab", "ab")
        directlyProvides(links["ab"].client.transport, ISSLTransport)
        self.assertEqual((k["a"].stats()["links"]["b"]["tls"], k["b"].stats()["links"]["a"]["tls"]), (True, False))

    def test_kernel_alone(self):
        """When a kernel never joined a network, then its stats are zeros, its uptime counts from its start."""
        mesh, _, _ = build("", "")
        kernel = Kernel("solo", reactor=mesh.clock)
        mesh.clock.advance(5)
        stats = kernel.stats()
        self.assertEqual(set(stats), KERNEL_KEYS)
        self.assertEqual(stats["uptime"], 5.0)
        self.assertEqual((stats["incarnation"], stats["links"], stats["backlog"], stats["messages_out"]), (0, {}, {}, 0))
        self.assertIsNone(kernel.network)


class CountingTests(SynchronousTestCase):
    def setUp(self):
        self.mesh, self.k, self.links = build("abc", "ab bc")
        self.log: List[Any] = []
        self.k["c"].spawn(Sink("s", self.log))
        self.mesh.settle()

    def test_messages_relayed_and_bytes(self):
        """When a posts 10 messages to c through b, then a sent 10, b relayed 10, c got 10, and link bytes match the wire."""
        k = self.k
        before = k["c"].stats()["messages_in"]
        for n in range(10):
            k["a"].post("poe://c/s/hit", n)
        self.mesh.settle()
        self.assertEqual(len(self.log), 10)
        self.assertEqual(k["a"].stats()["messages_out"], 10)
        self.assertEqual(k["b"].stats()["relayed"], 10)
        self.assertEqual(k["c"].stats()["messages_in"] - before, 10)
        ab = self.links["ab"]
        a_link = k["a"].stats()["links"]["b"]
        b_link = k["b"].stats()["links"]["a"]
        self.assertEqual(a_link["bytes_out"], ab.client.transport.written)
        self.assertEqual(b_link["bytes_in"], ab.client.transport.written)
        self.assertEqual(b_link["bytes_out"], a_link["bytes_in"])
        self.assertEqual((a_link["messages_out"], a_link["messages_in"]), (b_link["messages_in"], b_link["messages_out"]))
        b = k["b"].stats()
        self.assertEqual(b["bytes_in"], b_link["bytes_in"] + b["links"]["c"]["bytes_in"])

    def test_bytes_of_a_link_gone_down_still_count(self):
        """When a link goes down, then the kernel's byte totals keep what it carried."""
        a = self.k["a"]
        before = a.stats()
        self.links["ab"].close()
        self.mesh.settle()
        after = a.stats()
        self.assertEqual(after["links"], {})
        self.assertEqual((after["bytes_in"], after["bytes_out"]), (before["bytes_in"], before["bytes_out"]))

    def test_adverts(self):
        """When two kernels link, then the adverts one sent are the adverts the other received."""
        mesh, k, _ = build("ab", "ab")
        a, b = k["a"].stats(), k["b"].stats()
        self.assertGreater(a["adverts_out"], 0)
        self.assertEqual((a["adverts_out"], a["adverts_in"]), (b["adverts_in"], b["adverts_out"]))

    def test_pending_requests(self):
        """When a request waits for its answer, then it is pending; once answered, not."""
        d = self.k["a"].request("poe://c/s/slow")
        self.mesh.settle()
        self.assertEqual(self.k["a"].stats()["pending_requests"], 1)
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.k["a"].stats()["pending_requests"], 0)

    def test_backlog(self):
        """When c stops acknowledging, then a's backlog to c counts what it has not acknowledged."""
        self.links["bc"].cut()
        for n in range(5):
            self.k["a"].post("poe://c/s/hit", n)
        self.mesh.settle()
        self.assertEqual(self.k["a"].stats()["backlog"], {"c": 5})

    def test_misrouted(self):
        """When a neighbour forges a message's origin, then the kernel counts it misrouted."""
        self.links["ab"].client.send_body(forge("c", [self.k["b"]], payload=b"\x80"))
        self.mesh.settle()
        self.assertEqual(self.k["b"].stats()["misrouted"], 1)

    def test_round_trip_and_cost(self):
        """When a link's first PING is answered after 10 ms, then its rtt is 0.01 s and its cost 11."""
        mesh, k, links = build("ab", "")
        links["ab"] = mesh.link(k["a"], k["b"], LinkOptions(keepalive=0), LinkOptions(keepalive=0))
        links["ab"].delay(0.005)
        for _ in range(300):
            mesh.advance(0.005)  # one step per delay: every frame arrives on time
        link = k["a"].stats()["links"]["b"]
        self.assertAlmostEqual(link["rtt"], 0.01)
        self.assertEqual(link["cost"], 11)
        # advance() settles first: HELLO left at 0, READY came back 2 delays on.
        self.assertAlmostEqual(link["since"], 0.01)


class UndeliverableTests(SynchronousTestCase):
    def setUp(self):
        self.mesh, self.k, _ = build("ab", "ab")
        self.sender = Recorder(self.k["a"], "tx").session
        self.k["b"].spawn(Sink("s", []))
        self.mesh.settle()

    def test_by_category(self):
        """When messages cannot be delivered, then the kernel that finds out counts each under its reason's category."""
        a, b = self.k["a"], self.k["b"]
        b.auth_register("post", "s", lambda request: "no thanks")
        post_as(self.sender, a, "poe://zz/s/hit")
        post_as(self.sender, a, "poe://b/nobody/hit")
        post_as(self.sender, a, "poe://b/s/hit")
        self.mesh.settle()
        self.assertEqual(b.stats()["undeliverable"], {"no-session": 1, "refused": 1})
        self.assertEqual(a.stats()["undeliverable"], {"no-route": 1})  # b's bounces reached the sender

    def test_reason_categories(self):
        """When reasons as lightspeed writes them are classified, then each gets its category."""
        reasons = {
            "no route to kernel 'x'": "no-route",
            "no route to kernel(s) x, y": "no-route",
            "no session 'x' in kernel 'k'": "no-session",
            "postback to stopped session, state 'x'": "no-session",
            "session 3 stopped before state 'x' ran": "no-session",
            "no acknowledgement from kernel 'x' for 300 s; 4 message(s) to it may not have been delivered": "no-ack",
            "session 3 of kernel 'k' has no state 'x' and no _default": "no-state",
            "refused by an authentication hook": "refused",
            "kernel 'x' restarted; 2 message(s) to it were not delivered": "restarted",
            "kernel 'x' left the network; 1 message(s) to it were not delivered": "left",
            "deadline passed": "expired",
            "deadline passed at 'b'": "expired",
            "backlog full": "backlog-full",
            "hop limit reached": "hop-limit",
            "origin 'x' is not behind the link from 'y': message dropped": "misrouted",
            "whatever a hook said": "other",
        }
        self.assertEqual({reason: reason_category(reason) for reason in reasons}, reasons)
        self.assertEqual(set(reasons.values()), CATEGORIES)


class RemoteStatsTests(SynchronousTestCase):
    def setUp(self):
        self.mesh, self.k, _ = build("abc", "ab bc")

    def test_stats_of(self):
        """When a asks c for its stats, then it gets c's stats; asking itself needs no network."""
        d = self.k["a"].stats_of("c")
        self.mesh.settle()
        answer = self.successResultOf(d)
        self.assertEqual(set(answer), KERNEL_KEYS)
        self.assertEqual((answer["kernel"], set(answer["links"])), ("c", {"b"}))
        self.assertEqual(self.successResultOf(self.k["a"].stats_of("a"))["kernel"], "a")

    def test_refused_by_introspection_hook(self):
        """When c's introspection hook for '*' refuses, then stats_of fails with c's reason; c may ask itself."""
        seen: List[Any] = []
        self.k["c"].auth_register("introspection", "*", lambda request: seen.append(request) or "private")
        d = self.k["a"].stats_of("c")
        self.mesh.settle()
        f = self.failureResultOf(d, RemoteError)
        self.assertEqual((f.value.remote_type, str(f.value)), ("Refused", "Refused: private"))
        self.assertEqual([(r.kind, r.session, r.state, r.sender.remote_kernel) for r in seen],
                         [("introspection", None, "stats", "a")])
        self.assertEqual(self.successResultOf(self.k["c"].stats_of("c"))["kernel"], "c")

    def test_unreachable(self):
        """When the kernel asked is not reachable, then stats_of fails with NoRoute."""
        self.failureResultOf(self.k["a"].stats_of("zz"), NoRoute)
        self.assertIsInstance(self.k["a"].stats_of("c"), Deferred)
