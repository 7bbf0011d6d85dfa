# -*- test-case-name: lightspeed.test.test_litelink -*-
"""
ClientLite's link against a scripted server on a Unix socket: a thread
that speaks the handshake with the kernels' own sans-IO
:obj:`~lightspeed.wire.connection.Connection` and then does only what a
test tells it (ack or not, bounce, send a request), so that unacknowledged
posts, the window and answers written while reading are seen exactly.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
import threading
from typing import Any, Callable, List, Optional

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.clientlite import ClientLite, Delivery, Event, WindowFull
from lightspeed.errors import NoRoute, RequestTimeout
from lightspeed.message import (
    DEFAULT_HOPS, LSA, POST, REQUEST, RESPONSE, ROUTED, TRACE, UNDELIVERABLE, parse_routed,
    routed_from, routed_head,
)
from lightspeed.wire.codec import dumps, loads
from lightspeed.wire.connection import Connection, LinkConfig, PeerInfo

SERVER, INCARNATION = "srv", 5


class ScriptedServer:
    """
    One kernel ``srv`` on a Unix socket, one client at a time.

    :ivar payloads: ``(seq, payload)`` of every ROUTED message with a
        payload the server got, decoded, in order.
    :ivar on_up: called with the server and the client's :obj:`PeerInfo`
        once the handshake is done (default: :meth:`advertise`).
    :ivar on_payload: called with the server, seq and payload of each.
    """

    def __init__(self, test: SynchronousTestCase, others: Optional[dict] = None, colon: bool = False) -> None:
        directory = tempfile.mkdtemp(prefix="lite-", dir="/tmp")  # short: a socket path has ~100 bytes
        self.path = os.path.join(directory, "a:b" if colon else "s")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.others = others or {}
        self.payloads: List[tuple] = []
        self.ttls: List[Optional[int]] = []  # of each payload's message
        self.on_up: Callable[[Any, PeerInfo], None] = lambda server, peer: server.advertise()
        self.on_payload: Callable[[Any, int, Any], None] = lambda server, seq, payload: None
        self.on_trace: Callable[[Any, list], None] = lambda server, message: None
        self.got = threading.Condition()
        self.conn: Optional[Connection] = None
        self.peer: Optional[PeerInfo] = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        test.addCleanup(self.stop, directory)

    @property
    def endpoint(self) -> str:
        return "unix:" + self.path

    def stop(self, directory: str) -> None:
        self.listener.close()
        self.thread.join(10)
        os.unlink(self.path)
        os.rmdir(directory)

    def advertise(self, *extra: str) -> None:
        """The server's LSA (linked to the client and ``others``), then each other kernel's."""
        assert self.conn is not None and self.peer is not None
        links = [[self.peer.name, 1]] + [[k, 1] for k in self.others]
        self.conn.send_message([LSA, SERVER, INCARNATION, 1, links, None, {}])
        for kernel in extra:
            self.conn.send_message([LSA, kernel, self.others[kernel], 1, [[SERVER, 1]], None, {}])

    def routed(self, origin: str, seq: int, ack: int, payload: Any) -> None:
        """
        Send the client one ROUTED message from ``origin`` (``payload`` None: an ack alone), as a kernel
        writes it (:obj:`routed_from`).
        """
        assert self.conn is not None and self.peer is not None
        incarnation = INCARNATION if origin == SERVER else self.others[origin]
        body = b"" if payload is None else dumps(payload)
        head = routed_head(origin, incarnation, self.peer.name, self.peer.incarnation)
        self.conn.send_body(routed_from(head, seq, ack, DEFAULT_HOPS, None, body))

    def wait(self, count: int) -> List[tuple]:
        """The payloads once there are ``count`` of them (10 s at most)."""
        with self.got:
            self.got.wait_for(lambda: len(self.payloads) >= count, 10)
            return list(self.payloads)

    def _up(self, peer: PeerInfo) -> None:
        self.peer = peer
        self.on_up(self, peer)

    def _message(self, message: list) -> None:
        if message[0] == TRACE:
            self.on_trace(self, message)
        if message[0] != ROUTED:
            return
        _, _, entries, _, ttl, payload = parse_routed(message)
        if payload:
            seq = entries[0][2]
            decoded = loads(payload)
            self.ttls.append(ttl)
            with self.got:
                self.payloads.append((seq, entries[0][0], decoded))
                self.got.notify_all()
            self.on_payload(self, seq, decoded)

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return  # stopped before a client came
        with sock:
            self.conn = Connection(LinkConfig(SERVER, INCARNATION), lambda name, incarnation: None, self._up,
                                   self._message, lambda code, message, by_peer: None, lambda: None)
            self.conn.start()
            sock.sendall(self.conn.take_output())
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                self.conn.receive(data)
                out = self.conn.take_output()
                if out:
                    sock.sendall(out)


def post(arg: Any) -> list:
    """What a client's post of ``arg`` to poe://srv/s/x looks like to the server."""
    return [POST, ["s"], "x", [arg], "lite", None, None, None]


