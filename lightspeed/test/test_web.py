# -*- test-case-name: lightspeed.test.test_web -*-
"""
Tests for :mod:`lightspeed.web`: the JSON endpoints, ``/metrics``, the
event stream and the guard over a real loopback listener; the picture, the
rates, the bounded parts and the options without one.  The page in a real
browser is :mod:`lightspeed.test.test_web_browser`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent
from twisted.web.http_headers import Headers

from lightspeed import Kernel
from lightspeed.tap import Options, makeService
from lightspeed.web import NotLoopback, WebService, is_loopback, web_endpoint
from lightspeed.web import events, metrics, snapshot, view
from lightspeed.service import server_endpoint
from lightspeed.test import test_tap
from lightspeed.test.test_network import wait_for

#: A full ``Node.stats()`` answer, as the stats contract describes it.
FULL_STATS: Dict[str, Any] = {
    "kernel": "k", "incarnation": 7, "uptime": 12.5, "hidden": False,
    "messages_in": 10, "messages_out": 20, "bytes_in": 1000, "bytes_out": 2000, "relayed": 3,
    "undeliverable": {"no-route": 2, "expired": 1}, "misrouted": 0, "pending_requests": 1,
    "adverts_in": 4, "adverts_out": 5, "kernels": 2, "backlog": {"far": 6},
    "links": {"near": {"messages_in": 8, "messages_out": 9, "bytes_in": 800, "bytes_out": 900,
                       "rtt": 0.002, "cost": 3, "incarnation": 11, "since": 1.0, "tls": True}},
}


class _Body(Protocol):
    def __init__(self, done: Deferred) -> None:
        self.data = b""
        self.done = done

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(self.data)


class _Events(Protocol):
    """Collects server-sent events; ``first`` fires with the first picture."""

    def __init__(self) -> None:
        self.buffer = b""
        self.pictures: List[Dict[str, Any]] = []
        self.first: Deferred = Deferred()
        self.ended: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n\n" in self.buffer:
            event, self.buffer = self.buffer.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if line.startswith(b"data: "):
                    self.pictures.append(json.loads(line[6:]))
                    if not self.first.called:
                        self.first.callback(self.pictures[-1])

    def connectionLost(self, reason: Any = None) -> None:
        self.ended.callback(None)


@inlineCallbacks
def fetch(url: str, headers: Optional[Dict[str, str]] = None, agent: Any = None) -> Any:
    """
    GET ``url``: ``(code, response headers, body)``.
    """
    agent = agent or Agent(reactor)
    sent = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
    response = yield agent.request(b"GET", url.encode(), sent)
    done: Deferred = Deferred()
    response.deliverBody(_Body(done))
    body = yield done
    return response.code, response.headers, body


class WebTestCase(TestCase):
    """
    Kernels and status pages on the real reactor over loopback, stopped
    after each test.
    """

    timeout = 30

    def kernel(self, name: str) -> Kernel:
        kernel = Kernel(name, reactor=reactor)
        self.addCleanup(kernel.shutdown)
        return kernel

    @inlineCallbacks
    def page(self, kernel: Kernel, **options: Any) -> Any:
        """
        A status page of ``kernel`` on a free loopback port: its base URL.
        """
        web = WebService(kernel, "tcp:0:interface=127.0.0.1", **options)
        web.setServiceParent(kernel)
        if not kernel.running:
            kernel.startService()
            self.addCleanup(kernel.stopService)
        self.addCleanup(lambda: web.disownServiceParent() if web.parent is not None else None)
        port = yield web.whenListening()
        self.web = web
        return f"http://127.0.0.1:{port.getHost().port}"

    @inlineCallbacks
    def pair(self) -> Any:
        a, b = self.kernel("a"), self.kernel("b")
        port = yield b.listen("tcp:0:interface=127.0.0.1").whenListening()
        for kernel in (a, b):
            kernel.network_start().costs.enabled = False  # cost 1, whatever the round trips
        yield a.connect(f"tcp:host=127.0.0.1:port={port.getHost().port}").whenConnected()
        return a, b


class EndpointTests(SynchronousTestCase):
    """
    :func:`web_endpoint`, :func:`is_loopback` and the refusal.
    """

    def test_loopback_by_default(self):
        """When an endpoint names no interface, then it listens on loopback; a bare port too."""
        self.assertEqual(web_endpoint("8080"), "tcp:8080:interface=127.0.0.1")
        self.assertEqual(web_endpoint("tcp:8080"), "tcp:8080:interface=127.0.0.1")
        self.assertEqual(web_endpoint("tcp6:8080"), r"tcp6:8080:interface=\:\:1")
        self.assertEqual(web_endpoint("tcp:8080:interface=0.0.0.0"), "tcp:8080:interface=0.0.0.0")
        self.assertEqual(web_endpoint("unix:/tmp/x.sock"), "unix:/tmp/x.sock")

    def test_is_loopback(self):
        """When endpoints are parsed, then loopback addresses and UNIX sockets count as local, others not."""
        found = {d: is_loopback(server_endpoint(None, web_endpoint(d))) for d in [
            "tcp:1:interface=127.0.0.1", "tcp:1:interface=127.8.0.1", "tcp6:1", r"tcp6:1:interface=\:\:",
            "tcp:1:interface=0.0.0.0", "tcp:1:interface=10.1.2.3", "unix:/tmp/x.sock"]}
        self.assertEqual(found, {
            "tcp:1:interface=127.0.0.1": True, "tcp:1:interface=127.8.0.1": True, "tcp6:1": True,
            r"tcp6:1:interface=\:\:": False, "tcp:1:interface=0.0.0.0": False,
            "tcp:1:interface=10.1.2.3": False, "unix:/tmp/x.sock": True})

    def test_refused_without_credential(self):
        """When the page would listen on every interface with no token, then NotLoopback; with one it is built."""
        kernel = Kernel("k", reactor=Clock())
        error = self.assertRaises(NotLoopback, WebService, kernel, "tcp:0:interface=0.0.0.0")
        self.assertIn("--web-token", str(error))
        self.assertIsInstance(WebService(kernel, "tcp:0:interface=0.0.0.0", token="t"), WebService)


class OptionsTests(SynchronousTestCase):
    """
    The ``--web*`` options of ``twistd lightspeed``.
    """

    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(list(argv))
        return options

    def test_off_by_default(self):
        """When --web is not given, then there is no status page in the tree."""
        options = self.parse("--kernel", "k", "--listen", "none")
        self.assertIsNone(options["web"])
        kernel = test_tap.kernel_of(makeService(options, reactor=Clock()))
        self.assertEqual([s for s in kernel if isinstance(s, WebService)], [])

    def test_web_child_of_kernel(self):
        """When --web is given, then the kernel's service tree has the status page."""
        options = self.parse("--kernel", "k", "--listen", "none", "--web", "0")
        kernel = test_tap.kernel_of(makeService(options, reactor=Clock()))
        [web] = [s for s in kernel if isinstance(s, WebService)]
        self.assertIs(web.kernel, kernel)

    def test_not_loopback(self):
        """When --web listens on every interface with no token, then a UsageError; with a token, not."""
        error = self.assertRaises(usage.UsageError, self.parse, "--web", "tcp:8080:interface=0.0.0.0")
        self.assertIn("not a loopback interface", str(error))
        self.assertEqual(self.parse("--web", "tcp:8080:interface=0.0.0.0", "--web-token", "s")["web-token"], "s")

    def test_token_file(self):
        """When --web-token-file is given, then the token is read from it (stripped); an empty one is refused."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("sesame\n")
        self.assertEqual(self.parse("--web", "0", "--web-token-file", path)["web-token"], "sesame")
        with open(path, "w") as f:
            f.write("\n")
        error = self.assertRaises(usage.UsageError, self.parse, "--web", "0", "--web-token-file", path)
        self.assertEqual(str(error), "--web-token-file: the file is empty")

    def test_client_certificates(self):
        """When --web-tls has a CA, then every interface is allowed (client certificates guard it); without, not."""
        from lightspeed.tls import write_pki

        pki = self.mktemp()
        write_pki(pki, ["n"])
        files = ["--tls-cert", os.path.join(pki, "n.crt"), "--tls-key", os.path.join(pki, "n.key")]
        everywhere = ["--web", "tcp:0:interface=0.0.0.0", "--web-tls"]
        options = self.parse(*everywhere, *files, "--tls-ca", os.path.join(pki, "ca.crt"))
        self.assertTrue(options["web-tls"])
        self.assertRaises(usage.UsageError, self.parse, *everywhere, *files)

    def test_combinations(self):
        """When --web-token comes without --web, or --web-tls without TLS files, then a UsageError each."""
        error = self.assertRaises(usage.UsageError, self.parse, "--web-token", "s")
        self.assertEqual(str(error), "--web-token, --web-token-file and --web-tls need --web ENDPOINT")
        error = self.assertRaises(usage.UsageError, self.parse, "--web", "0", "--web-tls")
        self.assertEqual(str(error), "--web-tls needs --tls-cert and --tls-key")


class EndpointDataTests(WebTestCase):
    """
    ``/varz``, ``/connz``, ``/routez``, ``/metrics`` and the page's files,
    from a kernel linked to another over loopback TCP.
    """

    @inlineCallbacks
    def test_json_endpoints(self):
        """When two kernels are linked, then /varz, /connz and /routez describe a's side of it."""
        a, b = yield self.pair()
        url = yield self.page(a)
        code, headers, body = yield fetch(url + "/varz")
        self.assertEqual((code, headers.getRawHeaders(b"content-type")), (200, [b"application/json"]))
        varz = json.loads(body)
        self.assertEqual((varz["kernel"], varz["kernels"], varz["incarnation"]), ("a", 1, a.network.incarnation))
        code, _, body = yield fetch(url + "/connz")
        [link] = json.loads(body)["links"]
        self.assertEqual((code, link["peer"], link["cost"], link["incarnation"]), (200, "b", 1, b.network.incarnation))
        self.assertTrue(link["address"].startswith("127.0.0.1:"))
        code, _, body = yield fetch(url + "/routez")
        routez = json.loads(body)
        self.assertEqual([k["name"] for k in routez["kernels"]], ["a", "b"])
        self.assertEqual(routez["links"], [{"a": "a", "b": "b", "cost": 1}])
        self.assertEqual(routez["routes"], {"b": {"next_hop": "b", "cost": 1}})
        yield b.shutdown()
        yield wait_for(lambda: not a.network.router.reachable())
        code, _, body = yield fetch(url + "/routez")
        self.assertEqual((json.loads(body)["links"], json.loads(body)["routes"]), ([], {}))

    @inlineCallbacks
    def test_sessionz(self):
        """When a kernel runs two sessions, aliased twice and once, then /sessionz is their count, ids and aliases."""
        a, _ = yield self.pair()
        first = a.spawn(inline_states={"_start": lambda e: (e.kernel.alias_set("echo"), e.kernel.alias_set("e2"))})
        second = a.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("other")})
        url = yield self.page(a)
        code, headers, body = yield fetch(url + "/sessionz")
        self.assertEqual((code, headers.getRawHeaders(b"content-type")), (200, [b"application/json"]))
        self.assertEqual(json.loads(body), {"count": 2, "sessions": [{"id": first.id, "aliases": ["echo", "e2"]},
                                                                     {"id": second.id, "aliases": ["other"]}]})

    def test_sessions_limit(self):
        """When a kernel has more sessions than the limit, then all are counted and the first ones listed."""
        kernel = self.kernel("k")
        started = [kernel.spawn(inline_states={"_start": lambda e, i=i: e.kernel.alias_set(f"s{i}")})
                   for i in range(3)]
        self.assertEqual(snapshot.sessions(kernel, limit=2),
                         {"count": 3, "sessions": [{"id": s.id, "aliases": [f"s{i}"]} for i, s in enumerate(started[:2])]})

    @inlineCallbacks
    def test_metrics(self):
        """When /metrics is scraped, then it is Prometheus text with the kernel's gauges and link costs."""
        a, b = yield self.pair()
        url = yield self.page(a)
        code, headers, body = yield fetch(url + "/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain; version="))
        text = body.decode()
        for line in ['lightspeed_kernels_reachable{kernel="a"} 1.0', 'lightspeed_link_cost{kernel="a",peer="b"} 1.0',
                     'lightspeed_web_streams{kernel="a"} 0.0', 'lightspeed_sessions{kernel="a"} 0.0']:
            self.assertIn(line, text.splitlines())

    @inlineCallbacks
    def test_page_and_files(self):
        """When the page is loaded, then it and its script come from the package with a strict CSP; others 404."""
        url = yield self.page(self.kernel("a"))
        code, headers, body = yield fetch(url + "/")
        self.assertEqual(code, 200)
        self.assertIn(b'<script src="static/mesh.js"', body)
        self.assertIn(b"script-src 'self'", headers.getRawHeaders(b"content-security-policy")[0])
        code, _, body = yield fetch(url + "/static/mesh.js")
        self.assertEqual(code, 200)
        self.assertIn(b'new EventSource("events")', body)
        code, _, _ = yield fetch(url + "/static/nothing.js")
        self.assertEqual(code, 404)


