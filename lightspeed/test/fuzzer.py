# -*- test-case-name: lightspeed.test.test_hostile -*-
"""
A fuzzer for a lightspeed node over TCP (issue 11): hostile connections,
each one scenario drawn from a seeded generator.

Scenarios: random bytes; oversize length prefixes and truncated frames,
before and after the handshake; hostile handshakes (a mutated HELLO or
READY, messages out of order, a garbage zlib stream); and links that
finish the handshake as a fake kernel and send a burst of frames of every
message type (PING, PONG, LSA, ROUTED carrying every payload kind, BYE,
HELLO and READY again), each valid or mutated (a value swapped for a
hostile one anywhere in the structure, bytes flipped, inserted, cut).

Shared by the short run in :obj:`lightspeed.test.test_hostile` and the long
one in ``bench/fuzz.py``.
"""

from __future__ import annotations

import random
import struct
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

import cbor2
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher

from lightspeed.session import Event, Session

from lightspeed.message import (BYE, CALL, CALLREPLY, CONTROL, HELLO, LSA, PING, PONG, POST, PROTOCOL_VERSION,
                                READY, REQUEST, RESPONSE, ROUTED, UNDELIVERABLE, routed_body)

__all__ = ["Generator", "FuzzRun", "Echo", "Honest", "Tracebacks"]

_HEADER = struct.Struct(">I")


def _frame(body: bytes) -> bytes:
    return _HEADER.pack(len(body)) + body


def _encode(value: Any) -> bytes:
    try:
        return cbor2.dumps(value)
    except Exception:  # a value cbor2 cannot write: send garbage instead
        return b"\xff\x00"


