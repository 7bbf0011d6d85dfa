# -*- test-case-name: lightspeed.test.test_tap -*-
"""
What ``twistd lightspeed`` runs: :obj:`Options` and :obj:`makeService`.

    twistd -n lightspeed --kernel otherbox --listen tcp:9876:interface=127.0.0.1 \\
        --connect tcp:host=127.0.0.1:port=9877 --app lightspeed.examples.pingpong:server
"""

from __future__ import annotations

import atexit
import importlib
import os
import re
import sys
from typing import Any, Callable, Dict, List, Optional, cast

from twisted.application.service import MultiService, Service
from twisted.logger import FilteringLogObserver, ILogFilterPredicate, Logger, PredicateResult, globalLogPublisher
from twisted.python import usage

from lightspeed.version import __version__
from lightspeed.kernel import Kernel
from lightspeed.net.callerfiles import check_policy
from lightspeed.specifier import check_name
from lightspeed.wire.protocol import address_text

DEFAULT_LISTEN = "tcp:9876:interface=127.0.0.1"


class Options(usage.Options):
    """
    Command-line options of ``twistd lightspeed``.
    """

    synopsis = "[options]"
    longdesc = ("Start a lightspeed kernel. Without --listen it listens on "
                f"{DEFAULT_LISTEN}; give --listen none to accept no links.")
    optParameters = [
        ["kernel", "k", None, "Kernel name, unique in the network (default: host-pid-random)."],
        ["password", None, None, "Shared password for every link (SPAKE2: no offline guessing)."],
        ["password-file", None, None, "Read the shared password from this file."],
        ["keepalive", None, "15", "Seconds between keepalive pings (0: off)."],
        ["tls-cert", None, None, "This node's TLS certificate (PEM); with --tls-key, every link speaks TLS."],
        ["tls-key", None, None, "This node's TLS private key (PEM)."],
        ["tls-ca", None, None, "CA certificate (PEM) peers must be signed by: mutual TLS."],
        ["web", None, None, "Serve the live status page on this endpoint (a bare port: on 127.0.0.1)."],
        ["web-token", None, None, "Token the status page demands (Bearer header or ?token=)."],
        ["web-token-file", None, None, "Read the status page's token from this file."],
        ["message-rate", None, "200000", "Messages a second each link may bring (0: no limit); past it, with "
                                         "--message-burst, reading from that link pauses."],
        ["message-burst", None, "200000", "Messages a link may bring at once before --message-rate applies."],
        ["caller-files", None, "relative", "What messages carry as the sender's source file: relative (to its "
                                           "sys.path entry), full, name (base name) or none."],
    ]
    optFlags = [
        ["compression", None, "Ask peers for zlib compression."],
        ["hidden", None, "Join as a hidden kernel: '*' does not reach it, it is not listed, never a relay."],
        ["unsigned-adverts", None, "With --tls-ca: neither sign routing adverts nor require signed ones."],
        ["web-tls", None, "Serve the status page over HTTPS with the --tls-* files (with --tls-ca, a client "
                          "certificate is the credential)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["connect"] = []
        self["app"] = []

    def opt_version(self) -> None:
        """
        Print lightspeed's and Twisted's versions and exit.
        """
        import twisted

        print(f"lightspeed {__version__} (Twisted {twisted.__version__})")
        sys.exit(0)

    def opt_listen(self, endpoint: str) -> None:
        """
        Accept links on a Twisted server endpoint (repeatable), e.g.
        tcp:9876:interface=127.0.0.1, unix:/tmp/ls.sock.
        """
        self["listen"].append(endpoint)

    def opt_connect(self, endpoint: str) -> None:
        """
        Keep a link to a Twisted client endpoint (repeatable), e.g.
        tcp:host=127.0.0.1:port=9876:bindAddress=127.0.0.1.
        """
        self["connect"].append(endpoint)

    def opt_app(self, spec: str) -> None:
        """
        module:function called with the kernel to load sessions
        (repeatable).
        """
        if ":" not in spec:
            raise usage.UsageError(f"--app wants module:function, not {spec!r}")
        self["app"].append(spec)

    def postOptions(self) -> None:
        if self["kernel"] is not None:
            try:
                check_name(self["kernel"], "kernel name")
            except ValueError as e:
                raise usage.UsageError(str(e))
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        elif self["listen"] == ["none"]:
            self["listen"] = []
        elif "none" in self["listen"]:
            raise usage.UsageError("--listen none cannot be combined with other --listen options")
        try:
            self["keepalive"] = float(self["keepalive"])
        except ValueError:
            raise usage.UsageError("--keepalive wants a number of seconds")
        self._check_guards()
        if self["password-file"]:
            with open(self["password-file"], "rb") as f:
                self["password"] = f.read().strip()
        self["apps"] = [load_app(spec) for spec in self["app"]]
        self["tls"] = None
        if self["tls-cert"] or self["tls-key"] or self["tls-ca"]:
            if not (self["tls-cert"] and self["tls-key"]):
                raise usage.UsageError("TLS needs both --tls-cert and --tls-key")
            from lightspeed.tls import TLSConfig

            for option in ("tls-cert", "tls-key", "tls-ca"):
                if self[option]:
                    try:
                        open(self[option], "rb").close()
                    except OSError as e:
                        raise usage.UsageError(f"--{option}: {e}")
            self["tls"] = TLSConfig(cert=self["tls-cert"], key=self["tls-key"], ca=self["tls-ca"])
        self["signer"] = None
        if self["tls"] is not None and self["tls-ca"] and not self["unsigned-adverts"]:
            from lightspeed.adverts import AdvertSigner

            try:
                self["signer"] = AdvertSigner.from_tls(self["tls"])
            except ValueError as e:
                raise usage.UsageError(f"--tls-cert: {e}")
        if self["web"] or self["web-token"] or self["web-token-file"] or self["web-tls"]:
            from lightspeed.web.options import check_web_options

            check_web_options(self)

    def _check_guards(self) -> None:
        """
        Check --caller-files, --message-rate and --message-burst.
        """
        try:
            check_policy(self["caller-files"])
        except ValueError as e:
            raise usage.UsageError(f"--caller-files: {e}")
        try:
            self["message-rate"], self["message-burst"] = float(self["message-rate"]), int(self["message-burst"])
        except ValueError:
            raise usage.UsageError("--message-rate and --message-burst want numbers of messages")
        if self["message-rate"] < 0 or self["message-burst"] < 1:
            raise usage.UsageError("--message-rate must be 0 or more and --message-burst 1 or more")


def load_app(spec: str) -> Callable[[Kernel], Any]:
    """
    Import ``module:function``.

    :raises usage.UsageError: if it cannot be found.
    """
    module_name, _, function_name = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # let --app find modules in the current directory
    try:
        module = importlib.import_module(module_name)
        return getattr(module, function_name)
    except (ImportError, AttributeError) as e:
        raise usage.UsageError(f"cannot load --app {spec!r}: {e}")


class NodeService(Service):
    """
    The last child of a node's kernel: once the listeners and connectors
    before it have started, it runs the ``--app`` functions.
    """

    log = Logger()

    def __init__(self, kernel: Kernel, apps: List[Callable[[Kernel], Any]]) -> None:
        self.kernel = kernel
        self.apps = apps

    def startService(self) -> None:
        super().startService()
        self.log.info("lightspeed {version} kernel {name} started", version=__version__, name=self.kernel.name)
        for app in self.apps:
            app(self.kernel)


#: Twisted's own lines about a port opening or closing: the node logs
#: "listening on ..." itself.
PORT_NOISE = re.compile(r"^([\w ()]+ starting on \S+|\((TCP|UNIX) Port \S+ Closed\))$")


def quiet_port_noise(event: Dict[str, Any]) -> PredicateResult:
    """
    A log predicate that drops :obj:`PORT_NOISE`.
    """
    if event.get("log_namespace") == "log_legacy" and PORT_NOISE.match(str(event.get("log_text", ""))):
        return PredicateResult.no
    return PredicateResult.maybe


class QuietLogs(Service):
    """
    The node's first service: once twistd has begun logging, every
    observer it logs to gets :obj:`quiet_port_noise` in front.
    """

    def __init__(self, publisher: Any = globalLogPublisher) -> None:
        self.publisher = publisher

    def startService(self) -> None:
        super().startService()
        for observer in list(getattr(self.publisher, "_observers", [])):
            self.publisher.removeObserver(observer)
            self.publisher.addObserver(FilteringLogObserver(observer, [cast(ILogFilterPredicate, quiet_port_noise)]))


def cannot_listen(reactor: Any) -> None:
    """
    A node that cannot listen (the reason is logged, in one line, by its
    :obj:`~lightspeed.service.ListenService`) stops, and twistd exits with
    status 1 rather than 0.
    """

    def status_one() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)  # twistd itself always exits 0; this runs after its clean-up

    atexit.register(status_one)
    reactor.callWhenRunning(reactor.stop)


def makeService(options: Options, reactor: Optional[Any] = None) -> MultiService:
    """
    Build the node's service tree from parsed :class:`Options`: a
    :class:`Kernel` whose children are a listener per ``--listen``, a
    connector per ``--connect`` and the :class:`NodeService` that runs the
    apps.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    kernel = Kernel(options["kernel"], reactor=reactor, hidden=bool(options["hidden"]))
    kernel.caller_files = options["caller-files"]
    # Options.postOptions chose whether to sign (--unsigned-adverts).
    link_options: Dict[str, Any] = {"compression": bool(options["compression"]), "keepalive": options["keepalive"],
                                    "message_rate": options["message-rate"], "message_burst": options["message-burst"],
                                    "sign_adverts": False}
    if options["password"]:
        link_options["password"] = options["password"]
    if options["tls"] is not None:
        link_options["tls"] = options["tls"]
    top = MultiService()
    QuietLogs().setServiceParent(top)
    kernel.setServiceParent(top)
    kernel.network_start()
    if options.get("signer") is not None:
        kernel.sign_adverts(options["signer"])
    for endpoint in options["listen"]:
        listener = kernel.listen(endpoint, **link_options)
        listener.whenListening().addCallbacks(
            lambda port, e=endpoint: NodeService.log.info("listening on {endpoint}: {address}",
                                                          endpoint=e, address=address_text(port.getHost())),
            lambda failure: cannot_listen(reactor))
    for endpoint in options["connect"]:
        kernel.connect(endpoint, **link_options)
    if options.get("web"):
        from lightspeed.web.options import web_service

        web_service(kernel, options).setServiceParent(kernel)
    NodeService(kernel, options["apps"]).setServiceParent(kernel)
    return top
