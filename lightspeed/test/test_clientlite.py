# -*- test-case-name: lightspeed.test.test_clientlite -*-
"""
ClientLite against real ``twistd lightspeed`` nodes over loopback: one mesh
of two nodes (alpha listens, beta links to it) per test class, and one
node with mutual TLS and a password.
"""

from __future__ import annotations

import os
import re
import socket
from typing import List

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.clientlite import ClientLite, Delivery, Event, tls_context
from lightspeed.errors import LinkClosed, NoRoute, NoSuchSession, RemoteError, RequestTimeout
from lightspeed.liteparts import Out, parse_endpoint, reachable, receive_entries
from lightspeed.message import CALLREPLY, POST, UNDELIVERABLE
from lightspeed.test.twistdnodes import TwistdNode, shared

APP = "lightspeed.test.liteapp:app"


def start_mesh() -> List[TwistdNode]:
    """alpha, listening on a free loopback port, and beta linked to it."""
    alpha = TwistdNode("--kernel", "alpha", "--listen", "tcp:0:interface=127.0.0.1", "--app", APP)
    try:
        beta = TwistdNode("--kernel", "beta", "--listen", "none", "--connect",
                          f"tcp:host=127.0.0.1:port={alpha.port}", "--app", APP, listen=False,
                          ready=r"link up: beta <-> alpha")
    except Exception:
        alpha.stop()
        raise
    return [alpha, beta]


class MeshCase(SynchronousTestCase):
    """Tests on the two-node mesh; :attr:`server` is alpha's endpoint."""

    def setUp(self) -> None:
        self.nodes = shared(start_mesh)

    @property
    def server(self) -> str:
        return f"tcp:127.0.0.1:{self.nodes[0].port}"

    def client(self, **kwargs) -> ClientLite:
        client = ClientLite(self.server, timeout=10, **kwargs).connect()
        self.addCleanup(client.close, 1.0)
        return client