class GuardTests(WebTestCase):
    """
    The token, its cookie, and the Host check.
    """

    @inlineCallbacks
    def codes(self, url: str, attempts: List[Tuple[str, Dict[str, str]]]) -> Any:
        out = []
        for path, headers in attempts:
            code, _, _ = yield fetch(url + path, headers)
            out.append(code)
        return out

    @inlineCallbacks
    def test_token(self):
        """When a token is set, then none gets 401, a wrong one 403, the right one (header or query) 200."""
        url = yield self.page(self.kernel("a"), token="sesame")
        code, headers, _ = yield fetch(url + "/varz")
        self.assertEqual((code, headers.getRawHeaders(b"www-authenticate")), (401, [b'Bearer realm="lightspeed"']))
        found = yield self.codes(url, [
            ("/metrics", {}), ("/events", {}), ("/", {}),
            ("/varz", {"Authorization": "Bearer wrong"}), ("/varz", {"Authorization": "Basic c2VzYW1l"}),
            ("/varz?token=wrong", {}), ("/varz", {"Authorization": "Bearer sesame"}), ("/routez?token=sesame", {}),
            ("/varz", {"Authorization": "Bearer sesame", "Host": "elsewhere.example"}),
        ])
        self.assertEqual(found, [401, 401, 401, 403, 403, 403, 200, 200, 200])

    @inlineCallbacks
    def test_cookie(self):
        """When ?token= is right, then it sets an HttpOnly cookie that lets later requests in; a forged one is 403."""
        url = yield self.page(self.kernel("a"), token="sesame")
        code, headers, _ = yield fetch(url + "/?token=sesame")
        [cookie] = headers.getRawHeaders(b"set-cookie")
        self.assertEqual(code, 200)
        self.assertIn(b"HttpOnly", cookie)
        self.assertIn(b"SameSite=strict", cookie)
        value = cookie.split(b";")[0].decode()
        found = yield self.codes(url, [("/varz", {"Cookie": value}), ("/varz", {"Cookie": "lightspeed_web=forged"})])
        self.assertEqual(found, [200, 403])

    @inlineCallbacks
    def test_host_check(self):
        """When no token is set, then a request for a host name that is not loopback gets 403."""
        url = yield self.page(self.kernel("a"))
        found = yield self.codes(url, [("/varz", {"Host": "rebound.example:80"}), ("/varz", {"Host": "localhost"}),
                                       ("/varz", {"Host": "[::1]:9"})])
        self.assertEqual(found, [403, 200, 200])


