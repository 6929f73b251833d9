"""One traced thread and the actions that move it on from a syscall stop.

States (``Tracee.state``)::

    STARTING   auto-attached child, its first stop not seen yet
    RUNNING    resumed; the next stop of interest is a new trapped syscall
    ENTRY      parked at the seccomp stop of syscall ``nr`` (nothing decided)
    EXIT       parked at a syscall-exit stop: after an injected syscall or a
               HostRun whose on_result asked to wait; ``saved`` holds the
               registers that continue the original flow
    AWAIT_EXIT resumed with PTRACE_SYSCALL, waiting for the exit stop
    AWAIT_ENTRY re-executing the syscall instruction (inject/host-run from
               EXIT), waiting for its entry stop; signals are deferred
    DYING      a ptrace call said ESRCH; the death report is on its way
    GONE       reaped (or vanished in a non-leader exec)

How each action is carried out at the two parked states:

=============  ======================================  =====================================
action         at ENTRY (seccomp stop)                 at EXIT (syscall-exit stop)
=============  ======================================  =====================================
Complete(v)    orig_rax=-1, rax=v, CONT (1 stop)       saved regs, rax=v, CONT
HostRun        args/nr rewritten in place, CONT or     re-execute the syscall instruction
               SYSCALL when on_result is wanted        (rip-2) with PTRACE_SYSCALL
Inject         turn this syscall into the injected     re-execute the syscall instruction
               one, SYSCALL to its exit (1 more stop)  with the injected call (2 more stops)
Restart        orig_rax=-1, rax=nr, rip-=2, CONT       saved regs, rax=nr, rip-=2, CONT
=============  ======================================  =====================================

A re-executed call traps at seccomp like any other (no register value lets a
call skip the filter).  The tracer knows it asked for that call: at the seccomp
stop in AWAIT_ENTRY it checks number, arguments and rip against what it set
(``_expect``) and lets it run to its exit stop.  If they differ, another thread
rewrote the code under the syscall instruction in between: the process is
killed, never served.  A number the filter does not trap is resumed with
PTRACE_SYSCALL instead (entry stop, then exit stop): two stops either way.

Completing at the seccomp stop relies on the documented seccomp behaviour
("the system call will appear to return the value that the tracer puts in
the return value register", seccomp(2) on SECCOMP_RET_TRACE); the first
Complete of a Tracer verifies it once at the exit stop and falls back to the
two-stop way (write rax at the exit stop) if the kernel disagrees.
"""
from __future__ import annotations

import ctypes
import enum
import logging
import os
import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _libc, memory
from .actions import Complete, HostRun, Inject, Pending, Restart, ResultCallback
from .ptrace_ops import PTRACE_CONT, PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_SYSCALL, getsiginfo
from .regs import MASK64, UserRegs, s64

if TYPE_CHECKING:
    from .tracer import Tracer, _Session

log = logging.getLogger(__name__)

SYS_tgkill = 234
_REGS_SIZE = ctypes.sizeof(UserRegs)
_ptrace = _libc.ptrace
_memmove = ctypes.memmove


class TState(enum.IntEnum):
    STARTING = 0
    RUNNING = 1
    ENTRY = 2
    EXIT = 3
    AWAIT_EXIT = 4
    AWAIT_ENTRY = 5
    DYING = 6
    GONE = 7


STARTING, RUNNING, ENTRY, EXIT, AWAIT_EXIT, AWAIT_ENTRY, DYING, GONE = TState

# what the pending exit stop is for
EXIT_NONE, EXIT_PROBE, EXIT_COMPLETE, EXIT_HOST, EXIT_INJECT = range(5)


# bytes: the status file also holds the program's own name, which may be any bytes
_PENDING_RE = re.compile(rb"^(SigPnd|ShdPnd|SigBlk):\s*([0-9a-f]+)$", re.MULTILINE)


class NotParked(RuntimeError):
    """An action was applied to a tracee that is not stopped at a syscall."""


def _ptrace_fail(tid: int) -> None:
    err = _libc.get_errno()
    raise OSError(err, f"ptrace on {tid}: {os.strerror(err)}")


