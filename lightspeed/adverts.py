# -*- test-case-name: lightspeed.test.test_adverts -*-
"""
Signed routing adverts: each kernel signs its own LSAs with the private key
of its node certificate, and a kernel that requires signatures believes an
LSA only if it carries a certificate issued by the mesh's CA that names the
LSA's origin, and a valid signature by that certificate's key.

With signed adverts no kernel can lie about another kernel's links: a
forged or altered LSA fails verification and closes the link it came on.
See ``docs/security.rst`` and the "Signed adverts" part of
``docs/protocol.rst``.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Dict, Optional, Set, Tuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from lightspeed.router import LinkState
from lightspeed.wire.codec import dumps_trusted

__all__ = ["AdvertSigner", "certificate_names", "signed_content"]

#: The first item of the signed array: binds a signature to its purpose.
CONTEXT = "lightspeed-lsa-1"


def certificate_names(cert: x509.Certificate) -> Set[str]:
    """
    The kernel names a certificate vouches for: its subject's common
    names.  Subject alternative names are not used: they hold host names
    (``localhost``, addresses) that many nodes' certificates share.
    """
    return {str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}


def signed_content(lsa: LinkState) -> bytes:
    """
    The bytes an LSA's signature covers: the CBOR encoding of
    ``["lightspeed-lsa-1", origin, incarnation, seq, [[neighbour, cost],
    ...]]`` with the links sorted by neighbour name.
    """
    return dumps_trusted([CONTEXT, lsa.origin, lsa.incarnation, lsa.seq,
                          [[n, c] for n, c in sorted(lsa.links)]])


def _read(value: "bytes | str") -> bytes:
    if isinstance(value, bytes):
        return value
    with open(value, "rb") as f:
        return f.read()


class AdvertSigner:
    """
    Signs this kernel's LSAs and verifies other kernels' LSAs.

    :ivar certificate: this node's certificate, DER, sent in every proof.
    """

    def __init__(self, cert: "bytes | str", key: "bytes | str", ca: "bytes | str",
                 now: Optional[Callable[[], datetime.datetime]] = None) -> None:
        """
        :param cert: this node's certificate (PEM bytes or a path).
        :param key: its private key (PEM bytes or a path).
        :param ca: the CA certificate that must have issued every advert's
            certificate (PEM bytes or a path).
        :param now: the clock for certificate validity (default: UTC now).
        """
        try:
            own = x509.load_pem_x509_certificate(_read(cert))
            self._key = serialization.load_pem_private_key(_read(key), None)
        except (TypeError, ValueError) as e:  # TypeError: an encrypted key
            raise ValueError(f"cannot load the certificate and key: {e}") from None
        self.certificate = own.public_bytes(serialization.Encoding.DER)
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if own.public_key().public_bytes(*spki) != self._key.public_key().public_bytes(*spki):
            raise ValueError("the private key does not belong to the certificate")
        self._ca = x509.load_pem_x509_certificate(_read(ca))
        self._now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self._checked: Dict[bytes, Tuple[Set[str], Any, datetime.datetime, datetime.datetime]] = {}
        self._signed: Dict[Tuple[int, int, Tuple[Tuple[str, int], ...]], list] = {}
        reason = self._certificate(self.certificate)
        if isinstance(reason, str):
            raise ValueError(f"this node's own certificate cannot sign adverts: {reason}")
        if not self._valid_now(reason[2], reason[3]):
            raise ValueError("this node's own certificate cannot sign adverts: it is expired or not yet valid")

    @classmethod
    def from_tls(cls, config: Any) -> "AdvertSigner":
        """
        A signer from a :obj:`lightspeed.tls.TLSConfig` that has a CA.
        """
        if config.ca is None:
            raise ValueError("signed adverts need a CA")
        return cls(config.cert, config.key, config.ca)

    def sign(self, lsa: LinkState) -> list:
        """
        :returns: the proof for our own ``lsa``: ``[certificate_der,
            signature]``.
        """
        key = (lsa.incarnation, lsa.seq, lsa.links)
        proof = self._signed.get(key)
        if proof is None:
            content = signed_content(lsa)
            private = self._key
            if isinstance(private, ec.EllipticCurvePrivateKey):
                signature = private.sign(content, ec.ECDSA(hashes.SHA256()))
            elif isinstance(private, rsa.RSAPrivateKey):
                signature = private.sign(content, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(private, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
                signature = private.sign(content)
            else:  # pragma: no cover - DSA and exotic keys
                raise ValueError(f"cannot sign adverts with a {type(private).__name__}")
            self._signed = {key: [self.certificate, signature]}
            proof = self._signed[key]
        return proof

    def _certificate(self, der: bytes) -> "str | Tuple[Set[str], Any, datetime.datetime, datetime.datetime]":
        """
        Check a certificate against the CA (not the clock).

        :returns: ``(names, public_key, not_before, not_after)``, or the
            reason it is refused.
        """
        entry = self._checked.get(der)
        if entry is None:
            try:
                cert = x509.load_der_x509_certificate(der)
            except ValueError:
                return "its certificate does not parse"
            try:
                cert.verify_directly_issued_by(self._ca)
            except (ValueError, TypeError, InvalidSignature):
                return "its certificate is not issued by this kernel's CA"
            try:
                if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                    return "its certificate is a CA certificate"
            except x509.ExtensionNotFound:
                pass
            if len(self._checked) > 4096:
                self._checked.clear()
            entry = self._checked[der] = (certificate_names(cert), cert.public_key(),
                                          cert.not_valid_before_utc, cert.not_valid_after_utc)
        return entry

    def verify(self, lsa: LinkState, proof: Any) -> Optional[str]:
        """
        Check the proof of a received LSA.

        :returns: :obj:`None` if the LSA is genuine, else the reason it is not.
        """
        if proof is None:
            return "it is not signed"
        if type(proof) is not list or len(proof) != 2 or type(proof[0]) is not bytes \
                or type(proof[1]) is not bytes:
            return "its proof is malformed"
        checked = self._certificate(proof[0])
        if isinstance(checked, str):
            return checked
        names, public, start, end = checked
        if lsa.origin not in names:
            return f"its certificate does not name kernel {lsa.origin!r}"
        content = signed_content(lsa)
        try:
            if isinstance(public, ec.EllipticCurvePublicKey):
                public.verify(proof[1], content, ec.ECDSA(hashes.SHA256()))
            elif isinstance(public, rsa.RSAPublicKey):
                public.verify(proof[1], content, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(public, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
                public.verify(proof[1], content)
            else:
                return f"its certificate's {type(public).__name__} key cannot sign adverts"
        except InvalidSignature:
            return "its signature is not valid"
        if not self._valid_now(start, end):  # last: only a genuine signature may be excused for its date
            return "its certificate is expired or not yet valid"
        return None

    def _valid_now(self, start: datetime.datetime, end: datetime.datetime) -> bool:
        return start <= self._now() <= end
