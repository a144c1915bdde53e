"""The one exception type of :mod:`bnlab.data`."""

from __future__ import annotations

from bnlab.errors import UserError

__all__ = ["DataError"]


class DataError(UserError):
    """A dataset file is missing, corrupt or cannot be fetched.

    The message always names the path (or URL) involved and what to do about it. It is a
    :class:`~bnlab.errors.UserError` (a ``ValueError``): the CLI prints it as one line.
    """
