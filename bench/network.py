"""
Network benchmarks, each against raw Twisted length-prefixed CBOR frames
(one message per frame, a 32-byte argument) measured in the same run:

- ``one_way``: posts per second from one process to another over loopback,
  counted when the receiving session's handler has run;
- ``request_rtt``: ``request()`` round-trip latency, median and p99;
- ``chain3``: posts per second across a 3-kernel chain (a relay in the
  middle), against the direct two-process figure of the same run.

The fair method: both senders are flow-controlled, so sender and receiver
work at once. The raw sender is an ``IPushProducer`` registered with its
transport: it writes frames until the transport's buffer passes its
high-water mark (``pauseProducing``) and goes on when it has drained
(``resumeProducing``). The lightspeed sender keeps ``2 * window`` messages
in ``kernel.backlog()`` (looked at every 64th post), waits on
``kernel.when_ready()`` and yields to the reactor every ``YIELD`` posts so
its link writes go out while it posts.
Every measurement runs in its own process; BENCH_PAIRS pairs alternate
raw/lightspeed (and direct/relay) order pair by pair, and the per-pair
ratios are printed with their min/median/max and the load average. The
last three lines are the median figures in the format ``bench/compare.py``
parses.

Run: ``python bench/network.py`` (BENCH_N, BENCH_RTT, BENCH_PAIRS to size it).
"""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The tree measured: this file's own, or BENCH_TREE (bench/compare.py
# --bench-from runs one tree's benchmark against another tree's code).
TREE = os.environ.get("BENCH_TREE") or os.path.dirname(HERE)
sys.path.insert(0, TREE)

N = int(os.environ.get("BENCH_N", "100000"))
RTT = int(os.environ.get("BENCH_RTT", "2000"))
PAIRS = int(os.environ.get("BENCH_PAIRS", "5"))
YIELD = 1000
ARG = b"x" * 32


# -- child processes ---------------------------------------------------------

def child_raw(n):
    import cbor2
    from twisted.internet import protocol, reactor
    from twisted.protocols.basic import Int32StringReceiver

    class Sink(Int32StringReceiver):
        MAX_LENGTH = 16 * 1024 * 1024
        count = 0

        def stringReceived(self, data):
            message = cbor2.loads(data)
            if message[0] == "echo":
                self.sendString(cbor2.dumps(["echo", message[1]]))
                return
            Sink.count += 1
            if Sink.count == n:
                Sink.count = 0
                self.sendString(cbor2.dumps(["done", n]))

    factory = protocol.Factory.forProtocol(Sink)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()


def child_lightspeed(name, n, connect_port=None):
    from twisted.internet import reactor

    from lightspeed import Kernel

    kernel = Kernel(name, reactor=reactor)
    count = [0]

    def hit(event):
        count[0] += 1
        if count[0] == n:
            count[0] = 0
            event.kernel.post(event.sender, "done", n)

    kernel.spawn(inline_states={
        "_start": lambda e: e.kernel.alias_set("sink"),
        "hit": hit,
        "echo": lambda e: e.args[0],
    })
    listener = kernel.listen("tcp:0:interface=127.0.0.1")
    if connect_port:
        kernel.connect(f"tcp:host=127.0.0.1:port={connect_port}")
    listener.whenListening().addCallback(lambda p: print(p.getHost().port, flush=True))
    reactor.run()


def spawn(*args):
    env = dict(os.environ, PYTHONPATH=TREE)
    proc = subprocess.Popen([sys.executable, __file__] + [str(a) for a in args], stdout=subprocess.PIPE,
                            env=env, text=True)
    port = int(proc.stdout.readline())
    return proc, port


# -- the measuring side ------------------------------------------------------