class ListeningLogTests(WebTestCase):
    """The log line that says where the page listens."""

    def test_addresses(self):
        """When the page listens on IPv4, IPv6 or a Unix socket, then the line names it as a URL or the path."""
        from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

        from lightspeed.web.options import listening_at

        self.assertEqual(listening_at("http", IPv4Address("TCP", "127.0.0.1", 8080)), "http://127.0.0.1:8080/")
        self.assertEqual(listening_at("https", IPv6Address("TCP", "::1", 8443)), "https://[::1]:8443/")
        self.assertEqual(listening_at("http", UNIXAddress(b"/run/page.sock")), "unix:/run/page.sock (http)")

    @inlineCallbacks
    def test_unix_log(self):
        """When --web is unix:PATH, then the startup log line names the path (it has no host or port)."""
        from twisted.logger import formatEvent

        from lightspeed.test.test_kernel import LogCatcher
        from lightspeed.web.options import web_service

        path = os.path.abspath(self.mktemp())
        caught = LogCatcher(self)
        kernel = self.kernel("k")
        web = web_service(kernel, {"web": f"unix:{path}", "web-token": None, "web-tls": False, "tls": None})
        web.setServiceParent(kernel)
        kernel.startService()
        self.addCleanup(kernel.stopService)
        yield web.whenListening()
        self.assertIn(f"status page on unix:{path} (http)", [formatEvent(event) for event in caught.events])


