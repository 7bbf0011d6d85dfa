"""
The long fuzz run (issue 11): hostile connections against a real node
process over loopback TCP, while an honest kernel keeps posting to it.

Three kinds of process:

- the **node** (``fuzz.py node``): a kernel ``fuzz-node`` listening on
  127.0.0.1 (compression on, so zlib streams are fuzzed too), with an echo
  session. It counts the frames it decodes, the handshakes it completes,
  the BYE codes it sends, and the critical and failure (traceback) log
  events, and prints them with its RSS and peak RSS (``VmHWM``) as one
  JSON line a second;
- FUZZ_PROCS **workers** (``fuzz.py worker PORT SEED FRAMES``): each keeps
  FUZZ_PARALLEL hostile connections open at a time (see
  :obj:`lightspeed.test.fuzzer`: random bytes, oversize and truncated
  frames, hostile handshakes, links that send bursts of valid and mutated
  frames of every message type) until it has sent its share of frames;
- the **controller** (``fuzz.py``): starts the others, and runs the honest
  kernel, linked to the node, posting ``ping(n)`` every 20 ms and
  counting the ``pong(n)`` answers.

The run ends when the node has decoded FUZZ_FRAMES frames (the workers
are then stopped; their counts are as of their last report, every 500
connections). It prints frames sent and decoded by the node, handshakes tried and
completed, connections, BYE codes, crashes (the node process dying),
tracebacks and critical events logged by the node, its peak RSS, and the
honest link's posts, answers, order and longest wait. Exit status 0 only
if the node survived with no traceback and every honest post was answered
in order.

Environment: FUZZ_FRAMES (total frames, default 1,000,000), FUZZ_PROCS
(worker processes, default 2), FUZZ_PARALLEL (connections per worker at a
time, default 16), FUZZ_SEED (default 1); FUZZ_REASONS=1 counts the BYEs by
code and reason.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def _memory():
    """(RSS, peak RSS) of this process in bytes, from /proc."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def node():
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    import lightspeed.wire.connection as connection
    from lightspeed import Kernel
    from lightspeed.test.fuzzer import Echo, Tracebacks

    counts = {"decoded": 0, "handshakes": 0, "connections": 0}
    byes = {}
    real_loads, real_close, real_start = connection.loads, connection.Connection.close, connection.Connection.start
    real_ready = connection.Connection._ready

    def loads(data):
        counts["decoded"] += 1
        return real_loads(data)

    def close(self, code, message):
        if self.state != "closed":
            key = code if not os.environ.get("FUZZ_REASONS") else f"{code}: {message[:70]}"
            byes[key] = byes.get(key, 0) + 1
        return real_close(self, code, message)

    def start(self):
        counts["connections"] += 1
        return real_start(self)

    def ready(self, message):
        real_ready(self, message)
        if self.state == "up":
            counts["handshakes"] += 1

    connection.loads, connection.Connection.close, connection.Connection.start = loads, close, start
    connection.Connection._ready = ready
    tracebacks = Tracebacks().start()
    kernel = Kernel("fuzz-node", reactor=reactor)
    kernel.spawn(Echo())
    # Every hostile connection comes from 127.0.0.1: lift the pre-handshake
    # caps (tested in lightspeed.test.test_preauth) so that they all get in.
    listener = kernel.listen("tcp:0:interface=127.0.0.1", compression=True, max_unauthenticated=4096,
                             max_unauthenticated_per_address=4096, max_unauthenticated_bytes=1 << 30)

    def report():
        rss, peak = _memory()
        print(json.dumps(dict(counts, byes=byes, rss=rss, peak_rss=peak, failures=tracebacks.failures,
                              critical=tracebacks.critical, first=tracebacks.first, kinds=tracebacks.kinds,
                              links=len(kernel.network.links()))), flush=True)

    def listening(port):
        print(json.dumps({"port": port.getHost().port}), flush=True)
        LoopingCall(report).start(1.0)

    listener.whenListening().addCallback(listening)
    reactor.run()


def worker(port, seed, frames):
    from twisted.internet import reactor

    from lightspeed.test.fuzzer import FuzzRun

    parallel = int(os.environ.get("FUZZ_PARALLEL", "16"))

    def progress(run):
        print(json.dumps(dict(run.generator.stats, connections=run.done, failed=run.failed)), flush=True)

    run = FuzzRun(reactor, "127.0.0.1", int(port), seed, connections=10 ** 9, parallel=parallel,
                  frames=int(frames), progress=progress)

    def done(stats):
        print(json.dumps(stats), flush=True)
        reactor.stop()

    run.start().addCallback(done)
    reactor.run()


def _reader(process, lines, key=None):
    for line in process.stdout:
        if key is None:
            lines.append(json.loads(line))
        else:
            lines[key] = json.loads(line)


