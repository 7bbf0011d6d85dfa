"""
Tests for :mod:`lightspeed.interfaces`: each part provides the contract the
others use.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from lightspeed import Kernel
from lightspeed.interfaces import IDelivery, IEventSink, IKernel, IKernelPort, ILinkOwner, INetworkPort
from lightspeed.testing import MemoryMesh


class ProvidedTests(SynchronousTestCase):
    """
    The implementations provide their interfaces, attributes included.
    """

    def setUp(self):
        self.kernel = Kernel("k", reactor=Clock())
        self.network = self.kernel.network_start()

    def test_kernel(self):
        """When a kernel is built, then it provides IKernel (the features' view) and IKernelPort (the network's)."""
        self.assertTrue(verifyObject(IKernel, self.kernel))
        self.assertTrue(verifyObject(IKernelPort, self.kernel))

    def test_runtime(self):
        """When a kernel is built, then its local runtime provides IDelivery."""
        self.assertTrue(verifyObject(IDelivery, self.kernel.local))

    def test_network(self):
        """When a kernel joins the network, then the network is its links' ILinkOwner and its INetworkPort."""
        self.assertTrue(verifyObject(ILinkOwner, self.network))
        self.assertTrue(verifyObject(INetworkPort, self.network))
        self.assertIs(self.kernel.local.remote, self.network)

    def test_monitor(self):
        """When a kernel is built, then its monitor is the IEventSink the network and runtime report to."""
        self.assertTrue(verifyObject(IEventSink, self.kernel.monitor))
        self.assertIs(self.network.events, self.kernel.monitor)
        self.assertIs(self.kernel.local.events, self.kernel.monitor)

    def test_links_see_their_owner(self):
        """When two kernels link, then each link's owner is its kernel's network."""
        mesh = MemoryMesh()
        a, b = mesh.kernel("a"), mesh.kernel("b")
        mesh.link(a, b)
        mesh.settle()
        (link,) = a.network.links()
        self.assertIs(link.owner, a.network)
        self.assertEqual(link.peer.name, "b")


class PublicNamesTests(SynchronousTestCase):
    """
    What a user needs is importable from the package itself.
    """

    def test_errors_and_tls_at_top_level(self):
        """When a user imports from lightspeed, then the request errors and TLSConfig are there, the same objects."""
        import lightspeed
        from lightspeed import errors, tls

        for name in ("RemoteError", "RequestTimeout", "EncodeError", "BacklogFull", "Refused", "LinkClosed"):
            self.assertIs(getattr(lightspeed, name), getattr(errors, name))
            self.assertIn(name, lightspeed.__all__)
        self.assertIs(lightspeed.TLSConfig, tls.TLSConfig)
