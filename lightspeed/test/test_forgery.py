# -*- test-case-name: lightspeed.test.test_forgery -*-
"""
Messages whose origin is not behind the link they arrive on are dropped,
logged and reported to the kernel they claim to come from.
"""

from __future__ import annotations

from typing import Any, List

from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from lightspeed.message import POST, REQUEST
from lightspeed.testing import forge
from lightspeed.test.test_mesh import Sink, Warnings, build
from lightspeed.wire.codec import dumps, loads
from lightspeed.wire.framing import frame


def post_payload(session: str, state: str, *args: Any, sender: Any = None) -> bytes:
    return dumps([POST, [session], state, list(args), sender, None, None, None])


class ForgedOriginTests(SynchronousTestCase):
    """
    a - b - c, and d - c: from b's point of view only a is behind the
    link from a; c and d are behind the link from c.
    """

    def setUp(self):
        self.log: List[Any] = []
        self.mesh, self.k, self.links = build("abcd", "ab bc dc")
        self.k["b"].spawn(Sink("s", self.log))
        self.k["d"].spawn(Sink("s", self.log))
        self.notices: List[Any] = []
        self.k["c"].spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("victim"),
            "_undeliverable": lambda e: self.notices.append(e.args),
        })
        self.warnings = Warnings(self)

    def inject(self, origin: str, dests: tuple, payload: bytes) -> None:
        """
        Make a send ``payload`` as if it came from ``origin``.
        """
        self.links["ab"].server.dataReceived(frame(forge(origin, [self.k[n] for n in dests], hops=5, payload=payload)))
        self.mesh.settle()

    def test_forged_origin_dropped(self):
        """When a claims a message comes from c, then b drops it, logs it, tells nobody, and keeps the link."""
        self.inject("c", ("b",), post_payload("s", "hit", "forged", sender="victim"))
        self.assertEqual(self.log, [])
        self.assertEqual(self.k["b"].network.misrouted, 1)
        self.assertEqual(self.notices, [])
        self.assertTrue(any("not behind the link from 'a'" in str(w.get("why")) for w in self.warnings.events))
        # The link from a stays up and honest traffic still flows both ways.
        self.assertEqual(sorted(link.peer.name for link in self.k["b"].network.links()), ["a", "c"])
        self.k["a"].post("poe://b/s/hit", "honest")
        self.k["c"].post("poe://b/s/hit", "also honest")
        self.mesh.settle()
        self.assertEqual(sorted(entry[2] for entry in self.log), [("also honest",), ("honest",)])

    def test_forged_origin_relayed(self):
        """When a forged message is for a kernel further on, then b does not relay it."""
        self.inject("c", ("d",), post_payload("s", "hit", "forged"))
        self.assertEqual(self.log, [])
        self.assertEqual(self.k["b"].network.misrouted, 1)

    def test_no_amplification(self):
        """When a forged message lists the victim's relay a thousand times, then nothing at all goes to the claimed origin."""
        self.inject("c", ("b",) * 1000, post_payload("s", "hit", "x" * 1000, sender="victim"))
        self.assertEqual(self.notices, [])
        self.assertEqual(self.k["b"].network.misrouted, 1)

    def test_hops_not_an_integer(self):
        """When a's own message to b gives its hops as text, then b refuses it as malformed and closes that link only."""
        routed = loads(forge("a", [self.k["b"]], hops=5, payload=post_payload("s", "hit", "odd")))
        routed[4] = "5"
        self.links["ab"].server.dataReceived(frame(dumps(routed)))
        self.mesh.settle()
        self.assertEqual(self.log, [])
        self.assertEqual(sorted(link.peer.name for link in self.k["b"].network.links()), ["c"])
        self.assertTrue(any("malformed" in str(w.get("code")) for w in self.warnings.events), self.warnings.events)

    def test_unknown_origin(self):
        """When a message claims a kernel nobody knows, then it is dropped and nothing is bounced."""
        self.inject("zz", ("b",), post_payload("s", "hit", "who"))
        self.assertEqual(self.log, [])
        self.assertEqual(self.k["b"].network.misrouted, 1)
        self.assertEqual(self.notices, [])

    def test_forged_request(self):
        """When a forged request arrives, then it is not run and the claimed origin gets no answer it asked for."""
        ran: List[Any] = []
        self.k["b"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("q"),
                                         "ask": lambda e: ran.append(e.args)})
        self.inject("c", ("b",), dumps([REQUEST, ["q"], "ask", [1], None, None, None, None, 77]))
        self.assertEqual(ran, [])
        self.assertEqual(self.k["b"].network.misrouted, 1)

    def test_neighbour_as_origin(self):
        """When a sends in its own name, then the message is delivered."""
        self.inject("a", ("b",), post_payload("s", "hit", "mine"))
        self.assertEqual([entry[2] for entry in self.log], [("mine",)])
        self.assertEqual(self.k["b"].network.misrouted, 0)


