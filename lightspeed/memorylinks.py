# -*- test-case-name: lightspeed.test.test_testing,lightspeed.test.test_mesh -*-
"""
The in-memory byte pipes under :obj:`lightspeed.testing.MemoryMesh`: a
transport per end, and per direction a :obj:`LinkDirection` that carries
what one end writes to the other and can break on purpose (delay, jitter,
frame loss and reordering, a cut cable).  Import them from
:obj:`lightspeed.testing`.
"""

from __future__ import annotations

import random
import zlib
from collections import deque
from dataclasses import dataclass, fields
from typing import Any, Deque, List, Optional

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from lightspeed.wire.framing import HEADER

__all__ = ["MemoryTransport", "LinkDirection", "LinkCounters", "HANDSHAKE_FRAMES"]

#: Frames of each direction that frame faults spare unless asked: HELLO and READY.
HANDSHAKE_FRAMES = 2


class MemoryTransport(StringTransport):
    """
    A transport whose writes reach its peer protocol on the next clock turn,
    or through :obj:`outgoing` when it is set.

    :ivar outgoing: the :obj:`LinkDirection` carrying what this end writes.
    """

    def __init__(self, clock: Clock, host: Any, peer: Any) -> None:
        super().__init__(hostAddress=host, peerAddress=peer)
        self.clock = clock
        self.other: Optional["MemoryTransport"] = None
        self.protocol: Any = None
        self.outgoing: Optional["LinkDirection"] = None
        self.closed = False
        self.written = 0
        self._held: List[bytes] = []

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self.written += len(data)
        if self.outgoing is not None:
            self.outgoing.carry(data)
            return
        other = self.other
        self.clock.callLater(0, other._receive, data)  # type: ignore[union-attr]

    def writeSequence(self, seq: List[bytes]) -> None:
        self.write(b"".join(seq))

    def _receive(self, data: bytes = b"") -> None:
        if data and not self._held and self.producerState == "producing" and not self.closed:
            self.protocol.dataReceived(data)  # nothing waits before it: what the loop below would do
            return
        if data:
            self._held.append(data)  # it waits there while reading is paused
        while self._held and self.producerState == "producing" and not self.closed:
            self.protocol.dataReceived(self._held.pop(0))

    def resumeProducing(self) -> None:
        super().resumeProducing()
        self._receive()

    def loseConnection(self) -> None:
        self._close(ConnectionDone("closed"))

    def abortConnection(self) -> None:
        self._close(ConnectionLost("aborted"))

    def _close(self, why: Exception) -> None:
        if self.closed:
            return
        outgoing = self.outgoing
        if outgoing is not None and not outgoing.prompt():
            # The other end hears of it when it gets there, after the bytes
            # still on their way (or never, while the link is cut).
            self.clock.callLater(0, self._lost_end, why)
            outgoing.carry_close(why)
            return
        # Data already written still arrives, then both ends see the close.
        self.clock.callLater(0, self._lost, why)

    def _lost(self, why: Exception) -> None:
        for end in (self, self.other):
            if end is not None:
                end._lost_end(why)

    def _lost_end(self, why: Exception) -> None:
        if not self.closed:
            self.closed = True
            self.protocol.connectionLost(Failure(why))


@dataclass(frozen=True)
class LinkCounters:
    """
    Frames on one direction of a link, or on both (:obj:`MemoryLink.counters`),
    at one moment: a snapshot, which adds and subtracts, so ``after - before``
    is what happened in between.

    :ivar sent: frames the sending end wrote, its HELLO and READY included.
    :ivar delivered: frames handed to the receiving end.
    :ivar dropped: frames thrown away by :obj:`LinkDirection.drop`.
    :ivar reordered: frames held back and delivered after a frame written
        after them (:obj:`LinkDirection.reorder`).
    :ivar delayed: delivered frames that arrived at a later clock time than
        they were written (a delay, jitter, or a cut).
    :ivar lost: frames that reached an end already closed, and those a
        delay or a cut still held when :obj:`MemoryLink.close` failed the
        link.
    """

    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    reordered: int = 0
    delayed: int = 0
    lost: int = 0

    def __add__(self, other: "LinkCounters") -> "LinkCounters":
        return LinkCounters(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: "LinkCounters") -> "LinkCounters":
        return LinkCounters(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))


