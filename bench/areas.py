"""
Benchmark ``areas``: a simulation of N kernels in A flooding areas (default
1,000 in 10 areas of 100) joined by a backbone of border kernels, as the plan
in ``docs/scaling.rst`` ("Past one flooding area") has it, against one flat
area of the same kernels.

What runs the shipped code (``MemoryMesh``, ``Flooding``, ``Router``): every
area is a ring-and-chord mesh of N/A kernels (as ``bench/scale.py``) and the
backbone one of the B border kernels per area (2 by default: A*B kernels),
all on one ``MemoryMesh`` and one clock, the areas not linked to each other.

What is modelled, not built:

- a border kernel is two kernels here, its half in its area and its half in
  the backbone (the plan gives it one ``Router`` per area; here they are two
  kernels, not linked, whose databases are the two routers');
- a summary advert is flooded as a real advert (LSA) of a stand-in origin
  named after the border, sent by the border's half and listing the
  summarised kernels with the border's cost to each: so it travels, is
  checked, held and passed on exactly as an advert of that size is, but no
  kernel routes by it (nothing lists the stand-in back: the two-way check
  leaves it out of every route);
- each area gets from each of its borders one summary of the kernels of
  every other area, the backbone one summary of its area from each border;
  after a link change in an area, the summaries change only where the
  border's cost to a kernel did: those go out as delta summaries listing
  only the changed kernels, into the backbone and, re-summarised, into every
  other area;
- inter-area routes: a kernel's route to a kernel of another area is the
  border with the least (distance to the border + the border's summary
  cost); the CPU of that pass over the summaries is measured in Python for
  every kernel and added to the area's route recompute.

Printed: cold start (CPU, adverts, wall), one link change inside an area
(CPU across every kernel, adverts), route recompute per kernel, flooding
hops, each for the areas and, unless BENCH_FLAT=0, for one flat area of N
kernels (ring and chords, 2N links).  Repeated figures are min/median/max.

    python bench/areas.py [N [A]]       (default 1000 10)
    BENCH_REPEAT=3 ...                   (link changes, default 3)
    BENCH_FLAT=0 ...                     (skip the flat area: minutes at 1,000)
    BENCH_SUMMARY=area ...               (summaries without per-kernel costs)
"""

import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.environ.get("BENCH_TREE") or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lightspeed.router import LinkState  # noqa: E402
from lightspeed.testing import MemoryMesh  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import adverts, diameter, hops, link_change, recompute, ring_and_chords, settled, spread  # noqa: E402

REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
BORDERS = 2  # border kernels per area
#: Summaries list each kernel at one cost (the area's), not at the border's cost to it.
PER_AREA = os.environ.get("BENCH_SUMMARY") == "area"


