# -*- test-case-name: lightspeed.test.test_cli -*-
"""
What the ``lightspeed`` commands share: argument values, the connection
options and the client they ask for, output as text or JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["DEFAULT_SERVER", "fail", "json_arg", "common_options", "client_of", "emit", "table", "tree", "dot"]

#: Where the commands connect unless told (``--server``, ``$LIGHTSPEED_SERVER``).
DEFAULT_SERVER = "tcp:127.0.0.1:9876"


def json_arg(text: str) -> Any:
    """
    A command-line argument as a value: JSON where it is JSON
    (``1``, ``true``, ``[1, 2]``, ``'"1"'``), else the string itself.
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def fail(text: str) -> int:
    """Print ``lightspeed: error: TEXT`` on stderr; the exit status of an error, 1."""
    print(f"lightspeed: error: {text}", file=sys.stderr)
    return 1


def common_options(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """
    Add the connection and output options.  The main parser has the
    defaults; each subcommand takes them too (``suppress``: without
    defaults of its own, so that either place works).
    """
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection")
    group.add_argument("--server", default=default(os.environ.get("LIGHTSPEED_SERVER", DEFAULT_SERVER)),
                       help="the kernel to connect to (default $LIGHTSPEED_SERVER or " + DEFAULT_SERVER + "); "
                            "tcp:HOST:PORT, tls:host=H:port=P, unix:PATH")
    group.add_argument("--tls-cert", default=default(None), help="client certificate (PEM), for mutual TLS")
    group.add_argument("--tls-key", default=default(None), help="its private key (PEM)")
    group.add_argument("--tls-ca", default=default(None),
                       help="CA certificate (PEM) the server's certificate must be signed by")
    group.add_argument("--password-file", default=default(None), help="file holding the mesh's shared password")
    group.add_argument("--name", default=default(None),
                       help="this client's kernel name (default: NAME of --tls-cert NAME.crt, else lite-RANDOM)")
    group.add_argument("--timeout", type=float, default=default(10.0), help="seconds to wait (default 10)")
    group.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")


def client_of(args: argparse.Namespace) -> Any:
    """
    The :class:`~lightspeed.clientlite.ClientLite` the common options ask for.
    """
    from lightspeed.clientlite import ClientLite

    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("a client certificate needs both --tls-cert and --tls-key")
    password = None
    if args.password_file:
        try:
            with open(args.password_file, "rb") as f:
                password = f.read().strip()
        except OSError as e:  # name the file: the caller's OSError is about the server
            raise ValueError(f"--password-file {args.password_file}: {e.strerror or e}") from None
    name = args.name
    if name is None and args.tls_cert:
        # A node that checks certificates wants the name they carry: NAME.crt from `lightspeed certs`.
        name = os.path.splitext(os.path.basename(args.tls_cert))[0]
    # With all three --tls-* files the client signs its adverts (a node with --tls-ca wants them signed).
    return ClientLite(args.server, name, cert=args.tls_cert, key=args.tls_key, ca=args.tls_ca, password=password,
                      connect_timeout=args.timeout, timeout=args.timeout)


def emit(args: argparse.Namespace, value: Any, text: Optional[str] = None) -> None:
    """
    Print ``value`` as JSON with ``--json``, else ``text`` (default: ``value``
    as compact JSON, a plain string as it is; nothing for an empty ``text``).
    """
    if args.json:
        print(json.dumps(value, sort_keys=True, default=_plain))
    elif text is not None:
        if text:
            print(text)
    else:
        print(value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=_plain))


def _plain(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else repr(value)


def table(rows: List[Dict[str, Any]], columns: List[str]) -> str:
    """
    ``rows`` as a text table with a header, each column as wide as it needs.
    """
    cells = [columns] + [["" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells)


def _edges(links: Dict[str, Dict[str, int]]) -> Dict[Tuple[str, str], int]:
    """The two-way links, each once: ``{(a, b): cost}`` with a < b, the larger cost."""
    edges = {}
    for a, peers in links.items():
        for b, cost in peers.items():
            back = links.get(b, {}).get(a)
            if back is not None:
                edges[(min(a, b), max(a, b))] = max(cost, back)
    return edges


def tree(links: Dict[str, Dict[str, int]], hidden: List[str], root: str) -> str:
    """
    The mesh as a text tree from ``root`` (a breadth-first spanning tree),
    then the links the tree leaves out.
    """
    edges = _edges(links)
    adjacent: Dict[str, List[Tuple[str, int]]] = {}
    for (a, b), cost in sorted(edges.items()):
        adjacent.setdefault(a, []).append((b, cost))
        adjacent.setdefault(b, []).append((a, cost))
    mark = lambda k: f"{k} (hidden)" if k in hidden else k  # noqa: E731
    lines, seen, used = [mark(root)], {root}, set()

    def walk(node: str, indent: str) -> None:
        children = [(peer, cost) for peer, cost in sorted(adjacent.get(node, [])) if peer not in seen]
        seen.update(peer for peer, _ in children)
        for i, (peer, cost) in enumerate(children):
            last = i == len(children) - 1
            used.add((min(node, peer), max(node, peer)))
            lines.append(f"{indent}{'`-- ' if last else '|-- '}{mark(peer)}  [cost {cost}]")
            walk(peer, indent + ("    " if last else "|   "))
    walk(root, "")
    rest = [f"  {a} -- {b}  [cost {cost}]" for (a, b), cost in sorted(edges.items()) if (a, b) not in used]
    return "\n".join(lines + (["other links:"] + rest if rest else []))


def dot(links: Dict[str, Dict[str, int]], hidden: List[str]) -> str:
    """The mesh in Graphviz's language: hidden kernels dashed, links labelled with their cost."""
    kernels = sorted(links)
    lines = ["graph lightspeed {"]
    lines += [f'  "{k}"' + (" [style=dashed]" if k in hidden else "") + ";" for k in kernels]
    lines += [f'  "{a}" -- "{b}" [label="{cost}"];' for (a, b), cost in sorted(_edges(links).items())]
    return "\n".join(lines + ["}"])