class TwistdWebTests(TestCase):
    """
    ``twistd lightspeed --web`` in a real process.
    """

    timeout = 60
    start = cast(Any, test_tap.TwistdTests).start  # the twistd process helper, not its tests

    @inlineCallbacks
    def test_twistd_web(self):
        """When twistd runs with --web and --web-token-file, then the page answers with the token, 401 without."""
        token = os.path.abspath(self.mktemp())
        with open(token, "w") as f:
            f.write("sesame\n")
        node = self.start("--kernel", "webnode", "--listen", "none", "--web", "tcp:0", "--web-token-file", token)
        match = yield node.expect(r"status page on http://127\.0\.0\.1:(\d+)/")
        url = f"http://127.0.0.1:{match.group(1)}"
        code, _, _ = yield fetch(url + "/varz")
        self.assertEqual(code, 401)
        code, _, body = yield fetch(url + "/varz", {"Authorization": "Bearer sesame"})
        self.assertEqual((code, json.loads(body)["kernel"]), (200, "webnode"))
        code, _, body = yield fetch(url + "/metrics", {"Authorization": "Bearer sesame"})
        self.assertIn(b'lightspeed_web_streams{kernel="webnode"} 0.0', body)


class TLSGuardTests(WebTestCase):
    """
    Over HTTPS with a CA, a client certificate is the credential.
    """

    @inlineCallbacks
    def test_client_certificate(self):
        """When the client presents a certificate from the CA, then it needs no token; without one, no handshake."""
        from twisted.internet.ssl import optionsForClientTLS
        from twisted.web.client import ResponseNeverReceived
        from zope.interface import implementer
        from twisted.web.iweb import IPolicyForHTTPS

        from lightspeed.tls import TLSConfig, client_options, write_pki

        pki = self.mktemp()
        write_pki(pki, ["node", "browser"])
        ca = os.path.join(pki, "ca.crt")
        server = TLSConfig(os.path.join(pki, "node.crt"), os.path.join(pki, "node.key"), ca)
        client = TLSConfig(os.path.join(pki, "browser.crt"), os.path.join(pki, "browser.key"), ca)
        url = yield self.page(self.kernel("a"), token="sesame", tls=server)
        url = url.replace("http:", "https:")

        @implementer(IPolicyForHTTPS)
        class Policy:
            def __init__(self, certified: bool) -> None:
                self.certified = certified

            def creatorForNetloc(self, host: bytes, port: int) -> Any:
                if self.certified:
                    return client_options(client, "127.0.0.1")
                return optionsForClientTLS("127.0.0.1", trustRoot=client.authority())

        code, _, body = yield fetch(url + "/varz", agent=Agent(reactor, contextFactory=Policy(True)))
        self.assertEqual((code, json.loads(body)["kernel"]), (200, "a"))
        failure = yield self.assertFailure(fetch(url + "/varz", agent=Agent(reactor, contextFactory=Policy(False))),
                                           ResponseNeverReceived)
        self.assertTrue(failure.reasons)


