# -*- test-case-name: lightspeed.test.test_adverts -*-
"""
Signed routing adverts (:obj:`lightspeed.adverts`): no kernel can lie about
another kernel's links.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.adverts import AdvertSigner, signed_content
from lightspeed.errors import LinkClosed
from lightspeed.message import LSA
from lightspeed.router import LinkState
from lightspeed.test.test_mesh import Sink, Warnings
from lightspeed.test.test_protocol import bye_code
from lightspeed.testing import MemoryMesh
from lightspeed.tls import create_ca, create_node
from lightspeed.wire.codec import dumps
from lightspeed.wire.framing import frame

CA_KEY, CA_CERT = create_ca()
OTHER_CA_KEY, OTHER_CA_CERT = create_ca("another CA")
NODES: Dict[str, Any] = {name: create_node(CA_KEY, CA_CERT, name) for name in "abcd"}


def signer(name: str, **kw: Any) -> AdvertSigner:
    key, cert = NODES[name]
    return AdvertSigner(cert, key, CA_CERT, **kw)


class SignerTests(SynchronousTestCase):
    """
    :obj:`AdvertSigner` alone: no reactor, no network.
    """

    lsa = LinkState("a", 7, 3, (("b", 1), ("c", 2)))

    def test_genuine(self):
        """When an LSA is signed by its origin's certificate, then it verifies."""
        proof = signer("a").sign(self.lsa)
        self.assertIsNone(signer("b").verify(self.lsa, proof))

    def test_altered(self):
        """When a signed LSA's links, sequence number or incarnation change, then the signature fails."""
        proof = signer("a").sign(self.lsa)
        for changed in [LinkState("a", 7, 3, (("b", 1),)), LinkState("a", 7, 4, self.lsa.links),
                        LinkState("a", 8, 3, self.lsa.links), LinkState("a", 7, 3, (("b", 1), ("c", 3)))]:
            self.assertEqual(signer("b").verify(changed, proof), "its signature is not valid")

    def test_wrong_name(self):
        """When b signs an LSA in a's name with its own certificate, then it is refused."""
        proof = signer("b").sign(self.lsa)
        self.assertEqual(signer("c").verify(self.lsa, proof), "its certificate does not name kernel 'a'")

    def test_other_ca(self):
        """When the certificate comes from another CA, then the LSA is refused."""
        key, cert = create_node(OTHER_CA_KEY, OTHER_CA_CERT, "a")
        proof = AdvertSigner(cert, key, OTHER_CA_CERT).sign(self.lsa)
        self.assertEqual(signer("b").verify(self.lsa, proof), "its certificate is not issued by this kernel's CA")

    def test_expired(self):
        """When the certificate has expired (or is not valid yet), then the LSA is refused."""
        proof = signer("a").sign(self.lsa)
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=5000)
        earlier = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
        for when in (later, earlier):
            judge = signer("b")
            judge._now = lambda: when  # used within this turn of the loop
            self.assertEqual(judge.verify(self.lsa, proof), "its certificate is expired or not yet valid")

    def test_unsigned_and_malformed(self):
        """When the proof is missing or malformed, then the LSA is refused with a reason."""
        judge = signer("b")
        self.assertEqual(judge.verify(self.lsa, None), "it is not signed")
        for bad in ["x", [b"x"], [b"x", "y"], {"a": 1}]:
            self.assertEqual(judge.verify(self.lsa, bad), "its proof is malformed")
        self.assertEqual(judge.verify(self.lsa, [b"not DER", b"sig"]), "its certificate does not parse")

    def test_own_certificate_checked(self):
        """When a node's own certificate is not from the CA, then it cannot sign adverts."""
        key, cert = create_node(OTHER_CA_KEY, OTHER_CA_CERT, "a")
        self.assertRaises(ValueError, AdvertSigner, cert, key, CA_CERT)

    def test_ca_certificate_cannot_sign(self):
        """When an advert carries the CA's own certificate, then it is refused."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        ca_der = x509.load_pem_x509_certificate(CA_CERT).public_bytes(serialization.Encoding.DER)
        self.assertEqual(signer("b").verify(LinkState("lightspeed CA", 1, 1, ()), [ca_der, b"x"]),
                         "its certificate is a CA certificate")

    def test_content_is_canonical(self):
        """When links are given in any order, then the signed bytes are the same."""
        self.assertEqual(signed_content(LinkState("a", 1, 2, (("c", 1), ("b", 1)))),
                         signed_content(LinkState("a", 1, 2, (("b", 1), ("c", 1)))))


class SignedMeshTests(SynchronousTestCase):
    """
    a - b - c, each signing its adverts; a is the attacker.
    """

    def setUp(self):
        self.mesh = MemoryMesh()
        self.k = {name: self.mesh.kernel(name) for name in "abc"}
        for name, kernel in self.k.items():
            kernel.sign_adverts(signer(name))
        self.ab = self.mesh.link(self.k["a"], self.k["b"])
        self.bc = self.mesh.link(self.k["b"], self.k["c"])
        self.mesh.settle()
        self.log: List[Any] = []
        self.k["c"].spawn(Sink("s", self.log))
        self.warnings = Warnings(self)

    def inject(self, lsa: LinkState, proof: Any = None) -> None:
        message = [LSA, lsa.origin, lsa.incarnation, lsa.seq, [list(link) for link in lsa.links]]
        if proof is not None:
            message.append(proof)
        self.ab.server.dataReceived(frame(dumps(message)))
        self.mesh.settle()

    def assert_refused(self, reason: str, closed: bool = True) -> None:
        """
        b refused the advert (and closed its link to a, if ``closed``) and
        c is still reached the honest way.
        """
        self.assertEqual(self.k["b"].network.bad_adverts, 1)
        if closed:
            self.assertEqual([link.peer.name for link in self.k["b"].network.links()], ["c"])
            self.assertEqual(bye_code(self.ab.client), "bad-advert")
            self.assertIn(reason, str(self.ab.client.closed_reason))
        else:
            self.assertEqual(sorted(link.peer.name for link in self.k["b"].network.links()), ["a", "c"])
            self.assertTrue(any(reason in str(w.get("text")) for w in self.warnings.events))
        held = self.k["b"].network.router.held("c")
        self.assertEqual(held.links, (("b", 1),))
        self.k["b"].post("poe://c/s/hit", "still here")
        self.mesh.settle()
        self.assertEqual([entry[2] for entry in self.log], [("still here",)])

    def test_signed_mesh_works(self):
        """When every kernel signs, then the mesh converges and delivers, and every held LSA carries a proof."""
        self.k["a"].post("poe://c/s/hit", 1)
        self.mesh.settle()
        self.assertEqual([entry[2] for entry in self.log], [(1,)])
        for kernel in self.k.values():
            for lsa in kernel.network.router.database():
                if lsa.origin != kernel.name:
                    self.assertIsNone(kernel.network.signer.verify(lsa, lsa.proof))

    def test_unsigned_lie(self):
        """When a passes on an unsigned advert claiming c's links, then b drops it (a relay may hold old unsigned adverts) and keeps the link."""
        held = self.k["b"].network.router.held("c")
        self.inject(LinkState("c", held.incarnation, held.seq + 1, (("a", 1),)))
        self.assert_refused("it is not signed", closed=False)

    def test_expired_third_party(self):
        """When a relay passes on an advert whose certificate has since expired, then it is dropped and the link stays."""
        import datetime

        self.k["b"].network.signer._now = lambda: datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=5000)
        held = self.k["b"].network.router.held("c")
        lie = LinkState("c", held.incarnation, held.seq + 1, (("a", 1),))
        self.inject(lie, signer("c").sign(lie))
        self.assert_refused("expired", closed=False)

    def test_future_incarnation(self):
        """When an advert claims an incarnation far in the future (to outbid its owner for ever), then it is refused."""
        held = self.k["b"].network.router.held("c")
        self.inject(LinkState("c", held.incarnation << 40, 1, (("a", 1),)))
        self.assert_refused("incarnation lies in the future", closed=False)
        self.inject(LinkState("a", 1 << 200, 1, (("b", 1),)))
        self.assertEqual(bye_code(self.ab.client), "bad-advert")

    def test_lie_signed_by_liar(self):
        """When a signs an advert in c's name with its own certificate, then b refuses it."""
        held = self.k["b"].network.router.held("c")
        lie = LinkState("c", held.incarnation, held.seq + 1, (("a", 1),))
        self.inject(lie, signer("a").sign(lie))
        self.assert_refused("does not name kernel 'c'")

    def test_altered_genuine_advert(self):
        """When a replays c's genuine proof on altered links, then b refuses it."""
        held = self.k["b"].network.router.held("c")
        lie = LinkState("c", held.incarnation, held.seq + 1, (("a", 1), ("b", 1)))
        self.inject(lie, held.proof)
        self.assert_refused("its signature is not valid")

    def test_lie_about_down_kernel(self):
        """When c is down and a advertises links for it, then b believes nothing."""
        self.bc.close()
        self.mesh.settle()
        held = self.k["b"].network.router.held("c")
        self.inject(LinkState("c", held.incarnation + 1, 1, (("a", 1),)))
        lie = LinkState("c", held.incarnation + 2, 1, (("a", 1),))
        self.inject(lie, signer("a").sign(lie))
        self.assertEqual(self.k["b"].network.bad_adverts, 2)
        # The unsigned one may be an honest relay's old copy (dropped); a's own signature on c's links is a lie.
        self.assertEqual(bye_code(self.ab.client), "bad-advert")
        self.assertIn("does not name kernel 'c'", str(self.ab.client.closed_reason))
        self.assertNotIn("c", self.k["b"].network.router.reachable())
        self.assertEqual(self.k["b"].network.router.held("c").incarnation, held.incarnation)

    def test_forged_own_advert(self):
        """When a passes on an unsigned advert in b's own name, then b drops it and does not even raise its own sequence number."""
        own = self.k["b"].network.router.own()
        self.inject(LinkState("b", own.incarnation, own.seq + 5, ()))
        self.assertEqual(self.k["b"].network.bad_adverts, 1)
        self.assertEqual(sorted(link.peer.name for link in self.k["b"].network.links()), ["a", "c"])
        self.assertEqual(self.k["b"].network.router.own(), own)

    def test_own_advert_replay_is_free(self):
        """When a replays b's own current advert, then b does not verify it at all."""
        calls: List[Any] = []
        real = self.k["b"].network.signer.verify
        self.k["b"].network.signer.verify = lambda *a: calls.append(a) or real(*a)
        own = self.k["b"].network.router.own()
        for _ in range(10):
            self.inject(own, signer("b").sign(own))
        self.assertEqual(calls, [])

    def test_old_genuine_replay_ignored(self):
        """When a replays an older genuine advert of c, then it is dropped quietly and the link stays."""
        held = self.k["b"].network.router.held("c")
        self.inject(LinkState("c", held.incarnation, held.seq - 1, ()), held.proof)
        self.assertEqual(sorted(link.peer.name for link in self.k["b"].network.links()), ["a", "c"])
        self.assertEqual(self.k["b"].network.router.held("c"), held)

    def test_unsigned_kernel_refused(self):
        """When a kernel that does not sign links to one that requires signatures, then the link closes with a clear reason."""
        d = self.mesh.kernel("d")
        link = self.mesh.link(d, self.k["b"])
        self.mesh.settle()
        self.assertEqual(sorted(l.peer.name for l in self.k["b"].network.links()), ["a", "c"])
        self.assertEqual(bye_code(link.client), "bad-advert")
        self.assertIn("advert of kernel 'd' refused: it is not signed", str(link.client.closed_reason))

    def test_signing_late_outbids_unsigned(self):
        """When a kernel starts signing after its links are up, then its neighbours get a signed advert at once."""
        mesh = MemoryMesh()
        x, y = mesh.kernel("a"), mesh.kernel("b")
        mesh.link(x, y)
        mesh.settle()
        self.assertIsNone(y.network.router.held("a").proof)
        x.sign_adverts(signer("a"))
        mesh.settle()
        self.assertIsNone(signer("b").verify(y.network.router.held("a"), y.network.router.held("a").proof))
        self.assertIsNone(x.network.router.held("b"))  # dropped: unsigned
        y.sign_adverts(signer("b"))  # a's advert is signed and stays; b's own is sent again, signed
        mesh.settle()
        self.assertIsNone(x.network.signer.verify(x.network.router.held("b"), x.network.router.held("b").proof))
        self.assertEqual(y.network.router.reachable(), {"a"})

    def test_signing_drops_unsigned(self):
        """When signing is turned on, then the unsigned adverts held so far are dropped."""
        mesh = MemoryMesh()
        x, y, z = mesh.kernel("a"), mesh.kernel("b"), mesh.kernel("c")
        mesh.link(x, y)
        mesh.link(y, z)
        mesh.settle()
        self.assertEqual(x.network.router.held("c").links, (("b", 1),))
        x.sign_adverts(signer("a"))
        self.assertIsNone(x.network.router.held("c"))
        self.assertNotIn("c", x.network.router.reachable())