class Generator:
    """
    Hostile connections from a seed: :meth:`connection` gives the bytes of
    one, in chunks.

    :ivar stats: counts of what was generated (``frames``, ``handshakes``,
        ``mutated``, per scenario).
    """

    def __init__(self, seed: Any, session: str = "echo") -> None:
        self.rng = random.Random(seed)
        self.session = session
        self.prefix = "fz%s-" % (seed,)
        self.stats: Dict[str, int] = {"frames": 0, "handshakes": 0, "mutated": 0}
        self._n = 0

    # -- values ----------------------------------------------------------

    def value(self, depth: int = 0) -> Any:
        """A random CBOR value, often a hostile one."""
        rng = self.rng
        pick = rng.randrange(22 if depth < 3 else 14)
        if pick == 0:
            return rng.randint(-30, 30)
        if pick == 1:
            return rng.choice([2 ** 63, 2 ** 64, -(2 ** 64) - 1, 2 ** 200, -(2 ** 70), 10 ** 40])
        if pick == 2:
            return rng.choice([0.5, float("nan"), float("inf"), -0.0, 1e308])
        if pick == 3:
            return rng.choice(["", "*", "a/b", "x,y", "\x00", "\u202e", "poe://k/s/", "_start", "z" * 300])
        if pick == 4:
            return bytes(rng.getrandbits(8) for _ in range(rng.randrange(40)))
        if pick == 5:
            return rng.choice([None, True, False, cbor2.undefined])
        if pick == 6:
            return cbor2.CBORSimpleValue(rng.choice([0, 7, 16, 19, 32, 99, 255]))
        if pick == 7:
            return cbor2.CBORTag(rng.choice([0, 1, 2, 3, 4, 24, 28, 29, 30, 258, 55799, 999999]), self.value(depth + 3))
        if pick == 8:
            return rng.getrandbits(64)
        if pick == 9:
            return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(12)))
        if pick == 10:
            return rng.randrange(1 << 8, 1 << 60)
        if pick == 11:
            return rng.choice(["echo", "sink", "ping", "fuzz-node", "honest"])
        if pick == 12:
            return []
        if pick == 13:
            return {}
        if pick in (14, 15, 16):
            return [self.value(depth + 1) for _ in range(rng.randrange(5))]
        if pick == 17:
            return {self._key(): self.value(depth + 1) for _ in range(rng.randrange(4))}
        if pick == 18:
            deep: Any = 1
            for _ in range(rng.choice([30, 63, 64, 65, 100])):
                deep = [deep]
            return deep
        if pick == 19:
            return [[rng.choice(["a", "b", 1]), rng.randint(-2, 5)] for _ in range(rng.randrange(6))]
        return rng.randint(0, 10)

    def plain(self, depth: int = 0) -> Any:
        """A random value of the plain types that travel (for valid messages)."""
        rng = self.rng
        pick = rng.randrange(9 if depth < 2 else 7)
        if pick == 0:
            return rng.randint(-(2 ** 70), 2 ** 70)
        if pick == 1:
            return rng.choice([0.5, float("inf"), -0.0, 1e308])
        if pick == 2:
            return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(12)))
        if pick == 3:
            return bytes(rng.getrandbits(8) for _ in range(rng.randrange(40)))
        if pick == 4:
            return rng.choice([None, True, False])
        if pick in (5, 6):
            return rng.randint(0, 1000)
        if pick == 7:
            return [self.plain(depth + 1) for _ in range(rng.randrange(4))]
        return {rng.choice(["k", "v", "x"]): self.plain(depth + 1) for _ in range(rng.randrange(3))}

    def _key(self) -> Any:
        """A map key: any scalar, text most often."""
        key = self.value(3)
        try:
            hash(key)
        except (TypeError, RuntimeError):  # RuntimeError: a tag around a list
            return self.rng.choice(["version", "kernel", "compression", "proof", 7])
        return key

    def mutate(self, value: Any, depth: int = 0) -> Any:
        """``value`` with one part replaced, removed, added or cut."""
        rng = self.rng
        if isinstance(value, list) and value and depth < 6 and rng.random() < 0.7:
            value = list(value)
            i = rng.randrange(len(value))
            action = rng.randrange(6)
            if action == 0:
                del value[i]
            elif action == 1:
                value.insert(i, self.value())
            elif action == 2:
                value = value[:i]
            else:
                value[i] = self.mutate(value[i], depth + 1)
            return value
        if isinstance(value, dict) and value and depth < 6 and rng.random() < 0.7:
            value = dict(value)
            key = rng.choice(list(value))
            action = rng.randrange(4)
            if action == 0:
                del value[key]
            elif action == 1:
                value[self._key()] = self.value()
            else:
                value[key] = self.mutate(value[key], depth + 1)
            return value
        if isinstance(value, bytes) and value and rng.random() < 0.5:
            return self.mutate_bytes(value)
        return self.value()

    def mutate_bytes(self, data: bytes) -> bytes:
        """``data`` with a few bytes flipped, inserted, removed, or cut short."""
        rng = self.rng
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            action = rng.randrange(4)
            i = rng.randrange(len(out) + 1)
            if action == 0 and out:
                out[min(i, len(out) - 1)] ^= 1 << rng.randrange(8)
            elif action == 1:
                out[i:i] = bytes([rng.choice([0x00, 0x1b, 0x5b, 0x9f, 0xbf, 0xf7, 0xf8, 0xff, rng.getrandbits(8)])])
            elif action == 2 and out:
                del out[min(i, len(out) - 1)]
            else:
                del out[i:]
        return bytes(out)

    # -- messages --------------------------------------------------------

    def hello(self, name: str, incarnation: int, compression: bool) -> List[Any]:
        return [HELLO, {"version": PROTOCOL_VERSION, "kernel": name, "incarnation": incarnation,
                        "nonce": bytes(self.rng.getrandbits(8) for _ in range(16)),
                        "serializers": ["cbor"], "compression": ["zlib"] if compression else [],
                        "password": False}]

    def payload(self, me: str) -> List[Any]:
        """A valid payload of a random kind, for the node's echo session."""
        rng = self.rng
        kind = rng.choice([POST, POST, CALL, CALLREPLY, REQUEST, RESPONSE, UNDELIVERABLE, CONTROL])
        state = rng.choice(["sink", "sink", "nothing", "_default"])
        args = [self.plain() for _ in range(rng.randrange(3))]
        if kind == RESPONSE:
            return [RESPONSE, [], rng.getrandbits(62), rng.random() < 0.5, self.plain()]
        if kind == CONTROL:
            state = rng.choice(["sessions", "states", "monitor_register", "monitor_unregister", "bogus"])
            args = rng.choice([[], ["*"], [["arrived"], "poe://x/y/z"], [self.plain()]])
        message = [kind, rng.choice([[self.session], "*", ["nobody"]]), state, args, "s", "st", "fuzz.py", 1]
        if kind == CALL:
            message.append("rsvp")
        elif kind in (REQUEST, CONTROL):
            message.append(rng.getrandbits(62))
        return message

    def message(self, link: Dict[str, Any]) -> List[Any]:
        """A valid message of a random type on an up link."""
        rng = self.rng
        pick = rng.randrange(200)
        if pick < 20:
            return [PING, self.plain()]
        if pick < 30:
            return [PONG, self.plain()]
        if pick < 60:
            origin, incarnation = rng.choice([(link["me"], link["incarnation"]), (link["node"], link["node_incarnation"]),
                                              ("ph%d" % rng.randrange(50), rng.randrange(1, 1 << 50) << 8)])
            seq = link["lsa"] = link["lsa"] + 1
            lsa = [LSA, origin, incarnation, seq,
                   [[rng.choice(["a", "b", link["node"], link["me"]]), rng.randint(1, 9)]
                    for _ in range(rng.randrange(4))]]
            if rng.random() < 0.3:  # flags after the proof: vouches, hidden
                lsa += [None, {"vouches": [[rng.choice(["a", link["node"]]), self.plain()]
                                           for _ in range(rng.randrange(3))], "hidden": self.plain()}]
            return lsa
        if pick == 60:  # each closes the link
            return rng.choice([[HELLO, {}], [READY, {}], [BYE, "fuzz", "bye"], [99], [ROUTED]])
        return [ROUTED, self.payload(link["me"])]  # placeholder: turned into bytes by :meth:`body`

    def body(self, link: Dict[str, Any], mutate: bool) -> bytes:
        """The CBOR body of one frame on an up link."""
        message = self.message(link)
        if message[0] == ROUTED and len(message) == 2:
            payload = message[1]
            if mutate and self.rng.random() < 0.5:
                payload, mutate = self.mutate(payload), False  # only the destination decodes it
                self.stats["mutated"] += 1
            seq = link["seq"] = link["seq"] + 1
            entries = [(link["node"], link["node_incarnation"], seq, 0)]
            data = routed_body(link["me"], link["incarnation"], entries, self.rng.choice([0, 1, 5, 32]),
                               self.rng.choice([None, 0, 1000]), _encode(payload))
            if not mutate:
                return data
            self.stats["mutated"] += 1
            return self.mutate_bytes(data) if self.rng.random() < 0.5 else _encode(self.mutate(cbor2.loads(data)))
        if mutate:
            self.stats["mutated"] += 1
            if self.rng.random() < 0.3:
                return self.mutate_bytes(_encode(message))
            message = self.mutate(message)
        return _encode(message)

    # -- connections -----------------------------------------------------

    def connection(self, node: str, node_incarnation: int, node_zlib: bool) -> Tuple[str, List[bytes]]:
        """
        One hostile connection to kernel ``node``.

        :returns: ``(scenario, chunks)``: what to send, in order, then close.
        """
        rng = self.rng
        self._n += 1
        me = f"{self.prefix}{self._n}"
        incarnation = rng.randrange(1 << 48, 1 << 50) << 8  # started between 1978 and 2005
        pick = rng.random()
        if pick < 0.05:
            scenario, chunks = "random", [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 600)))]
        elif pick < 0.09:
            scenario, chunks = "oversize", [_HEADER.pack(rng.choice([65537, 1 << 24, (1 << 32) - 1]))
                                            + b"\x82\x04\x00"]
        elif pick < 0.12:
            full = _frame(_encode(self.hello(me, incarnation, False)))
            scenario, chunks = "truncated", [full[:rng.randrange(1, len(full))]]
        elif pick < 0.35:
            scenario, chunks = "handshake", self._hostile_handshake(me, incarnation)
        else:
            scenario, chunks = "link", self._link(me, incarnation, node, node_incarnation, node_zlib)
        self.stats[scenario] = self.stats.get(scenario, 0) + 1
        if scenario in ("handshake", "link", "truncated"):
            self.stats["handshakes"] += 1
        return scenario, chunks

    def _hostile_handshake(self, me: str, incarnation: int) -> List[bytes]:
        rng = self.rng
        hello = self.hello(me, incarnation, rng.random() < 0.2)
        ready = [READY, {"compression": None, "proof": None}]
        pick = rng.randrange(6)
        if pick == 0:
            order = [self.mutate(hello)]
        elif pick == 1:
            order = [hello, self.mutate(ready)]
        elif pick == 2:
            order = [ready, hello]
        elif pick == 3:
            order = [[rng.choice([PING, PONG, LSA, ROUTED, 42]), self.value()], hello, ready]
        elif pick == 4:
            order = [hello, hello, ready]
        else:
            order = [self.mutate(hello), self.mutate(ready)]
        self.stats["frames"] += len(order)
        chunks = [_frame(_encode(m)) for m in order]
        if rng.random() < 0.2:
            chunks[-1] = self.mutate_bytes(chunks[-1])
        return chunks

    def _link(self, me: str, incarnation: int, node: str, node_incarnation: int, node_zlib: bool) -> List[bytes]:
        """A handshake that succeeds, then a burst of frames, a few of them mutated."""
        rng = self.rng
        zipped = node_zlib and rng.random() < 0.2
        link = {"me": me, "incarnation": incarnation, "node": node, "node_incarnation": node_incarnation,
                "seq": 0, "lsa": 0}
        head = _frame(_encode(self.hello(me, incarnation, zipped)))
        after = [_frame(_encode([READY, {"compression": "zlib" if zipped else None, "proof": None}]))]
        rate = rng.choice([0.0, 0.002, 0.01, 0.05])
        count = rng.choice([5, 20, 100, 400])
        for _ in range(count):
            after.append(_frame(self.body(link, rng.random() < rate)))
        if rng.random() < 0.1:
            after.append(_HEADER.pack(rng.choice([1 << 24, (1 << 32) - 1, 100])) + b"\x82")  # oversize or cut
        self.stats["frames"] += 2 + count
        if not zipped:
            return [head] + after
        deflate = zlib.compressobj()
        data = deflate.compress(b"".join(after)) + deflate.flush(zlib.Z_SYNC_FLUSH)
        if rng.random() < 0.1:
            data = self.mutate_bytes(data)
        return [head, data]


