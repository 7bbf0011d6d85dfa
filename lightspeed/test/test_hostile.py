# -*- test-case-name: lightspeed.test.test_hostile -*-
"""
Hostile peers over real loopback TCP (issue 11): a peer that stops reading,
peers that never finish the handshake.
"""

from __future__ import annotations

from typing import Any, List

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater

from lightspeed.message import PONG
from lightspeed.test.test_network import Collector, RealKernels, wait_for
from lightspeed.wire.codec import dumps


class SlowReaderTests(RealKernels):

    @inlineCallbacks
    def test_slow_reader_closed_over_tcp(self):
        """When a linked peer stops reading, then its link closes as slow-reader within max_backlog plus one frame, and another link keeps delivering."""
        backlog = 256 * 1024
        log: List[Any] = []
        a, b, c = self.kernel("slow-a"), self.kernel("slow-b"), self.kernel("slow-c")
        b.spawn(Collector("s", log))
        listener = b.listen("tcp:0:interface=127.0.0.1", max_backlog=backlog)
        port = (yield listener.whenListening()).getHost().port
        yield a.connect(f"tcp:host=127.0.0.1:port={port}").whenConnected()
        yield c.connect(f"tcp:host=127.0.0.1:port={port}").whenConnected()
        yield wait_for(lambda: len(b.network.links()) == 2)
        (a_link,) = a.network.links()
        a_link.transport.pauseProducing()  # a stops reading
        (link,) = [link for link in b.network.links() if link.peer.name == "slow-a"]
        body = dumps([PONG, b"x" * 16000])  # a PONG nobody waits for is ignored
        highest = 0
        for turn in range(2000):
            if link.closed_reason is not None:
                break
            for i in range(8):
                link.send_body(body)
                if link.conn.state != "closed":
                    highest = max(highest, link.conn.pending_output)
            yield deferLater(reactor, 0, lambda: None)
        self.assertEqual(link.closed_reason.code, "slow-reader")
        self.assertLessEqual(highest, backlog + len(body) + 4)
        c.post("poe://slow-b/s/hit", "still here")
        yield wait_for(lambda: len(log) == 1)
        self.assertEqual(log[0][1], ("still here",))
        yield wait_for(lambda: [link.peer.name for link in b.network.links()] == ["slow-c"])
