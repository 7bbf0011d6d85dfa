# -*- test-case-name: lightspeed.test.test_network -*-
"""
A kernel's place in the network: its links, its router, and the remote
half of post, call and request.

The kernel hands messages for other kernels to L{Network.send} and
L{Network.request}; links hand what they receive to L{Network}.  Routed
messages are split per next hop, so each crosses a link once carrying only
the destinations behind it; relays re-wrap the payload bytes without
decoding them.
"""

from __future__ import annotations

import os
import secrets
import time
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from lightspeed.errors import (
    BadSpecifier,
    EncodeError,
    LightspeedError,
    NoRoute,
    NoSuchSession,
    ProtocolError,
    RemoteError,
    RequestTimeout,
)
from lightspeed.message import (
    CALL,
    CALLREPLY,
    CONTROL,
    DEFAULT_HOPS,
    LSA,
    POST,
    REQUEST,
    RESPONSE,
    ROUTED,
    UNDELIVERABLE,
    parse_lsa,
    parse_payload,
    parse_routed,
    routed_body,
)
from lightspeed.auth import AuthRequest
from lightspeed.monitor import MONITOR_STATE
from lightspeed.router import LinkState, Router
from lightspeed.session import RESERVED_STATES, RemoteSender, Session
from lightspeed.specifier import Specifier, check_state, parse
from lightspeed.wire.framing import DEFAULT_MAX_FRAME
from lightspeed.wire.codec import check_plain, dumps, dumps_trusted, loads

if TYPE_CHECKING:  # pragma: no cover
    from lightspeed.adverts import AdvertSigner
    from lightspeed.kernel import Kernel
    from lightspeed.wire.protocol import LinkProtocol

__all__ = ["Network", "new_incarnation"]


def new_incarnation() -> int:
    """
    A per-start id that orders restarts: microseconds since the epoch, then
    16 random bits.
    """
    return (int(time.time() * 1_000_000) << 16) | int.from_bytes(os.urandom(2), "big")


_WILD = ("*",)

#: Seconds between fresh copies of a kernel's own LSA, and the age past which
#: another kernel's LSA that was not refreshed is dropped.
LSA_REFRESH = 600.0
LSA_MAX_AGE = 1800.0

#: Seconds past now that an incarnation (microseconds since the epoch in its
#: high bits, see L{new_incarnation}) may claim before it counts as a lie.
INCARNATION_SLACK = 24 * 3600

#: Reasons to refuse another kernel's LSA that do not make the relay a liar.
_EXCUSABLE = frozenset({"it is not signed", "its certificate is expired or not yet valid"})


def _latest_incarnation() -> int:
    return int((time.time() + INCARNATION_SLACK) * 1_000_000) << 16


_KIND_NAMES = {POST: "post", CALL: "call", CALLREPLY: "callreply", REQUEST: "request",
               UNDELIVERABLE: "undeliverable", CONTROL: "control"}

#: Seconds for which an edge that an LSA withdrew still counts when checking
#: that a message's origin is behind the link it arrived on.
FADING_GRACE = 30.0


def _wire_name(sender: Any) -> Optional[str]:
    """
    The name a sender goes by on the wire: its first alias, else its id;
    L{None} for the kernel itself.
    """
    names = getattr(sender, "_alias_names", None)
    if names is None:
        return None
    return names[0] if names else str(sender.id)


