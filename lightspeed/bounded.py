"""
A cache whose memory stays bounded whatever a peer sends.
"""

from typing import Any, Dict

__all__ = ["BoundedCache"]


class BoundedCache(Dict[Any, Any]):
    """
    A dict that forgets everything once it holds ``bound`` entries: no
    bookkeeping on the hot path (a lookup is a plain dict lookup), and at
    most ``bound`` entries whatever the traffic.
    """

    def __init__(self, bound: int) -> None:
        super().__init__()
        self.bound = bound

    def remember(self, key: Any, value: Any) -> Any:
        """
        Store ``value`` under ``key`` (after forgetting everything if full).

        :returns: ``value``.
        """
        if len(self) >= self.bound:
            self.clear()
        self[key] = value
        return value