class EventStreamTests(WebTestCase):
    """
    ``/events`` over loopback.
    """

    @inlineCallbacks
    def stream(self, url: str) -> Any:
        response = yield Agent(reactor).request(b"GET", (url + "/events").encode())
        collector = _Events()
        if response.code == 200:
            response.deliverBody(collector)
        return response, collector

    @inlineCallbacks
    def test_stream_and_cap(self):
        """When a page opens /events, then it gets the picture at once; past the cap a stream gets 503."""
        a, b = yield self.pair()
        url = yield self.page(a, max_clients=1)
        response, collector = yield self.stream(url)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/event-stream; charset=utf-8"])
        picture = yield collector.first
        self.assertEqual([k["name"] for k in picture["kernels"]], ["a", "b"])
        self.assertEqual([(link["a"], link["b"], link["cost"]) for link in picture["links"]], [("a", "b", 1)])
        self.assertEqual(picture["connz"][0]["peer"], "b")
        second, _ = yield self.stream(url)
        self.assertEqual(second.code, 503)
        yield self.web.disownServiceParent()  # stopping closes the stream
        yield collector.ended
        self.assertEqual(self.web.hub.clients, {})


class _View:
    def __init__(self) -> None:
        self.ticks = 0
        self.n = 0

    def tick(self, remote: bool = True) -> None:
        self.ticks += 1

    def picture(self) -> Dict[str, Any]:
        return {"n": self.n}


