"""
ClientLite's request round trip against a bare blocking-socket echo.

One server process runs a Twisted reactor with two listeners on loopback:
a raw echo (length-prefixed CBOR frames: ``["echo", value]`` comes back as
it is) and a lightspeed kernel whose session ``echo`` answers ``ask`` with
its argument.  Each measurement is its own process, alternating pair by
pair (raw first in even pairs, ClientLite first in odd ones):

- ``raw``: a blocking socket writes one frame with a 32-byte value and
  reads the echo back, decoded with cbor2 (the least a client can do);
- ``lite``: ``ClientLite.request("poe://bench/echo/ask", value)``;
- ``kernel``: the same request from a full Twisted kernel linked to the
  server, one at a time (what ClientLite replaces), for reference.

Each does ``BENCH_WARM`` round trips to warm up, then ``BENCH_N`` timed ones,
and reports the median; the ratios lite/raw of the ``BENCH_PAIRS`` pairs
are printed with min/median/max and the load average.  The goal is 1.3.

Run: ``python bench/clientlite.py`` (BENCH_N, BENCH_WARM, BENCH_PAIRS).
"""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

N = int(os.environ.get("BENCH_N", "5000"))
WARM = int(os.environ.get("BENCH_WARM", "500"))
PAIRS = int(os.environ.get("BENCH_PAIRS", "5"))
VALUE = b"x" * 32


def serve():
    """The server process: prints both ports, then runs until killed."""
    from twisted.internet import protocol, reactor
    from twisted.protocols.basic import Int32StringReceiver

    from lightspeed import Kernel

    class Echo(Int32StringReceiver):
        MAX_LENGTH = 16 * 1024 * 1024

        def stringReceived(self, data):
            self.sendString(data)

    raw = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    kernel = Kernel("bench")
    kernel.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("echo"), "ask": lambda e: e.args[0]})
    lite = kernel.listen("tcp:0:interface=127.0.0.1")

    def ready(_):
        port = lite.port.getHost().port
        print(raw.getHost().port, port, flush=True)

    reactor.callWhenRunning(lambda: reactor.callLater(0.2, ready, None))
    reactor.run()


def measure_raw(port):
    import socket
    import struct

    import cbor2

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    header = struct.Struct(">I")

    def once():
        body = cbor2.dumps(["echo", VALUE])
        sock.sendall(header.pack(len(body)) + body)
        data = b""
        while len(data) < 4 or len(data) < 4 + header.unpack_from(data)[0]:
            data += sock.recv(65536)
        assert cbor2.loads(data[4:])[1] == VALUE

    return timed(once)


def measure_lite(port):
    from lightspeed.clientlite import ClientLite

    client = ClientLite(("127.0.0.1", port)).connect()

    def once():
        assert client.request("poe://bench/echo/ask", VALUE) == VALUE

    try:
        return timed(once)
    finally:
        client.close()


def measure_kernel(port):
    """The same requests from a full Twisted kernel (the reference client), one at a time."""
    from twisted.internet import defer, reactor, task

    from lightspeed import Kernel

    kernel = Kernel("kclient")
    kernel.connect(f"tcp:host=127.0.0.1:port={port}")
    result = []

    @defer.inlineCallbacks
    def run():
        while "bench" not in kernel.list_kernels():
            yield task.deferLater(reactor, 0.01, lambda: None)
        times = []
        clock = time.perf_counter
        for i in range(WARM + N):
            start = clock()
            value = yield kernel.request("poe://bench/echo/ask", VALUE)
            assert value == VALUE
            if i >= WARM:
                times.append(clock() - start)
        result.append(statistics.median(times))
        reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    return result[0]


def timed(once):
    for _ in range(WARM):
        once()
    times = []
    clock = time.perf_counter
    for _ in range(N):
        start = clock()
        once()
        times.append(clock() - start)
    return statistics.median(times)


def run_child(kind, port):
    out = subprocess.run([sys.executable, __file__, kind, str(port)], stdout=subprocess.PIPE, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE))).stdout
    return float(out.strip())


def spread(values):
    return f"min {min(values):.3f}  median {statistics.median(values):.3f}  max {max(values):.3f}"


def main():
    load0 = os.getloadavg()
    server = subprocess.Popen([sys.executable, __file__, "serve"], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
    try:
        raw_port, lite_port = map(int, server.stdout.readline().split())
        raws, lites, kernels, ratios, versus = [], [], [], [], []
        for pair in range(PAIRS):
            order = [("raw", raw_port), ("lite", lite_port), ("kernel", lite_port)]
            if pair % 2:
                order.reverse()
            got = {kind: run_child(kind, port) for kind, port in order}
            raws.append(got["raw"] * 1e6)
            lites.append(got["lite"] * 1e6)
            kernels.append(got["kernel"] * 1e6)
            ratios.append(got["lite"] / got["raw"])
            versus.append(got["lite"] / got["kernel"])
            print(f"pair {pair + 1}: raw {raws[-1]:.1f} us  lite {lites[-1]:.1f} us  kernel {kernels[-1]:.1f} us  "
                  f"lite/raw {ratios[-1]:.2f}  lite/kernel {versus[-1]:.2f}", flush=True)
    finally:
        server.kill()
        server.wait()
    load1 = os.getloadavg()
    print(f"request round trip, {N} timed per process (median), {PAIRS} alternating pairs")
    print(f"raw blocking-socket echo (us): {spread(raws)}")
    print(f"ClientLite request (us):       {spread(lites)}")
    print(f"Twisted kernel request (us):   {spread(kernels)}")
    print(f"ratio lite/raw:                {spread(ratios)}   (goal <= 1.3)")
    print(f"ratio lite/kernel:             {spread(versus)}")
    print(f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve()
    elif len(sys.argv) > 2:
        print({"raw": measure_raw, "lite": measure_lite, "kernel": measure_kernel}[sys.argv[1]](int(sys.argv[2])))
    else:
        main()
