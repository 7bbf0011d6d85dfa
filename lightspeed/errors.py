# -*- test-case-name: lightspeed.test.test_specifier -*-
"""
The one exception family of lightspeed.

Every error that lightspeed raises on purpose is a L{LightspeedError}; the
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
    An operation that acts on "the current session" (C{yield_}, a delay given
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
