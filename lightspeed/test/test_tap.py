# -*- test-case-name: lightspeed.test.test_tap -*-
"""
Tests for the twistd plugin (:obj:`lightspeed.tap`), including two real twistd
processes exchanging the seed's ping/pong.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import Any, List

from twisted.application.service import IServiceMaker
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

import lightspeed
from lightspeed.adverts import AdvertSigner
from lightspeed.kernel import Kernel
from lightspeed.service import ConnectService, ListenService
from lightspeed.tap import DEFAULT_LISTEN, NodeService, Options, makeService

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(lightspeed.__file__)))


class OptionsTests(SynchronousTestCase):
    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(list(argv))
        return options

    def test_defaults(self):
        """When no option is given, then the node listens on the seed's port on loopback only."""
        options = self.parse()
        self.assertEqual(options["listen"], [DEFAULT_LISTEN])
        self.assertIn("9876", DEFAULT_LISTEN)
        self.assertEqual(options["connect"], [])
        self.assertIsNone(options["kernel"])

    def test_repeatable(self):
        """When --listen and --connect repeat, then all are kept in order."""
        options = self.parse("--kernel", "k", "--listen", "tcp:1", "--listen", "unix:/x",
                             "--connect", "tcp:host=127.0.0.1:port=2", "--connect", "unix:path=/y")
        self.assertEqual(options["listen"], ["tcp:1", "unix:/x"])
        self.assertEqual(options["connect"], ["tcp:host=127.0.0.1:port=2", "unix:path=/y"])

    def test_listen_none(self):
        """When --listen none is given, then the node listens nowhere."""
        self.assertEqual(self.parse("--listen", "none")["listen"], [])

    def test_listen_none_mixed(self):
        """When --listen none is mixed with another --listen, then a UsageError."""
        self.assertRaises(usage.UsageError, self.parse, "--listen", "none", "--listen", "tcp:1")

    def test_bad_kernel_name(self):
        """When the kernel name is malformed, then a UsageError names it."""
        error = self.assertRaises(usage.UsageError, self.parse, "--kernel", "a/b")
        self.assertIn("a/b", str(error))

    def pki(self, *names: str) -> str:
        from lightspeed.tls import write_pki

        pki = self.mktemp()
        write_pki(pki, names)
        return pki

    def tls(self, pki: str, name: str, ca: str = "ca.crt") -> list:
        return ["--tls-cert", os.path.join(pki, f"{name}.crt"), "--tls-key", os.path.join(pki, f"{name}.key"),
                "--tls-ca", os.path.join(pki, ca)]

    def test_tls_signs_adverts(self):
        """When --tls-ca is given, then the node signs and requires signed adverts (unless --unsigned-adverts)."""
        pki = self.pki("n")
        options = self.parse("--kernel", "n", *self.tls(pki, "n"))
        self.assertIsInstance(options["signer"], AdvertSigner)
        (kernel,) = list(makeService(options))
        self.assertIs(kernel.network.signer, options["signer"])
        self.assertIsNone(self.parse("--kernel", "n", "--unsigned-adverts", *self.tls(pki, "n"))["signer"])

    def test_tls_cert_not_from_ca(self):
        """When the node's certificate is not from the given CA, then a UsageError says adverts cannot be signed."""
        pki, other = self.pki("n"), self.pki("m")
        error = self.assertRaises(usage.UsageError, self.parse, "--kernel", "n", *self.tls(pki, "n")[:4],
                                  "--tls-ca", os.path.join(other, "ca.crt"))
        self.assertIn("cannot sign adverts", str(error))

    def test_app(self):
        """When --app names module:function, then it is loaded; a missing one is a UsageError."""
        loaded = self.parse("--app", "lightspeed.demo:run")["apps"][0]
        import lightspeed.demo  # loaded by that parse

        self.assertIs(loaded, lightspeed.demo.run)
        self.assertRaises(usage.UsageError, self.parse, "--app", "lightspeed.demo:nothing")
        self.assertRaises(usage.UsageError, self.parse, "--app", "nocolon")

    def test_make_service(self):
        """When makeService runs, then its tree is the kernel with a listener, a connector and the app runner."""
        service = makeService(self.parse("--kernel", "otherbox", "--compression", "--listen", "tcp:0",
                                         "--connect", "tcp:host=127.0.0.1:port=1"))
        (kernel,) = list(service)
        self.assertIsInstance(kernel, Kernel)
        self.assertEqual(kernel.name, "otherbox")
        self.assertIs(service.getServiceNamed("otherbox"), kernel)
        listener, connector, node = list(kernel)
        self.assertIsInstance(listener, ListenService)
        self.assertIsInstance(connector, ConnectService)
        self.assertIsInstance(node, NodeService)
        self.assertIs(node.kernel, kernel)
        self.assertEqual(listener.factory.options.compression, True)
        self.assertFalse(kernel.running)

    def test_caller_files(self):
        """When --caller-files is given (or not), then the kernel's policy is it (relative); a bad one is a UsageError."""
        self.assertEqual(self.parse()["caller-files"], "relative")
        for policy in ("relative", "full", "name", "none"):
            (kernel,) = list(makeService(self.parse("--caller-files", policy, "--listen", "none")))
            self.assertEqual(kernel.caller_files, policy)
            self.assertEqual(kernel.network.caller_files.policy, policy)
        error = self.assertRaises(usage.UsageError, self.parse, "--caller-files", "absolute")
        self.assertIn("relative, full, name, none", str(error))

    def test_message_rate(self):
        """When --message-rate and --message-burst are given (or not), then the links' options carry them."""
        (kernel,) = list(makeService(self.parse("--listen", "tcp:0")))
        self.assertEqual((list(kernel)[0].factory.options.message_rate,
                          list(kernel)[0].factory.options.message_burst), (200000, 200000))
        (kernel,) = list(makeService(self.parse("--listen", "tcp:0", "--message-rate", "500", "--message-burst", "50")))
        listener = list(kernel)[0]
        self.assertEqual((listener.factory.options.message_rate, listener.factory.options.message_burst), (500, 50))
        for bad in (["--message-rate", "x"], ["--message-rate", "-1"], ["--message-burst", "0"]):
            self.assertRaises(usage.UsageError, self.parse, *bad)

    def test_plugin_found(self):
        """When twistd looks for plugins, then 'lightspeed' is among them."""
        names = [p.tapname for p in getPlugins(IServiceMaker)]
        self.assertIn("lightspeed", names)


