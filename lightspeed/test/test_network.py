# -*- test-case-name: lightspeed.test.test_network -*-
"""
Kernels linked over real loopback TCP (and UNIX sockets) with the real
reactor: listen, connect, reconnect, post, request, shutdown.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, List

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from lightspeed import Kernel, Session
from lightspeed.errors import LinkClosed


def wait_for(predicate, timeout: float = 10.0, step: float = 0.01) -> Deferred:
    """
    Poll ``predicate`` on the reactor until it is true (the test's own
    timeout bounds it; this is about behaviour, not speed).
    """
    @inlineCallbacks
    def loop():
        waited = 0.0
        while not predicate():
            if waited > timeout:
                raise AssertionError("condition not reached")
            yield deferLater(reactor, step, lambda: None)
            waited += step

    return loop()


class Collector(Session):
    def __init__(self, alias: str, log: List[Any]) -> None:
        super().__init__()
        self.alias, self.log = alias, log

    def _start(self, event):
        event.kernel.alias_set(self.alias)

    def hit(self, event):
        self.log.append((event.kernel.name, event.args, event.sender.id))

    def ask(self, event):
        return ["answer", event.kernel.name] + list(event.args)


class RealKernels(TestCase):
    """
    Kernels on the real reactor, shut down after each test.
    """

    timeout = 30

    def kernel(self, name: str) -> Kernel:
        kernel = Kernel(name, reactor=reactor)
        self.addCleanup(kernel.shutdown)
        return kernel


class TCPTests(RealKernels):

    @inlineCallbacks
    def listen(self, kernel: Kernel, **options) -> Any:
        listener = kernel.listen("tcp:0:interface=127.0.0.1", **options)
        port = yield listener.whenListening()
        return port.getHost().port

    @inlineCallbacks
    def test_post_and_request_over_tcp(self):
        """When two kernels link over loopback TCP, then posts and requests cross both ways."""
        log: List[Any] = []
        a, b = self.kernel("tcp-a"), self.kernel("tcp-b")
        port = yield self.listen(b)
        yield a.connect(f"tcp:host=127.0.0.1:port={port}:bindAddress=127.0.0.1").whenConnected()
        a.spawn(Collector("s", log))
        b.spawn(Collector("s", log))
        a.post("poe://tcp-b/s/hit", "to-b")
        b.post("poe://tcp-a/s/hit", "to-a")
        yield wait_for(lambda: len(log) == 2)
        self.assertEqual(sorted(log), [("tcp-a", ("to-a",), "poe://tcp-b/"), ("tcp-b", ("to-b",), "poe://tcp-a/")])
        result = yield a.request("poe://tcp-b/s/ask", 1)
        self.assertEqual(result, ["answer", "tcp-b", 1])

    @inlineCallbacks
    def test_introspection_and_monitor_over_tcp(self):
        """When kernels link over loopback TCP, then one lists the other's sessions and states and watches its arrivals."""
        a, b, c = self.kernel("tcp-ia"), self.kernel("tcp-ib"), self.kernel("tcp-ic")
        seen: List[Any] = []
        a.monitor_register(["link_up", "kernel_up"], lambda topic, info: seen.append((topic, info["peer"])))
        port = yield self.listen(b)
        yield a.connect(f"tcp:host=127.0.0.1:port={port}").whenConnected()
        yield c.connect(f"tcp:host=127.0.0.1:port={port}").whenConnected()
        yield wait_for(lambda: ("kernel_up", "tcp-ic") in seen)
        self.assertIn(("link_up", "tcp-ib"), seen)
        b.spawn(Collector("s", []))
        sessions = yield a.list_sessions("tcp-ib")
        self.assertEqual(sessions, [["s"]])
        states = yield a.list_states("poe://tcp-ib/s")
        self.assertIn("hit", states["s"])
        arrived: List[Any] = []
        a.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("w"),
                               "ev": lambda e: arrived.append(e.args[1]["origin"])})
        ok = yield a.monitor_register("arrived", "poe://tcp-ia/w/ev", kernel="tcp-ib")
        self.assertIs(ok, True)
        c.post("poe://tcp-ib/s/hit", 1)
        yield wait_for(lambda: arrived)
        self.assertEqual(arrived, ["tcp-ic"])

    @inlineCallbacks
    def test_client_in_same_process_and_compression_password(self):
        """When a client links to a server in the same process with compression and a password, then it works."""
        log: List[Any] = []
        a, b = self.kernel("same-a"), self.kernel("same-b")
        port = yield self.listen(b, compression=True, password="pw")
        link = yield a.connect(f"tcp:host=127.0.0.1:port={port}", compression=True, password="pw").whenConnected()
        self.assertIs(link.peer.compression, True)
        b.spawn(Collector("s", log))
        a.post("poe://same-b/s/hit", "x" * 10000)
        yield wait_for(lambda: log)
        self.assertEqual(log[0][1], ("x" * 10000,))

    @inlineCallbacks
    def test_wrong_password_refused(self):
        """When the client's password is wrong, then its link is refused with 'auth'."""
        a, b = self.kernel("pw-a"), self.kernel("pw-b")
        port = yield self.listen(b, password="right")
        service = a.connect(f"tcp:host=127.0.0.1:port={port}", password="wrong")
        error = yield self.assertFailure(service.whenConnected(failAfterFailures=1), LinkClosed)
        self.assertEqual(error.code, "auth")
        self.assertEqual((a.network.links(), b.network.links()), ([], []))

    @inlineCallbacks
    def test_unix_socket(self):
        """When kernels link over a UNIX socket endpoint, then posts cross."""
        log: List[Any] = []
        path = os.path.join(tempfile.mkdtemp(), "ls.sock")
        a, b = self.kernel("unix-a"), self.kernel("unix-b")
        yield b.listen(f"unix:{path}").whenListening()
        yield a.connect(f"unix:path={path}").whenConnected()
        b.spawn(Collector("s", log))
        a.post("poe://unix-b/s/hit", 1)
        yield wait_for(lambda: log)
        self.assertEqual(log, [("unix-b", (1,), "poe://unix-a/")])

    @inlineCallbacks
    def test_reconnect_after_drop(self):
        """When the link drops, then the client reconnects by itself and messages flow again."""
        log: List[Any] = []
        a, b = self.kernel("re-a"), self.kernel("re-b")
        port = yield self.listen(b)
        link = yield a.connect(f"tcp:host=127.0.0.1:port={port}").whenConnected()
        b.spawn(Collector("s", log))
        link.transport.abortConnection()
        yield wait_for(lambda: a.network.links() and a.network.links()[0] is not link)
        a.post("poe://re-b/s/hit", 2)
        yield wait_for(lambda: log)
        self.assertEqual(log, [("re-b", (2,), "poe://re-a/")])

    @inlineCallbacks
    def test_three_kernel_chain(self):
        """When a and c both link only to b, then a post from a reaches c through b."""
        log: List[Any] = []
        a, b, c = self.kernel("ch-a"), self.kernel("ch-b"), self.kernel("ch-c")
        port = yield self.listen(b)
        yield a.connect(f"tcp:host=127.0.0.1:port={port}").whenConnected()
        yield c.connect(f"tcp:host=127.0.0.1:port={port}").whenConnected()
        c.spawn(Collector("s", log))
        yield wait_for(lambda: a.network.router.next_hop("ch-c") == "ch-b")
        a.post("poe://ch-c/s/hit", 3)
        yield wait_for(lambda: log)
        self.assertEqual(log, [("ch-c", (3,), "poe://ch-a/")])


