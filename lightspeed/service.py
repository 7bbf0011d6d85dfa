# -*- test-case-name: lightspeed.test.test_network -*-
"""
Listening and connecting, as services of the C{twisted.application} tree.

L{Kernel.listen} and L{Kernel.connect} use these; both return a started
service that a caller can wait on (C{whenListening()} /
C{whenConnected()}) and stop (C{stopService()}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.interfaces import IListeningPort, IStreamClientEndpoint, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from lightspeed.errors import LinkClosed
from lightspeed.wire.protocol import LinkFactory, LinkOptions, LinkProtocol

if TYPE_CHECKING:  # pragma: no cover
    from lightspeed.network import Network

__all__ = ["ListenService", "ConnectService", "connect_service", "server_endpoint", "client_endpoint", "DEFAULT_PORT"]

#: The seed's default port.
DEFAULT_PORT = 9876


def server_endpoint(reactor: Any, endpoint: Any) -> IStreamServerEndpoint:
    """
    An endpoint string (C{'tcp:9876'}, C{'tcp:9876:interface=127.0.0.1'},
    C{'unix:/path'}, C{'ssl:...'}) or an endpoint object.
    """
    if isinstance(endpoint, str):
        return serverFromString(reactor, endpoint)
    return endpoint


def client_endpoint(reactor: Any, endpoint: Any) -> IStreamClientEndpoint:
    """
    An endpoint string (C{'tcp:host=...:port=...:bindAddress=...'},
    C{'unix:path=...'}, C{'tls:...'}) or an endpoint object.
    """
    if isinstance(endpoint, str):
        return clientFromString(reactor, endpoint)
    return endpoint


class ListenService(Service):
    """
    Listens on one endpoint while running.
    """

    log = Logger()

    def __init__(self, endpoint: IStreamServerEndpoint, factory: LinkFactory) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.port: Optional[IListeningPort] = None
        self._error: Optional[Failure] = None
        self._waiters: List[Deferred] = []
        self._listen: Optional[Deferred] = None

    def startService(self) -> None:
        super().startService()
        self._listen = self.endpoint.listen(self.factory)
        self._listen.addCallbacks(self._listening, self._failed)

    def _listening(self, port: IListeningPort) -> None:
        self._listen = None
        self.port = port
        if not self.running:  # stopped while the listen was on its way
            port.stopListening()
        for d in self._take_waiters():
            d.callback(port)

    def _failed(self, failure: Failure) -> None:
        self._listen = None
        self._error = failure
        self.log.failure("kernel {kernel} cannot listen", failure, kernel=self.factory.network.name)
        for d in self._take_waiters():
            d.errback(failure)

    def _take_waiters(self) -> List[Deferred]:
        waiters, self._waiters = self._waiters, []
        return waiters

    def whenListening(self) -> Deferred:
        """
        :returns: a Deferred that fires with the L{IListeningPort}, or fails
            if listening failed.
        """
        if self.port is not None:
            return succeed(self.port)
        if self._error is not None:
            return fail(self._error)
        d: Deferred = Deferred()
        self._waiters.append(d)
        return d

    def stopService(self) -> Deferred:
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return succeed(None)


class ConnectService(MultiService):
    """
    Keeps one link to an endpoint up, reconnecting with Twisted's
    exponential back-off (from 0.5 s, growing 1.5 times per failure with up
    to 1 s of jitter, at most 30 s) whenever it drops, cannot connect, or
    has its handshake refused.  A C{ClientService} does the connecting; this
    adds waiting for the handshake.
    """

    def __init__(self, network: "Network", endpoint: IStreamClientEndpoint, options: LinkOptions,
                 reconnect: bool = True) -> None:
        super().__init__()
        self._base_policy = backoffPolicy(initialDelay=0.5, maxDelay=30.0) if reconnect else _once_policy
        # Handshakes refused in a row: a connection that is made but refused
        # still backs off (Twisted counts it as a success).
        self.refusals = 0
        factory = _ReportingFactory(network, options, self)
        self.client = ClientService(endpoint, factory, retryPolicy=self._policy, clock=network.kernel.reactor)
        self.client.setServiceParent(self)

    def _policy(self, attempt: int) -> float:
        return self._base_policy(attempt + self.refusals)

    def _link_result(self, result: Any) -> None:
        self.refusals = 0 if isinstance(result, LinkProtocol) else self.refusals + 1

    def whenConnected(self, failAfterFailures: Optional[int] = None) -> Deferred:
        """
        :param failAfterFailures: fail after this many failed attempts
            (refused connections and failed handshakes both count); L{None}
            waits for ever.
        :returns: a Deferred that fires with the L{LinkProtocol} once a link
            is up, or fails with the last attempt's error.
        """
        return Deferred.fromCoroutine(self._when_connected(failAfterFailures))

    async def _when_connected(self, fail_after: Optional[int]) -> LinkProtocol:
        failures = 0
        while True:
            remaining = None if fail_after is None else fail_after - failures
            protocol = await self.client.whenConnected(failAfterFailures=remaining)
            try:
                return await protocol.when_ready()
            except LinkClosed:
                failures += 1
                if fail_after is not None and failures >= fail_after:
                    raise
                await protocol.when_lost()


class _ReportingFactory(LinkFactory):
    """
    A link factory that tells its L{ConnectService} how each handshake
    ended.
    """

    def __init__(self, network: "Network", options: LinkOptions, owner: ConnectService) -> None:
        super().__init__(network, options)
        self.owner = owner

    def buildProtocol(self, addr: Any) -> LinkProtocol:
        protocol = super().buildProtocol(addr)
        protocol.when_ready().addBoth(self._report)
        return protocol

    def _report(self, result: Any) -> None:
        self.owner._link_result(result)


def connect_service(network: "Network", endpoint: IStreamClientEndpoint, options: LinkOptions,
                    reconnect: bool = True) -> ConnectService:
    """
    A L{ConnectService} for C{endpoint}.
    """
    return ConnectService(network, endpoint, options, reconnect)


def _once_policy(attempt: int) -> float:
    return 3600.0 * 24 * 365


def tls_server_factory(tls: Any, factory: LinkFactory) -> Any:
    """
    Wrap a link factory so that its connections speak TLS first.
    """
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from lightspeed.tls import server_options

    return TLSMemoryBIOFactory(server_options(tls), False, factory)


def tls_client_endpoint(tls: Any, description: Any, endpoint: IStreamClientEndpoint) -> IStreamClientEndpoint:
    """
    Wrap a client endpoint in TLS, checking the server's name: C{tls.name},
    else the host of the endpoint.
    """
    from twisted.internet.endpoints import wrapClientTLS

    from lightspeed.tls import client_options

    host = tls.name or _endpoint_host(description, endpoint)
    if not host:
        raise ValueError("TLS needs the server's name: set TLSConfig.name")
    return wrapClientTLS(client_options(tls, host), endpoint)


def _endpoint_host(description: Any, endpoint: Any) -> str:
    if isinstance(description, str):
        parts = description.split(":")
        for part in parts[1:]:
            if part.startswith("host="):
                return part[len("host="):]
        if parts[0] in ("tcp", "tcp6") and len(parts) > 2 and "=" not in parts[1]:
            return parts[1]  # the positional form tcp:HOST:PORT
        return ""
    return str(getattr(endpoint, "_hostText", None) or getattr(endpoint, "_host", "") or "")
