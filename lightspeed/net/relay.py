# -*- test-case-name: lightspeed.test.test_forgery -*-
"""
Forwarding: ROUTED messages in and out.  A message travels once per next
hop with the destinations behind it (each with its own sequence number and
ack, see :mod:`lightspeed.net.delivery`); a relay re-wraps the payload
bytes under a new header without decoding them.  Arrivals are checked
against the link they came on (the origin must be behind it) and the hop
limit is kept.  A relay that cannot pass a message on drops it with a log
line and a monitor event: the origin still holds it, and sends it again or
reports it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from twisted.logger import Logger

from lightspeed.bounded import BoundedCache
from lightspeed.errors import LightspeedError, ProtocolError
from lightspeed.message import CALL, CALLREPLY, CONTROL, MONITOR_STATE, POST, REQUEST, RESPONSE, \
    UNDELIVERABLE, Entry, parse_batch, parse_payload, parse_routed, routed_batch, routed_body, routed_from, \
    routed_head
from lightspeed.wire.codec import dumps, loads

__all__ = ["Relay"]

#: The item types of a ROUTED message with one payload that
#: :func:`~lightspeed.message.parse_routed` accepts (ttl null or an int),
#: and of its destination entries: each checked in one step on the hot path.
_ONE_TYPES = frozenset({(int, str, int, list, int, ttl, bytes) for ttl in (int, type(None))})
_ENTRY_TYPES = (str, int, int, int)


class Relay:
    """
    The forwarding side of one network.

    :ivar misrouted: messages dropped because their origin was not behind
        the link they arrived on.
    :ivar bad_payloads: payloads passed on by a relay that were malformed
        or failed here, and were dropped.
    :ivar dropped: messages a relay could not pass on (no route, hop limit).
    """

    log = Logger()

    def __init__(self, network: Any) -> None:
        self._network = network
        self._name = network.name
        self._router = network.router
        self._links = network.link_table
        self._split = BoundedCache(1024)
        self._heads = BoundedCache(1024)
        #: The network's Delivery, set once it exists.
        self.delivery: Any = None
        #: Counts changes of routes: what was looked up before may be stale.
        self.epoch = 0
        self.misrouted = 0
        #: Messages of other kernels passed on towards theirs (acks alone
        #: and tombstones, with no payload, not counted).
        self.relayed = 0
        self.bad_payloads = 0
        self.dropped = 0

    def routes_changed(self) -> None:
        """
        Forget the per-next-hop splits: routes or links changed.
        """
        self._split.clear()
        self.epoch += 1

    # -- out -------------------------------------------------------------------

    def forward(self, origin: str, incarnation: int, entries: Sequence[Entry], hops: int, ttl: Optional[int],
                payload: bytes) -> List[str]:
        """
        Send ``payload`` towards the kernels of ``entries``, one message per
        next hop carrying the entries behind it.

        :returns: the destinations that have no route.
        """
        key = tuple(entry[0] for entry in entries)
        split = self._split.get(key) or self._compute(key)
        routes, unreachable = split
        if len(routes) == 1 and len(routes[0][1]) == len(entries):
            routes[0][0].send_body(routed_body(origin, incarnation, entries, hops, ttl, payload))
        else:
            for link, positions in routes:
                link.send_body(routed_body(origin, incarnation, [entries[i] for i in positions], hops, ttl, payload))
        if unreachable and origin != self._name:
            self.failed(origin, unreachable, payload, "no route")
        return unreachable

    def _compute(self, key: Tuple[str, ...]) -> Any:
        groups, unreachable = self._router.split(key)
        index = {dest: i for i, dest in enumerate(key)}
        return self._split.remember(
            key, ([(self._links.to(hop), [index[d] for d in sub]) for hop, sub in groups.items()], unreachable))

    def link_to(self, kernel: str) -> Any:
        """
        The link that carries what goes to ``kernel`` now, or ``None``.
        """
        key = (kernel,)
        routes = (self._split.get(key) or self._compute(key))[0]
        return routes[0][0] if routes else None

    def send(self, kernel: str, body: Any, deadline: Optional[float] = None) -> Sequence[Tuple[str, str]]:
        """
        Send a message of ours (a payload, encoded unless bytes) to one kernel.

        :returns: as :meth:`~lightspeed.net.delivery.Delivery.send`.
        """
        payload = body if type(body) is bytes else dumps(body)
        if kernel == self._name:
            self._network.dispatch.deliver(self._name, parse_payload(loads(payload)))
            return []
        return self._network.delivery.send((kernel,), payload, deadline)

    # -- in --------------------------------------------------------------------

    def received(self, peer: str, message: list) -> None:
        """
        A ROUTED message from neighbour ``peer``.

        :raises ProtocolError: if it is malformed or forged by ``peer``.
        """
        if tuple(map(type, message)) in _ONE_TYPES and len(message[3]) == 1:
            entry = message[3][0]
            origin = message[1]
            if type(entry) is list and tuple(map(type, entry)) == _ENTRY_TYPES and entry[2] >= 0 and entry[3] >= 0 \
                    and origin != self._name:
                # Hot path: one destination.
                if origin != peer and origin not in self._router.behind(peer):
                    self._misrouted(origin, peer, [entry[0]], message[6])
                elif entry[0] == self._name:
                    self.delivery.arrived(origin, message[2], entry, message[5], message[6], peer)
                elif not self._pass_on(origin, message, entry):
                    self.routed(origin, message[2], [tuple(entry)], message[4], message[5], message[6], peer)
                return
        if len(message) == 8:
            self._batch(peer, message)
            return
        origin, incarnation, entries, hops, ttl, payload = parse_routed(message)
        if origin == self._name:
            raise ProtocolError(f"message claims to come from this kernel ({origin!r})", "forged-origin")
        if origin != peer and origin not in self._router.behind(peer):
            self._misrouted(origin, peer, [entry[0] for entry in entries], payload)
            return
        self.routed(origin, incarnation, entries, hops, ttl, payload, peer)

    def _batch(self, peer: str, message: list) -> None:
        """
        A ROUTED message with several payloads, for consecutive sequence
        numbers of one stream: delivered here, or passed on as one message
        (as several to a neighbour that takes no batches).
        """
        payloads = parse_batch(message)
        origin, incarnation, entries, hops, _, _ = parse_routed(message)
        entry = entries[0]
        if origin == self._name:
            raise ProtocolError(f"message claims to come from this kernel ({origin!r})", "forged-origin")
        if origin != peer and origin not in self._router.behind(peer):
            self._misrouted(origin, peer, [entry[0]], payloads[0])
            return
        if entry[0] == self._name:
            self.delivery.receiving.arrived_batch(origin, incarnation, entry, payloads, peer)
            return
        link = self.link_to(entry[0]) if hops > 1 else None
        key = (origin, incarnation, entry[0], entry[1])
        if link is not None and link.peer.batch:
            head = self._heads.get(key) or self._heads.remember(key, routed_head(*key))
            link.send_body(routed_batch(head, entry[2], entry[3], hops - 1, payloads))
            self.relayed += len(payloads)
            return
        for i, payload in enumerate(payloads):
            self.routed(origin, incarnation, [(entry[0], entry[1], entry[2] + i, entry[3])], hops, None, payload, peer)

    def _pass_on(self, origin: str, message: list, entry: list) -> bool:
        """
        The relay's hot path: pass a message for one other kernel on, under
        a cached header.

        :returns: whether it went (false: take the long way).
        """
        hops = message[4]
        link = self.link_to(entry[0]) if type(hops) is int and hops > 1 else None
        if link is None:
            return False
        key = (origin, message[2], entry[0], entry[1])
        head = self._heads.get(key) or self._heads.remember(key, routed_head(*key))
        link.send_body(routed_from(head, entry[2], entry[3], hops - 1, message[5], message[6]))
        if message[6]:
            self.relayed += 1  # not an ack alone
        return True

    def routed(self, origin: str, incarnation: int, entries: List[Entry], hops: int, ttl: Optional[int],
               payload: bytes, peer: str) -> None:
        """
        Take what is for this kernel, pass the rest on.
        """
        mine: Optional[Entry] = None
        others: Dict[str, Entry] = {}
        for entry in entries:
            if entry[0] == self._name:
                mine = entry
            else:
                others[entry[0]] = entry
        if others:
            if hops <= 1:
                self.failed(origin, list(others), payload, "hop limit reached")
            else:
                self.relayed += 1 if payload else 0
                self.forward(origin, incarnation, list(others.values()), hops - 1, ttl, payload)
        if mine is not None:
            self._network.delivery.arrived(origin, incarnation, mine, ttl, payload, peer)

    def deliver_payload(self, origin: str, peer: str, payload: bytes) -> Optional[Tuple[list, Any]]:
        """
        Hand a payload that arrived in order to the dispatcher.  A payload
        from the neighbour itself that is malformed closes the link; one
        that a relay passed on is dropped with a log line instead (the
        relay is not to blame).

        :returns: the payload decoded and what
            :meth:`~lightspeed.net.dispatch.Dispatcher.deliver` returned,
            or ``None`` if it was dropped.
        """
        try:
            body = parse_payload(loads(payload))
            return body, self._network.dispatch.deliver(origin, body)
        except Exception as e:
            if peer == origin:
                raise
            self._bad_payload(origin, peer, e)
            return None

    def deliver_batch(self, origin: str, peer: str, decoded: List[Any], stream: Any) -> None:
        """
        Hand the decoded payloads of a batch that ``peer`` passed on from
        ``origin`` to the dispatcher in one go (as
        :meth:`~lightspeed.net.dispatch.Dispatcher.deliver_all`); one that
        is malformed or fails is dropped alone, as :meth:`deliver_payload`
        drops it, and those after it are still delivered.
        """
        deliver_all = self._network.dispatch.deliver_all
        start = stream.delivered  # counts each payload before it is handled
        while True:
            done = stream.delivered - start
            try:
                deliver_all(origin, decoded[done:] if done else decoded, stream)
                return
            except Exception as e:
                self._bad_payload(origin, peer, e)
                if stream.delivered - start == done:
                    return  # failed before any payload (cannot happen): never loop

    def _bad_payload(self, origin: str, peer: str, error: Exception) -> None:
        """
        A payload passed on by relay ``peer`` was malformed or failed here
        (called while ``error`` is handled): count it and log it.
        """
        self.bad_payloads += 1
        if isinstance(error, ProtocolError):
            self.log.warn("malformed payload from kernel {origin} (relayed by {peer}) dropped: {why}",
                          origin=origin, peer=peer, why=str(error))
        else:
            self.log.failure("payload from kernel {origin} (relayed by {peer}) failed; dropped",
                             origin=origin, peer=peer)

    def expired(self, origin: str, payload: bytes) -> None:
        """
        A message whose deadline passed before it could be delivered here:
        tell its sender ("deadline passed").
        """
        try:
            body = parse_payload(loads(payload))
        except ProtocolError:
            return
        reason = "deadline passed"
        if body[0] == REQUEST or body[0] == CONTROL:
            self._network.requests.respond(origin, body[8], False, ["RequestTimeout", f"{reason} at {self._name!r}"])
        elif body[0] in (POST, CALL, CALLREPLY):
            self._network.dispatch.undeliverable(origin, body[1], body[2], reason, (origin, body[4], body[3]))

    def _misrouted(self, origin: str, peer: str, dests: List[str], payload: bytes) -> None:
        """
        A message claims an origin that is not behind the link it arrived
        on: its origin is forged (or it was sent just before a change of
        the network that has already reached us).  Drop it with a log line
        and count it.  Nobody is told: the claimed origin did not send it,
        and a notice would let a forger aim traffic at it.
        """
        self.misrouted += 1
        why = f"origin {origin!r} is not behind the link from {peer!r}: message dropped"
        self.failed(origin, list(dict.fromkeys(dests)), payload, why)

    # -- failures ----------------------------------------------------------------

    def failed(self, origin: str, dests: List[str], payload: bytes, why: str) -> None:
        """
        A message cannot be passed on: log it and report it to the event
        sink.  Its origin still holds it (see :mod:`lightspeed.net.delivery`).
        """
        self.dropped += 1
        self.log.warn("{why} from {kernel} to {dests} for a message from {origin}; dropped",
                      why=why, kernel=self._name, dests=dests, origin=origin)
        events = self._network.events
        events.tally(why)
        if not events.undeliverable or not payload:
            return
        try:
            body = parse_payload(loads(payload))
        except ProtocolError:
            return
        if body[0] == RESPONSE or (body[4] is None and body[5] == MONITOR_STATE):
            return
        sessions = body[1] if body[1] == "*" else ",".join(body[1])
        for kernel in dests:
            events.emit("undeliverable", destination=f"poe://{kernel}/{sessions}/{body[2]}",
                        reason=f"{why} to kernel {kernel!r}", origin=origin)

    def bounce(self, origin: str, s_session: Optional[str], destination: str, reason: str, args: Any) -> None:
        """
        Send an ``_undeliverable`` event to session ``s_session`` of kernel
        ``origin``: ``args == (destination, reason, original_args)``.
        """
        if s_session is None:
            return
        body = [UNDELIVERABLE, [s_session], "_undeliverable", [destination, reason, list(args)],
                None, None, None, None]
        try:
            payload = dumps(body)
        except LightspeedError:
            body[3] = [destination, reason, []]
            payload = dumps(body)
        self.send(origin, payload)