class RelayedPayloadTests(SynchronousTestCase):
    """
    a - r - b: a payload that fails at b came from a, not from r, so the
    r - b link stays up.
    """

    def setUp(self):
        self.mesh, self.k, self.links = build("arb", "ar rb")
        self.log: List[Any] = []
        self.k["b"].spawn(Sink("s", self.log))
        self.mesh.settle()

    def send_from_a(self, payload: bytes) -> None:
        self.links["ar"].client.send_body(forge("a", [self.k[n] for n in ("b",)], hops=5, payload=payload))
        self.mesh.settle()

    def assert_links_intact(self) -> None:
        self.assertEqual(sorted(link.peer.name for link in self.k["b"].network.links()), ["r"])
        self.assertEqual(sorted(link.peer.name for link in self.k["r"].network.links()), ["a", "b"])
        self.k["a"].post("poe://b/s/hit", "after")
        self.mesh.settle()
        self.assertEqual([entry[2] for entry in self.log], [("after",)])

    def test_malformed_payload(self):
        """When a's payload is malformed at b, then b drops it and counts it; no link closes."""
        for bad in [dumps({"not": "a payload"}), b"\xff\xfe", dumps([REQUEST, ["s"], "hit", [], None, None, None, None, "x"])]:
            self.send_from_a(bad)
        self.assertEqual(self.k["b"].network.bad_payloads, 3)
        self.assert_links_intact()

    def test_huge_digit_session(self):
        """When a session name is thousands of digits, then it names no session and nothing breaks."""
        self.send_from_a(post_payload("9" * 5000, "hit", 1))
        self.assert_links_intact()


class CycleTests(SynchronousTestCase):
    def test_origin_behind_either_way_round(self):
        """When a ring can carry c's messages to b either way round, then c's message via a is delivered."""
        log: List[Any] = []
        mesh, k, links = build("abcd", "ab bc cd da")
        k["b"].spawn(Sink("s", log))
        links["ab"].server.dataReceived(frame(forge("c", [k[n] for n in ("b",)], hops=5, payload=post_payload("s", "hit", "round"))))
        mesh.settle()
        self.assertEqual([entry[2] for entry in log], [("round",)])
        self.assertEqual(k["b"].network.misrouted, 0)

    def test_honest_traffic_never_misrouted(self):
        """When every kernel of a meshed network posts to every other while links drop and come back, then nothing is dropped as forged."""
        log: List[Any] = []
        mesh, k, links = build("abcdef", "ab bc cd de ef fa ad be")
        for name, kernel in k.items():
            kernel.spawn(Sink("s", log))
        expected = 0
        for round_ in range(3):
            for src in k.values():
                src.post("poe://*/s/hit", round_)
                expected += len(k) - 1
            mesh.settle()
            if round_ == 0:
                links["ad"].close()
            if round_ == 1:
                links["bc"].close()
            mesh.settle()
        self.assertEqual(len(log), expected)
        self.assertEqual([kernel.network.misrouted for kernel in k.values()], [0] * len(k))

    def test_churn_in_flight_never_misrouted(self):
        """When links drop while messages are on their way, then messages that overtaken LSAs outran are not taken for forgeries."""
        import random

        for seed in (9, 24):  # seeds whose churn once made honest messages look forged
            rnd = random.Random(seed)
            log: List[Any] = []
            mesh, k, links = build("abcdefgh", "ab bc cd de ef fg gh ha ad be cg fh")
            for kernel in k.values():
                kernel.spawn(Sink("s", log))
            names = list(links)
            for round_ in range(6):
                for src in k.values():
                    src.post("poe://*/s/hit", round_)
                if round_ % 2 == 0:
                    links[rnd.choice(names)].close()
                for src in k.values():
                    src.post("poe://*/s/hit", round_)
            mesh.settle()
            self.assertTrue(log)
            self.assertEqual([kernel.network.misrouted for kernel in k.values()], [0] * len(k))


class FadingTests(SynchronousTestCase):
    def test_withdrawn_edge_vouches_for_a_while(self):
        """When an edge is withdrawn, then it vouches for origins for FADING_GRACE seconds and not after."""
        from lightspeed.network import FADING_GRACE

        log: List[Any] = []
        # b's only way to d is a - c - d; a - c goes down.
        mesh, k, links = build("abcd", "ab ac cd")
        k["b"].spawn(Sink("s", log))
        links["ac"].close()
        mesh.settle()
        self.assertNotIn("d", k["b"].network.router.reachable())
        send = lambda: links["ab"].server.dataReceived(
            frame(forge("d", [k[n] for n in ("b",)], hops=5, payload=post_payload("s", "hit", "late"))))
        send()
        mesh.settle()
        self.assertEqual([entry[2] for entry in log], [("late",)])
        mesh.advance(FADING_GRACE + 1)
        send()
        mesh.settle()
        self.assertEqual(len(log), 1)
        self.assertEqual(k["b"].network.misrouted, 1)


class ForgedResponseTests(SynchronousTestCase):
    def test_guessing_request_ids(self):
        """When a kernel answers ids it guesses with a relay's NoRoute, then another kernel's pending request is untouched."""
        from lightspeed.message import RESPONSE

        mesh, k, links = build("abcd", "ab bc cd")
        k["d"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("q"), "slow": lambda e: Deferred()})
        mesh.settle()
        d = k["c"].request("poe://d/q/slow", timeout=None)
        for guess in range(1, 200):
            links["ab"].client.send_body(forge("a", [k[n] for n in ("c",)], hops=5, payload=dumps(
                [RESPONSE, [], guess, False, ["NoRoute", "forged"]])))
        mesh.settle()
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d, CancelledError)
