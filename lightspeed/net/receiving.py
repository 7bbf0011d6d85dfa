# -*- test-case-name: lightspeed.test.test_delivery -*-
"""
The receiving side of delivery (see :mod:`lightspeed.net.delivery`): each
stream from another kernel is delivered in order and once, early arrivals
are held within bounds, and acks go back every :data:`ACK_EVERY` messages
or :data:`ACK_DELAY` seconds after the first owed, unless a message going
back carries them first.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from lightspeed.message import parse_payload
from lightspeed.net.streams import Inbox
from lightspeed.wire.codec import loads, loads_joined

__all__ = ["Receiving", "MAX_EARLY", "MAX_EARLY_BYTES", "ACK_EVERY", "ACK_DELAY"]

#: Early arrivals held per origin while an earlier one is missing, and
#: their bytes at most (past either, an early arrival is dropped: its origin
#: sends it again).
MAX_EARLY = 4096
MAX_EARLY_BYTES = 16 * 1024 * 1024
#: A destination acks at least every this many messages...
ACK_EVERY = 32
#: ...or this many seconds after the first message it owes an ack for.
ACK_DELAY = 0.010


class Receiving:
    """
    The streams from other kernels to this one.

    :ivar duplicates: messages received again and dropped.
    """

    def __init__(self, network: Any, delivery: Any) -> None:
        self._network = network
        self._delivery = delivery
        self._name = network.name
        self._incarnation: int = network.incarnation
        self._reactor = network.reactor
        self._router = network.router
        self._dispatch = network.dispatch
        self.inboxes: Dict[str, Inbox] = {}
        self._owed: Dict[str, None] = {}
        self._ack_call: Any = None
        self.max_early = MAX_EARLY
        self.max_early_bytes = MAX_EARLY_BYTES
        self.duplicates = 0
        #: Sequence numbers skipped (tombstones) and delivered on streams
        #: replaced by a new start of their origin (see :meth:`delivered`).
        self._skipped = 0
        self._delivered_before = 0

    def arrived(self, origin: str, incarnation: int, entry: Tuple[str, int, int, int], ttl: Optional[int],
                payload: bytes, peer: str) -> None:
        """
        A message for this kernel: ``entry`` is ``(us, our incarnation, seq,
        ack)`` of the stream from ``origin``'s start ``incarnation``.
        """
        if entry[1] != self._incarnation:
            return  # for an earlier start of this kernel: its origin learns we restarted
        inbox = self.inboxes.get(origin)
        if inbox is None or incarnation > inbox.incarnation:
            if inbox is not None:
                self._delivered_before += inbox.delivered
            inbox = self.inboxes[origin] = Inbox(incarnation)  # a new start: a new stream
        elif incarnation < inbox.incarnation:
            return  # from an earlier start of the origin
        if entry[3]:
            self._delivery._acked(origin, incarnation, entry[3])
        seq = entry[2]
        if seq == 0:
            return  # an ack alone
        if not payload:
            self._skip(origin, inbox, seq, peer)  # a tombstone
        elif seq == inbox.delivered + 1:
            inbox.delivered = seq
            self._owe(origin, inbox, 1)  # before the handler: an answer it sends carries the ack
            if peer == origin and (ttl is None or ttl > 0):
                self._dispatch.arrived(origin, loads(payload))  # the hot path (checked there; requests too)
            else:
                self._consume(origin, payload, None if ttl is None else (ttl <= 0), peer)
            if inbox.early:
                self._release(origin, inbox, peer)
            return  # owed above, before the handler
        elif seq <= inbox.delivered:
            self.duplicates += 1
        elif len(inbox.early) < self.max_early and inbox.early_bytes + len(payload) <= self.max_early_bytes \
                and seq not in inbox.early:
            deadline = None if ttl is None else self._reactor.seconds() + ttl / 1000.0
            inbox.early[seq] = (payload, deadline)
            inbox.early_bytes += len(payload)
        self._owe(origin, inbox, 1)

    def _owe(self, origin: str, inbox: Inbox, count: int) -> None:
        """
        ``count`` more messages from ``origin`` to acknowledge: an ack goes
        within :data:`ACK_DELAY`, or on the next turn once :data:`ACK_EVERY`
        are owed (unless traffic back carries it first).
        """
        owed = inbox.owed = inbox.owed + count
        if owed == count:
            self._owed[origin] = None
        if owed >= ACK_EVERY:
            self._schedule_acks(0)
        elif self._ack_call is None:
            self._schedule_acks(ACK_DELAY)

    def delivered(self) -> int:
        """
        :returns: how many messages from other kernels arrived here in
            order, read from the streams' sequence numbers.
        """
        return self._delivered_before - self._skipped + sum(inbox.delivered for inbox in self.inboxes.values())

    def arrived_batch(self, origin: str, incarnation: int, entry: Tuple[str, int, int, int], payloads: List[bytes],
                      peer: str) -> None:
        """
        Several messages for this kernel, for sequence numbers from
        ``entry``'s on: delivered in one go when they come next (straight
        from their origin or through a relay); else one by one as
        :meth:`arrived` takes them.
        """
        inbox = self.inboxes.get(origin)
        seq = entry[2]
        if inbox is not None and inbox.incarnation == incarnation and entry[1] == self._incarnation \
                and seq == inbox.delivered + 1 and not inbox.early:
            self._next_batch(origin, incarnation, entry, payloads, inbox, peer)
            return
        self.arrived(origin, incarnation, entry, None, payloads[0], peer)
        for i in range(1, len(payloads)):
            self.arrived(origin, incarnation, (entry[0], entry[1], seq + i, 0), None, payloads[i], peer)

    def _next_batch(self, origin: str, incarnation: int, entry: Tuple[str, int, int, int], payloads: List[bytes],
                    inbox: Inbox, peer: str) -> None:
        """
        A batch that comes next on its stream, delivered in one go.  Its
        first payload is handled alone; if it is a post on the dispatcher's
        hot path, the ones after it that are the same post but for a string
        argument are queued from their bytes
        (:meth:`~lightspeed.net.dispatch.Dispatcher.same_posts`); the
        rest are decoded as a whole.  What is wrong in a batch straight
        from its origin closes the link; one from a relay is dropped alone
        (:meth:`~lightspeed.net.relay.Relay.deliver_payload`,
        :meth:`~lightspeed.net.relay.Relay.deliver_batch`).
        """
        if entry[3]:
            self._delivery._acked(origin, incarnation, entry[3])
        self._owe(origin, inbox, len(payloads))  # before the handlers: what they send back carries the ack
        relay = self._network.relay
        inbox.delivered += 1
        got = relay.deliver_payload(origin, peer, payloads[0])
        done = 1 if got is None or got[1] is None else 1 + self._dispatch.same_posts(got[0], got[1], payloads, inbox)
        if done == len(payloads):
            return
        rest = payloads[done:]
        joined = loads_joined(rest)
        if peer == origin:
            # Not valid as a whole: one by one, to fail where (and as) it is wrong.
            self._dispatch.deliver_all(origin, map(loads, rest) if joined is None else joined, inbox)
        elif joined is not None:
            relay.deliver_batch(origin, peer, joined, inbox)
        else:
            for payload in rest:  # each that is wrong dropped alone
                inbox.delivered += 1
                relay.deliver_payload(origin, peer, payload)

    def _skip(self, origin: str, inbox: Inbox, seq: int, peer: str) -> None:
        """
        A tombstone: the origin gave up every message up to ``seq`` (and
        reported them): skip them, then deliver what follows.
        """
        if seq <= inbox.delivered:
            self.duplicates += 1
            return
        for held in [n for n in inbox.early if n <= seq]:
            inbox.early_bytes -= len(inbox.early.pop(held)[0])
        self._skipped += seq - inbox.delivered
        inbox.delivered = seq
        if inbox.early:
            self._release(origin, inbox, peer)

    def _release(self, origin: str, inbox: Inbox, peer: str) -> None:
        early = inbox.early
        while inbox.delivered + 1 in early:
            payload, deadline = early.pop(inbox.delivered + 1)
            inbox.early_bytes -= len(payload)
            inbox.delivered += 1
            expired = None if deadline is None else deadline <= self._reactor.seconds()
            self._consume(origin, payload, expired, peer)

    def _consume(self, origin: str, payload: bytes, expired: Optional[bool], peer: str) -> None:
        if expired:
            self._network.relay.expired(origin, payload)
        else:
            self._network.relay.deliver_payload(origin, peer, payload)

    def _schedule_acks(self, delay: float) -> None:
        if self._ack_call is not None:
            if delay or self._ack_call.getTime() <= self._reactor.seconds():
                return
            self._ack_call.cancel()
        self._ack_call = self._reactor.callLater(delay, self._send_acks)

    def _send_acks(self) -> None:
        """
        Send an ack alone to every origin still owed one.
        """
        self._ack_call = None
        owed, self._owed = self._owed, {}
        forward = self._network.relay.forward
        for origin in owed:
            inbox = self.inboxes.get(origin)
            if inbox is None or not inbox.owed or self._router.next_hop(origin) is None:
                continue
            inbox.owed = 0
            forward(self._name, self._incarnation, [(origin, inbox.incarnation, 0, inbox.delivered)],
                    self._network.hops, None, b"")

    def ack_for(self, kernel: str, incarnation: int) -> int:
        """
        The ack a message to ``kernel`` carries (settling what we owe it).
        """
        inbox = self.inboxes.get(kernel)
        if inbox is None or inbox.incarnation != incarnation:
            return 0
        if inbox.owed:
            inbox.owed = 0
            self._owed.pop(kernel, None)
        return inbox.delivered

    def forget_early(self, kernel: str) -> None:
        """
        ``kernel`` went: what it sent early comes again if it comes back.
        """
        inbox = self.inboxes.get(kernel)
        if inbox is not None:
            inbox.early.clear()
            inbox.early_bytes = 0

    def stop(self) -> None:
        """
        This kernel leaves: the streams are kept (they may go on if it
        comes back), their early arrivals and owed acks are not.
        """
        for inbox in self.inboxes.values():
            inbox.early.clear()
            inbox.early_bytes = 0
            inbox.owed = 0
        self._owed.clear()
        if self._ack_call is not None and self._ack_call.active():
            self._ack_call.cancel()
        self._ack_call = None