def measure_raw(port):
    import cbor2
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred, inlineCallbacks
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.interfaces import IPushProducer
    from twisted.protocols.basic import Int32StringReceiver
    from zope.interface import implementer

    class Client(Int32StringReceiver):
        MAX_LENGTH = 16 * 1024 * 1024
        waiting = None

        def stringReceived(self, data):
            d, self.waiting = self.waiting, None
            d.callback(cbor2.loads(data))

    @implementer(IPushProducer)
    class Sender:
        """
        Writes N frames while not paused; the transport pauses it past its
        high-water mark and resumes it when its buffer has drained.
        """

        def __init__(self, client, n):
            self.client, self.left = client, n
            self.paused = self.scheduled = False

        def pauseProducing(self):
            self.paused = True

        def resumeProducing(self):
            self.paused = False
            if not self.scheduled and self.left:
                self.scheduled = True
                reactor.callLater(0, self.produce)

        def stopProducing(self):
            self.left = 0

        def produce(self):
            self.scheduled = False
            send, dumps = self.client.sendString, cbor2.dumps
            while self.left and not self.paused:
                send(dumps(["hit", ARG]))
                self.left -= 1
            if not self.left:
                self.client.transport.unregisterProducer()

    results = {}

    @inlineCallbacks
    def run():
        client = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Client())
        client.transport.setTcpNoDelay(True)
        client.waiting = Deferred()
        start = time.perf_counter()
        sender = Sender(client, N)
        client.transport.registerProducer(sender, True)
        sender.resumeProducing()
        yield client.waiting
        results["one_way"] = N / (time.perf_counter() - start)
        latencies = []
        for i in range(RTT):
            client.waiting = Deferred()
            t = time.perf_counter()
            client.sendString(cbor2.dumps(["echo", ARG]))
            yield client.waiting
            latencies.append(time.perf_counter() - t)
        results["rtt"] = latencies
        client.transport.loseConnection()

    run().addBoth(lambda r: (reactor.stop(), r)[1])
    reactor.run()
    return results


def measure_lightspeed(port, target):
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred, inlineCallbacks
    from twisted.internet.task import deferLater

    from lightspeed import Kernel

    kernel = Kernel("bench-send", reactor=reactor)
    results = {}
    done = [None]
    kernel.spawn(inline_states={
        "_start": lambda e: e.kernel.alias_set("ctl"),
        "done": lambda e: done[0].callback(None),
    })

    @inlineCallbacks
    def run():
        yield kernel.connect(f"tcp:host=127.0.0.1:port={port}").whenConnected()
        if hasattr(kernel, "when_reachable"):
            yield kernel.when_reachable(target, timeout=30)
        else:  # a tree from before the convergence signal (bench/compare.py)
            while kernel.network.router.next_hop(target) is None:
                yield deferLater(reactor, 0.01, lambda: None)
        done[0] = Deferred()
        ctl = kernel.resolve("ctl")
        dest = f"poe://{target}/sink/hit"
        kernel.local.current = ctl  # post as the ctl session, so 'done' can answer it
        start = time.perf_counter()
        # Flow-controlled: keep the window full and as much waiting behind
        # it, and go on when the destination has taken it; yield to the
        # reactor every YIELD posts so the link writes go out meanwhile.
        # The backlog is looked at every 64th post (as the raw sender does
        # not ask its transport per frame either): at most 63 more than
        # 2 * window wait, far below the backlog's limit.
        # Trees from before flow control (bench/compare.py runs this file
        # against them too) only yield every YIELD posts.
        paced = hasattr(kernel, "when_ready")
        window = kernel.network.delivery.window if paced else 0
        for i in range(N):
            kernel.post(dest, ARG)
            if paced and i & 63 == 63 and kernel.backlog(target) >= 2 * window:
                kernel.local.current = None
                yield kernel.when_ready(target)
                kernel.local.current = ctl
            elif i % YIELD == YIELD - 1:
                kernel.local.current = None
                yield deferLater(reactor, 0, lambda: None)
                kernel.local.current = ctl
        kernel.local.current = None
        yield done[0]
        results["one_way"] = N / (time.perf_counter() - start)
        latencies = []
        echo = f"poe://{target}/sink/echo"
        for i in range(RTT):
            t = time.perf_counter()
            yield kernel.request(echo, ARG)
            latencies.append(time.perf_counter() - t)
        results["rtt"] = latencies
        yield kernel.shutdown()

    run().addBoth(lambda r: (reactor.stop(), r)[1])
    reactor.run()
    return results


