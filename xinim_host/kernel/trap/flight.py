"""One trapped call in progress: the caller's host half and the tracer action
for each step the kernel reports.

The kernel runs a handler as far as it goes and returns a plain step (a result,
a ``HostStep``, or ``None`` for "waiting"); :meth:`InFlight.action` turns it
into the tracer action: ``Complete``, ``HostRun``/``Inject`` whose ``on_result``
feeds the host's answer back into the handler, or ``Pending``.  A step that
comes later (a server answered, a sleep ended) arrives in :meth:`on_step` and is
applied to the parked tracee.
"""
from __future__ import annotations

import errno
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from ...intercept.actions import Complete, HostRun, Inject, Pending, Restart, complete
from ...intercept.memory import TraceeFault
from ...intercept.tracee import Tracee
from ...lib import linux_abi as abi
from ...lib.errors import SysError
from ...lib.syscalls import Sys
from ..kernel import HostStep, Step

if TYPE_CHECKING:
    from .adapter import SyscallRouter
    from .tasks import TaskEntry

# The kernel's own waits that only wait: answering one early loses nothing.
SLEEPS = frozenset({int(Sys.NANOSLEEP), int(Sys.CLOCK_NANOSLEEP)})
STOPS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
TIMER_ABSTIME = 1
_RUN_AS_IS = HostRun()      # the trapped call runs unchanged, no exit stop (immutable)


class TraceeMemory:
    """``UserMemory`` over a tracee: faults become EFAULT for the caller."""

    __slots__ = ("tracee",)

    def __init__(self, tracee: Tracee) -> None:
        self.tracee = tracee

    def read(self, addr: int, size: int) -> bytes:
        try:
            return self.tracee.read(addr, size)
        except TraceeFault:
            raise SysError(errno.EFAULT) from None

    def write(self, addr: int, data: bytes) -> None:
        try:   # not forced: a read-only user buffer is EFAULT, as the kernel says
            self.tracee.write(addr, data, force=False)
        except TraceeFault:
            raise SysError(errno.EFAULT) from None

    def read_cstring(self, addr: int, limit: int = 4096) -> bytes:
        try:
            return self.tracee.read_cstring(addr, limit)
        except TraceeFault:
            raise SysError(errno.EFAULT) from None
        except OSError as exc:  # ENAMETOOLONG from the reader
            raise SysError(exc.errno or errno.EFAULT) from None


class InFlight:
    """One trapped syscall (``calls.base.HostSide`` for its handler)."""

    __slots__ = ("tracee", "host_pid", "router", "started", "xinim", "linux_nr", "args",
                 "entry", "abandoned", "since", "told", "busy")

    def __init__(self, router: "SyscallRouter", tracee: Tracee, entry: "TaskEntry", xinim: int,
                 linux_nr: int, args: tuple[int, ...]) -> None:
        self.router, self.tracee, self.host_pid = router, tracee, tracee.tgid
        self.entry = entry
        self.busy = True            # inside a tracer callback: the action is returned
        self.abandoned = False
        self.xinim, self.linux_nr, self.args = xinim, linux_nr, args
        self.started = time.perf_counter_ns() if router.trace else 0
        self.since = time.monotonic() if xinim in SLEEPS else 0.0
        self.told = 0               # host-pending signals PM was told of (bit per signal)

    # -- calls.base.HostSide ---------------------------------------------------------
    def owns_thread(self, host_tid: int) -> bool:
        other = self.tracee.tracer.tracee(host_tid)
        return other is not None and other.tgid == self.tracee.tgid

    def xinim_tid_of(self, host_tid: int) -> int:
        return self.router.tasks.xinim_tid_of(host_tid)

    def stack_pointer(self) -> int:
        return self.tracee.regs.rsp

    def calls_seen(self) -> int:
        """The tracer's count of trapped calls so far, this one included (two
        equal counts: no trapped call of any process came between)."""
        return self.tracee.tracer.syscalls

    def untraced(self) -> bool:
        """Nobody traces the calls (the trace prints every result, so it needs
        each call's exit)."""
        return not self.router.trace

    def sole_thread(self) -> bool:
        """Is the caller its process's only thread (and not traced, which wants
        every result)?  Then a memory call the host cannot fail need not be
        waited for: no other thread's call can slip in between.  /proc/TGID/task
        has 2 + threads links."""
        router = self.router
        if router.trace:
            return False
        if self.host_pid not in router.shared_vm:
            return True     # no thread and no CLONE_VM sibling made since its exec
        try:
            return os.stat(f"/proc/{self.host_pid}/task").st_nlink <= 3 \
                and self.host_pid not in router.vm_siblings
        except OSError:
            return False

    # -- steps -> actions ----------------------------------------------------------------
    def action(self, step: Step) -> Any:
        """The tracer action for one step of the kernel."""
        if step is None:
            return Pending
        if isinstance(step, HostStep):
            return self._host_action(step)
        return self.finish(step)

    def _host_action(self, step: HostStep) -> Any:
        op = step.op
        if op.tail:                 # the host's result goes to the program as it is
            if self.entry.flight is self:
                self.entry.flight = None
            if op.nr is None and op.args is None:
                return _RUN_AS_IS
            return HostRun(op.args, op.nr)

        def on_result(tracee: Tracee, value: int) -> Any:
            self.busy = True
            try:
                return self.action(step.call.resume_host(value))
            finally:
                self.busy = False
        if op.nr is None:
            return HostRun(args=op.args, on_result=on_result)
        return Inject(op.nr, op.args or (), on_result=on_result)

    def finish(self, result: int) -> Any:
        if self.entry.flight is self:
            self.entry.flight = None
        if self.router.trace:
            self.router.trace_line(self, result)
        return self.router.outcome(self, result) if result < 0 else complete(result)

    def on_step(self, step: int | HostStep) -> None:
        """A step reached later (a server answered, a wait ended): act on the
        parked tracee, unless the call was answered already (a signal)."""
        if self.abandoned:
            return
        self.tracee.resume(self.action(step))

    # -- signals ------------------------------------------------------------------------
    def interrupt(self, err: int) -> None:
        """A signal came for the parked caller: answer a kernel sleep now.  Calls
        parked in a server are the server's to answer (PM's waits, VfsCancel)."""
        tracee = self.tracee
        if self.xinim not in SLEEPS or self.abandoned or not tracee.parked or self.busy:
            return
        self.abandoned = True
        if self.entry.flight is self:
            self.entry.flight = None
        if err in (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND) and \
                tracee.pending_signals() & STOPS:
            action: Any = Restart()   # it stops; after SIGCONT it sleeps again (Linux restarts it)
        else:
            # a handler runs or the process dies: nanosleep answers EINTR even
            # with SA_RESTART, with the time left written back
            self._write_remaining()
            action = Complete(-errno.EINTR)
        if self.router.trace:
            self.router.trace_line(self, getattr(action, "value", -ERESTARTNOHAND))
        tracee.resume(action)

    def _write_remaining(self) -> None:
        if self.xinim == Sys.NANOSLEEP:
            req, rem = self.args[0], self.args[1]
        elif self.args[1] & TIMER_ABSTIME:
            return
        else:
            req, rem = self.args[2], self.args[3]
        if not rem:
            return
        try:
            sec, nsec = abi.TIMESPEC.unpack(self.tracee.read(req, abi.TIMESPEC.size))
            left = max(0, sec * 10**9 + nsec - int((time.monotonic() - self.since) * 1e9))
            self.tracee.write(rem, abi.TIMESPEC.pack(left // 10**9, left % 10**9))
        except (OSError, TraceeFault):
            pass