class FlushTests(SynchronousTestCase):
    def client(self, server: ScriptedServer, **kwargs: Any) -> ClientLite:
        client = ClientLite(server.endpoint, "lite-test", connect_timeout=10, **kwargs).connect()
        self.addCleanup(client.close, 0)
        return client

    def test_unacknowledged(self):
        """When the server never acks, then close() says how many posts to it were not acknowledged."""
        server = ScriptedServer(self)
        client = self.client(server)
        client.post("poe://srv/s/x", 1)
        client.post("poe://srv/s/x", 2)
        self.assertEqual([p[::2] for p in server.wait(2)], [(1, post(1)), (2, post(2))])
        report = client.close(0.05)
        self.assertEqual(report, Delivery({SERVER: 2}, []))
        self.assertFalse(report.ok)
        self.assertEqual(report.describe(), "2 messages to srv not acknowledged")

    def test_acknowledged_and_undeliverable(self):
        """When the server acks one post and reports it undeliverable, then flush() has the report, and only once."""
        server = ScriptedServer(self)
        notice = [UNDELIVERABLE, ["lite"], "_undeliverable", ["poe://srv/s/x", "no session 's'", [1]],
                  None, None, None, None]
        server.on_payload = lambda s, seq, payload: s.routed(SERVER, 1, seq, notice)
        client = self.client(server)
        client.post("poe://srv/s/x", 1)
        event = Event(UNDELIVERABLE, SERVER, "lite", "_undeliverable", ["poe://srv/s/x", "no session 's'", [1]], None)
        self.assertEqual(client.flush(10), Delivery({}, [event]))
        self.assertEqual(client.flush(0), Delivery({}, []))
        self.assertEqual(client.receive(0), event)  # still an event too
        self.assertEqual(Delivery({}, [event]).describe(), "undeliverable: poe://srv/s/x (no session 's')")
        self.assertTrue(Delivery({}, []).ok)

    def test_window_full(self):
        """When the window is full and no ack comes within the time-out, then WindowFull and nothing more is sent."""
        server = ScriptedServer(self)
        client = self.client(server, window=3, timeout=0.05)
        for i in range(3):
            client.post("poe://srv/s/x", i)
        error = self.assertRaises(WindowFull, client.post, "poe://srv/s/x", 3)
        self.assertEqual(str(error), "3 messages to kernel 'srv' are not acknowledged (window 3): not sent")
        self.assertEqual(client.close(0), Delivery({SERVER: 3}, []))
        self.assertEqual([p[0] for p in server.wait(3)], [1, 2, 3])

    def test_window_waits_for_acks(self):
        """When the server acks every second post, then a burst of 10 through a window of 2 is delivered in order."""
        server = ScriptedServer(self)
        server.on_payload = lambda s, seq, payload: s.routed(SERVER, 0, seq, None) if seq % 2 == 0 else None
        client = self.client(server, window=2)
        for i in range(10):
            client.post("poe://srv/s/x", i)
            self.assertLessEqual(len(client._out[SERVER].unacked), 2)
        self.assertEqual(client.close(10), Delivery({}, []))
        self.assertEqual([p[::2] for p in server.wait(10)], [(i + 1, post(i)) for i in range(10)])


