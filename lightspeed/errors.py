# -*- test-case-name: lightspeed.test.test_specifier -*-
"""
The one exception family of lightspeed.

Every error that lightspeed raises on purpose is a :obj:`LightspeedError`; the
ones a caller is expected to handle have their own subclass.
"""


class LightspeedError(Exception):
    """
    Base class of every exception lightspeed raises on purpose.
    """


class BadSpecifier(LightspeedError, ValueError):
    """
    A destination specifier, kernel name, session alias or state name is
    malformed.  The message names the bad part.
    """


class NoSuchSession(LightspeedError, LookupError):
    """
    A destination names a session that this kernel does not have.
    """


class NoCurrentSession(LightspeedError, RuntimeError):
    """
    An operation that acts on "the current session" (``yield_``, a delay given
    by state name alone) was used outside of any event handler.
    """


class AliasInUse(LightspeedError):
    """
    The alias is already held by another session of this kernel.
    """


class NoRoute(LightspeedError):
    """
    No kernel by that name is reachable from here.
    """


class EncodeError(LightspeedError, TypeError):
    """
    An argument cannot be sent to another kernel: only CBOR's plain types
    (None, bool, int, float, str, bytes, lists, dicts) travel.
    """


class ProtocolError(LightspeedError):
    """
    A peer broke the wire protocol; the link to it is closed.

    :ivar code: a short machine-readable reason, sent to the peer in BYE.
    """

    code = "protocol"

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        if code:
            self.code = code


class FrameTooLarge(ProtocolError):
    """
    A frame is longer than the link's maximum.
    """

    code = "frame-too-large"


class HandshakeRefused(ProtocolError):
    """
    The handshake failed: version mismatch, duplicate or bad kernel name,
    wrong password, or a malformed hello.
    """

    code = "refused"


class LinkClosed(LightspeedError):
    """
    A link ended; ``code`` and the message say why.
    """

    def __init__(self, message: str, code: str = "closed") -> None:
        super().__init__(message)
        self.code = code


class Refused(LightspeedError):
    """
    An authentication hook refused an introspection or monitor request
    (another kernel sees it as :obj:`RemoteError` ``Refused``).
    """


class BacklogFull(LightspeedError):
    """
    A message was refused because too many messages to its destination
    kernel wait already (see ``docs/network.rst``, flow control).
    """


class RequestTimeout(LightspeedError, TimeoutError):
    """
    A request got no answer before its deadline.
    """


class RemoteError(LightspeedError):
    """
    The remote handler of a request raised.

    :ivar remote_type: the exception's class name on the remote side.
    :ivar remote_message: its message.
    """

    def __init__(self, remote_type: str, remote_message: str) -> None:
        super().__init__(f"{remote_type}: {remote_message}")
        self.remote_type = remote_type
        self.remote_message = remote_message


def remote_error(kind: str, message: str) -> Exception:
    """
    The exception for a failed answer ``[kind, message]``.
    """
    if kind == "NoSuchSession":
        return NoSuchSession(message)
    if kind == "NoRoute":
        return NoRoute(message)
    if kind == "RequestTimeout":
        return RequestTimeout(message)
    return RemoteError(kind, message)
