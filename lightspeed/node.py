# -*- test-case-name: lightspeed.test.test_network -*-
"""
The service half of a kernel: a :class:`~twisted.application.service.MultiService`
that joins the network, listens and connects.

The services :meth:`Node.listen` and :meth:`Node.connect` return are its
children, so an application that does ``kernel.setServiceParent(application)``
sees every listener and connector in its tree; ``twistd lightspeed`` builds
exactly that tree.  A kernel used on its own, outside any service tree,
starts with its first listener or connector.
"""

from __future__ import annotations

from typing import Any, Optional, cast

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed

from lightspeed.errors import BadSpecifier
from lightspeed.interfaces import IKernelPort
from lightspeed.message import TRACE
from lightspeed.specifier import check_name
from lightspeed.stats import kernel_stats
from lightspeed.trace import TRACE_TIMEOUT, Tracer

__all__ = ["Node"]


class Node(MultiService):
    """
    A kernel's place in the service tree.  :class:`~lightspeed.kernel.Kernel`
    is one; it sets ``name``, ``reactor``, ``local`` and ``network``.
    """

    name: str
    reactor: Any
    local: Any
    network: Any
    control_at: Any
    _caller_files = "relative"

    @property
    def caller_files(self) -> str:
        """
        What messages to other kernels carry as the sender's source file:
        ``"relative"`` (default), ``"full"``, ``"name"`` or ``"none"``
        (see :mod:`lightspeed.net.callerfiles`).
        """
        return self._caller_files

    @caller_files.setter
    def caller_files(self, policy: str) -> None:
        from lightspeed.net.callerfiles import check_policy

        self._caller_files = check_policy(policy)
        if self.network is not None:
            self.network.caller_files.policy = policy

    def network_start(self, incarnation: Optional[int] = None) -> Any:
        """
        Join the network layer (done for you by :meth:`listen` and :meth:`connect`).

        :returns: the kernel's :class:`~lightspeed.network.Network`.
        """
        if self.network is None:
            from lightspeed.network import Network

            # Every Node is a Kernel, which provides IKernelPort.
            self.network = self.local.remote = Network(cast(IKernelPort, self), incarnation)
            self.network.extensions[TRACE] = Tracer(self.network)
        return self.network

    def sign_adverts(self, tls: Any) -> None:
        """
        Sign this kernel's routing adverts with the key of its node
        certificate and from now on believe another kernel's advert only if
        the CA issued the certificate that signed it and that certificate
        names that kernel (see ``docs/tls.rst``).  Every kernel of the mesh
        must do the same.

        :param tls: a :class:`~lightspeed.tls.TLSConfig` with a CA, or an
            :class:`~lightspeed.adverts.AdvertSigner`.
        :raises ValueError: if there is no CA or the certificate cannot sign.
        """
        from lightspeed.adverts import AdvertSigner

        signer = tls if isinstance(tls, AdvertSigner) else AdvertSigner.from_tls(tls)
        self.network_start().flooding.sign(signer)

    def listen(self, endpoint: Any = "tcp:9876:interface=127.0.0.1", *, tls: Any = None,
               sign_adverts: Optional[bool] = None, **options: Any) -> Any:
        """
        Accept links from other kernels (the seed's Server).

        :param endpoint: a server endpoint string (``'tcp:9876'``,
            ``'tcp:0:interface=127.0.0.1'``, ``'unix:/path'``) or object.
        :param tls: a :class:`~lightspeed.tls.TLSConfig` (mutual TLS when it
            names a CA).
        :param sign_adverts: whether to :meth:`sign_adverts` with ``tls``;
            the default does when ``tls`` has a CA and binds names, as
            ``twistd lightspeed --tls-ca`` does.
        :param options: see :class:`~lightspeed.wire.protocol.LinkOptions`.
        :returns: a :class:`~lightspeed.service.ListenService`, a child of
            this kernel (started with it); wait on ``whenListening()``.
        :raises ValueError: if adverts are to be signed and the certificate
            cannot sign them (it is not from the CA).
        """
        from lightspeed.service import listen_service

        self._sign_with(tls, sign_adverts)
        return self._adopt(listen_service(self.network_start(), endpoint, tls, options))

    def connect(self, endpoint: Any, *, reconnect: bool = True, tls: Any = None,
                sign_adverts: Optional[bool] = None, **options: Any) -> Any:
        """
        Keep a link to another kernel (the seed's Client), reconnecting with
        back-off when it drops or its handshake is refused.

        :param endpoint: a client endpoint string
            (``'tcp:host=127.0.0.1:port=9876'``, ``'unix:path=/path'``) or object.
        :param reconnect: whether to reconnect after the link drops.
        :param tls: a :class:`~lightspeed.tls.TLSConfig`: the server's
            certificate must chain to its CA and name ``tls.name`` (default:
            the host connected to).
        :param sign_adverts: as for :meth:`listen`.
        :param options: as for :meth:`listen`.
        :returns: a :class:`~lightspeed.service.ConnectService`, a child of
            this kernel; ``whenConnected()`` fires with the link once its
            handshake is done.
        :raises ValueError: as for :meth:`listen`.
        """
        from lightspeed.service import connect_service

        self._sign_with(tls, sign_adverts)
        return self._adopt(connect_service(self.network_start(), endpoint, tls, options, reconnect))

    def _sign_with(self, tls: Any, sign_adverts: Optional[bool]) -> None:
        # A mesh whose kernels hold CA-issued certificates signs its adverts
        # (a kernel that signs refuses unsigned ones): without this, a link
        # came up and was then closed with bad-advert.
        if sign_adverts is None:
            sign_adverts = tls is not None and tls.ca is not None and tls.bind_names
        if sign_adverts and (self.network is None or self.network.signer is None):
            self.sign_adverts(tls)

    def _adopt(self, service: Any) -> Any:
        service.setServiceParent(self)
        if not self.running and self.parent is None:
            self.startService()  # a kernel used on its own starts with its first link
        return service

    def startService(self) -> None:
        if not self.running:
            super().startService()

    def stopService(self) -> Deferred:
        """
        Close every link with a BYE and stop the listeners and connectors.
        """
        if self.network is not None:
            self.network.close_links()
        return super().stopService()

    def shutdown(self) -> Deferred:
        """
        Leave the network: stop listening and reconnecting, close every link
        with a BYE (the seed's ``shutdown`` command).  The listeners and
        connectors leave the service tree; the kernel may listen again.

        :returns: a Deferred that fires when all is stopped.
        """
        if self.network is None:
            return succeed(None)
        if not self.running:
            self.network.close_links()
            stopped: Deferred = succeed(None)
        else:
            stopped = maybeDeferred(self.stopService)
        for service in list(self):
            service.disownServiceParent()
        return stopped

    # -- seeing the network (docs/observability.rst) --------------------------------

    def stats(self) -> dict:
        """
        :returns: this kernel's counters and those of its links (plain
            values; see :func:`lightspeed.stats.kernel_stats`).
        """
        return kernel_stats(self)  # type: ignore[arg-type]

    def stats_of(self, kernel: str, timeout: Optional[float] = 60.0) -> Deferred:
        """
        Another kernel's :meth:`stats` (CONTROL operation ``stats``), or this
        one's.

        :returns: a Deferred of the dict; it fails with :class:`Refused` if
            that kernel's ``introspection`` hook refuses.
        """
        if kernel == self.name:
            return succeed(self.stats())
        return self.control_at(kernel, "stats", "*", (), timeout)

    def trace(self, kernel: str, timeout: Optional[float] = TRACE_TIMEOUT) -> Deferred:
        """
        The route to ``kernel`` as a trace takes it: see :meth:`lightspeed.trace.Tracer.start`.

        :returns: a Deferred of ``[{"kernel", "time", "cost"}, ...]``, this
            kernel first (cost ``None``), ``kernel`` last.
        """
        return self.network_start().extensions[TRACE].start(kernel, timeout)

    def when_reachable(self, *kernels: str, timeout: Optional[float] = None) -> Deferred:
        """
        Wait until every one of ``kernels`` is reachable (the convergence
        signal): the Deferred fires with ``None``, at once if they are; it
        fails with :class:`~lightspeed.errors.RequestTimeout` after
        ``timeout`` seconds, with :class:`BadSpecifier` for a bad name.
        """
        try:
            names = frozenset(check_name(name) for name in kernels) - {self.name}
        except BadSpecifier as e:
            return fail(e)
        if not names:
            return succeed(None)
        return self.network_start().membership.when_reachable(names, timeout)

    # -- flow control ------------------------------------------------------------

    def when_ready(self, kernel: str) -> Deferred:
        """
        Wait until a message to ``kernel`` would leave at once: its window
        of unacknowledged messages has room and nothing waits before it.

        :returns: a Deferred that fires with ``None`` (at once if so now).
        """
        if self.network is None:
            return succeed(None)
        return self.network.delivery.ready(kernel)

    def backlog(self, kernel: str) -> int:
        """
        :returns: how many messages to ``kernel`` are not acknowledged yet,
            sent or waiting for the window.
        """
        return 0 if self.network is None else self.network.delivery.pending(kernel)

    def register_producer(self, kernel: str, producer: Any) -> None:
        """
        Pause ``producer`` (an :class:`~twisted.internet.interfaces.IPushProducer`)
        whenever messages to ``kernel`` wait for its window, and resume it
        once they no longer do, as a transport does for a Protocol.
        """
        self.network_start().delivery.add_producer(kernel, producer)

    def unregister_producer(self, kernel: str, producer: Any) -> None:
        """
        Stop pausing and resuming ``producer`` for ``kernel``.
        """
        if self.network is not None:
            self.network.delivery.remove_producer(kernel, producer)
