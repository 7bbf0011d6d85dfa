# -*- test-case-name: lightspeed.test.test_cli -*-
"""
Tests for the ``lightspeed`` command line and TLS through twistd options.
"""

from __future__ import annotations

import io
import os
import stat
from contextlib import redirect_stdout

from cryptography import x509
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

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
