"""
Hypothesis when it is installed (the ``[test]`` extra), stand-ins otherwise.

Property tests import ``given``, ``settings`` and ``st`` from here instead of
from :obj:`hypothesis`: without it, their modules still import and each
``@given`` test is skipped with the reason below, while the other tests of
the module run.
"""

from __future__ import annotations

from typing import Any, Callable

MISSING = "hypothesis is not installed (pip install 'lightspeed[test]')"

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    HAVE_HYPOTHESIS = True
except ImportError:  # pragma: no cover - exercised only without hypothesis

    class _Absorb:
        """
        Every attribute, call and ``|`` of a strategy gives a strategy again.
        """

        def __getattr__(self, name: str) -> "_Absorb":
            return self

        def __call__(self, *args: Any, **kwargs: Any) -> "_Absorb":
            return self

        def __or__(self, other: Any) -> "_Absorb":
            return self

    st = _Absorb()  # type: ignore[assignment]
    HAVE_HYPOTHESIS = False

    def given(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:  # type: ignore[no-redef]
        def skip(test: Any) -> Any:
            test.skip = MISSING
            return test

        return skip

    def settings(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:  # type: ignore[no-redef]
        return lambda test: test


__all__ = ["given", "settings", "st", "MISSING", "HAVE_HYPOTHESIS"]
