"""
Benchmark ``scale``: one flooding area of N kernels on ``MemoryMesh``.

Meshes are a ring plus chords (kernel i links to i+1 and to i+s, s the
nearest integer to sqrt(N): 2 links per kernel, 2N links).  Printed per N:

- cold start: wall time and advert (LSA) messages sent until every kernel
  has a route to every other;
- one link change (a link closed, then made again), repeated: process CPU
  time across the mesh until it is quiet, and advert messages;
- flooding hops: with every link delayed by one step, the steps after a
  link closes until every kernel's database shows the edge gone (against
  the mesh's diameter);
- memory per kernel (tracemalloc, the converged mesh / N), at the smallest N
  (or BENCH_MEMORY_N; 0 skips it).

Once converged, the mesh's objects are frozen out of the garbage
collector (see ``settled``).

Then route recompute for 1,000 kernels / 4,000 links: ``Router._recompute``
on a synthetic database (process CPU time).  Repeated figures are min / median / max; the load
average is printed before and after.

    python bench/scale.py [N ...]         (default 50 100 200)
    BENCH_REPEAT=5 python bench/scale.py  (link changes per N, default 5)
    BENCH_ADVERT_INTERVAL=0.05 ...        (each kernel's min_advert_interval)
"""

import gc
import math
import os
import statistics
import sys
import time
import tracemalloc