_COUNTERS = tuple(f.name for f in fields(LinkCounters))


class _FrameScanner:
    """
    Finds where frames end in a byte stream, under any chunking, without
    copying the stream.

    :ivar frames: how many frames ended so far.
    :ivar stop: where in its data the last :obj:`feed` stopped.
    """

    def __init__(self) -> None:
        self.frames = 0
        self.stop = 0
        self._head = b""  # a length prefix not yet complete
        self._left = 0  # body bytes still to come

    @property
    def mid_frame(self) -> bool:
        """Whether the stream so far ends inside a frame."""
        return bool(self._head) or self._left > 0

    def feed(self, data: bytes, most: Optional[int] = None) -> List[int]:
        """
        :returns: the offsets in ``data`` just past each frame that ends in
            it, stopping after ``most`` of them.
        """
        size = len(data)
        if not (self._head or self._left) and size > 4 and HEADER.unpack_from(data)[0] == size - 4 \
                and most != 0:  # exactly one whole frame, what a link writes most
            self.frames += 1
            self.stop = size
            return [size]
        ends: List[int] = []
        pos = 0
        while pos < size and (most is None or len(ends) < most):
            if self._left:
                take = min(self._left, size - pos)
                pos += take
                self._left -= take
                if self._left:
                    break
            else:
                head = self._head + data[pos:pos + 4 - len(self._head)]
                pos += len(head) - len(self._head)
                if len(head) < 4:
                    self._head = head
                    break
                self._head = b""
                (self._left,) = HEADER.unpack(head)
                if self._left:
                    continue
            ends.append(pos)
        self.frames += len(ends)
        self.stop = pos
        return ends


class _Unit:
    """Bytes (or a close, when ``data`` is :obj:`None`) on their way."""

    __slots__ = ("data", "frames", "written", "why", "arrival", "call", "done")

    def __init__(self, data: Optional[bytes], frames: int, written: float, why: Any = None) -> None:
        self.data = data
        self.frames = frames
        self.written = written
        self.why = why
        self.arrival = written
        self.call: Any = None
        self.done = False