class ClientLiteTests(MeshCase):
    def test_request(self):
        """When the client requests from the server and from a kernel behind it, then both values come back."""
        client = self.client()
        self.assertEqual(client.request("poe://alpha/echo/ask", 1, "two", [3]), [1, "two", [3]])
        self.assertEqual(client.request("poe://beta/echo/add", 1, 2), 3)

    def test_request_errors(self):
        """When the remote state raises or names no session, then RemoteError / NoSuchSession."""
        client = self.client()
        error = self.assertRaises(RemoteError, client.request, "poe://beta/echo/boom")
        self.assertEqual(error.remote_type, "ValueError")
        self.assertRaises(NoSuchSession, client.request, "poe://beta/nosuch/x")

    def test_no_route(self):
        """When the kernel does not exist, then NoRoute at once."""
        self.assertRaises(NoRoute, self.client().request, "poe://gamma/echo/ask")

    def test_request_timeout(self):
        """When the state never answers within the time-out, then RequestTimeout."""
        self.assertRaises(RequestTimeout, self.client().request, "poe://beta/echo/slow", timeout=0.3)

    def test_call_and_post_back(self):
        """When the client calls with an RSVP to itself and a state posts back, then both arrive as events."""
        client = self.client()
        client.call("poe://beta/echo/add", f"poe://{client.name}/lite/answer", 5, 6)
        event = client.receive(10)
        self.assertEqual(event, Event(CALLREPLY, "beta", "lite", "answer", [11], "echo"))
        client.post("poe://beta/echo/ping", "x")
        self.assertEqual(client.receive(10), Event(POST, "beta", "lite", "pong", ["x"], "echo"))

    def test_post_delivered(self):
        """When the client posts and closes, then the post was acknowledged (the node prints it)."""
        with ClientLite(self.server) as client:
            client.post("poe://beta/echo/hit", "delivered-1")
        self.assertEqual([out.unacked for out in client._out.values()], [{}])
        self.nodes[1].expect(re.compile(r"hit beta \['delivered-1'\]"))

    def test_post_undeliverable(self):
        """When a post names no session there, then close() has the node's report and nothing unacknowledged."""
        client = ClientLite(self.server).connect()
        client.post("poe://beta/nosuch/x", 1)
        client.post("poe://beta/echo/hit", "fine")
        self.assertEqual(client.close(10), Delivery({}, [
            Event(UNDELIVERABLE, "beta", "lite", "_undeliverable",
                  ["poe://beta/nosuch/x", "no session 'nosuch' in kernel 'beta'", [1]], None)]))

    def test_hidden(self):
        """When kernels are listed, then the clients are hidden unless asked, and '*' does not reach them."""
        client, other = self.client(), self.client()
        self.assertEqual(client.list_kernels(), ["alpha", "beta"])
        self.assertIn(client.name, client.list_kernels(hidden=True))
        self.assertEqual(client.control("alpha", "sessions"), [["echo"]])
        client.post("poe://*/lite/x", 1)
        # '*' named the visible kernels only: streams went to alpha and beta, none to the other client,
        # and each of the two answered (no session 'lite' there).
        self.assertEqual(sorted(client._out), ["alpha", "beta"])
        report = client.flush(10)
        self.assertEqual((report.unacked, sorted((e.origin, e.args[0]) for e in report.undeliverable)),
                         ({}, [("alpha", "poe://alpha/lite/x"), ("beta", "poe://beta/lite/x")]))

    def test_kernel_broadcast_skips_client(self):
        """When a node posts to '*', then the other node gets it and the hidden client does not."""
        client = self.client()
        client.request("poe://alpha/echo/broadcast", "to-all")
        self.nodes[1].expect(re.compile(r"hit beta \['to-all'\]"))
        # A post of alpha's to the client would come in alpha's stream before this answer.
        self.assertEqual(client.request("poe://alpha/echo/ask", "after"), ["after"])
        self.assertEqual(list(client.events), [])

    def test_control(self):
        """When the client asks for states, route and ping, then each kernel answers."""
        client = self.client()
        self.assertIn("ask", client.control("beta", "states", sessions=["echo"])["echo"])
        self.assertEqual(client.control("alpha", "route", "beta")["next"], "beta")
        self.assertGreater(client.ping("beta"), 0)

    def test_monitor(self):
        """When the client watches alpha's link_up events, then a new link is reported."""
        client = self.client()
        self.assertTrue(client.control("alpha", "monitor_register", ["link_up"], f"poe://{client.name}/lite/event"))
        other = self.client()
        event = client.receive(10)
        assert event is not None
        self.assertEqual((event.state, event.args[0], event.args[1]["peer"]), ("event", "link_up", other.name))

    def test_reconnect(self):
        """When the link was cut under the client, then the next send reconnects once and goes through."""
        client = self.client()
        assert client._sock is not None
        client._sock.shutdown(socket.SHUT_RDWR)
        self.assertEqual(client.request("poe://alpha/echo/ask", 1), [1])

    def test_reconnect_sends_once(self):
        """When a send fails and the client reconnects, then the payload keeps its one sequence number (sent once)."""
        client = self.client()
        client.request("poe://alpha/echo/ask", 0)
        before = client._out["alpha"].seq
        assert client._sock is not None
        client._sock.shutdown(socket.SHUT_RDWR)
        self.assertEqual(client.request("poe://alpha/echo/ask", 1), [1])
        self.assertEqual(client._out["alpha"].seq, before + 1)

    def test_context_and_close(self):
        """When the client is used as a context manager, then it is connected inside and closed after."""
        with ClientLite(self.server) as client:
            self.assertEqual(client.peer and client.peer.name, "alpha")
        self.assertIsNone(client.peer)


