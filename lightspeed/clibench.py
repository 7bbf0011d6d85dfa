# -*- test-case-name: lightspeed.test.test_cli -*-
"""
``lightspeed bench``: like ``nats bench``, send N posts or requests to a
destination from one client and report the rate and the latency of each
request, with a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Dict, List

from lightspeed.cliutil import client_of, emit, json_arg

__all__ = ["bench", "bench_arguments", "progress"]


def progress(done: int, total: int, width: int = 30) -> str:
    """
    ``[#########.....]  60% 600/1000``.
    """
    filled = width * done // total if total else width
    percent = 100 * done // total if total else 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {percent:3d}% {done}/{total}"


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", help="poe://KERNEL/SESSION/STATE (requests: a state that answers)")
    parser.add_argument("args", nargs="*", help="arguments of each message (JSON where JSON)")
    parser.add_argument("--count", type=int, default=1000, help="messages to send (default %(default)s)")
    parser.add_argument("--size", type=int, default=0, help="add a payload of this many bytes")
    parser.add_argument("--post", action="store_true", help="posts (one way) instead of requests")


def _summary(kind: str, count: int, seconds: float, size: int, latencies: List[float]) -> Dict[str, Any]:
    result: Dict[str, Any] = {"kind": kind, "count": count, "seconds": seconds,
                              "rate": count / seconds if seconds else 0.0, "bytes": size}
    if latencies:
        ordered = sorted(latencies)
        result.update(min=ordered[0], median=statistics.median(ordered), max=ordered[-1],
                      p99=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))])
    return result


def bench(args: argparse.Namespace) -> int:
    """
    Run the bench; with ``--post``, the posts not acknowledged within
    ``--timeout`` of the last one or reported undeliverable are counted,
    printed, and make the status 1.
    """
    values = [json_arg(a) for a in args.args] + ([b"x" * args.size] if args.size else [])
    latencies: List[float] = []
    step = max(1, args.count // 100)
    with client_of(args) as client:
        start = time.perf_counter()
        for i in range(args.count):
            if args.post:
                client.post(args.dest, *values)
            else:
                t = time.perf_counter()
                client.request(args.dest, *values, timeout=args.timeout)
                latencies.append(time.perf_counter() - t)
            if i % step == 0:
                print("\r" + progress(i, args.count), end="", file=sys.stderr, flush=True)
        report = client.flush(args.timeout)  # waits until every post is acknowledged; closed on exit
        seconds = time.perf_counter() - start
    print("\r" + progress(args.count, args.count), file=sys.stderr, flush=True)
    result = _summary("post" if args.post else "request", args.count, seconds, args.size, latencies)
    result.update(unacked=sum(report.unacked.values()), undeliverable=len(report.undeliverable),
                  lost=sum(report.lost.values()))
    text = f"{result['count']} {result['kind']}s in {seconds:.3f} s: {result['rate']:.0f} msgs/s"
    if not report.ok:
        text += (f"\n{result['unacked']} not acknowledged, {result['undeliverable']} undeliverable"
                 + (f", {result['lost']} lost (a kernel restarted)" if result["lost"] else ""))
    if latencies:
        text += (f"\nlatency min {result['min'] * 1e6:.0f} us, median {result['median'] * 1e6:.0f} us, "
                 f"p99 {result['p99'] * 1e6:.0f} us, max {result['max'] * 1e6:.0f} us")
    emit(args, result, text)
    return 0 if report.ok else 1
