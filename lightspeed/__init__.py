"""
lightspeed: join Twisted event-loop kernels into one network.

A session in any kernel posts to ``poe://otherbox/mysession/ping`` the way it
posts to a local session.
"""

from lightspeed.errors import (
    AliasInUse,
    BacklogFull,
    BadSpecifier,
    EncodeError,
    LightspeedError,
    LinkClosed,
    NoCurrentSession,
    NoRoute,
    NoSuchSession,
    Refused,
    RemoteError,
    RequestTimeout,
)
from lightspeed.kernel import Kernel
from lightspeed.session import Event, Session
from lightspeed.specifier import Specifier, coerce, parse

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # TLSConfig is imported on first use: it loads pyOpenSSL and
    # cryptography, thousands of objects that every cyclic garbage
    # collection would walk in programs that never use TLS.
    if name == "TLSConfig":
        from lightspeed.tls import TLSConfig

        return TLSConfig
    raise AttributeError(f"module 'lightspeed' has no attribute {name!r}")

__all__ = [
    "Kernel",
    "Session",
    "Event",
    "Specifier",
    "parse",
    "coerce",
    "LightspeedError",
    "BadSpecifier",
    "NoSuchSession",
    "NoCurrentSession",
    "NoRoute",
    "AliasInUse",
    "BacklogFull",
    "EncodeError",
    "LinkClosed",
    "Refused",
    "RemoteError",
    "RequestTimeout",
    "TLSConfig",
]
