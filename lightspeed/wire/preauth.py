# -*- test-case-name: lightspeed.test.test_preauth -*-
"""
Limits on the connections of one listener that have not finished their
handshake (no credential checked yet): how many there are, how many come
from one address, and how many bytes they make us buffer.

A connection over a limit is refused (the caller aborts it at once), and
each refusal is logged once per peer address: a flood of connections from
one address gives one log line, not one per connection.  The addresses
already logged are remembered in a bounded set (forgotten all at once when
full), so the memory of the log stays bounded too.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from twisted.logger import Logger

from lightspeed.bounded import BoundedCache

__all__ = ["PreauthGate", "MAX_UNAUTHENTICATED", "MAX_UNAUTHENTICATED_PER_ADDRESS",
           "MAX_UNAUTHENTICATED_BYTES", "LOGGED_ADDRESSES"]

#: Connections of one listener that may be in their handshake at once.
MAX_UNAUTHENTICATED = 64
#: Of those, how many may come from one IP address.
MAX_UNAUTHENTICATED_PER_ADDRESS = 16
#: Bytes all of them together may make us buffer (partial frames): 16 full
#: pre-handshake frames of 64 KiB; an honest handshake buffers under 1 KiB.
MAX_UNAUTHENTICATED_BYTES = 1024 * 1024
#: Peer addresses whose refusal was logged, remembered to log each once.
LOGGED_ADDRESSES = 1024


class PreauthGate:
    """
    The not-yet-authenticated connections of one listener.

    :ivar buffered: bytes they buffer now, in total.
    :ivar refused: refusals so far by limit: ``"connections"`` (too many
        at once), ``"per-address"`` (too many from one address),
        ``"bytes"`` (the one buffering most when the total passed the
        limit).
    """

    log = Logger()

    def __init__(self, label: str, max_connections: int = MAX_UNAUTHENTICATED,
                 max_per_address: int = MAX_UNAUTHENTICATED_PER_ADDRESS,
                 max_bytes: int = MAX_UNAUTHENTICATED_BYTES) -> None:
        self.label = label
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.max_bytes = max_bytes
        #: link -> [address, bytes buffered, drop callable]
        self._pending: Dict[Any, List[Any]] = {}
        self._per_address: Dict[str, int] = {}
        self._logged = BoundedCache(LOGGED_ADDRESSES)
        self.buffered = 0
        self.refused = {"connections": 0, "per-address": 0, "bytes": 0}

    def __len__(self) -> int:
        return len(self._pending)

    def admit(self, link: Any, address: str, per_address: bool, drop: Callable[[], None]) -> bool:
        """
        A new connection from ``address``: keep it, or refuse it (return
        false; the caller closes it).  ``per_address`` says whether the
        per-address limit applies (IP addresses; not UNIX sockets).
        """
        if len(self._pending) >= self.max_connections:
            return self._refuse("connections", address,
                                f"{self.max_connections} connections are already in their handshake")
        count = self._per_address.get(address, 0)
        if per_address and count >= self.max_per_address:
            return self._refuse("per-address", address,
                                f"{self.max_per_address} connections from it are already in their handshake")
        self._per_address[address] = count + 1
        self._pending[link] = [address, 0, drop]
        return True

    def join(self, link: Any) -> bool:
        """
        :meth:`admit` a new link by its transport's peer address; a refused
        one is dropped (``link.drop()``, an abort) at once.
        """
        peer = link.transport.getPeer()
        host = getattr(peer, "host", None)
        if self.admit(link, host if host is not None else type(peer).__name__, host is not None, link.drop):
            return True
        link.drop()
        return False

    def update(self, link: Any, buffered: int) -> None:
        """
        ``link`` now buffers ``buffered`` bytes; past the total limit the
        connections buffering most are refused and dropped until it holds.
        """
        entry = self._pending.get(link)
        if entry is None:
            return
        self.buffered += buffered - entry[1]
        entry[1] = buffered
        while self.buffered > self.max_bytes and self._pending:
            victim = max(self._pending, key=lambda k: self._pending[k][1])
            address, size, drop = self._pending[victim]
            self.release(victim)
            self._refuse("bytes", address, f"{size} bytes buffered before the handshake while all such "
                                           f"connections passed {self.max_bytes} bytes")
            drop()

    def release(self, link: Any) -> None:
        """
        ``link`` finished its handshake or closed.
        """
        entry = self._pending.pop(link, None)
        if entry is None:
            return
        address = entry[0]
        self.buffered -= entry[1]
        left = self._per_address[address] - 1
        if left:
            self._per_address[address] = left
        else:
            del self._per_address[address]

    def _refuse(self, limit: str, address: Optional[str], why: str) -> bool:
        self.refused[limit] += 1
        if address not in self._logged:
            self._logged.remember(address, None)
            self.log.warn("kernel {kernel}: refusing unauthenticated connections from {address}: {why} "
                          "(logged once per address)", kernel=self.label, address=address, why=why)
        return False