class AgeingTests(SynchronousTestCase):
    """
    Adverts that nothing refreshes age out; live kernels refresh theirs.
    """

    def advance(self, mesh: MemoryMesh, seconds: float) -> None:
        for _ in range(int(seconds // 30) + 1):
            mesh.advance(30)

    def test_live_kernels_never_age_out(self):
        """When time passes far beyond the maximum age, then live kernels stay reachable (they refresh their adverts)."""
        from lightspeed.network import LSA_MAX_AGE
        from lightspeed.test.test_mesh import build

        mesh, k, _ = build("abc", "ab bc")
        seq = k["c"].network.router.own().seq
        self.advance(mesh, 3 * LSA_MAX_AGE)
        self.assertEqual(k["a"].network.router.reachable(), {"b", "c"})
        self.assertGreater(k["a"].network.router.held("c").seq, seq)

    def test_phantom_ages_out(self):
        """When a former neighbour keeps advertising its link to a departed kernel, then the phantom dies with its old advert and the kernel can rejoin."""
        from lightspeed.network import LSA_MAX_AGE, LSA_REFRESH
        from lightspeed.test.test_mesh import build

        mesh, k, links = build("mxy", "mx my")
        links["mx"].close()
        mesh.settle()
        own = k["m"].network.router.own()
        links["my"].client.send_message([LSA, "m", own.incarnation, own.seq + 100, [["x", 1], ["y", 1]]])
        mesh.settle()
        self.assertIn("x", k["y"].network.router.reachable())
        x2 = mesh.kernel("x")
        early = mesh.link(x2, k["y"])
        mesh.settle()
        refused = self.failureResultOf(early.client.when_ready(), LinkClosed).value
        self.assertEqual(refused.code, "duplicate-name")
        self.assertIn("already used", str(refused))
        self.advance(mesh, LSA_MAX_AGE + LSA_REFRESH)
        self.assertNotIn("x", k["y"].network.router.reachable())
        later = mesh.link(x2, k["y"])
        mesh.settle()
        self.assertIs(self.successResultOf(later.client.when_ready()), later.client)

    def test_aged_out_advert_cannot_be_replayed(self):
        """When a departed kernel's advert has aged out, then a replay of that same advert is not believed again."""
        from lightspeed.network import LSA_MAX_AGE, LSA_REFRESH
        from lightspeed.test.test_mesh import build

        mesh, k, links = build("mxy", "mx my")
        old = k["y"].network.router.held("x")
        links["mx"].close()
        mesh.settle()
        AgeingTests().advance(mesh, LSA_MAX_AGE + LSA_REFRESH)
        self.assertIsNone(k["y"].network.router.held("x"))
        links["my"].client.send_message([LSA, "x", old.incarnation, old.seq, [list(l) for l in old.links]])
        mesh.settle()
        self.assertIsNone(k["y"].network.router.held("x"))


class SignerSetupTests(SynchronousTestCase):
    def test_key_must_match(self):
        """When the key belongs to another certificate, then the signer refuses to start."""
        error = self.assertRaises(ValueError, AdvertSigner, NODES["a"][1], NODES["b"][0], CA_CERT)
        self.assertIn("does not belong", str(error))

    def test_encrypted_key(self):
        """When the key is encrypted, then a ValueError says it cannot be loaded (not a TypeError)."""
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(NODES["a"][0], None)
        locked = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.BestAvailableEncryption(b"pw"))
        error = self.assertRaises(ValueError, AdvertSigner, NODES["a"][1], locked, CA_CERT)
        self.assertIn("cannot load", str(error))

    def test_names_are_common_names_only(self):
        """When a certificate lists host names as alternative names, then only its common name counts as a kernel name."""
        from cryptography import x509

        from lightspeed.adverts import certificate_names

        cert = x509.load_pem_x509_certificate(NODES["a"][1])
        self.assertEqual(certificate_names(cert), {"a"})


class HugeAdvertTests(SynchronousTestCase):
    def test_too_many_links(self):
        """When an advert lists more links than MAX_LSA_LINKS, then the link it came on closes as malformed."""
        from lightspeed.message import MAX_LSA_LINKS
        from lightspeed.test.test_mesh import build

        mesh, k, links = build("ab", "ab")
        own = k["a"].network.router.own()
        links["ab"].client.send_message([LSA, "a", own.incarnation, own.seq + 1,
                                         [[f"n{i}", 1] for i in range(MAX_LSA_LINKS + 1)]])
        mesh.settle()
        self.assertEqual(k["b"].network.links(), [])
        self.assertEqual(links["ab"].client.closed_reason.code, "malformed")


class HeldCopyTests(SynchronousTestCase):
    """
    A copy of an advert already held is dropped by its head, before its
    links are read; anything else is read in full.
    """

    def setUp(self):
        from lightspeed.test.test_mesh import build

        self.mesh, self.k, self.links = build("abc", "ab bc")
        self.held = self.k["b"].network.router.held("c")
        self.flooding = self.k["b"].network.flooding

    def send(self, seq, links):
        self.links["ab"].client.send_message([LSA, "c", self.held.incarnation, seq, links])
        self.mesh.settle()

    def test_copy_dropped_unread(self):
        """When a neighbour sends a copy of a held advert, then it is dropped whatever its links, counted against the rate limit, and the link stays up."""
        bucket = self.flooding._buckets["a"]
        tokens = bucket.tokens
        self.send(self.held.seq, [["b", "not a cost"]])
        self.assertEqual(self.k["b"].network.router.held("c"), self.held)
        self.assertEqual(len(self.k["b"].network.links()), 2)
        self.assertEqual(bucket.tokens, tokens - 1)
        self.assertEqual(self.flooding.bad_adverts, 0)

    def test_newer_read_in_full(self):
        """When the same malformed links come with a newer sequence number, then the link closes as malformed."""
        self.send(self.held.seq + 1, [["b", "not a cost"]])
        self.assertEqual(self.links["ab"].client.closed_reason.code, "malformed")
        self.assertEqual(self.k["b"].network.router.held("c"), self.held)


class ExpiredCertificateExcuseTests(SynchronousTestCase):
    """
    A relay may pass on a genuine advert whose certificate has since
    expired; that excuse never covers a bad signature.
    """

    def test_garbage_signature_with_expired_certificate_closes(self):
        """When a forged advert carries a certificate outside its dates and a bad signature, then the link closes (dates are excused only for genuine signatures)."""
        case = SignedMeshTests("test_signed_mesh_works")
        case.setUp()
        try:
            import datetime

            case.k["b"].network.signer._now = lambda: datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=5000)
            held = case.k["b"].network.router.held("c")
            lie = LinkState("c", held.incarnation, held.seq + 1, (("a", 1),))
            case.inject(lie, [signer("c").certificate, b"garbage"])
            self.assertEqual(bye_code(case.ab.client), "bad-advert")
            self.assertIn("signature is not valid", str(case.ab.client.closed_reason))
        finally:
            case.doCleanups()