@dataclass(slots=True, eq=False, repr=False)
class Tracee:
    """A traced thread.  ``tid`` is the host thread id, ``tgid`` its process.

    ``nr`` / ``args`` describe the current trapped syscall (valid while
    parked).  All methods must be called on the tracer (trio) thread.
    """

    tid: int
    tgid: int
    session: _Session
    tracer: Tracer
    state: TState = RUNNING
    nr: int = -1
    args: tuple[int, ...] = ()
    exit_status: int | None = None
    # -- mechanism internals -------------------------------------------------
    regs: UserRegs = field(default_factory=UserRegs)
    _regs_addr: int = 0
    _regs_ref: Any = None  # byref(regs), reused for every PTRACE_GET/SETREGS
    saved: UserRegs | None = None
    _resume_req: int = PTRACE_CONT
    _exit_kind: int = EXIT_NONE
    _exit_cb: ResultCallback | None = None
    _exit_value: int = 0
    _deferred: list[int] = field(default_factory=list)
    #: (nr, rip, rdi, rsi, rdx, r10, r8, r9) of the call we re-executed and
    #: wait to see trap; None when no re-executed call is in flight
    _expect: tuple[int, ...] | None = None
    group_stopped: bool = False
    #: the tracer's own forked child before its first exec (not the program yet)
    ours: bool = False

    def __post_init__(self) -> None:
        self._regs_addr = ctypes.addressof(self.regs)
        self._regs_ref = ctypes.byref(self.regs)

    def __repr__(self) -> str:
        return f"<Tracee {self.tid}/{self.tgid} {self.state.name} nr={self.nr}>"

    # -- public state ----------------------------------------------------------
    @property
    def parked(self) -> bool:
        """Stopped at a syscall and waiting for an action."""
        return self.state is ENTRY or self.state is EXIT

    @property
    def alive(self) -> bool:
        return self.state is not GONE and self.state is not DYING

    # -- memory shortcuts ----------------------------------------------------------
    def read(self, addr: int, n: int) -> bytes:
        return memory.read(self.tid, addr, n)

    def read_cstring(self, addr: int, limit: int = 4096) -> bytes:
        return memory.read_cstring(self.tid, addr, limit)

    def write(self, addr: int, data: bytes, *, force: bool = True) -> None:
        memory.write(self.tid, addr, data, force=force)

    def siginfo(self) -> bytes:
        """The siginfo of the signal this tracee is stopped with (empty if gone)."""
        try:
            return getsiginfo(self.tid)
        except OSError:
            return b""

    def pending_signals(self) -> set[int]:
        """Signals pending for this thread or its process and not blocked
        (from /proc; a parked tracee cannot take them until it is resumed, so
        a dispatcher can decide to interrupt its call with -EINTR/Restart)."""
        private, shared = self.pending_signal_sets()
        return private | shared

    def pending_signal_sets(self) -> tuple[set[int], set[int]]:
        """(thread-directed, process-directed) pending signals, not blocked.
        Traced threads queue even ignored signals (the host lets tracers see them)."""
        try:
            with open(f"/proc/{self.tgid}/task/{self.tid}/status", "rb") as f:
                text = f.read()
        except OSError:
            return set(), set()
        vals = dict(_PENDING_RE.findall(text))
        blocked = int(vals.get(b"SigBlk", b"0"), 16)
        private = int(vals.get(b"SigPnd", b"0"), 16) & ~blocked
        shared = int(vals.get(b"ShdPnd", b"0"), 16) & ~blocked
        return ({i + 1 for i in range(64) if private >> i & 1},
                {i + 1 for i in range(64) if shared >> i & 1})

    # -- actions (public) ------------------------------------------------------
    def complete(self, value: int) -> bool:
        """Finish the parked syscall with ``value``.  False if the tracee died."""
        return self._guard(self._complete, value)

    def host_run(self, args: Sequence[int] | None = None, *, nr: int | None = None,
                 on_result: ResultCallback | None = None) -> bool:
        return self._guard(self._host_run, HostRun(args, nr, on_result))

    def inject(self, nr: int, args: Sequence[int], on_result: ResultCallback) -> bool:
        """Execute one extra syscall in the tracee now; ``on_result(tracee,
        value)`` returns the next action (None: stay parked)."""
        return self._guard(self._inject, Inject(nr, args, on_result))

    def restart(self) -> bool:
        return self._guard(self._restart, None)

    def resume(self, action: Any) -> bool:
        """Apply any action object (Complete, HostRun, Inject, Restart, Pending)."""
        return self._guard(self._act, action)

    def _guard(self, fn: Any, arg: Any) -> bool:
        if self.state is GONE or self.state is DYING:
            return False
        try:
            fn(arg)
        except ProcessLookupError:
            self.state = DYING
            return False
        return True

    # -- actions (internal, raise ProcessLookupError) -------------------------
    def _act(self, action: Any) -> None:
        cls = type(action)
        if cls is Complete:
            self._complete(action.value)
        elif cls is HostRun:
            self._host_run(action)
        elif action is Pending or cls is Pending:
            if self.state is not ENTRY and self.state is not EXIT:
                raise NotParked(f"{self!r}: Pending but not parked")
        elif cls is Inject:
            self._inject(action)
        elif cls is Restart:
            self._restart(None)
        else:
            raise TypeError(f"not a tracer action: {action!r}")

    def _setregs(self) -> None:
        if _ptrace(PTRACE_SETREGS, self.tid, 0, self._regs_ref) != 0:
            _ptrace_fail(self.tid)

    def _cont(self, req: int = PTRACE_CONT) -> None:
        self._resume_req = req
        if _ptrace(req, self.tid, 0, 0) != 0:
            _ptrace_fail(self.tid)

    def _from_saved(self) -> UserRegs:
        """At EXIT: load the original-flow registers into the working buffer."""
        saved = self.saved
        assert saved is not None
        _memmove(self._regs_addr, ctypes.addressof(saved), _REGS_SIZE)
        return self.regs

    def _complete(self, value: int) -> None:
        st = self.state
        regs = self.regs
        if st is ENTRY:
            regs.orig_rax = MASK64
            regs.rax = value & MASK64
            self._setregs()
            probe = self.tracer._skip_keeps_rax
            if probe is True:
                self.state = RUNNING
                self._cont(PTRACE_CONT)
            else:
                # first Complete (verify the one-stop path) or known-bad kernel
                self._exit_kind = EXIT_PROBE if probe is None else EXIT_COMPLETE
                self._exit_value = value
                self.state = AWAIT_EXIT
                self._cont(PTRACE_SYSCALL)
        elif st is EXIT:
            self._from_saved().rax = value & MASK64
            self._setregs()
            self.saved = None
            self.state = RUNNING
            self._resend_deferred()
            self._cont(PTRACE_CONT)
        else:
            raise NotParked(f"{self!r}: complete({value}) while not parked")

    def _host_run(self, a: HostRun) -> None:
        st = self.state
        if st is ENTRY:
            regs = self.regs
            dirty = False
            if a.nr is not None:
                regs.orig_rax = a.nr & MASK64
                dirty = True
            if a.args:
                regs.set_args(a.args)
                dirty = True
            if dirty:
                self._setregs()
            if a.on_result is None:
                self.state = RUNNING
                self._cont(PTRACE_CONT)
            else:
                self._exit_kind = EXIT_HOST
                self._exit_cb = a.on_result
                self.state = AWAIT_EXIT
                self._cont(PTRACE_SYSCALL)
        elif st is EXIT:
            saved = self.saved
            assert saved is not None
            nr = saved.orig_rax if a.nr is None else a.nr
            self._reexecute(nr, a.args, EXIT_HOST, a.on_result)
        else:
            raise NotParked(f"{self!r}: host_run while not parked")

    def _inject(self, a: Inject) -> None:
        st = self.state
        args = tuple(a.args)
        if len(args) > 6:
            raise ValueError("at most 6 syscall arguments")
        if st is ENTRY:
            # Turn the trapped syscall into the injected one, in the kernel:
            # no trip to user mode, so no signal can come in between.
            regs = self.regs
            self.saved = regs.copy()
            regs.orig_rax = a.nr & MASK64
            regs.set_args(args + (0,) * (6 - len(args)))
            self._setregs()
            self._exit_kind = EXIT_INJECT
            self._exit_cb = a.on_result
            self.state = AWAIT_EXIT
            self._cont(PTRACE_SYSCALL)
        elif st is EXIT:
            self._reexecute(a.nr, args, EXIT_INJECT, a.on_result)
        else:
            raise NotParked(f"{self!r}: inject while not parked")

    def _reexecute(self, nr: int, args: Sequence[int] | None, kind: int,
                   cb: ResultCallback | None) -> None:
        """From an exit stop, run ``nr`` by stepping back over the 2-byte
        ``syscall`` instruction (the saved rip points just past it)."""
        regs = self._from_saved()
        after = regs.rip
        regs.rip = (after - 2) & MASK64
        regs.rax = nr & MASK64
        regs.orig_rax = MASK64  # no restart logic on the way out
        if args is not None:
            regs.set_args(tuple(args))
        self._setregs()
        self._expect = (nr & MASK64, after, regs.rdi, regs.rsi, regs.rdx, regs.r10,
                        regs.r8, regs.r9)
        self._exit_kind = kind
        self._exit_cb = cb
        self.state = AWAIT_ENTRY
        # a trapped number stops at seccomp (checked there); others at entry
        self._cont(PTRACE_CONT if self.session.traps(nr & MASK64) else PTRACE_SYSCALL)

    def _on_reexec_trap(self) -> None:
        """Seccomp stop while we wait for a call we re-executed: run it if it
        is that call, in that place, with those arguments."""
        regs = self.regs
        if _ptrace(PTRACE_GETREGS, self.tid, 0, self._regs_ref) != 0:
            _ptrace_fail(self.tid)
        seen = (regs.orig_rax, regs.rip, regs.rdi, regs.rsi, regs.rdx, regs.r10,
                regs.r8, regs.r9)
        expect, self._expect = self._expect, None
        if seen != expect:
            log.error("%r: a trapped call %d at %#x is not the one the tracer re-executed "
                      "(%s); killing the process", self, regs.orig_rax, regs.rip,
                      "none in flight" if expect is None else f"expected {expect[0]} at {expect[1]:#x}")
            self.state = DYING
            try:
                os.kill(self.tgid, signal.SIGKILL)  # the death report follows
            except ProcessLookupError:
                pass
            return
        self.state = AWAIT_EXIT
        self._cont(PTRACE_SYSCALL)

    def _restart(self, _: None) -> None:
        st = self.state
        if st is ENTRY:
            regs = self.regs
            nr = regs.orig_rax
        elif st is EXIT:
            regs = self._from_saved()
            nr = regs.orig_rax
            self.saved = None
        else:
            raise NotParked(f"{self!r}: restart while not parked")
        regs.rax = nr
        regs.orig_rax = MASK64
        regs.rip = (regs.rip - 2) & MASK64
        self._setregs()
        self.state = RUNNING
        self._resend_deferred()
        self._cont(PTRACE_CONT)

    # -- stops the tracer routes here ---------------------------------------------
    def _on_exit_stop(self) -> None:
        """Syscall-exit stop we asked for (state AWAIT_EXIT)."""
        regs = self.regs
        if _ptrace(PTRACE_GETREGS, self.tid, 0, self._regs_ref) != 0:
            _ptrace_fail(self.tid)
        kind = self._exit_kind
        cb = self._exit_cb
        self._expect = None
        self._exit_kind = EXIT_NONE
        self._exit_cb = None
        if kind == EXIT_PROBE or kind == EXIT_COMPLETE:
            want = self._exit_value & MASK64
            if kind == EXIT_PROBE:
                ok = regs.rax == want
                self.tracer._skip_keeps_rax = ok
                log.info("seccomp skip keeps rax: %s (one-stop Complete %s)", ok,
                         "enabled" if ok else "disabled")
            if regs.rax != want:
                regs.rax = want
                self._setregs()
            self.state = RUNNING
            self._cont(PTRACE_CONT)
            return
        result = s64(regs.rax)
        if kind == EXIT_HOST:
            if cb is None:
                self.state = RUNNING
                self._resend_deferred()
                self._cont(PTRACE_CONT)
                return
            self.saved = regs.copy()
            self.state = EXIT
            self._resend_deferred()
            nxt = cb(self, result)
            if self.state is EXIT:  # the callback did not act itself
                if nxt is None:
                    self.saved = None
                    self.state = RUNNING
                    self._cont(PTRACE_CONT)
                else:
                    self._act(nxt)
            elif nxt is not None and nxt is not Pending and type(nxt) is not Pending:
                raise NotParked(f"{self!r}: on_result acted and returned {nxt!r}")
        elif kind == EXIT_INJECT:
            assert cb is not None
            self.state = EXIT
            self._resend_deferred()
            nxt = cb(self, result)
            if nxt is not None and self.state is EXIT:
                self._act(nxt)
        else:  # unexpected: keep going
            log.warning("%r: unexpected syscall-exit stop", self)
            self.state = RUNNING
            self._cont(PTRACE_CONT)

    def _defer_signal(self, sig: int) -> None:
        self._deferred.append(sig)

    def _resend_deferred(self) -> None:
        """Signals that arrived while we re-executed a syscall instruction were
        held back; queue them again so they are delivered after this stop."""
        if self._deferred:
            sigs, self._deferred = self._deferred, []
            for sig in sigs:
                _libc.syscall(SYS_tgkill, self.tgid, self.tid, sig, 0, 0, 0)
