"""
Real ``twistd lightspeed`` nodes for blocking tests (ClientLite, the CLI):
started with :obj:`subprocess` once per test class, stopped at its end.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from typing import Callable, Dict, List, Optional

from lightspeed.test.test_tap import CHECKOUT, twistd_argv

#: What a node prints once it listens: its port.
LISTENING = re.compile(r"listening on \S+: \S+:(\d+)\n")


class TwistdNode:
    """
    One twistd node; :attr:`port` is where it listens (``--listen tcp:0``),
    :attr:`log` what it printed so far.
    """

    def __init__(self, *args: str, listen: bool = True, ready: Optional[str] = None) -> None:
        env = dict(os.environ, PYTHONPATH=CHECKOUT)
        self.log = ""
        self.port = 0
        self.process = subprocess.Popen(twistd_argv(*args), cwd=CHECKOUT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        try:
            if listen:
                self.port = int(self.expect(LISTENING).group(1))
            if ready is not None:
                self.expect(re.compile(ready))
        except Exception:
            self.stop()
            raise

    def expect(self, pattern: "re.Pattern[str]", timeout: float = 30.0) -> "re.Match[str]":
        """
        Wait until the node has printed something matching ``pattern``.

        :raises AssertionError: if it exits or does not print it in time.
        """
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while True:
            match = pattern.search(self.log)
            if match:
                return match
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                raise AssertionError(f"twistd did not print {pattern.pattern!r}:\n{self.log}")
            readable, _, _ = select.select([self.process.stdout], [], [], left)
            if readable:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    self.process.wait(5)
                self.log += chunk.decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def stop_all(nodes: List[TwistdNode]) -> None:
    for node in reversed(nodes):
        node.stop()


_shared: Dict[Callable[[], List[TwistdNode]], List[TwistdNode]] = {}


def shared(start: Callable[[], List[TwistdNode]]) -> List[TwistdNode]:
    """
    The nodes ``start()`` makes, started once per test process (the first
    test that needs them starts them) and stopped when it exits, so the
    ClientLite and CLI tests share a few twistd processes.
    """
    nodes = _shared.get(start)
    if nodes is None:
        import atexit

        nodes = _shared[start] = start()
        atexit.register(stop_all, nodes)
    return nodes
