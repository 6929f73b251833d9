"""What a handler answers for a trapped syscall (and for every continuation).

``on_syscall`` returns one of these; the ``on_result`` callbacks of
:class:`HostRun` and :class:`Inject` return one too (or ``None``), which is
how chains are written, e.g. "inject an mmap, then Complete with its result"::

    def on_syscall(self, t, nr, args):
        return Inject(SYS_mmap, (addr, size, prot, flags | MAP_FIXED, -1, 0),
                      on_result=lambda t, r: Complete(r))

The same actions can be applied later, from any callback on the tracer
thread, with the Tracee methods (``t.complete(v)``, ``t.host_run(...)``,
``t.inject(...)``, ``t.restart()``) while the tracee is parked.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .values import PlainValue

if TYPE_CHECKING:
    from .tracee import Tracee

#: ``on_result(tracee, value)``: value is the syscall's return (signed: -errno
#: on failure).  Return the next action, or None (see HostRun / Inject).
ResultCallback = Callable[["Tracee", int], "Action | None"]


@dataclass(frozen=True, slots=True)
class Complete:
    """Finish the syscall with ``value`` (-errno for failure); the host kernel
    does not run it."""

    value: int


_COMPLETES: dict[int, Complete] = {}


def complete(value: int) -> Complete:
    """``Complete(value)``, shared for the values calls answer most (they are
    frozen): a frozen dataclass costs ~0.7 us to make, a dict lookup ~0.05."""
    action = _COMPLETES.get(value)
    if action is None:
        action = Complete(value)
        if -4096 <= value <= 4096:
            _COMPLETES[value] = action
    return action


class HostRun(PlainValue):
    """Let the host kernel run the syscall, optionally with another number
    and/or rewritten argument registers (``args`` may be shorter than 6: only
    the first ``len(args)`` registers change).

    ``on_result`` is called at the syscall's exit with the host's result; it
    may return an action (Complete(v) replaces the result, Inject runs one
    more syscall first, Pending parks the tracee); ``None`` keeps the result.
    Without ``on_result`` there is no exit stop at all.
    (A plain class: every host-run memory call makes one, and a frozen
    dataclass's ``__init__`` costs twice as much.  Never assigned to.)
    """

    __slots__ = ("args", "nr", "on_result")

    def __init__(self, args: Sequence[int] | None = None, nr: int | None = None,
                 on_result: ResultCallback | None = None) -> None:
        self.args = args
        self.nr = nr
        self.on_result = on_result


@dataclass(frozen=True, slots=True)
class Inject:
    """Make the tracee execute syscall ``nr(args)`` now, before its own call
    is finished; ``on_result(tracee, value)`` then says how the original call
    goes on.  ``None`` from on_result means Pending (the original call stays
    unanswered until a Tracee method is called).

    Injected from an exit stop, the call costs two stops (its seccomp or entry
    stop, then its exit stop) whatever its arguments.
    """

    nr: int
    args: Sequence[int]
    on_result: ResultCallback


@dataclass(frozen=True, slots=True)
class Restart:
    """Skip the syscall and make the tracee execute the same syscall
    instruction again (after any signal handler, like -ERESTARTNOINTR); the
    handler sees it as a new trapped syscall.  Use it to interrupt a parked
    call when a signal must be delivered and SA_RESTART applies."""


class Pending:
    """Answer later: the tracee stays stopped (MINIX SUSPEND) until a Tracee
    method is called.  Return the class itself or an instance."""

    __slots__ = ()


Action = Complete | HostRun | Inject | Restart | Pending | type[Pending]