class RestartTests(SynchronousTestCase):
    def client(self) -> tuple:
        """
        A client and its server, behind which kernel ``far`` restarts
        (advertises a new incarnation) on the first post to it, and then
        ``srv`` posts ``news`` to the client; nothing is acknowledged.
        """
        server = ScriptedServer(self, {"far": 9})
        server.on_up = lambda s, peer: s.advertise("far")

        def restart(s: ScriptedServer, seq: int, payload: Any) -> None:
            if s.others["far"] == 9:
                s.others["far"] = 10
                s.advertise("far")
                s.routed(SERVER, 1, 0, [POST, ["lite"], "news", [], None, None, None, None])

        server.on_payload = restart
        client = ClientLite(server.endpoint, "lite-test", connect_timeout=10).connect()
        self.addCleanup(client.close, 0)
        return server, client

    def test_posts_to_restarted_kernel_lost(self):
        """
        When a kernel restarts before it acknowledged a post, then flush()
        counts that post as lost to it, once, and a post after goes to the
        new start (unacknowledged, not lost).
        """
        server, client = self.client()
        client.post("poe://far/s/x", 1)
        self.assertEqual(client.receive(10), Event(POST, SERVER, "lite", "news", [], None))  # after the advert
        report = client.flush(0)
        self.assertEqual(report, Delivery({}, [], {"far": 1}))
        self.assertEqual((report.ok, report.describe()), (False, "1 message to far lost (the kernel restarted)"))
        client.post("poe://far/s/x", 2)
        self.assertEqual(client.flush(0.05), Delivery({"far": 1}, [], {}))
        self.assertEqual([p[:2] for p in server.wait(2)], [(1, "far"), (1, "far")])  # seq 1 of each start

    def test_post_after_restart(self):
        """When the next post to a restarted kernel comes before a flush, then the old start's post is lost."""
        server, client = self.client()
        client.post("poe://far/s/x", 1)
        client.receive(10)
        client.post("poe://far/s/x", 2)
        self.assertEqual(client.close(0.05), Delivery({"far": 1}, [], {"far": 1}))


class AnswerTests(SynchronousTestCase):
    def client(self, server: ScriptedServer) -> ClientLite:
        client = ClientLite(server.endpoint, "lite-test", connect_timeout=10).connect()
        self.addCleanup(client.close, 0)
        return client

    def test_answer_from_another_kernel_not_taken(self):
        """When a RESPONSE for a request's id comes from a kernel other than the one asked, then it is not
        the answer: the request times out."""
        server = ScriptedServer(self, {"far": 9})
        server.on_up = lambda s, peer: s.advertise("far")
        server.on_payload = lambda s, seq, payload: s.routed("far", 1, 0, [RESPONSE, [], payload[8], True, "forged"])
        client = self.client(server)
        error = self.assertRaises(RequestTimeout, client.request, "poe://srv/s/x", 1, timeout=0.3)
        self.assertEqual(str(error), "no answer to 'x' from kernel 'srv' within 0.3 s")

    def test_answers_not_waited_not_kept(self):
        """
        When answers come for a request that timed out and for ids never
        asked (1 MiB each), then they are dropped: the memory held after
        the next requests does not grow by them (measured after one more
        request, so that the server's thread holds only its small answer).
        """
        import gc
        import tracemalloc

        server = ScriptedServer(self)
        big = b"x" * (1 << 20)

        sent = [0]  # srv's seq to the client

        def send(s: ScriptedServer, ack: int, answer: list) -> None:
            sent[0] += 1
            s.routed(SERVER, sent[0], ack, answer)

        def answer(s: ScriptedServer, seq: int, payload: Any) -> None:
            request_id = payload[8]
            if seq == 1:
                return  # the first request times out
            if seq == 2:
                for other in [request_id - 1] + [request_id + 1000 + i for i in range(8)]:
                    send(s, 0, [RESPONSE, [], other, True, big])
            send(s, seq, [RESPONSE, [], request_id, True, payload[3][0]])

        server.on_payload = answer
        client = self.client(server)
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        self.assertRaises(RequestTimeout, client.request, "poe://srv/s/x", 1, timeout=0.05)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        self.assertEqual([client.request("poe://srv/s/x", n, timeout=10) for n in (2, 3)], [2, 3])
        gc.collect()
        self.assertLess(tracemalloc.get_traced_memory()[0] - before, 1 << 20)

    def test_trace_answered_by_another_hop(self):
        """When a trace fails at a hop before its destination, then that hop's answer is the trace's: NoRoute."""
        server = ScriptedServer(self, {"far": 9})
        server.on_up = lambda s, peer: s.advertise("far")
        server.on_trace = lambda s, message: s.routed(SERVER, 1, 0, [RESPONSE, [], message[2], False,
                                                                     ["NoRoute", "no route to kernel 'far' at 'srv'"]])
        client = self.client(server)
        error = self.assertRaises(NoRoute, client.trace, "far", timeout=10)
        self.assertEqual(str(error), "no route to kernel 'far' at 'srv'")


