"""
The long chaos proof of end-to-end delivery (issue 9), over real TCP
between processes.

Nine kernel processes form a mesh on 127.0.0.1 with cycles everywhere::

    senders   s1 - s2 - s3 - s1      (a ring)
    relays    x1 - x2 - x3 - x1      (a ring; each si links xi and x(i+1),
    receivers r1 - r2 - r3 - r1       each ri links xi and x(i+1))

Every path from a sender to a receiver crosses a relay, and after any one
relay and any one link are gone there is still a path.  Each sender posts
numbered messages ``got(n)``, n = 0, 1, 2, ..., to the session ``rx`` of
every receiver at a steady rate, flow-controlled by ``kernel.backlog(r)``
(it never lets more than :data:`LIMIT` wait unacknowledged, and skips a
receiver it has no route to), and records each ``_undeliverable`` notice
``(destination, reason, (n,))``.  Each receiver marks the numbers it gets
per sender and counts duplicates and late (out-of-order) arrivals.

The parent is the controller.  It drives each child over its stdin and
stdout, one JSON line per request and one per answer; a child's log goes
to a file in a temporary directory.  While the senders run it drops
CHAOS_KILLS links abruptly (``abortConnection()`` on one end, chosen at
random; the connecting end reconnects by itself) and, half-way, kills one
relay with SIGKILL and starts it again on the same port under the same
name (a new incarnation) CHAOS_DOWN seconds later.  When every message
has been posted it waits until each sender's backlog to each receiver is
0 (or CHAOS_SETTLE seconds pass), then collects the marks and notices and
prints, per (sender, receiver) pair: sent, delivered, lost (neither
delivered nor reported), duplicated, reordered, and the notices by reason.
All senders and receivers live through the run, so lost, duplicated and
reordered must be 0 everywhere: the exit status is 0 only then.

Run: ``python bench/chaos.py``.  Environment: CHAOS_POSTS (total posts,
default 100000), CHAOS_KILLS (link drops, default 20), CHAOS_SEED,
CHAOS_SECONDS (the sending period, default 90), CHAOS_DOWN (default 3),
CHAOS_SETTLE (default 120).
"""

import base64
import json
import math
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

SENDERS = ["s1", "s2", "s3"]
RELAYS = ["x1", "x2", "x3"]
RECEIVERS = ["r1", "r2", "r3"]
#: (a, b): a connects to b.
EDGES = ([("s1", "s2"), ("s2", "s3"), ("s3", "s1"), ("x1", "x2"), ("x2", "x3"), ("x3", "x1"),
          ("r1", "r2"), ("r2", "r3"), ("r3", "r1")]
         + [(f"s{i}", f"x{i}") for i in (1, 2, 3)] + [(f"x{i % 3 + 1}", f"s{i}") for i in (1, 2, 3)]
         + [(f"x{i}", f"r{i}") for i in (1, 2, 3)] + [(f"r{i}", f"x{i % 3 + 1}") for i in (1, 2, 3)])
#: Most messages a sender lets wait unacknowledged per receiver.
LIMIT = 2048


# -- a child: one kernel ------------------------------------------------------------

class Sender:
    def __init__(self, kernel, to, count, rate):
        self.to, self.count, self.rate = to, count, rate
        self.sent = {r: 0 for r in to}
        self.notices = {r: {} for r in to}
        kernel.spawn(inline_states={"_start": self.start, "tick": self.tick, "_undeliverable": self.notice})

    def start(self, event):
        event.kernel.alias_set("tx")
        self.t0 = time.time()
        event.kernel.yield_("tick")

    def tick(self, event):
        kernel = event.kernel
        due = min(self.count, int(self.rate * (time.time() - self.t0)) + 1)
        for r in self.to:
            if kernel.network.router.next_hop(r) is None:
                continue
            room, dest = LIMIT - kernel.backlog(r), f"poe://{r}/rx/got"
            while self.sent[r] < due and room > 0:
                kernel.post(dest, self.sent[r])
                self.sent[r] += 1
                room -= 1
        if any(n < self.count for n in self.sent.values()):
            kernel.delay_set("tick", 0.01)

    def notice(self, event):
        destination, reason, args = event.args
        r = destination.split("/")[2]
        self.notices.setdefault(r, {}).setdefault(reason.split(";")[0], []).append([args[0], round(time.time(), 3)])