class _Client(Protocol):
    """One hostile connection: wait for the node's HELLO, send, close."""

    def __init__(self, run: "FuzzRun") -> None:
        self.run = run
        self.buffer = b""
        self.sent = False
        self.timeout: Any = None

    def dataReceived(self, data: bytes) -> None:
        if self.sent:
            return
        self.buffer += data
        if len(self.buffer) < 4:
            return
        (length,) = _HEADER.unpack(self.buffer[:4])
        if len(self.buffer) < 4 + length:
            return
        self.sent = True
        hello = cbor2.loads(self.buffer[4:4 + length])[1]
        self.buffer = b""
        _, chunks = self.run.generator.connection(hello["kernel"], hello["incarnation"],
                                                  "zlib" in hello.get("compression", []))
        transport: Any = self.transport
        for chunk in chunks:
            transport.write(chunk)
        # Half-close and read on: closing outright while the node still
        # writes would reset the connection and lose what it has not read.
        transport.loseWriteConnection()
        self.timeout = self.run.reactor.callLater(30, transport.abortConnection)

    def connectionLost(self, reason: Any = None) -> None:
        if self.timeout is not None and self.timeout.active():
            self.timeout.cancel()
        self.run.finished(self)


class _Factory(ClientFactory):
    def __init__(self, run: "FuzzRun") -> None:
        self.run = run

    def buildProtocol(self, addr: Any) -> _Client:
        return _Client(self.run)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.run.failed += 1
        self.run.finished(None)


