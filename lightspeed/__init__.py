"""
lightspeed: join Twisted event-loop kernels into one network.

A session in any kernel posts to ``poe://otherbox/mysession/ping`` the way it
posts to a local session.

Everything a program needs is here: :obj:`Kernel`, :obj:`Session`,
:obj:`Event`, the specifier functions, the exceptions, and two names loaded
on first use so that ``import lightspeed`` stays cheap: :obj:`TLSConfig`
(pyOpenSSL and cryptography) and :obj:`MemoryMesh` (kernels linked in memory
on one clock, for tests).
"""

import importlib
from typing import TYPE_CHECKING

from lightspeed.errors import (
    AliasInUse,
    BacklogFull,
    BadSpecifier,
    EncodeError,
    HandshakeRefused,
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
from lightspeed.version import __version__

if TYPE_CHECKING:  # what type checkers see of the names below
    from lightspeed.testing import MemoryLink, MemoryMesh
    from lightspeed.tls import TLSConfig

#: Names imported on first use, and their modules: TLS loads pyOpenSSL and
#: cryptography, thousands of objects that every cyclic garbage collection
#: would walk in programs that never use TLS; the test kit loads Twisted's
#: test transports.
LAZY = {
    "TLSConfig": "lightspeed.tls",
    "MemoryMesh": "lightspeed.testing",
    "MemoryLink": "lightspeed.testing",
}


def __getattr__(name: str) -> object:
    module = LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lightspeed' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(LAZY))

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
    "HandshakeRefused",
    "LinkClosed",
    "Refused",
    "RemoteError",
    "RequestTimeout",
    "TLSConfig",
    "MemoryMesh",
    "MemoryLink",
    "__version__",
]