class Receiver:
    def __init__(self, kernel):
        self.by = {}
        kernel.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("rx"), "got": self.got})

    def got(self, event):
        s, n = event.sender.remote_kernel, event.arg0
        st = self.by.get(s)
        if st is None:
            st = self.by[s] = {"seen": bytearray(), "top": -1, "count": 0, "dups": 0, "reordered": 0, "odd": []}
        seen = st["seen"]
        if n >= len(seen):
            seen.extend(bytes(n + 1 - len(seen)))
        kind = "dup" if seen[n] else None
        if kind:
            st["dups"] += 1
        else:
            seen[n] = 1
            st["count"] += 1
            if n < st["top"]:
                st["reordered"] += 1
                kind = "late"
            elif n > st["top"] + 1:
                kind = "gap"
        if kind and len(st["odd"]) < 50:
            st["odd"].append([kind, n, st["top"], round(time.time(), 3)])
        st["top"] = max(st["top"], n)


def child(name, port):
    from twisted.internet import reactor, stdio
    from twisted.logger import globalLogBeginner, textFileLogObserver
    from twisted.protocols.basic import LineReceiver

    from lightspeed import Kernel

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    kernel = Kernel(name, reactor=reactor)
    roles = {"receiver": Receiver(kernel) if name in RECEIVERS else None, "sender": None}

    def answer(request):
        op = request["op"]
        if op == "connect":
            for p in request["ports"]:
                kernel.connect(f"tcp:host=127.0.0.1:port={p}:timeout=5")
            return {}
        if op == "ping":
            router = kernel.network.router
            return {"reachable": sorted(router.reachable()), "hops": {k: router.next_hop(k) for k in RECEIVERS}}
        if op == "send":
            roles["sender"] = Sender(kernel, request["to"], request["count"], request["rate"])
            return {}
        if op == "drop":
            links = [link for link in kernel.network.links() if link.peer.name == request["peer"]]
            for link in links:
                link.transport.abortConnection()
            return {"dropped": len(links)}
        if op == "stats":
            delivery = kernel.network.delivery
            out = {"retransmitted": delivery.retransmitted, "duplicates": delivery.receiving.duplicates,
                   "dropped": kernel.network.relay.dropped}
            tx, rx = roles["sender"], roles["receiver"]
            if tx is not None:
                out.update(sent=tx.sent, notices=tx.notices, backlog={r: kernel.backlog(r) for r in tx.to})
            if rx is not None:
                out["got"] = {s: {k: v for k, v in st.items() if k != "seen"} for s, st in rx.by.items()}
                if request.get("full"):
                    for s, st in rx.by.items():
                        out["got"][s]["seen"] = base64.b64encode(bytes(st["seen"])).decode()
            return out
        if op == "quit":
            reactor.callLater(0.1, reactor.stop)
            return {}
        raise ValueError(f"unknown op {op!r}")

    class Control(LineReceiver):
        delimiter = b"\n"
        MAX_LENGTH = 1 << 20

        def lineReceived(self, line):
            try:
                reply = answer(json.loads(line))
            except Exception as e:  # the controller reports it
                reply = {"error": repr(e)}
            self.sendLine(json.dumps(reply).encode())

        def connectionLost(self, reason):
            if reactor.running:
                reactor.stop()  # the controller went away

    control = Control()

    def listening(p):
        stdio.StandardIO(control)
        control.sendLine(json.dumps({"port": p.getHost().port}).encode())

    def failed(f):
        print(json.dumps({"error": str(f.value)}), flush=True)
        reactor.stop()

    kernel.listen(f"tcp:{port}:interface=127.0.0.1").whenListening().addCallbacks(listening, failed)
    reactor.run()


# -- the controller -------------------------------------------------------------------

