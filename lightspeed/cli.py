# -*- test-case-name: lightspeed.test.test_cli -*-
"""
The ``lightspeed`` command line: talk to a running mesh through
:obj:`lightspeed.clientlite` (see ``docs/tools.rst``), and make certificates.

    lightspeed post DEST ARG...          lightspeed kernels
    lightspeed request DEST ARG...       lightspeed sessions [K]
    lightspeed call DEST RSVP ARG...     lightspeed states DEST
    lightspeed tail [--kernel K] TOPIC   lightspeed ping K / route K / trace K
    lightspeed topology [--dot]          lightspeed status [K]
    lightspeed bench DEST                lightspeed certs DIR NAME [NAME ...]

Each command's arguments parse as JSON where they are JSON, else as
strings.  Errors are one line on stderr and exit status 1 (2 for a usage
error).
"""

from __future__ import annotations

import argparse
import ssl
import sys
from typing import Callable, List, Optional

from lightspeed.clicommands import COMMANDS
from lightspeed.cliutil import common_options, fail
from lightspeed.errors import LightspeedError
from lightspeed.specifier import check_name

__all__ = ["main"]


def _version() -> str:
    package = sys.modules.get("lightspeed")
    return f"lightspeed {getattr(package, '__version__', 'unknown')}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightspeed", description="lightspeed tools: drive and watch a mesh")
    parser.add_argument("--version", action="version", version=_version())
    common_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (function, summary, arguments) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        arguments(sub)
        common_options(sub, suppress=True)
        sub.set_defaults(run=function)
    certs = commands.add_parser("certs", help="create a private CA (once) and a certificate per node name")
    certs.add_argument("directory", help="where ca.crt, ca.key, NAME.crt and NAME.key go")
    certs.add_argument("names", nargs="+", help="kernel names to make certificates for")
    certs.add_argument("--ca-name", default=None,
                       help='common name of a new CA (default: "lightspeed CA" and 8 random hex digits)')
    certs.add_argument("--host", action="append", default=None,
                       help="DNS name or IP address the node certificates are valid for (repeatable; "
                            "default localhost, 127.0.0.1, ::1)")
    certs.set_defaults(run=None)
    return parser


def _certs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    for name in args.names:
        try:
            check_name(name, "kernel name")
        except ValueError as e:
            parser.error(str(e))
    from lightspeed.tls import write_pki

    hosts = args.host or ["localhost", "127.0.0.1", "::1"]
    for path in write_pki(args.directory, args.names, args.ca_name, hosts):
        print(path)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """
    Run the command line; returns the exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.run is None:
        return _certs(args, parser)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except LightspeedError as e:
        return fail(f"{type(e).__name__}: {e}")
    except ssl.SSLError as e:
        return fail(f"TLS: {e.reason or e}")
    except OSError as e:
        return fail(f"{args.server}: {e.strerror or e}")
    except (ValueError, TypeError) as e:
        return fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