class EndpointTests(SynchronousTestCase):
    def test_forms(self):
        """When endpoints come in their forms, then family, address and TLS are found."""
        self.assertEqual(parse_endpoint("tcp:127.0.0.1:9"), ("tcp", ("127.0.0.1", 9), False))
        self.assertEqual(parse_endpoint("tcp:host=h:port=9"), ("tcp", ("h", 9), False))
        self.assertEqual(parse_endpoint("tls:host=h:port=9"), ("tcp", ("h", 9), True))
        self.assertEqual(parse_endpoint("h:9"), ("tcp", ("h", 9), False))
        self.assertEqual(parse_endpoint(("h", 9)), ("tcp", ("h", 9), False))
        self.assertEqual(parse_endpoint("unix:/x/y"), ("unix", "/x/y", False))
        self.assertEqual(parse_endpoint("unix:path=/x"), ("unix", "/x", False))
        self.assertRaises(ValueError, parse_endpoint, "tcp:nowhere")

    def test_ipv6(self):
        """When the host is IPv6, in brackets or with escaped colons, then it is found whole."""
        self.assertEqual(parse_endpoint("tcp:[::1]:9876"), ("tcp", ("::1", 9876), False))
        self.assertEqual(parse_endpoint("tls:[fe80::1]:9"), ("tcp", ("fe80::1", 9), True))
        self.assertEqual(parse_endpoint(r"tcp:host=\:\:1:port=9"), ("tcp", ("::1", 9), False))
        self.assertEqual(str(self.assertRaises(ValueError, parse_endpoint, "tcp:[::1:9")),
                         "endpoint 'tcp:[::1:9': '[' without ']'")

    def test_unix_path_with_colon(self):
        """When a Unix socket path holds ':', then it is the path, in both forms."""
        self.assertEqual(parse_endpoint("unix:/a:b"), ("unix", "/a:b", False))
        self.assertEqual(parse_endpoint("unix:path=/a:b"), ("unix", "/a:b", False))
        self.assertEqual(str(self.assertRaises(ValueError, parse_endpoint, "unix:")),
                         "endpoint 'unix:': want unix:PATH or unix:path=PATH")

    def test_unknown_key(self):
        """When an endpoint has a key ClientLite does not know, then one line names it and the keys it takes."""
        self.assertEqual(str(self.assertRaises(ValueError, parse_endpoint, "tcp:host=h:port=1:timeout=2")),
                         "endpoint 'tcp:host=h:port=1:timeout=2': unknown key 'timeout' "
                         "(a tcp: endpoint takes host=, port=)")
        self.assertEqual(str(self.assertRaises(ValueError, parse_endpoint, "unix:/x:mode=1")),
                         "endpoint 'unix:/x:mode=1': unknown key 'mode' (a unix: endpoint takes path=)")

    def test_unix_colon_connects(self):
        """When a node listens on a Unix path with ':' in it, then the client reaches it there."""
        from lightspeed.test.test_litelink import ScriptedServer

        server = ScriptedServer(self, colon=True)
        self.assertIn(":", server.path)
        with ClientLite(server.endpoint, connect_timeout=10) as client:
            self.assertEqual(client.list_kernels(), ["srv"])

    def test_refused(self):
        """When nothing listens, then OSError from connect."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.assertRaises(OSError, ClientLite(("127.0.0.1", port), connect_timeout=2).connect)

    def test_handshake_timeout(self):
        """When the server never answers the handshake, then LinkClosed 'timeout'."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            client = ClientLite(s.getsockname(), connect_timeout=0.2)
            error = self.assertRaises(LinkClosed, client.connect)
        self.assertEqual(error.code, "timeout")


_pki: List[str] = []


def pki() -> str:
    """Certificates for "secure" and "client" and a password file, made once, removed at exit."""
    if _pki:
        return _pki[0]
    import atexit
    import shutil
    import tempfile

    from lightspeed.tls import write_pki

    directory = tempfile.mkdtemp(prefix="lightspeed-pki-")
    atexit.register(shutil.rmtree, directory, True)
    write_pki(directory, ["secure", "client", "signed", "unsigned"])
    with open(os.path.join(directory, "password"), "w") as f:
        f.write("sesame\n")
    _pki.append(directory)
    return directory


def start_secure() -> List[TwistdNode]:
    """
    One node with mutual TLS, signed adverts (required: no
    ``--unsigned-adverts``) and a password, its certificates in :obj:`pki`
    with the clients'.
    """
    p = lambda name: os.path.join(pki(), name)  # noqa: E731
    return [TwistdNode("--kernel", "secure", "--listen", "tcp:0:interface=127.0.0.1", "--app", APP,
                       "--tls-cert", p("secure.crt"), "--tls-key", p("secure.key"), "--tls-ca", p("ca.crt"),
                       "--password-file", p("password"))]


class SecureCase(SynchronousTestCase):
    """Tests on the TLS and password node."""

    def setUp(self) -> None:
        self.nodes = shared(start_secure)
        self.pki = pki()

    @property
    def server(self) -> str:
        return f"tls:host=127.0.0.1:port={self.nodes[0].port}"

    def files(self, name: str = "client") -> dict:
        """The certificate, key and CA options for kernel ``name``: the client signs its adverts."""
        p = lambda file: os.path.join(self.pki, file)  # noqa: E731
        return {"cert": p(f"{name}.crt"), "key": p(f"{name}.key"), "ca": p("ca.crt")}