class FuzzRun:
    """
    ``connections`` hostile connections to ``host:port``, ``parallel`` at a
    time; :meth:`start` returns a Deferred that fires with the generator's
    stats when the last one closed.
    """

    def __init__(self, reactor: Any, host: str, port: int, seed: Any, connections: int, parallel: int,
                 frames: Optional[int] = None, progress: Optional[Callable[["FuzzRun"], None]] = None) -> None:
        self.reactor = reactor
        self.host, self.port = host, port
        self.generator = Generator(seed)
        self.connections, self.parallel, self.frames = connections, parallel, frames
        self.progress = progress
        self.started = self.done = self.failed = 0
        self._done: Deferred = Deferred()

    def start(self) -> Deferred:
        for _ in range(min(self.parallel, self.connections)):
            self._next()
        return self._done

    def _more(self) -> bool:
        if self.frames is not None and self.generator.stats["frames"] >= self.frames:
            return False
        return self.started < self.connections

    def _next(self) -> None:
        self.started += 1
        self.reactor.connectTCP(self.host, self.port, _Factory(self), timeout=30)

    def finished(self, client: Optional[_Client]) -> None:
        self.done += 1
        if self.progress is not None and self.done % 500 == 0:
            self.progress(self)
        if self._more():
            self._next()
        elif self.done == self.started and not self._done.called:
            self._done.callback(dict(self.generator.stats, connections=self.done, failed=self.failed))


