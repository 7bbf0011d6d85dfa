# -*- test-case-name: lightspeed.test.test_network -*-
"""
A kernel's place in the network: the façade over its links, adverts,
relay, requests, dispatch and membership (:mod:`lightspeed.net`).

The kernel hands messages for other kernels to :meth:`Network.send`,
:meth:`Network.request` and :meth:`Network.control` (its
:class:`~lightspeed.interfaces.INetworkPort`); links hand what they
receive to the network as their :class:`~lightspeed.interfaces.ILinkOwner`.
The network reaches its kernel only through an
:class:`~lightspeed.interfaces.IKernelPort`.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from lightspeed.adverts import certificate_names
from lightspeed.bounded import BoundedCache
from lightspeed.errors import EncodeError
from lightspeed.interfaces import IKernelPort, ILinkOwner, INetworkPort
from lightspeed.message import (CALL, CALLREPLY, CONTROL, DEFAULT_HOPS, LSA, POST, REQUEST, ROUTED, joined_payload,
                                payload_body, payload_ends, with_extra)
from lightspeed.net.callerfiles import DEFAULT_POLICY, CallerFiles
from lightspeed.net.delivery import Delivery
from lightspeed.net.costs import LinkCosts
from lightspeed.net.dispatch import KIND_NAMES, Dispatcher
from lightspeed.net.flooding import FADING_GRACE, LSA_MAX_AGE, LSA_REFRESH, Flooding
from lightspeed.net.links import Links
from lightspeed.net.membership import Membership
from lightspeed.net.relay import Relay
from lightspeed.net.requests import Late, Requests, encode_id
from lightspeed.router import Router
from lightspeed.session import Where, caller_of
from lightspeed.specifier import Specifier
from lightspeed.wire.codec import check_plain, dumps, dumps_trusted
from lightspeed.wire.framing import DEFAULT_MAX_FRAME

__all__ = ["Network", "new_incarnation", "LSA_REFRESH", "LSA_MAX_AGE", "FADING_GRACE"]

_WILD = ("*",)


def new_incarnation() -> int:
    """
    A per-start id that orders restarts: microseconds since the epoch, then
    8 random bits.  It fits in 63 bits (until the year 2550), so it travels
    as a plain CBOR integer, cheap to decode in every routed header.
    """
    return (int(time.time() * 1_000_000) << 8) | os.urandom(1)[0]


def _sessions_text(sessions: Any) -> str:
    return sessions if sessions == "*" else ",".join(sessions) or "*"


@implementer(ILinkOwner, INetworkPort)
class Network:
    """
    The network side of one kernel.

    :ivar port: the kernel, as an :class:`~lightspeed.interfaces.IKernelPort`.
    :ivar router: the link-state :class:`~lightspeed.router.Router`.
    :ivar hops: how many relays a message from here may cross.
    :ivar max_payload: the largest encoded payload a message may have: it
        must fit in a frame of the default maximum size with its header.
    :ivar caller_files: what messages carry as the sender's source file
        (:class:`~lightspeed.net.callerfiles.CallerFiles`; set through
        ``kernel.caller_files``).
    :ivar costs: the link costs from measured round trips
        (:obj:`~lightspeed.net.costs.LinkCosts`); ``costs.enabled = False``
        fixes every link's cost at 1.
    """

    log = Logger()

    def __init__(self, port: IKernelPort, incarnation: Optional[int] = None) -> None:
        self.port = port
        self.name: str = port.name
        self.reactor = port.reactor
        self.events = port.events
        self.incarnation = incarnation if incarnation is not None else new_incarnation()
        self.router = Router(self.name, self.incarnation, self.reactor.seconds)
        #: A hidden kernel: a leaf that ``*`` does not reach (HELLO and LSA say so).
        self.hidden = self.router.hidden = getattr(port, "hidden", False) is True
        if self.hidden:
            self.router.readvertise()  # the first own LSA carries the flag too
        self.hops = DEFAULT_HOPS
        self.max_payload = DEFAULT_MAX_FRAME - 64 * 1024
        self.link_table = Links(self.reactor)
        #: ILinkOwner.mark_dirty: the link table's, without a call between.
        self.mark_dirty: Callable[[Any], None] = self.link_table.mark_dirty
        self.flooding = Flooding(self)
        self.relay = Relay(self)
        self.requests = Requests(self)
        self.dispatch = Dispatcher(self)
        self.membership = Membership(self)
        self.delivery = self.relay.delivery = Delivery(self)
        self.costs = LinkCosts(self)
        #: Handlers of other link message kinds (such as TRACE), by kind:
        #: objects with ``received(link, message)``, set by the node.
        self.extensions: Dict[int, Any] = {}
        self.caller_files = CallerFiles(getattr(port, "caller_files", DEFAULT_POLICY))
        self._sent_files = self.caller_files.cache  # cleared, never replaced, when the policy changes
        #: post_planned's encoded fields, by (destination, call site, sender, state).
        self._posts = BoundedCache(4096)

    # -- counters and settings kept by the parts -------------------------------------

    @property
    def signer(self) -> Any:
        """
        The :class:`~lightspeed.adverts.AdvertSigner` in use, or ``None``.
        """
        return self.flooding.signer

    @property
    def misrouted(self) -> int:
        return self.relay.misrouted

    @property
    def bad_payloads(self) -> int:
        return self.relay.bad_payloads

    @property
    def bad_adverts(self) -> int:
        return self.flooding.bad_adverts

    def encode(self, body: list) -> bytes:
        """
        Encode a payload of ours.

        :raises EncodeError: if it cannot travel or exceeds :attr:`max_payload`.
        """
        return self._limited(dumps(body))

    def _limited(self, payload: bytes) -> bytes:
        """
        :raises EncodeError: if ``payload`` exceeds :attr:`max_payload`.
        """
        if len(payload) > self.max_payload:
            raise EncodeError(f"message of {len(payload)} bytes exceeds the {self.max_payload}-byte limit")
        return payload

    def routes_changed(self) -> None:
        """
        Links or adverts changed the routes.
        """
        self.relay.routes_changed()
        self.flooding.fading_changed()
        self.membership.schedule()

    # -- ILinkOwner ----------------------------------------------------------------

    def admit(self, link: Any, name: str, incarnation: int) -> Any:
        if link.options.tls_names:
            certificate = link.peer_certificate()
            if certificate is None or name not in certificate_names(certificate.to_cryptography()):
                return ("auth", f"the peer's TLS certificate does not name kernel {name!r}")
        known = self.router.incarnation_of(name)
        if known is not None and known != incarnation:
            return f"kernel name {name!r} is already used by another live kernel"
        return None

    def link_up(self, link: Any) -> None:
        first = self.link_table.add(link)
        peer = link.peer.name
        self.log.info("link up: {kernel} <-> {peer}", kernel=self.name, peer=peer)
        if self.events.watching("link_up"):
            self.events.emit("link_up", peer=peer, address=str(link.transport.getPeer()))
        self.router.peer_hidden(peer, link.peer.hidden)
        if first:  # before the sync, which then leaves our own advert to it
            self.flooding.originate(self.router.link_up(peer))
        self.flooding.sync(link)
        self.relay.routes_changed()
        if first:
            self.routes_changed()

    def link_down(self, link: Any) -> None:
        last = self.link_table.remove(link)
        if last is None:
            return
        peer = link.peer.name
        self.log.info("link down: {kernel} <-> {peer}", kernel=self.name, peer=peer)
        if self.events.watching("link_down"):
            why = link.closed_reason
            self.events.emit("link_down", peer=peer, code=why.code if why is not None else "lost",
                             reason=str(why) if why is not None else "connection lost")
        self.relay.routes_changed()  # a parallel link may take over
        self.costs.link_down(link, last)
        if last:
            self.flooding.originate(self.router.link_down(peer))
            self.flooding.link_gone(peer)
            self.routes_changed()
        if not len(self.link_table):
            self._stop_timers()

    def message_received(self, link: Any, message: list) -> None:
        self.link_table.reading = True  # after_read writes what this makes
        kind = message[0]
        if kind == ROUTED:
            self.relay.received(link.peer.name, message)
        elif kind == LSA:
            self.flooding.receive(link.peer.name, message)
        elif kind in self.extensions:
            self.extensions[kind].received(link, message)
        # Other link-level messages (PONG, future types) need no action.

    def routed_received(self, link: Any, message: list) -> None:
        # The peer's own stream to us, checked by the link: what Relay.received's hot path delivers.
        self.link_table.reading = True
        self.delivery.arrived(message[1], message[2], message[3][0], message[5], message[6], message[1])

    def after_read(self, link: Any) -> None:
        self.port.local.run_soon()
        self.link_table.flush_read()

    def link_rtt(self, link: Any, seconds: float) -> None:
        self.costs.measured(link, seconds)

    # -- INetworkPort ----------------------------------------------------------------

    def send(self, spec: Specifier, kernels: Tuple[str, ...], args: Tuple[Any, ...], sender: Any,
             cstate: Optional[str], cfile: Optional[str], cline: Optional[int],
             rsvp: Optional[Specifier] = None, reply: bool = False, ttl: Optional[float] = None) -> None:
        if kernels == _WILD:
            kernels = tuple(sorted(self.router.visible()))
            if not kernels:
                return
        sessions: Any = "*" if spec.sessions == _WILD else spec.sessions
        kind = CALLREPLY if reply else POST
        sent_file = self._sent_files.get(cfile)
        if sent_file is None:
            sent_file = self.caller_files.convert(cfile)
        if rsvp is None:
            payload = payload_body(kind, sessions, spec.state, args, self.port.local.wire_name(sender), cstate,
                                   sent_file, cline)
        else:
            check_plain(args)
            kind = CALL
            payload = dumps_trusted([CALL, sessions, spec.state, args, self.port.local.wire_name(sender), cstate,
                                     sent_file, cline, str(rsvp)])
        self._send_payload(spec, kernels, kind, payload, ttl, args, sender, cfile, cline)

    def post_planned(self, dest: str, plan: Tuple[Specifier, Tuple[str, ...]], args: Tuple[Any, ...], sender: Any,
                     cstate: Optional[str], where: Where, offset: Optional[int], ttl: Optional[float]) -> None:
        """
        :meth:`send` of a POST to ``plan`` (``dest`` parsed by the runtime:
        its specifier and its kernels, none of them this one) from the call
        site ``where`` and ``offset`` (a code object and instruction offset,
        as :func:`~lightspeed.session.caller_of` takes them).  A post from a
        call site seen before encodes its arguments only (see
        :meth:`_planned_ends`).
        """
        ends = self._planned_ends(POST, dest, plan, sender, cstate, where, offset)
        self._send_payload(plan[0], plan[1], POST, joined_payload(ends, args), ttl, args, sender, where, offset)

    def request_planned(self, dest: str, plan: Tuple[Specifier, Tuple[str, ...]], args: Tuple[Any, ...],
                        sender: Any, cstate: Optional[str], where: Where, offset: Optional[int],
                        timeout: Optional[float]) -> Deferred:
        """
        :meth:`request` to ``plan`` (``dest`` parsed by the runtime: one
        session of one other kernel) from the call site ``where`` and
        ``offset``: only the arguments and the request's id are encoded
        when the call site was seen before (see :meth:`_planned_ends`).
        """
        head, tail = self._planned_ends(REQUEST, dest, plan, sender, cstate, where, offset)
        return self._start_request(plan[0], plan[1][0], timeout,
                                   lambda request_id: self._limited(joined_payload((head, tail + encode_id(request_id)),
                                                                                   args)))

    def _planned_ends(self, kind: int, dest: str, plan: Tuple[Specifier, Tuple[str, ...]], sender: Any,
                      cstate: Optional[str], where: Where, offset: Optional[int]) -> Tuple[bytes, bytes]:
        """
        The encoded fields of a POST or REQUEST (with its id still to come)
        around its arguments, kept by destination, call site, sender, state
        and kind, checked against the sender's wire name and the
        caller-file policy's cache.
        """
        key = (dest, id(where), offset, sender, cstate, kind)
        entry = self._posts.get(key)
        if entry is None or entry[0] is not where or entry[1] is not plan \
                or self._sent_files.get(entry[2]) is not entry[3] or entry[4] != self.port.local.wire_name(sender):
            cfile, cline = caller_of(where, offset)
            spec = plan[0]
            sessions: Any = "*" if spec.sessions == _WILD else spec.sessions
            sent_file = self.caller_files.convert(cfile)
            wire = self.port.local.wire_name(sender)
            ends = payload_ends(kind, sessions, spec.state, wire, cstate, sent_file, cline)
            entry = self._posts.remember(key, (where, plan, cfile, sent_file, wire,
                                               with_extra(ends) if kind == REQUEST else ends))
        return entry[5]

    def _send_payload(self, spec: Specifier, kernels: Tuple[str, ...], kind: int, payload: bytes, ttl: Optional[float],
                      args: Tuple[Any, ...], sender: Any, where: Where, line: Optional[int]) -> None:
        if len(payload) > self.max_payload:
            self._limited(payload)
        deadline = None if ttl is None else self.reactor.seconds() + ttl
        failed = self.delivery.send(kernels, payload, deadline)
        if self.events.sent and len(failed) < len(kernels):
            refused = {kernel for kernel, _ in failed}
            reached = tuple(k for k in kernels if k not in refused)
            self.events.emit("sent", destination=str(Specifier(reached, spec.sessions, spec.state)),
                             kind=KIND_NAMES[kind])
        for kernel, why in failed:
            self.port.local.undeliverable(spec, f"{why} to kernel {kernel!r}" if why == "no route" else why,
                                          caller_of(where, line), sender, args)

    def lost(self, kernel: str, payloads: List[bytes], reason: str) -> None:
        """
        Messages of ours to ``kernel`` will not be delivered: tell each
        sender (a session's ``_undeliverable`` state, a request's Deferred).
        """
        for payload in payloads:
            self.dispatch.lost(kernel, payload, reason)

    def request(self, spec: Specifier, kernel: str, args: Tuple[Any, ...], sender: Any,
                cstate: Optional[str], caller: Tuple[Any, Optional[int]],
                timeout: Optional[float]) -> Deferred:
        state = cast(str, spec.state)  # Calls.request got it from destination(): it names a state
        requests, who = self.requests, self._who(sender, cstate, caller)
        sessions = list(spec.sessions)
        return self._start_request(spec, kernel, timeout,
                                   lambda request_id: requests.payload(REQUEST, sessions, state, args, who, request_id))

    def _start_request(self, spec: Specifier, kernel: str, timeout: Optional[float],
                       build: Callable[[int], bytes]) -> Deferred:
        d = self.requests.start(kernel, build, timeout, lambda: f"no answer from {str(spec)!r} within {timeout} s")
        if self.events.sent and not d.called:
            self.events.emit("sent", destination=str(spec), kind="request")
        return d

    def control(self, kernel: str, op: str, sessions: Any, args: Tuple[Any, ...], sender: Any,
                cstate: Optional[str], caller: Tuple[Optional[str], Optional[int]],
                timeout: Optional[float]) -> Deferred:
        d = self._ask(kernel, CONTROL, sessions, op, args, sender, cstate, caller, timeout,
                      f"no answer to {op!r} from kernel {kernel!r} within {timeout} s")
        if self.events.sent and not op.startswith("monitor_") and not d.called:
            self.events.emit("sent", destination=f"poe://{kernel}/{_sessions_text(sessions)}/{op}", kind="control")
        return d

    def _ask(self, kernel: str, kind: int, sessions: Any, state: str, args: Tuple[Any, ...], sender: Any,
             cstate: Optional[str], caller: Tuple[Optional[str], Optional[int]], timeout: Optional[float],
             late: Late) -> Deferred:
        """
        Send a REQUEST or CONTROL to ``kernel``; its Deferred settles with
        the answer.  Arguments that cannot travel, or that would make the
        message too large, fail it at once with :class:`EncodeError` (the
        encoding of the message checks them).
        """
        requests, who = self.requests, self._who(sender, cstate, caller)
        return requests.start(kernel, lambda request_id: requests.payload(kind, sessions, state, args, who, request_id),
                              timeout, late)

    def _who(self, sender: Any, cstate: Optional[str], caller: Tuple[Any, Optional[int]]) -> Tuple[Any, ...]:
        """
        A payload's sender fields (session, state, file, line) from the
        call site ``caller`` (as :func:`~lightspeed.session.caller_of`
        takes it).
        """
        cfile, cline = caller_of(*caller)
        return self.port.local.wire_name(sender), cstate, self.caller_files.convert(cfile), cline

    def bounce(self, kernel: str, session: str, destination: str, reason: str, args: Any) -> None:
        self.relay.bounce(kernel, session, destination, reason, args)

    def reachable(self, hidden: bool = True) -> frozenset:
        return self.router.reachable() if hidden else self.router.visible()

    def incarnations(self) -> Dict[str, Optional[int]]:
        out: Dict[str, Optional[int]] = {k: self.membership.incarnation_of(k) for k in self.router.reachable()}
        out[self.name] = self.incarnation
        return out

    def flush(self) -> None:
        self.link_table.flush()

    def close_links(self, code: str = "shutdown", message: str = "kernel shutting down") -> None:
        self._stop_timers()
        self.delivery.stop()
        self.link_table.close_all(code, message)

    # -- the rest ------------------------------------------------------------------

    def links(self) -> List[Any]:
        """
        Every link that is up.
        """
        return self.link_table.all()

    def _stop_timers(self) -> None:
        self.flooding.stop()
        self.requests.stop()
        self.membership.check_now()

