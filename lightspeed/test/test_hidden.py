# -*- test-case-name: lightspeed.test.test_hidden -*-
"""
Hidden kernels on in-memory meshes: ``*`` does not reach them, they are not
listed by default, and routes never pass through them.
"""

from __future__ import annotations

from typing import Any, List

from twisted.trial.unittest import SynchronousTestCase

from lightspeed import Session
from lightspeed.message import LSA, lsa_hidden
from lightspeed.testing import MemoryMesh


class Sink(Session):
    def __init__(self, log: List[Any]) -> None:
        super().__init__()
        self.log = log

    def _start(self, event):
        event.kernel.alias_set("sink")

    def hit(self, event):
        self.log.append((event.kernel.name, event.args))

    def ask(self, event):
        return ["from", event.kernel.name, list(event.args)]


def mesh_with_hidden() -> tuple:
    """
    a - h - c, the short way through hidden h, and a - b - d - c, the long
    way; a sink on every kernel.
    """
    mesh = MemoryMesh()
    kernels = {n: mesh.kernel(n, hidden=(n == "h")) for n in "abcdh"}
    for edge in ["ah", "hc", "ab", "bd", "dc"]:
        mesh.link(kernels[edge[0]], kernels[edge[1]])
    mesh.settle()
    log: List[Any] = []
    for kernel in kernels.values():
        kernel.spawn(Sink(log))
    mesh.settle()
    return mesh, kernels, log


class HiddenTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.mesh, self.k, self.log = mesh_with_hidden()

    def test_broadcast_skips_hidden(self) -> None:
        """
        When a kernel posts to ``poe://*/sink/hit``, then every other kernel
        but the hidden one gets it.
        """
        self.k["a"].post("poe://*/sink/hit", 1)
        self.mesh.settle()
        self.assertEqual(sorted(name for name, _ in self.log), ["b", "c", "d"])

    def test_hidden_broadcasts(self) -> None:
        """
        When the hidden kernel posts to ``*``, then every visible kernel gets
        it (the hidden one is itself not "every kernel").
        """
        self.k["h"].post("poe://*/sink/hit", 2)
        self.mesh.settle()
        self.assertEqual(sorted(name for name, _ in self.log), ["a", "b", "c", "d"])

    def test_not_listed(self) -> None:
        """
        When kernels are listed, then the hidden one is left out unless
        asked for with ``hidden=True``.
        """
        self.assertEqual(self.k["a"].list_kernels(), ["a", "b", "c", "d"])
        self.assertEqual(self.k["a"].list_kernels(hidden=True), ["a", "b", "c", "d", "h"])

    def test_never_a_relay(self) -> None:
        """
        When the shortest path from a to c runs through the hidden kernel,
        then the longer visible one is taken, and a post arrives by it.
        """
        router = self.k["a"].network.router
        self.assertEqual(router.next_hop("c"), "b")
        self.assertEqual(router.distances()["c"], 3)
        self.assertEqual(self.k["c"].network.router.next_hop("a"), "d")
        self.k["a"].post("poe://c/sink/hit", 3)
        self.mesh.settle()
        self.assertEqual(self.log, [("c", (3,))])

    def test_direct_posts_and_requests(self) -> None:
        """
        When a kernel posts to the hidden kernel, and the hidden kernel
        requests from another, then both work.
        """
        self.k["d"].post("poe://h/sink/hit", 4)
        results: List[Any] = []
        self.k["h"].request("poe://c/sink/ask", 5).addCallback(results.append)
        self.mesh.settle()
        self.assertEqual(self.log, [("h", (4,))])
        self.assertEqual(results, [["from", "c", [5]]])

    def test_advertised(self) -> None:
        """
        When the hidden kernel's LSA is flooded, then it carries the hidden
        flag (a null proof, then ``{"hidden": true}``) and a kernel two links
        away knows it is hidden.
        """
        flooding = self.k["h"].network.flooding
        message = flooding.message(self.k["h"].network.router.own())
        self.assertEqual(message[0], LSA)
        self.assertEqual((len(message), message[5], message[6]["hidden"]), (7, None, True))  # flags also vouch
        self.assertTrue(lsa_hidden(message))
        self.assertFalse(lsa_hidden(flooding.message(self.k["b"].network.router.own())))
        self.assertIn("h", self.k["b"].network.router.hidden_kernels())


class HiddenOnlyPathTests(SynchronousTestCase):
    def test_unreachable_through_hidden(self) -> None:
        """
        When the only path between two kernels runs through a hidden one,
        then they cannot reach each other, and both reach the hidden one.
        """
        mesh = MemoryMesh()
        a, h, c = mesh.kernel("a"), mesh.kernel("h", hidden=True), mesh.kernel("c")
        mesh.link(a, h)
        mesh.link(h, c)
        mesh.settle()
        self.assertEqual(a.list_kernels(hidden=True), ["a", "h"])
        self.assertEqual(c.list_kernels(hidden=True), ["c", "h"])
        self.assertEqual(h.list_kernels(), ["a", "c", "h"])


class OptionTests(SynchronousTestCase):
    def test_twistd_hidden(self):
        """When twistd lightspeed gets --hidden, then its kernel is hidden, and not without."""
        from lightspeed.tap import Options, makeService
        from lightspeed.test.test_tap import kernel_of

        def kernel(*argv: str) -> Any:
            options = Options()
            options.parseOptions(["--kernel", "k", "--listen", "none", *argv])
            return kernel_of(makeService(options))

        hidden = kernel("--hidden")
        self.assertEqual((hidden.hidden, hidden.network.router.hidden), (True, True))
        self.assertTrue(hidden.network.router.own().hidden)  # from the first own LSA on
        self.assertFalse(kernel().hidden)


class HiddenPeerTests(SynchronousTestCase):
    def test_forgotten_when_its_link_goes(self):
        """When a neighbour that said hidden in its HELLO loses its last link, then it no longer counts as hidden."""
        from lightspeed.router import Router

        router = Router("a", 1)
        router.link_up("b")
        router.peer_hidden("b", True)
        self.assertIn("b", router.hidden_kernels())
        router.link_down("b")
        self.assertNotIn("b", router.hidden_kernels())