class _Request:
    def __init__(self) -> None:
        self.written: List[bytes] = []
        self.lost = False
        self.producer: Any = None
        self.finished: Deferred = Deferred()

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def notifyFinish(self) -> Deferred:
        return self.finished

    def loseConnection(self) -> None:
        self.lost = True

    def finish(self) -> None:
        pass


class HubTests(SynchronousTestCase):
    """
    :class:`events.Hub` on a clock with recording requests.
    """

    def test_blocked_client(self):
        """When a stream's transport pauses it, then it is skipped, and closed after MAX_BLOCKED seconds."""
        clock, v = Clock(), _View()
        hub = events.Hub(v, clock, interval=1.0)
        hub.start()
        slow, fast = _Request(), _Request()
        hub.add(slow), hub.add(fast)
        slow.producer.pauseProducing()
        for n in range(int(events.MAX_BLOCKED) + 1):
            v.n = n + 1
            clock.advance(1.0)
        self.assertEqual((len(slow.written), len(fast.written)), (1, int(events.MAX_BLOCKED) + 2))
        self.assertTrue(slow.lost)
        self.assertEqual(list(hub.clients), [fast])
        hub.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_unchanged_keepalive(self):
        """When the picture does not change, then only a keepalive comment goes out, every KEEPALIVE seconds."""
        clock, v = Clock(), _View()
        hub = events.Hub(v, clock, interval=1.0)
        hub.start()
        request = _Request()
        hub.add(request)
        clock.pump([1.0] * int(events.KEEPALIVE + 1))
        self.assertEqual(request.written[1:], [b'data: {"n":0}\n\n', b": keepalive\n\n"])
        hub.changed()
        v.n = 1
        clock.advance(0)
        self.assertEqual(request.written[-1], b'data: {"n":1}\n\n')
        request.finished.callback(None)
        self.assertEqual(hub.clients, {})
        hub.stop()


class _FakeKernel:
    """A kernel as the view sees it, with the full stats contract."""

    def __init__(self, stats: Dict[str, Any]) -> None:
        self.name = stats["kernel"]
        self.network = None
        self.sessions: List[Any] = []
        self.current = stats
        self.asked: List[str] = []
        self.answers: Dict[str, Deferred] = {}

    def stats(self) -> Dict[str, Any]:
        return self.current

    def stats_of(self, kernel: str) -> Deferred:
        self.asked.append(kernel)
        d = self.answers[kernel] = Deferred()
        return d