class Child:
    def __init__(self, name, port, logdir, generation):
        self.name, env = name, dict(os.environ, PYTHONPATH=ROOT)
        self.log = open(os.path.join(logdir, f"{name}.{generation}.log"), "w")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "child", name, str(port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
                                     text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = self._answer(30)["port"]

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _answer(self, timeout):
        line = self.lines.get(timeout=timeout)
        if line is None:
            raise RuntimeError(f"kernel {self.name} exited ({self.proc.poll()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"kernel {self.name}: {reply['error']}")
        return reply

    def ask(self, op, timeout=60, **kw):
        self.proc.stdin.write(json.dumps(dict(kw, op=op)) + "\n")
        self.proc.stdin.flush()
        return self._answer(timeout)


def main():
    def env(key, default):
        return type(default)(os.environ.get(key, default))

    posts, kills, seed = env("CHAOS_POSTS", 100000), env("CHAOS_KILLS", 20), env("CHAOS_SEED", int(time.time()))
    seconds, down, settle = env("CHAOS_SECONDS", 90.0), env("CHAOS_DOWN", 3.0), env("CHAOS_SETTLE", 120.0)
    rng = random.Random(seed)
    per_pair = math.ceil(posts / (len(SENDERS) * len(RECEIVERS)))
    logdir = tempfile.mkdtemp(prefix="lightspeed-chaos-")
    start = time.time()
    print(f"chaos: {per_pair * 9} posts ({per_pair} per pair) over {seconds:.0f} s, {kills} link kills, "
          f"relay SIGKILL down {down:.0f} s, seed {seed}; load {os.getloadavg()}; logs in {logdir}", flush=True)
    kids = {name: Child(name, 0, logdir, 1) for name in SENDERS + RELAYS + RECEIVERS}

    def connect(name):
        kids[name].ask("connect", ports=[kids[b].port for a, b in EDGES if a == name])

    def stamp():
        return f"[{time.time() - start:7.2f}s]"

    try:
        for name in kids:
            connect(name)
        deadline = time.time() + 60
        while not all(set(RECEIVERS) <= set(kids[s].ask("ping")["reachable"]) for s in SENDERS):
            if time.time() > deadline:
                raise RuntimeError("the mesh did not form within 60 s")
            time.sleep(0.2)
        print(f"{stamp()} mesh up: {len(EDGES)} links", flush=True)
        for s in SENDERS:
            kids[s].ask("send", to=RECEIVERS, count=per_pair, rate=per_pair / seconds)
        t0 = time.time()
        victim = None  # the relay that is the first hop of the most pairs when its time comes
        plan = [(0.05 * seconds + (0.9 * seconds) * (i + 0.5) / kills, "kill link") for i in range(kills)]
        plan.append((0.5 * seconds + 0.45 * seconds / max(kills, 1), "kill relay"))
        plan.sort()
        dead, restart_at, dropped, events = None, None, 0, []
        next_progress = t0 + 10
        while plan or restart_at is not None:
            now = time.time()
            if restart_at is not None and now >= restart_at:
                kids[victim] = Child(victim, kids[victim].port, logdir, 2)
                connect(victim)
                dead, restart_at = None, None
                events.append((now, f"relay {victim} restarted (new process, pid {kids[victim].proc.pid})"))
                print(f"{stamp()} {events[-1][1]}", flush=True)
                continue
            if plan and now - t0 >= plan[0][0]:
                _, what = plan.pop(0)
                if what == "kill relay":
                    hops = {(s, r): h for s in SENDERS for r, h in kids[s].ask("ping")["hops"].items()}
                    victim = max(RELAYS, key=lambda x: (list(hops.values()).count(x), rng.random()))
                    via = [f"{s}->{r}" for (s, r), h in hops.items() if h == victim]
                    kids[victim].proc.kill()
                    kids[victim].proc.wait()
                    dead, restart_at = victim, time.time() + down
                    events.append((time.time(), f"relay {victim} killed with SIGKILL (first hop of "
                                                f"{', '.join(via) or 'no pair'})"))
                else:
                    for _ in range(20):
                        a, b = rng.choice(EDGES)
                        if dead in (a, b):
                            continue
                        end, other = (a, b) if rng.random() < 0.5 else (b, a)
                        if kids[end].ask("drop", peer=other)["dropped"]:
                            dropped += 1
                            events.append((time.time(), f"link {end} -> {other} aborted by {end} (#{dropped})"))
                            break
                    else:
                        events.append((time.time(), "no link up to drop"))
                print(f"{stamp()} {events[-1][1]}", flush=True)
                continue
            if now >= next_progress:
                next_progress += 10
                sent = sum(sum(kids[s].ask("stats")["sent"].values()) for s in SENDERS)
                got = sum(st["count"] for r in RECEIVERS for st in kids[r].ask("stats").get("got", {}).values())
                print(f"{stamp()} progress: sent {sent}, delivered {got}; load {os.getloadavg()[0]:.2f}",
                      flush=True)
            time.sleep(0.02)
        # Everything posted, then every backlog empty.
        deadline = time.time() + settle + seconds
        while True:
            stats = {s: kids[s].ask("stats") for s in SENDERS}
            posted = all(n >= per_pair for st in stats.values() for n in st["sent"].values())
            pending = sum(n for st in stats.values() for n in st["backlog"].values())
            if posted and not pending:
                break
            if time.time() > deadline:
                print(f"{stamp()} settle timed out: posted all {posted}, backlog {pending}", flush=True)
                break
            time.sleep(0.5)
        time.sleep(1.0)  # the last deliveries and notices reach their sessions
        print(f"{stamp()} settled", flush=True)
        stats = {name: kids[name].ask("stats", full=True) for name in kids}
    finally:
        for kid in kids.values():
            try:
                kid.ask("quit", timeout=5)
            except Exception:
                pass
        for kid in kids.values():
            try:
                kid.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kid.proc.kill()
    return report(stats, events, dropped, victim, start, logdir)


def report(stats, events, dropped, victim, start, logdir):
    head = f"{'pair':<9}{'sent':>8}{'delivered':>10}{'lost':>6}{'dup':>5}{'reord':>6}{'dlv+rep':>8}  undeliverable"
    print(head)
    total = {"sent": 0, "delivered": 0, "lost": 0, "dup": 0, "reord": 0, "both": 0}
    reasons_total = {}
    details = []
    for s in SENDERS:
        for r in RECEIVERS:
            sent = stats[s]["sent"][r]
            got = stats[r].get("got", {}).get(s, {"count": 0, "dups": 0, "reordered": 0, "odd": [], "seen": ""})
            seen = base64.b64decode(got["seen"])
            reported = {}
            for reason, items in stats[s]["notices"].get(r, {}).items():
                for n, _ in items:
                    reported[n] = reason
                reasons_total[reason] = reasons_total.get(reason, 0) + len(items)
            lost = [n for n in range(sent) if not (n < len(seen) and seen[n]) and n not in reported]
            both = [n for n in reported if n < len(seen) and seen[n]]
            phantom = [n for n in range(sent, len(seen)) if seen[n]]
            by_reason = ", ".join(f"{k}: {len(v)}" for k, v in stats[s]["notices"].get(r, {}).items()) or "-"
            print(f"{s}->{r:<5}{sent:>8}{got['count']:>10}{len(lost):>6}{got['dups']:>5}{got['reordered']:>6}"
                  f"{len(both):>8}  {by_reason}")
            for key, value in (("sent", sent), ("delivered", got["count"]), ("lost", len(lost)),
                               ("dup", got["dups"]), ("reord", got["reordered"]), ("both", len(both))):
                total[key] += value
            if lost or got["dups"] or got["reordered"] or both or phantom or got["odd"]:
                details.append((s, r, lost, both, phantom, got["odd"]))
    print(f"{'total':<9}{total['sent']:>8}{total['delivered']:>10}{total['lost']:>6}{total['dup']:>5}"
          f"{total['reord']:>6}{total['both']:>8}  "
          + (", ".join(f"{k}: {v}" for k, v in reasons_total.items()) or "-"))
    print("counters (retransmitted / duplicates dropped / relay drops): " + ", ".join(
        f"{name} {st['retransmitted']}/{st['duplicates']}/{st['dropped']}" for name, st in stats.items()))
    print(f"links aborted: {dropped}; relay {victim} killed with SIGKILL and restarted")
    for s, r, lost, both, phantom, odd in details:
        print(f"anomalies {s}->{r}:")
        if lost:
            print(f"  lost ({len(lost)}): {ranges(lost)}")
        if both:
            print(f"  delivered and also reported ({len(both)}): {ranges(sorted(both))}")
        if phantom:
            print(f"  delivered but never sent ({len(phantom)}): {ranges(phantom)}")
        for kind, n, top, when in odd:
            near = min(events, key=lambda e: abs(e[0] - when)) if events else None
            print(f"  {kind} n={n} (highest before {top}) at {when - start:.2f}s; nearest event "
                  + (f"{near[1]} at {near[0] - start:.2f}s" if near else "-"))
    ok = total["lost"] == 0 and total["dup"] == 0 and total["reord"] == 0
    print(f"{'PASS' if ok else 'FAIL'}: lost {total['lost']}, duplicated {total['dup']}, reordered "
          f"{total['reord']}; wall {time.time() - start:.1f} s; load {os.getloadavg()}; logs in {logdir}")
    return 0 if ok else 1


def ranges(numbers):
    out, numbers, i = [], sorted(numbers), 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}-{numbers[j]}")
        i = j + 1
    return ", ".join(out[:30]) + (" ..." if len(out) > 30 else "")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())
