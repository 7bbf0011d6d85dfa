# -*- test-case-name: lightspeed.test.test_web -*-
"""
Prometheus metrics of one kernel: a custom collector that reads the
kernel's counters (``Node.stats()``) at scrape time, in a registry of its
own (never the process-wide default one, so kernels in one process do not
collide), rendered in the text format by ``prometheus-client``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Tuple

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lightspeed.web import snapshot

__all__ = ["KernelCollector", "registry_for", "render", "CONTENT_TYPE", "KERNEL_COUNTERS", "LINK_COUNTERS"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Kernel counters: (stats key, metric name without ``lightspeed_`` and ``_total``, help).
KERNEL_COUNTERS: List[Tuple[str, str, str]] = [
    ("messages_in", "messages_in", "Messages received from other kernels."),
    ("messages_out", "messages_out", "Messages sent to other kernels."),
    ("bytes_in", "bytes_in", "Bytes received on links."),
    ("bytes_out", "bytes_out", "Bytes sent on links."),
    ("relayed", "relayed", "Messages relayed for other kernels."),
    ("misrouted", "misrouted", "Routed messages that arrived at a kernel that is not on their path."),
    ("adverts_in", "adverts_in", "Routing adverts received."),
    ("adverts_out", "adverts_out", "Routing adverts sent."),
]

#: Kernel gauges: (stats key, metric name, help).
KERNEL_GAUGES: List[Tuple[str, str, str]] = [
    ("kernels", "kernels_reachable", "Other kernels this kernel has a route to."),
    ("pending_requests", "pending_requests", "Requests waiting for their answer."),
    ("uptime", "uptime_seconds", "Seconds since the kernel started."),
]

#: Per-link counters, labelled ``peer``.
LINK_COUNTERS: List[Tuple[str, str, str]] = [
    ("messages_in", "link_messages_in", "Messages received on the link."),
    ("messages_out", "link_messages_out", "Messages sent on the link."),
    ("bytes_in", "link_bytes_in", "Bytes received on the link."),
    ("bytes_out", "link_bytes_out", "Bytes sent on the link."),
]


class KernelCollector(Collector):
    """
    Reads a kernel's counters whenever the registry is scraped.

    :param kernel: the kernel.
    :param extra: more gauges, ``{name: (help, read)}``; ``read()`` gives the value.
    """

    def __init__(self, kernel: Any, extra: Dict[str, Tuple[str, Callable[[], float]]]) -> None:
        self._kernel = kernel
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        stats = snapshot.node_stats(self._kernel)
        kernel = [str(stats.get("kernel", self._kernel.name))]
        for key, name, doc in KERNEL_COUNTERS:
            if key in stats:
                yield _one(CounterMetricFamily(f"lightspeed_{name}", doc, labels=["kernel"]), kernel, stats[key])
        for key, name, doc in KERNEL_GAUGES:
            if stats.get(key) is not None:
                yield _one(GaugeMetricFamily(f"lightspeed_{name}", doc, labels=["kernel"]), kernel, stats[key])
        yield from self._maps(stats, kernel)
        yield from self._links(stats.get("links", {}), kernel)
        for name, (doc, read) in sorted(self._extra.items()):
            yield _one(GaugeMetricFamily(f"lightspeed_{name}", doc, labels=["kernel"]), kernel, read())

    def _maps(self, stats: Dict[str, Any], kernel: List[str]) -> Iterator[Metric]:
        undeliverable = CounterMetricFamily("lightspeed_undeliverable", "Messages that could not be delivered, "
                                            "by reason.", labels=["kernel", "reason"])
        for reason, count in sorted(stats.get("undeliverable", {}).items()):
            undeliverable.add_metric(kernel + [str(reason)], count)
        yield undeliverable
        backlog = GaugeMetricFamily("lightspeed_backlog", "Messages to a kernel not acknowledged yet.",
                                    labels=["kernel", "destination"])
        for destination, count in sorted(stats.get("backlog", {}).items()):
            backlog.add_metric(kernel + [str(destination)], count)
        yield backlog

    def _links(self, links: Dict[str, Dict[str, Any]], kernel: List[str]) -> Iterator[Metric]:
        labels = ["kernel", "peer"]
        families: List[Tuple[str, Metric]] = [
            (key, CounterMetricFamily(f"lightspeed_{name}", doc, labels=labels)) for key, name, doc in LINK_COUNTERS]
        families.append(("rtt", GaugeMetricFamily("lightspeed_link_rtt_seconds", "Smoothed round trip of the link.",
                                                  labels=labels)))
        families.append(("cost", GaugeMetricFamily("lightspeed_link_cost", "Cost advertised for the link.",
                                                   labels=labels)))
        for peer, counters in sorted(links.items()):
            for key, family in families:
                if counters.get(key) is not None:
                    family.add_metric(kernel + [str(peer)], counters[key])  # type: ignore[attr-defined]
        for _, family in families:
            yield family


def _one(family: Any, labels: List[str], value: Any) -> Metric:
    family.add_metric(labels, value)
    return family


def registry_for(kernel: Any, extra: Dict[str, Tuple[str, Callable[[], float]]]) -> CollectorRegistry:
    """
    A new registry holding only ``kernel``'s collector.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KernelCollector(kernel, extra))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """
    The registry in Prometheus's text exposition format.
    """
    return generate_latest(registry)
