# -*- test-case-name: lightspeed.test.test_adverts -*-
"""
Routing adverts (LSAs) in and out: database sync when a link comes up,
flooding, the periodic refresh of our own advert and the ageing of
others', the grace period of withdrawn edges, and the checks that refuse
adverts that lie (see ``docs/protocol.rst``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, Optional, Set

from twisted.logger import Logger

from lightspeed.errors import ProtocolError
from lightspeed.message import LSA, lsa_hidden, parse_lsa
from lightspeed.ratelimit import TokenBucket
from lightspeed.router import LinkState
from lightspeed.wire.codec import dumps_trusted
from lightspeed.vouching import Vouching, parse_vouches

if TYPE_CHECKING:  # pragma: no cover
    from lightspeed.adverts import AdvertSigner

__all__ = ["Flooding", "MIN_ADVERT_INTERVAL", "LSA_REFRESH", "LSA_MAX_AGE", "INCARNATION_SLACK", "FADING_GRACE", "MAX_KERNELS",
           "ADVERT_RATE", "ADVERT_BURST", "UNREACHABLE_GRACE"]

#: Seconds at least between two adverts of our own links as they change (as
#: OSPF's MinLSInterval; ``Flooding.min_advert_interval`` per network).  Our
#: advert goes out at the end of the reactor turn in which our links changed,
#: so changes within one turn go out as one advert; with an interval, changes
#: within it of the last advert wait for its end and go out as one, the links
#: as they are then.  Routes here are recomputed at once all the same.  The
#: default, 0, coalesces per turn only (see ``docs/scaling.rst``).
MIN_ADVERT_INTERVAL = 0.0

#: Seconds between fresh copies of a kernel's own LSA, and the age past which
#: another kernel's LSA that was not refreshed is dropped.
LSA_REFRESH = 600.0
LSA_MAX_AGE = 1800.0

#: Seconds past now that an incarnation (microseconds since the epoch in its
#: high bits) may claim before it counts as a lie.
INCARNATION_SLACK = 24 * 3600

#: Seconds for which an edge that an LSA withdrew still counts when checking
#: that a message's origin is behind the link it arrived on.
FADING_GRACE = 30.0

#: The most other kernels' LSAs held; an LSA for one more kernel is dropped.
MAX_KERNELS = 1024

#: Adverts per second a link may bring (a token bucket of ADVERT_BURST);
#: the excess is dropped and counted in ``dropped_adverts``.
ADVERT_RATE = 100.0
ADVERT_BURST = 1000.0

#: Seconds an LSA of a kernel we have no route to is kept (not LSA_MAX_AGE).
UNREACHABLE_GRACE = 60.0

#: Reasons to refuse another kernel's LSA that do not make the relay a liar.
_EXCUSABLE = frozenset({"it is not signed", "its certificate is expired or not yet valid"})


def _latest_incarnation() -> int:
    return int((time.time() + INCARNATION_SLACK) * 1_000_000) << 8


#: Rounds of re-choosing which adverts to believe after one change (each
#: round floods what changed); past it the rest waits for the next advert.
MAX_RESELECT_ROUNDS = 16

class Flooding:
    """
    The advert side of one network.

    :ivar signer: signs our LSAs and checks everyone else's, when set.
    :ivar bad_adverts: how many LSAs were refused.
    """

    log = Logger()

    def __init__(self, network: Any) -> None:
        self._network = network
        self._router = network.router
        self._links = network.link_table
        self._reactor = network.reactor
        self.signer: Optional["AdvertSigner"] = None
        self.bad_adverts = 0
        #: LSA messages received from neighbours and sent to them.
        self.adverts_in = self.adverts_out = 0
        #: Our own LSAs flooded (each to every neighbour).
        self.own_adverts = 0
        self._refresh_call: Any = None
        self._fading_call: Any = None
        self._sweep_call: Any = None
        self._originate_call: Any = None
        self._originated = float("-inf")  # when our links were last advertised
        self._flooded: Optional[LinkState] = None  # our own LSA last flooded
        self.min_advert_interval = MIN_ADVERT_INTERVAL
        #: Limits (see ``docs/security.rst``), settable per network.
        self.max_kernels = MAX_KERNELS
        self.advert_rate = ADVERT_RATE
        self.advert_burst = ADVERT_BURST
        self.unreachable_grace = UNREACHABLE_GRACE
        #: LSAs dropped by the rate limit or the cap on kernels held.
        self.dropped_adverts = 0
        self._buckets: Dict[str, TokenBucket] = {}
        self._warned: Set[str] = set()
        self._unreachable: Dict[str, float] = {}
        #: Which advert of each kernel to believe (unsigned meshes).
        self.vouching = Vouching(self._router, self._links.incarnation, self._reactor.seconds)

    def message(self, lsa: LinkState) -> list:
        """
        The LSA message for ``lsa``, signed if it is ours and we sign: plain
        values only (a proof passed on was checked plain when it arrived),
        so it is encoded with ``dumps_trusted``.
        """
        message = [LSA, lsa.origin, lsa.incarnation, lsa.seq, [list(link) for link in lsa.links]]
        proof, vouches = lsa.proof, lsa.vouches
        if lsa.origin == self._network.name:
            if self.signer is not None:
                proof = self.signer.sign(lsa)
            vouches = tuple((peer, self._links.incarnation(peer)) for peer, _ in lsa.links)
        flags: Dict[str, Any] = {"hidden": True} if lsa.hidden else {}
        if vouches:
            flags["vouches"] = [list(pair) for pair in vouches if pair[1] is not None]
        if proof is not None or flags:
            message.append(proof)
        if flags:
            message.append(flags)
        return message

    def flood(self, lsa: LinkState, source: Optional[str] = None) -> None:
        """
        Send ``lsa`` to every neighbour but ``source``.
        """
        if lsa.origin == self._network.name:
            self._flooded = lsa
            self.own_adverts += 1
        self.adverts_out += self._links.send_all(self.message(lsa), source, trusted=True)

    def originate(self, lsa: Optional[LinkState]) -> None:
        """
        Our links changed and ``lsa`` (our new LSA, or :obj:`None` if
        nothing changed) is to be flooded: at the end of this turn if the
        last change went out at least :attr:`min_advert_interval` ago, else
        when that interval ends; either way with the changes made meanwhile,
        as one advert of the links then.
        """
        if lsa is None or self._originate_call is not None:
            return  # the advert waiting to go out will carry this change
        wait = self._originated + self.min_advert_interval - self._reactor.seconds()
        self._originate_call = self._reactor.callLater(max(wait, 0.0), self._originate)

    def _originate(self) -> None:
        self._originate_call = None
        self._originated = self._reactor.seconds()
        own = self._router.own()
        if own != self._flooded:
            self.flood(own)

    def sync(self, link: Any) -> None:
        """
        Database sync: a new neighbour learns everything we know (but
        nothing that aged out while we had no links).
        """
        if self._forget(self._router.expire(LSA_MAX_AGE)):
            self._network.routes_changed()
        for lsa in self._router.database():
            if lsa.origin == self._network.name and self._originate_call is not None:
                continue  # our advert waiting to go out goes to this link too, and only it
            link.send_body(dumps_trusted(self.message(lsa)))
            self.adverts_out += 1
        if self._refresh_call is None:
            self._refresh_call = self._reactor.callLater(LSA_REFRESH, self._refresh)
        if self._sweep_call is None:
            self._sweep_call = self._reactor.callLater(self.unreachable_grace / 4, self._sweep)

    def sign(self, signer: "AdvertSigner") -> None:
        """
        Sign from now on; drop the unsigned adverts held and outbid our own
        unsigned copies at the neighbours.
        """
        self.signer = signer
        if self._forget(self._router.drop_unsigned()):
            self._network.routes_changed()
        if len(self._links):
            self.flood(self._router.readvertise())

    def receive(self, peer: str, message: list) -> None:
        """
        An LSA message from neighbour ``peer``.

        :raises ProtocolError: if it is malformed or lies; the link closes.
        """
        self.adverts_in += 1
        parsed = None if self._copy_of_held(message) else parse_lsa(message)
        if not self._within_rate(peer):
            return self._dropped(peer, "more adverts than the rate limit allows")
        if parsed is None:
            return  # a copy of the advert believed, or an older one of its start: what the checks below would drop
        origin, incarnation, seq, links, proof = parsed
        lsa = LinkState(origin, incarnation, seq, links, proof, lsa_hidden(message),
                        parse_vouches(message[6] if len(message) > 6 else None, links))
        router = self._router
        own = router.own()
        if origin == self._network.name:
            if lsa == own or (incarnation, seq) < (own.incarnation, own.seq):
                return  # our own advert coming back, or an old one: nothing to check
            if incarnation > own.incarnation:
                return self._bad_advert(origin, peer, "it claims a later start of this kernel", True)
        elif not router.newer(lsa) if self.signer is not None else self.vouching.stale(lsa):
            return  # a duplicate, stale or aged-out copy
        elif router.held(origin) is None and len(router) >= self.max_kernels:
            return self._dropped(peer, f"more than {self.max_kernels} kernels advertised")
        if incarnation > _latest_incarnation():
            return self._bad_advert(origin, peer, "its incarnation lies in the future", origin != peer)
        if self.signer is not None:
            reason = self.signer.verify(lsa, proof)
            if reason is not None:
                # A relay holding an advert that has since expired, or an
                # unsigned one from before signing was on, is not lying.
                return self._bad_advert(origin, peer, reason, origin != peer and reason in _EXCUSABLE)
        if origin != self._network.name and self.signer is None:
            self.vouching.offer(lsa, peer)  # not stale: checked above
            self._believed()
        elif router.receive(lsa, peer):
            self.flood(lsa, peer)
            self._network.routes_changed()
        elif router.own() is not own:
            self.flood(router.own())  # outbid a stale or forged copy of our own advert

    def _copy_of_held(self, message: list) -> bool:
        """
        Whether an LSA message is another kernel's advert as held (same
        start, no newer sequence number), by its well-typed head alone: it
        is dropped unread, as nothing in it would be believed or passed on
        (most adverts arrive over every link).
        """
        if len(message) < 5:
            return False
        origin, incarnation, seq = message[1], message[2], message[3]
        if type(origin) is not str or type(incarnation) is not int or type(seq) is not int \
                or type(message[4]) is not list or origin == self._network.name:
            return False
        held = self._router.held(origin)
        return held is not None and incarnation == held.incarnation and seq <= held.seq

    def _believed(self) -> None:
        """
        Flood the adverts that became believed (each but to the neighbour
        it came from; one taken back from aside to every neighbour, the
        sender of the forgery it out-votes included).
        """
        for rounds in range(MAX_RESELECT_ROUNDS + 1):  # a loop with a budget: forged adverts may vouch in a ring
            changed, self.vouching.changed = self.vouching.changed, []
            if not changed:
                return
            for lsa, source in changed:  # the last round's too: flooded and routed by, never lost
                self.flood(lsa, source)
            self._network.routes_changed()
            if rounds == MAX_RESELECT_ROUNDS:
                break
            self.vouching.reselect()  # a voucher may have become (un)reachable
        self.log.warn("kernel {kernel}: beliefs about adverts still changing after {n} rounds; left for the next advert",
                      kernel=self._network.name, n=MAX_RESELECT_ROUNDS)

    def link_gone(self, peer: str) -> None:
        """
        The last link to ``peer`` went down: its HELLO no longer vouches
        for it, its neighbours' adverts do.
        """
        self.vouching.reselect([peer])
        self._believed()

    def _forget(self, dropped: Any) -> Any:
        """The adverts of ``dropped`` are gone: so are their candidates and vouches."""
        self.vouching.forget(list(dropped))
        self._believed()
        return dropped

    def _within_rate(self, peer: str) -> bool:
        """
        Take a token from ``peer``'s bucket (:data:`ADVERT_RATE` a second,
        at most :data:`ADVERT_BURST`); ``False`` if it is empty.
        """
        now = self._reactor.seconds()
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = self._buckets[peer] = TokenBucket(self.advert_rate, self.advert_burst, now)
        bucket.rate, bucket.burst = self.advert_rate, self.advert_burst  # they may be changed at any time
        return bucket.try_take(now)

    def _dropped(self, peer: str, reason: str) -> None:
        """
        Drop an LSA over a limit: count it, log once per neighbour, keep
        the link up.
        """
        self.dropped_adverts += 1
        if peer not in self._warned:
            self._warned.add(peer)
            self.log.warn("adverts from {peer} dropped: {reason}", peer=peer, reason=reason)

    def _sweep(self) -> None:
        """
        Drop the LSAs of kernels we have had no route to for longer than
        :attr:`unreachable_grace` (phantoms die soon after their flooder
        leaves), and come back a quarter of the grace later.
        """
        self._sweep_call = None
        now = self._reactor.seconds()
        reachable = self._router.reachable()
        held = {lsa.origin for lsa in self._router.database()} - {self._network.name}
        gone = held - reachable
        self._unreachable = {k: self._unreachable.get(k, now) for k in gone}
        old = [k for k, since in self._unreachable.items() if now - since > self.unreachable_grace]
        self.vouching.sweep(self.unreachable_grace)
        if old and self._forget(self._router.drop(old)):
            self.log.info("adverts of unreachable {kernels} dropped", kernels=old)
            self._network.routes_changed()
        if len(self._links):
            self._sweep_call = self._reactor.callLater(self.unreachable_grace / 4, self._sweep)

    def _bad_advert(self, origin: str, peer: str, reason: str, excusable: bool) -> None:
        """
        Refuse an LSA: drop it with a log line if the neighbour that sent
        it may be honest (``excusable``), else close that link.

        :raises ProtocolError: to close the link.
        """
        self.bad_adverts += 1
        text = f"advert of kernel {origin!r} refused: {reason}"
        if not excusable:
            raise ProtocolError(text, "bad-advert")
        self.log.warn("{text} (from {peer}; dropped)", text=text, peer=peer)

    def _refresh(self) -> None:
        """
        Every :data:`LSA_REFRESH` seconds while links are up: send a fresh
        copy of our own LSA and drop others' older than :data:`LSA_MAX_AGE`.
        """
        self._refresh_call = None
        if not len(self._links):
            return
        self._refresh_call = self._reactor.callLater(LSA_REFRESH, self._refresh)
        self.flood(self._router.readvertise())
        dropped = self._forget(self._router.expire(LSA_MAX_AGE))
        if dropped:
            self.log.info("adverts of {kernels} aged out", kernels=dropped)
            self._network.routes_changed()

    def fading_changed(self) -> None:
        """
        Routes changed: start expiring withdrawn edges if some wait.
        """
        if self._router._fading and (self._fading_call is None or not self._fading_call.active()):
            self._expire_fading()

    def _expire_fading(self) -> None:
        """
        Forget the edges withdrawn more than :data:`FADING_GRACE` seconds
        ago, and come back when the next one is due.
        """
        now = self._reactor.seconds()
        oldest = self._router.forget_fading(now - FADING_GRACE)
        self._fading_call = None
        if oldest is not None:
            self._fading_call = self._reactor.callLater(max(oldest + FADING_GRACE - now, 0.001),
                                                        self._expire_fading)
        # An advert no longer taken for outdated may let a kernel be
        # reported up (see Membership.incarnation_of).
        self._network.membership.schedule()

    def stop(self) -> None:
        """
        No link is left (or the kernel leaves): nothing to refresh, no
        message in flight that a withdrawn edge must vouch for.
        """
        self._router.forget_fading()
        for call in (self._fading_call, self._refresh_call, self._sweep_call, self._originate_call):
            if call is not None and call.active():
                call.cancel()
        self._fading_call = self._refresh_call = self._sweep_call = self._originate_call = None
