# -*- test-case-name: lightspeed.test.test_cli -*-
"""
The ``lightspeed`` subcommands that talk to a mesh, each on one
:class:`~lightspeed.clientlite.ClientLite` (see ``docs/tools.rst``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable, Dict, List, Optional, Tuple

from lightspeed.clibench import bench, bench_arguments
from lightspeed.cliutil import client_of, dot, emit, fail, json_arg, table, tree
from lightspeed.errors import LightspeedError, NoRoute, RemoteError
from lightspeed.message import POST
from lightspeed.specifier import SCHEME, check_name, parse

__all__ = ["COMMANDS"]

Args = argparse.Namespace


def _post(args: Args) -> int:
    """
    Post, wait for the ack; a post not acknowledged within ``--timeout``
    or reported undeliverable is an error.
    """
    client = client_of(args).connect()
    try:
        client.post(args.dest, *map(json_arg, args.args))
    finally:
        report = client.close(args.timeout)
    if not report.ok:
        return fail(f"post to {args.dest} not delivered: {report.describe()}")
    emit(args, {"posted": args.dest}, "")
    return 0


def _request(args: Args) -> int:
    with client_of(args) as client:
        emit(args, client.request(args.dest, *map(json_arg, args.args), timeout=args.timeout))
    return 0


def _call(args: Args) -> int:
    """
    A call; an RSVP that is only a state name means "back to me": wait for
    the reply and print it.
    """
    with client_of(args) as client:
        rsvp = args.rsvp
        waiting = not rsvp.startswith(SCHEME)
        if waiting:
            rsvp = f"{SCHEME}{client.name}/lite/{rsvp}"
        client.call(args.dest, rsvp, *map(json_arg, args.args))
        if not waiting:
            emit(args, {"called": args.dest, "rsvp": rsvp}, "")
            return 0
        event = client.receive(args.timeout)
        while event is not None and event.kind == POST:  # not the reply: someone else's post
            event = client.receive(args.timeout)
        if event is None:
            raise LightspeedError(f"no reply from {args.dest} within {args.timeout} s")
        if event.state == "_undeliverable":
            raise LightspeedError(f"undeliverable: {event.args[1] if len(event.args) > 1 else event.args}")
        emit(args, event.args[0] if len(event.args) == 1 else event.args)
    return 0


def _tail(args: Args) -> int:
    with client_of(args) as client:
        kernel = args.kernel or client.peer.name
        target = f"{SCHEME}{client.name}/lite/event"
        client.control(kernel, "monitor_register", args.topics or "*", target)
        seen = 0
        while args.count is None or seen < args.count:
            event = client.receive(3600.0)
            if event is None or event.state != "event" or len(event.args) != 2:
                continue
            topic, info = event.args
            seen += 1
            if args.json:
                emit(args, {"kernel": event.origin, "topic": topic, "info": info})
            else:
                print(f"[{event.origin}] {topic} {json.dumps(info, sort_keys=True)}", flush=True)
    return 0


def _kernels(args: Args) -> int:
    with client_of(args) as client:
        names = client.list_kernels(hidden=args.hidden)
    emit(args, names, "\n".join(names))
    return 0


def _sessions(args: Args) -> int:
    with client_of(args) as client:
        kernel = args.kernel or client.peer.name
        sessions = client.control(check_name(kernel), "sessions", timeout=args.timeout)
    emit(args, sessions, "\n".join(", ".join(map(str, names)) for names in sessions))
    return 0


def _states(args: Args) -> int:
    spec = parse(args.dest if args.dest.count("/") >= 4 else args.dest.rstrip("/") + "/")
    if len(spec.kernels) != 1 or spec.all_kernels:
        raise ValueError(f"states wants one kernel: poe://KERNEL/SESSION/, not {args.dest!r}")
    with client_of(args) as client:
        states = client.control(spec.kernels[0], "states", sessions="*" if spec.all_sessions else list(spec.sessions),
                                timeout=args.timeout)
    emit(args, states, json.dumps(states, indent=2, sort_keys=True))
    return 0


def route_of(client: Any, kernel: str) -> List[Tuple[str, Optional[int]]]:
    """
    The path to ``kernel`` as ``[(kernel, cost of the link it came by), ...]``,
    this client first: asked hop after hop (CONTROL ``route``).
    """
    check_name(kernel)
    path: List[Tuple[str, Optional[int]]] = [(client.name, None), (client.peer.name, 1)]
    while path[-1][0] != kernel:
        if len(path) > 34:
            raise NoRoute(f"no loop-free route to {kernel!r}: {' -> '.join(k for k, _ in path)}")
        answer = client.control(path[-1][0], "route", kernel)
        if answer.get("next") is None:
            raise NoRoute(f"kernel {path[-1][0]!r} has no route to {kernel!r}")
        path.append((answer["next"], answer.get("cost")))
    return path


def _route(args: Args) -> int:
    with client_of(args) as client:
        path = route_of(client, args.kernel)
    total = sum(cost or 0 for _, cost in path)
    text = path[0][0] + "".join(f" -({cost})-> {name}" for name, cost in path[1:]) + f"   total cost {total}"
    emit(args, {"path": [{"kernel": k, "cost": c} for k, c in path], "cost": total}, text)
    return 0


def _hops(client: Any, kernel: str, timeout: float) -> List[Dict[str, Any]]:
    """Per-hop times to ``kernel`` from a TRACE: ``elapsed`` since it left the client."""
    hops = client.trace(kernel, timeout)
    return [dict(hop, elapsed=hop["time"] - hops[0]["time"]) for hop in hops]


def _hops_text(hops: List[Dict[str, Any]]) -> str:
    lines = []
    for i, hop in enumerate(hops):
        cost = "" if hop["cost"] is None else f"  cost {hop['cost']}"
        lines.append(f"{i:3}  {hop['kernel']:<24} after {hop['elapsed'] * 1000:.3f} ms{cost}")
    return "\n".join(lines)


def _ping(args: Args) -> int:
    with client_of(args) as client:
        kernel = check_name(args.kernel)
        times = [client.ping(kernel, timeout=args.timeout) for _ in range(args.count)]
        hops = _hops(client, kernel, args.timeout) if args.hops else []
    lines = [f"{kernel}: round trip {t * 1000:.3f} ms" for t in times]
    if hops:
        lines += ["per hop (trace):", _hops_text(hops)]
    emit(args, {"kernel": kernel, "rtt": times, "min": min(times), "hops": hops}, "\n".join(lines))
    return 0


def _trace(args: Args) -> int:
    kernel = args.dest
    if kernel.startswith(SCHEME):
        kernel = parse(kernel if kernel.count("/") >= 4 else kernel.rstrip("/") + "/").kernels[0]
    with client_of(args) as client:
        hops = _hops(client, check_name(kernel), args.timeout)
    emit(args, {"kernel": kernel, "hops": hops}, _hops_text(hops))
    return 0


def _topology(args: Args) -> int:
    with client_of(args) as client:
        links = client.links()
        hidden = [k for k in client.list_kernels(hidden=True) if k not in client.list_kernels() + [client.name]]
        root = client.peer.name
    if args.json:
        emit(args, {"links": links, "hidden": sorted(hidden), "root": root})
    else:
        print(dot(links, hidden) if args.dot else tree(links, hidden, root))
    return 0


def _status(args: Args) -> int:
    with client_of(args) as client:
        kernel = check_name(args.kernel or client.peer.name)
        try:
            stats = client.control(kernel, "stats", timeout=args.timeout)
        except RemoteError as e:
            if "unknown control operation" in str(e):
                raise LightspeedError(f"kernel {kernel!r} has no 'stats' operation (its lightspeed has no counters)")
            raise
    if args.json:
        emit(args, stats)
        return 0
    head = {k: v for k, v in stats.items() if not isinstance(v, dict)}
    lines = [f"{k}: {v}" for k, v in sorted(head.items())]
    for key in ("undeliverable", "backlog"):
        if stats.get(key):
            lines.append(f"{key}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats[key].items())))
    links = [dict(link, peer=peer) for peer, link in sorted((stats.get("links") or {}).items())]
    if links:
        lines += ["links:", table(links, ["peer", "cost", "rtt", "incarnation", "messages_in", "messages_out",
                                          "bytes_in", "bytes_out", "tls"])]
    print("\n".join(lines))
    return 0


def _dest_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", help="poe://KERNEL/SESSION/STATE")
    parser.add_argument("args", nargs="*", help="arguments: JSON where they are JSON, else strings")


def _call_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", help="poe://KERNEL/SESSION/STATE")
    parser.add_argument("rsvp", help="where the reply goes: poe://K/S/STATE, or a state name to wait and print it")
    parser.add_argument("args", nargs="*", help="arguments: JSON where they are JSON, else strings")


def _tail_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topics", nargs="*", help="monitor topics (default every one)")
    parser.add_argument("--kernel", help="whose events (default the server)")
    parser.add_argument("--count", type=int, help="stop after this many events")


def _kernel_arg(optional: bool) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("kernel", nargs="?" if optional else None, help="kernel name"
                            + (" (default the server)" if optional else ""))
    return add


def _ping_args(parser: argparse.ArgumentParser) -> None:
    _kernel_arg(False)(parser)
    parser.add_argument("--count", type=int, default=3, help="how many round trips (default %(default)s)")
    parser.add_argument("--no-hops", dest="hops", action="store_false", help="leave out the per-hop times")


def _one(name: str, help: str) -> Callable[[argparse.ArgumentParser], Any]:
    return lambda parser: parser.add_argument(name, help=help)


def _flag(name: str, help: str) -> Callable[[argparse.ArgumentParser], Any]:
    return lambda parser: parser.add_argument(name, action="store_true", help=help)


#: name -> (function, summary, arguments)
COMMANDS: Dict[str, Tuple[Callable[[Args], int], str, Callable[[argparse.ArgumentParser], Any]]] = {
    "post": (_post, "post a message to a state", _dest_args),
    "request": (_request, "run a state and print what it returns", _dest_args),
    "call": (_call, "call a state; its value goes to RSVP", _call_args),
    "tail": (_tail, "print monitor events as they happen", _tail_args),
    "kernels": (_kernels, "list the kernels of the mesh", _flag("--hidden", "hidden kernels too")),
    "sessions": (_sessions, "list a kernel's sessions", _kernel_arg(True)),
    "states": (_states, "list the states of sessions (poe://K/S/)", _one("dest", "poe://KERNEL/SESSION/")),
    "ping": (_ping, "round trip to a kernel, and per hop", _ping_args),
    "route": (_route, "the path to a kernel and its link costs", _kernel_arg(False)),
    "trace": (_trace, "trace the path to a kernel, hop by hop", _one("dest", "a kernel name or poe://KERNEL/...")),
    "topology": (_topology, "the mesh as a text tree (or --dot for Graphviz)", _flag("--dot", "Graphviz output")),
    "status": (_status, "a kernel's links, peers and counters", _kernel_arg(True)),
    "bench": (bench, "measure posts or requests per second and latency", bench_arguments),
}