class AdvertFloodTests(SynchronousTestCase):
    """
    Issue 11 (4): one admitted kernel advertising phantom kernels cannot
    fill every database, and its phantoms die soon after it leaves.
    """

    def test_phantom_flood_is_bounded_and_dies(self):
        """When a kernel floods 300 phantoms with 1000 links each, then held kernels and links are capped, honest routing works, and the phantoms go within the grace after the flooder leaves."""
        from lightspeed.test.test_mesh import build

        mesh, k, links = build("abcl", "ab bc al")
        for kernel in k.values():
            kernel.network.flooding.max_kernels = 50
        for i in range(300):
            links["al"].server.send_message([LSA, f"p{i}", 1 << 8, 1, [[f"q{i}-{j}", 1] for j in range(1000)]])
        mesh.settle()
        for name in "abc":
            router = k[name].network.router
            self.assertLessEqual(len(router), 50)
            stored = sum(len(lsa.links) for lsa in router.database())
            self.assertLess(stored, 50 * 1001)
        self.assertEqual(k["a"].network.router.next_hop("c"), "b")
        self.assertGreater(k["a"].network.flooding.dropped_adverts, 0)
        self.assertNotEqual(k["a"].network.links(), [])
        links["al"].close()
        mesh.settle()
        for _ in range(10):
            mesh.advance(10)  # 100 s: the 60 s grace, the 15 s sweep and a margin
        for name in "abc":
            router = k[name].network.router
            self.assertEqual({lsa.origin for lsa in router.database()}, set("abc"), (name, router.reachable()))
        self.assertEqual(k["a"].network.router.next_hop("c"), "b")

    def test_rate_limit(self):
        """When a link brings more adverts than the burst allows, then the excess is dropped and the link stays up."""
        from lightspeed.test.test_mesh import build

        mesh, k, links = build("ab", "ab")
        k["b"].network.flooding.advert_burst = 10
        k["b"].network.flooding.advert_rate = 1
        own = k["a"].network.router.own()
        for i in range(30):
            links["ab"].client.send_message([LSA, "a", own.incarnation, own.seq + 1 + i, [["b", 1]]])
        mesh.settle()
        self.assertGreaterEqual(k["b"].network.flooding.dropped_adverts, 20)
        self.assertNotEqual(k["b"].network.links(), [])
