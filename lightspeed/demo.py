# -*- test-case-name: lightspeed.test.test_demo -*-
"""
The seed's ping/pong exchange between two sessions of one local kernel.

Run it with ``python -m lightspeed.demo``.  It prints the exchange, then
stops the reactor.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional, TextIO

from lightspeed.kernel import Kernel
from lightspeed.session import Event, Session


class Server(Session):
    """
    The seed's server session: answers ``ping`` with two ``pong``s and pokes
    the client's ``confused`` state.
    """

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out

    def _start(self, event: Event) -> None:
        event.kernel.alias_set("mysession")

    def ping(self, event: Event) -> None:
        print(f"Received 'ping' from {event.sender.id} -> {event.arg0}", file=self.out)
        event.kernel.post(event.sender, "pong", "wassup!")
        event.kernel.post(event.sender.id, "pong", "wazzup!")
        event.kernel.post(f"poe://{event.kernel.name}/client/confused", "huH!")


class Client(Session):
    """
    The seed's client session: pings the server, prints what comes back.
    """

    def __init__(self, out: TextIO, done: Callable[[], Any]) -> None:
        super().__init__()
        self.out = out
        self.done = done
        self.pongs = 0

    def _start(self, event: Event) -> None:
        event.kernel.alias_set("client")
        event.kernel.delay_set("do_stuff", 0.1)

    def do_stuff(self, event: Event) -> None:
        event.kernel.post(f"poe://{event.kernel.name}/mysession/ping", "how are you?")

    def pong(self, event: Event) -> None:
        print(f"Received 'pong' from {event.sender.id}: {event.arg0}", file=self.out)
        self.pongs += 1

    def confused(self, event: Event) -> None:
        kind = "Lightspeed" if event.sender.is_lightspeed else "regular"
        print(
            f"Received {kind} request from: '{event.sender.id}' State '{event.caller_state}' "
            f"File '{event.caller_file}' Line '{event.caller_line}'",
            file=self.out,
        )
        event.kernel.alias_remove("client")
        self.done()


def run(kernel: Kernel, out: TextIO, done: Callable[[], Any]) -> None:
    """
    Start the two sessions in ``kernel``; ``done`` is called after the
    exchange.
    """
    kernel.spawn(Server(out))
    kernel.spawn(Client(out, done))


def main(argv: Optional[list] = None) -> None:
    from twisted.internet import reactor

    kernel = Kernel("testbox", reactor=reactor)
    print(f"kernel {kernel.name!r}: the seed's ping/pong between two local sessions")
    run(kernel, sys.stdout, lambda: reactor.callLater(0, reactor.stop))
    reactor.run()


if __name__ == "__main__":
    main()
