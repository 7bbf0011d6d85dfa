"""
The seed's two programs, as lightspeed apps for ``twistd lightspeed --app``.

In one terminal (the server, kernel ``otherbox``)::

    twistd -n --pidfile= lightspeed --kernel otherbox --listen tcp:9876:interface=127.0.0.1 --app lightspeed.examples.pingpong:server

In another (the client, kernel ``testbox``)::

    twistd -n --pidfile= lightspeed --kernel testbox --listen none --connect tcp:host=127.0.0.1:port=9876 --app lightspeed.examples.pingpong:client

The client pings ``poe://otherbox/mysession/ping``; the server answers twice
(to the sender object and to its id plus a state) and posts a third event to
the client's ``confused`` state, which prints what lightspeed tells it about
the sender.  Once all three have arrived the client stops its reactor: the
node shuts down cleanly and exits 0.
"""

from lightspeed import Kernel, Session


def say(text: str) -> None:
    print(text, flush=True)


class PingServer(Session):
    """
    The seed's server session.
    """

    def _start(self, event):
        event.kernel.alias_set("mysession")

    def ping(self, event):
        say(f"Received 'ping' from {event.sender.id} -> {event.arg0}")
        event.kernel.post(event.sender, "pong", "wassup!")
        event.kernel.post(event.sender.id, "pong", "wazzup!")
        # Demonstration of Lightspeed hackery
        event.kernel.post(f"poe://{event.sender.remote_kernel}/mysession/confused", "huH!")


class PingClient(Session):
    """
    The seed's client session: waits until the server's kernel is reachable
    (``when_reachable``, the convergence signal), then pings it; if the
    server's session is not there yet, it tries again ``interval`` seconds
    after the ``_undeliverable`` notice.  So it does not matter which node
    starts first.  With ``stop_when_done`` it stops the kernel's reactor
    once both pongs and the ``confused`` event have arrived.
    """

    #: The events the server sends back for one ping.
    REPLIES = 3

    def __init__(self, target: str = "otherbox", interval: float = 1.0, stop_when_done: bool = False):
        super().__init__()
        self.target = target
        self.interval = interval
        self.stop_when_done = stop_when_done
        self.answered = False
        self.replies = 0

    def _start(self, event):
        kernel = event.kernel
        kernel.alias_set("mysession")
        me = f"poe://{kernel.name}/mysession/do_stuff"
        kernel.when_reachable(self.target).addCallback(lambda _: kernel.post(me))

    def do_stuff(self, event):
        if not self.answered:
            event.kernel.post(f"poe://{self.target}/mysession/ping", "how are you?")

    def _undeliverable(self, event):
        event.kernel.delay_set("do_stuff", self.interval)

    def pong(self, event):
        self.answered = True
        say(f"Received 'pong' from {event.sender.id}: {event.arg0}")
        self._replied(event)

    def confused(self, event):
        kind = "Lightspeed" if event.sender.is_lightspeed else "regular"
        say(f"Received {kind} request from: '{event.sender.id}' State '{event.caller_state}' "
            f"File '{event.caller_file}' Line '{event.caller_line}'")
        self._replied(event)

    def _replied(self, event):
        self.replies += 1
        if self.stop_when_done and self.replies == self.REPLIES:
            say("Exchange complete; stopping.")
            event.kernel.reactor.stop()


def server(kernel: Kernel) -> None:
    kernel.spawn(PingServer())


def client(kernel: Kernel) -> None:
    kernel.spawn(PingClient(stop_when_done=True))
