# -*- test-case-name: lightspeed.test.test_demo -*-
"""
Tests for :obj:`lightspeed.demo`, what ``make run`` shows before the network.
"""

import io

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from lightspeed import Kernel
from lightspeed.demo import run


class DemoTests(SynchronousTestCase):
    def test_ping_pong(self):
        """When the demo runs, then the seed's ping, two pongs and the 'confused' line are printed, then done."""
        clock = Clock()
        kernel = Kernel("testbox", reactor=clock)
        out = io.StringIO()
        done = []
        run(kernel, out, lambda: done.append(True))
        clock.advance(0.1)
        kernel.flush()
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0], "Received 'ping' from 2 -> how are you?")
        self.assertEqual(lines[1:3], ["Received 'pong' from 1: wassup!", "Received 'pong' from 1: wazzup!"])
        self.assertTrue(lines[3].startswith("Received regular request from: '1' State 'ping' File '"))
        self.assertEqual(done, [True])