class SocketTests(SynchronousTestCase):
    def test_blocking_with_kernel_timeouts(self):
        """
        When the client reads from a plain socket, then the socket is
        blocking with SO_RCVTIMEO as the wait (one system call per read,
        no poll), set only when the wait changes, and a wait that runs out
        is "nothing came".
        """
        from lightspeed.liteparts import timeval

        server = ScriptedServer(self)
        client = ClientLite(server.endpoint, "lite-test", connect_timeout=10).connect()
        self.addCleanup(client.close, 0)
        sock = client._sock
        assert sock is not None
        self.assertIsNone(sock.gettimeout())
        self.assertIsNone(client.receive(0.01))
        self.assertIsNone(client._read(sock, 0.05))
        # The kernel keeps time-outs in its clock ticks: read back, 0.05 s is 0 s and some 50,000 us.
        seconds, micros = struct.unpack("@ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
        self.assertEqual((seconds, 40_000 <= micros <= 60_000), (0, True))
        self.assertEqual(struct.unpack("@ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16))[0], 10)
        self.assertEqual(client._wait, 0.05)
        self.assertEqual((timeval(2.25), timeval(0)), (struct.pack("@ll", 2, 250_000), struct.pack("@ll", 0, 1000)))


class ReentrancyTests(SynchronousTestCase):
    def test_request_answered_after_read(self):
        """
        When one read brings a request from a kernel whose advert comes in
        the same read, after it, then the client answers once the read is
        handled (not from inside it: no nested read, the link stays up) and
        the answer goes to that kernel.
        """
        server = ScriptedServer(self, {"far": 9})

        def up(s: ScriptedServer, peer: PeerInfo) -> None:
            s.advertise()
            s.routed("far", 1, 0, [REQUEST, ["lite"], "x", [], "asker", None, None, None, 42])
            s.advertise("far")

        server.on_up = up
        client = ClientLite(server.endpoint, "lite-test", connect_timeout=10).connect()
        self.addCleanup(client.close, 0)
        (seq, dest, answer), = server.wait(1)
        self.assertEqual((seq, dest, answer),
                         (1, "far", [RESPONSE, [], 42, False, ["NoSuchSession", "lite-test is a ClientLite"]]))
        assert client._conn is not None
        self.assertEqual(client._conn.state, "up")
        self.assertEqual(client._in["far"][1], 1)

    def test_no_read_inside_read(self):
        """When anything reads from inside a read, then RuntimeError: frames are never handled out of order."""
        client = ClientLite("unix:/nonexistent")
        client._reading = True
        self.assertRaises(RuntimeError, client._pump, lambda: False, 0.0)


class QuickPathTests(SynchronousTestCase):
    def test_request_answered_in_one_read(self):
        """When the answer (with the ack of the request) comes as one frame, then the request returns it
        without the full read path, acknowledged, the answer's ack owed to the server."""
        server = ScriptedServer(self)

        def answer(s: ScriptedServer, seq: int, payload: Any) -> None:
            s.routed(SERVER, len(s.payloads), seq, [RESPONSE, [], payload[8], True, payload[3][0] * 2])

        server.on_payload = answer
        client = ClientLite(server.endpoint, "lite-test", connect_timeout=10).connect()
        self.addCleanup(client.close, 0)
        client.request("poe://srv/s/x", 1)  # the server's stream to us begins
        taken: List[bytes] = []
        client._take = lambda conn, data: taken.append(data)  # type: ignore[method-assign]
        self.assertEqual([client.request("poe://srv/s/x", n, timeout=7) for n in (2, 3)], [4, 6])
        self.assertEqual((taken, client._out[SERVER].unacked, client._in[SERVER][:2], list(client._owed)),
                         ([], {}, [INCARNATION, 3], [SERVER]))
        # Written from the destination's template: the kernels' parsers read the same fields.
        self.assertEqual([(seq, payload[:8]) for seq, _, payload in server.payloads[1:]],
                         [(n, [REQUEST, ["s"], "x", [n], "lite", None, None, None]) for n in (2, 3)])
        self.assertEqual(server.ttls[1:], [7000, 7000])

    def test_answer_for_another_id_not_taken(self):
        """When a hostile server answers a request first with an answer for another id, then that answer is
        not taken for it: the request returns the one with its own id."""
        server = ScriptedServer(self)

        def answer(s: ScriptedServer, seq: int, payload: Any) -> None:
            s.routed(SERVER, 1, seq, [RESPONSE, [], payload[8] + 1, True, "wrong"])
            s.routed(SERVER, 2, seq, [RESPONSE, [], payload[8], True, "right"])

        server.on_payload = answer
        client = ClientLite(server.endpoint, "lite-test", connect_timeout=10).connect()
        self.addCleanup(client.close, 0)
        self.assertEqual(client.request("poe://srv/s/x", 1, timeout=5), "right")


class BoundTests(SynchronousTestCase):
    """
    What a server sends cannot make a client hold more than its bounds:
    unread events, kernels' adverts, incoming streams.
    """

    def test_unread_events_bounded(self):
        """When more posts arrive than max_events and none are read, then the oldest are dropped and counted."""
        client = ClientLite("unix:/nonexistent/lite-bounds", "lite-b")
        client.max_events = 3
        for n in range(5):
            client._deliver("srv", [POST, ["lite"], "hit", [n], "s", None, None, None])
        self.assertEqual(([event.args[0] for event in client.events], client.events_dropped), ([2, 3, 4], 2))

    def test_adverts_bounded(self):
        """When adverts of more kernels than MAX_KERNELS come, then those past the bound are not kept."""
        from lightspeed.liteparts import MAX_KERNELS

        client = ClientLite("unix:/nonexistent/lite-bounds", "lite-b")
        for n in range(MAX_KERNELS + 5):
            client._message([LSA, f"k{n}", 1, 1, [["srv", 1]], None, {}])
        self.assertEqual(len(client._lsas), MAX_KERNELS)
        client._message([LSA, "k0", 1, 2, [["srv", 1]], None, {}])  # a kept kernel's newer advert still counts
        self.assertEqual(client._lsas["k0"][:2], (1, 2))

    def test_unreachable_adverts_make_room(self):
        """When the bound is reached and a new kernel advertises, then the adverts of kernels no longer reachable go first."""
        from lightspeed.liteparts import MAX_KERNELS

        client = ClientLite("unix:/nonexistent/lite-bounds", "lite-b")
        client.peer = PeerInfo("srv", 1, False)
        client._message([LSA, "srv", 1, 1, [["lite-b", 1], ["k0", 1]], None, {}])
        for n in range(MAX_KERNELS - 1):
            client._message([LSA, f"k{n}", 1, 1, [["srv", 1]], None, {}])
        client._message([LSA, "new", 1, 1, [["srv", 1]], None, {}])
        self.assertEqual(sorted(client._lsas), ["k0", "new", "srv"])  # k1.. were not reachable: srv lists only k0

    def test_streams_bounded(self):
        """When messages come from more origins than MAX_KERNELS, then no stream is made past the bound."""
        from lightspeed.liteparts import MAX_KERNELS, receive_entries

        streams: dict = {f"k{n}": [1, 0, 0] for n in range(MAX_KERNELS)}
        self.assertFalse(receive_entries("lite-b", 7, "late", 1, [["lite-b", 7, 1, 0]], streams, (), None, False))
        self.assertNotIn("late", streams)
        self.assertTrue(receive_entries("lite-b", 7, "k1", 1, [["lite-b", 7, 1, 0]], streams, (), None, False))
        # a kernel whose advert is held gets a stream past the bound
        self.assertTrue(receive_entries("lite-b", 7, "late", 1, [["lite-b", 7, 1, 0]], streams, {"late"}, None, False))
