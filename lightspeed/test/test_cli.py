# -*- test-case-name: lightspeed.test.test_cli -*-
"""
Tests for the ``lightspeed`` command line and TLS through twistd options.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from cryptography import x509
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

import lightspeed
from lightspeed.cli import main
from lightspeed.tap import Options


class CertsTests(SynchronousTestCase):
    def test_certs(self):
        """When 'lightspeed certs DIR a b' runs, then a CA and per-node certificates naming each node exist, keys private."""
        directory = self.mktemp()
        with redirect_stdout(io.StringIO()) as out:
            self.assertEqual(main(["certs", directory, "alpha", "beta"]), 0)
        self.assertEqual(sorted(os.listdir(directory)),
                         ["alpha.crt", "alpha.key", "beta.crt", "beta.key", "ca.crt", "ca.key"])
        self.assertIn("alpha.crt", out.getvalue())
        with open(os.path.join(directory, "alpha.crt"), "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertIn("alpha", names.get_values_for_type(x509.DNSName))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(directory, "alpha.key")).st_mode), 0o600)

    def test_ca_reused(self):
        """When certs runs again in the same directory, then the CA is kept and the new node is signed by it."""
        directory = self.mktemp()
        with redirect_stdout(io.StringIO()):
            main(["certs", directory, "alpha"])
            with open(os.path.join(directory, "ca.crt"), "rb") as f:
                before = f.read()
            main(["certs", directory, "gamma"])
        with open(os.path.join(directory, "ca.crt"), "rb") as f:
            self.assertEqual(f.read(), before)
        with open(os.path.join(directory, "gamma.crt"), "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        ca = x509.load_pem_x509_certificate(before)
        self.assertEqual(cert.issuer, ca.subject)

    def test_ca_names(self):
        """When certs makes CAs, then each default name is 'lightspeed CA <8 hex>' and --ca-name sets another."""
        names = []
        for extra in ([], [], ["--ca-name", "my CA"]):
            directory = self.mktemp()
            with redirect_stdout(io.StringIO()):
                main(["certs", directory, "alpha"] + extra)
            with open(os.path.join(directory, "ca.crt"), "rb") as f:
                names.append(x509.load_pem_x509_certificate(f.read()).subject.rfc4514_string())
        self.assertRegex(names[0], r"^CN=lightspeed CA [0-9a-f]{8}$")
        self.assertNotEqual(names[0], names[1])
        self.assertEqual(names[2], "CN=my CA")

    def test_bad_name(self):
        """When a node name is malformed, then the command fails without writing."""
        directory = self.mktemp()
        with redirect_stdout(io.StringIO()):
            self.assertRaises(SystemExit, main, ["certs", directory, "a/b"])
        self.assertFalse(os.path.exists(directory))


class TLSOptionTests(SynchronousTestCase):
    def test_tls_options(self):
        """When --tls-cert/--tls-key/--tls-ca are given, then the node's links get a TLSConfig."""
        directory = self.mktemp()
        with redirect_stdout(io.StringIO()):
            main(["certs", directory, "n"])
        options = Options()
        options.parseOptions(["--tls-cert", os.path.join(directory, "n.crt"), "--tls-key",
                              os.path.join(directory, "n.key"), "--tls-ca", os.path.join(directory, "ca.crt")])
        self.assertEqual(options["tls"].ca, os.path.join(directory, "ca.crt"))

    def test_tls_half(self):
        """When only --tls-cert is given, or a file is missing, then a UsageError."""
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--tls-cert", "x.crt"])
        self.assertRaises(usage.UsageError, Options().parseOptions,
                          ["--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key"])


