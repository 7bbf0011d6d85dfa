"""
Benchmark ``local_post``: local posts per second through a kernel, against a
bare ``collections.deque`` + function-call loop in the same run.

Each workload posts N events to one session and drains them; the ratio is
lightspeed / baseline (higher is better; 1.0 would be free).
"""

import collections
import os
import statistics
import sys
import time

sys.path.insert(0, os.environ.get("BENCH_TREE") or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from twisted.internet.task import Clock  # noqa: E402

from lightspeed import Kernel  # noqa: E402

N = int(os.environ.get("BENCH_N", "200000"))
ROUNDS = 5


def baseline(n):
    queue = collections.deque()
    count = [0]

    def handler(state, args):
        count[0] += 1

    start = time.perf_counter()
    for i in range(n):
        queue.append(("hit", (i,)))
    while queue:
        handler(*queue.popleft())
    return n / (time.perf_counter() - start)


def lightspeed_alias(n):
    clock = Clock()
    kernel = Kernel("bench", reactor=clock)
    count = [0]

    def hit(event):
        count[0] += 1

    kernel.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("s"), "hit": hit})
    start = time.perf_counter()
    for i in range(n):
        kernel.post("s", "hit", i)
    while clock.getDelayedCalls():
        clock.advance(0)
    elapsed = time.perf_counter() - start
    assert count[0] == n
    return n / elapsed


def lightspeed_specifier(n):
    clock = Clock()
    kernel = Kernel("bench", reactor=clock)
    kernel.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("s"), "hit": lambda e: None})
    start = time.perf_counter()
    for i in range(n):
        kernel.post("poe://bench/s/hit", i)
    while clock.getDelayedCalls():
        clock.advance(0)
    return n / (time.perf_counter() - start)


def main():
    forms = [("alias form", lightspeed_alias), ("poe:// specifier", lightspeed_specifier)]
    load = os.getloadavg()[0]
    bases, rates = [], {name: [] for name, _ in forms}
    for round_ in range(ROUNDS):  # each round is a pair of each form with the baseline, in alternating order
        if round_ % 2 == 0:
            bases.append(baseline(N))
        for name, fn in forms:
            rates[name].append(fn(N))
        if round_ % 2 == 1:
            bases.append(baseline(N))
    base = max(bases)
    for name, _ in forms:
        rate = max(rates[name])
        print(f"local_post [{name}]: {rate:,.0f} posts/s; deque+call baseline {base:,.0f}/s; "
              f"ratio {rate / base:.2f}x")
    for name, _ in forms:
        ratios = sorted(r / b for r, b in zip(rates[name], bases))
        print(f"  ratio per round [{name}], min / median / max of {ROUNDS}: {ratios[0]:.2f} / "
              f"{statistics.median(ratios):.2f} / {ratios[-1]:.2f}")
    print(f"  load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
