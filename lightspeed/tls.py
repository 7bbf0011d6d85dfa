# -*- test-case-name: lightspeed.test.test_tls -*-
"""
TLS for links: a small private CA, node certificates, and the Twisted TLS
options for both ends.

Servers given a CA demand a client certificate signed by it (mutual TLS);
clients verify the server's certificate against the CA and check its name
with service-identity.  TLS 1.2 is the floor, and both ends offer AEAD
suites only (:data:`CIPHERS`).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    AcceptableCiphers,
    Certificate,
    CertificateOptions,
    PrivateCertificate,
    TLSVersion,
    optionsForClientTLS,
)

from lightspeed.wire import CIPHERS  # defined below both TLS ends: ClientLite offers the same suites

__all__ = ["TLSConfig", "create_ca", "create_node", "write_pki", "server_options", "client_options", "CIPHERS",
           "default_ca_name"]


_ciphers: Optional[AcceptableCiphers] = None


def _acceptable_ciphers() -> AcceptableCiphers:
    global _ciphers
    if _ciphers is None:
        _ciphers = AcceptableCiphers.fromOpenSSLCipherString(CIPHERS)
    return _ciphers


def default_ca_name() -> str:
    """
    A fresh CA common name, ``"lightspeed CA 3f9a1c2e"``: two CAs made
    apart never share a name, so a certificate from the other one fails as
    "unknown CA" rather than with a signature error.
    """
    return f"lightspeed CA {os.urandom(4).hex()}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def create_ca(common_name: Optional[str] = None, days: int = 3650) -> Tuple[bytes, bytes]:
    """
    A new self-signed certificate authority, named ``common_name``
    (default: :func:`default_ca_name`).

    :returns: ``(key_pem, cert_pem)``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or default_ca_name())])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _pem_key(key), cert.public_bytes(serialization.Encoding.PEM)


def create_node(ca_key_pem: bytes, ca_cert_pem: bytes, name: str,
                hosts: Iterable[str] = ("localhost", "127.0.0.1", "::1"), days: int = 825,
                not_before: Optional[datetime.datetime] = None) -> Tuple[bytes, bytes]:
    """
    A certificate for one node, signed by the CA, valid for both ends of a
    link, naming ``name`` and ``hosts`` (DNS names or IP addresses).

    :returns: ``(key_pem, cert_pem)``.
    """
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    alt: List[x509.GeneralName] = [x509.DNSName(name)]
    for host in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    start = not_before or _now() - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return _pem_key(key), cert.public_bytes(serialization.Encoding.PEM)


def write_pki(directory: str, names: Iterable[str], ca_name: Optional[str] = None,
              hosts: Iterable[str] = ("localhost", "127.0.0.1", "::1")) -> List[str]:
    """
    Create (or reuse) ``directory``/ca.key and ca.crt (a new CA is named
    ``ca_name``, default :func:`default_ca_name`), and a NAME.key and
    NAME.crt for each node name.  Keys are written readable by the owner
    only.

    :returns: the paths written.
    """
    os.makedirs(directory, exist_ok=True)
    ca_key_path, ca_crt_path = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.crt")
    written = []
    if os.path.exists(ca_key_path) and os.path.exists(ca_crt_path):
        with open(ca_key_path, "rb") as f:
            ca_key = f.read()
        with open(ca_crt_path, "rb") as f:
            ca_crt = f.read()
    else:
        ca_key, ca_crt = create_ca(ca_name)
        written += [_write(ca_key_path, ca_key, secret=True), _write(ca_crt_path, ca_crt)]
    hosts = list(hosts)
    for name in names:
        key, crt = create_node(ca_key, ca_crt, name, hosts)
        written += [_write(os.path.join(directory, f"{name}.key"), key, secret=True),
                    _write(os.path.join(directory, f"{name}.crt"), crt)]
    return written


def _write(path: str, data: bytes, secret: bool = False) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _read(value: "bytes | str") -> bytes:
    """
    PEM bytes as they are, or the contents of a file path.
    """
    if isinstance(value, bytes):
        return value
    with open(value, "rb") as f:
        return f.read()


@dataclass
class TLSConfig:
    """
    What one node brings to TLS: its certificate and key, and the CA it
    trusts (each PEM bytes or a file path).

    :ivar cert: this node's certificate.
    :ivar key: its private key.
    :ivar ca: the CA certificate peers must be signed by; without it a
        server accepts any client and a client trusts the system's roots.
    :ivar name: for a client end, the name the server's certificate must
        carry (default: the host it connects to).
    :ivar bind_names: with a CA, also require the peer's certificate to
        name the kernel it says it is in the handshake, so that a node
        cannot pass itself off as another kernel (default true).
    """

    cert: "bytes | str"
    key: "bytes | str"
    ca: "bytes | str | None" = None
    name: Optional[str] = None
    bind_names: bool = True

    def private_certificate(self) -> PrivateCertificate:
        return PrivateCertificate.loadPEM(_read(self.key) + b"\n" + _read(self.cert))

    def authority(self) -> Optional[Certificate]:
        return Certificate.loadPEM(_read(self.ca)) if self.ca is not None else None


def server_options(config: TLSConfig) -> CertificateOptions:
    """
    Options for a server end: with a CA, clients must present a certificate
    signed by it (mutual TLS).
    """
    mine = config.private_certificate()
    authority = config.authority()
    return CertificateOptions(
        privateKey=mine.privateKey.original,
        certificate=mine.original,
        verify=authority is not None,
        caCerts=[authority.original] if authority is not None else None,
        requireCertificate=authority is not None,
        raiseMinimumTo=TLSVersion.TLSv1_2,
        acceptableCiphers=_acceptable_ciphers(),
    )


def client_options(config: TLSConfig, host: str) -> IOpenSSLClientConnectionCreator:
    """
    Options for a client end connecting to ``host``: the server's certificate
    must chain to the CA and carry ``config.name`` (default ``host``).
    """
    return optionsForClientTLS(
        config.name or host,
        trustRoot=config.authority(),
        clientCertificate=config.private_certificate(),
        extraCertificateOptions={"raiseMinimumTo": TLSVersion.TLSv1_2,
                                 "acceptableCiphers": _acceptable_ciphers()},
    )