class SecureTests(SecureCase):
    def test_tls_and_password(self):
        """When the client has the CA, a certificate and the password, then requests work."""
        with ClientLite(self.server, "client", password="sesame", **self.files()) as client:
            self.assertEqual(client.request("poe://secure/echo/add", 2, 3), 5)

    def test_signed_advert(self):
        """
        When the client has its certificate, key and CA, then it signs its
        LSA: the signing node believes it (lists the client, keeps the link),
        posts and requests work, and the node logs no refused advert.
        """
        with ClientLite(self.server, "signed", password="sesame", **self.files("signed")) as client:
            self.assertIsNotNone(client._signer)
            client.post("poe://secure/echo/ask", "ping")
            self.assertEqual(client.request("poe://secure/echo/add", 2, 3), 5)
            self.assertEqual(client.list_kernels(hidden=True), ["secure", "signed"])
            self.assertIn("signed", client.links()["secure"])
            self.assertEqual(client.request("poe://secure/echo/add", 4, 5), 9)
        node = self.nodes[0]
        node.expect(re.compile(r"link down: secure <-> signed\n"))
        self.assertNotRegex(node.log, r"advert of kernel 'signed' refused|signed.*bad-advert")
        self.assertRegex(node.log, r"link to signed closed by the peer: shutdown")

    def test_unsigned_advert_refused(self):
        """When the client has only a TLS context (no signer), then the signing node closes with BYE 'bad-advert'."""
        p = lambda file: os.path.join(self.pki, file)  # noqa: E731
        context = tls_context(p("unsigned.crt"), p("unsigned.key"), p("ca.crt"))
        client = ClientLite(self.server, "unsigned", tls=context, password="sesame", connect_timeout=5)
        self.assertIsNone(client._signer)
        error = self.assertRaises(LinkClosed, client.request, "poe://secure/echo/add", 1, 2)
        self.assertEqual(error.code, "bad-advert")
        client.close()

    def test_own_lsa_proof(self):
        """When the client signs, then its LSA carries the proof the kernels' signer verifies, flags unsigned."""
        from lightspeed.adverts import AdvertSigner
        from lightspeed.liteparts import own_lsa
        from lightspeed.message import lsa_hidden, parse_lsa
        from lightspeed.router import LinkState

        files = self.files("signed")
        signer = AdvertSigner(files["cert"], files["key"], files["ca"])
        message = own_lsa("signed", 7, 3, "secure", signer)
        origin, incarnation, seq, links, proof = parse_lsa(message)
        self.assertEqual((origin, incarnation, seq, links, lsa_hidden(message)),
                         ("signed", 7, 3, (("secure", 1),), True))
        self.assertIsNone(signer.verify(LinkState(origin, incarnation, seq, links), proof))
        self.assertEqual(signer.verify(LinkState(origin, incarnation, seq + 1, links), proof),
                         "its signature is not valid")
        self.assertIsNone(own_lsa("signed", 7, 3, "secure", None)[5])

    def test_context_ciphers(self):
        """When a context is made, then it offers TLS 1.2 AEAD suites only (the node's CIPHERS), TLS 1.2 at least."""
        import ssl

        context = tls_context(**self.files())
        self.assertEqual(context.minimum_version, ssl.TLSVersion.TLSv1_2)
        tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
        self.assertTrue(tls12)
        self.assertEqual([c for c in tls12 if not (c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c))], [])
        self.assertEqual([c["name"] for c in context.get_ciphers() if not c["aead"]], [])

    def test_certificate_names_kernel(self):
        """When the client's name is not the one its certificate names, then BYE 'auth'."""
        error = self.assertRaises(LinkClosed, ClientLite(self.server, "other", password="sesame", connect_timeout=5,
                                                         **self.files()).connect)
        self.assertEqual(error.code, "auth")

    def test_wrong_password(self):
        """When the password is wrong, then the link closes with BYE 'auth'."""
        error = self.assertRaises(LinkClosed, ClientLite(self.server, "client", password="nope", connect_timeout=5,
                                                         **self.files()).connect)
        self.assertEqual(error.code, "auth")

    def test_no_client_certificate(self):
        """When the client has no certificate for a mutual-TLS node, then the connection fails (no handshake)."""
        import ssl

        context = tls_context(ca=os.path.join(self.pki, "ca.crt"))
        self.assertRaises((ssl.SSLError, OSError, LinkClosed),
                          ClientLite(self.server, "client", tls=context, password="sesame", connect_timeout=5).request,
                          "poe://secure/echo/ask")