class TCPMeshTests(TestCase):
    """
    The mesh scenarios of test_mesh, over real loopback TCP.
    """

    timeout = 60

    @inlineCallbacks
    def mesh(self, names: str, edges: str) -> Any:
        kernels = {}
        ports = {}
        for name in names:
            kernel = kernels[name] = Kernel(f"m{name}", reactor=reactor)
            self.addCleanup(kernel.shutdown)
            port = yield kernel.listen("tcp:0:interface=127.0.0.1").whenListening()
            ports[name] = port.getHost().port
        for edge in edges.split():
            yield kernels[edge[0]].connect(f"tcp:host=127.0.0.1:port={ports[edge[1]]}").whenConnected()
        everyone = {k.name for k in kernels.values()}
        yield wait_for(lambda: all(k.network.router.reachable() == everyone - {k.name} for k in kernels.values()))
        return kernels

    @inlineCallbacks
    def test_seed_example(self):
        """When the seed's two programs run on two TCP-linked kernels, then ping, pongs and 'confused' arrive."""
        import io
        import contextlib

        from lightspeed.examples.pingpong import PingClient, PingServer

        k = yield self.mesh("ab", "ab")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            k["b"].spawn(PingServer())
            client = PingClient(target="mb", interval=0.05)
            k["a"].spawn(client)
            yield wait_for(lambda: "Lightspeed request" in out.getvalue() and client.answered)
            k["a"].stop_session(client)
        text = out.getvalue()
        self.assertIn("Received 'ping' from poe://ma/mysession/ -> how are you?", text)
        self.assertIn("Received 'pong' from poe://mb/mysession/: wassup!", text)
        self.assertIn("Received 'pong' from poe://mb/mysession/: wazzup!", text)
        self.assertIn("Received Lightspeed request from: 'poe://mb/mysession/' State 'ping'", text)

    @inlineCallbacks
    def test_five_kernel_cycle(self):
        """When broadcasting and multicasting in a 5-kernel TCP mesh with cycles, then each intended session gets it exactly once."""
        log: List[Any] = []
        k = yield self.mesh("abcde", "ab bc cd de ea ac")
        for kernel in k.values():
            kernel.spawn(Collector("s", log))
            kernel.spawn(Collector("t", log))
        k["a"].post("poe://*/*/hit", 1)
        k["c"].post("poe://ma,mb,md/s/hit", 2)
        expected = 8 + 3
        yield wait_for(lambda: len(log) >= expected)
        yield deferLater(reactor, 0.1, lambda: None)  # would a duplicate still arrive?
        got = sorted((name, args) for name, args, _ in log)
        self.assertEqual(got, sorted([(f"m{n}", (1,)) for n in "bcde" for _ in "st"]
                                     + [(f"m{n}", (2,)) for n in "abd"]))


