"""The one exception type of :mod:`bnlab.data`."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A dataset file is missing, corrupt or cannot be fetched.

    The message always names the path (or URL) involved and what to do about it. It is a
    ``ValueError`` so callers that validate user input can catch both alike.
    """
