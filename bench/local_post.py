"""
Benchmark ``local_post``: local posts per second through a kernel, against a
bare ``collections.deque`` + function-call loop in the same run.

Each workload posts N events to one session and drains them; the ratio is
lightspeed / baseline (higher is better; 1.0 would be free).
"""

import collections
import os
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
    base = max(baseline(N) for _ in range(ROUNDS))
    for name, fn in [("alias form", lightspeed_alias), ("poe:// specifier", lightspeed_specifier)]:
        rate = max(fn(N) for _ in range(ROUNDS))
        print(f"local_post [{name}]: {rate:,.0f} posts/s; deque+call baseline {base:,.0f}/s; "
              f"ratio {rate / base:.2f}x")


if __name__ == "__main__":
    main()
