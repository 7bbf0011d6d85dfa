# -*- test-case-name: lightspeed.test.test_trace -*-
"""
Traces on in-memory meshes: the path and per-hop times and costs, reroutes,
no route, time-outs, and hostile relays and destinations.
"""

from __future__ import annotations

from typing import Any, List

from twisted.trial.unittest import SynchronousTestCase

from lightspeed import NoRoute
from lightspeed.errors import ProtocolError, RequestTimeout
from lightspeed.message import TRACE
from lightspeed.test.test_mesh import build
from lightspeed.trace import MAX_TRACE_HOPS


def path(hops: List[dict]) -> List[Any]:
    return [(hop["kernel"], hop["cost"]) for hop in hops]


class TraceTests(SynchronousTestCase):
    def setUp(self):
        self.mesh, self.k, self.links = build("abc", "ab bc")

    def trace(self, source: str, dest: str, **options: Any) -> Any:
        d = self.k[source].trace(dest, **options)
        self.mesh.settle()
        return d

    def test_chain(self):
        """When a traces c over a-b-c, then it gets a, b, c with the cost of the link each came by."""
        hops = self.successResultOf(self.trace("a", "c"))
        self.assertEqual(path(hops), [("a", None), ("b", 1), ("c", 1)])
        self.assertEqual([hop["time"] for hop in hops], [0.0, 0.0, 0.0])

    def test_times_per_hop(self):
        """When each link takes 10 ms, then each hop's time is 10 ms after the one before."""
        self.links["ab"].delay(0.01)
        self.links["bc"].delay(0.01)
        self.mesh.clock.advance(1)
        d = self.k["a"].trace("c")
        self.k["a"].network.flush()  # the trace leaves now, not on the next turn
        for _ in range(10):
            self.mesh.advance(0.01)
        times = [hop["time"] for hop in self.successResultOf(d)]
        self.assertEqual([round(t - times[0], 6) for t in times], [0.0, 0.01, 0.02])

    def test_costs_are_the_links_costs(self):
        """When b advertises a cost of 7 for its link to a, then the hop at b says 7."""
        network = self.k["b"].network
        network.flooding.flood(network.router.link_up("a", 7))
        network.routes_changed()
        self.mesh.settle()
        self.assertEqual(path(self.successResultOf(self.trace("a", "c"))), [("a", None), ("b", 7), ("c", 1)])

    def test_reroute(self):
        """When the path through b goes down, then the trace takes the path through d."""
        self.links["ad"] = self.mesh.link(self.k["a"], self.mesh.kernel("d"))
        self.k["d"] = self.mesh.kernels["d"]
        self.links["dc"] = self.mesh.link(self.k["d"], self.k["c"])
        self.mesh.settle()
        first = path(self.successResultOf(self.trace("a", "c")))
        self.assertIn(first, [[("a", None), ("b", 1), ("c", 1)], [("a", None), ("d", 1), ("c", 1)]])
        via = first[1][0]
        self.links["a" + via].close()
        self.mesh.settle()
        other = "d" if via == "b" else "b"
        self.assertEqual(path(self.successResultOf(self.trace("a", "c"))), [("a", None), (other, 1), ("c", 1)])

    def test_self_and_unreachable(self):
        """When a kernel traces itself, then one hop; when the kernel is unreachable, then NoRoute."""
        self.assertEqual(path(self.successResultOf(self.trace("a", "a"))), [("a", None)])
        f = self.failureResultOf(self.trace("a", "zz"), NoRoute)
        self.assertEqual(str(f.value), "no route to kernel 'zz'")

    def test_no_route_at_a_relay(self):
        """When a relay has no route onwards, then it answers NoRoute for the trace."""
        network = self.k["a"].network
        request_id, d, _ = network.requests.expect("zz", 10.0, "late")
        self.links["ab"].client.send_message([TRACE, "a", request_id, "zz", [["a", 0.0, None]]])
        self.mesh.settle()
        f = self.failureResultOf(d, NoRoute)
        self.assertEqual(str(f.value), "no route to kernel 'zz' at 'b'")

    def test_hop_limit(self):
        """When a trace reaches its hop limit before its destination, then it ends with NoRoute."""
        network = self.k["a"].network
        request_id, d, _ = network.requests.expect("c", 10.0, "late")
        hops = [["a", 0.0, None]] + [["x", 0.0, 1]] * (MAX_TRACE_HOPS - 2)
        self.links["ab"].client.send_message([TRACE, "a", request_id, "c", hops])
        self.mesh.settle()
        f = self.failureResultOf(d, NoRoute)
        self.assertEqual(str(f.value), f"trace hop limit ({MAX_TRACE_HOPS}) to kernel 'c' at 'b'")

    def test_timeout(self):
        """When the trace is lost on the way, then it fails with RequestTimeout after its timeout."""
        self.links["bc"].cut()
        d = self.trace("a", "c", timeout=2.0)
        self.assertNoResult(d)
        self.mesh.advance(2.0)
        f = self.failureResultOf(d, RequestTimeout)
        self.assertEqual(str(f.value), "no answer to a trace to kernel 'c' within 2.0 s")

    def test_cancel(self):
        """When a trace is cancelled, then it is no longer pending."""
        self.links["bc"].cut()
        d = self.trace("a", "c")
        d.cancel()
        self.assertEqual(len(self.k["a"].network.requests), 0)
        self.failureResultOf(d)