class LinkDirection:
    """
    One direction of a :obj:`MemoryLink`: what one end writes, on its way to
    the other, and the faults it meets.  With no fault set, bytes arrive on
    the next clock turn exactly as written.

    Drop, reorder and jitter work on whole frames (the stream is split with
    the length prefixes of :obj:`lightspeed.wire.framing`), as a relay that
    loses or reorders messages would; the stream the receiver reads stays
    well-formed.  They are refused on a compressed link, whose frames are
    inside one zlib stream.  Delay and cut work on any link.

    :ivar sender: the writing end's :obj:`MemoryTransport`.
    :ivar receiver: the reading end's :obj:`MemoryTransport`.
    :ivar compressed: whether both ends asked for compression.
    """

    def __init__(self, clock: Clock, rng: random.Random, sender: MemoryTransport,
                 receiver: MemoryTransport, compressed: bool = False) -> None:
        self.clock = clock
        self.random = rng
        self.sender = sender
        self.receiver = receiver
        self.compressed = compressed
        self._count = dict.fromkeys(_COUNTERS, 0)
        self._delay = self._jitter = 0.0
        self._drop = self._reorder = self._window = 0.0
        self._drop_handshake = self._reorder_handshake = False
        self._cut = False
        self._queue: Deque[_Unit] = deque()
        self._last = 0.0  # when the last unit queued arrives
        self._scanner = _FrameScanner()
        self._inflate: Any = None  # on a compressed link: sees what the receiver will
        self._inflated = _FrameScanner()
        self._partial = b""  # frame by frame: the start of a frame not yet complete
        self._committed = False  # the frame in progress began to go out whole
        self._held: Optional[_Unit] = None  # a frame waiting to be overtaken
        self._held_call: Any = None

    # -- the faults ------------------------------------------------------------

    def delay(self, seconds: float, jitter: float = 0.0) -> None:
        """
        Deliver what is written from now on ``seconds`` later, plus for each
        frame a random extra of up to ``jitter`` seconds.  Order is kept, as
        on one TCP connection: a frame never overtakes an earlier one.
        ``delay(0)`` takes the delay away.
        """
        if seconds < 0 or jitter < 0:
            raise ValueError("delay and jitter cannot be negative")
        self._delay, self._jitter = float(seconds), float(jitter)

    def drop(self, probability: float, handshake: bool = False) -> None:
        """
        Throw away each frame written from now on with this probability.
        Each end's first two frames (its HELLO and READY) are spared unless
        ``handshake`` is true, so links come up.
        """
        self._drop = self._probability(probability)
        self._drop_handshake = handshake

    def reorder(self, probability: float, window: float = 0.0, handshake: bool = False) -> None:
        """
        Hold back each frame with this probability until the next frame has
        gone ahead of it.  A held frame waits at most ``window`` seconds for
        one, then goes alone; with the default 0 only frames written in the
        same turn (which a link writes together) swap.  Each end's HELLO and
        READY are spared unless ``handshake`` is true.
        """
        if window < 0:
            raise ValueError("window cannot be negative")
        self._reorder = self._probability(probability)
        self._window, self._reorder_handshake = float(window), handshake

    def cut(self) -> None:
        """
        Stop carrying anything, as a dead cable would; neither end is told.
        What is in flight or written meanwhile waits (TCP keeps it), a close
        included; keepalive notices the silence if it is on.
        """
        if self._cut:
            return
        self._cut = True
        for unit in self._queue:
            if unit.call is not None and unit.call.active():
                unit.call.cancel()
            unit.call = None

    def restore(self) -> None:
        """Undo :obj:`cut`: everything that waited arrives, in order."""
        if not self._cut:
            return
        self._cut = False
        now = self.clock.seconds()
        for unit in self._queue:
            unit.call = self.clock.callLater(max(0.0, unit.arrival - now), self._arrive, unit)

    def clear(self) -> None:
        """Take every fault away (a held frame still goes after its window)."""
        self.delay(0)
        self.drop(0)
        self.reorder(0)
        self.restore()

    @property
    def is_cut(self) -> bool:
        """Whether :obj:`cut` is in force."""
        return self._cut

    @property
    def counters(self) -> LinkCounters:
        """This direction's :obj:`LinkCounters` now (a new snapshot each time)."""
        return LinkCounters(**self._count)

    @property
    def in_flight(self) -> int:
        """Frames written and not yet delivered, dropped or lost."""
        c = self._count
        return c["sent"] - c["delivered"] - c["dropped"] - c["lost"]

    def _probability(self, probability: float) -> float:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability {probability!r} is not between 0 and 1")
        if probability and self.compressed:
            raise ValueError("frames cannot be dropped or reordered on a compressed link: "
                             "they are inside one zlib stream")
        return float(probability)

    # -- carrying --------------------------------------------------------------

    def carry(self, data: bytes) -> None:
        """Take bytes the sending end wrote."""
        now = self.clock.seconds()
        ends = self._scan(data)
        self._count["sent"] += len(ends)
        if self.compressed or not (self._drop or self._reorder or self._jitter or self._held):
            if self._partial:
                data, self._partial = self._partial + data, b""
            self._push(_Unit(data, len(ends), now))
            self._committed = self._scanner.mid_frame
            return
        index = self._count["sent"] - len(ends)
        start = 0
        if self._committed:
            # The start of this frame already went out: the rest follows it.
            start = ends[0] if ends else len(data)
            self._push(_Unit(data[:start], 1 if ends else 0, now))
            if ends:
                ends, index, self._committed = ends[1:], index + 1, False
        for end in ends:
            piece, self._partial = self._partial + data[start:end], b""
            self._frame(piece, index, now)
            start, index = end, index + 1
        self._partial += data[start:]

    def carry_close(self, why: Exception) -> None:
        """Carry the sending end's close to the receiving end, after the rest."""
        self._release(False)
        now = self.clock.seconds()
        if self._partial:
            self._push(_Unit(self._partial, 0, now))
            self._partial = b""
        self._push(_Unit(None, 0, now, why))

    def prompt(self) -> bool:
        """Whether everything written so far arrives on the next clock turn."""
        queue = self._queue
        return not (self._cut or self._delay or self._jitter or self._held or self._partial
                    or (queue and queue[-1].arrival > self.clock.seconds()))

    def fail(self) -> None:
        """The network failed: what is not due at once never arrives."""
        now = self.clock.seconds()
        if self._held is not None:
            self._held = None
            self._count["lost"] += 1
            self._held_call.cancel()
        self._partial = b""
        for unit in list(self._queue):
            if self._cut or unit.arrival > now:
                self._queue.remove(unit)
                if unit.call is not None and unit.call.active():
                    unit.call.cancel()
                unit.call, unit.done = None, True
                self._count["lost"] += unit.frames

    def _frame(self, piece: bytes, index: int, now: float) -> None:
        shaken = index >= HANDSHAKE_FRAMES
        if self._drop and (shaken or self._drop_handshake) and self.random.random() < self._drop:
            self._count["dropped"] += 1
            return
        unit = _Unit(piece, 1, now)
        if self._held is not None:
            self._push(unit)
            self._release(True)
        elif self._reorder and (shaken or self._reorder_handshake) and self.random.random() < self._reorder:
            self._held = unit
            self._held_call = self.clock.callLater(self._window, self._release, False)
        else:
            self._push(unit)

    def _release(self, overtaken: bool) -> None:
        held, self._held = self._held, None
        call, self._held_call = self._held_call, None
        if call is not None and call.active():
            call.cancel()
        if held is not None:
            if overtaken:
                self._count["reordered"] += 1
            self._push(held)

    def _push(self, unit: _Unit) -> None:
        now = self.clock.seconds()
        arrival = now + self._delay
        if self._jitter:
            arrival += self.random.uniform(0.0, self._jitter)
        if arrival < self._last:
            arrival = self._last
        self._last = unit.arrival = arrival
        self._queue.append(unit)
        if not self._cut:
            unit.call = self.clock.callLater(arrival - now, self._arrive, unit)

    def _arrive(self, unit: _Unit) -> None:
        # Units arrive in queue order; one due a hair earlier by rounding
        # takes those before it along.
        while not unit.done and self._queue:
            head = self._queue.popleft()
            call, head.call, head.done = head.call, None, True  # unit and call held each other: no cycle left
            if head is not unit and call is not None and call.active():
                call.cancel()
            self._deliver(head)

    def _deliver(self, unit: _Unit) -> None:
        receiver = self.receiver
        if unit.data is None:
            receiver._lost_end(unit.why)
        elif receiver.closed:
            self._count["lost"] += unit.frames
        else:
            self._count["delivered"] += unit.frames
            if self.clock.seconds() > unit.written:
                self._count["delayed"] += unit.frames
            receiver._receive(unit.data)

    # -- counting frames -------------------------------------------------------

    def _scan(self, data: bytes) -> List[int]:
        """:returns: where frames end in ``data`` (all at its end inside zlib)."""
        if self._inflate is not None:
            return self._scan_zlib(data)
        scanner = self._scanner
        if not self.compressed:
            return scanner.feed(data)
        # The sender's HELLO is plain; once it took the peer's HELLO (and so
        # compresses), everything it writes after its HELLO is zlib.
        ends: List[int] = []
        rest, offset = data, 0
        if scanner.frames == 0:
            ends = scanner.feed(data, most=1)
            rest, offset = data[scanner.stop:], scanner.stop
        if not rest:
            return ends
        if not self._compressing():
            return ends + [offset + end for end in scanner.feed(rest)]
        self._inflate = zlib.decompressobj()
        return ends + self._scan_zlib(rest, len(data))

    def _scan_zlib(self, data: bytes, size: Optional[int] = None) -> List[int]:
        try:
            plain = self._inflate.decompress(data)
        except zlib.error:
            return []
        return [len(data) if size is None else size] * len(self._inflated.feed(plain))

    def _compressing(self) -> bool:
        conn = self.sender.protocol.conn
        return conn is not None and conn.peer is not None and conn.peer.compression
