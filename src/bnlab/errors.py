"""The one base class of every error that means "the user asked for something wrong".

The CLI prints a :class:`UserError` as one line and exits with status 2 (DESIGN.md,
"Errors"); an environment failure (:class:`OSError`: disk, permissions) is one line with
exit status 1; anything else is a bug and keeps its traceback. Raise a ``UserError`` (or a
subclass: ``ConfigError``, ``DataError``, ``UnknownNameError``, ``SweepLockedError``) only
when the message names the bad input and says how to fix it.

Example:
    >>> raise UserError("unknown scale 'huge'; valid scales: smoke, quick, paper")
    Traceback (most recent call last):
    ...
    bnlab.errors.UserError: unknown scale 'huge'; valid scales: smoke, quick, paper
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """A bad request by the user (config, data file, name, locked directory): one line."""