class Areas:
    """A areas of n kernels each and their backbone, on one MemoryMesh."""

    def __init__(self, total, count):
        self.mesh = MemoryMesh()
        self.size = total // count
        self.count = count
        self.names = [[f"k{a * self.size + i:04d}" for i in range(self.size)] for a in range(count)]
        self.kernels = [[self.mesh.kernel(name) for name in names] for names in self.names]
        #: Kernel i * (size // BORDERS) of each area is one of its borders.
        self.border_index = [i * (self.size // BORDERS) for i in range(BORDERS)]
        self.backbone = [self.mesh.kernel(f"bb{a:02d}{b}") for a in range(count) for b in range(BORDERS)]
        self.edges = ring_and_chords(self.size)
        self.links = []
        self.summary_seq = {}

    def borders(self, area):
        return [self.kernels[area][i] for i in self.border_index]

    def link(self):
        for kernels in self.kernels:
            self.links.append([self.mesh.link(kernels[a], kernels[b]) for a, b in self.edges])
        self.backbone_links = [self.mesh.link(self.backbone[a], self.backbone[b])
                               for a, b in ring_and_chords(len(self.backbone))]
        self.mesh.settle()
        self.mesh.advance(2.0)

    def summarise(self, border, into, names, costs):
        """Flood from kernel ``into`` a summary advert of ``names`` for ``border`` (a stand-in origin)."""
        origin = f"sum-{border}"
        seq = self.summary_seq[origin] = self.summary_seq.get(origin, 0) + 1
        links = tuple(sorted((name, max(costs.get(name, 1), 1)) for name in names))  # a cost is at least 1
        into.network.flooding.flood(LinkState(origin, into.network.router.incarnation, seq, links))

    def border_costs(self, area):
        """
        Each border's distances to the kernels of its area: what its summary
        lists (with BENCH_SUMMARY=area, 1 for every reachable kernel: the
        summary says which kernels are there, not the cost inside the area).
        """
        costs = [dict(k.network.router.distances(), **{k.name: 0}) for k in self.borders(area)]
        return costs if not PER_AREA else [dict.fromkeys(c, 1) for c in costs]

    def cold_summaries(self):
        """Every border summarises its area into the backbone and every other area into its own."""
        for area in range(self.count):
            costs = self.border_costs(area)
            for b in range(BORDERS):
                self.summarise(f"bb{area:02d}{b}", self.backbone[area * BORDERS + b], self.names[area], costs[b])
        self.mesh.settle()
        for area in range(self.count):
            others = [name for a, names in enumerate(self.names) if a != area for name in names]
            for border in self.borders(area):
                self.summarise(border.name, border, others, {})
        self.mesh.advance(2.0)

    def delta_summaries(self, area, before):
        """After a change in ``area``: summaries of the kernels whose cost from a border changed."""
        after = self.border_costs(area)
        changed = sorted({k for b in range(BORDERS) for k in set(before[b]) | set(after[b])
                          if before[b].get(k) != after[b].get(k)})
        if changed:
            for b in range(BORDERS):
                self.summarise(f"bb{area:02d}{b}", self.backbone[area * BORDERS + b], changed, after[b])
            self.mesh.settle()
            for other in range(self.count):
                if other != area:
                    for border in self.borders(other):
                        self.summarise(border.name, border, changed, {})
            self.mesh.advance(2.0)
        return len(changed)

    def change(self, index):
        """One link of area 0 closed, then made again: (CPU, adverts, kernels re-summarised) per half."""
        def hook():
            before = self.border_costs(0)
            return lambda: self.delta_summaries(0, before)
        return link_change(self.mesh, self.links[0], index, hook)


def inter_area_pass(areas, area=0, kernel=1):
    """CPU of one kernel's pass over the summaries: the best border for every kernel outside its area."""
    router = areas.kernels[area][kernel].network.router
    distance = router.distances()
    borders = [(distance.get(b.name, 0), areas.border_costs(area)[i]) for i, b in enumerate(areas.borders(area))]
    outside = [name for a, names in enumerate(areas.names) if a != area for name in names]
    times = []
    for _ in range(20):
        started = time.perf_counter()
        best = {}
        for to_border, costs in borders:
            for name in outside:
                cost = to_border + costs.get(name, 1)
                if name not in best or cost < best[name]:
                    best[name] = cost
        times.append(time.perf_counter() - started)
    return times


def run_areas(total, count):
    areas = Areas(total, count)
    cpu, wall = time.process_time(), time.perf_counter()
    areas.link()
    intra, intra_cpu = adverts(areas.mesh), time.process_time() - cpu
    areas.cold_summaries()
    cold = (time.process_time() - cpu, time.perf_counter() - wall, intra, adverts(areas.mesh) - intra, intra_cpu)
    settled()
    changes = [areas.change((r * 7919) % len(areas.links[0])) for r in range(REPEAT)]
    index = len(areas.edges) // 3
    a, b = (areas.names[0][areas.edges[index][0]], areas.names[0][areas.edges[index][1]])
    steps = hops(areas.mesh, areas.links[0], index, a, b, areas.kernels[0])
    times, _ = recompute(areas.size, steps=(1, round(math.sqrt(areas.size))))
    passes = inter_area_pass(areas)
    return areas, cold, changes, steps, times, passes


def run_flat(total):
    mesh = MemoryMesh()
    kernels = [mesh.kernel(f"k{i:04d}") for i in range(total)]
    edges = ring_and_chords(total)
    cpu, wall = time.process_time(), time.perf_counter()
    links = [mesh.link(kernels[a], kernels[b]) for a, b in edges]
    mesh.settle()
    mesh.advance(2.0)
    cold = (time.process_time() - cpu, time.perf_counter() - wall, adverts(mesh))
    settled()
    changes = [link_change(mesh, links, (r * 7919) % len(links)) for r in range(REPEAT)]
    times, _ = recompute(total, steps=(1, round(math.sqrt(total))))
    return cold, changes, times, diameter(total, edges)


def main(total, count):
    print("load average %.2f %.2f %.2f" % os.getloadavg())
    areas, cold, changes, steps, times, passes = run_areas(total, count)
    size, backbone = areas.size, len(areas.backbone)
    print(f"summaries: {'one cost per area' if PER_AREA else 'the border cost to each kernel'}")
    print(f"{count} areas of {size} kernels (ring and chords, {len(areas.edges)} links each), "
          f"backbone of {backbone} border kernels ({len(areas.backbone_links)} links)")
    print(f"  cold start: CPU {cold[0]:.1f} s ({cold[4]:.1f} s before the summaries), wall {cold[1]:.1f} s, "
          f"adverts {cold[2] + cold[3]} ({cold[2]} in the areas and the backbone, {cold[3]} summaries)")
    for half, name in ((0, "down"), (1, "up")):
        print(f"  link {name} in area 0: CPU {spread([c[half][0] for c in changes], ' s')}, "
              f"adverts {spread([c[half][1] for c in changes], fmt='{:.0f}')}, "
              f"kernels re-summarised {spread([c[half][2] for c in changes], fmt='{:.0f}')}")
    area_diameter = diameter(size, areas.edges)
    backbone_diameter = diameter(backbone, ring_and_chords(backbone))
    print(f"  hops: {steps} in the area (diameter {area_diameter}); a summary change crosses the backbone "
          f"(diameter {backbone_diameter}) and the other areas: at most {steps + backbone_diameter + area_diameter}")
    print(f"  route recompute per kernel: area {spread(times, ' ms', 1000)} + summaries {spread(passes, ' ms', 1000)}")
    if os.environ.get("BENCH_FLAT", "1") != "0":
        flat, fchanges, ftimes, fdiameter = run_flat(total)
        print(f"one flat area of {total} kernels ({2 * total} links, diameter {fdiameter})")
        print(f"  cold start: CPU {flat[0]:.1f} s, wall {flat[1]:.1f} s, adverts {flat[2]}")
        for half, name in ((0, "down"), (1, "up")):
            print(f"  link {name}: CPU {spread([c[half][0] for c in fchanges], ' s')}, "
                  f"adverts {spread([c[half][1] for c in fchanges], fmt='{:.0f}')}")
        print(f"  route recompute: {spread(ftimes, ' ms', 1000)}")
    print("load average %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    args = [int(arg) for arg in sys.argv[1:]]
    main(args[0] if args else 1000, args[1] if len(args) > 1 else 10)
