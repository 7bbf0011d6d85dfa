# -*- test-case-name: lightspeed.test.test_delivery -*-
"""
End-to-end delivery between kernels: in order, exactly once, across
reroutes and relay crashes, or reported to the sender with a reason.

Every message a kernel sends to another kernel carries, for each
destination, a sequence number of the stream from this start (incarnation)
of the origin to that start of the destination, and the cumulative ack of
the stream the other way.  The destination delivers each stream in order
and once, holding early arrivals in a bounded buffer; it acks every
:data:`ACK_EVERY` messages or :data:`ACK_DELAY` seconds after the first it
owes, unless a message going back carries the ack first.  The origin keeps
what is not acknowledged and sends it again when the route to its
destination changes or its retransmit timer (one per destination) runs
out.  When a destination restarts, or stays unreachable for
:data:`LEAVE_GRACE` seconds, what it did not acknowledge comes back to
each sender as undeliverable.

At most :data:`WINDOW` messages (:data:`WINDOW_BYTES` of payload) per
destination travel unacknowledged; more wait in a backlog of at most
:data:`MAX_BACKLOG` (:data:`MAX_BACKLOG_BYTES`), past which a message is
refused ("backlog full").  Posters follow the window with
:meth:`Delivery.ready` and producers.
"""

from __future__ import annotations

from itertools import islice, repeat
from typing import Any, Dict, List, Optional, Sequence, Tuple

from twisted.logger import Logger

from lightspeed.bounded import BoundedCache
from lightspeed.message import MAX_BATCH, routed_batch, routed_from, routed_head
from lightspeed.net.receiving import ACK_DELAY, ACK_EVERY, MAX_EARLY, MAX_EARLY_BYTES, Receiving
from lightspeed.net.streams import FlowControl, Outbox

__all__ = ["Delivery", "WINDOW", "WINDOW_BYTES", "MAX_BACKLOG", "MAX_BACKLOG_BYTES", "MAX_EARLY", "MAX_EARLY_BYTES",
           "ACK_EVERY", "ACK_DELAY", "RTO_INITIAL", "RTO_MAX", "LEAVE_GRACE", "GIVE_UP"]

#: Messages per destination that may travel unacknowledged.
WINDOW = 8192
#: ...and bytes of payload.
WINDOW_BYTES = 8 * 1024 * 1024
#: Messages per destination that may wait for the window, and their bytes;
#: past either, "backlog full".
MAX_BACKLOG = 65536
MAX_BACKLOG_BYTES = 64 * 1024 * 1024
#: Seconds before unacknowledged messages are sent again; doubled, up to
#: :data:`RTO_MAX`, while no ack comes.
RTO_INITIAL = 1.0
RTO_MAX = 30.0
#: Seconds a destination may stay unreachable before what it did not
#: acknowledge is reported as undeliverable ("left the network").
LEAVE_GRACE = 60.0
#: Payload bytes one batch (one ROUTED message with several payloads) may hold.
MAX_BATCH_BYTES = 256 * 1024
#: Seconds a reachable destination may leave messages unacknowledged, while
#: they are sent again and again, before they are reported as undeliverable
#: ("no acknowledgement"): a routing loop, a path past the hop limit or a
#: relay that drops what it should pass on.
GIVE_UP = 300.0
#: What :meth:`Delivery.send` returns when nothing failed.
_SENT: Sequence[Tuple[str, str]] = ()

