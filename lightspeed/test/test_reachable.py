# -*- test-case-name: lightspeed.test.test_reachable -*-
"""
The convergence signal: Node.when_reachable on in-memory meshes.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.trial.unittest import SynchronousTestCase

from lightspeed import BadSpecifier, Kernel
from lightspeed.errors import RequestTimeout
from lightspeed.test.test_mesh import build


class WhenReachableTests(SynchronousTestCase):
    def setUp(self):
        self.mesh, self.k, _ = build("abc", "")

    def test_fires_once_every_kernel_is_reachable(self):
        """When a waits for b and c, then it fires only once both are reachable, with None."""
        d = self.k["a"].when_reachable("b", "c")
        self.mesh.link(self.k["a"], self.k["b"])
        self.mesh.settle()
        self.assertNoResult(d)
        self.mesh.link(self.k["b"], self.k["c"])
        self.mesh.settle()
        self.assertIsNone(self.successResultOf(d))

    def test_at_once_if_reachable(self):
        """When the kernels are reachable already (or are this one, or none), then it fires at once."""
        self.mesh.link(self.k["a"], self.k["b"])
        self.mesh.settle()
        self.assertIsNone(self.successResultOf(self.k["a"].when_reachable("b")))
        self.assertIsNone(self.successResultOf(self.k["a"].when_reachable("a", "b")))
        self.assertIsNone(self.successResultOf(self.k["a"].when_reachable()))
        alone = Kernel("alone", reactor=self.mesh.clock)
        self.assertIsNone(self.successResultOf(alone.when_reachable("alone")))
        self.assertIsNone(alone.network)

    def test_timeout(self):
        """When a kernel does not become reachable in time, then it fails with RequestTimeout naming it."""
        self.mesh.link(self.k["a"], self.k["b"])
        d = self.k["a"].when_reachable("b", "c", timeout=5.0)
        self.mesh.advance(4.9)
        self.assertNoResult(d)
        self.mesh.advance(0.1)
        f = self.failureResultOf(d, RequestTimeout)
        self.assertEqual(str(f.value), "kernel(s) c not reachable within 5.0 s")
        self.assertEqual(self.k["a"].network.membership._waiting, [])

    def test_cancel(self):
        """When the wait is cancelled, then it fails with CancelledError, its timer stops, nothing fires later."""
        clock = self.mesh.clock
        d = self.k["a"].when_reachable("b", timeout=5.0)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.mesh.link(self.k["a"], self.k["b"])
        self.mesh.advance(10)
        self.assertEqual(self.k["a"].network.membership._waiting, [])

    def test_bad_name(self):
        """When a name is malformed, then it fails with BadSpecifier."""
        self.failureResultOf(self.k["a"].when_reachable("b/c"), BadSpecifier)

    def test_waits_again_after_a_kernel_left(self):
        """When a kernel left, then a new wait fires once it is back."""
        link = self.mesh.link(self.k["a"], self.k["b"])
        self.mesh.settle()
        link.close()
        self.mesh.settle()
        d = self.k["a"].when_reachable("b")
        self.assertNoResult(d)
        self.mesh.relink(link)
        self.mesh.settle()
        self.assertIsNone(self.successResultOf(d))
