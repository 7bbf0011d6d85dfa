# -*- test-case-name: lightspeed.test.test_web -*-
"""
The status page's resources under one guarded root: ``/`` (the page),
``/static/...`` (its script and style, from the package), ``/events``,
``/varz``, ``/connz``, ``/routez``, ``/metrics``.

The guard: with a token configured every request must carry it, as
``Authorization: Bearer TOKEN``, as ``?token=TOKEN`` (which also sets a
cookie, so the page's own requests carry it) or as that cookie; with none
a request gets 401, with a wrong one 403.  A request that came over TLS
with a verified client certificate needs no token.  Without a token, the
page answers only requests whose ``Host`` is a loopback name, so that a
web page elsewhere cannot read it through DNS rebinding.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
from typing import Any, Callable, Dict, Optional

from twisted.internet.interfaces import ISSLTransport
from twisted.web.pages import errorPage
from twisted.web.resource import Resource
from twisted.web.static import File

from lightspeed.web import metrics, snapshot

__all__ = ["StatusRoot", "COOKIE", "STATIC"]

#: The cookie ``?token=`` sets.
COOKIE = b"lightspeed_web"

#: Where the page's files are.
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

_SECURITY_HEADERS = {
    b"content-security-policy": b"default-src 'none'; script-src 'self'; style-src 'self'; "
                                b"connect-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
}


class _JSON(Resource):
    isLeaf = True

    def __init__(self, produce: Callable[[], Any]) -> None:
        super().__init__()
        self._produce = produce

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(self._produce(), indent=1, sort_keys=True).encode("utf-8") + b"\n"


class _Metrics(Resource):
    isLeaf = True

    def __init__(self, registry: Any) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", metrics.CONTENT_TYPE.encode("ascii"))
        return metrics.render(self._registry)


class StatusRoot(Resource):
    """
    The guarded root.

    :param kernel: the kernel shown.
    :param events: the ``/events`` resource.
    :param registry: the Prometheus registry of ``/metrics``.
    :param token: the token to demand, or ``None``.
    """

    def __init__(self, kernel: Any, events: Resource, registry: Any, token: Optional[str] = None) -> None:
        super().__init__()
        self._token = token.encode("utf-8") if token else None
        self._key = secrets.token_bytes(32)
        stats = lambda: snapshot.node_stats(kernel)  # noqa: E731
        children: Dict[bytes, Resource] = {
            b"": File(os.path.join(STATIC, "index.html"), defaultType="text/html"),
            b"static": File(STATIC),
            b"events": events,
            b"varz": _JSON(lambda: snapshot.varz(stats(), kernel)),
            b"connz": _JSON(lambda: snapshot.connz(stats(), kernel)),
            b"routez": _JSON(lambda: snapshot.routez(kernel)),
            b"sessionz": _JSON(lambda: snapshot.sessions(kernel)),
            b"metrics": _Metrics(registry),
        }
        for name, child in children.items():
            self.putChild(name, child)

    def getChildWithDefault(self, path: bytes, request: Any) -> Resource:
        for name, value in _SECURITY_HEADERS.items():
            request.setHeader(name, value)
        refused = self.refusal(request)
        if refused is not None:
            return refused
        return super().getChildWithDefault(path, request)

    def render_GET(self, request: Any) -> bytes:  # "" without the trailing slash never reaches here
        request.redirect(b"/")
        return b""

    def _cookie(self) -> bytes:
        assert self._token is not None
        return hmac.new(self._key, self._token, hashlib.sha256).hexdigest().encode("ascii")

    def refusal(self, request: Any) -> Optional[Resource]:
        """
        :returns: the error page for a request that may not enter, or ``None``.
        """
        if _client_certified(request):
            return None
        if self._token is None:
            if not _loopback_host(request.getRequestHostname()):
                return errorPage(403, "Forbidden", "This status page answers only on a loopback host name.")
            return None
        return self._check_token(request)

    def _check_token(self, request: Any) -> Optional[Resource]:
        header = request.getHeader(b"authorization")
        given: Optional[bytes] = None
        if header is not None:
            scheme, _, value = header.partition(b" ")
            given = value.strip() if scheme.lower() == b"bearer" else b""
        elif b"token" in request.args:
            given = request.args[b"token"][0]
            if hmac.compare_digest(given, self._token or b""):
                request.addCookie(COOKIE, self._cookie(), path=b"/", httpOnly=True, sameSite="strict",
                                  secure=request.isSecure())
        else:
            cookie = request.getCookie(COOKIE)
            if cookie is not None:
                return None if hmac.compare_digest(cookie, self._cookie()) else _forbidden()
        if given is None:
            request.setHeader(b"www-authenticate", b'Bearer realm="lightspeed"')
            return errorPage(401, "Unauthorized", "This status page needs its token (see docs/tools.rst).")
        return None if hmac.compare_digest(given, self._token or b"") else _forbidden()


def _forbidden() -> Resource:
    return errorPage(403, "Forbidden", "Wrong token.")


def _client_certified(request: Any) -> bool:
    transport = getattr(request.channel, "transport", None)
    if transport is None or not ISSLTransport.providedBy(transport):
        return False
    try:
        return transport.getPeerCertificate() is not None
    except Exception:
        return False


def _loopback_host(host: bytes) -> bool:
    name = host.decode("ascii", "replace").strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
