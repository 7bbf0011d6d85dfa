# -*- test-case-name: lightspeed.test.test_forgery -*-
"""
Forwarding: ROUTED messages in and out.  A message travels once per next
hop with the destinations behind it; a relay re-wraps the payload bytes
under a new header without decoding them.  Arrivals are checked against
the link they came on (the origin must be behind it), the hop limit is
kept, and what cannot be passed on is reported.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional

from twisted.logger import Logger

from lightspeed.bounded import BoundedCache
from lightspeed.errors import LightspeedError, ProtocolError
from lightspeed.message import CALL, CALLREPLY, CONTROL, MONITOR_STATE, POST, REQUEST, RESPONSE, \
    UNDELIVERABLE, parse_payload, parse_routed, routed_body
from lightspeed.wire.codec import dumps, loads

__all__ = ["Relay"]


class Relay:
    """
    The forwarding side of one network.

    :ivar misrouted: messages dropped because their origin was not behind
        the link they arrived on.
    :ivar bad_payloads: payloads passed on by a relay that were malformed
        or failed here, and were dropped.
    """

    log = Logger()

    def __init__(self, network: Any) -> None:
        self._network = network
        self._name = network.name
        self._only_me = [network.name]
        self._router = network.router
        self._links = network.link_table
        self._split = BoundedCache(1024)
        self.misrouted = 0
        self.bad_payloads = 0

    def routes_changed(self) -> None:
        """
        Forget the per-next-hop splits: routes or links changed.
        """
        self._split.clear()

    # -- out -------------------------------------------------------------------

    def forward(self, origin: str, dests: Iterable[str], hops: int, payload: bytes,
                bounce: bool = True) -> List[str]:
        """
        Send ``payload`` towards ``dests``, one message per next hop.

        :returns: the destinations that have no route.
        """
        key = tuple(dests)
        split = self._split.get(key)
        if split is None:
            groups, unreachable = self._router.split(key)
            split = self._split.remember(
                key, ([(self._links.to(hop), tuple(sub)) for hop, sub in groups.items()], unreachable))
        routes, unreachable = split
        for link, sub in routes:
            link.send_body(routed_body(origin, sub, hops, payload))
        if unreachable and origin != self._name:
            self.failed(origin, unreachable, payload, "no route", bounce)
        return unreachable

    def send(self, kernel: str, body: Any) -> None:
        """
        Send a message of ours (a payload, encoded unless bytes) to one kernel.
        """
        payload = body if type(body) is bytes else dumps(body)
        if kernel == self._name:
            self._network.dispatch.deliver(self._name, parse_payload(loads(payload)))
        else:
            self.forward(self._name, (kernel,), self._network.hops, payload, bounce=False)

    # -- in --------------------------------------------------------------------

    def received(self, peer: str, message: list) -> None:
        """
        A ROUTED message from neighbour ``peer``.

        :raises ProtocolError: if it is malformed or forged by ``peer``.
        """
        if len(message) >= 5 and message[2] == self._only_me and type(message[4]) is bytes \
                and type(message[1]) is str and type(message[3]) is int and message[1] != self._name:
            # Hot path: a message for this kernel alone.
            origin = message[1]
            if origin == peer:
                self._network.dispatch.deliver(origin, parse_payload(loads(message[4])))
            elif origin in self._router.behind(peer):
                self._deliver_relayed(origin, peer, message[4])
            else:
                self._misrouted(origin, peer, self._only_me, message[4])
            return
        origin, dests, hops, payload = parse_routed(message)
        if origin == self._name:
            raise ProtocolError(f"message claims to come from this kernel ({origin!r})", "forged-origin")
        if origin != peer and origin not in self._router.behind(peer):
            self._misrouted(origin, peer, dests, payload)
            return
        self.routed(origin, dests, hops, payload, peer)

    def routed(self, origin: str, dests: List[str], hops: int, payload: bytes, peer: Optional[str] = None) -> None:
        """
        Deliver here what is for this kernel, pass the rest on.
        """
        if origin == self._name:
            raise ProtocolError(f"message claims to come from this kernel ({origin!r})", "forged-origin")
        others = [d for d in dict.fromkeys(dests) if d != self._name]
        if others:
            if hops <= 1:
                self.failed(origin, others, payload, "hop limit reached", True)
            else:
                self.forward(origin, others, hops - 1, payload)
        if self._name in dests:
            if peer is None or peer == origin:
                self._network.dispatch.deliver(origin, parse_payload(loads(payload)))
            else:
                self._deliver_relayed(origin, peer, payload)

    def _deliver_relayed(self, origin: str, peer: str, payload: bytes) -> None:
        """
        Deliver a payload that a relay passed on.  If it is malformed, or
        handling it fails, the relay is not to blame: drop it with a log
        line instead of closing the link.
        """
        try:
            self._network.dispatch.deliver(origin, parse_payload(loads(payload)))
        except ProtocolError as e:
            self.bad_payloads += 1
            self.log.warn("malformed payload from kernel {origin} (relayed by {peer}) dropped: {why}",
                          origin=origin, peer=peer, why=str(e))
        except Exception:
            self.bad_payloads += 1
            self.log.failure("payload from kernel {origin} (relayed by {peer}) failed; dropped",
                             origin=origin, peer=peer)

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
        self.failed(origin, list(dict.fromkeys(dests)), payload, why, False)

    # -- failures ----------------------------------------------------------------

    def failed(self, origin: str, dests: List[str], payload: bytes, why: str, bounce: bool) -> None:
        """
        A message cannot be passed on: log it, report it to the event sink
        and, with ``bounce``, tell its sender ("``why`` to kernel K").
        """
        self.log.warn("{why} from {kernel} to {dests} for a message from {origin}",
                      why=why, kernel=self._name, dests=dests, origin=origin)
        events = self._network.events
        if not bounce and not events.undeliverable:
            return
        try:
            body = parse_payload(loads(payload))
        except ProtocolError:
            return
        if body[0] == RESPONSE:
            return
        sessions = body[1] if body[1] == "*" else ",".join(body[1])
        if events.undeliverable and not (body[4] is None and body[5] == MONITOR_STATE):
            for kernel in dests:
                events.emit("undeliverable", destination=f"poe://{kernel}/{sessions}/{body[2]}",
                            reason=f"{why} to kernel {kernel!r}", origin=origin)
        if not bounce:
            return
        if body[0] in (POST, CALL, CALLREPLY):
            for kernel in dests:
                self.bounce(origin, body[4], f"poe://{kernel}/{sessions}/{body[2]}",
                            f"{why} to kernel {kernel!r}", body[3])
        elif body[0] == REQUEST or body[0] == CONTROL:
            self._network.requests.respond(origin, body[8], False, ["NoRoute", f"{why} to kernel {dests[0]!r}"])

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