class Output(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.text = ""
        self.ended: Deferred = Deferred()
        self.waiting: List[Any] = []

    def outReceived(self, data: bytes) -> None:
        self.text += data.decode("utf-8", "replace")
        for pattern, d in list(self.waiting):
            match = re.search(pattern, self.text)
            if match:
                self.waiting.remove((pattern, d))
                d.callback(match)

    errReceived = outReceived

    def expect(self, pattern: str) -> Deferred:
        d: Deferred = Deferred()
        self.waiting.append((pattern, d))
        self.outReceived(b"")
        return d

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


def twistd_argv(*args: str) -> List[str]:
    """
    The command line of a ``twistd lightspeed`` node in the foreground with
    ``args``; run it in :data:`CHECKOUT` with ``PYTHONPATH`` set to it.
    """
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            "--nodaemon", "--pidfile=", "lightspeed"] + list(args)


class TwistdTests(TestCase):
    timeout = 60

    def start(self, *args: str) -> Output:
        out = Output()
        env = dict(os.environ, PYTHONPATH=CHECKOUT)
        process = reactor.spawnProcess(out, sys.executable, twistd_argv(*args), env=env, path=CHECKOUT)

        def stop():
            if out.ended.called:
                return None
            process.signalProcess(signal.SIGTERM)
            return out.ended

        self.addCleanup(stop)
        return out

    @inlineCallbacks
    def test_two_nodes_ping_pong(self):
        """When two twistd nodes run the seed's programs, then the ping crosses and both pongs come back."""
        server = self.start("--kernel", "otherbox", "--listen", "tcp:0:interface=127.0.0.1",
                            "--app", "examples.pingpong:server")
        match = yield server.expect(r"listening on tcp:0:interface=127.0.0.1: IPv4Address\(type='TCP', "
                                    r"host='127.0.0.1', port=(\d+)\)")
        port = match.group(1)
        client = self.start("--kernel", "testbox", "--listen", "none",
                            "--connect", f"tcp:host=127.0.0.1:port={port}", "--app", "examples.pingpong:client")
        yield client.expect(r"Received 'pong' from poe://otherbox/mysession/: wazzup!")
        yield client.expect(r"Received Lightspeed request from: 'poe://otherbox/mysession/' State 'ping'")
        yield server.expect(r"Received 'ping' from poe://testbox/mysession/ -> how are you\?")

    @inlineCallbacks
    def test_two_nodes_over_tls(self):
        """When two twistd nodes are given certificates from 'lightspeed certs', then the ping/pong crosses over mutual TLS."""
        from lightspeed.tls import write_pki

        pki = os.path.abspath(self.mktemp())
        write_pki(pki, ["otherbox", "testbox"])

        def tls(name: str) -> list:
            return ["--tls-cert", os.path.join(pki, f"{name}.crt"), "--tls-key", os.path.join(pki, f"{name}.key"),
                    "--tls-ca", os.path.join(pki, "ca.crt")]

        server = self.start("--kernel", "otherbox", "--listen", "tcp:0:interface=127.0.0.1",
                            "--app", "examples.pingpong:server", *tls("otherbox"))
        match = yield server.expect(r"port=(\d+)\)")
        client = self.start("--kernel", "testbox", "--listen", "none",
                            "--connect", f"tcp:host=127.0.0.1:port={match.group(1)}",
                            "--app", "examples.pingpong:client", *tls("testbox"))
        yield client.expect(r"Received 'pong' from poe://otherbox/mysession/: wazzup!")
