"""Plain value classes for the per-call hot path (here, at the bottom of the
mechanism, so that the kernel's actions can share it without intercept
depending on lib).

A frozen dataclass's ``__init__`` costs about twice a plain one's, and the
objects a handler makes for every call (Sendrec, HostCall, HostRun) are made
millions of times; they keep a hand-written ``__init__`` and take the rest --
repr, equality and hash as the frozen dataclasses they replace -- from here.
"""
from __future__ import annotations

from typing import Any


class PlainValue:
    """Base of a ``__slots__`` class treated as an immutable value: equal when
    of the same type with equal fields, hashable, repr'd as a dataclass is."""

    __slots__ = ()

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())
