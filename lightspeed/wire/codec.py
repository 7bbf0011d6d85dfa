# -*- test-case-name: lightspeed.test.test_wire -*-
"""
CBOR encoding and strict decoding.  Pure.

Only CBOR's plain types travel: None, bool, int (bignums included), float,
str, bytes, lists (tuples are sent as lists) and dicts.  No tagged types
(dates, decimals, sets, shared references, ...) are encoded or decoded, and
nothing that could run code (no pickle, ever).
"""

from __future__ import annotations

from typing import Any, NoReturn

import cbor2

from lightspeed.errors import EncodeError, ProtocolError

__all__ = ["dumps", "loads", "MAX_DEPTH"]

#: The deepest nesting of containers a decoder accepts.
MAX_DEPTH = 64

# Tags that cbor2 decodes into rich types out of the box; all but the
# bignums (2, 3) are refused.
_SEMANTIC_TAGS = (0, 1, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 55799)
_REFUSED_DECODERS = {tag: None for tag in _SEMANTIC_TAGS}


def _refuse_encode(encoder: Any, value: Any) -> NoReturn:  # noqa: ARG001
    raise EncodeError(
        f"cannot send {type(value).__name__} {value!r}: only None, bool, int, float, str, bytes, "
        "lists and dicts travel between kernels"
    )


def _refuse_tag(decoder: Any, tag: Any) -> NoReturn:
    raise ProtocolError(f"CBOR tag {tag.tag} is not allowed", "malformed")


_SCALARS = frozenset({type(None), bool, int, float, str, bytes})


def check_plain(value: Any) -> None:
    """
    Make sure C{value} holds only plain types, without encoding it.

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
    _refuse_encode(None, value)


def dumps(value: Any) -> bytes:
    """
    Encode C{value} as CBOR.

    :raises EncodeError: if C{value} holds anything but plain types.
    """
    check_plain(value)
    try:
        return _dumps(value)
    except (cbor2.CBOREncodeError, TypeError, ValueError, RecursionError) as e:
        raise EncodeError(f"cannot encode {type(value).__name__}: {e}") from None


def dumps_trusted(value: Any) -> bytes:
    """
    Encode a value this code built from plain types only (no check).
    """
    return _dumps(value)


_dumps = cbor2.dumps


def loads(data: bytes) -> Any:
    """
    Decode the CBOR item at the start of C{data} (bytes after it are
    ignored, as the framing already delimits messages).

    :raises ProtocolError: (code C{malformed}) for anything malformed,
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
