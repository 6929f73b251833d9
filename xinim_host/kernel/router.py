"""From a tracee's stop to the kernel dispatcher and back.

The tracer reports a trapped Linux syscall; the router looks it up in the one
renumbering table, gives the kernel the XINIM number with a context (the
caller's XINIM pid, its six argument registers, its memory, its host half) and
turns the outcome into a tracer action:

* a result known at once -> ``Complete`` (the host kernel skips the call);
* a handler that waits (a pipe read, a blocking wait4) -> ``Pending``; the
  tracee stays stopped until the reply's callback completes it;
* a handler that needs the host kernel (``HostCall``: MM's mmap made real, the
  exec itself) -> ``Inject`` / ``HostRun``, and the host's result goes back
  into the handler.

It also keeps the host-task -> XINIM-pid directory, fed by PM's answers to the
fork events, and tells the servers about execs, stops, continues and deaths.

Signals.  PM decides; the router is PM's host half (``PmServer.attach_host``):

* ``signal_task`` delivers a signal PM generated to the real host task (kill /
  tgkill).  A tracee parked in a call cannot take it until it is resumed, so
  whoever holds the call answers it: PM its own waits, the VFS its blocked reads
  (``VfsCancel``), and the router the kernel's own waits (``interrupt``: a
  nanosleep is abandoned and answered at once; the kernel's timer task then
  finishes into nothing).
* Interrupted calls answer ``-EINTR``, or a Linux restart code (-ERESTARTSYS...)
  that the router turns into ``Restart``: the tracee takes the signal (its
  handler runs, or it stops) and then executes the same syscall again.
* A write that failed with EPIPE raises SIGPIPE for the writing thread (through
  PM, which knows its mask and dispositions) before the tracee sees the error.
* Signals the host queues behind PM's back (a host timer's SIGALRM, a kill from
  outside XINIM, Ctrl-Z on the host terminal) would wait forever for a tracee
  parked in a server; while any call is parked a watch task looks at the parked
  tracees' pending signals every ``WATCH_PERIOD`` and tells PM of new ones as the
  kernel's own kill, so the same rules answer the parked calls.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

import trio
from ptrace.syscall.prototypes import SYSCALL_PROTOTYPES

from ..lib import linux_abi as abi
from ..lib import protocol as p
from .calls.base import HostCall, SyscallContext
from .dispatch import SYSCALLS
from ..lib.errors import SysError
from ..lib.ipc import Pending as IpcPending
from .kernel import Kernel
from ..lib.syscalls import Sys
from ..intercept import _libc
from . import renumber
from ..intercept.actions import Complete, HostRun, Inject, Pending, Restart
from ..intercept.memory import TraceeFault
from .renumber import Action as RouteAction
from ..intercept.tracee import Tracee

log = logging.getLogger(__name__)

CLONE_THREAD = 0x10000
EXITED_IDS_KEPT = 1024
SYS_TGKILL = 234

# The kernel's own waits that only wait: answering one early loses nothing.
_SLEEPS = frozenset({int(Sys.NANOSLEEP), int(Sys.CLOCK_NANOSLEEP)})
# Writes whose EPIPE comes with SIGPIPE (Linux pipe_write; sockets without MSG_NOSIGNAL).
_PIPE_WRITES = frozenset({int(Sys.WRITE), int(Sys.WRITEV), int(Sys.PWRITE64),
                          int(Sys.PWRITEV)})
_STOPS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
_ERESTARTSYS, _ERESTARTNOINTR, _ERESTARTNOHAND, _ERESTART_RESTARTBLOCK = 512, 513, 514, 516
TIMER_ABSTIME = 1
SIGRTMIN = 32               # real-time signals queue: never re-sent (they would come twice)
_DISPOSITION_RE = re.compile(rb"^(SigIgn|SigCgt):\s*([0-9a-f]+)$", re.MULTILINE)
_DEFAULT_IGNORED = frozenset({signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH})
WATCH_PERIOD = 0.05         # seconds between looks at parked tracees' pending signals


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
    """The host half of one trapped syscall (``calls.base.HostSide``).

    Inside a tracer callback an action is handed back as the callback's return
    value; later (a reply arrived on its own) it is applied to the parked tracee.
    """

    __slots__ = ("tracee", "host_pid", "in_callback", "action", "router", "started",
                 "xinim", "linux_nr", "args", "entry", "abandoned", "since", "told")

    def __init__(self, router: "SyscallRouter", tracee: Tracee, entry: "TaskEntry", xinim: int,
                 linux_nr: int, args: tuple[int, ...]) -> None:
        self.router, self.tracee, self.host_pid = router, tracee, tracee.tgid
        self.entry = entry
        self.in_callback = True
        self.abandoned = False
        self.action: Any = None
        self.xinim, self.linux_nr, self.args = xinim, linux_nr, args
        self.started = time.perf_counter_ns() if router.trace else 0
        self.since = time.monotonic() if xinim in _SLEEPS else 0.0
        self.told = 0               # host-pending signals PM was told of (bit per signal)

    def _apply(self, action: Any) -> None:
        if self.in_callback:
            self.action = action
        else:
            self.tracee.resume(action)

    def request(self, op: HostCall, resume: Callable[[int], None]) -> None:
        if self.abandoned:
            return
        on_result = self._after_host(resume)
        if op.nr is None:
            self._apply(HostRun(args=op.args, on_result=on_result))
        else:
            self._apply(Inject(op.nr, op.args or (), on_result=on_result))

    def _after_host(self, resume: Callable[[int], None]) -> Callable[[Tracee, int], Any]:
        def on_result(tracee: Tracee, value: int) -> Any:
            self.in_callback, self.action = True, None
            try:
                resume(value)
            finally:
                self.in_callback = False
            action, self.action = self.action, None
            return action if action is not None else Pending
        return on_result

    def owns_thread(self, host_tid: int) -> bool:
        other = self.tracee.tracer.tracee(host_tid)
        return other is not None and other.tgid == self.tracee.tgid

    def xinim_tid_of(self, host_tid: int) -> int:
        return self.router.xinim_tid_of(host_tid)

    def stack_pointer(self) -> int:
        return self.tracee.regs.rsp

    def finish(self, result: int) -> None:
        if self.abandoned:          # answered already (interrupted by a signal)
            return
        if self.entry.flight is self:
            self.entry.flight = None
        if self.router.trace:
            self.router.trace_line(self, result)
        self._apply(self.router.outcome(self, result) if result < 0 else Complete(result))

    def interrupt(self, err: int) -> None:
        """A signal came for the parked caller: answer a kernel sleep now.  Calls
        parked in a server are the server's to answer (PM's waits, VfsCancel)."""
        tracee = self.tracee
        if self.xinim not in _SLEEPS or self.abandoned or not tracee.parked \
                or self.in_callback:
            return
        self.abandoned = True
        if self.entry.flight is self:
            self.entry.flight = None
        if err in (_ERESTARTSYS, _ERESTARTNOINTR, _ERESTARTNOHAND) and \
                tracee.pending_signals() & _STOPS:
            action: Any = Restart()   # it stops; after SIGCONT it sleeps again (Linux restarts it)
        else:
            # a handler runs or the process dies: nanosleep answers EINTR even
            # with SA_RESTART, with the time left written back
            self._write_remaining()
            action = Complete(-errno.EINTR)
        if self.router.trace:
            self.router.trace_line(self, getattr(action, "value", -_ERESTARTNOHAND))
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


@dataclass
class TaskEntry:
    """What the router knows of one host task (thread)."""
    pid: int = 0                                      # XINIM pid, 0 until PM answered
    tid: int = 0                                      # XINIM tid (= pid for a main thread)
    waiting: list[Callable[[], None]] = field(default_factory=list)
    tgid: int = 0                                     # its host process
    flight: InFlight | None = None                    # the call it is parked in, if any
    ready: bool = False                               # named, and the servers told


class SyscallRouter:
    """The ``TraceeEvents`` of a booted system: every trapped syscall goes here."""

    def __init__(self, kernel: Kernel, *, pm: Any = None, root_parent: int = p.INIT_PID,
                 trace: TextIO | None = None) -> None:
        """``pm``: the Process Manager of the booted system; the router becomes its
        host half (signals reach real tasks, kernel sleeps are interruptible)."""
        self.kernel = kernel
        self.lattice = kernel.lattice
        self.root_parent = root_parent
        self.trace = trace
        self.tasks: dict[int, TaskEntry] = {}         # host tid -> entry
        self._enosys_logged: set[str] = set()
        self._watching = False
        self.stdio_node = 0    # joined: the node whose terminal the first process gets
        self.root_image: tuple[bytes, list[bytes]] | None = None   # its XINIM path, argv
        self._exited_ids: dict[int, int] = {}   # host tid -> XINIM tid, recently gone
        self._unanswered: set[IpcPending] = set()   # notices whose answer is still out
        self._pm_attached = pm is not None   # else PM is on another node (joined)
        if pm is not None:
            pm.attach_host(self)

    # --- tracer callbacks -----------------------------------------------------------

    def on_syscall(self, tracee: Tracee, nr: int, args: tuple[int, ...]) -> Any:
        route = renumber.route(nr)
        if route.action is RouteAction.HOST:
            return HostRun()
        if route.action is RouteAction.ENOSYS or route.xinim is None:
            if route.linux_name not in self._enosys_logged:
                self._enosys_logged.add(route.linux_name)
                log.warning("%s (Linux %d): not supported -> ENOSYS", route.linux_name, nr)
            return Complete(-errno.ENOSYS)
        entry = self.tasks.get(tracee.tid)
        if entry is None or not entry.ready:
            # PM has not named this task yet (or the servers are still being told
            # about it): hold the call until they have.
            self._entry(tracee.tid).waiting.append(
                lambda: tracee.resume(self.on_syscall(tracee, nr, args)))
            return Pending
        return self.dispatch(tracee, entry, int(route.xinim), nr, args)

    def dispatch(self, tracee: Tracee, entry: TaskEntry, xinim: int, linux_nr: int,
                 args: tuple[int, ...]) -> Any:
        flight = InFlight(self, tracee, entry, xinim, linux_nr, args)
        creds = self.kernel.creds_of(entry.pid)
        ctx = SyscallContext(pid=entry.pid, tid=entry.tid, args=args, mem=TraceeMemory(tracee),
                             uid=creds.uid, euid=creds.euid, gid=creds.gid, egid=creds.egid,
                             host=flight)
        result = self.kernel.start(xinim, ctx, flight.finish)
        flight.in_callback = False
        if result is not None:
            if self.trace:
                self.trace_line(flight, result)
            return self.outcome(flight, result) if result < 0 else Complete(result)
        action, flight.action = flight.action, None
        if action is None or action is Pending:
            entry.flight = flight       # parked: a signal may have to answer it
            if not self._watching:
                self._start_watch()
            return Pending
        return action

    def outcome(self, flight: InFlight, result: int) -> Any:
        """The action for a failed call: restart codes become ``Restart`` (the signal
        is taken first), and a write's EPIPE raises SIGPIPE first."""
        if -_ERESTART_RESTARTBLOCK <= result <= -_ERESTARTSYS:
            if result == -_ERESTART_RESTARTBLOCK:
                return Complete(-errno.EINTR)
            return Restart()
        if result == -errno.EPIPE and flight.xinim in _PIPE_WRITES:
            return self._raise_then(flight, signal.SIGPIPE, Complete(result))
        return Complete(result)

    def _raise_then(self, flight: InFlight, sig: int, action: Any) -> Any:
        """Have PM generate ``sig`` for the calling thread, then ``action``."""
        try:
            answer = self.lattice.call(self.kernel.pid, p.PM_PID,
                                       p.ProcTkill(caller=self._kill_caller(flight.entry.tid),
                                                   tid=flight.entry.tid, sig=sig))
        except SysError as exc:
            log.warning("signal %d for %d: %s", sig, flight.entry.tid, exc)
            return action
        if isinstance(answer, IpcPending):
            answer.add_done_callback(lambda _msg: flight.tracee.resume(action))
            return Pending
        return action

    def on_spawn(self, parent: Tracee, child: Tracee, clone_flags: int) -> None:
        parent_entry = self.tasks.get(parent.tid)
        parent_tid = parent_entry.tid if parent_entry and parent_entry.tid else self.root_parent
        thread_of = parent_entry.pid if clone_flags & CLONE_THREAD and parent_entry else 0
        self._entry(child.tid).tgid = child.tgid
        self._register(child.tid, parent_tid, clone_flags, thread_of)

    def on_exec(self, tracee: Tracee, former_tid: int) -> None:
        if former_tid != tracee.tid and former_tid in self.tasks:
            # a thread exec'd: it takes the leader's tid; the other threads are gone
            # (PM's exec commit forgot them; their deaths are not reported)
            self.tasks[tracee.tid] = self.tasks.pop(former_tid)
        if tracee.tid not in self.tasks:
            # The program xinim-run started: a child of init (or of the caller).
            self._entry(tracee.tid).tgid = tracee.tgid
            self._register(tracee.tid, self.root_parent, signal.SIGCHLD, 0, root=True)
        else:
            self._tell_mm_layout(tracee.tid)

    def on_exit(self, tracee: Tracee, status: int) -> None:
        entry = self.tasks.pop(tracee.tid, None)
        if entry is None or not entry.pid:
            return
        # A fork's child can live and die before its parent's fork returns: the
        # parent still has to be told the child's XINIM id (see ``xinim_tid_of``).
        self._exited_ids[tracee.tid] = entry.tid
        while len(self._exited_ids) > EXITED_IDS_KEPT:
            del self._exited_ids[next(iter(self._exited_ids))]
        if entry.flight is not None:    # a late answer must not reach a dead tracee
            entry.flight.abandoned = True
            entry.flight = None
        self._notify(p.PM_PID, p.ProcTaskExited(host_tid=tracee.tid, status=status))

    def on_stop(self, tracee: Tracee, sig: int) -> None:
        """The task entered a group stop (SIGSTOP, SIGTSTP, Ctrl-Z...)."""
        entry = self.tasks.get(tracee.tid)
        if entry is not None and entry.pid:
            self._notify(p.PM_PID, p.ProcTaskStopped(host_tid=tracee.tid, sig=sig))

    def on_continue(self, tracee: Tracee) -> None:
        """SIGCONT ended the task's group stop."""
        entry = self.tasks.get(tracee.tid)
        if entry is not None and entry.pid:
            self._notify(p.PM_PID, p.ProcTaskContinued(host_tid=tracee.tid))

    # --- signals the host queued for parked tracees --------------------------------------

    def _start_watch(self) -> None:
        try:
            self.kernel.spawn(self._watch)
        except (SysError, AttributeError):  # no kernel nursery: nothing to watch with
            return
        self._watching = True

    async def _watch(self) -> None:
        try:
            while True:
                await trio.sleep(WATCH_PERIOD)
                if not self.check_host_signals():
                    return
        finally:
            self._watching = False

    def check_host_signals(self) -> bool:
        """Tell PM of signals pending on the host for parked tracees that PM did not
        send (as the kernel's kill: the host already has them, so PM's delivery adds
        nothing but the answers to the parked calls).  True while any call is parked."""
        parked = False
        for entry in list(self.tasks.values()):
            flight = entry.flight
            if flight is None or flight.abandoned:
                continue
            parked = True
            if not flight.tracee.parked:
                continue
            private, shared = flight.tracee.pending_signal_sets()
            for sigs, thread in ((shared, False), (private, True)):
                for sig in sigs:
                    bit = 1 << sig
                    if sig >= SIGRTMIN or flight.told & bit:
                        continue
                    flight.told |= bit
                    caller = self._kill_caller(entry.tid if thread else entry.pid)
                    self._notify(p.PM_PID,
                                 p.ProcTkill(caller=caller, tid=entry.tid, sig=sig) if thread
                                 else p.ProcKill(caller=caller, pid=entry.pid, sig=sig))
                    if not self._pm_attached:
                        self._interrupt_for_host_signal(flight, sig)
        return parked

    def _kill_caller(self, own: int) -> int:
        """Who reports a signal to PM: the kernel; a joined node's kernel may not speak
        as the boot's, so there the process reports it to itself."""
        return p.KERNEL_PID if self.kernel.pid == p.KERNEL_PID else own

    def _interrupt_for_host_signal(self, flight: InFlight, sig: int) -> None:
        """A joined node: PM (on another node) cannot reach our parked sleeps
        (``interrupt``), so end one here when the host will act on ``sig``: it is
        caught, or its default action terminates or stops the process."""
        try:
            with open(f"/proc/{flight.tracee.tgid}/status", "rb") as f:
                text = f.read()
            masks = dict(_DISPOSITION_RE.findall(text))
            ignored = int(masks.get(b"SigIgn", b"0"), 16)
            caught = int(masks.get(b"SigCgt", b"0"), 16)
        except (OSError, ValueError):
            return
        bit = 1 << (sig - 1)
        if ignored & bit or (not caught & bit and sig in _DEFAULT_IGNORED):
            return
        flight.interrupt(_ERESTARTSYS if sig in _STOPS else errno.EINTR)

    # --- PM's host half (pm.server.HostTasks) -----------------------------------------

    def signal_task(self, host_tgid: int, host_tid: int, sig: int) -> bool:
        """Deliver a signal PM generated to one of our host tasks (False: not ours)."""
        if host_tid:
            if host_tid not in self.tasks:
                return False
            if _libc.syscall(SYS_TGKILL, host_tgid, host_tid, sig, 0, 0, 0) < 0:
                _libc.raise_errno(f"tgkill {host_tgid}/{host_tid}")
            return True
        if host_tgid not in self.tasks and not any(
                e.tgid == host_tgid for e in self.tasks.values()):
            return False
        os.kill(host_tgid, sig)
        return True

    def interrupt(self, pid: int, err: int) -> None:
        """PM signalled XINIM process ``pid``: its threads' kernel sleeps end."""
        for entry in list(self.tasks.values()):
            flight = entry.flight
            if flight is not None and entry.pid == pid:
                flight.interrupt(err)

    # --- the directory ------------------------------------------------------------------

    def _entry(self, tid: int) -> TaskEntry:
        entry = self.tasks.get(tid)
        if entry is None:
            entry = self.tasks[tid] = TaskEntry()
        return entry

    def _register(self, host_tid: int, parent_tid: int, flags: int, thread_of: int,
                  root: bool = False) -> None:
        """Ask PM to name a new host task; its held syscalls run once it has."""
        answer = self.lattice.call(self.kernel.pid, p.PM_PID,
                                   p.ProcFork(parent_pid=parent_tid, child_host_pid=host_tid,
                                              flags=flags))

        def named(msg: p.Message) -> None:
            entry = self._entry(host_tid)
            if msg.body.error:
                log.error("PM refused host task %d: %s", host_tid, os.strerror(msg.body.error))
                os.kill(host_tid, signal.SIGKILL)
                return
            entry.tid = msg.body.result
            entry.pid = thread_of or msg.body.result
            notices: list[tuple[int, p.Payload]] = []
            if not thread_of:
                parent = self.kernel.creds.get(self._pid_of_tid(parent_tid))
                if parent is not None:
                    self.kernel.creds[entry.pid] = parent
            if root:
                # The program xinim-run started was exec'd by the host before XINIM
                # knew it: PM records its image, MM imports the host's layout (a
                # fork child has MM's copy of its parent's instead), and a joined
                # node's first process talks to the terminal that node passed.
                if self.root_image is not None:
                    path, argv = self.root_image
                    notices.append((p.PM_PID, p.ProcExec(caller=entry.pid, path=path,
                                                         argv=b"\0".join(argv), envp=b"")))
                layout = self._mm_layout(host_tid)
                if layout is not None:
                    notices.append((p.MM_PID, layout))
                if self.stdio_node:
                    node, self.stdio_node = self.stdio_node, 0
                    notices.append((p.VFS_PID, p.VfsNodeStdio(pid=entry.pid, node=node)))
            self._in_order(notices, lambda: wake_all(entry))

        def wake_all(entry: TaskEntry) -> None:
            entry.ready = True
            waiting, entry.waiting = entry.waiting, []
            for wake in waiting:
                wake()

        if isinstance(answer, IpcPending):
            answer.add_done_callback(named)
        else:
            named(answer)

    def _pid_of_tid(self, tid: int) -> int:
        for entry in self.tasks.values():
            if entry.tid == tid:
                return entry.pid
        return tid

    def _mm_layout(self, host_tid: int) -> p.Payload | None:
        entry = self.tasks.get(host_tid)
        if entry is None or not entry.pid:
            return None
        return p.MmExecLayout(pid=entry.pid, host_pid=host_tid)

    def _tell_mm_layout(self, host_tid: int) -> None:
        layout = self._mm_layout(host_tid)
        if layout is not None:
            self._notify(p.MM_PID, layout)

    def _in_order(self, notices: list[tuple[int, p.Payload]], then: Callable[[], None]) -> None:
        """Send kernel notices one after another (each once the previous one is
        answered), then call ``then``."""
        if not notices:
            then()
            return
        (dst, body), rest = notices[0], notices[1:]
        self._notify(dst, body, then=lambda: self._in_order(rest, then))

    def _notify(self, dst: int, body: p.Payload,
                then: Callable[[], None] | None = None) -> None:
        """A kernel notice to a server; its answer only matters when it is an error
        (logged, not fatal).  ``then`` runs once it is answered (or failed to go)."""
        def answered(msg: p.Message) -> None:
            if msg.body.error == errno.ESRCH:   # it went first (exit_group reached PM already)
                log.debug("%s -> %d: no such process", type(body).__name__, dst)
            elif msg.body.error:
                log.warning("%s -> %d: %s", type(body).__name__, dst, os.strerror(msg.body.error))
            if then is not None:
                then()
        try:
            answer = self.lattice.call(self.kernel.pid, dst, body)
        except SysError as exc:
            log.warning("%s -> %d failed: %s", type(body).__name__, dst, exc)
            if then is not None:
                then()
            return
        if isinstance(answer, IpcPending):
            self._unanswered.add(answer)
            answer.add_done_callback(lambda _msg: self._unanswered.discard(answer))
            answer.add_done_callback(answered)
        else:
            answered(answer)

    async def settle(self, timeout: float = 2.0) -> None:
        """Wait (a bounded while) for the servers to take the notices still in flight:
        a joined node's link must not close under its last exit report."""
        with trio.move_on_after(timeout):
            for answer in list(self._unanswered):
                await answer.wait()

    def xinim_tid_of(self, host_tid: int) -> int:
        """The XINIM tid PM gave a host task we traced (0: not known)."""
        entry = self.tasks.get(host_tid)
        if entry is not None and entry.tid:
            return entry.tid
        return self._exited_ids.get(host_tid, 0)

    def xinim_pid(self, host_tid: int) -> int:
        entry = self.tasks.get(host_tid)
        return entry.pid if entry else 0

    # --- --trace -----------------------------------------------------------------------

    def trace_line(self, flight: InFlight, result: int) -> None:
        """One strace-like line with the XINIM path the call took."""
        entry = SYSCALLS.get(flight.xinim)
        name = renumber.route(flight.linux_nr).linux_name
        owner = entry.owner.upper() if entry else "?"
        micros = (time.perf_counter_ns() - flight.started) / 1000
        shown = (f"-1 {errno.errorcode.get(-result, -result)}" if -4096 < result < 0
                 else f"{result:#x}" if result > 0xFFFF else str(result))
        proto = SYSCALL_PROTOTYPES.get(name, ("long", tuple(("long", "") for _ in range(6))))[1]
        args = ", ".join(_arg(flight.tracee, ctype, argname, value)
                         for (ctype, argname), value in zip(proto, flight.args))
        xname = entry.name if entry else "?"
        assert self.trace is not None
        self.trace.write(f"[{self.xinim_pid(flight.tracee.tid)}] {name}({args}) = {shown}  "
                         f"<XINIM {flight.xinim} {xname} \u2192 {owner}, {micros:.0f} \u00b5s>\n")
        self.trace.flush()


def _arg(tracee: Tracee, ctype: str, name: str, value: int) -> str:
    if ctype == "const char *" and value:
        try:
            text = tracee.read_cstring(value, 256)
        except OSError:
            return hex(value)
        shown = text[:64].decode(errors="backslashreplace")
        return f'"{shown}"' + ("..." if len(text) > 64 else "")
    if value >= 1 << 63:
        value -= 1 << 64
    if "dfd" in name or name == "dirfd":
        value = value & 0xFFFFFFFF
        value = value - (1 << 32) if value & 0x80000000 else value
        if value == -100:
            return "AT_FDCWD"
    return str(value) if -4096 < value < 4096 else hex(value)