class ViewTests(SynchronousTestCase):
    """
    :mod:`lightspeed.web.view`, :mod:`~lightspeed.web.snapshot` and
    :mod:`~lightspeed.web.metrics` against the full stats contract.
    """

    def test_metrics_full_contract(self):
        """When stats() gives every counter, then /metrics has each of them, labelled by kernel and peer."""
        text = metrics.render(metrics.registry_for(_FakeKernel(FULL_STATS), {})).decode().splitlines()
        for line in ['lightspeed_messages_in_total{kernel="k"} 10.0', 'lightspeed_bytes_out_total{kernel="k"} 2000.0',
                     'lightspeed_relayed_total{kernel="k"} 3.0', 'lightspeed_adverts_out_total{kernel="k"} 5.0',
                     'lightspeed_uptime_seconds{kernel="k"} 12.5', 'lightspeed_pending_requests{kernel="k"} 1.0',
                     'lightspeed_undeliverable_total{kernel="k",reason="no-route"} 2.0',
                     'lightspeed_backlog{destination="far",kernel="k"} 6.0',
                     'lightspeed_link_messages_in_total{kernel="k",peer="near"} 8.0',
                     'lightspeed_link_bytes_out_total{kernel="k",peer="near"} 900.0',
                     'lightspeed_link_rtt_seconds{kernel="k",peer="near"} 0.002',
                     'lightspeed_link_cost{kernel="k",peer="near"} 3.0']:
            self.assertIn(line, text)

    def test_rates(self):
        """When counters grow between two ticks, then the kernel's and each link's rate is the growth per second."""
        clock, kernel = Clock(), _FakeKernel(FULL_STATS)
        mesh = view.MeshView(kernel, clock, view.Undeliverables(), view.RemoteStats(kernel, clock))
        mesh.tick()
        clock.advance(2.0)
        grown = dict(FULL_STATS, messages_in=30, links={"near": dict(FULL_STATS["links"]["near"], messages_out=19)})
        kernel.current = grown
        mesh.tick()
        self.assertEqual(mesh._rates(), ({"k": {"near": 5.0}}, {"k": 10.0}))

    def test_remote_stats(self):
        """
        When stats_of answers twice, then that kernel has a rate; a kernel
        still being asked is not asked again, nor any sooner than ``every``;
        an unreachable kernel is forgotten and a question times out.
        """
        clock, kernel = Clock(), _FakeKernel(FULL_STATS)
        remote = view.RemoteStats(kernel, clock, timeout=5.0, every=1.0)
        remote.poll(frozenset({"far"}))
        clock.advance(1.0)
        remote.poll(frozenset({"far"}))
        self.assertEqual(kernel.asked, ["far"])
        kernel.answers["far"].callback(dict(FULL_STATS, kernel="far"))
        remote.poll(frozenset({"far"}))  # too soon
        self.assertEqual(kernel.asked, ["far"])
        clock.advance(1.0)
        remote.poll(frozenset({"far"}))
        kernel.answers["far"].callback(dict(FULL_STATS, kernel="far", messages_out=40))
        mesh = view.MeshView(kernel, clock, view.Undeliverables(), remote)
        self.assertEqual(mesh._rates()[1], {"far": 20.0})
        clock.advance(1.0)
        remote.poll(frozenset({"other"}))
        self.assertEqual((list(remote.samples), kernel.asked), ([], ["far", "far", "other"]))
        clock.advance(5.0)  # the unanswered question times out
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_undeliverables_bounded(self):
        """When more undeliverables come than the ring holds, then the newest are kept and all are counted."""
        ring = view.Undeliverables(size=3)
        for n in range(5):
            ring("undeliverable", {"destination": f"poe://x/{n}/s", "reason": "r" * 1000, "origin": "k"})
        self.assertEqual([u["destination"] for u in ring.recent], ["poe://x/2/s", "poe://x/3/s", "poe://x/4/s"])
        self.assertEqual((ring.total, len(ring.recent[0]["reason"])), (5, view.MAX_TEXT))

    def test_undeliverable_from_monitor(self):
        """When a kernel cannot deliver a post, then the ring watching its monitor has it."""
        kernel = Kernel("k", reactor=Clock())
        ring = view.Undeliverables()
        ring.watch(kernel)
        kernel.post("poe://k/nobody/state")
        kernel.flush()
        [entry] = ring.recent
        self.assertEqual((entry["destination"], entry["origin"]), ("poe://k/nobody/state", "k"))
        ring.unwatch(kernel)
        self.assertFalse(kernel.monitor.watching("undeliverable"))

    def test_two_way_links(self):
        """
        When a kernel advertises a link to us that we do not list, then it is
        not drawn; our own link is, before the neighbour's advert lists it.
        """
        from lightspeed.router import LinkState, Router

        router = Router("a", 1)
        router.link_up("b", 2)
        router.link_up("d")
        router.receive(LinkState("b", 1, 1, (("a", 3), ("c", 1))), "b")
        router.receive(LinkState("c", 1, 1, (("a", 1), ("b", 1))), "b")
        links = snapshot._two_way_links(router, {"a", "b", "c", "d"})
        self.assertEqual(links, [{"a": "a", "b": "b", "cost": 3}, {"a": "a", "b": "d", "cost": 1},
                                 {"a": "b", "b": "c", "cost": 1}])

    def test_not_networked(self):
        """When the kernel has not joined a network, then the picture is its stats() and itself alone."""
        kernel = Kernel("k", reactor=Clock())
        self.assertEqual(snapshot.node_stats(kernel)["kernel"], "k")
        self.assertEqual(snapshot.routez(kernel), {"kernel": "k", "links": [], "routes": {}, "kernels": [
            {"name": "k", "reachable": True, "incarnation": None, "local": True}]})
