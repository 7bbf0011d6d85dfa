# -*- test-case-name: lightspeed.test.test_web -*-
"""
``/events``: the picture pushed to every open page as server-sent events.

Each event is the whole picture (one JSON object on one ``data:`` line),
so a page that misses some loses nothing: a client whose connection
cannot keep up (its transport paused us) is skipped until it drains, and
closed if it stays blocked, which keeps memory bounded.  At most
``max_clients`` streams are open at once; the next gets 503.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

__all__ = ["Hub", "EventStream", "MAX_CLIENTS"]

#: Open event streams allowed at once.
MAX_CLIENTS = 8

#: Seconds a stream may stay blocked before it is closed.
MAX_BLOCKED = 30.0

#: Seconds between comments that keep an idle stream open.
KEEPALIVE = 15.0


@implementer(IPushProducer)
class _Client:
    """
    One open stream; its transport pauses and resumes it.
    """

    def __init__(self, request: Any, clock: Any) -> None:
        self.request = request
        self._clock = clock
        self.blocked_since: Optional[float] = None
        self.skipped = 0

    def pauseProducing(self) -> None:
        if self.blocked_since is None:
            self.blocked_since = self._clock.seconds()

    def resumeProducing(self) -> None:
        self.blocked_since = None

    def stopProducing(self) -> None:
        pass

    def send(self, data: bytes) -> bool:
        """
        :returns: whether the client is still worth keeping.
        """
        if self.blocked_since is not None:
            self.skipped += 1
            return self._clock.seconds() - self.blocked_since < MAX_BLOCKED
        self.request.write(data)
        return True


class Hub:
    """
    Samples a :class:`~lightspeed.web.view.MeshView` every ``interval``
    seconds (and soon after the topology changes) and sends the picture to
    every stream.
    """

    log = Logger()

    def __init__(self, view: Any, clock: Any, interval: float = 1.0, max_clients: int = MAX_CLIENTS) -> None:
        self.view = view
        self._clock = clock
        self.interval = interval
        self.max_clients = max_clients
        self.clients: Dict[Any, _Client] = {}
        self._loop = LoopingCall(self.tick)
        self._loop.clock = clock
        self._soon: Any = None
        self._last: Optional[bytes] = None
        self._last_sent = 0.0

    def start(self) -> None:
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        if self._soon is not None and self._soon.active():
            self._soon.cancel()
        for request in list(self.clients):
            self.drop(request)
            request.finish()

    def changed(self, topic: str = "", info: Any = None) -> None:
        """
        The topology changed: send the picture on the next turn (once for a
        burst of changes).
        """
        if self._soon is None or not self._soon.active():
            self._soon = self._clock.callLater(0, self.push)

    def tick(self) -> None:
        self.view.tick(remote=bool(self.clients))  # other kernels' counters only for open pages
        self.push()

    def push(self) -> None:
        if not self.clients:
            return
        data = self.encode()
        now = self._clock.seconds()
        if data == self._last:
            if now - self._last_sent < KEEPALIVE:
                return
            data = b": keepalive\n\n"
        else:
            self._last = data
        self._last_sent = now
        for request, client in list(self.clients.items()):
            if not client.send(data):
                self.log.info("closing a status-page stream blocked for {s} s", s=MAX_BLOCKED)
                self.drop(request)
                request.loseConnection()

    def encode(self) -> bytes:
        picture = json.dumps(self.view.picture(), separators=(",", ":"), sort_keys=True)
        return b"data: " + picture.encode("utf-8") + b"\n\n"

    def add(self, request: Any) -> bool:
        """
        Open a stream on ``request`` and send it the picture now.

        :returns: ``False`` if :attr:`max_clients` streams are open.
        """
        if len(self.clients) >= self.max_clients:
            return False
        client = self.clients[request] = _Client(request, self._clock)
        request.registerProducer(client, True)
        # Once the response is done or its connection lost, the producer went with it.
        request.notifyFinish().addBoth(lambda _: self.clients.pop(request, None))
        request.write(b"retry: 2000\n\n" + self.encode())
        return True

    def drop(self, request: Any) -> None:
        if self.clients.pop(request, None) is not None:
            request.unregisterProducer()


class EventStream(Resource):
    """
    The ``/events`` resource.
    """

    isLeaf = True

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub

    def render_GET(self, request: Any) -> Any:
        if len(self.hub.clients) >= self.hub.max_clients:
            request.setResponseCode(503)
            request.setHeader(b"retry-after", b"10")
            return b"too many status-page streams open\n"
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        self.hub.add(request)
        return NOT_DONE_YET
