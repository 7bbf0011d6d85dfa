# -*- test-case-name: lightspeed.test.test_web -*-
"""
A kernel's live status page (``twistd lightspeed --web ENDPOINT``): a
picture of the whole mesh that updates by server-sent events, the local
kernel's sessions, links and counters, recent undeliverables, JSON
endpoints (``/varz``, ``/connz``, ``/routez``) and Prometheus ``/metrics``.

    from lightspeed.web import WebService
    WebService(kernel, "tcp:8080:interface=127.0.0.1").setServiceParent(kernel)

See ``docs/tools.rst``.
"""

from lightspeed.web.service import NotLoopback, WebService, is_loopback, web_endpoint

__all__ = ["WebService", "NotLoopback", "web_endpoint", "is_loopback"]