class StreamTests(SynchronousTestCase):
    """:obj:`lightspeed.liteparts.receive_entries` and :obj:`reachable`, without sockets."""

    def receive(self, streams, seq, ack=0, origin_incarnation=5, out=None, tombstone=False, dest=("me", 1)):
        return receive_entries("me", 1, "k", origin_incarnation, [(dest[0], dest[1], seq, ack)], streams, (), out,
                               tombstone)

    def test_in_order_duplicates_early(self):
        """When payloads come in order, again, and early, then only the next in order is delivered; each owes an ack."""
        streams: dict = {}
        self.assertEqual([self.receive(streams, s) for s in (1, 2, 2, 4, 3)], [True, True, False, False, True])
        self.assertEqual(streams["k"], [5, 3, 5])

    def test_other_starts(self):
        """When an entry is for another start of us or from an older start of the origin, then it is ignored;
        a newer start of the origin begins a new stream."""
        streams: dict = {"k": [5, 7, 0]}
        self.assertFalse(self.receive(streams, 8, dest=("me", 2)))
        self.assertFalse(self.receive(streams, 8, origin_incarnation=4))
        self.assertEqual(streams["k"], [5, 7, 0])
        self.assertTrue(self.receive(streams, 1, origin_incarnation=6))
        self.assertEqual(streams["k"], [6, 1, 1])

    def test_ack_and_tombstone(self):
        """When an ack comes, then our payloads up to it are forgotten; a tombstone skips what it gave up."""
        out = Out(5)
        for payload in (b"a", b"b", b"c"):
            out.push(payload, None)
        streams: dict = {}
        self.assertFalse(self.receive(streams, 0, ack=2, out=out))
        self.assertEqual(list(out.unacked), [3])
        self.assertFalse(self.receive(streams, 4, tombstone=True))
        self.assertEqual(streams["k"][1], 4)
        self.assertTrue(self.receive(streams, 5))

    def test_reachable_not_through_hidden(self):
        """When a hidden kernel links two others, then what lies behind it is not reachable through it."""
        lsas = {"s": (1, 1, {"h": 1, "me": 1}, False), "h": (2, 1, {"s": 1, "x": 1}, True),
                "x": (3, 1, {"h": 1}, False)}
        self.assertEqual(reachable(lsas, "s", 1, "me"), {"s": 1, "h": 2})


class PayloadTests(SynchronousTestCase):
    """The pre-encoded REQUEST payload."""

    def test_same_as_encoded_list(self):
        """When a payload is made from its head, then it decodes as the whole list would, ids large and small."""
        from lightspeed.liteparts import payload_head, request_payload
        from lightspeed.message import CONTROL, REQUEST
        from lightspeed.wire.codec import loads

        for kind, sessions, args, request_id in [(REQUEST, ["echo"], (1, "x", b"b"), 42),
                                                 (CONTROL, "*", (), 1 << 40), (REQUEST, ["a", "b"], ([1, {"k": None}],), 0)]:
            payload = request_payload(payload_head(kind, sessions, "st"), args, request_id)
            self.assertEqual(loads(payload), [kind, sessions, "st", list(args), "lite", None, None, None, request_id])

    def test_not_plain(self):
        """When an argument is not a plain value, then EncodeError and no payload."""
        from lightspeed.errors import EncodeError
        from lightspeed.liteparts import payload_head, request_payload
        from lightspeed.message import REQUEST

        self.assertRaises(EncodeError, request_payload, payload_head(REQUEST, ["s"], "x"), (object(),), 1)


class FormatTests(SynchronousTestCase):
    def test_tree_and_dot(self):
        """When the mesh has a cycle, then the tree lists the left-out link, and dot labels every link."""
        from lightspeed.cliutil import dot, tree

        links = {"a": {"b": 1, "c": 2}, "b": {"a": 1, "c": 1}, "c": {"a": 2, "b": 1}, "h": {"c": 1}}
        links["c"]["h"] = 1
        self.assertEqual(tree(links, ["h"], "a"),
                         "a\n|-- b  [cost 1]\n`-- c  [cost 2]\n    `-- h (hidden)  [cost 1]\n"
                         "other links:\n  b -- c  [cost 1]")
        self.assertIn('"h" [style=dashed];', dot(links, ["h"]))
        self.assertIn('"a" -- "c" [label="2"];', dot(links, ["h"]))