sys.path.insert(0, os.environ.get("BENCH_TREE") or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lightspeed.router import LinkState, Router  # noqa: E402
from lightspeed.testing import MemoryMesh  # noqa: E402

REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
#: Seconds between own adverts (flooding.MIN_ADVERT_INTERVAL if unset).
INTERVAL = os.environ.get("BENCH_ADVERT_INTERVAL")
STEP = 0.001  # one flooding hop, when measuring hops


def spread(values, unit="", scale=1.0, fmt="{:.3g}"):
    values = sorted(v * scale for v in values)
    parts = [fmt.format(values[0]), fmt.format(statistics.median(values)), fmt.format(values[-1])]
    return "/".join(parts) + unit


def ring_and_chords(n):
    step = max(2, round(math.sqrt(n)))
    return [(i, (i + 1) % n) for i in range(n)] + [(i, (i + step) % n) for i in range(n)]


def diameter(n, edges):
    near = {i: set() for i in range(n)}
    for a, b in edges:
        near[a].add(b)
        near[b].add(a)
    worst = 0
    for start in range(0, n, max(1, n // 10)):  # circulant: every kernel sees the same
        seen, frontier, depth = {start}, [start], 0
        while frontier:
            frontier = [p for k in frontier for p in near[k] if p not in seen and not seen.add(p)]
            depth += 1 if frontier else 0
        worst = max(worst, depth)
    return worst


def adverts(mesh):
    return sum(k.network.flooding.adverts_out for k in mesh.kernels.values())


def converged(mesh):
    want = len(mesh.kernels) - 1
    return all(len(k.network.router.reachable()) == want for k in mesh.kernels.values())


def build(n):
    mesh = MemoryMesh()
    kernels = [mesh.kernel(f"k{i:04d}") for i in range(n)]
    for kernel in kernels if INTERVAL is not None else ():
        kernel.network.flooding.min_advert_interval = float(INTERVAL)
    edges = ring_and_chords(n)
    started = time.perf_counter()
    links = [mesh.link(kernels[a], kernels[b]) for a, b in edges]
    mesh.settle()
    mesh.advance(2.0)  # the coalescing interval and the first PINGs, if any
    took = time.perf_counter() - started
    if not converged(mesh):
        raise SystemExit(f"{n} kernels did not converge")
    settled()
    return mesh, links, edges, took


def settled():
    """
    Leave the converged mesh's objects out of the garbage collector's
    full passes (``gc.freeze``): N kernels share one heap here, and a full
    pass over all of them, a few hundred ms at 200 kernels, would land on
    whichever link change set it off, where each kernel's own process
    would scan only its own heap.
    """
    gc.collect()
    gc.freeze()


def link_change(mesh, links, index, hook=None):
    """
    One link closed then made again: (CPU seconds, adverts) for each half.
    ``hook``, if given, is called before each half and returns a call made
    once the mesh is quiet, within the measurement; what that returns is
    added to the half's figures.
    """
    out = []
    for action in ("down", "up"):
        after = hook() if hook is not None else None
        before, cpu = adverts(mesh), time.process_time()
        if action == "down":
            links[index].close()
        else:
            links[index] = mesh.relink(links[index])
        mesh.settle()
        mesh.advance(2.0)
        extra = (after(),) if after is not None else ()
        out.append((time.process_time() - cpu, adverts(mesh) - before) + extra)
    return out


def knows_gone(kernel, a, b):
    router = kernel.network.router
    for origin, other in ((a, b), (b, a)):
        if origin == kernel.name:
            if other not in router.neighbours():
                return True
            continue
        held = router.held(origin)
        if held is not None and other not in dict(held.links):
            return True
    return False


def hops(mesh, links, index, a, b, kernels=None):
    """Steps of STEP (one per link crossing) until every kernel (of ``kernels``) knows a-b is gone."""
    for link in links:
        link.delay(STEP)
    links[index].close()
    kernels = list(mesh.kernels.values()) if kernels is None else kernels
    for step in range(1, 1000):
        mesh.clock.advance(STEP)
        mesh.settle()
        if all(knows_gone(k, a, b) for k in kernels):
            break
    for link in links:
        link.clear()
    links[index] = mesh.relink(links[index])
    mesh.advance(2.0)
    return step


def memory_per_kernel(n):
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    mesh, *_ = build(n)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del mesh
    return used / n


def recompute(kernels=1000, steps=(1, 7, 31, 101), repeat=20):
    router = Router("k0000", 1)
    near = {i: {} for i in range(kernels)}
    for i in range(kernels):
        for s in steps:
            j = (i + s) % kernels
            near[i][f"k{j:04d}"] = 1
            near[j][f"k{i:04d}"] = 1
    for i in range(1, kernels):
        router.store(LinkState(f"k{i:04d}", 1, 1, tuple(sorted(near[i].items()))))
    for peer in near[0]:
        router.link_up(peer)
    times = []
    for _ in range(repeat):
        started = time.process_time()  # CPU: the machine is shared
        router._recompute()
        times.append(time.process_time() - started)
    assert len(router.reachable()) == kernels - 1
    return times, len(steps) * kernels


def main(sizes):
    print("load average %.2f %.2f %.2f" % os.getloadavg())
    times, edges = recompute()  # first, in a fresh process: a kernel's own heap is small
    print(f"route recompute, 1000 kernels / {edges} links: {spread(times, ' ms', 1000)} (min/median/max of 20)")
    print(f"{'N':>5} {'links':>6} {'diam':>5} {'start s':>8} {'adverts':>9} {'adv/N^2':>8} "
          f"{'down CPU s':>18} {'down adv':>14} {'up CPU s':>18} {'up adv':>14} {'hops':>5}")
    for n in sizes:
        mesh, links, edges, took = build(n)
        cold = adverts(mesh)
        downs, ups = [], []
        for r in range(REPEAT):
            down, up = link_change(mesh, links, (r * 7919) % len(links))
            downs.append(down)
            ups.append(up)
        index = len(links) // 3
        a, b = (f"k{edges[index][0]:04d}", f"k{edges[index][1]:04d}")
        steps = hops(mesh, links, index, a, b)
        print(f"{n:>5} {len(edges):>6} {diameter(n, edges):>5} {took:>8.2f} {cold:>9} {cold / n / n:>8.2f} "
              f"{spread([d[0] for d in downs]):>18} {spread([d[1] for d in downs], fmt='{:.0f}'):>14} "
              f"{spread([u[0] for u in ups]):>18} {spread([u[1] for u in ups], fmt='{:.0f}'):>14} "
              f"{steps:>5}")
        del mesh, links
        gc.unfreeze()
        gc.collect()
    memory_n = int(os.environ.get("BENCH_MEMORY_N", min(sizes)))
    if memory_n:
        print(f"memory per kernel ({memory_n} kernels, converged): {memory_per_kernel(memory_n) / 1024:.0f} KiB")
    print("load average %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [50, 100, 200])
