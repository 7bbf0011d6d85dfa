# -*- test-case-name: lightspeed.test.test_wire -*-
"""
CBOR encoding and strict decoding.  Pure.

Only CBOR's plain types travel: None, bool, int (bignums included), float,
str, bytes, lists (tuples are sent as lists) and dicts, plus the types an
application registers explicitly with :obj:`register_type`.  No other tagged
types (dates, decimals, sets, shared references, ...) are encoded or
decoded, and nothing that could run code (no pickle, ever).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple

import cbor2

from lightspeed.errors import EncodeError, ProtocolError

__all__ = ["dumps", "dumps_args", "dumps_value", "loads", "loads_value", "loads_joined", "check_plain", "register_type",
           "unregister_type", "MAX_DEPTH"]

#: The deepest nesting of containers a decoder accepts.
MAX_DEPTH = 64

# Tags that cbor2 decodes into rich types out of the box; all but the
# bignums (2, 3) are refused.
_SEMANTIC_TAGS = (0, 1, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 55799)
# cbor2 fails on a tag whose decoder is None (reported here as malformed);
# its stub types the values as callables only, hence Any.
_REFUSED_DECODERS: Dict[int, Any] = {tag: None for tag in _SEMANTIC_TAGS}


def _refuse_encode(encoder: Any, value: Any) -> NoReturn:  # noqa: ARG001
    raise EncodeError(
        f"cannot send {type(value).__name__} {value!r}: only None, bool, int, float, str, bytes, "
        "lists and dicts travel between kernels"
    )


# Types registered by the application: type -> (tag, to_plain); tag -> from_plain.
_encoders: Dict[type, Tuple[int, Callable[[Any], Any]]] = {}
_decoders: Dict[int, Callable[[Any], Any]] = {}
# What cbor2 is given: registered types override its built-in encoders.
_encoder_map: Dict[type, Callable[[Any, Any], None]] = {}


def register_type(kind: type, tag: int, to_plain: Callable[[Any], Any], from_plain: Callable[[Any], Any]) -> None:
    """
    Let values of ``kind`` travel, as CBOR tag ``tag`` around
    ``to_plain(value)`` (plain types only); the receiver rebuilds them with
    ``from_plain``.  Register the same type and tag on every kernel that
    sends or receives it; anything unregistered is still refused.

    :param tag: a CBOR tag number of 256 or more, not one with standard
        semantics that this codec refuses, and not already registered.
    :raises ValueError: for an unusable tag.
    """
    if type(tag) is not int or tag < 256 or tag in _SEMANTIC_TAGS or tag in _decoders:
        raise ValueError(f"tag {tag!r} cannot be registered (below 256, standard, or taken)")
    _encoders[kind] = (tag, to_plain)
    _decoders[tag] = from_plain
    _encoder_map[kind] = _encode_registered


def unregister_type(kind: type) -> None:
    """
    Stop accepting ``kind`` (tests use this to clean up).
    """
    entry = _encoders.pop(kind, None)
    if entry is not None:
        _decoders.pop(entry[0], None)
        _encoder_map.pop(kind, None)


def _encode_registered(encoder: Any, value: Any) -> None:
    tag, to_plain = _encoders[type(value)]
    plain = to_plain(value)
    check_plain(plain)
    encoder.encode(cbor2.CBORTag(tag, plain))


def _refuse_tag(tag: Any, immutable: bool = False) -> Any:
    """
    cbor2's tag hook (called as ``hook(tag, immutable)``): rebuild a
    registered type, refuse every other tag.
    """
    from_plain = _decoders.get(tag.tag)
    if from_plain is None:
        raise ProtocolError(f"CBOR tag {tag.tag} is not allowed", "malformed")
    try:
        return from_plain(tag.value)
    except Exception as e:
        raise ProtocolError(f"registered tag {tag.tag} could not be decoded: {e}", "malformed") from None


_SCALARS = frozenset({type(None), bool, int, float, str, bytes})


def check_plain(value: Any) -> None:
    """
    Make sure ``value`` holds only plain types, without encoding it.

    :raises EncodeError: naming the first value that is not.
    """
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is list or kind is tuple:
        for item in value:
            if type(item) not in _SCALARS:
                check_plain(item)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) not in _SCALARS:
                check_plain(key)
            if type(item) not in _SCALARS:
                check_plain(item)
        return
    if kind in _encoders:
        return
    _refuse_encode(None, value)


def dumps(value: Any) -> bytes:
    """
    Encode ``value`` as CBOR.

    :raises EncodeError: if ``value`` holds anything but plain types.
    """
    check_plain(value)
    try:
        return _dumps(value, encoders=_encoder_map) if _encoder_map else _dumps(value)
    except (cbor2.CBOREncodeError, TypeError, ValueError, RecursionError) as e:
        raise EncodeError(f"cannot encode {type(value).__name__}: {e}") from None


def dumps_trusted(value: Any) -> bytes:
    """
    Encode a value whose arguments :obj:`check_plain` already accepted.
    """
    return _dumps(value, encoders=_encoder_map) if _encoder_map else _dumps(value)


_dumps = cbor2.dumps

#: The heads of byte and text strings shorter than 256 bytes, as cbor2 writes them (shortest form).
_BYTES_HEADS = [_dumps(bytes(n))[:1 + (n >= 24)] for n in range(256)]
_TEXT_HEADS = [_dumps("a" * n)[:1 + (n >= 24)] for n in range(256)]
#: The head of a one-item array.
_ONE = b"\x81"


def dumps_value(value: Any) -> bytes:
    """
    The bytes :obj:`dumps` writes for ``value``: a byte string under 256
    bytes and a text under 64 characters are written by hand (cbor2 spends
    about 700 ns a call setting up, more than the rest of a small request).

    :raises EncodeError: as :obj:`dumps`.
    """
    kind = type(value)
    if kind is bytes and len(value) < 256:
        return _BYTES_HEADS[len(value)] + value
    if kind is str and len(value) < 64:
        try:
            text = value.encode()  # (at most 4 bytes a character)
        except UnicodeEncodeError:  # a lone surrogate: dumps says why it cannot travel
            return dumps(value)
        return _TEXT_HEADS[len(text)] + text
    return dumps(value)


def dumps_args(args: Any) -> bytes:
    """
    The bytes :obj:`dumps` writes for the list or tuple ``args`` (checked
    by :obj:`check_plain`): one argument by :obj:`dumps_value`.

    :raises EncodeError: as :obj:`dumps`.
    """
    if len(args) == 1:
        return _ONE + dumps_value(args[0])
    return dumps(args)


def loads(data: bytes) -> Any:
    """
    Decode the CBOR item at the start of ``data`` (bytes after it are
    ignored, as the framing already delimits messages).

    :raises ProtocolError: (code ``malformed``) for anything malformed,
        tagged or too deep.
    """
    try:
        return cbor2.loads(
            data,
            tag_hook=_refuse_tag,
            semantic_decoders=_REFUSED_DECODERS,
            max_depth=MAX_DEPTH,
        )
    except ProtocolError:
        raise
    except Exception as e:  # cbor2 raises several types for bad input
        raise ProtocolError(f"malformed CBOR: {e}", "malformed") from None


def loads_value(data: bytes, start: int) -> Any:
    """
    :obj:`loads` of ``data[start:]``, for an item that should end
    ``data``: a byte string (or a text of valid UTF-8) in its shortest head
    that ends exactly at the end is sliced out by hand; anything else goes
    to :obj:`loads`, which decides as it always does.

    :raises ProtocolError: as :obj:`loads`.
    """
    first = data[start]
    if 0x40 <= first < 0x7a and first & 0x1f <= 24 and start + 1 < len(data):
        if first & 0x1f < 24:
            length, begin = first & 0x1f, start + 1
        else:
            length, begin = data[start + 1], start + 2
            if length < 24:
                return loads(data[start:])  # not the shortest head: cbor2's answer
        if begin + length == len(data):
            if first < 0x60:
                return data[begin:]
            try:
                return data[begin:].decode()
            except UnicodeDecodeError:
                pass
    return loads(data[start:])


#: Bytes the decoder of :func:`loads_joined` reads at a time (it seeks back
#: to the end of each item): about one payload, the fewest instructions.
_READ_SIZE = 128


def loads_joined(items: List[bytes], max_depth: int = MAX_DEPTH) -> Optional[list]:
    """
    Decode several CBOR items, each exactly one byte string of ``items``,
    strictly (as :obj:`loads`) with one decoder over their concatenation:
    cbor2 spends about 2,000 instructions setting up each ``loads`` call,
    and a batch's payloads are decoded together.  After each item the
    decoder's position must be the end of that item's byte string, so an
    item that would run across its declared boundary (or stop short of it)
    is refused.

    :param max_depth: the deepest nesting accepted (less than
        :data:`MAX_DEPTH` for items that travel inside an array).
    :returns: the decoded items, or ``None`` when one is malformed,
        refused or does not fill its byte string exactly; the caller then
        decodes them one by one (with :obj:`loads`' errors).
    """
    stream = BytesIO(b"".join(items))
    decode = cbor2.CBORDecoder(stream, tag_hook=_refuse_tag, semantic_decoders=_REFUSED_DECODERS,
                               max_depth=max_depth, read_size=_READ_SIZE).decode
    tell = stream.tell
    decoded: List[Any] = []
    append = decoded.append
    end = 0
    try:
        for item in items:
            append(decode())
            end += len(item)
            if tell() != end:
                return None
    except Exception:  # noqa: BLE001 - any failure: the one-by-one path reports it exactly
        return None
    return decoded