def run_cli(*argv: str) -> tuple:
    """``(status, stdout, stderr)`` of ``lightspeed ARGV...`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status: Any = main(list(argv))
        except SystemExit as e:
            status = e.code
    return status, out.getvalue(), err.getvalue()


class CommandTests(SynchronousTestCase):
    """The commands against the shared two-node mesh (alpha, beta) of the ClientLite tests."""

    def setUp(self) -> None:
        from lightspeed.test.test_clientlite import start_mesh
        from lightspeed.test.twistdnodes import shared

        self.nodes = shared(start_mesh)
        self.server = f"tcp:127.0.0.1:{self.nodes[0].port}"

    def cli(self, *argv: str) -> tuple:
        return run_cli("--server", self.server, "--timeout", "10", *argv)

    def test_version(self):
        """When --version is asked, then the version is printed and the status is 0."""
        status, out, _ = run_cli("--version")
        self.assertEqual((status, out.strip()), (0, f"lightspeed {lightspeed.__version__}"))

    def test_request_json_args(self):
        """When arguments are JSON they travel as values, else as strings."""
        self.assertEqual(self.cli("request", "poe://beta/echo/ask", "1", '"2"', "x", "[3]", "true"),
                         (0, '[1, "2", "x", [3], true]\n', ""))
        self.assertEqual(self.cli("--json", "request", "poe://alpha/echo/add", "1", "2"), (0, "3\n", ""))

    def test_server_from_environment(self):
        """When LIGHTSPEED_SERVER is set, then it is the default server; --server after the command works too."""
        os.environ["LIGHTSPEED_SERVER"] = self.server
        self.addCleanup(os.environ.pop, "LIGHTSPEED_SERVER")
        self.assertEqual(run_cli("kernels"), (0, "alpha\nbeta\n", ""))
        self.assertEqual(run_cli("kernels", "--server", self.server, "--json"), (0, '["alpha", "beta"]\n', ""))

    def test_post(self):
        """When a post is sent, then the node gets it and the command prints nothing."""
        self.assertEqual(self.cli("post", "poe://beta/echo/hit", "cli-post"), (0, "", ""))
        self.nodes[1].expect(re.compile(r"hit beta \['cli-post'\]"))

    def test_post_undeliverable(self):
        """When a post names no session there, then the node's report is one line and status 1."""
        self.assertEqual(self.cli("post", "poe://beta/nosuch/x", "1"),
                         (1, "", "lightspeed: error: post to poe://beta/nosuch/x not delivered: undeliverable: "
                                 "poe://beta/nosuch/x (no session 'nosuch' in kernel 'beta')\n"))

    def test_call(self):
        """When a call's RSVP is a state name, then the reply is waited for and printed."""
        self.assertEqual(self.cli("call", "poe://beta/echo/add", "answer", "2", "3"), (0, "5\n", ""))

    def test_errors(self):
        """When the remote state fails, the kernel is unknown or nothing listens, then one line and status 1."""
        status, out, err = self.cli("request", "poe://beta/echo/boom")
        self.assertEqual((status, out, err), (1, "", "lightspeed: error: RemoteError: ValueError: it broke\n"))
        self.assertEqual(self.cli("request", "poe://nowhere/echo/x")[::2],
                         (1, "lightspeed: error: NoRoute: no route to kernel 'nowhere'\n"))
        status, _, err = run_cli("--server", "tcp:127.0.0.1:1", "kernels")
        self.assertEqual((status, err.count("\n"), err.startswith("lightspeed: error: tcp:127.0.0.1:1: ")),
                         (1, 1, True))
        self.assertEqual(self.cli("request", "not-a-destination")[0], 1)

    def test_sessions_states(self):
        """When sessions and states are asked, then the kernel's session and its states are listed."""
        self.assertEqual(self.cli("sessions", "beta"), (0, "echo\n", ""))
        status, out, _ = self.cli("--json", "states", "poe://beta/echo/")
        self.assertEqual(status, 0)
        self.assertIn("ask", json.loads(out)["echo"])

    def test_route_ping_trace(self):
        """When route, ping and trace ask for beta, then the path runs client, alpha, beta."""
        status, out, _ = self.cli("--json", "route", "beta")
        self.assertEqual(status, 0)
        self.assertEqual([hop["kernel"] for hop in json.loads(out)["path"]][1:], ["alpha", "beta"])
        status, out, _ = self.cli("--json", "ping", "beta", "--count", "2")
        result = json.loads(out)
        self.assertEqual((status, len(result["rtt"]), [h["kernel"] for h in result["hops"]][1:]),
                         (0, 2, ["alpha", "beta"]))
        status, out, _ = self.cli("--json", "trace", "beta")
        self.assertEqual((status, [h["kernel"] for h in json.loads(out)["hops"]][1:]), (0, ["alpha", "beta"]))

    def test_topology(self):
        """When the topology is asked, then the tree and the Graphviz text show the alpha-beta link."""
        status, out, _ = self.cli("topology")
        self.assertEqual(status, 0)
        self.assertRegex(out, r"^alpha\n`-- beta  \[cost \d+\]\n")
        status, out, _ = self.cli("topology", "--dot")
        self.assertRegex(out, r'"alpha" -- "beta" \[label="\d+"\];')

    def test_status(self):
        """When status is asked, then the server's counters print with a row per link, and --json gives them all."""
        status, out, err = self.cli("status")
        self.assertEqual((status, err), (0, ""))
        self.assertIn("kernel: alpha\n", out)
        self.assertRegex(out, r"\nlinks:\npeer +cost +rtt .*\nbeta +\d+ ")
        status, out, _ = self.cli("--json", "status", "beta")
        self.assertEqual((status, json.loads(out)["kernel"], list(json.loads(out)["links"])), (0, "beta", ["alpha"]))

    def test_bench(self):
        """When bench runs, then the count, rate and latency print, and a progress bar on stderr ends at 100 %."""
        status, out, err = self.cli("--json", "bench", "poe://alpha/echo/ask", "--count", "50")
        result = json.loads(out)
        self.assertEqual((status, result["count"], result["kind"], result["unacked"], result["undeliverable"]),
                         (0, 50, "request", 0, 0))
        self.assertEqual(sorted(result), ["bytes", "count", "kind", "lost", "max", "median", "min", "p99", "rate",
                                          "seconds", "unacked", "undeliverable"])
        self.assertEqual(result["rate"], 50 / result["seconds"])
        self.assertTrue(err.rstrip().endswith("100% 50/50"))
        status, out, _ = self.cli("bench", "--post", "poe://beta/echo/hit", "b", "--count", "20")
        self.assertEqual(status, 0)
        self.assertIn("20 posts in", out)

    def test_bench_summary(self):
        """When latencies are summed up, then min, median, p99 and max are the ordered values', and the rate."""
        from lightspeed.clibench import _summary

        self.assertEqual(_summary("request", 4, 2.0, 8, [0.4, 0.1, 0.3, 0.2]),
                         {"kind": "request", "count": 4, "seconds": 2.0, "rate": 2.0, "bytes": 8, "min": 0.1,
                          "median": 0.25, "max": 0.4, "p99": 0.4})
        self.assertEqual(_summary("post", 3, 0.0, 0, []), {"kind": "post", "count": 3, "seconds": 0.0, "rate": 0.0,
                                                           "bytes": 0})

    def test_tail(self):
        """When tail watches link_up, then the next client's link prints as one line."""
        import threading

        from lightspeed.clientlite import ClientLite

        result: list = []
        thread = threading.Thread(target=lambda: result.append(self.cli("tail", "link_up", "--count", "1")))
        thread.start()
        for _ in range(100):  # links come up until tail has seen one after it registered
            if not thread.is_alive():
                break
            ClientLite(self.server).connect().close(0)
            thread.join(0.1)
        thread.join(10)
        status, out, _ = result[0]
        self.assertEqual(status, 0)
        self.assertRegex(out, r"^\[alpha\] link_up \{.*\"peer\": \"lite-[0-9a-f]+\".*\}\n$")


