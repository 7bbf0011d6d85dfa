# -*- test-case-name: lightspeed.test.test_package -*-
"""
Tests for the package's public surface (:obj:`lightspeed`): what it exports,
what it loads lazily, and its version.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import lightspeed
from lightspeed.version import __version__


class ExportTests(SynchronousTestCase):
    def test_all_names_resolve(self):
        """When a program imports every name of lightspeed.__all__, then each resolves, the lazy ones included."""
        for name in lightspeed.__all__:
            self.assertIsNotNone(getattr(lightspeed, name), name)
        from lightspeed.testing import MemoryMesh
        from lightspeed.tls import TLSConfig

        self.assertIs(lightspeed.MemoryMesh, MemoryMesh)
        self.assertIs(lightspeed.TLSConfig, TLSConfig)
        self.assertIn("MemoryMesh", dir(lightspeed))

    def test_unknown_name(self):
        """When a name the package does not have is asked for, then AttributeError names it."""
        error = self.assertRaises(AttributeError, getattr, lightspeed, "NoSuchThing")
        self.assertIn("NoSuchThing", str(error))

    def test_import_is_cheap(self):
        """When a program imports lightspeed, then neither pyOpenSSL/cryptography nor the test kit is loaded."""
        code = ("import sys, lightspeed; "
                "print(sorted(m for m in ('OpenSSL', 'cryptography', 'lightspeed.tls', 'lightspeed.testing', "
                "'twisted.internet.testing') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        self.assertEqual(out.strip(), "[]")

    def test_version(self):
        """When the version is read from the package, then it is the one setuptools reads from lightspeed.version."""
        self.assertEqual(lightspeed.__version__, __version__)
        self.assertRegex(__version__, r"^\d+\.\d+\.\d+")
