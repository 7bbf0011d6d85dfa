"""
Network benchmarks, each against raw Twisted length-prefixed CBOR frames
(one message per frame, a 32-byte argument) measured in the same run:

- ``one_way``: posts per second from one process to another over loopback,
  counted when the receiving session's handler has run;
- ``request_rtt``: ``request()`` round-trip latency, median and p99;
- ``chain3``: posts per second across a 3-kernel chain (a relay in the
  middle), against the direct two-process figure of the same run.

Run: ``python bench/network.py`` (BENCH_N, BENCH_RTT to size it).
"""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

N = int(os.environ.get("BENCH_N", "100000"))
RTT = int(os.environ.get("BENCH_RTT", "2000"))
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
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
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
    from twisted.protocols.basic import Int32StringReceiver

    class Client(Int32StringReceiver):
        MAX_LENGTH = 16 * 1024 * 1024
        waiting = None

        def stringReceived(self, data):
            d, self.waiting = self.waiting, None
            d.callback(cbor2.loads(data))

    results = {}

    @inlineCallbacks
    def run():
        client = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Client())
        client.transport.setTcpNoDelay(True)
        client.waiting = Deferred()
        start = time.perf_counter()
        for i in range(N):
            client.sendString(cbor2.dumps(["hit", ARG]))
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
        while kernel.network.router.next_hop(target) is None:
            yield deferLater(reactor, 0.01, lambda: None)
        done[0] = Deferred()
        ctl = kernel.resolve("ctl")
        dest = f"poe://{target}/sink/hit"
        kernel.local.current = ctl  # post as the ctl session, so 'done' can answer it
        start = time.perf_counter()
        # Flow-controlled: keep the window full and as much waiting behind
        # it, and go on when the destination has taken it.
        window = kernel.network.delivery.window
        for i in range(N):
            kernel.post(dest, ARG)
            if kernel.backlog(target) >= 2 * window:
                kernel.local.current = None
                yield kernel.when_ready(target)
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

    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    out = subprocess.run([sys.executable, __file__, "measure", fn] + [str(a) for a in args],
                         stdout=subprocess.PIPE, env=env, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main():
    raw_proc, raw_port = spawn("raw", N)
    ls_proc, ls_port = spawn("lightspeed", "bench-recv", N)
    relay_proc, relay_port = spawn("lightspeed", "bench-relay", N)
    end_proc, end_port = spawn("lightspeed", "bench-end", N, relay_port)
    try:
        raw = in_child("raw", raw_port)
        ls = in_child("lightspeed", ls_port, "bench-recv")
        chain = in_child("lightspeed", relay_port, "bench-end")
    finally:
        for p in (raw_proc, ls_proc, relay_proc, end_proc):
            p.kill()
    print(f"one_way: lightspeed {ls['one_way']:,.0f} posts/s; raw Twisted+cbor2 frames "
          f"{raw['one_way']:,.0f}/s; ratio {ls['one_way'] / raw['one_way']:.2f}x")
    ls_med, raw_med = statistics.median(ls["rtt"]), statistics.median(raw["rtt"])
    ls_p99, raw_p99 = pct(ls["rtt"], 0.99), pct(raw["rtt"], 0.99)
    print(f"request_rtt: lightspeed median {ls_med * 1e6:.0f} us p99 {ls_p99 * 1e6:.0f} us; raw median "
          f"{raw_med * 1e6:.0f} us p99 {raw_p99 * 1e6:.0f} us; ratio {ls_med / raw_med:.2f}x (median), "
          f"{ls_p99 / raw_p99:.2f}x (p99)")
    print(f"chain3: lightspeed via a relay {chain['one_way']:,.0f} posts/s; direct {ls['one_way']:,.0f}/s; "
          f"ratio {chain['one_way'] / ls['one_way']:.2f}x")


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
