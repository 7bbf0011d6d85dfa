# -*- test-case-name: lightspeed.test.test_web -*-
"""
The picture the status page draws, sampled on a clock: the topology with a
message rate on every link, the local kernel's counters, links and
sessions, and the recent undeliverables (a bounded ring fed by the
monitor's ``undeliverable`` topic).

Rates come from two samples of the counters: this kernel's own every
tick, and (where ``Node.stats_of`` exists) every other reachable kernel's,
asked for a few at a time with a timeout.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Deque, Dict, Optional, Tuple

from lightspeed.web import snapshot

__all__ = ["Undeliverables", "RemoteStats", "MeshView", "MAX_UNDELIVERABLE"]

#: How many undeliverables the page remembers.
MAX_UNDELIVERABLE = 100

#: The longest text kept of a reason or destination.
MAX_TEXT = 300

Sample = Tuple[float, Dict[str, Any]]


class Undeliverables:
    """
    The last :data:`MAX_UNDELIVERABLE` undeliverables the kernel's monitor
    reported, newest last, and how many there were in all.
    """

    def __init__(self, size: int = MAX_UNDELIVERABLE) -> None:
        self.recent: Deque[Dict[str, Any]] = deque(maxlen=size)
        self.total = 0

    def __call__(self, topic: str, info: Dict[str, Any]) -> None:
        self.total += 1
        self.recent.append({
            "time": time.time(),
            "destination": str(info.get("destination", ""))[:MAX_TEXT],
            "reason": str(info.get("reason", ""))[:MAX_TEXT],
            "origin": str(info.get("origin", ""))[:MAX_TEXT],
        })

    def watch(self, kernel: Any) -> None:
        kernel.monitor.add(["undeliverable"], self)

    def unwatch(self, kernel: Any) -> None:
        kernel.monitor.remove(["undeliverable"], self)


class RemoteStats:
    """
    The newest counters of other kernels (``Node.stats_of``), the one before
    for rates; forgotten once a kernel is unreachable.

    :ivar limit: the most kernels asked per round.
    :ivar every: the fewest seconds between rounds.
    """

    def __init__(self, kernel: Any, clock: Any, timeout: float = 5.0, limit: int = 64, every: float = 5.0) -> None:
        self._kernel = kernel
        self._clock = clock
        self.timeout = timeout
        self.limit = limit
        self.every = every
        self._last: Optional[float] = None
        self.samples: Dict[str, Tuple[Optional[Sample], Sample]] = {}
        self._asking: Dict[str, Any] = {}

    @property
    def available(self) -> bool:
        return callable(getattr(self._kernel, "stats_of", None))

    def poll(self, reachable: frozenset) -> None:
        """
        Ask each reachable kernel not already asked for its counters.
        """
        for gone in [k for k in self.samples if k not in reachable]:
            del self.samples[gone]
        now = self._clock.seconds()
        if not self.available or (self._last is not None and now - self._last < self.every):
            return
        self._last = now
        for name in sorted(reachable)[:self.limit]:
            if name in self._asking:
                continue
            d = self._kernel.stats_of(name)
            self._asking[name] = d
            d.addTimeout(self.timeout, self._clock)
            d.addCallbacks(self._got, lambda f: None, (name,))
            d.addBoth(lambda _, n=name: self._asking.pop(n, None))

    def _got(self, stats: Any, name: str) -> None:
        if isinstance(stats, dict):
            previous = self.samples.get(name)
            self.samples[name] = (previous[1] if previous else None, (self._clock.seconds(), stats))

    def stop(self) -> None:
        for d in list(self._asking.values()):
            d.cancel()


class MeshView:
    """
    Samples one kernel into what the page shows.
    """

    def __init__(self, kernel: Any, clock: Any, undeliverables: Undeliverables, remote: RemoteStats) -> None:
        self._kernel = kernel
        self._clock = clock
        self.undeliverables = undeliverables
        self.remote = remote
        self._local: Tuple[Optional[Sample], Optional[Sample]] = (None, None)

    def tick(self, remote: bool = True) -> None:
        """
        Sample the local counters (for rates) and, if ``remote``, ask the
        other kernels for theirs.
        """
        kernel = self._kernel
        self._local = (self._local[1], (self._clock.seconds(), snapshot.node_stats(kernel)))
        if remote and kernel.network is not None:
            self.remote.poll(kernel.network.router.reachable())

    def picture(self) -> Dict[str, Any]:
        """
        Everything the page draws, JSON-able.
        """
        kernel = self._kernel
        stats = snapshot.node_stats(kernel)
        topology = snapshot.routez(kernel)
        link_rates, kernel_rates = self._rates()
        for link in topology["links"]:
            a, b = link["a"], link["b"]
            rate = link_rates.get(a, {}).get(b, link_rates.get(b, {}).get(a))
            link["rate"] = None if rate is None else round(rate, 2)
        return {
            "kernel": kernel.name, "time": time.time(), "kernels": topology["kernels"],
            "links": topology["links"], "routes": topology["routes"], "rates": kernel_rates,
            "varz": snapshot.varz(stats, kernel), "connz": snapshot.connz(stats, kernel)["links"],
            "sessions": snapshot.sessions(kernel), "remote_stats": self.remote.available,
            "undeliverable": {"total": self.undeliverables.total, "recent": list(self.undeliverables.recent)},
        }

    def _rates(self) -> Tuple[Dict[str, Dict[str, float]], Dict[str, float]]:
        samples: Dict[str, Tuple[Optional[Sample], Optional[Sample]]] = dict(self.remote.samples)
        samples[self._kernel.name] = self._local
        links: Dict[str, Dict[str, float]] = {}
        kernels: Dict[str, float] = {}
        for name, (before, after) in samples.items():
            if before is None or after is None or after[0] <= before[0]:
                continue
            links[name] = snapshot.link_rates(before, after[0], after[1])
            if "messages_in" in after[1]:
                moved = snapshot.messages(after[1]) - snapshot.messages(before[1])
                kernels[name] = round(max(0.0, moved / (after[0] - before[0])), 2)
        return links, kernels
