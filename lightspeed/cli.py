# -*- test-case-name: lightspeed.test.test_cli -*-
"""
The ``lightspeed`` command line.

    lightspeed certs DIR NAME [NAME ...]   make a private CA and node certificates
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from lightspeed.specifier import check_name
from lightspeed.tls import write_pki


def main(argv: Optional[List[str]] = None) -> int:
    """
    Run the command line; returns the exit status.
    """
    parser = argparse.ArgumentParser(prog="lightspeed", description="lightspeed tools")
    commands = parser.add_subparsers(dest="command", required=True)
    certs = commands.add_parser("certs", help="create a private CA (once) and a certificate per node name")
    certs.add_argument("directory", help="where ca.crt, ca.key, NAME.crt and NAME.key go")
    certs.add_argument("names", nargs="+", help="kernel names to make certificates for")
    certs.add_argument("--ca-name", default="lightspeed CA", help="common name of a new CA")
    certs.add_argument("--host", action="append", default=None,
                       help="DNS name or IP address the node certificates are valid for (repeatable; "
                            "default localhost, 127.0.0.1, ::1)")
    args = parser.parse_args(argv)
    if args.command == "certs":
        for name in args.names:
            try:
                check_name(name, "kernel name")
            except ValueError as e:
                parser.error(str(e))
        hosts = args.host or ["localhost", "127.0.0.1", "::1"]
        for path in write_pki(args.directory, args.names, args.ca_name, hosts):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