class Network:
    """
    The network side of one L{Kernel}.

    :ivar router: the link-state L{Router}.
    :ivar hops: how many relays a message from here may cross.
    """

    log = Logger()

    def __init__(self, kernel: "Kernel", incarnation: Optional[int] = None) -> None:
        self.kernel = kernel
        self.name = kernel.name
        self.incarnation = incarnation if incarnation is not None else new_incarnation()
        self.router = Router(self.name, self.incarnation, kernel.reactor.seconds)
        self.hops = DEFAULT_HOPS
        #: The largest encoded payload a post may have: it must fit in a
        #: frame of the default maximum size with its routing header.
        self.max_payload = DEFAULT_MAX_FRAME - 64 * 1024
        self._links: Dict[str, List["LinkProtocol"]] = {}
        self._all_links: List["LinkProtocol"] = []
        self._requests: Dict[int, Tuple[Deferred, str, Any]] = {}
        self._split_cache: Dict[Tuple[str, ...], Tuple[Dict[str, List[str]], List[str]]] = {}
        self._dirty: List["LinkProtocol"] = []
        self._flush_call: Any = None
        self._senders: Dict[tuple, RemoteSender] = {}
        self._only_me = [self.name]
        self._refused_requests: Dict[int, str] = {}
        self._states: set = set()
        #: How many messages were dropped because their origin was not
        #: behind the link they arrived on.
        self.misrouted = 0
        #: How many payloads from kernels other than the neighbour that
        #: passed them on were malformed or failed, and were dropped.
        self.bad_payloads = 0
        #: How many LSAs were refused (see L{_bad_advert}).
        self.bad_adverts = 0
        self._fading_call: Any = None
        self._refresh_call: Any = None
        self._check_call: Any = None
        #: Reachable kernels and the incarnation we last saw of each.
        self._known: Dict[str, Optional[int]] = {}
        #: Signs our LSAs and checks everyone else's, when set (see
        #: L{Kernel.sign_adverts}).
        self.signer: Optional["AdvertSigner"] = None

    # -- output coalescing -----------------------------------------------------

    def mark_dirty(self, link: "LinkProtocol") -> None:
        """
        C{link} has output waiting: write it at the end of this batch of
        work (or on the next reactor turn at the latest).
        """
        self._dirty.append(link)
        if self._flush_call is None:
            self._flush_call = self.kernel.reactor.callLater(0, self.flush)

    def flush(self) -> None:
        """
        Write every link's waiting output, one write per link.
        """
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        while self._dirty:
            dirty, self._dirty = self._dirty, []
            for link in dirty:
                link._flush()

    # -- links ---------------------------------------------------------------

    def admit(self, name: str, incarnation: int) -> Optional[str]:
        """
        Whether a new link's peer may join: refuse a name that a live
        kernel with another incarnation already has.
        """
        known = self.router.incarnation_of(name)
        if known is not None and known != incarnation:
            return f"kernel name {name!r} is already used by another live kernel"
        return None

    def link_up(self, link: "LinkProtocol") -> None:
        """
        A link finished its handshake.
        """
        peer = link.peer
        assert peer is not None
        self._all_links.append(link)
        links = self._links.setdefault(peer.name, [])
        links.append(link)
        self.log.info("link up: {kernel} <-> {peer}", kernel=self.name, peer=peer.name)
        if self.kernel.monitor.watching("link_up"):
            self.kernel.monitor.emit("link_up", peer=peer.name, address=str(link.transport.getPeer()))
        # Database sync: the new neighbour learns everything we know (but
        # nothing that has aged out while we had no links).
        if self.router.expire(LSA_MAX_AGE):
            self._routes_changed()
        for lsa in self.router.database():
            link.send_message(self._lsa_message(lsa))
        self._split_cache.clear()
        if self._refresh_call is None:
            self._refresh_call = self.kernel.reactor.callLater(LSA_REFRESH, self._refresh)
        if len(links) == 1:
            self._flood(self.router.link_up(peer.name), None)
            self._routes_changed()

    def link_down(self, link: "LinkProtocol") -> None:
        """
        A link closed (it may never have come up).
        """
        if link not in self._all_links:
            return
        self._all_links.remove(link)
        peer = link.peer
        assert peer is not None
        links = self._links.get(peer.name, [])
        if link in links:
            links.remove(link)
        self.log.info("link down: {kernel} <-> {peer}", kernel=self.name, peer=peer.name)
        if self.kernel.monitor.watching("link_down"):
            why = link.closed_reason
            self.kernel.monitor.emit("link_down", peer=peer.name, code=why.code if why is not None else "lost",
                                     reason=str(why) if why is not None else "connection lost")
        self._split_cache.clear()  # a parallel link may take over
        if not links:
            self._links.pop(peer.name, None)
            lsa = self.router.link_down(peer.name)
            if lsa is not None:
                self._flood(lsa, None)
            self._routes_changed()
        if not self._all_links:
            self._stop_timers()

    def _stop_timers(self) -> None:
        """
        No link is left (or the kernel leaves): nothing to refresh, no
        message in flight that a withdrawn edge must vouch for.
        """
        self.router.forget_fading()
        for call in (self._fading_call, self._refresh_call):
            if call is not None and call.active():
                call.cancel()
        self._fading_call = self._refresh_call = None
        if self._check_call is not None:
            self._check_call.cancel()
            self._check_reachability()

    def _refresh(self) -> None:
        """
        Every L{LSA_REFRESH} seconds while links are up: send a fresh copy
        of our own LSA, and drop other kernels' LSAs older than
        L{LSA_MAX_AGE}.
        """
        self._refresh_call = None
        if not self._all_links:
            return
        self._refresh_call = self.kernel.reactor.callLater(LSA_REFRESH, self._refresh)
        self._flood(self.router.readvertise(), None)
        dropped = self.router.expire(LSA_MAX_AGE)
        if dropped:
            self.log.info("adverts of {kernels} aged out", kernels=dropped)
            self._routes_changed()

    def links(self) -> List["LinkProtocol"]:
        """
        Every link that is up.
        """
        return list(self._all_links)

    def _flood(self, lsa: LinkState, source: Optional[str]) -> None:
        message = self._lsa_message(lsa)
        for neighbour, links in self._links.items():
            if neighbour != source and links:
                links[0].send_message(message)

    def _routes_changed(self) -> None:
        self._split_cache.clear()
        if self.router._fading and (self._fading_call is None or not self._fading_call.active()):
            self._expire_fading()
        if self._check_call is None:
            # Settle first: one burst of adverts (a database sync) can make a
            # kernel unreachable for a moment and reachable again.
            self._check_call = self.kernel.reactor.callLater(0, self._check_reachability)

    def _check_reachability(self) -> None:
        """
        After a change of routes: fail the requests to kernels that are
        now unreachable, and report kernels that joined or left.
        """
        self._check_call = None
        reachable = self.router.reachable()
        gone = self._membership(reachable)
        for request_id, (d, kernel, _) in list(self._requests.items()):
            if kernel not in reachable or kernel in gone:  # gone: also a restart; no answer will come
                self._fail_request(request_id, NoRoute(f"kernel {kernel!r} became unreachable or restarted"))

    def _expire_fading(self) -> None:
        """
        Forget the edges withdrawn more than L{FADING_GRACE} seconds ago,
        and come back when the next one is due.
        """
        now = self.kernel.reactor.seconds()
        oldest = self.router.forget_fading(now - FADING_GRACE)
        self._fading_call = None
        if oldest is not None:
            self._fading_call = self.kernel.reactor.callLater(max(oldest + FADING_GRACE - now, 0.001),
                                                              self._expire_fading)

    def _membership(self, reachable: frozenset) -> List[str]:
        """
        Report kernels that joined, left or restarted (a new incarnation
        counts as leaving and joining), drop the monitor targets of those
        that left, and send our monitor registrations again to those that
        joined.

        :returns: the kernels that left or restarted.
        """
        known = self._known
        links = self._links

        def incarnation_of(kernel: str) -> Optional[int]:
            # A neighbour's HELLO is news before its LSA is: the LSA held may
            # still be that of an earlier start.
            if links.get(kernel):
                return links[kernel][0].peer.incarnation
            return self.router.incarnation_of(kernel)

        gone = [k for k in known if k not in reachable]
        new = [k for k in reachable if k not in known]
        for k in reachable:
            if k in known:
                now = incarnation_of(k)
                if known[k] is None:
                    known[k] = now
                elif now is not None and now != known[k]:
                    gone.append(k)
                    new.append(k)
        if not gone and not new:
            return gone
        monitor = self.kernel.monitor
        for k in gone:
            known.pop(k, None)
            monitor.forget_origin(k)
            monitor.emit("kernel_down", peer=k)
        for k in new:
            known[k] = incarnation_of(k)
            monitor.emit("kernel_up", peer=k)
            for target, topics in monitor.remote.get(k, {}).items():
                d = self.control(k, "monitor_register", [], (list(topics), target), self.kernel, MONITOR_STATE,
                                 (None, None), 60.0)
                d.addErrback(lambda f, k=k: self.log.warn("monitor registration at {peer} failed: {why}",
                                                          peer=k, why=f.getErrorMessage()))
        return gone

    # -- inbound -------------------------------------------------------------

    def message_received(self, link: "LinkProtocol", message: list) -> None:
        """
        A link delivered a message (the handshake is done).

        :raises ProtocolError: if it is malformed; the link closes.
        """
        kind = message[0]
        if kind == ROUTED:
            peer = link.peer.name  # type: ignore[union-attr]
            if len(message) >= 5 and message[2] == self._only_me and type(message[4]) is bytes \
                    and type(message[1]) is str and type(message[3]) is int and message[1] != self.name:
                # Hot path: a message for this kernel alone.
                origin = message[1]
                if origin == peer:
                    self._deliver(origin, parse_payload(loads(message[4])))
                elif origin in self.router.behind(peer):
                    self._deliver_relayed(origin, peer, message[4])
                else:
                    self._misrouted(origin, peer, [self.name], message[4])
            else:
                origin, dests, hops, payload = parse_routed(message)
                if origin != peer and origin != self.name and origin not in self.router.behind(peer):
                    self._misrouted(origin, peer, dests, payload)
                    return
                self._routed(origin, dests, hops, payload, peer)
        elif kind == LSA:
            origin, incarnation, seq, links, proof = parse_lsa(message)
            lsa = LinkState(origin, incarnation, seq, links, proof)
            peer = link.peer.name  # type: ignore[union-attr]
            own = self.router.own()
            if origin == self.name:
                if lsa == own or (incarnation, seq) < (own.incarnation, own.seq):
                    return  # our own advert coming back, or an old one: nothing to do, nothing to check
                if incarnation > own.incarnation:
                    self._bad_advert(origin, peer, "it claims a later start of this kernel", True)
                    return
            elif not self.router.newer(lsa):
                return  # a duplicate, stale or aged-out copy
            if incarnation > _latest_incarnation():
                self._bad_advert(origin, peer, "its incarnation lies in the future", origin != peer)
                return
            if self.signer is not None:
                reason = self.signer.verify(lsa, proof)
                if reason is not None:
                    # A relay holding an advert that has since expired, or an
                    # unsigned one from before signing was on, is not lying.
                    self._bad_advert(origin, peer, reason, origin != peer and reason in _EXCUSABLE)
                    return
            before = own
            if self.router.receive(lsa, link.peer.name):
                self._flood(lsa, link.peer.name)
                self._routes_changed()
            elif self.router.own() is not before:
                self._flood(self.router.own(), None)  # outbid a stale or forged copy of our own advert
        # Other link-level messages (PONG, future types) need no action.

    def _bad_advert(self, origin: str, peer: str, reason: str, excusable: bool) -> None:
        """
        Refuse an LSA: drop it with a log line if the neighbour that sent
        it may be honest (C{excusable}), else close that link.

        :raises ProtocolError: to close the link.
        """
        self.bad_adverts += 1
        text = f"advert of kernel {origin!r} refused: {reason}"
        if not excusable:
            raise ProtocolError(text, "bad-advert")
        self.log.warn("{text} (from {peer}; dropped)", text=text, peer=peer)

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
        self._relay_failed(origin, list(dict.fromkeys(dests)), payload, why, False)

    def _deliver_relayed(self, origin: str, peer: str, payload: bytes) -> None:
        """
        Deliver a payload that a relay passed on.  If it is malformed, or
        handling it fails, the relay is not to blame: drop it with a log
        line instead of closing the link.
        """
        try:
            self._deliver(origin, parse_payload(loads(payload)))
        except ProtocolError as e:
            self.bad_payloads += 1
            self.log.warn("malformed payload from kernel {origin} (relayed by {peer}) dropped: {why}",
                          origin=origin, peer=peer, why=str(e))
        except Exception:
            self.bad_payloads += 1
            self.log.failure("payload from kernel {origin} (relayed by {peer}) failed; dropped",
                             origin=origin, peer=peer)

    def _routed(self, origin: str, dests: List[str], hops: int, payload: bytes, peer: Optional[str] = None) -> None:
        if origin == self.name:
            raise ProtocolError(f"message claims to come from this kernel ({origin!r})", "forged-origin")
        local = False
        others = []
        for d in dict.fromkeys(dests):
            if d == self.name:
                local = True
            else:
                others.append(d)
        if others:
            if hops <= 1:
                self._relay_failed(origin, others, payload, "hop limit reached", True)
            else:
                self._forward(origin, others, hops - 1, payload)
        if local:
            if peer is None or peer == origin:
                self._deliver(origin, parse_payload(loads(payload)))
            else:
                self._deliver_relayed(origin, peer, payload)

    def _forward(self, origin: str, dests: Iterable[str], hops: int, payload: bytes,
                 bounce: bool = True) -> List[str]:
        """
        Send C{payload} towards C{dests}, one message per next hop.

        :returns: the destinations that have no route.
        """
        key = tuple(dests)
        split = self._split_cache.get(key)
        if split is None:
            if len(self._split_cache) > 1024:
                self._split_cache.clear()
            groups, unreachable = self.router.split(key)
            split = self._split_cache[key] = (
                [(self._links[hop][0], tuple(sub)) for hop, sub in groups.items()], unreachable)
        routes, unreachable = split
        for link, sub in routes:
            link.send_body(routed_body(origin, sub, hops, payload))
        if unreachable and origin != self.name:
            self._relay_failed(origin, unreachable, payload, "no route", bounce)
        return unreachable

    def _relay_failed(self, origin: str, dests: List[str], payload: bytes, why: str, bounce: bool) -> None:
        """
        A relay cannot pass a message on: log it, report it to the monitor
        and, with C{bounce}, tell its sender ("C{why} to kernel K").
        """
        self.log.warn("{why} from {kernel} to {dests} for a message from {origin}",
                      why=why, kernel=self.name, dests=dests, origin=origin)
        monitor = self.kernel.monitor
        if not bounce and not monitor.undeliverable:
            return
        try:
            body = parse_payload(loads(payload))
        except ProtocolError:
            return
        if body[0] == RESPONSE:
            return
        sessions = body[1] if body[1] == "*" else ",".join(body[1])
        if monitor.undeliverable and not (body[4] is None and body[5] == MONITOR_STATE):
            for kernel in dests:
                monitor.emit("undeliverable", destination=f"poe://{kernel}/{sessions}/{body[2]}",
                             reason=f"{why} to kernel {kernel!r}", origin=origin)
        if not bounce:
            return
        if body[0] in (POST, CALL, CALLREPLY):
            for kernel in dests:
                self.bounce(origin, body[4], f"poe://{kernel}/{sessions}/{body[2]}",
                            f"{why} to kernel {kernel!r}", body[3])
        elif body[0] == REQUEST or body[0] == CONTROL:
            self._forward(self.name, (origin,), self.hops,
                          dumps([RESPONSE, [], body[8], False,
                                 ["NoRoute", f"{why} to kernel {dests[0]!r}"]]),
                          bounce=False)

    def _deliver(self, origin: str, payload: list) -> None:
        kind = payload[0]
        if kind == RESPONSE:
            self._response(payload, origin)
            return
        _, sessions, state, args, s_session, s_state, s_file, s_line = payload[:8]
        kernel = self.kernel
        key = (origin, s_session, s_state, s_file, s_line)
        sender = self._senders.get(key)
        if sender is None:
            if len(self._senders) > 1024:
                self._senders.clear()
            sender = self._senders[key] = RemoteSender(kernel, origin, s_session, s_state, s_file, s_line)
        if s_session is None and s_state == MONITOR_STATE and kind == POST and type(sessions) is list:
            target = f"poe://{self.name}/{','.join(sessions)}/{state}"
            if target in kernel.monitor.remote.get(origin, ()):
                self._monitor_event(origin, target, sessions, state, args, sender)
                return
        if kernel.monitor.arrived and not (kind == CONTROL and state.startswith("monitor_")):
            kernel.monitor.emit("arrived", origin=origin, kind=_KIND_NAMES.get(kind, "?"), sender=sender.id,
                                destination=f"poe://{self.name}/{sessions if sessions == '*' else ','.join(sessions)}/{state}")
        if kind == CONTROL:
            self._control(origin, payload[8], sessions, state, tuple(args), sender)
            return
        if kind == POST and state in self._states and len(sessions) == 1 and type(sessions) is list \
                and not kernel.auth._hooks:
            # Hot path: a post to one aliased session, no hooks to ask.
            session = kernel._aliases.get(sessions[0])
            if session is not None:
                kernel._enqueue(session, state, tuple(args), sender, s_state, s_file, s_line)
                return
        if state not in self._states:
            try:
                check_state(state)
                if state in RESERVED_STATES and kind != UNDELIVERABLE:
                    raise BadSpecifier(f"state {state!r} is reserved and cannot be sent from another kernel")
            except BadSpecifier as e:
                if kind == REQUEST:
                    self._forward(self.name, (origin,), self.hops,
                                  dumps([RESPONSE, [], payload[8], False, ["BadSpecifier", str(e)]]), bounce=False)
                self._undeliverable(origin, sessions, state, str(e),
                                    (origin, s_session, args) if kind not in (UNDELIVERABLE, REQUEST) else None)
                return
            if len(self._states) < 4096 and state not in RESERVED_STATES:
                self._states.add(state)
        bounce = (origin, s_session, args) if kind != UNDELIVERABLE else None
        targets = self._targets(origin, sessions, state, bounce)
        args = tuple(args)
        if kind == UNDELIVERABLE:
            for session in targets:
                if "_undeliverable" in session._states:
                    kernel._enqueue(session, state, args, sender, s_state, s_file, s_line)
            return
        rsvp_text = payload[8] if kind == CALL else None
        if kernel.auth._hooks:
            targets = self._authorized(kind, targets, state, rsvp_text, sender, args, bounce, origin)
        if kind == POST or kind == CALLREPLY:
            for session in targets:
                kernel._enqueue(session, state, args, sender, s_state, s_file, s_line)
        elif kind == CALL:
            try:
                rsvp = parse(rsvp_text)
                if rsvp.state is None:
                    raise BadSpecifier(f"RSVP {rsvp_text!r} names no state")
            except BadSpecifier as e:
                self._undeliverable(origin, sessions, state, f"bad RSVP: {e}", bounce)
                return
            for session in targets:
                try:
                    result = kernel._call(session, state, args, sender, s_state, s_file, s_line)
                except Exception:
                    kernel._log_failure(session, state)
                    continue
                kernel._reply(session, state, rsvp, result)
        elif kind == REQUEST:
            self._answer(origin, payload[8], targets, sessions, state, args, sender, s_state, s_file, s_line)

    def _monitor_event(self, origin: str, target: str, sessions: List[str], state: str, args: list,
                       sender: RemoteSender) -> None:
        """
        A monitor event from kernel C{origin} for a target we registered
        there.  It is not reported to our own monitor; a post hook that
        refuses it drops it quietly; if the target's sessions are gone, ask
        C{origin} (once) to stop sending.
        """
        kernel = self.kernel
        try:
            check_state(state)
        except BadSpecifier:
            return
        found = [s for s in (kernel.resolve(name) for name in sessions) if s is not None]
        if not found or state in RESERVED_STATES:
            self.log.info("monitor events from {origin} to {target} have no session: unregistering",
                          origin=origin, target=target)
            kernel.monitor.remote.get(origin, {}).pop(target, None)
            self.control(origin, "monitor_unregister", [], (None, target), kernel, MONITOR_STATE, (None, None),
                         60.0).addErrback(lambda f: None)
            return
        args_t = tuple(args)
        for session in found:
            if kernel.auth._hooks:
                request = AuthRequest("post", session, state, None, sender, args_t)
                if kernel.auth.check(request, session._alias_names + [str(session.id)]) is not None:
                    continue
            kernel._enqueue(session, state, args_t, sender, MONITOR_STATE, None, None)

    def _authorized(self, kind: int, targets: List[Session], state: str, rsvp: Optional[str], sender: Any,
                    args: Tuple[Any, ...], bounce: Any, origin: str) -> List[Session]:
        """
        The targets the kernel's authentication hooks accept; the others
        are reported undeliverable (a refused request is answered with the
        reason by L{_answer}, which sees no target).
        """
        hook_kind = {POST: "post", CALL: "call", CALLREPLY: "callreply", REQUEST: "call"}[kind]
        accepted = []
        for session in targets:
            request = AuthRequest(hook_kind, session, state, rsvp, sender, args)
            reason = self.kernel.auth.check(request, session._alias_names + [str(session.id)])
            if reason is None:
                accepted.append(session)
            elif kind == REQUEST:
                self._refused_requests[id(args)] = reason
            else:
                self._undeliverable(origin, [_wire_name(session)], state, reason, bounce)
        return accepted

    def _targets(self, origin: str, sessions: Any, state: str, bounce: Any = None) -> List[Session]:
        kernel = self.kernel
        if sessions == "*":
            return list(dict.fromkeys(kernel._aliases.values()))
        if len(sessions) == 1:
            session = kernel._aliases.get(sessions[0]) or kernel.resolve(sessions[0])
            if session is not None:
                return [session]
        found: Dict[Session, None] = {}
        for name in sessions:
            session = kernel.resolve(name)
            if session is None:
                self._undeliverable(origin, [name], state, f"no session {name!r} in kernel {self.name!r}", bounce)
            else:
                found[session] = None
        return list(found)

    def _undeliverable(self, origin: str, sessions: Any, state: Any, reason: str, bounce: Any = None) -> None:
        """
        Log a message that cannot be delivered here and, when C{bounce} is
        C{(origin, sender_session, args)}, send it back to its sender as an
        C{_undeliverable} event.
        """
        destination = f"poe://{self.name}/{sessions if sessions == '*' else ','.join(sessions)}/{state}"
        self.log.warn(
            "undeliverable message from kernel {origin} to {destination}: {reason}",
            origin=origin, destination=destination, reason=reason,
        )
        if self.kernel.monitor.undeliverable:
            self.kernel.monitor.emit("undeliverable", destination=destination, reason=reason, origin=origin)
        if bounce is not None:
            self.bounce(bounce[0], bounce[1], destination, reason, bounce[2])

    def bounce(self, origin: str, s_session: Optional[str], destination: str, reason: str, args: Any) -> None:
        """
        Send an C{_undeliverable} event to session C{s_session} of kernel
        C{origin}: C{args == (destination, reason, original_args)}.
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
        if origin == self.name:
            self._deliver(self.name, parse_payload(loads(payload)))
        else:
            self._forward(self.name, (origin,), self.hops, payload, bounce=False)

    # -- outbound ------------------------------------------------------------

    def send(self, spec: Specifier, kernels: Tuple[str, ...], args: Tuple[Any, ...], sender: Any,
             cstate: Optional[str], cfile: Optional[str], cline: Optional[int],
             rsvp: Optional[Specifier] = None, kind: Optional[int] = None) -> None:
        """
        Send a post (or, with C{rsvp}, a call) to C{kernels}; C{'*'} means
        every other reachable kernel.

        :raises EncodeError: if an argument cannot travel.
        """
        if kernels == ("*",):
            kernels = tuple(sorted(self.router.reachable()))
            if not kernels:
                return
        check_plain(args)
        sessions: Any = "*" if spec.sessions == _WILD else spec.sessions
        if rsvp is None:
            body = [kind or POST, sessions, spec.state, args, _wire_name(sender), cstate, cfile, cline]
        else:
            body = [CALL, sessions, spec.state, args, _wire_name(sender), cstate, cfile, cline, str(rsvp)]
        payload = dumps_trusted(body)
        if len(payload) > self.max_payload:
            raise EncodeError(f"message of {len(payload)} bytes exceeds the {self.max_payload}-byte limit")
        unreachable = self._forward(self.name, kernels, self.hops, payload)
        if self.kernel.monitor.sent and len(unreachable) < len(kernels):
            reached = tuple(k for k in kernels if k not in unreachable) if unreachable else kernels
            self.kernel.monitor.emit("sent", destination=str(Specifier(reached, spec.sessions, spec.state)),
                                     kind="call" if rsvp is not None else _KIND_NAMES[kind or POST])
        for kernel in unreachable:
            self.kernel._undeliverable(spec, f"no route to kernel {kernel!r}", (cfile, cline), sender, args)

    def request(self, spec: Specifier, kernels: Tuple[str, ...], args: Tuple[Any, ...], sender: Any,
                cstate: Optional[str], caller: Tuple[Optional[str], Optional[int]],
                timeout: Optional[float]) -> Deferred:
        """
        Call one remote state and get its value.  See L{Kernel.request}.
        """
        if len(spec.kernels) != 1 or spec.all_kernels or len(spec.sessions) != 1 or spec.all_sessions:
            return fail(BadSpecifier(f"a request names exactly one kernel and one session, not {str(spec)!r}"))
        kernel = kernels[0]
        if self.router.next_hop(kernel) is None:
            return fail(NoRoute(f"no route to kernel {kernel!r}"))
        request_id = self._new_request_id()
        body = dumps([REQUEST, list(spec.sessions), spec.state, list(args), _wire_name(sender), cstate,
                      caller[0], caller[1], request_id])
        if self.kernel.monitor.sent:
            self.kernel.monitor.emit("sent", destination=str(spec), kind="request")
        return self._pending(request_id, kernel, body, timeout, f"no answer from {str(spec)!r} within {timeout} s")

    def control(self, kernel: str, op: str, sessions: Any, args: Tuple[Any, ...], sender: Any,
                cstate: Optional[str], caller: Tuple[Optional[str], Optional[int]],
                timeout: Optional[float]) -> Deferred:
        """
        Ask kernel C{kernel} to run a control operation (introspection,
        monitor registration): see L{lightspeed.control}.

        :returns: a Deferred that fires with the answer or fails as
            L{request} does.
        """
        if self.router.next_hop(kernel) is None:
            return fail(NoRoute(f"no route to kernel {kernel!r}"))
        try:
            check_plain(args)
        except EncodeError as e:
            return fail(e)
        request_id = self._new_request_id()
        body = dumps([CONTROL, sessions, op, list(args), _wire_name(sender), cstate, caller[0], caller[1],
                      request_id])
        if self.kernel.monitor.sent and not op.startswith("monitor_"):
            self.kernel.monitor.emit("sent", destination=f"poe://{kernel}/{sessions if sessions == '*' else ','.join(sessions) or '*'}/{op}",
                                     kind="control")
        return self._pending(request_id, kernel, body, timeout,
                             f"no answer to {op!r} from kernel {kernel!r} within {timeout} s")

    def _new_request_id(self) -> int:
        """
        A random 63-bit id that no pending request has: other kernels
        cannot guess it to answer (or fail) a request they did not get.
        """
        while True:
            request_id = secrets.randbits(63)
            if request_id not in self._requests:
                return request_id

    def _pending(self, request_id: int, kernel: str, body: bytes, timeout: Optional[float],
                 late: str) -> Deferred:
        """
        Send a REQUEST or CONTROL C{body} to C{kernel} and keep its Deferred
        until the RESPONSE, a time-out (L{RequestTimeout} saying C{late})
        or the loss of the route.
        """
        d = Deferred(lambda _: self._requests.pop(request_id, None))
        timer = None
        if timeout is not None:
            timer = self.kernel.reactor.callLater(timeout, self._fail_request, request_id, RequestTimeout(late))
        self._requests[request_id] = (d, kernel, timer)
        self._forward(self.name, (kernel,), self.hops, body)
        return d

    def _fail_request(self, request_id: int, error: Exception) -> None:
        entry = self._requests.pop(request_id, None)
        if entry is None:
            return
        d, _, timer = entry
        if timer is not None and timer.active():
            timer.cancel()
        d.errback(Failure(error))

    def _response(self, payload: list, origin: str) -> None:
        _, _, request_id, ok, value = payload[:5]
        entry = self._requests.get(request_id)
        relay_no_route = (not ok and type(value) is list and value[:1] == ["NoRoute"])
        if entry is None or (entry[1] != origin and not relay_no_route):
            self.log.warn("answer from {origin} to unknown or expired request {id}", origin=origin, id=request_id)
            return
        del self._requests[request_id]
        d, _, timer = entry
        if timer is not None and timer.active():
            timer.cancel()
        if ok:
            d.callback(value)
            return
        if type(value) is list and len(value) >= 2 and type(value[0]) is str and type(value[1]) is str:
            error: Exception = _remote_error(value[0], value[1])
        else:
            error = RemoteError("?", repr(value))
        d.errback(Failure(error))

    def _respond(self, origin: str, request_id: int, ok: bool, value: Any) -> None:
        """
        Send the RESPONSE to request C{request_id} of kernel C{origin}.
        """
        try:
            body = dumps([RESPONSE, [], request_id, ok, value])
        except LightspeedError as e:
            body = dumps([RESPONSE, [], request_id, False, ["EncodeError", str(e)]])
        self._forward(self.name, (origin,), self.hops, body)

    def _control(self, origin: str, request_id: int, sessions: Any, op: str, args: Tuple[Any, ...],
                 sender: RemoteSender) -> None:
        """
        Run a CONTROL operation another kernel asked for and answer it.
        """
        from lightspeed.control import run

        d = maybeDeferred(run, self.kernel, op, sessions, args, sender, True)

        def log_bug(f: Failure) -> Failure:
            if not f.check(LightspeedError, ValueError):
                self.log.failure("control operation {op!r} from {origin} failed", f, op=op, origin=origin)
            return f

        self._respond_when(origin, request_id, d.addErrback(log_bug))

    def _respond_when(self, origin: str, request_id: int, d: Deferred) -> None:
        """
        Answer request C{request_id} of kernel C{origin} with C{d}'s result:
        its value, or C{[type_name, message]} of its failure.
        """
        d.addCallbacks(
            lambda value: self._respond(origin, request_id, True, value),
            lambda f: self._respond(origin, request_id, False,
                                    [f.type.__name__ if f.type else "Exception", str(f.value)]),
        )

    def _answer(self, origin: str, request_id: int, targets: List[Session], sessions: Any, state: str,
                args: Tuple[Any, ...], sender: RemoteSender, s_state: Any, s_file: Any, s_line: Any) -> None:
        refused = self._refused_requests.pop(id(args), None)
        if refused is not None:
            self._respond(origin, request_id, False, ["Refused", refused])
            return
        if len(targets) != 1:
            self._respond(origin, request_id, False,
                          ["NoSuchSession", f"no session {','.join(sessions)!r} in kernel {self.name!r}"])
            return
        session = targets[0]
        self._respond_when(origin, request_id,
                           maybeDeferred(self.kernel._call, session, state, args, sender, s_state, s_file, s_line))

    def _lsa_message(self, lsa: LinkState) -> list:
        message = [LSA, lsa.origin, lsa.incarnation, lsa.seq, [list(link) for link in lsa.links]]
        proof = lsa.proof
        if lsa.origin == self.name and self.signer is not None:
            proof = self.signer.sign(lsa)
        if proof is not None:
            message.append(proof)
        return message

    # -- shutdown ------------------------------------------------------------

    def close_links(self, code: str = "shutdown", message: str = "kernel shutting down") -> None:
        """
        Close every link with a BYE.
        """
        self._stop_timers()
        for link in list(self._all_links):
            link.close(code, message)




def _remote_error(kind: str, message: str) -> Exception:
    if kind == "NoSuchSession":
        return NoSuchSession(message)
    if kind == "NoRoute":
        return NoRoute(message)
    return RemoteError(kind, message)
