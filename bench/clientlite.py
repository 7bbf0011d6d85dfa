"""
ClientLite's request round trip against two blocking-socket baselines.

One server process runs a Twisted reactor with three listeners on
loopback, each in length-prefixed frames (a 4-byte big-endian length, then
the body) of CBOR:

- ``echo``: the server sends each frame back as it is, undecoded; the
  client writes ``["echo", value]`` and reads the frame back without
  decoding it (it checks the length only). The least any round trip on
  this stack costs: two system calls a side and the reactor's turn.
- ``raw-decode``: the server decodes the request ``[state, args]``
  (cbor2), finds the handler by state name in a dict, runs it, encodes
  the answer and sends it; the client encodes the request and decodes the
  answer. What a request needs without lightspeed's framing, streams,
  acks and routing (as ``bench/network.py``'s raw Twisted baseline).
- ``lite``: ``ClientLite.request("poe://bench/echo/ask", value)`` against
  a lightspeed kernel whose session ``echo`` answers ``ask`` with its
  argument;
- ``kernel``: the same request from a full Twisted kernel linked to the
  server, one at a time (what ClientLite replaces), for reference.

The value is 32 bytes. Each client is its own process. In a pair, the
echo, raw-decode and lite clients start together, each does
``BENCH_WARM`` round trips to warm up, and then they take turns: one
block of ``BENCH_BLOCK`` timed round trips each, in turn (the order
reversed in odd pairs), until each has done ``BENCH_N``; each reports the
median of its own. So all three see the machine in the same state, to
within a block (a few tens of milliseconds): on a shared machine whose
speed changes from second to second, one process after another would
compare different machines. The kernel client (a reactor of its own)
runs after them in its pair, alone. The ratios lite/echo and
lite/raw-decode of the ``BENCH_PAIRS`` pairs are printed with
min/median/max and the load average. Issue 12's goal is lite/echo <= 1.3.

Run: ``python bench/clientlite.py`` (BENCH_N, BENCH_WARM, BENCH_PAIRS,
BENCH_BLOCK, BENCH_PIN; BENCH_KERNEL=0 leaves the kernel client out). ``python
bench/clientlite.py serve`` alone prints the three ports and serves, for
profiling one client (``python bench/clientlite.py lite PORT``).
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
BLOCK = int(os.environ.get("BENCH_BLOCK", "250"))
#: BENCH_PIN: "split" (the default, with two CPUs or more) runs the server on the first CPU and every client on
#: the second, "same" all on the first, "none" leaves them where the scheduler puts them. Unpinned, the
#: scheduler puts one client beside the server and another across, run by run, and a wake-up across CPUs
#: costs tens of microseconds on this VM: the ratios then measure placement (see docs/tools.rst).
PIN = os.environ.get("BENCH_PIN", "split" if len(os.sched_getaffinity(0)) >= 2 else "none")
VALUE = b"x" * 32


def pin(role):
    """Keep this process on its CPU under :data:`PIN` (the server on the first, a client on the second)."""
    cpus = sorted(os.sched_getaffinity(0))
    if PIN == "split" and len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[0] if role == "server" else cpus[1]})
    elif PIN == "same":
        os.sched_setaffinity(0, {cpus[0]})


def serve():
    """The server process: prints the echo, raw-decode and lightspeed ports, then runs until killed."""
    pin("server")
    from twisted.internet import protocol, reactor
    from twisted.protocols.basic import Int32StringReceiver

    from lightspeed import Kernel
    from lightspeed.wire.codec import dumps, loads

    class Echo(Int32StringReceiver):
        MAX_LENGTH = 16 * 1024 * 1024

        def stringReceived(self, data):
            self.sendString(data)

    handlers = {"ask": lambda args: args[0]}

    class Decode(Int32StringReceiver):
        MAX_LENGTH = 16 * 1024 * 1024

        def stringReceived(self, data):
            state, args = loads(data)
            self.sendString(dumps(handlers[state](args)))

    echo = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    decode = reactor.listenTCP(0, protocol.Factory.forProtocol(Decode), interface="127.0.0.1")
    kernel = Kernel("bench")
    kernel.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("echo"), "ask": lambda e: e.args[0]})
    lite = kernel.listen("tcp:0:interface=127.0.0.1")

    def ready(_):
        print(echo.getHost().port, decode.getHost().port, lite.port.getHost().port, flush=True)

    reactor.callWhenRunning(lambda: reactor.callLater(0.2, ready, None))
    reactor.run()


def raw_client(port):
    """A connected blocking socket and ``round_trip(body) -> answer body``."""
    import socket
    import struct

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    header = struct.Struct(">I")

    def round_trip(body):
        sock.sendall(header.pack(len(body)) + body)
        data = sock.recv(65536)
        while len(data) < 4 or len(data) < 4 + header.unpack_from(data)[0]:
            data += sock.recv(65536)
        return data[4:]

    return round_trip


def echo_client(port):
    """``(one round trip, close)`` of the echo client."""
    import cbor2

    round_trip = raw_client(port)
    body = cbor2.dumps(["echo", VALUE])

    def once():
        assert len(round_trip(body)) == len(body)

    return once, lambda: None


def decode_client(port):
    """``(one round trip, close)`` of the raw-decode client."""
    import cbor2

    round_trip = raw_client(port)

    def once():
        assert cbor2.loads(round_trip(cbor2.dumps(["ask", [VALUE]]))) == VALUE

    return once, lambda: None


def lite_client(port):
    """``(one request, close)`` of ClientLite."""
    from lightspeed.clientlite import ClientLite

    client = ClientLite(("127.0.0.1", port)).connect()

    def once():
        assert client.request("poe://bench/echo/ask", VALUE) == VALUE

    return once, client.close


CLIENTS = {"echo": echo_client, "raw-decode": decode_client, "lite": lite_client}


def measure_alone(kind, port):
    """The median round trip of one client running alone (``python bench/clientlite.py KIND PORT``)."""
    once, close = CLIENTS[kind](port)
    try:
        return timed(once)
    finally:
        close()


def in_turns(kind, port):
    """
    A client that takes turns (``python bench/clientlite.py turns KIND
    PORT``): it warms up, says ``ready``, then times one block for each
    ``run N`` line on its standard input and answers ``done``; at ``end``
    it prints the median of all it timed.
    """
    once, close = CLIENTS[kind](port)
    for _ in range(WARM):
        once()
    print("ready", flush=True)
    times = []
    clock = time.perf_counter
    for line in sys.stdin:
        if line.startswith("run "):
            for _ in range(int(line.split()[1])):
                start = clock()
                once()
                times.append(clock() - start)
            print("done", flush=True)
        else:
            break
    close()
    print(statistics.median(times), flush=True)


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


def child_env():
    return dict(os.environ, PYTHONPATH=os.path.dirname(HERE))


def run_child(kind, port):
    out = subprocess.run([sys.executable, __file__, kind, str(port)], stdout=subprocess.PIPE, text=True,
                         check=True, env=child_env()).stdout
    return float(out.strip())


def run_in_turns(kinds, ports):
    """The median round trip of each of ``kinds``, their clients taking turns block by block (see above)."""
    children = {kind: subprocess.Popen([sys.executable, __file__, "turns", kind, str(ports[kind])],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env())
                for kind in kinds}
    try:
        for kind in kinds:
            assert children[kind].stdout.readline().strip() == "ready", kind
        for done in range(0, N, BLOCK):
            for kind in kinds:
                child = children[kind]
                child.stdin.write(f"run {min(BLOCK, N - done)}\n")
                child.stdin.flush()
                assert child.stdout.readline().strip() == "done", kind
        medians = {}
        for kind in kinds:
            child = children[kind]
            child.stdin.write("end\n")
            child.stdin.flush()
            medians[kind] = float(child.stdout.readline())
            child.wait()
        return medians
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()


def spread(values):
    return f"min {min(values):.3f}  median {statistics.median(values):.3f}  max {max(values):.3f}"


KINDS = {"echo": lambda port: measure_alone("echo", port), "raw-decode": lambda port: measure_alone("raw-decode", port),
         "lite": lambda port: measure_alone("lite", port), "kernel": measure_kernel}


def main():
    load0 = os.getloadavg()
    server = subprocess.Popen([sys.executable, __file__, "serve"], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
    kinds = ["echo", "raw-decode", "lite"] + (["kernel"] if os.environ.get("BENCH_KERNEL", "1") != "0" else [])
    got = {kind: [] for kind in kinds}
    try:
        echo_port, decode_port, lite_port = map(int, server.stdout.readline().split())
        ports = {"echo": echo_port, "raw-decode": decode_port, "lite": lite_port, "kernel": lite_port}
        turns = ["echo", "raw-decode", "lite"]
        for pair in range(PAIRS):
            medians = run_in_turns(turns if pair % 2 == 0 else turns[::-1], ports)
            for kind in turns:
                got[kind].append(medians[kind] * 1e6)
            if "kernel" in got:
                got["kernel"].append(run_child("kernel", ports["kernel"]) * 1e6)
            print(f"pair {pair + 1}: " + "  ".join(f"{kind} {got[kind][-1]:.1f} us" for kind in kinds)
                  + f"  lite/echo {got['lite'][-1] / got['echo'][-1]:.2f}"
                  f"  lite/raw-decode {got['lite'][-1] / got['raw-decode'][-1]:.2f}", flush=True)
    finally:
        server.kill()
        server.wait()
    load1 = os.getloadavg()
    print(f"request round trip, {N} timed per process (median), in turns of {BLOCK}, {PAIRS} pairs")
    names = {"echo": "bare echo, no decode (us):", "raw-decode": "raw decode + dispatch (us):",
             "lite": "ClientLite request (us):", "kernel": "Twisted kernel request (us):"}
    for kind in kinds:
        print(f"{names[kind]:<32}{spread(got[kind])}")
    for base, goal in (("echo", "   (goal <= 1.3)"), ("raw-decode", ""), ("kernel", "")):
        if base in got:
            ratios = [lite / other for lite, other in zip(got["lite"], got[base])]
            print(f"{'ratio lite/' + base + ':':<32}{spread(ratios)}{goal}")
    print(f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve()
    elif len(sys.argv) > 3 and sys.argv[1] == "turns":
        pin("client")
        in_turns(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 2:
        pin("client")
        print(KINDS[sys.argv[1]](int(sys.argv[2])))
    else:
        main()
