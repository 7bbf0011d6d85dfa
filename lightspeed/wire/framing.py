# -*- test-case-name: lightspeed.test.test_wire -*-
"""
Length-prefixed frames: a 4-byte big-endian unsigned length, then that many
bytes of body.  Pure: bytes in, frames out.
"""

from __future__ import annotations

import struct
from typing import List

from lightspeed.errors import FrameTooLarge

__all__ = ["Framer", "frame", "HEADER", "DEFAULT_MAX_FRAME", "PREAUTH_MAX_FRAME"]

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
#: The longest frame accepted before the peer is authenticated (HELLO, READY).
PREAUTH_MAX_FRAME = 64 * 1024

_pack = HEADER.pack
_unpack_from = HEADER.unpack_from


def frame(body: bytes) -> bytes:
    """
    :returns: ``body`` with its length prefix.
    """
    return _pack(len(body)) + body


class Framer:
    """
    Splits a byte stream into frame bodies, under any chunking.

    :ivar max_frame: the longest body accepted.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        # Bytes not yet framed, kept as chunks so that a large frame arriving
        # in many pieces is joined once, not once per piece.
        self._chunks: List[bytes] = []
        self._size = 0
        self._need = 4

    def feed(self, data: bytes) -> List[bytes]:
        """
        Add bytes; return every frame body now complete, in order.

        :raises FrameTooLarge: when a length prefix exceeds ``max_frame``;
            the stream cannot be trusted after that.
        """
        if not self._chunks and len(data) >= 4:
            # The common read: nothing buffered (so _size is 0 and _need 4),
            # and exactly one whole frame within the limit.
            (length,) = _unpack_from(data)
            if len(data) == 4 + length and length <= self.max_frame:
                return [data[4:]]
        self._size += len(data)
        if self._size < self._need:
            self._chunks.append(data)
            return []
        if self._chunks:
            self._chunks.append(data)
            buffer = b"".join(self._chunks)
            self._chunks = []
        else:
            buffer = data
        frames: List[bytes] = []
        offset = 0
        end = len(buffer)
        max_frame = self.max_frame
        need = 4
        while end - offset >= 4:
            (length,) = _unpack_from(buffer, offset)
            if length > max_frame:
                if frames:
                    # Hand these on first: one of them may raise the limit
                    # (the handshake finished); the header is checked again.
                    need = 4
                    break
                self._size = 0
                raise FrameTooLarge(f"frame of {length} bytes exceeds the maximum of {max_frame}")
            stop = offset + 4 + length
            if stop > end:
                need = 4 + length
                break
            frames.append(buffer[offset + 4:stop])
            offset = stop
        self._need = need
        if offset < end:
            self._chunks.append(buffer[offset:])
        self._size = end - offset
        return frames

    def take_buffer(self) -> bytes:
        """
        Remove and return the bytes not yet part of a complete frame.
        """
        buffer = b"".join(self._chunks)
        self._chunks = []
        self._size = 0
        self._need = 4
        return buffer

    @property
    def buffered(self) -> int:
        """
        How many bytes wait for the rest of their frame.
        """
        return self._size
