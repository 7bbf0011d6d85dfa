# -*- test-case-name: lightspeed.test.test_protocol -*-
"""
The thin Twisted side of a link: bytes between a transport and a
:obj:`Connection`, keepalive and handshake timers, and write coalescing (all
frames queued in one reactor turn go out in one write).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IAddress, IConsumer, IPushProducer, IReactorTime, ITCPTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from lightspeed.errors import LinkClosed
from lightspeed.interfaces import ILinkOwner
from lightspeed.message import PING
from lightspeed.wire.connection import Connection, LinkConfig, PeerInfo
from lightspeed.wire.framing import DEFAULT_MAX_FRAME
from lightspeed.wire.handshake import AUTH_BURST, AUTH_INTERVAL, GuessLimiter

__all__ = ["LinkProtocol", "LinkFactory", "LinkOptions", "FIRST_PING", "MAX_PINGS"]

#: Seconds after the handshake at which a link sends its first PING, to
#: measure the round trip early (unless a keepalive tick comes sooner).  Not
#: at once: the database sync that follows the handshake would inflate it.
FIRST_PING = 1.0

#: The most PINGs a link waits for the PONG of; older ones are forgotten.
MAX_PINGS = 4

if TYPE_CHECKING:
    class _LinkTransport(ITCPTransport, IConsumer):
        """
        What a connected link's transport provides (for type checking only):
        TCP, UNIX and TLS transports can abort and take a push producer.
        """


class LinkOptions:
    """
    Per-listener or per-connection settings.

    :ivar password: shared secret (str or bytes), or :obj:`None`.
    :ivar compression: ask for zlib.
    :ivar keepalive: seconds between PINGs; a peer silent for three of
        them is dead.  0 turns keepalive off (the one PING that measures the
        round trip after the handshake still goes out).
    :ivar handshake_timeout: seconds a new link may take to finish its
        handshake.
    :ivar max_frame: the longest frame accepted.
    :ivar accept: a callable ``(local_address, remote_address) -> bool``
        that may refuse a new connection before the handshake (the seed's
        AUTHCLIENT).
    :ivar max_backlog: bytes that may wait for a peer that does not read
        (the transport paused us); past it the link closes ("slow-reader").
    :ivar tls_names: require the peer's TLS certificate to carry its kernel
        name (common name or DNS subject alternative name); set for you by
        ``listen``/``connect`` with ``tls=`` when the :obj:`TLSConfig` has a CA.
    :ivar auth_burst: (listeners with a password) failed password
        handshakes a source address may have in a row before its
        connections are refused before the handshake.
    :ivar auth_interval: (listeners with a password) seconds after which a
        refused address may try once more.
    """

    def __init__(self, password: Any = None, compression: bool = False, keepalive: float = 15.0,
                 handshake_timeout: float = 10.0, max_frame: int = DEFAULT_MAX_FRAME,
                 accept: Optional[Callable[[IAddress, IAddress], bool]] = None,
                 max_backlog: int = 64 * 1024 * 1024, tls_names: bool = False,
                 auth_burst: int = AUTH_BURST, auth_interval: float = AUTH_INTERVAL) -> None:
        if isinstance(password, str):
            password = password.encode("utf-8")
        self.password: Optional[bytes] = password
        self.compression = compression
        self.keepalive = keepalive
        self.handshake_timeout = handshake_timeout
        self.max_frame = max_frame
        self.accept = accept
        self.max_backlog = max_backlog
        self.tls_names = tls_names
        self.auth_burst = auth_burst
        self.auth_interval = auth_interval


@implementer(IPushProducer)
class LinkProtocol(Protocol):
    """
    One link to a neighbour kernel.

    :ivar peer: the neighbour, once the handshake is done.
    """

    log = Logger()
    peer: Optional[PeerInfo] = None
    # Set by makeConnection before any of our methods runs; Twisted types it
    # as Optional[ITransport], which lacks abortConnection and registerProducer.
    transport: _LinkTransport

    def __init__(self, owner: ILinkOwner, options: LinkOptions, reactor: IReactorTime) -> None:
        self.owner = owner
        self.options = options
        self.reactor = reactor
        self._ready_waiters: List[Deferred] = []
        self._ready_result: Any = None
        self._lost_waiters: Optional[List[Deferred]] = []
        self._handshake_timer: Any = None
        self._keepalive_call: Any = None
        self._first_ping_call: Any = None
        self._abort_call: Any = None
        #: The PINGs sent and not yet answered: token -> when, oldest first.
        self._pings: Dict[int, float] = {}
        self._heard = False
        self._closing = False
        #: Why the link closed (a :obj:`LinkClosed` with a BYE code), once the
        #: lightspeed layer closed it or the peer said BYE.
        self.closed_reason: Optional[LinkClosed] = None
        self._paused = False
        self._quiet = False
        self.conn: Optional[Connection] = None
        #: The source address whose password guess token this link holds.
        self._guess_address: Optional[str] = None
        #: When the handshake finished (reactor seconds), once it has.
        self.since: Optional[float] = None

    # -- Twisted -------------------------------------------------------------

    def connectionMade(self) -> None:
        accept = self.options.accept
        if accept is not None and not accept(self.transport.getHost(), self.transport.getPeer()):
            self.log.warn("connection from {peer} refused by the accept hook", peer=self.transport.getPeer())
            self._closing = True
            self.transport.abortConnection()
            return
        config = LinkConfig(self.owner.name, self.owner.incarnation, self.options.compression,
                            self.options.password, self.options.max_frame, getattr(self.owner, "hidden", False))
        self.conn = Connection(config, self._admit, self._up, self._message, self._closed,
                               self._want_flush, on_pong=self._pong)
        # Writes are already coalesced per reactor turn: Nagle's algorithm
        # would only hold back the small frames (acks, answers) behind them.
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            try:
                no_delay(True)
            except OSError:
                pass  # not a TCP socket after all (UNIX, in memory)
        # The transport pauses us when the peer stops reading (flow control).
        self.transport.registerProducer(self, True)
        if not self._take_guess():
            return
        self._handshake_timer = self.reactor.callLater(self.options.handshake_timeout, self._handshake_late)
        self.conn.start()

    def dataReceived(self, data: bytes) -> None:
        self._heard = True
        if self.conn is not None:
            self.conn.receive(data)
            # Handle what arrived and write the answers in this same turn.
            self.owner.after_read(self)

    def _take_guess(self) -> bool:
        """
        On a listener with a password: take the source address's token for
        one password guess, or refuse the connection before the handshake
        (BYE ``auth``; logged once until the address may try again).
        """
        guesses: Optional[GuessLimiter] = getattr(self.factory, "guesses", None)
        if guesses is None or self.conn is None:
            return True
        peer = self.transport.getPeer()
        address = str(getattr(peer, "host", None) or peer)
        refused = guesses.take(address, self.reactor.seconds())
        if refused is None:
            self._guess_address = address
            return True
        wait, first = refused
        if first:
            self.log.warn("kernel {kernel}: too many failed password attempts from {address}: refusing its "
                          "connections for {wait:.0f} s", kernel=self.owner.name, address=address, wait=wait)
        self._quiet = True
        self.conn.close("auth", f"too many failed password attempts from {address}; try again in {wait:.0f} s")
        return False

    def _settle_guess(self, failed: bool) -> None:
        """
        Give the guess token back unless the handshake answered a password
        guess (we sent our key confirmation) and did not come up.
        """
        address, self._guess_address = self._guess_address, None
        if address is not None and not failed:
            self.factory.guesses.give_back(address, self.reactor.seconds())

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._settle_guess(self.conn is not None and self.conn.answered)
        for name in ("_handshake_timer", "_keepalive_call", "_first_ping_call", "_abort_call"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        if self.peer is not None:
            self.owner.link_down(self)
        elif self.conn is not None and self.conn.state != "closed":
            self.log.warn("kernel {kernel}: link from {address} lost before its handshake finished: {why}",
                          kernel=self.owner.name, address=self.transport.getPeer(),
                          why=reason.getErrorMessage() if reason is not None else "?")
        if self.conn is not None:
            self.conn.release()
        waiters, self._lost_waiters = self._lost_waiters or [], None
        for d in waiters:
            d.callback(None)
        self._set_ready(Failure(LinkClosed(f"link closed before the handshake finished: "
                                           f"{reason.getErrorMessage() if reason else '?'}")))

    def _admit(self, name: str, incarnation: int) -> Any:
        """
        The owner's admission rule.
        """
        return self.owner.admit(self, name, incarnation)

    def peer_certificate(self) -> Any:
        """
        The peer's TLS certificate (a pyOpenSSL X509), or ``None``.
        """
        getter = getattr(self.transport, "getPeerCertificate", None)
        return getter() if getter is not None else None

    # -- readiness -----------------------------------------------------------

    def when_ready(self) -> Deferred:
        """
        :returns: a Deferred that fires with this protocol once the
            handshake is done, or fails with :obj:`LinkClosed` naming the reason.
        """
        if self._ready_result is not None:
            return succeed(self) if self._ready_result is self else fail(self._ready_result)
        d: Deferred = Deferred()
        self._ready_waiters.append(d)
        return d

    def when_lost(self) -> Deferred:
        """
        :returns: a Deferred that fires (with :obj:`None`) once the connection
            is gone.
        """
        if self._lost_waiters is None:
            return succeed(None)
        d: Deferred = Deferred()
        self._lost_waiters.append(d)
        return d

    def _set_ready(self, result: Any) -> None:
        if self._ready_result is not None:
            return
        self._ready_result = result
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            if result is self:
                d.callback(self)
            else:
                d.errback(result)

    # -- sending -------------------------------------------------------------

    def send_body(self, body: bytes) -> None:
        """
        Queue an encoded message body.
        """
        if self.conn is not None and not self._closing:
            self.conn.send_body(body)
            self._check_backlog()

    def send_message(self, message: list) -> None:
        """
        Queue a message; it goes out with the others of this reactor turn.
        """
        if self.conn is not None and not self._closing:
            self.conn.send_message(message)
            self._check_backlog()

    def _check_backlog(self) -> None:
        """
        Close the link ("slow-reader") once the output queued for it passes
        ``max_backlog``, on every write and whether or not the transport
        paused us; the backlog is dropped, only the BYE goes out.
        """
        conn = self.conn
        if conn is None or self._closing or conn.state == "closed":
            return
        pending = conn.pending_output
        if pending > self.options.max_backlog:
            conn.take_output()  # dropped: the peer is not reading it
            conn.close("slow-reader", f"peer did not read {pending} bytes of backlog")

    def close(self, code: str, message: str) -> None:
        """
        Close the link, telling the peer why.
        """
        if self.conn is not None:
            self.conn.close(code, message)

    def _want_flush(self) -> None:
        self.owner.mark_dirty(self)

    def flush(self) -> None:
        """
        Write the waiting output, unless the peer is not reading.
        """
        conn = self.conn
        if conn is None:
            return
        if self._paused and not self._closing:
            self._check_backlog()
            return  # keep it queued until the transport resumes us
        data = conn.take_output()
        if data:
            self.transport.write(data)

    # -- IPushProducer: the transport tells us when the peer is slow ----------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self.owner.mark_dirty(self)

    def stopProducing(self) -> None:
        self._paused = False

    # -- Connection callbacks ------------------------------------------------

    def _up(self, peer: PeerInfo) -> None:
        self.peer = peer
        self._settle_guess(False)
        self.since = self.reactor.seconds()
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None
        self.owner.link_up(self)
        keepalive = self.options.keepalive
        if keepalive:
            self._keepalive_call = self.reactor.callLater(keepalive, self._keepalive, 0)
        if not keepalive or keepalive > FIRST_PING:
            self._first_ping_call = self.reactor.callLater(FIRST_PING, self._first_ping)
        self._set_ready(self)

    def _message(self, message: list) -> None:
        self.owner.message_received(self, message)

    def _closed(self, code: str, message: str, by_peer: bool) -> None:
        who = self.peer.name if self.peer is not None else self.transport.getPeer()
        if self._quiet:
            pass  # logged once by _take_guess
        elif by_peer:
            self.log.warn("kernel {kernel}: link to {peer} closed by the peer: {code}: {message}",
                          kernel=self.owner.name, peer=who, code=code, message=message)
        else:
            self.log.warn("kernel {kernel}: closing link to {peer}: {code}: {message}",
                          kernel=self.owner.name, peer=who, code=code, message=message)
        self.closed_reason = LinkClosed(f"{code}: {message}", code)
        self._set_ready(Failure(self.closed_reason))
        self._paused = False  # the BYE goes out whatever the backlog
        self.flush()
        self._closing = True
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        if code == "slow-reader" and not by_peer:
            # A peer that does not read would keep the socket open forever.
            self._abort_call = self.reactor.callLater(1.0, self.transport.abortConnection)

    def _handshake_late(self) -> None:
        self._handshake_timer = None
        if self.conn is not None:
            self.conn.close("timeout", f"handshake not finished within {self.options.handshake_timeout} s")

    def _keepalive(self, silent: int) -> None:
        self._keepalive_call = None
        silent = 0 if self._heard else silent + 1
        self._heard = False
        if silent >= 3:
            if self.conn is not None:
                self.conn.close("timeout", f"peer silent for {silent * self.options.keepalive} s")
            return
        self._ping()
        self._keepalive_call = self.reactor.callLater(self.options.keepalive, self._keepalive, silent)

    def _first_ping(self) -> None:
        self._first_ping_call = None
        self._ping()

    # -- round trips ---------------------------------------------------------

    def _ping(self) -> None:
        """
        Send a PING whose token is a fresh random 32-bit integer, and keep
        when it went, to time its PONG.
        """
        token = int.from_bytes(os.urandom(4), "big")
        pings = self._pings
        pings.pop(token, None)
        pings[token] = self.reactor.seconds()
        while len(pings) > MAX_PINGS:
            del pings[next(iter(pings))]
        self.send_message([PING, token])

    def _pong(self, message: list) -> None:
        """
        A PONG arrived: if it echoes a token we wait for, tell the owner the
        round trip.  Any other token (not ours, already answered, not an
        integer) is ignored.  The peer answers PINGs in order, so the PINGs
        sent before this one will not be answered any more.
        """
        token = message[1] if len(message) > 1 else None
        pings = self._pings
        if type(token) is not int or token not in pings:
            return
        sent = pings[token]
        for older in list(pings):
            del pings[older]
            if older == token:
                break
        seconds = self.reactor.seconds() - sent
        if self.peer is not None and not self._closing and seconds >= 0:
            self.owner.link_rtt(self, seconds)


class LinkFactory(Factory):
    """
    Builds :obj:`LinkProtocol`s for a listener or a client connection.

    :param listening: for a listener: with a password, failed password
        handshakes are limited per source address (:obj:`GuessLimiter`,
        ``auth_burst`` and ``auth_interval`` of the options).
    """

    noisy = False

    def __init__(self, owner: ILinkOwner, options: Optional[LinkOptions] = None,
                 reactor: Optional[IReactorTime] = None, listening: bool = False) -> None:
        self.owner = owner
        self.options = options = options or LinkOptions()
        self.reactor = reactor or owner.reactor
        self.guesses: Optional[GuessLimiter] = None
        if listening and options.password is not None:
            self.guesses = GuessLimiter(options.auth_burst, options.auth_interval)

    def buildProtocol(self, addr: Optional[IAddress]) -> LinkProtocol:
        protocol = LinkProtocol(self.owner, self.options, self.reactor)
        protocol.factory = self
        return protocol
