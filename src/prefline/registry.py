"""One small registry for everything extended by name: scorers, generation backends, file readers,
signal kinds, instruction types.

A registry is a dict (read it as one: ``name in SCORERS``, ``SCORERS.values()``) that is filled by
decorators through :meth:`Registry.register`, which refuses a name given twice, and read by name
through :meth:`Registry.lookup`, whose error for an unknown name lists the known ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from prefline.errors import PreflineError

T = TypeVar("T")


class Registry(dict[str, T]):
    """Names -> registered entries of one ``kind`` (the word errors use: "scorer", "backend", ...)."""

    def __init__(self, kind: str, *, sort_known: bool = False):
        super().__init__()
        self.kind = kind
        self.sort_known = sort_known  # list the known names sorted in errors (else in registration order)

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; a name registered twice is a programming error."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = entry
        return entry

    def decorator(self, name: str, make: Callable[[T], T] | None = None) -> Callable[[T], T]:
        """A decorator that registers what it decorates under ``name`` (wrapped by ``make`` if given) and returns it unchanged."""

        def register(obj: T) -> T:
            self.register(name, make(obj) if make else obj)
            return obj

        return register

    def known(self) -> str:
        return ", ".join(sorted(self) if self.sort_known else self)

    def lookup(self, name: str) -> T:
        """The entry registered under ``name``; an unknown name is the user's error, with the known names."""
        if name not in self:
            raise PreflineError(f"unknown {self.kind} {name!r}; known: {self.known()}")
        return self[name]


__all__ = ["Registry"]