def main():
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    from lightspeed import Kernel
    from lightspeed.test.fuzzer import Honest

    frames = int(os.environ.get("FUZZ_FRAMES", "1000000"))
    procs = int(os.environ.get("FUZZ_PROCS", "2"))
    seed = os.environ.get("FUZZ_SEED", "1")
    env = dict(os.environ, PYTHONPATH=ROOT)
    me = os.path.abspath(__file__)
    started = time.time()
    log = open(os.path.join(tempfile.gettempdir(), f"fuzz-node-{os.getpid()}.log"), "w")
    node_process = subprocess.Popen([sys.executable, me, "node"], stdout=subprocess.PIPE, stderr=log, env=env,
                                    text=True)
    node_lines = []
    threading.Thread(target=_reader, args=(node_process, node_lines), daemon=True).start()
    while not node_lines:
        time.sleep(0.05)
    port = node_lines.pop(0)["port"]
    honest = Kernel("honest", reactor=reactor)
    session = Honest("fuzz-node", time.monotonic)
    workers, results = [], {}

    def linked(_):
        honest.spawn(session)
        for i in range(procs):
            # Each worker may send five times its share: frames after one that closes its link are never
            # read; the run ends when the node has decoded FUZZ_FRAMES.
            process = subprocess.Popen([sys.executable, me, "worker", str(port), f"{seed}.{i}",
                                        str(5 * frames // procs)], stdout=subprocess.PIPE, env=env, text=True)
            threading.Thread(target=_reader, args=(process, results, i), daemon=True).start()
            workers.append(process)
        watch.start(1.0)

    def check():
        status = node_lines[-1] if node_lines else {}
        done = status.get("decoded", 0) >= frames or all(p.poll() is not None for p in workers)
        if node_process.poll() is not None or done:
            watch.stop()
            for process in workers:
                if process.poll() is None:
                    process.terminate()
            session.running = False
            reactor.callLater(3.0, finish)
        elif status and int(time.time() - started) % 15 == 0:
            print(f"  {time.time() - started:5.0f} s: node decoded {status['decoded']:,} frames, "
                  f"{status['connections']:,} connections, RSS {status['rss'] / 2 ** 20:.0f} MiB, "
                  f"tracebacks {status['failures']}, honest {len(session.answered)}/{session.sent}", flush=True)

    def finish():
        elapsed = time.time() - started
        crashed = node_process.poll() is not None
        time.sleep(1.2)
        status = node_lines[-1] if node_lines else {}
        if not crashed:
            node_process.terminate()
        totals = {}
        for result in results.values():
            for key, value in result.items():
                totals[key] = totals.get(key, 0) + value
        in_order = session.answered == list(range(session.sent))
        print(f"fuzz run, seed {seed}, {elapsed:.0f} s, {procs} workers x {os.environ.get('FUZZ_PARALLEL', '16')} "
              "connections at a time")
        print(f"  frames sent           {totals.get('frames', 0):,} ({totals.get('mutated', 0):,} mutated; "
              "frames after one that closes its link are never read)")
        print(f"  frames decoded (node) {status.get('decoded', 0):,}")
        print(f"  connections           {totals.get('connections', 0):,} (node saw {status.get('connections', 0):,}; "
              "workers report every 500)")
        print(f"  handshakes tried      {totals.get('handshakes', 0):,} (node completed {status.get('handshakes', 0):,})")
        print("  scenarios             " + ", ".join(f"{k} {totals.get(k, 0):,}" for k in
                                                     ("link", "handshake", "random", "oversize", "truncated")))
        print("  BYE codes (node)      " + ", ".join(f"{k} {v:,}" for k, v in
                                                     sorted(status.get("byes", {}).items(), key=lambda kv: -kv[1])))
        print(f"  crashes               {1 if crashed else 0} (node log: {log.name})")
        print(f"  tracebacks logged     {status.get('failures', '?')} (critical {status.get('critical', '?')})")
        for kind, count in sorted(status.get("kinds", {}).items(), key=lambda kv: -kv[1]):
            print(f"    {count:6,} x {kind}")
        if status.get("first"):
            print("  first traceback:\n" + status["first"])
        print(f"  node RSS              {status.get('rss', 0) / 2 ** 20:.1f} MiB now, "
              f"{status.get('peak_rss', 0) / 2 ** 20:.1f} MiB peak")
        print(f"  honest link           {session.sent:,} posts, {len(session.answered):,} answered, "
              f"{'in order' if in_order else 'NOT in order'}, longest wait {session.longest_gap:.2f} s, "
              f"{session.undeliverable} undeliverable")
        ok = not crashed and status.get("failures") == 0 and status.get("critical") == 0 and in_order \
            and session.sent > 0
        reactor.stop()
        os._exit(0 if ok else 1)

    watch = LoopingCall(check)
    honest.connect(f"tcp:host=127.0.0.1:port={port}").whenConnected().addCallback(linked)
    reactor.run()


if __name__ == "__main__":
    if sys.argv[1:2] == ["node"]:
        node()
    elif sys.argv[1:2] == ["worker"]:
        worker(*sys.argv[2:5])
    else:
        main()
