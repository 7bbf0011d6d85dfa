# -*- test-case-name: lightspeed.test.test_mesh -*-
"""
The links of one kernel, grouped by neighbour, and write coalescing: every
link with output waiting writes it once, at the end of a batch of work (or
on the next reactor turn at the latest).  Output made while a link handles
a read (answers, the next request) costs no timer: the read's end writes it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from twisted.internet.interfaces import IReactorTime

from lightspeed.wire.codec import dumps, dumps_trusted

__all__ = ["Links"]


class Links:
    """
    The links that finished their handshake.

    :ivar by_peer: ``{neighbour: [link, ...]}``, oldest first; the first
        carries what is sent to that neighbour.
    """

    def __init__(self, reactor: IReactorTime) -> None:
        self._reactor = reactor
        self.by_peer: Dict[str, List[Any]] = {}
        self._all: List[Any] = []
        self._dirty: List[Any] = []
        self._flush_call: Any = None
        #: Whether a link is handling a read: its owner flushes at the end
        #: of it (``after_read``), so output marked meanwhile needs no timer.
        self.reading = False
        #: Called first at each flush: writes what was held back to be sent
        #: together (the delivery streams' batches).
        self.before_flush: Any = None
        #: Frames in and out and bytes in and out of the links gone down.
        self.retired = [0, 0, 0, 0]

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, link: Any) -> bool:
        return link in self._all

    def all(self) -> List[Any]:
        """
        Every link that is up.
        """
        return list(self._all)

    def add(self, link: Any) -> bool:
        """
        A link came up.

        :returns: whether it is the first to its neighbour.
        """
        self._all.append(link)
        links = self.by_peer.setdefault(link.peer.name, [])
        links.append(link)
        return len(links) == 1

    def remove(self, link: Any) -> Optional[bool]:
        """
        A link went down.

        :returns: ``None`` if it was not up, else whether it was the last
            to its neighbour.
        """
        if link not in self._all:
            return None
        self._all.remove(link)
        conn = getattr(link, "conn", None)
        if conn is not None:
            retired = self.retired
            retired[0] += conn.frames_in
            retired[1] += conn.frames_out
            retired[2] += conn.bytes_in
            retired[3] += conn.bytes_out
        links = self.by_peer.get(link.peer.name, [])
        if link in links:
            links.remove(link)
        if links:
            return False
        self.by_peer.pop(link.peer.name, None)
        return True

    def to(self, peer: str) -> Any:
        """
        The link that carries what goes to neighbour ``peer``.
        """
        return self.by_peer[peer][0]

    def prefer(self, link: Any) -> None:
        """
        Let ``link`` (up) carry what goes to its neighbour from now on.
        """
        links = self.by_peer[link.peer.name]
        links.remove(link)
        links.insert(0, link)

    def incarnation(self, peer: str) -> Optional[int]:
        """
        The incarnation neighbour ``peer`` said HELLO with, if it is one.
        """
        links = self.by_peer.get(peer)
        return links[0].peer.incarnation if links else None

    def send_all(self, message: list, source: Optional[str] = None, trusted: bool = False) -> int:
        """
        Send ``message`` to every neighbour but ``source``, once each
        (``trusted``: it holds only plain values, see :obj:`dumps_trusted`).

        :returns: to how many.
        """
        sent, body = 0, None
        for neighbour, links in self.by_peer.items():
            if neighbour != source and links:
                body = body if body is not None else (dumps_trusted if trusted else dumps)(message)  # once for all
                links[0].send_body(body)
                sent += 1
        return sent

    # -- output coalescing -----------------------------------------------------

    def mark_dirty(self, link: Any) -> None:
        """
        ``link`` has output waiting.
        """
        self._dirty.append(link)
        if self._flush_call is None and not self.reading:
            self._flush_call = self._reactor.callLater(0, self.flush)

    def flush_read(self) -> None:
        """
        A read ends: write what it made, and schedule again from now on.
        """
        try:
            self.flush()
        finally:
            self.reading = False

    def flush(self) -> None:
        """
        Write every link's waiting output, one write per link.
        """
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        while self._dirty:
            if self.before_flush is not None:
                self.before_flush()
            dirty, self._dirty = self._dirty, []
            for link in dirty:
                link.flush()

    def close_all(self, code: str, message: str) -> None:
        """
        Close every link with a BYE.
        """
        for link in list(self._all):
            link.close(code, message)
