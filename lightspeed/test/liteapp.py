"""
A ``twistd lightspeed --app`` for the ClientLite and CLI tests: session
``echo`` answers ``ask`` with its arguments, prints what ``hit`` gets, and
posts ``ping`` back to the sender's ``pong`` state.
"""

from lightspeed import Kernel, Session


class Echo(Session):
    def _start(self, event):
        event.kernel.alias_set("echo")

    def ask(self, event):
        return list(event.args)

    def add(self, event):
        return sum(event.args)

    def boom(self, event):
        raise ValueError("it broke")

    def slow(self, event):
        from twisted.internet.defer import Deferred

        return Deferred()  # never answers

    def hit(self, event):
        print(f"hit {event.kernel.name} {list(event.args)!r}", flush=True)

    def broadcast(self, event):
        event.kernel.post("poe://*/lite/hit", *event.args)  # a hidden client must not get it
        event.kernel.post("poe://*/echo/hit", *event.args)

    def ping(self, event):
        event.kernel.post(event.sender, "pong", *event.args)


def app(kernel: Kernel) -> None:
    kernel.spawn(Echo())