def in_child(fn, *args):
    """
    Run a measuring function in a fresh process (each needs its own reactor).
    """
    import json

    env = dict(os.environ, PYTHONPATH=TREE)
    out = subprocess.run([sys.executable, __file__, "measure", fn] + [str(a) for a in args],
                         stdout=subprocess.PIPE, env=env, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def spread(ratios):
    return (f"min {min(ratios):.2f}x median {statistics.median(ratios):.2f}x "
            f"max {max(ratios):.2f}x")


def main():
    load0 = os.getloadavg()
    procs = []
    try:
        for args in (("raw", N), ("lightspeed", "bench-recv", N), ("lightspeed", "bench-relay", N)):
            procs.append(spawn(*args))
        (_, raw_port), (_, ls_port), (_, relay_port) = procs
        procs.append(spawn("lightspeed", "bench-end", N, relay_port))
        jobs = {"raw": ("raw", raw_port), "ls": ("lightspeed", ls_port, "bench-recv"),
                "chain": ("lightspeed", relay_port, "bench-end")}
        pairs = []
        for k in range(PAIRS):
            order = ["raw", "ls", "chain"] if k % 2 == 0 else ["chain", "ls", "raw"]
            got = {name: in_child(*jobs[name]) for name in order}
            for r in got.values():
                r["med"], r["p99"] = statistics.median(r["rtt"]), pct(r["rtt"], 0.99)
            pairs.append(got)
            raw, ls, chain = got["raw"], got["ls"], got["chain"]
            print(f"pair {k + 1} ({'/'.join(order)}): one_way ls {ls['one_way']:,.0f} raw {raw['one_way']:,.0f} "
                  f"{ls['one_way'] / raw['one_way']:.2f}x; rtt median ls {ls['med'] * 1e6:.0f} raw "
                  f"{raw['med'] * 1e6:.0f} us {ls['med'] / raw['med']:.2f}x; p99 ls {ls['p99'] * 1e6:.0f} raw "
                  f"{raw['p99'] * 1e6:.0f} us {ls['p99'] / raw['p99']:.2f}x; chain3 {chain['one_way']:,.0f} "
                  f"{chain['one_way'] / ls['one_way']:.2f}x", flush=True)
    finally:
        for p, _ in procs:
            p.kill()
    load1 = os.getloadavg()

    def med(name, key):
        return statistics.median(p[name][key] for p in pairs)

    def ratios(a, b, key):
        return [p[a][key] / p[b][key] for p in pairs]

    print(f"pairs: {PAIRS}, N {N}, RTT {RTT}; load average {load0[0]:.2f} -> {load1[0]:.2f}")
    print(f"one_way ratio ls/raw: {spread(ratios('ls', 'raw', 'one_way'))}")
    print(f"request_rtt median ratio ls/raw: {spread(ratios('ls', 'raw', 'med'))}")
    print(f"request_rtt p99 ratio ls/raw: {spread(ratios('ls', 'raw', 'p99'))}")
    print(f"request_rtt ls p99 / raw median (issue 10: <= 2): "
          f"{spread([p['ls']['p99'] / p['raw']['med'] for p in pairs])}")
    print(f"chain3 ratio relay/direct: {spread(ratios('chain', 'ls', 'one_way'))}")
    # Median figures over the pairs, in the format bench/compare.py parses.
    ls_ow, raw_ow, ch_ow = med("ls", "one_way"), med("raw", "one_way"), med("chain", "one_way")
    print(f"one_way: lightspeed {ls_ow:,.0f} posts/s; raw Twisted+cbor2 frames "
          f"{raw_ow:,.0f}/s; ratio {statistics.median(ratios('ls', 'raw', 'one_way')):.2f}x")
    ls_med, raw_med, ls_p99, raw_p99 = med("ls", "med"), med("raw", "med"), med("ls", "p99"), med("raw", "p99")
    print(f"request_rtt: lightspeed median {ls_med * 1e6:.0f} us p99 {ls_p99 * 1e6:.0f} us; raw median "
          f"{raw_med * 1e6:.0f} us p99 {raw_p99 * 1e6:.0f} us; ratio "
          f"{statistics.median(ratios('ls', 'raw', 'med')):.2f}x (median), "
          f"{statistics.median(ratios('ls', 'raw', 'p99')):.2f}x (p99)")
    print(f"chain3: lightspeed via a relay {ch_ow:,.0f} posts/s; direct {ls_ow:,.0f}/s; "
          f"ratio {statistics.median(ratios('chain', 'ls', 'one_way')):.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "raw":
        child_raw(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "lightspeed":
        child_lightspeed(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    elif len(sys.argv) > 1 and sys.argv[1] == "measure":
        import json

        if sys.argv[2] == "raw":
            result = measure_raw(int(sys.argv[3]))
        else:
            result = measure_lightspeed(int(sys.argv[3]), sys.argv[4])
        print(json.dumps(result))
    else:
        main()
