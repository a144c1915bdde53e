"""One small registry for everything bnlab builds or looks up by name.

Norms, models, recipe cards, recipes, claims and figures each keep a :class:`Registry`.
Names are normalized the same way everywhere (surrounding space dropped, lower case,
``-`` read as ``_``), a duplicate name is a programming error (:class:`ValueError`), and an
unknown name is an :class:`UnknownNameError` (a :class:`~bnlab.errors.UserError`) whose
message lists the valid names, so a typo on the command line is one clear line.

Example:
    >>> shapes = Registry[int]("shape")
    >>> shapes.add("Square-4", 4)
    4
    >>> shapes.get("square_4")
    4
    >>> shapes.get("circle")
    Traceback (most recent call last):
    ...
    bnlab.registry.UnknownNameError: unknown shape 'circle'; valid shapes: square_4
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from bnlab.errors import UserError

__all__ = ["Registry", "UnknownNameError", "normalize_name"]

T = TypeVar("T")


class UnknownNameError(UserError):
    """A name that no registry entry has; the message lists the valid names."""


def normalize_name(name: str) -> str:
    """The registry form of ``name``: stripped, lower case, ``-`` as ``_``."""
    if not isinstance(name, str):
        raise UnknownNameError(f"a name must be a string, got {name!r}")
    return name.strip().lower().replace("-", "_")


class Registry(Generic[T]):
    """Named entries of one kind, in registration order.

    Args:
        kind: what an entry is, for messages (``"norm"``, ``"recipe"``, ``"claim"``).
        plural: the plural of ``kind`` if it is not ``kind + "s"``.
    """

    def __init__(self, kind: str, plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name`` and return it.

        Raises:
            ValueError: if the (normalized) name is already taken.
        """
        key = normalize_name(name)
        if key in self._entries:
            raise ValueError(f"{self.kind} {key!r} is already registered; pick another name")
        self._entries[key] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator form of :meth:`add`: ``@REG.register("bn")``."""
        def decorator(entry: T) -> T:
            return self.add(name, entry)

        return decorator

    def get(self, name: str) -> T:
        """The entry called ``name`` (normalized).

        Raises:
            UnknownNameError: for an unknown name; the message lists the valid ones.
        """
        key = normalize_name(name)
        if key not in self._entries:
            valid = ", ".join(self.names()) or "(none registered)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid {self.plural}: {valid}")
        return self._entries[key]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def values(self) -> list[T]:
        """The entries, sorted by name."""
        return [self._entries[k] for k in self.names()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize_name(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