class UnackedCommandTests(SynchronousTestCase):
    """Posts to a scripted server that never acknowledges (see test_litelink)."""

    def test_post_unacknowledged(self):
        """When the post is not acknowledged within --timeout, then one line and status 1."""
        from lightspeed.test.test_litelink import ScriptedServer

        server = ScriptedServer(self)
        self.assertEqual(run_cli("--server", server.endpoint, "--timeout", "1", "post", "poe://srv/s/x", "1"),
                         (1, "", "lightspeed: error: post to poe://srv/s/x not delivered: "
                                 "1 message to srv not acknowledged\n"))

    def test_bench_post_unacknowledged(self):
        """When bench --post's posts are not acknowledged, then it counts them, says so, and the status is 1."""
        from lightspeed.test.test_litelink import ScriptedServer

        server = ScriptedServer(self)
        status, out, _ = run_cli("--server", server.endpoint, "--timeout", "1", "--json", "bench", "--post",
                                 "poe://srv/s/x", "--count", "3")
        result = json.loads(out)
        self.assertEqual((status, result["count"], result["unacked"], result["undeliverable"], result["lost"]),
                         (1, 3, 3, 0, 0))


class OptionErrorTests(SynchronousTestCase):
    """Bad connection options: one line naming what is wrong, status 1."""

    def test_server_unknown_key(self):
        """When --server has a key ClientLite does not know, then one line names it."""
        self.assertEqual(run_cli("--server", "tcp:host=h:port=1:nope=2", "kernels"),
                         (1, "", "lightspeed: error: endpoint 'tcp:host=h:port=1:nope=2': unknown key 'nope' "
                                 "(a tcp: endpoint takes host=, port=)\n"))

    def test_server_ipv6_refused(self):
        """When --server is tcp:[::1]:PORT where nothing listens, then the error is the connection's, not the parse's."""
        import socket

        from twisted.trial.unittest import SkipTest

        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
                port = s.getsockname()[1]
        except OSError as e:
            raise SkipTest(f"no IPv6 loopback here: {e}")
        status, out, err = run_cli("--server", f"tcp:[::1]:{port}", "--timeout", "2", "kernels")
        self.assertEqual((status, out, err), (1, "", f"lightspeed: error: tcp:[::1]:{port}: Connection refused\n"))

    def test_missing_password_file(self):
        """When --password-file names a missing file, then the error names that file, not the server."""
        path = os.path.join(self.mktemp(), "password")
        self.assertEqual(run_cli("--server", "tcp:127.0.0.1:1", "--password-file", path, "kernels"),
                         (1, "", f"lightspeed: error: --password-file {path}: No such file or directory\n"))


