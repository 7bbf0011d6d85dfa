# -*- test-case-name: lightspeed.test.test_tls -*-
"""
Links over real TLS on loopback, with certificates made by the tests.
"""

from __future__ import annotations

import datetime
from typing import Any, List, Optional, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import SSL4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.ssl import AcceptableCiphers, CertificateOptions, TLSVersion
from twisted.logger import ILogObserver, globalLogPublisher

from lightspeed.errors import LinkClosed
from lightspeed.test.test_network import Collector, RealKernels, wait_for
from lightspeed.tls import TLSConfig, create_ca, create_node, default_ca_name

CA_KEY, CA_CRT = create_ca("test CA")
OTHER_KEY, OTHER_CRT = create_ca("other CA")


def node(name: str, ca_key: bytes = CA_KEY, ca_crt: bytes = CA_CRT, trust: Optional[bytes] = CA_CRT,
         **kw: Any) -> TLSConfig:
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


def rsa_self_signed(name: str) -> TLSConfig:
    """
    A server certificate with an RSA key (ours are ECDSA), to offer RSA suites.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return TLSConfig(cert=cert.public_bytes(serialization.Encoding.PEM), key=pem_key)


class _Raw(Protocol):
    """
    A plain TLS client: keeps what it reads and why the connection ended.
    """

    def __init__(self) -> None:
        self.data = b""
        self.lost: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        assert self.transport is not None
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback([reason])


class CipherTests(RealKernels):
    """
    Real TLS 1.2 clients that offer one suite each, against a listening kernel.
    """

    @inlineCallbacks
    def offer(self, suite: str, server: TLSConfig) -> Any:
        kernel = self.kernel(f"ciphers-{len(self._cleanups)}")
        port = yield kernel.listen("tcp:0:interface=127.0.0.1", tls=server).whenListening()
        options = CertificateOptions(acceptableCiphers=AcceptableCiphers.fromOpenSSLCipherString(suite),
                                     raiseMinimumTo=TLSVersion.TLSv1_2, lowerMaximumSecurityTo=TLSVersion.TLSv1_2)
        protocol = _Raw()
        endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port, options)
        yield endpoint.connect(Factory.forProtocol(lambda: protocol))
        (reason,) = yield protocol.lost
        return protocol.data, reason

    @inlineCallbacks
    def test_only_aead_suites_accepted(self):
        """When a TLS 1.2 client offers one suite, then a CBC or SHA-1 one is refused and ECDHE GCM or ChaCha20 works."""
        ecdsa, rsa_server = node("suites", trust=None), rsa_self_signed("suites-rsa")
        for suite, server, accepted in [
            ("ECDHE-ECDSA-AES128-SHA", ecdsa, False), ("ECDHE-RSA-AES128-SHA", rsa_server, False),
            ("ECDHE-RSA-AES256-SHA384", rsa_server, False), ("ECDHE-ECDSA-AES128-GCM-SHA256", ecdsa, True),
            ("ECDHE-ECDSA-CHACHA20-POLY1305", ecdsa, True), ("ECDHE-RSA-AES256-GCM-SHA384", rsa_server, True),
        ]:
            data, reason = yield self.offer(suite, server)
            if accepted:
                self.assertEqual(data[4:6], b"\x82\x01", suite)  # the server's HELLO: [1, {...}]
            else:
                self.assertEqual(data, b"", suite)  # not one lightspeed byte
                self.assertIn("handshake failure", reason.getErrorMessage(), suite)
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_client_refuses_cbc_server(self):
        """When a TLS 1.2 server accepts only a SHA-1 CBC suite, then a kernel's client end refuses to link to it."""
        config = node("cbc-srv")
        mine = config.private_certificate()
        options = CertificateOptions(privateKey=mine.privateKey.original, certificate=mine.original,
                                     acceptableCiphers=AcceptableCiphers.fromOpenSSLCipherString(
                                         "ECDHE-ECDSA-AES128-SHA"), lowerMaximumSecurityTo=TLSVersion.TLSv1_2)
        port = cast(Any, reactor).listenSSL(0, Factory.forProtocol(Protocol), options, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        service = self.kernel("cbc-cli").connect(f"tcp:host=127.0.0.1:port={port.getHost().port}",
                                                  tls=node("cbc-cli"))
        error = yield self.assertFailure(service.whenConnected(failAfterFailures=1), LinkClosed)
        self.assertEqual(error.code, "closed")
        self.assertIn("handshake failure", str(error))
        yield deferLater(reactor, 0, lambda: None)  # out of ClientService's transition before shutdown

    def test_server_offers_aead_only(self):
        """When a server's TLS options are made, then every TLS 1.2 suite it may choose is ECDHE with GCM or ChaCha20."""
        from OpenSSL import SSL

        from lightspeed.tls import server_options

        suites = SSL.Connection(server_options(node("offer")).getContext()).get_cipher_list()
        tls12 = [s for s in suites if not s.startswith("TLS_")]
        self.assertTrue(tls12)
        for suite in tls12:
            self.assertTrue(suite.startswith("ECDHE-") and ("GCM" in suite or "CHACHA20" in suite), suite)


class CANameTests(RealKernels):
    def test_default_names_differ(self):
        """When two CAs are made with the default name, then each has its own 'lightspeed CA <8 hex>' name."""
        names = [x509.load_pem_x509_certificate(create_ca()[1]).subject.rfc4514_string() for _ in range(2)]
        self.assertNotEqual(names[0], names[1])
        for name in names:
            self.assertRegex(name, r"^CN=lightspeed CA [0-9a-f]{8}$")
        self.assertRegex(default_ca_name(), r"^lightspeed CA [0-9a-f]{8}$")

    @inlineCallbacks
    def test_other_ca_logged_as_unknown(self):
        """When a client's certificate comes from another default-named CA, then the server logs an unknown-CA reason."""
        ca1, ca2 = create_ca(), create_ca()
        server, client = node("unk-b", *ca1, trust=ca1[1]), node("unk-a", *ca2, trust=ca1[1])
        logged: List[str] = []

        def observe(event: Any) -> None:
            if "before its handshake finished" in event.get("log_format", ""):
                logged.append(event["why"])

        observer = cast(ILogObserver, observe)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        a, b = self.kernel("unk-a"), self.kernel("unk-b")
        port = yield b.listen("tcp:0:interface=127.0.0.1", tls=server).whenListening()
        service = a.connect(f"tcp:host=127.0.0.1:port={port.getHost().port}", tls=client,
                            sign_adverts=False)  # its certificate cannot sign for the CA it trusts
        yield self.assertFailure(service.whenConnected(failAfterFailures=1), LinkClosed)
        yield wait_for(lambda: len(logged) == 2)
        # The client hears the server's alert; with one shared CA name it would
        # be "decrypt error" and "provider signature failure" instead.
        self.assertEqual(sorted(logged), ["[('SSL routines', '', 'certificate verify failed')]",
                                          "[('SSL routines', '', 'tlsv1 alert unknown ca')]"])
