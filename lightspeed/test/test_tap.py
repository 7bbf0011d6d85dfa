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
from lightspeed.tap import DEFAULT_LISTEN, NodeService, Options, QuietLogs, makeService, quiet_port_noise

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(lightspeed.__file__)))


def kernel_of(top: Any) -> Any:
    """
    The kernel in the service tree ``makeService`` made (beside QuietLogs).
    """
    (kernel,) = [service for service in top if not isinstance(service, QuietLogs)]
    return kernel


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
        (_, kernel) = list(makeService(options))
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
        (quiet, kernel) = list(service)
        self.assertIsInstance(quiet, QuietLogs)
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

    def test_version(self):
        """When --version is given, then lightspeed's version (and Twisted's) is printed and the parse exits 0."""
        import io
        import contextlib

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            error = self.assertRaises(SystemExit, self.parse, "--version")
        self.assertEqual(error.code, 0)
        self.assertTrue(out.getvalue().startswith(f"lightspeed {lightspeed.__version__} (Twisted "), out.getvalue())

    def test_port_noise(self):
        """When Twisted logs a port opening or closing, then the node's filter drops it and passes the rest."""
        from twisted.logger import PredicateResult

        def legacy(text: str) -> dict:
            return {"log_namespace": "log_legacy", "log_text": text}

        for noise in ("LinkFactory starting on 9876", "LinkFactory (TLS) starting on 9876", "(TCP Port 9876 Closed)", "(UNIX Port /tmp/x.sock Closed)"):
            self.assertEqual(quiet_port_noise(legacy(noise)), PredicateResult.no)
        self.assertEqual(quiet_port_noise(legacy("Received SIGTERM, shutting down.")), PredicateResult.maybe)
        self.assertEqual(quiet_port_noise({"log_namespace": "lightspeed", "log_text": "x starting on y"}),
                         PredicateResult.maybe)

    def test_quiet_logs(self):
        """When QuietLogs starts, then every observer of the publisher is behind the port-noise filter."""
        from twisted.logger import LogPublisher

        publisher, seen = LogPublisher(), []  # type: ignore[var-annotated]
        publisher.addObserver(seen.append)  # type: ignore[arg-type]
        QuietLogs(publisher).startService()
        publisher({"log_namespace": "log_legacy", "log_text": "LinkFactory starting on 1"})
        publisher({"log_namespace": "log_legacy", "log_text": "hello"})
        self.assertEqual([e["log_text"] for e in seen], ["hello"])

    def test_caller_files(self):
        """When --caller-files is given (or not), then the kernel's policy is it (relative); a bad one is a UsageError."""
        self.assertEqual(self.parse()["caller-files"], "relative")
        for policy in ("relative", "full", "name", "none"):
            kernel = kernel_of(makeService(self.parse("--caller-files", policy, "--listen", "none")))
            self.assertEqual(kernel.caller_files, policy)
            self.assertEqual(kernel.network.caller_files.policy, policy)
        error = self.assertRaises(usage.UsageError, self.parse, "--caller-files", "absolute")
        self.assertIn("relative, full, name, none", str(error))

    def test_message_rate(self):
        """When --message-rate and --message-burst are given (or not), then the links' options carry them."""
        kernel = kernel_of(makeService(self.parse("--listen", "tcp:0")))
        self.assertEqual((list(kernel)[0].factory.options.message_rate,
                          list(kernel)[0].factory.options.message_burst), (200000, 200000))
        kernel = kernel_of(makeService(self.parse("--listen", "tcp:0", "--message-rate", "500", "--message-burst", "50")))
        listener = list(kernel)[0]
        self.assertEqual((listener.factory.options.message_rate, listener.factory.options.message_burst), (500, 50))
        for bad in (["--message-rate", "x"], ["--message-rate", "-1"], ["--message-burst", "0"]):
            self.assertRaises(usage.UsageError, self.parse, *bad)

    def test_plugin_found(self):
        """When twistd looks for plugins, then 'lightspeed' is among them."""
        names = [p.tapname for p in getPlugins(IServiceMaker)]
        self.assertIn("lightspeed", names)


class NodeDown(Exception):
    """
    A twistd node ended, or did not print what a test waited for in time.
    """


