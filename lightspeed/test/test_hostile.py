# -*- test-case-name: lightspeed.test.test_hostile -*-
"""
Hostile peers over real loopback TCP (issue 11): a peer that stops reading,
peers that never finish the handshake, and a short seeded fuzz run
(:obj:`lightspeed.test.fuzzer`; the long one is ``bench/fuzz.py``).
"""

from __future__ import annotations

import gc
from typing import Any, List

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater

from lightspeed.message import PONG
from lightspeed.test.fuzzer import Echo, FuzzRun, Honest, Tracebacks
from lightspeed.test.test_network import Collector, RealKernels, wait_for
from lightspeed.wire.codec import dumps
from lightspeed.wire.protocol import LinkProtocol


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


class FuzzTests(RealKernels):

    timeout = 60

    @inlineCallbacks
    def test_short_fuzz_run(self):
        """When 400 seeded hostile connections hit a node over TCP (random bytes, oversize and cut frames, hostile handshakes, mutated frames of every type), then nothing is logged as a traceback or critical, an honest link keeps delivering in order, and no closed link stays in memory."""
        node, honest = self.kernel("fuzz-node"), self.kernel("honest")
        node.spawn(Echo())
        listener = node.listen("tcp:0:interface=127.0.0.1", compression=True)
        port = (yield listener.whenListening()).getHost().port
        yield honest.connect(f"tcp:host=127.0.0.1:port={port}").whenConnected()
        session = Honest("fuzz-node", reactor.seconds)
        honest.spawn(session)
        tracebacks = Tracebacks().start()
        self.addCleanup(tracebacks.stop)
        stats = yield FuzzRun(reactor, "127.0.0.1", port, seed=11, connections=400, parallel=8).start()
        session.running = False
        yield wait_for(lambda: len(session.answered) == session.sent)
        self.assertEqual((tracebacks.failures, tracebacks.critical, tracebacks.first), (0, 0, None))
        self.assertEqual(session.answered, list(range(session.sent)))
        self.assertGreater(session.sent, 0)
        self.assertEqual(stats["connections"], 400)
        self.assertGreater(stats["frames"], 5000)
        self.assertEqual([link.peer.name for link in node.network.links()], ["honest"])
        # Nothing holds on to the links that closed (each may own zlib streams of hundreds of KiB).
        gc.collect()
        held = [o for o in gc.get_objects() if isinstance(o, LinkProtocol) and o.owner is node.network]
        self.assertEqual([(link.peer and link.peer.name, link.closed_reason) for link in held], [("honest", None)])
