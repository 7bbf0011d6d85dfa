# -*- test-case-name: lightspeed.test.test_web -*-
"""
The ``--web*`` options of ``twistd lightspeed``, checked and turned into
a :class:`~lightspeed.web.service.WebService`.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.python import usage

from lightspeed.service import server_endpoint
from lightspeed.web.service import NotLoopback, WebService, check_guarded, web_endpoint

__all__ = ["check_web_options", "listening_at", "web_service"]

log = Logger()


def check_web_options(options: Any) -> None:
    """
    Check ``--web``, ``--web-token``, ``--web-token-file`` and ``--web-tls``
    of parsed :class:`~lightspeed.tap.Options` (TLS options already read);
    read the token file.

    :raises usage.UsageError: if they do not fit together, or the page
        would be reachable from other hosts with no credential.
    """
    if not options["web"]:
        raise usage.UsageError("--web-token, --web-token-file and --web-tls need --web ENDPOINT")
    if options["web-token-file"]:
        try:
            with open(options["web-token-file"], "r", encoding="utf-8") as f:
                options["web-token"] = f.read().strip()
        except OSError as e:
            raise usage.UsageError(f"--web-token-file: {e}")
        if not options["web-token"]:
            raise usage.UsageError("--web-token-file: the file is empty")
    if options["web-tls"] and options["tls"] is None:
        raise usage.UsageError("--web-tls needs --tls-cert and --tls-key")
    try:
        # Only parsed here, never listened on: no reactor is needed (nor installed) yet.
        endpoint = server_endpoint(None, web_endpoint(options["web"]))
    except (ValueError, TypeError, KeyError) as e:
        raise usage.UsageError(f"--web: bad endpoint {options['web']!r}: {e}")
    try:
        check_guarded(options["web"], endpoint, bool(options["web-token"]),
                      bool(options["web-tls"] and options["tls-ca"]))
    except NotLoopback as e:
        raise usage.UsageError(str(e))


def listening_at(scheme: str, address: Any) -> str:
    """
    Where the page listens, for the log: ``http://127.0.0.1:8080/``,
    ``http://[::1]:8080/``, or ``unix:/run/page.sock (http)`` for a Unix
    socket (which has no host or port).
    """
    path = getattr(address, "name", None)
    if path is not None:  # a UNIXAddress
        return f"unix:{path.decode('utf-8', 'replace') if isinstance(path, bytes) else path} ({scheme})"
    host = address.host
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{address.port}/"


def web_service(kernel: Any, options: Any) -> WebService:
    """
    The status page the options ask for, to be a child of ``kernel``.
    """
    service = WebService(kernel, options["web"], token=options["web-token"] or None,
                         tls=options["tls"] if options["web-tls"] else None)
    scheme = "https" if options["web-tls"] else "http"
    service.whenListening().addCallbacks(
        lambda port: log.info("status page on {where}", where=listening_at(scheme, port.getHost())),
        lambda failure: log.critical("cannot serve the status page on {endpoint}: {why}",
                                     endpoint=options["web"], why=failure.getErrorMessage()))
    return service