class Output(protocol.ProcessProtocol):
    """
    A twistd process's output.  :obj:`expect` fails at once, with the
    whole log, when the process ends without printing what it waits for,
    and after :obj:`patience` seconds if it stays silent.
    """

    patience = 20.0

    def __init__(self) -> None:
        self.text = ""
        self.ended: Deferred = Deferred()
        self.status: Any = None
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
        if not d.called:
            if self.ended.called:
                self.give_up(f"the node had ended without printing {pattern!r}")
            else:
                late = reactor.callLater(self.patience, self.give_up,
                                         f"the node printed no {pattern!r} in {self.patience:.0f} s")

                def settled(result: Any) -> Any:
                    if late.active():
                        late.cancel()
                    return result

                d.addBoth(settled)
        return d

    def give_up(self, why: str) -> None:
        waiting, self.waiting = self.waiting, []
        for _, d in waiting:
            d.errback(NodeDown(f"{why}; its log:\n{self.text}"))

    def processEnded(self, reason: Any) -> None:
        self.status = reason.value
        self.ended.callback(None)
        self.give_up(f"the node ended ({reason.getErrorMessage()})")


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
        cwd = self.mktemp()
        os.makedirs(cwd)
        process = reactor.spawnProcess(out, sys.executable, twistd_argv(*args), env=env, path=cwd)

        def stop():
            if out.ended.called:
                return None
            process.signalProcess(signal.SIGTERM)
            return out.ended

        self.addCleanup(stop)
        return out

    @inlineCallbacks
    def test_node_down_fails_fast(self):
        """When a node exits before printing what a test waits for, then the wait fails at once with the node's log."""
        node = self.start("--kernel", "k", "--listen", "none", "--app", "no_such_module:app")
        failure = yield self.assertFailure(node.expect("listening on"), NodeDown)
        self.assertIn("no_such_module", str(failure))
        self.assertIn("ended", str(failure))

    @inlineCallbacks
    def test_two_nodes_ping_pong(self):
        """
        When two twistd nodes run the seed's programs, then the ping crosses,
        both pongs and 'confused' come back, the client exits 0, the server
        logs the clean shutdown at info, and neither log shows object reprs
        or Twisted's port noise.
        """
        server = self.start("--kernel", "otherbox", "--listen", "tcp:0:interface=127.0.0.1",
                            "--app", "lightspeed.examples.pingpong:server")
        yield server.expect(rf"lightspeed {re.escape(lightspeed.__version__)} kernel otherbox started")
        match = yield server.expect(r"listening on tcp:0:interface=127.0.0.1: 127\.0\.0\.1:(\d+)\n")
        port = match.group(1)
        client = self.start("--kernel", "testbox", "--listen", "none",
                            "--connect", f"tcp:host=127.0.0.1:port={port}", "--app", "lightspeed.examples.pingpong:client")
        yield client.expect(r"Received 'pong' from poe://otherbox/mysession/: wazzup!")
        yield client.expect(r"Received Lightspeed request from: 'poe://otherbox/mysession/' State 'ping'")
        yield server.expect(r"Received 'ping' from poe://testbox/mysession/ -> how are you\?")
        yield client.ended
        self.assertEqual(client.status.exitCode, 0, client.text)
        yield server.expect(r"\[lightspeed\.wire\.protocol\.LinkProtocol#info\] kernel otherbox: "
                            r"link to testbox closed by the peer: shutdown")
        for text in (server.text, client.text):
            self.assertNotRegex(text, r"object at 0x|IPv4Address|starting on|Port \d+ Closed|#warn|Traceback")

    @inlineCallbacks
    def test_port_taken(self):
        """When the node's port is taken, then it exits 1 at once with one line saying why, and no traceback."""
        taken = reactor.listenTCP(0, protocol.ServerFactory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        port = taken.getHost().port  # type: ignore[attr-defined]
        node = self.start("--kernel", "k", "--listen", f"tcp:{port}:interface=127.0.0.1")
        yield node.ended
        self.assertEqual(node.status.exitCode, 1, node.text)
        lines = [line for line in node.text.splitlines() if "cannot listen" in line]
        self.assertEqual(len(lines), 1, node.text)
        self.assertIn(f"kernel k cannot listen on tcp:{port}:interface=127.0.0.1: ", lines[0])
        self.assertIn("Address already in use", lines[0])
        self.assertNotIn("Traceback", node.text)

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
                            "--app", "lightspeed.examples.pingpong:server", *tls("otherbox"))
        match = yield server.expect(r"listening on tcp:0:interface=127.0.0.1: 127\.0\.0\.1:(\d+)\n")
        client = self.start("--kernel", "testbox", "--listen", "none",
                            "--connect", f"tcp:host=127.0.0.1:port={match.group(1)}",
                            "--app", "lightspeed.examples.pingpong:client", *tls("testbox"))
        yield client.expect(r"Received 'pong' from poe://otherbox/mysession/: wazzup!")
        yield client.ended
        self.assertEqual(client.status.exitCode, 0, client.text)
        for text in (server.text, client.text):
            self.assertNotRegex(text, r"object at 0x|IPv4Address|starting on|Port \d+ Closed|Traceback")
