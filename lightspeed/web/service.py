# -*- test-case-name: lightspeed.test.test_web -*-
"""
The status page as a child service of a kernel: listens on one endpoint
with :obj:`twisted.web`, watches the kernel's monitor while it runs, and
closes every connection of its own when it stops.
"""

from __future__ import annotations

import ipaddress
from typing import Any, List, Optional, cast

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.protocols.policies import WrappingFactory
from twisted.web.server import Site

from lightspeed.service import ListenService, server_endpoint, tls_server_factory
from lightspeed.web.events import MAX_CLIENTS, EventStream, Hub
from lightspeed.web.metrics import registry_for
from lightspeed.web.resources import StatusRoot
from lightspeed.web.view import MeshView, RemoteStats, Undeliverables

__all__ = ["WebService", "web_endpoint", "is_loopback", "check_guarded", "NotLoopback"]

_TOPOLOGY = ["link_up", "link_down", "kernel_up", "kernel_down"]


class NotLoopback(ValueError):
    """
    The page would be reachable from other hosts without any credential.
    """


def web_endpoint(description: str) -> str:
    """
    The endpoint string to serve on: a bare port number is a TCP port on
    127.0.0.1, and a ``tcp:``/``ssl:`` endpoint without ``interface=``
    listens on 127.0.0.1 (``tcp6:`` on ``::1``) rather than on every
    interface.
    """
    if description.isdigit():
        return f"tcp:{description}:interface=127.0.0.1"
    kind = description.split(":", 1)[0]
    if kind in ("tcp", "ssl", "tcp6") and "interface=" not in description:
        return description + (r":interface=\:\:1" if kind == "tcp6" else ":interface=127.0.0.1")
    return description


def is_loopback(endpoint: Any) -> bool:
    """
    Whether a server endpoint object accepts connections from this host
    only: TCP on a loopback address, or a UNIX socket.
    """
    if type(endpoint).__name__ == "UNIXServerEndpoint":
        return True
    interface = getattr(endpoint, "_interface", None)
    if not isinstance(interface, str):
        return False
    try:
        return ipaddress.ip_address(interface.strip("[]")).is_loopback
    except ValueError:
        return interface == "localhost"


def check_guarded(description: Any, endpoint: Any, token: bool, certificates: bool) -> None:
    """
    Refuse to serve on an endpoint other hosts can reach unless a token or
    client certificates guard it.

    :raises NotLoopback: if so.
    """
    if not (token or certificates or is_loopback(endpoint)):
        raise NotLoopback(f"refusing to serve the status page on {description!r}, which is not a loopback "
                          "interface, without a token (--web-token or --web-token-file) or TLS client "
                          "certificates (--web-tls with --tls-ca)")


class _Connections(WrappingFactory):
    """
    The site's open connections, to close them all when the page stops.
    """

    def __init__(self, site: Site) -> None:
        super().__init__(site)
        self._waiters: List[Deferred] = []

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        if not self.protocols:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def close_all(self) -> Deferred:
        """
        :returns: a Deferred that fires once every connection is closed.
        """
        if not self.protocols:
            return succeed(None)
        d: Deferred = Deferred()
        self._waiters.append(d)
        for protocol in list(self.protocols):
            protocol.transport.abortConnection()  # event streams never end by themselves
        return d


class WebService(MultiService):
    """
    The status page of ``kernel`` on ``endpoint``.

    :param kernel: the kernel to show.
    :param endpoint: a server endpoint string (see :func:`web_endpoint`) or object.
    :param token: demand this token (see :mod:`lightspeed.web.resources`).
    :param tls: a :class:`~lightspeed.tls.TLSConfig` to serve over HTTPS;
        with a CA, every client must present a certificate it signed, and
        that certificate is the credential.
    :param interval: seconds between pictures pushed to open pages.
    :param max_clients: open ``/events`` streams allowed at once.
    :raises NotLoopback: if the endpoint is reachable from other hosts and
        neither a token nor client certificates guard it.
    """

    def __init__(self, kernel: Any, endpoint: Any, *, token: Optional[str] = None, tls: Any = None,
                 interval: float = 1.0, max_clients: int = MAX_CLIENTS) -> None:
        super().__init__()
        self.kernel = kernel
        clock = kernel.reactor
        server = server_endpoint(clock, web_endpoint(endpoint) if isinstance(endpoint, str) else endpoint)
        check_guarded(endpoint, server, bool(token), tls is not None and tls.ca is not None)
        self.undeliverables = Undeliverables()
        self.remote = RemoteStats(kernel, clock)
        self.view = MeshView(kernel, clock, self.undeliverables, self.remote)
        self.hub = Hub(self.view, clock, interval, max_clients)
        self.registry = registry_for(kernel, {
            "web_streams": ("Open status-page event streams.", lambda: len(self.hub.clients)),
            "sessions": ("Sessions in the kernel.", lambda: len(kernel.sessions)),
        })
        self.root = StatusRoot(kernel, EventStream(self.hub), self.registry, token)
        self.site = Site(self.root)
        self.connections = _Connections(self.site)
        factory: Any = self.connections if tls is None else tls_server_factory(tls, cast(Any, self.connections))
        self.listener = ListenService(server, factory, kernel.name)
        self.listener.setServiceParent(self)

    def whenListening(self) -> Deferred:
        """
        :returns: a Deferred that fires with the listening port.
        """
        return self.listener.whenListening()

    def startService(self) -> None:
        self.undeliverables.watch(self.kernel)
        self.kernel.monitor.add(_TOPOLOGY, self.hub.changed)
        self.hub.start()
        super().startService()

    def stopService(self) -> Deferred:
        self.undeliverables.unwatch(self.kernel)
        self.kernel.monitor.remove(_TOPOLOGY, self.hub.changed)
        self.hub.stop()
        self.remote.stop()
        stopped = super().stopService()
        closed = self.connections.close_all()
        return DeferredList([d for d in (stopped, closed) if d is not None]).addCallback(lambda _: None)