class Delivery(FlowControl):
    """
    The streams of one network, in and out.
    """

    log = Logger()

    def __init__(self, network: Any) -> None:
        self._network = network
        self._name = network.name
        self._reactor = network.reactor
        self._router = network.router
        self._incarnation: int = network.incarnation
        self._dispatch = network.dispatch
        self._relay = network.relay
        self.outboxes: Dict[str, Outbox] = {}
        #: The last sequence number of streams given up while their
        #: destination's start may still be alive, by ``(kernel, incarnation)``.
        self._abandoned = BoundedCache(4096)
        #: Producers of destinations whose stream ended, kept for the next one.
        self._producers: Dict[str, List[Any]] = {}
        #: The limits (see the module constants), per network.
        self.window = WINDOW
        self.window_bytes = WINDOW_BYTES
        self.max_backlog = MAX_BACKLOG
        self.max_backlog_bytes = MAX_BACKLOG_BYTES
        self.leave_grace = LEAVE_GRACE
        self.give_up = GIVE_UP
        #: Messages sent again, and duplicates received and dropped.
        self.retransmitted = 0
        #: Messages sent on the streams given up (see :meth:`sent`).
        self._sent_before = 0
        #: The receiving side: the streams from other kernels.
        self.receiving = Receiving(network, self)
        self.inboxes = self.receiving.inboxes
        self.arrived = self.receiving.arrived
        self._ack_for = self.receiving.ack_for
        #: Whether messages sent in one reactor turn to one destination go
        #: in one ROUTED message to neighbours that take it; and the streams
        #: holding a batch for the end of this turn.
        self.batching = True
        self._batching: List[Outbox] = []
        network.link_table.before_flush = self.flush_batches

    @property
    def incarnation(self) -> int:
        return self._incarnation

    def sent(self) -> int:
        """
        :returns: how many messages of ours went to other kernels (once per
            destination, retransmissions and tombstones not counted), read
            from the streams' sequence numbers: counting costs nothing.
        """
        return self._sent_before + sum(box.next_seq - box.first for box in self.outboxes.values())

    # -- out -------------------------------------------------------------------

    def send(self, kernels: Any, payload: bytes, deadline: Optional[float] = None) -> Sequence[Tuple[str, str]]:
        """
        Send a message of ours to other ``kernels``, one sequence number each.

        :returns: ``(kernel, reason)`` for each kernel it cannot go to now:
            ``"no route"`` or ``"backlog full"``.
        """
        if len(kernels) == 1:
            box = self.outboxes.get(kernels[0])
            if box is not None:
                batch = box.batch
                if batch and deadline is None and box.next_seq < box.batch_end and box.unacked and not box.backlog \
                        and box.unacked_bytes < self.window_bytes and box.batch_bytes < MAX_BATCH_BYTES \
                        and box.epoch == self._relay.epoch and box.batch_link is box.link:
                    # The hottest path: the stream holds a batch this turn,
                    # on the link its route still uses, with room in the
                    # window and the batch: this message joins it (what
                    # _send_one and _transmit would do, without their calls).
                    box.next_seq += 1
                    box.unacked.append(payload)  # see Outbox.keep
                    size = len(payload)
                    box.unacked_bytes += size
                    batch.append(payload)
                    box.batch_bytes += size
                    return _SENT
            elif self._router.next_hop(kernels[0]) is not None:
                box = self._open(kernels[0])
            if box is not None and not box.backlog and self._room(box) and self._send_one(box, payload, deadline):
                return _SENT
        return self._send_many(kernels, payload, deadline)

    def _send_many(self, kernels: Any, payload: bytes, deadline: Optional[float]) -> List[Tuple[str, str]]:
        """
        :meth:`send` to several kernels, or to one that is not on its fast
        paths (no route, backlog, a full window, no link).
        """
        failed: List[Tuple[str, str]] = []
        entries = []
        router = self._router
        for kernel in kernels:
            hop = router.next_hop(kernel)
            if hop is None:
                failed.append((kernel, "no route"))
                continue
            box = self.outboxes.get(kernel) or self._open(kernel)
            if box.backlog or not self._room(box):
                if len(box.backlog) >= self.max_backlog or box.backlog_bytes + len(payload) > self.max_backlog_bytes:
                    failed.append((kernel, "backlog full"))
                else:
                    box.backlog.append((payload, deadline))
                    box.backlog_bytes += len(payload)
                    box.pause()
                continue
            seq = box.next_seq
            box.next_seq = seq + 1
            self._arm(box)
            box.keep(seq, payload, deadline)
            box.hop = hop
            entries.append((kernel, box.incarnation, seq, self._ack_for(kernel, box.incarnation)))
        if entries:
            self._network.relay.forward(self._name, self.incarnation, entries, self._network.hops,
                                        self._ttl(deadline), payload)
        return failed

    def _send_one(self, box: Outbox, payload: bytes, deadline: Optional[float]) -> bool:
        """
        The hot path of :meth:`send`: one destination with room in its window.

        :returns: whether it was sent (false: no route, take the long way).
        """
        link = box.link if box.epoch == self._relay.epoch else self._link(box)
        if link is None:
            return False
        seq = box.next_seq
        box.next_seq = seq + 1
        if not box.unacked:
            self._arm(box)
        box.keep(seq, payload, deadline)
        self._transmit(box, link, seq, payload, deadline)
        return True

    def _arm(self, box: Outbox) -> None:
        """
        A message goes into ``box``'s empty window: its retransmit clock
        starts now.  The timer itself is lazy (see :meth:`_retransmit`): it
        is made when there is none, never cancelled for an ack.
        """
        if not box.unacked:
            box.since = box.progress = self._reactor.seconds()
        if box.timer is None:
            box.timer = self._reactor.callLater(box.rto, self._retransmit, box)

    def _link(self, box: Outbox) -> Any:
        """
        The link towards ``box``'s destination (cached until the relay's
        routes change), or :obj:`None` without a route.
        """
        relay = self._relay
        if box.epoch != relay.epoch:
            box.link, box.epoch = relay.link_to(box.kernel), relay.epoch
            if box.link is not None:
                box.hop = box.link.peer.name
        return box.link

    def _transmit(self, box: Outbox, link: Any, seq: int, payload: bytes, deadline: Optional[float]) -> None:
        """
        Write message ``seq`` of ``box`` to ``link`` from the stream's cached
        header, with the ack we owe its destination; or, to a peer that
        takes batches, hold it for one ROUTED message with the others of
        this reactor turn (see :meth:`flush_batches`).
        """
        batch = box.batch
        if batch:
            if deadline is None and box.batch_link is link and len(batch) < MAX_BATCH \
                    and box.batch_bytes < MAX_BATCH_BYTES:
                batch.append(payload)
                box.batch_bytes += len(payload)
                return
            self._send_batch(box)
        if deadline is None and link.peer.batch and self.batching and link.conn is not None and link.conn.pending_output:
            # Something goes to this link this turn already: hold this one
            # for those that may follow it.  (The first goes at once, so a
            # lone message, such as an answer, costs no more than before.)
            box.batch, box.batch_seq, box.batch_bytes, box.batch_link = [payload], seq, len(payload), link
            # The sequence numbers that may join it in send(): below both the
            # batch's limit and the window's (acks only make room, and every
            # message numbered meanwhile counts).
            box.batch_end = min(seq + MAX_BATCH, box.next_seq - len(box.unacked) + self.window)
            self._batching.append(box)
            self._network.mark_dirty(link)  # flush_batches runs before the link writes
            return
        ack = self._ack_for(box.kernel, box.incarnation) if box.kernel in self.inboxes else 0
        link.send_body(routed_from(box.head, seq, ack, self._network.hops,
                                   None if deadline is None else self._ttl(deadline), payload))

    def flush_batches(self) -> None:
        """
        Send every batch held this turn (the links write right after).
        """
        if not self._batching:
            return
        batching, self._batching = self._batching, []
        for box in batching:
            if box.batch:
                self._send_batch(box)

    def _send_batch(self, box: Outbox) -> None:
        batch, box.batch, box.batch_bytes = box.batch, [], 0
        if self.outboxes.get(box.kernel) is not box:
            return  # the stream was given up meanwhile
        ack = self._ack_for(box.kernel, box.incarnation) if box.kernel in self.inboxes else 0
        hops = self._network.hops
        if len(batch) == 1:
            box.batch_link.send_body(routed_from(box.head, box.batch_seq, ack, hops, None, batch[0]))
        else:
            box.batch_link.send_body(routed_batch(box.head, box.batch_seq, ack, hops, batch))

    def _open(self, kernel: str) -> Outbox:
        incarnation = self._network.membership.incarnation_of(kernel)
        if incarnation is None:
            incarnation = self._router.incarnation_of(kernel) or 0
        box = self.outboxes[kernel] = Outbox(kernel, incarnation, RTO_INITIAL)
        box.head = routed_head(self._name, self._incarnation, kernel, incarnation)
        box.producers = self._producers.pop(kernel, [])
        last = self._abandoned.pop((kernel, incarnation), None)
        if last is not None:
            # We gave this start of the kernel up before: a tombstone first,
            # so that it skips what we reported lost instead of waiting.
            box.next_seq = box.first = last + 1
            self._arm(box)
            box.keep(last, b"", None)
            self._network.relay.forward(self._name, self._incarnation, [(kernel, incarnation, last, 0)],
                                        self._network.hops, None, b"")
        return box

    def _ttl(self, deadline: Optional[float]) -> Optional[int]:
        if deadline is None:
            return None
        return max(int((deadline - self._reactor.seconds()) * 1000), 0)

    def _resend(self, box: Outbox) -> None:
        """
        Send every unacknowledged message of ``box`` again, in order.
        """
        forward = self._network.relay.forward
        box.batch, box.batch_bytes = [], 0  # all of it goes again below
        deadlines = box.deadlines
        for seq, payload in enumerate(list(box.unacked), box.next_seq - len(box.unacked)):
            deadline = deadlines.get(seq) if deadlines else None
            entry = (box.kernel, box.incarnation, seq, self._ack_for(box.kernel, box.incarnation))
            forward(self._name, self.incarnation, [entry], self._network.hops, self._ttl(deadline), payload)
            self.retransmitted += 1

    def _retransmit(self, box: Outbox) -> None:
        box.timer = None
        if not box.unacked or self.outboxes.get(box.kernel) is not box:
            return
        wait = box.since + box.rto - self._reactor.seconds()
        if wait > 0:  # acks came since the timer was set: not due yet
            box.timer = self._reactor.callLater(wait, self._retransmit, box)
            return
        box.since = now = self._reactor.seconds()
        if now - box.progress >= self.give_up:
            self._close(box.kernel, f"no acknowledgement from kernel {box.kernel!r} for {self.give_up:g} s",
                        "may not have been delivered")
            return
        hop = self._router.next_hop(box.kernel)
        if hop is not None:
            box.hop = hop
            self._resend(box)
            box.rto = min(box.rto * 2, RTO_MAX)
        box.timer = self._reactor.callLater(box.rto, self._retransmit, box)

    def routes_settled(self) -> None:
        """
        Routes changed: send again what travels towards a new next hop (or
        towards a kernel that is reachable again).
        """
        router = self._router
        for box in list(self.outboxes.values()):
            if not box.unacked:
                continue
            hop = router.next_hop(box.kernel)
            if hop is not None and hop != box.hop:
                box.hop = hop
                self._resend(box)

    def _acked(self, kernel: str, incarnation: int, ack: int) -> None:
        box = self.outboxes.get(kernel)
        if box is None or box.incarnation != incarnation:
            return
        unacked = box.unacked
        held = len(unacked)
        first = box.next_seq - held  # the sequence number of unacked[0]
        if not held or first > ack:
            return
        count = ack - first + 1
        if count >= held:  # all of them: the usual case
            box.unacked_bytes = 0
            unacked.clear()
            box.deadlines.clear()  # (every message numbered is acked)
        else:
            # Summed and dropped by C loops, without a Python step per message.
            box.unacked_bytes -= sum(map(len, islice(unacked, count)))
            popleft = unacked.popleft
            for _ in repeat(None, count):
                popleft()
            if box.deadlines:
                for seq in [seq for seq in box.deadlines if seq <= ack]:
                    del box.deadlines[seq]
        box.rto = RTO_INITIAL
        if unacked:
            box.since = box.progress = self._reactor.seconds()  # else _arm sets them for the next message
        if box.backlog:
            self._drain_backlog(box)
        if (box.waiters or box.paused) and not box.backlog and self._room(box):
            box.resume()

    def _drain_backlog(self, box: Outbox) -> None:
        now = self._reactor.seconds()
        link = self._link(box)
        backlog, unacked, window, window_bytes = box.backlog, box.unacked, self.window, self.window_bytes
        while backlog and len(unacked) < window and box.unacked_bytes < window_bytes:  # room: see _room
            payload, deadline = backlog.popleft()
            size = len(payload)
            box.backlog_bytes -= size
            if deadline is not None and deadline <= now:
                self._network.lost(box.kernel, [payload], "deadline passed")
                continue
            seq = box.next_seq
            box.next_seq = seq + 1
            if not unacked:
                self._arm(box)
            box.keep(seq, payload, deadline)
            if link is not None:
                self._transmit(box, link, seq, payload, deadline)
            # Without a route it stays unacknowledged, sent when one appears.

    # -- kernels leaving and restarting ------------------------------------------

    def membership_changed(self, gone: List[Tuple[str, Optional[int]]], joined: List[Tuple[str, int]]) -> None:
        """
        Kernels left or restarted (``gone``) and joined (``joined``).
        """
        now = self._reactor.seconds()
        back = dict(joined)
        for kernel, _ in gone:
            self.receiving.forget_early(kernel)
            box = self.outboxes.get(kernel)
            if box is None:
                continue
            if kernel in back and back[kernel] != box.incarnation:
                self._close(kernel, f"kernel {kernel!r} restarted")
            elif box.gone_at is None:
                box.link, box.epoch = None, -1  # do not hold its closed link through the grace
                box.gone_at = now
                box.leave_call = self._reactor.callLater(self.leave_grace, self._leave_check, kernel, box)
        for kernel, incarnation in joined:
            box = self.outboxes.get(kernel)
            if box is None:
                continue
            if box.incarnation != incarnation:
                self._close(kernel, f"kernel {kernel!r} restarted")
            elif box.gone_at is not None:
                box.gone_at = None
                if box.leave_call is not None and box.leave_call.active():
                    box.leave_call.cancel()
                box.leave_call = None
                box.hop = None  # send again on the new route
        self.routes_settled()

    def _leave_check(self, kernel: str, box: Outbox) -> None:
        box.leave_call = None
        if self.outboxes.get(kernel) is box and box.gone_at is not None:
            self._close(kernel, f"kernel {kernel!r} left the network")

    def _close(self, kernel: str, why: str, outcome: str = "were not delivered") -> None:
        """
        Give up the stream to ``kernel``: report what it did not acknowledge.
        """
        box = self.outboxes.pop(kernel)
        for call in (box.timer, box.leave_call):
            if call is not None and call.active():
                call.cancel()
        self._sent_before += box.next_seq - box.first
        if box.next_seq > 1:
            self._abandoned.remember((kernel, box.incarnation), box.next_seq - 1)
        if box.producers:
            self._producers[kernel] = box.producers
        lost = [payload for payload in box.unacked if payload] + [payload for payload, _ in box.backlog]
        if lost:
            self._network.lost(kernel, lost, f"{why}; {len(lost)} message(s) to it {outcome}")
        box.resume()

    def stop(self) -> None:
        """
        The kernel leaves the network: what is not acknowledged is
        reported, and every timer stops.
        """
        for kernel in list(self.outboxes):
            self._close(kernel, f"kernel {self._name!r} left the network")
        self.receiving.stop()