class SecureCommandTests(SynchronousTestCase):
    """The commands with TLS and a password (the ClientLite tests' secure node)."""

    def setUp(self) -> None:
        from lightspeed.test.test_clientlite import pki, start_secure
        from lightspeed.test.twistdnodes import shared

        self.port = shared(start_secure)[0].port
        self.pki = pki()

    def test_tls_password(self):
        """When the certificate, CA and password file are given, then the request and kernels work."""
        p = lambda name: os.path.join(self.pki, name)  # noqa: E731
        common = ["--server", f"tls:host=127.0.0.1:port={self.port}", "--tls-cert", p("client.crt"),
                  "--tls-key", p("client.key"), "--tls-ca", p("ca.crt")]
        self.assertEqual(run_cli(*common, "--password-file", p("password"), "request", "poe://secure/echo/add", "4", "5"),
                         (0, "9\n", ""))
        # The node signs and requires signed adverts: the CLI signs its own.
        self.assertEqual(run_cli(*common, "--password-file", p("password"), "kernels"), (0, "secure\n", ""))
        with open(p("wrong"), "w") as f:
            f.write("wrong")
        status, out, err = run_cli(*common, "--password-file", p("wrong"), "kernels")
        self.assertEqual((status, out, err.count("\n")), (1, "", 1))
        self.assertTrue(err.startswith("lightspeed: error: LinkClosed: link closed (auth): wrong password"), err)
