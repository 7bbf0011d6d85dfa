# -*- test-case-name: lightspeed.test.test_protocol -*-
"""
:obj:`LinkOptions`: the settings of a listener's or a connection's links
(re-exported by :mod:`lightspeed.wire.protocol`).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.interfaces import IAddress

from lightspeed.wire.framing import DEFAULT_MAX_FRAME
from lightspeed.wire.handshake import AUTH_BURST, AUTH_INTERVAL
from lightspeed.wire import preauth, throttle

__all__ = ["LinkOptions"]


class LinkOptions:
    """
    Per-listener or per-connection settings.

    :ivar password: shared secret (str or bytes), or :obj:`None`.
    :ivar compression: ask for zlib.
    :ivar keepalive: seconds between PINGs; a peer silent for three of
        them is dead.  0 turns keepalive off (the one PING that measures the
        round trip after the handshake still goes out).
    :ivar handshake_timeout: seconds a new link may take to finish its
        handshake.
    :ivar max_frame: the longest frame accepted.
    :ivar accept: a callable ``(local_address, remote_address) -> bool``
        that may refuse a new connection before the handshake (the seed's
        AUTHCLIENT).
    :ivar max_backlog: bytes that may wait for a peer that does not read
        (the transport paused us); past it the link closes ("slow-reader").
    :ivar tls_names: require the peer's TLS certificate to carry its kernel
        name (common name or DNS subject alternative name); set for you by
        ``listen``/``connect`` with ``tls=`` when the :obj:`TLSConfig` has a CA.
    :ivar auth_burst: (listeners with a password) failed password
        handshakes a source address may have in a row before its
        connections are refused before the handshake.
    :ivar auth_interval: (listeners with a password) seconds after which a
        refused address may try once more.
    :ivar max_unauthenticated: (listeners) connections in their handshake at
        once, ``max_unauthenticated_per_address`` from one IP address,
        ``max_unauthenticated_bytes`` buffered in all (:mod:`.preauth`).
    :ivar message_rate: messages a second once up, ``message_burst`` at
        once; past them reading pauses (:mod:`.throttle`; 0: no limit).
    """

    def __init__(self, password: Any = None, compression: bool = False, keepalive: float = 15.0,
                 handshake_timeout: float = 10.0, max_frame: int = DEFAULT_MAX_FRAME,
                 accept: Optional[Callable[[IAddress, IAddress], bool]] = None,
                 max_backlog: int = 64 * 1024 * 1024, tls_names: bool = False,
                 auth_burst: int = AUTH_BURST, auth_interval: float = AUTH_INTERVAL,
                 max_unauthenticated: int = preauth.MAX_UNAUTHENTICATED,
                 max_unauthenticated_per_address: int = preauth.MAX_UNAUTHENTICATED_PER_ADDRESS,
                 max_unauthenticated_bytes: int = preauth.MAX_UNAUTHENTICATED_BYTES,
                 message_rate: float = throttle.MESSAGE_RATE, message_burst: int = throttle.MESSAGE_BURST) -> None:
        if isinstance(password, str):
            password = password.encode("utf-8")
        self.password: Optional[bytes] = password
        self.compression = compression
        self.keepalive = keepalive
        self.handshake_timeout = handshake_timeout
        self.max_frame = max_frame
        self.accept = accept
        self.max_backlog = max_backlog
        self.tls_names = tls_names
        self.auth_burst = auth_burst
        self.auth_interval = auth_interval
        self.max_unauthenticated = max_unauthenticated
        self.max_unauthenticated_per_address = max_unauthenticated_per_address
        self.max_unauthenticated_bytes = max_unauthenticated_bytes
        self.message_rate = message_rate
        self.message_burst = message_burst