class Echo(Session):
    """The node's session: ``ping`` answers ``pong`` with the same args, ``sink`` takes anything."""

    def _start(self, event: Event) -> None:
        event.kernel.alias_set("echo")

    def ping(self, event: Event) -> None:
        event.kernel.post(event.sender, "pong", *event.args)

    def sink(self, event: Event) -> None:
        pass


class Honest(Session):
    """
    The honest kernel's session: every ``interval`` seconds, until
    :attr:`running` is false, it posts ``ping(n)`` to the node's echo
    session; ``pong(n)`` marks n answered, with the longest wait between
    answers.
    """

    def __init__(self, node: str, clock: Callable[[], float], interval: float = 0.02) -> None:
        super().__init__()
        self.node, self.clock, self.interval = node, clock, interval
        self.running = True
        self.sent = 0
        self.answered: List[int] = []
        self.undeliverable = 0
        self.last = clock()
        self.longest_gap = 0.0

    def _start(self, event: Event) -> None:
        event.kernel.alias_set("honest")
        self.last = self.clock()
        event.kernel.delay_set("tick", self.interval)

    def tick(self, event: Event) -> None:
        if not self.running:
            return
        event.kernel.post(f"poe://{self.node}/echo/ping", self.sent)
        self.sent += 1
        event.kernel.delay_set("tick", self.interval)

    def pong(self, event: Event) -> None:
        now = self.clock()
        self.longest_gap = max(self.longest_gap, now - self.last)
        self.last = now
        self.answered.append(event.args[0])

    def _undeliverable(self, event: Event) -> None:
        self.undeliverable += 1


class Tracebacks:
    """
    Counts the critical and failure (traceback) log events while observing.

    :ivar kinds: how many of each, by the last line of the traceback (or
        the log format).
    """

    def __init__(self) -> None:
        self.critical = self.failures = 0
        self.first: Optional[str] = None
        self.kinds: Dict[str, int] = {}

    def __call__(self, event: Dict[str, Any]) -> None:
        failure = event.get("log_failure")
        critical = event.get("log_level") == LogLevel.critical
        if failure is None and not critical:
            return
        self.failures += failure is not None
        self.critical += critical
        text = failure.getTraceback() if failure is not None else str(event.get("log_format"))
        if self.first is None:
            self.first = text
        kind = text.strip().splitlines()[-1][:200] if text.strip() else "?"
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def start(self) -> "Tracebacks":
        globalLogPublisher.addObserver(cast(ILogObserver, self))  # a callable taking an event is one
        return self

    def stop(self) -> None:
        globalLogPublisher.removeObserver(cast(ILogObserver, self))
