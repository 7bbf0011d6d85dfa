# -*- test-case-name: lightspeed.test.test_delivery -*-
"""
The two ends of a delivery stream (see :mod:`lightspeed.net.delivery`):
what an origin keeps for one start of a destination, and what a
destination keeps for one start of an origin.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, succeed

__all__ = ["Outbox", "Inbox", "Unacked", "FlowControl"]

#: The deadlines of unacknowledged messages that have one, by sequence number.
Unacked = Dict[int, float]


class Outbox:
    """
    The stream from this kernel to one start of one other kernel.
    """

    __slots__ = ("kernel", "incarnation", "next_seq", "unacked", "backlog", "timer", "rto", "hop", "gone_at",
                 "leave_call", "waiters", "producers", "paused", "head", "link", "epoch", "unacked_bytes",
                 "backlog_bytes", "since", "progress", "first", "batch", "batch_seq", "batch_bytes", "batch_link",
                 "deadlines", "batch_end")

    def __init__(self, kernel: str, incarnation: int, rto: float) -> None:
        self.kernel = kernel
        self.incarnation = incarnation
        self.next_seq = 1
        #: The sequence number of the first message (after a tombstone, if
        #: the stream begins with one).
        self.first = 1
        #: The payloads not yet acknowledged, of the consecutive sequence
        #: numbers up to ``next_seq - 1`` (no per-message tuple: the first is
        #: ``next_seq - len(unacked)``), and the deadlines of those that have one.
        self.unacked: Deque[bytes] = deque()
        self.deadlines: Unacked = {}
        self.backlog: Deque[Tuple[bytes, Optional[float]]] = deque()
        self.unacked_bytes = 0
        self.backlog_bytes = 0
        #: The retransmit timer, and when its clock started (the first
        #: message into an empty window, the last ack, the last resend);
        #: and when the window last moved (or started).
        self.timer: Any = None
        self.since = 0.0
        self.progress = 0.0
        self.rto = rto
        self.hop: Optional[str] = None
        self.gone_at: Optional[float] = None
        self.leave_call: Any = None
        self.waiters: List[Deferred] = []
        self.producers: List[Any] = []
        self.paused = False
        #: The start of every ROUTED body to this destination, and the link
        #: it went on while the relay's route epoch was ``epoch``.
        self.head = b""
        self.link: Any = None
        self.epoch = -1
        #: Payloads from ``batch_seq`` on, held until the end of the reactor
        #: turn to go to ``batch_link`` in one ROUTED message.
        self.batch: List[bytes] = []
        self.batch_seq = 0
        self.batch_bytes = 0
        self.batch_link: Any = None
        #: The first sequence number that may not join the batch in
        #: ``Delivery.send`` (see ``Delivery._transmit``).
        self.batch_end = 0

    def keep(self, seq: int, payload: bytes, deadline: Optional[float]) -> None:
        """
        Keep message ``seq`` (the next one) until it is acknowledged.
        """
        self.unacked.append(payload)
        self.unacked_bytes += len(payload)
        if deadline is not None:
            self.deadlines[seq] = deadline

    def wait(self) -> Deferred:
        """
        :returns: a Deferred that fires at the next :meth:`resume`.
        """
        d: Deferred = Deferred()
        self.waiters.append(d)
        return d

    def add_producer(self, producer: Any) -> None:
        """
        Pause ``producer`` while messages wait for the window.
        """
        self.producers.append(producer)
        if self.paused:
            producer.pauseProducing()

    def pause(self) -> None:
        """
        Messages wait for the window: pause the producers.
        """
        if not self.paused:
            self.paused = True
            for producer in list(self.producers):
                producer.pauseProducing()

    def resume(self) -> None:
        """
        Nothing waits any more: fire the waiters, resume the producers.
        """
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(None)
        if self.paused:
            self.paused = False
            for producer in list(self.producers):
                producer.resumeProducing()


class Inbox:
    """
    The stream from one start of another kernel to this kernel.
    """

    __slots__ = ("incarnation", "delivered", "early", "early_bytes", "owed")

    def __init__(self, incarnation: int) -> None:
        self.incarnation = incarnation
        self.delivered = 0
        self.early: Dict[int, Tuple[bytes, Optional[float]]] = {}
        self.early_bytes = 0
        self.owed = 0


class FlowControl:
    """
    What posters see of the windows of :class:`~lightspeed.net.delivery.Delivery`
    (which it is part of): readiness, backlogs and producers.
    """

    outboxes: Dict[str, Outbox]
    window: int
    window_bytes: int

    def _open(self, kernel: str) -> Outbox:
        raise NotImplementedError  # pragma: no cover - Delivery's

    def _room(self, box: Outbox) -> bool:
        """
        Whether ``box``'s window has room for one more message.
        """
        return len(box.unacked) < self.window and box.unacked_bytes < self.window_bytes

    def ready(self, kernel: str) -> Deferred:
        """
        :returns: a Deferred that fires once a message to ``kernel`` would
            be sent at once (its window has room, nothing waits before it).
        """
        box = self.outboxes.get(kernel)
        return succeed(None) if box is None or (not box.backlog and self._room(box)) else box.wait()

    def pending(self, kernel: str) -> int:
        """
        :returns: the messages to ``kernel`` not yet acknowledged, sent or waiting.
        """
        box = self.outboxes.get(kernel)
        return 0 if box is None else len(box.unacked) + len(box.backlog)

    def add_producer(self, kernel: str, producer: Any) -> None:
        """
        Pause ``producer`` (an ``IPushProducer``) whenever messages to
        ``kernel`` wait for the window, and resume it when they no longer do.
        """
        (self.outboxes.get(kernel) or self._open(kernel)).add_producer(producer)

    def remove_producer(self, kernel: str, producer: Any) -> None:
        box = self.outboxes.get(kernel)
        if box is not None and producer in box.producers:
            box.producers.remove(producer)
