# -*- test-case-name: lightspeed.test.test_tls -*-
"""
Links over real TLS on loopback, with certificates made by the tests.
"""

from __future__ import annotations

import datetime
from typing import Any, List

from twisted.internet.defer import inlineCallbacks

from lightspeed.errors import LinkClosed
from lightspeed.test.test_network import Collector, RealKernels, wait_for
from lightspeed.tls import TLSConfig, create_ca, create_node

CA_KEY, CA_CRT = create_ca("test CA")
OTHER_KEY, OTHER_CRT = create_ca("other CA")


def node(name: str, ca_key: bytes = CA_KEY, ca_crt: bytes = CA_CRT, trust: bytes = CA_CRT, **kw: Any) -> TLSConfig:
    key, crt = create_node(ca_key, ca_crt, name, **kw)
    return TLSConfig(cert=crt, key=key, ca=trust)


class TLSTests(RealKernels):
    @inlineCallbacks
    def pair(self, server_tls: TLSConfig, client_tls: TLSConfig, name: str, sign: Any = None) -> Any:
        a, b = self.kernel(f"{name}-a"), self.kernel(f"{name}-b")
        port = yield b.listen("tcp:0:interface=127.0.0.1", tls=server_tls, sign_adverts=sign).whenListening()
        service = a.connect(f"tcp:host=127.0.0.1:port={port.getHost().port}", tls=client_tls, sign_adverts=sign)
        return a, b, service

    @inlineCallbacks
    def test_mutual_tls(self):
        """When both ends have certificates from the CA, then the link is up over TLS and posts cross."""
        a, b, service = yield self.pair(node("ok-b"), node("ok-a"), "ok")
        link = yield service.whenConnected(failAfterFailures=1)
        self.assertEqual(link.peer.name, "ok-b")
        self.assertEqual(link.transport.getPeerCertificate().get_subject().CN, "ok-b")
        log: List[Any] = []
        b.spawn(Collector("s", log))
        a.post("poe://ok-b/s/hit", "secret")
        yield wait_for(lambda: log)
        self.assertEqual(log[0][1], ("secret",))

    @inlineCallbacks
    def refused(self, server_tls: TLSConfig, client_tls: TLSConfig, name: str) -> Any:
        # These certificates could not sign adverts: the refusal tested is TLS's.
        a, b, service = yield self.pair(server_tls, client_tls, name, sign=False)
        error = yield self.assertFailure(service.whenConnected(failAfterFailures=1), LinkClosed)
        # TLS refuses before any lightspeed byte: no BYE, the link is just closed.
        self.assertEqual(error.code, "closed")
        self.assertTrue(str(error).startswith("link closed before the handshake finished: "), str(error))
        self.assertEqual((a.network.links(), b.network.links()), ([], []))
        # A refusal is reported through the LinkClosed above, never logged as an error.
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_client_from_wrong_ca(self):
        """When the client's certificate is signed by another CA, then the server refuses it."""
        return self.refused(node("wrongca-b"), node("wrongca-a", OTHER_KEY, OTHER_CRT, trust=CA_CRT), "wrongca")

    def test_server_from_wrong_ca(self):
        """When the server's certificate is signed by another CA, then the client refuses it."""
        return self.refused(node("wrongsrv-b", OTHER_KEY, OTHER_CRT, trust=CA_CRT), node("wrongsrv-a"), "wrongsrv")

    def test_wrong_name(self):
        """When the server's certificate does not carry the expected name, then the client refuses it."""
        client = node("name-a")
        client.name = "someone-else"
        return self.refused(node("name-b"), client, "name")

    def test_expired(self):
        """When the server's certificate has expired, then the client refuses it."""
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
        return self.refused(node("expired-b", not_before=old, days=1), node("expired-a"), "expired")

    def test_self_signed_client(self):
        """When the client shows a self-signed certificate and the server requires its CA, then it is refused."""
        key, crt = create_ca("cli")
        return self.refused(node("selfsigned-b"), TLSConfig(cert=crt, key=key, ca=CA_CRT), "selfsigned")

    @inlineCallbacks
    def test_certificate_must_name_the_kernel(self):
        """When a node's valid certificate names another kernel, then its handshake is refused with 'auth'."""
        a, b, service = yield self.pair(node("bind-b"), node("someone-else"), "bind")
        error = yield self.assertFailure(service.whenConnected(failAfterFailures=1), LinkClosed)
        self.assertEqual(error.code, "auth")
        self.assertIn("bind-a", str(error))

    @inlineCallbacks
    def test_name_binding_can_be_off(self):
        """When bind_names is off, then any certificate from the CA will do."""
        server, client = node("srv"), node("cli")
        server.bind_names = client.bind_names = False
        a, b, service = yield self.pair(server, client, "free")
        link = yield service.whenConnected(failAfterFailures=1)
        self.assertEqual(link.peer.name, "free-b")

    @inlineCallbacks
    def test_signed_adverts_over_tls(self):
        """When both kernels link with TLS configs that have a CA, then they sign adverts by themselves: each holds the other's signed advert and posts cross."""
        server_tls, client_tls = node("sig-b"), node("sig-a")
        a, b, service = yield self.pair(server_tls, client_tls, "sig")
        self.assertIsNotNone(a.network.signer)
        self.assertIsNotNone(b.network.signer)
        yield service.whenConnected(failAfterFailures=1)
        yield wait_for(lambda: a.network.router.held("sig-b") is not None
                       and b.network.router.held("sig-a") is not None)
        self.assertIsNone(a.network.signer.verify(a.network.router.held("sig-b"), a.network.router.held("sig-b").proof))
        self.assertIsNone(b.network.signer.verify(b.network.router.held("sig-a"), b.network.router.held("sig-a").proof))
        log: List[Any] = []
        b.spawn(Collector("s", log))
        a.post("poe://sig-b/s/hit", "signed")
        yield wait_for(lambda: log)
        self.assertEqual(log[0][1], ("signed",))


class SignOnLinkTests(RealKernels):
    def test_cannot_sign_refused_at_once(self):
        """When connect or listen get a CA-backed TLSConfig whose certificate is not from that CA, then ValueError at once, before any link."""
        bad = node("bad-a", OTHER_KEY, OTHER_CRT, trust=CA_CRT)
        kernel = self.kernel("bad-a")
        error = self.assertRaises(ValueError, kernel.connect, "tcp:host=127.0.0.1:port=1", tls=bad)
        self.assertIn("cannot sign adverts", str(error))
        self.assertRaises(ValueError, kernel.listen, "tcp:0:interface=127.0.0.1", tls=bad)
        self.assertEqual(list(kernel), [])
        self.assertIsNone(kernel.network)  # the check came first

    def test_sign_rules(self):
        """When a TLSConfig has no CA, or does not bind names, or sign_adverts=False, then adverts stay unsigned."""
        kernel = self.kernel("rules-a")
        no_ca = node("rules-a")
        no_ca.ca = None
        kernel.connect("tcp:host=127.0.0.1:port=1", tls=no_ca)
        free = node("rules-a")
        free.bind_names = False
        kernel.connect("tcp:host=127.0.0.1:port=1", tls=free)
        kernel.connect("tcp:host=127.0.0.1:port=1", tls=node("rules-a"), sign_adverts=False)
        self.assertIsNone(kernel.network.signer)
        kernel.connect("tcp:host=127.0.0.1:port=1", tls=node("rules-a"))
        self.assertIsNotNone(kernel.network.signer)