class HostileTraceTests(SynchronousTestCase):
    def setUp(self):
        self.mesh, self.k, self.links = build("abc", "ab bc")

    def send(self, message: list) -> Any:
        self.links["ab"].client.send_message(message)
        self.mesh.settle()
        return self.links["ab"].server.closed_reason

    def test_garbage_hop_closes_the_link(self):
        """When a neighbour passes on a trace with a malformed hop, then the link closes with BYE malformed."""
        bad_hops = [
            [["a", 0.0, None], ["x/y", 0.0, 1]],   # bad name
            [["a", 0.0, None], ["x", "now", 1]],   # bad time
            [["a", 0.0, None], ["x", 0.0, -1]],    # bad cost
            [["a", 0.0, 1]],                       # origin with a cost
            [["b", 0.0, None]],                    # not the origin's
            [["a", 0.0, None], "x"],               # not a hop
            [],
        ]
        for hops in bad_hops:
            why = self.send([TRACE, "a", 1, "c", hops])
            self.assertEqual(why.code, "malformed", hops)
            self.mesh.relink(self.links["ab"])
            self.links["ab"] = self.mesh.links[-1]
            self.mesh.settle()

    def test_too_many_hops_closes_the_link(self):
        """When a trace arrives already holding the most hops, then the link closes with BYE malformed."""
        hops = [["a", 0.0, None]] + [["x", 0.0, 1]] * (MAX_TRACE_HOPS - 1)
        self.assertEqual(self.send([TRACE, "a", 1, "c", hops]).code, "malformed")

    def test_forged_origin(self):
        """When a neighbour sends a trace whose origin is not behind it, then it is dropped and counted misrouted."""
        self.assertIsNone(self.send([TRACE, "c", 1, "c", [["c", 0.0, None]]]))
        self.assertEqual(self.k["b"].network.relay.misrouted, 1)
        self.assertEqual(self.send([TRACE, "b", 1, "c", [["b", 0.0, None]]]).code, "forged-origin")

    def test_hostile_destination(self):
        """When the destination answers a malformed path, then the trace fails with ProtocolError."""
        c = self.k["c"].network

        class Liar:
            def received(self, link: Any, message: list) -> None:
                c.requests.respond(message[1], message[2], True, [["a", 0.0, None], ["b", 0.0, 1]])

        c.extensions[TRACE] = Liar()
        d = self.k["a"].trace("c")
        self.mesh.settle()
        f = self.failureResultOf(d, ProtocolError)
        self.assertEqual(str(f.value), "malformed message: trace does not end at its destination")
