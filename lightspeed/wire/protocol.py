# -*- test-case-name: lightspeed.test.test_protocol -*-
"""
The thin Twisted side of a link: bytes between a transport and a
:obj:`Connection`, keepalive and handshake timers, and write coalescing (all
frames queued in one reactor turn go out in one write).
"""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from twisted.internet import tcp
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
from lightspeed.wire.handshake import GuessLimiter
from lightspeed.wire.options import LinkOptions
from lightspeed.wire import preauth, throttle

__all__ = ["LinkProtocol", "LinkFactory", "LinkOptions", "FIRST_PING", "MAX_PINGS", "address_text", "CLEAN_CODES", "write_now"]

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


def write_now(transport: Any, data: bytes) -> None:
    """
    Write ``data`` to ``transport``: on a plain TCP connection with nothing
    buffered, by one ``send`` at once; what it does not take, and
    everything on any other transport, goes through ``transport.write``,
    in order.  (Twisted's write waits for the next reactor turn's writable
    event: an answer then costs the serving kernel a second turn, about
    53,000 instructions a request.)
    """
    # dataBuffer and _tempDataBuffer are tcp.Connection's own buffers, and
    # _aborting is set by abortConnection (connected stays true until the
    # next turn): read with a default, so that a Twisted without them just
    # takes write(), which drops output after an abort.
    if isinstance(transport, tcp.Connection) and not transport.TLS and transport.connected \
            and not transport.disconnecting and not getattr(transport, "_aborting", True) \
            and not getattr(transport, "dataBuffer", True) and not getattr(transport, "_tempDataBuffer", True):
        try:
            sent = transport.socket.send(data)
        except OSError:  # it would block, or the connection failed: Twisted's write finds out
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


@implementer(IPushProducer)
class LinkProtocol(Protocol):
    """
    One link to a neighbour kernel.

    :ivar peer: the neighbour, once the handshake is done.
    :ivar throttle: its message rate limit once up (a ``ReadThrottle``), if any.
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
        self._gate: Optional[preauth.PreauthGate] = None  # a listener's, until our handshake is done
        self._received = 0  # messages handed on since the rate limit counted them
        self.throttle: Optional[throttle.ReadThrottle] = None

    # -- Twisted -------------------------------------------------------------

    def connectionMade(self) -> None:
        accept = self.options.accept
        if accept is not None and not accept(self.transport.getHost(), self.transport.getPeer()):
            self.log.warn("connection from {peer} refused by the accept hook",
                          peer=address_text(self.transport.getPeer()))
            self._closing = True
            self.transport.abortConnection()
            return
        self._gate = getattr(self.factory, "gate", None)  # a listener's PreauthGate
        if self._gate is not None and not self._gate.join(self):
            return
        config = LinkConfig(self.owner.name, self.owner.incarnation, self.options.compression,
                            self.options.password, self.options.max_frame, getattr(self.owner, "hidden", False))
        self.conn = Connection(config, self._admit, self._up, self._message, self._closed,
                               partial(self.owner.mark_dirty, self), on_pong=self._pong, on_routed=self._routed)
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
            if self._gate is not None:
                self._gate.update(self, self.conn.buffered_input)
            # Handle what arrived and write the answers in this same turn.
            self.owner.after_read(self)
            if self._received and self.throttle is not None:
                self.throttle.charge(self._received)
                self._received = 0

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
        if self.throttle is not None:
            self.throttle.stop()
        for name in ("_handshake_timer", "_keepalive_call", "_first_ping_call", "_abort_call"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        if self._gate is not None:
            self._gate.release(self)
        if self.peer is not None:
            self.owner.link_down(self)
        elif self.conn is not None and self.conn.state != "closed" and not self._closing:
            self.log.warn("kernel {kernel}: link from {address} lost before its handshake finished: {why}",
                          kernel=self.owner.name, address=address_text(self.transport.getPeer()),
                          why=reason.getErrorMessage() if reason is not None else "?")
        if self.conn is not None:
            self.conn.release()
        waiters, self._lost_waiters = self._lost_waiters or [], None
        for d in waiters:
            d.callback(None)
        self._set_ready(Failure(LinkClosed(f"link closed before the handshake finished: "
                                           f"{reason.getErrorMessage() if reason else '?'}")))

    def drop(self) -> None:
        """Abort the connection at once, without a BYE (a limit before the handshake)."""
        self._gate = None
        self._closing = True
        self.transport.abortConnection()

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
        conn = self.conn
        if conn is not None and not self._closing and conn.send_body(body) > self.options.max_backlog:
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
            write_now(self.transport, data)

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
        if self._gate is not None:
            self._gate.release(self)
            self._gate = None
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None
        if self.options.message_rate:
            self.throttle = throttle.ReadThrottle(self, self.options.message_rate, self.options.message_burst,
                                                  self.reactor)
        self.owner.link_up(self)
        keepalive = self.options.keepalive
        if keepalive:
            self._keepalive_call = self.reactor.callLater(keepalive, self._keepalive, 0)
        if not keepalive or keepalive > FIRST_PING:
            self._first_ping_call = self.reactor.callLater(FIRST_PING, self._first_ping)
        self._set_ready(self)

    def _message(self, message: list) -> None:
        if self.throttle is not None:
            # A batch (a ROUTED with an eighth item) counts as the payloads it carries.
            self._received += 1 + len(message[7]) if len(message) == 8 and type(message[7]) is list else 1
        self.owner.message_received(self, message)

    def _routed(self, message: list) -> None:
        # The peer's own stream to us, its fields already checked (see Connection's on_routed).
        if self.throttle is not None:
            self._received += 1
        self.owner.routed_received(self, message)

    def _closed(self, code: str, message: str, by_peer: bool) -> None:
        who = self.peer.name if self.peer is not None else address_text(self.transport.getPeer())
        # A kernel shutting down is routine; every other BYE is worth a look.
        emit = self.log.info if code in CLEAN_CODES else self.log.warn
        if self._quiet:
            pass  # logged once by _take_guess
        elif by_peer:
            emit("kernel {kernel}: link to {peer} closed by the peer: {code}: {message}",
                 kernel=self.owner.name, peer=who, code=code, message=message)
        else:
            emit("kernel {kernel}: closing link to {peer}: {code}: {message}",
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


#: BYE codes of a clean shutdown, logged at info rather than warn.
CLEAN_CODES = frozenset({"shutdown"})


def address_text(address: Any) -> str:
    """
    ``host:port`` of an IPv4/IPv6 address, the path of a UNIX one: what a
    log line shows instead of the address object's repr.
    """
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is not None and port is not None:
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    name = getattr(address, "name", None)
    if name is not None:
        return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    return type(address).__name__


class LinkFactory(Factory):
    """
    Builds :obj:`LinkProtocol` instances for a listener or a client connection.

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
        self.gate = preauth.PreauthGate(owner.name, options.max_unauthenticated, options.max_unauthenticated_per_address,
                                        options.max_unauthenticated_bytes) if listening else None

    def buildProtocol(self, addr: Optional[IAddress]) -> LinkProtocol:
        protocol = LinkProtocol(self.owner, self.options, self.reactor)
        protocol.factory = self
        return protocol