class LifecycleTests(RealKernels):
    @inlineCallbacks
    def test_listen_again_after_shutdown(self):
        """When a kernel shuts down and listens again, then the new listener starts."""
        kernel = self.kernel("again")
        yield kernel.listen("tcp:0:interface=127.0.0.1").whenListening()
        yield kernel.shutdown()
        port = yield kernel.listen("tcp:0:interface=127.0.0.1").whenListening()
        self.assertTrue(port.getHost().port > 0)

    @inlineCallbacks
    def test_refused_handshakes_back_off(self):
        """When handshakes keep being refused, then the connector counts them and its retry delay grows."""
        a, b = self.kernel("bo-a"), self.kernel("bo-b")
        port = yield b.listen("tcp:0:interface=127.0.0.1", password="right").whenListening()
        service = a.connect(f"tcp:host=127.0.0.1:port={port.getHost().port}", password="wrong")
        error = yield self.assertFailure(service.whenConnected(failAfterFailures=1), LinkClosed)
        self.assertEqual(error.code, "auth")
        self.assertGreaterEqual(service.failures, 1)
        self.assertGreater(service.delay, 0.5)  # later than a first retry

    @inlineCallbacks
    def test_kernel_in_application_tree(self):
        """When a kernel is a child of an application, then its listeners and connectors are in the tree and start and stop with it."""
        from twisted.application.service import Application, IService, IServiceCollection

        from lightspeed.service import ConnectService, ListenService

        application = Application("tree")
        a, b = Kernel("tree-a", reactor=reactor), self.kernel("tree-b")
        b_port = yield b.listen("tcp:0:interface=127.0.0.1").whenListening()
        a.setServiceParent(IServiceCollection(application))
        listener = a.listen("tcp:0:interface=127.0.0.1")
        connector = a.connect(f"tcp:host=127.0.0.1:port={b_port.getHost().port}")
        self.assertFalse(a.running)  # it waits for the application
        self.assertIsNone(listener.port)
        top = IService(application)
        top.startService()
        self.addCleanup(lambda: top.stopService() if top.running else None)
        yield listener.whenListening()
        link = yield connector.whenConnected()
        self.assertEqual(link.peer.name, "tree-b")
        self.assertEqual([type(child) for child in a], [ListenService, ConnectService])
        self.assertIs(IServiceCollection(application).getServiceNamed("tree-a"), a)
        yield deferLater(reactor, 0, lambda: None)  # ClientService cannot stop inside its own callback
        yield top.stopService()
        self.assertFalse(a.running)
        self.assertEqual(a.network.links(), [])
        self.assertIsNone(listener.port)

    def test_positional_tcp_host(self):
        """When a TLS connect uses the positional tcp:HOST:PORT form, then the host is the name checked."""
        from lightspeed.service import _endpoint_host

        self.assertEqual(_endpoint_host("tcp:127.0.0.1:9876", None), "127.0.0.1")
        self.assertEqual(_endpoint_host("tcp:host=example.org:port=1", None), "example.org")
        self.assertEqual(_endpoint_host("unix:path=/x", None), "")


class EndpointDescriptionTests(TestCase):
    def test_descriptions(self):
        """When a listener or connector is made, then log lines name its endpoint by its string (or class), never a repr."""
        from twisted.internet.endpoints import TCP4ClientEndpoint

        from lightspeed.service import _HandshakeEndpoint, listen_service

        kernel = Kernel("desc", reactor=reactor)
        listener = listen_service(kernel.network_start(), "tcp:0:interface=127.0.0.1", None, {})
        self.assertEqual(listener.description, "tcp:0:interface=127.0.0.1")
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", 1)
        # ClientService logs "Scheduling retry N to connect {endpoint}".
        self.assertEqual(repr(_HandshakeEndpoint(endpoint, "tcp:host=127.0.0.1:port=1")), "tcp:host=127.0.0.1:port=1")
        self.assertEqual(repr(_HandshakeEndpoint(endpoint)), "TCP4ClientEndpoint")
