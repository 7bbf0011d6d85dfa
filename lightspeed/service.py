# -*- test-case-name: lightspeed.test.test_network -*-
"""
Listening and connecting, as services of the ``twisted.application`` tree.

:obj:`Kernel.listen` and :obj:`Kernel.connect` use these; both return a
child service of the kernel (it runs while the kernel runs) that a caller
can wait on (``whenListening()`` / ``whenConnected()``) and stop
(``stopService()``).
"""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamClientEndpoint, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from zope.interface import implementer

from lightspeed.interfaces import ILinkOwner
from lightspeed.wire.protocol import LinkFactory, LinkOptions

__all__ = ["ListenService", "ConnectService", "listen_service", "connect_service", "server_endpoint",
           "client_endpoint", "DEFAULT_PORT"]

#: The seed's default port.
DEFAULT_PORT = 9876


def server_endpoint(reactor: Any, endpoint: Any) -> IStreamServerEndpoint:
    """
    An endpoint string (``'tcp:9876'``, ``'tcp:9876:interface=127.0.0.1'``,
    ``'unix:/path'``, ``'ssl:...'``) or an endpoint object.
    """
    if isinstance(endpoint, str):
        return serverFromString(reactor, endpoint)
    return endpoint


def client_endpoint(reactor: Any, endpoint: Any) -> IStreamClientEndpoint:
    """
    An endpoint string (``'tcp:host=...:port=...:bindAddress=...'``,
    ``'unix:path=...'``, ``'tls:...'``) or an endpoint object.
    """
    if isinstance(endpoint, str):
        return clientFromString(reactor, endpoint)
    return endpoint


class ListenService(Service):
    """
    Listens on one endpoint while running.
    """

    log = Logger()

    def __init__(self, endpoint: IStreamServerEndpoint, factory: Any, kernel: str = "?",
                 description: str = "") -> None:
        self.endpoint = endpoint
        self.kernel = kernel
        #: The endpoint as the log shows it (its string form when given one).
        self.description = description or _description(endpoint)
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
        # One line: the reason (address in use, no permission) says it all.
        self.log.error("kernel {kernel} cannot listen on {endpoint}: {why}", kernel=self.kernel,
                       endpoint=self.description, why=failure.getErrorMessage())
        for d in self._take_waiters():
            d.errback(failure)

    def _take_waiters(self) -> List[Deferred]:
        waiters, self._waiters = self._waiters, []
        return waiters

    def whenListening(self) -> Deferred:
        """
        :returns: a Deferred that fires with the :obj:`IListeningPort`, or fails
            if listening failed.
        """
        if self.port is not None:
            return succeed(self.port)
        if self._error is not None:
            return fail(self._error)
        d: Deferred = Deferred()
        self._waiters.append(d)
        return d

    def stopService(self) -> Optional[Deferred]:  # stopListening() may return None
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return succeed(None)


class ConnectService(ClientService):
    """
    Keeps one link to an endpoint up: a :class:`ClientService` whose
    ``prepareConnection`` waits for the lightspeed handshake, so that a
    connection counts as made only once its handshake is done and a
    refused handshake counts as a failed attempt.  It reconnects with
    Twisted's exponential back-off (from 0.5 s, growing 1.5 times per
    failure with up to 1 s of jitter, at most 30 s) whenever the link
    drops, cannot connect, or has its handshake refused.

    ``whenConnected()`` fires with the :class:`LinkProtocol` once its
    handshake is done.

    :ivar failures: failed attempts in a row when the last retry was
        scheduled (a refused handshake counts).
    :ivar delay: the seconds the last retry waited for.
    """

    def __init__(self, owner: ILinkOwner, endpoint: IStreamClientEndpoint, options: LinkOptions,
                 reconnect: bool = True, description: str = "") -> None:
        self._backoff = backoffPolicy(initialDelay=0.5, maxDelay=30.0) if reconnect else _once_policy
        self.failures = 0
        self.delay = 0.0
        super().__init__(_HandshakeEndpoint(endpoint, description), LinkFactory(owner, options), retryPolicy=self._policy,
                         clock=owner.reactor, prepareConnection=_handshake)

    def _policy(self, failures: int) -> float:
        self.failures = failures
        self.delay = self._backoff(failures)
        return self.delay


def _handshake(protocol: Any) -> Deferred:
    return protocol.when_ready()


@implementer(IStreamClientEndpoint)
class _HandshakeEndpoint:
    """
    An endpoint that tells :class:`ClientService` of a lost connection only
    if its handshake had finished.

    ClientService (Twisted 26.10) has no transition for the loss of a
    connection that ``prepareConnection`` rejected or is still preparing:
    it raises ``NoTransition`` into the transport.  A link whose handshake
    never finished is counted as a failed attempt when its ``when_ready()``
    fails (at the latest while the connection is lost), so its loss need
    not be reported again.
    """

    def __init__(self, endpoint: IStreamClientEndpoint, description: str = "") -> None:
        self._endpoint = endpoint
        self._description = description or _description(endpoint)

    def __repr__(self) -> str:  # ClientService logs "Scheduling retry ... to connect {endpoint}"
        return self._description

    def connect(self, factory: Any) -> Deferred:
        return self._endpoint.connect(_HandshakeFactory(factory))


@implementer(IProtocolFactory)  # the wrapped factory's, through __getattr__
class _HandshakeFactory:
    def __init__(self, factory: Any) -> None:
        self._factory = factory

    def buildProtocol(self, addr: Any) -> Any:
        proxy = self._factory.buildProtocol(addr)
        if proxy is not None:
            link, notify = proxy._protocol, proxy._lostNotification

            def lost(reason: Failure) -> None:
                if link.peer is not None:
                    notify(reason)

            proxy._lostNotification = lost
        return proxy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory, name)


def listen_service(owner: ILinkOwner, endpoint: Any, tls: Any, options: dict) -> ListenService:
    """
    A :class:`ListenService` for ``endpoint`` (a string or an endpoint),
    with TLS when ``tls`` is a :class:`~lightspeed.tls.TLSConfig`.
    """
    if tls is not None and tls.ca is not None and tls.bind_names:
        options.setdefault("tls_names", True)
    factory: Any = LinkFactory(owner, LinkOptions(**options), listening=True)
    if tls is not None:
        factory = tls_server_factory(tls, factory)
    return ListenService(server_endpoint(owner.reactor, endpoint), factory, owner.name, _description(endpoint))


def connect_service(owner: ILinkOwner, endpoint: Any, tls: Any, options: dict,
                    reconnect: bool = True) -> ConnectService:
    """
    A :class:`ConnectService` for ``endpoint`` (a string or an endpoint),
    with TLS when ``tls`` is a :class:`~lightspeed.tls.TLSConfig`.
    """
    if tls is not None and tls.ca is not None and tls.bind_names:
        options.setdefault("tls_names", True)
    client = client_endpoint(owner.reactor, endpoint)
    if tls is not None:
        client = tls_client_endpoint(tls, endpoint, client)
    return ConnectService(owner, client, LinkOptions(**options), reconnect, _description(endpoint))


def _description(endpoint: Any) -> str:
    """
    An endpoint as log lines show it: its string form, or its class's name
    (an endpoint object's repr is an address in memory).
    """
    return endpoint if isinstance(endpoint, str) else type(endpoint).__name__


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
    Wrap a client endpoint in TLS, checking the server's name: ``tls.name``,
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
