"""The tracer: starts programs under ptrace + seccomp and routes their stops.

Everything runs on the trio thread (the main thread): it forks the program,
is the ptrace parent of every tracee, wakes on SIGCHLD (a handler that wakes
the pump task the way ``trio.open_signal_receiver`` does, only cheaper: see
``_ChildWakeup``) and drains ``waitpid(-1, WNOHANG|__WALL|__WNOTHREAD)``
until nothing is left.  No blocking waitpid and no threads, so the same loop
also serves FUSE and IPC; a syscall whose answer is not ready stays stopped
(Pending) until a callback on this thread answers it.  Handlers run inside
the drain with SIGCHLD blocked in this thread (see ``_serve``).

Choices (see the design notes):

* PTRACE_SEIZE, not TRACEME: the child blocks on a pipe until the tracer has
  seized it with every option (TRACESECCOMP included), then installs the
  filter and execs -- the same ordering guarantee as "stop yourself before
  the filter", and SEIZE gives PTRACE_LISTEN: a tracee in group-stop (SIGSTOP,
  SIGTSTP, Ctrl-Z) stays stopped and SIGCONT wakes it, so job control works.
  Signal-delivery-stops re-inject the signal unchanged (never swallowed).
* No PTRACE_O_TRACEEXIT: the death report from waitpid carries the status;
  an extra stop per exiting thread buys nothing here and a tracee stuck in
  an exit stop would hang its whole thread group's exit.
* __WNOTHREAD: only children/tracees of the tracer thread are reaped here, so
  processes other code spawns from worker threads (trio.run_process) keep
  their exit statuses.  The process becomes a child subreaper so orphans of
  killed tracees come back to us and are reaped (no host zombies).
* Until its first exec the root tracee runs our own code (the forked child
  installing the filter and calling execve): its stops are let through
  (``Tracee.ours``), so the handler does not see that execve as a syscall; it
  sees ``on_exec``.  Exec failures (ENOENT, EACCES...) raise OSError from
  ``run`` like subprocess does.  No register value lets a program skip a trap:
  a seccomp stop is the program's own call unless the tracer is waiting for
  the very call it re-executed in that thread (checked register by register).
"""
from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import signal
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, Self

import trio

from . import _libc, memory, seccomp
from .actions import Action, Complete, Pending
from .ptrace_ops import (
    PTRACE_EVENT_CLONE,
    PTRACE_EVENT_EXEC,
    PTRACE_EVENT_FORK,
    PTRACE_EVENT_SECCOMP,
    PTRACE_EVENT_STOP,
    PTRACE_EVENT_VFORK,
    PTRACE_GETREGS,
    PTRACE_LISTEN,
    PTRACE_O_EXITKILL,
    PTRACE_O_TRACECLONE,
    PTRACE_O_TRACEEXEC,
    PTRACE_O_TRACEFORK,
    PTRACE_O_TRACESECCOMP,
    PTRACE_O_TRACESYSGOOD,
    PTRACE_O_TRACEVFORK,
    PTRACE_SETREGS,
    WALL,
    WNOTHREAD,
    geteventmsg,
    seize,
)
from .regs import MASK64
from .tracee import (
    AWAIT_ENTRY,
    AWAIT_EXIT,
    DYING,
    ENTRY,
    GONE,
    PTRACE_CONT,
    PTRACE_SYSCALL,
    RUNNING,
    STARTING,
    NotParked,
    Tracee,
)

log = logging.getLogger(__name__)

TRACE_OPTIONS = (PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACEFORK
                 | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC
                 | PTRACE_O_TRACESECCOMP)

_WFLAGS = os.WNOHANG | WALL | WNOTHREAD
_SYSCALL_TRAP = signal.SIGTRAP | 0x80
_STOP_SIGNALS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
_sched_yield = os.sched_yield
_CHLD = (signal.SIGCHLD,)
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
SYS_write = 1
SYS_execve = 59
SYS_exit_group = 231
SYS_clone, SYS_fork, SYS_vfork, SYS_clone3 = 56, 57, 58, 435
CLONE_VM = 0x100
CLONE_VFORK = 0x4000
CLONE_THREAD = 0x10000

_ptrace = _libc.ptrace


class TraceeEvents(Protocol):
    """What the dispatcher implements.  All callbacks run on the tracer thread
    and must not block; start trio work and answer later for slow calls."""

    def on_syscall(self, tracee: Tracee, nr: int, args: tuple[int, ...]) -> Action:
        """A trapped syscall entered (Linux number, six unsigned register
        values).  Return Complete / HostRun / Inject / Restart / Pending."""
        ...

    def on_spawn(self, parent: Tracee, child: Tracee, clone_flags: int) -> None:
        """fork/vfork/clone/clone3 made ``child`` (already traced; it runs
        once this returns).  ``clone_flags`` includes the exit signal in its
        low byte (fork: SIGCHLD; vfork: CLONE_VM|CLONE_VFORK|SIGCHLD)."""
        ...

    def on_exec(self, tracee: Tracee, former_tid: int) -> None:
        """execve succeeded.  If a non-leader thread exec'd, ``former_tid`` is
        its old tid, ``tracee.tid`` is now the tgid, and the Tracee object of
        the old leader is dropped (GONE, no on_exit; its threads' deaths are
        reported as usual)."""
        ...

    def on_exit(self, tracee: Tracee, status: int) -> None:
        """The thread is gone; ``status`` as os.waitpid encodes it."""
        ...

    # Optional (looked up with getattr):
    #   on_stop(tracee, sig): the thread entered a group stop (SIGSTOP, SIGTSTP...)
    #   on_continue(tracee): SIGCONT ended its group stop


class BaseEvents:
    """Convenience base: host-runs everything, ignores events."""

    def on_syscall(self, tracee: Tracee, nr: int, args: tuple[int, ...]) -> Action:
        from .actions import HostRun
        return HostRun()

    def on_spawn(self, parent: Tracee, child: Tracee, clone_flags: int) -> None:
        pass

    def on_exec(self, tracee: Tracee, former_tid: int) -> None:
        pass

    def on_exit(self, tracee: Tracee, status: int) -> None:
        pass


@dataclass(eq=False)
class _Session:
    """One ``run()``: its handler, its root process and everything it spawned."""

    handler: TraceeEvents
    wait_all: bool
    on_syscall: Callable[[Tracee, int, tuple[int, ...]], Action] = field(init=False)
    root: Tracee | None = None
    root_status: int | None = None
    live: set[Tracee] = field(default_factory=set)
    tgids: set[int] = field(default_factory=set)
    done: bool = False
    error: BaseException | None = None
    err_fd: int = -1
    path: str = ""
    #: whether this run's filter stops on a syscall number
    traps: Callable[[int], bool] = field(default=lambda nr: True)

    def __post_init__(self) -> None:
        self.on_syscall = self.handler.on_syscall  # bound once: hot path


class _ChildWakeup:
    """SIGCHLD -> wake the pump task.

    Same job as ``trio.open_signal_receiver(SIGCHLD)``, measured cheaper:
    trio's handler does run_sync_soon + a socket send for every signal
    (~4.6 us here), and while the pump is draining, a tracee stops (and
    signals) after nearly every resume.  This handler only sets a flag while
    the pump drains -- the drain loop sees the new status by itself -- and
    schedules a wakeup only when the pump sleeps.
    """

    __slots__ = ("_old", "draining", "event", "pending", "scheduled", "token")

    def __init__(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.event = trio.Event()
        self.pending = False
        self.draining = False
        self.scheduled = False
        self._old: object = None

    def __enter__(self) -> Self:
        self._old = signal.signal(signal.SIGCHLD, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGCHLD, self._old)  # type: ignore[arg-type]

    def _handler(self, signum: int, frame: object) -> None:
        self.pending = True
        if not self.draining and not self.scheduled:
            self.scheduled = True
            self.token.run_sync_soon(self._fire, idempotent=True)

    def _fire(self) -> None:
        self.scheduled = False
        self.event.set()

    async def wait(self) -> None:
        if not self.event.is_set():
            await self.event.wait()
        self.event = trio.Event()


class Tracer:
    """Runs programs under the interceptor.  One per process is enough;
    ``run`` may be called concurrently (one SIGCHLD pump serves them all).

    ``cpus``: pin the tracer thread -- and through inheritance every tracee --
    to these CPUs while runs are active.  A delegated syscall is a
    synchronous ping-pong between tracee and tracer; on the same CPU it cost
    ~5 us here, across CPUs 12-90 us (cross-CPU wakeups of halted vCPUs are
    expensive on these VMs).  The price is that tracees no longer run in
    parallel with each other.  ``yield_spins``: how many sched_yield()
    retries the pump makes when a resumed tracee has not stopped yet.

    ``handler_errors``: "raise" (default) -- an exception from a handler
    kills that run's tracees and is raised from its ``run``; "enosys" -- it
    is logged and the syscall answers -ENOSYS.
    """

    def __init__(self, *, handler_errors: Literal["raise", "enosys"] = "raise",
                 one_stop_complete: bool | None = None, yield_spins: int = 2,
                 cpus: Iterable[int] | None = None) -> None:
        self.handler_errors = handler_errors
        #: None = verify at the first Complete; True/False = known.
        self._skip_keeps_rax: bool | None = one_stop_complete
        self._tracees: dict[int, Tracee] = {}
        self._early: dict[int, int] = {}  # tid -> status of a stop before its parent's event
        self._sessions: set[_Session] = set()
        self._pump: _Session | None = None
        self._changed: trio.Event | None = None
        self.stops = 0  # waitpid reports handled (for benchmarks)
        # seccomp stops: trapped syscalls (for benchmarks; and two equal counts
        # tell the kernel no trapped call came between: calls/memory.py _fd_facts)
        self.syscalls = 0
        #: sched_yield() retries when waitpid finds nothing right after a resume
        self.yield_spins = yield_spins
        #: pin the tracer thread (and so every tracee, by inheritance) here
        self.cpus = None if cpus is None else frozenset(cpus)
        self._old_affinity: set[int] | None = None
        self._set_subreaper = False

    # -- public ------------------------------------------------------------------
    def tracee(self, tid: int) -> Tracee | None:
        return self._tracees.get(tid)

    @property
    def tracees(self) -> Mapping[int, Tracee]:
        return self._tracees

    async def run(self, argv: Sequence[str], env: Mapping[str, str], handler: TraceeEvents, *,
                  executable: str | None = None, trap: Iterable[int] = (),
                  allow: Iterable[int] | None = None, allow_if_zero: Mapping[int, int] | None = None,
                  pass_fds: Sequence[int] = (), stdio: Sequence[int | None] | None = None,
                  cwd: str | None = None, preexec: Callable[[], None] | None = None,
                  wait_all: bool = False) -> int:
        """Run ``argv`` traced; return the wait status of the first process.

        ``trap``: Linux syscall numbers that stop (everything else runs on the
        host without a stop).  ``allow``: the inverse -- if given, these run
        on the host and every other number stops (``trap`` is ignored).
        ``allow_if_zero``: number -> argument index; runs with no stop when that
        argument is 0 (never re-executed by the tracer: ``traps`` says it stops).
        ``executable``: path to exec (default argv[0],
        searched in env's PATH if it has no slash).  ``stdio``: fds to become
        0/1/2 (None keeps ours).  ``pass_fds``: more fds the program keeps; all
        others >= 3 are closed.  ``preexec`` runs in the child before the
        filter is installed (setsid, controlling tty...).  When the first
        process exits, the rest of its tree is killed unless ``wait_all``.
        On return or cancellation no tracee of this run is left, nor a zombie.
        """
        if not argv:
            raise ValueError("empty argv")
        path = _resolve(argv[0] if executable is None else executable, env)
        trap = frozenset(trap)
        code = seccomp.assemble(seccomp.build_filter(trap, allowed=allow,
                                                     allowed_if_zero=allow_if_zero))
        sess = _Session(handler, wait_all, path=path,
                        traps=seccomp.traps(trap, allowed=None if allow is None else frozenset(allow)))
        if self._changed is None:
            self._changed = trio.Event()
        if not self._sessions:
            self._enter_process_settings()
        self._sessions.add(sess)
        try:
            await self._serve(sess, lambda: self._spawn(sess, path, argv, env, code, pass_fds,
                                                        stdio, cwd, preexec))
        finally:
            with trio.CancelScope(shield=True):
                await self._cleanup(sess)
            err = _read_exec_error(sess.err_fd)
            sess.err_fd = -1
        if sess.error is not None:
            raise sess.error
        if err:
            raise OSError(err, os.strerror(err), path)
        assert sess.root_status is not None
        return sess.root_status

    def _enter_process_settings(self) -> None:
        """While runs are active: child subreaper (orphans of tracees are
        reparented to us and reaped, not left to a PID 1 that may not reap),
        and the CPU pinning if asked."""
        flag = ctypes.c_int(0)
        _libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(flag), 0, 0, 0)
        if not flag.value:
            _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            self._set_subreaper = True
        if self.cpus is not None:
            self._old_affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, self.cpus)  # this thread only (Linux)

    def _leave_process_settings(self) -> None:
        if self._set_subreaper:
            _libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
            self._set_subreaper = False
        if self._old_affinity is not None:
            os.sched_setaffinity(0, self._old_affinity)
            self._old_affinity = None

    # -- the SIGCHLD pump ---------------------------------------------------------
    async def _serve(self, sess: _Session, spawn: Callable[[], None]) -> None:
        spawned = False
        while not sess.done:
            if self._pump is None:
                self._pump = sess
                try:
                    with _ChildWakeup() as wk:
                        if not spawned:
                            spawned = True
                            spawn()
                        while not sess.done:
                            wk.pending = False
                            wk.draining = True
                            # Blocked while draining: a tracee resumed on this
                            # CPU stops again at once, and a signal per stop
                            # cost ~2.7 us; unblocking delivers one at most.
                            signal.pthread_sigmask(signal.SIG_BLOCK, _CHLD)
                            try:
                                more = self._drain()
                            finally:
                                signal.pthread_sigmask(signal.SIG_UNBLOCK, _CHLD)
                                wk.draining = False
                            if sess.done:
                                break
                            if more or wk.pending:
                                await trio.lowlevel.checkpoint()  # let FUSE/IPC tasks run
                            else:
                                await wk.wait()
                finally:
                    self._pump = None
                    self._wake_sessions()
            else:
                if not spawned:  # the pumping run catches our SIGCHLDs too
                    spawned = True
                    spawn()
                assert self._changed is not None
                await self._changed.wait()

    def _wake_sessions(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = trio.Event()

    @trio.lowlevel.enable_ki_protection
    def _drain(self, limit: int = 256) -> bool:
        """Handle pending wait statuses without blocking; True if ``limit``
        was reached with more possibly waiting (then yield to trio first)."""
        waitpid = os.waitpid
        tracees = self._tracees
        yields = self.yield_spins
        for _ in range(limit):
            try:
                pid, status = waitpid(-1, _WFLAGS)
            except ChildProcessError:
                return False
            if pid == 0:
                # A tracee we just resumed on this CPU gets it once we give
                # it up; its next stop is then usually here at once, which
                # is far cheaper than sleeping in trio and a SIGCHLD wakeup.
                if yields:
                    yields -= 1
                    _sched_yield()
                    continue
                return False
            yields = self.yield_spins
            self.stops += 1
            t = tracees.get(pid)
            if t is None:
                self._unknown(pid, status)
                continue
            try:
                if status & 0xFF == 0x7F:
                    if status >> 16 == PTRACE_EVENT_SECCOMP and t.state is RUNNING \
                            and not t.ours:
                        self._entry(t)
                    else:
                        self._other_stop(t, status)
                else:
                    self._gone(t, status)
            except ProcessLookupError:
                if t.state is not GONE:
                    t.state = DYING
            except Exception as e:  # noqa: BLE001 - a handler bug: contain it to its run
                self._handler_failed(t, e)
        return True

    # -- stops ----------------------------------------------------------------------
    def _entry(self, t: Tracee) -> None:
        """Seccomp stop = syscall entry (Linux >= 4.8 reports it first)."""
        regs = t.regs
        if _ptrace(PTRACE_GETREGS, t.tid, 0, t._regs_ref) != 0:
            raise ProcessLookupError(errno.ESRCH, "tracee vanished")
        self.syscalls += 1
        nr = regs.orig_rax
        args = (regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9)
        t.state = ENTRY
        t.nr = nr
        t.args = args
        t.saved = None
        if log.isEnabledFor(logging.DEBUG):
            log.debug("[%d] syscall %d%s", t.tid, nr, tuple(hex(a) for a in args))
        action = t.session.on_syscall(t, nr, args)
        if t.state is ENTRY:
            if type(action) is Complete and self._skip_keeps_rax:
                # hot path, inlined: skip the syscall with its result in rax
                regs.orig_rax = MASK64
                regs.rax = action.value & MASK64
                t.state = RUNNING
                t._resume_req = PTRACE_CONT
                if (_ptrace(PTRACE_SETREGS, t.tid, 0, t._regs_ref) != 0
                        or _ptrace(PTRACE_CONT, t.tid, 0, 0) != 0):
                    raise ProcessLookupError(errno.ESRCH, "tracee vanished")
            else:
                t._act(action)
        elif action is not Pending and type(action) is not Pending:
            raise NotParked(f"{t!r}: on_syscall resumed the tracee and returned {action!r}")

    def _other_stop(self, t: Tracee, status: int) -> None:
        sig = (status >> 8) & 0xFF
        event = status >> 16
        st = t.state
        if sig == _SYSCALL_TRAP:
            if st is AWAIT_EXIT:
                t._on_exit_stop()
            elif st is AWAIT_ENTRY:  # entry of a re-executed syscall instruction
                t.state = AWAIT_EXIT
                t._cont(PTRACE_SYSCALL)
            else:
                log.warning("%r: unexpected syscall stop", t)
                t._cont(t._resume_req)
        elif event == 0:  # signal-delivery-stop
            if st is AWAIT_ENTRY:
                t._defer_signal(sig)
                t._cont(t._resume_req)
            else:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%r: signal %d re-injected", t, sig)
                on_signal = getattr(t.session.handler, "on_signal", None)
                if on_signal is not None:       # the trace's "--- SIGx {...} ---" line
                    on_signal(t, sig)
                if _ptrace(t._resume_req, t.tid, 0, sig) != 0:
                    raise ProcessLookupError(errno.ESRCH, "tracee vanished")
        elif event == PTRACE_EVENT_SECCOMP:
            if st is AWAIT_EXIT or st is AWAIT_ENTRY:
                # the trap of a syscall we re-executed ourselves: let it run,
                # if it is exactly that call (else the program raced us)
                t._on_reexec_trap()
            elif t.ours and st is RUNNING:
                # the forked child before its exec: our own code
                t._cont(PTRACE_CONT)
            elif st is STARTING:
                t.state = RUNNING
                self._entry(t)
            else:
                log.warning("%r: seccomp stop in state %s", t, st.name)
                t._cont(t._resume_req)
        elif event == PTRACE_EVENT_STOP:
            if st is STARTING:
                t.state = RUNNING
            if sig in _STOP_SIGNALS:  # group-stop: stay stopped, SIGCONT wakes
                first = not t.group_stopped
                t.group_stopped = True
                if _ptrace(PTRACE_LISTEN, t.tid, 0, 0) != 0:
                    raise ProcessLookupError(errno.ESRCH, "tracee vanished")
                if first:
                    on_stop = getattr(t.session.handler, "on_stop", None)
                    if on_stop is not None:
                        on_stop(t, sig)
            else:  # first stop of a new tracee, or woken from LISTEN
                woken = t.group_stopped
                t.group_stopped = False
                t._cont(t._resume_req)
                if woken:
                    on_continue = getattr(t.session.handler, "on_continue", None)
                    if on_continue is not None:
                        on_continue(t)
        elif event == PTRACE_EVENT_FORK or event == PTRACE_EVENT_VFORK or event == PTRACE_EVENT_CLONE:
            self._spawned(t, event)
        elif event == PTRACE_EVENT_EXEC:
            self._exec(t)
        else:
            t._cont(t._resume_req)

    def _spawned(self, parent: Tracee, event: int) -> None:
        tid = geteventmsg(parent.tid)
        flags = self._clone_flags(parent, event)
        sess = parent.session
        child = self._tracees.get(tid)
        if child is None:
            tgid = parent.tgid if flags & CLONE_THREAD else tid
            child = Tracee(tid, tgid, sess, self, state=STARTING)
            self._tracees[tid] = child
            sess.live.add(child)
            sess.tgids.add(tgid)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%r spawned %r flags=%#x", parent, child, flags)
        try:
            sess.handler.on_spawn(parent, child, flags)
        finally:
            parent._cont(parent._resume_req)
            early = self._early.pop(tid, None)
            if early is not None:
                self._dispatch_one(child, early)

    def _clone_flags(self, parent: Tracee, event: int) -> int:
        regs = parent.regs
        if _ptrace(PTRACE_GETREGS, parent.tid, 0, parent._regs_ref) != 0:
            raise ProcessLookupError(errno.ESRCH, "tracee vanished")
        nr = regs.orig_rax
        if nr == SYS_clone:
            return regs.rdi
        if nr == SYS_fork:
            return signal.SIGCHLD
        if nr == SYS_vfork:
            return CLONE_VM | CLONE_VFORK | signal.SIGCHLD
        if nr == SYS_clone3:
            try:
                flags, _, _, _, exit_signal = struct.unpack("<5Q", memory.read(parent.tid, regs.rdi, 40))
                return flags | (exit_signal & 0xFF)
            except memory.TraceeFault:
                pass
        return {PTRACE_EVENT_FORK: signal.SIGCHLD,
                PTRACE_EVENT_VFORK: CLONE_VM | CLONE_VFORK | signal.SIGCHLD}.get(event, CLONE_THREAD)

    def _exec(self, t: Tracee) -> None:
        former = geteventmsg(t.tid)
        if former != t.tid:
            # A non-leader thread exec'd: it now has the leader's tid; the old
            # leader is gone without a death report.
            execer = self._tracees.pop(former, None)
            old = t
            old.state = GONE
            t.session.live.discard(old)
            if execer is None:
                log.warning("exec by unknown thread %d of %d", former, t.tid)
                execer = Tracee(t.tid, t.tgid, t.session, self)
                t.session.live.add(execer)
            execer.tid = t.tid
            self._tracees[t.tid] = execer
            if t.session.root is old:
                t.session.root = execer
            t = execer
        t.saved = None
        t.ours = False
        try:
            t.session.handler.on_exec(t, former)
        finally:
            if t.state is not GONE and t.state is not DYING:
                t._cont(t._resume_req)

    def _gone(self, t: Tracee, status: int) -> None:
        if self._tracees.get(t.tid) is t:
            del self._tracees[t.tid]
        t.state = GONE
        t.exit_status = status
        sess = t.session
        sess.live.discard(t)
        try:
            sess.handler.on_exit(t, status)
            if self._early:
                self._adopt_early(t)
        finally:
            if t is sess.root:
                sess.root_status = status
            if sess.root_status is not None and (not sess.wait_all or not sess.live):
                self._finish(sess)

    def _unknown(self, pid: int, status: int) -> None:
        if status & 0xFF == 0x7F:
            # a new tracee's first stop, before its parent's fork event
            self._early[pid] = status
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("reaped non-tracee %d status %#x", pid, status)

    def _adopt_early(self, dead: Tracee) -> None:
        """A parent killed right inside fork/clone never reports the event,
        but its new child is traced and waits in its first stop: adopt such
        children of ``dead`` (found through /proc) so they do not hang."""
        for tid in list(self._early):
            try:
                with open(f"/proc/{tid}/status", "rb") as f:  # bytes: Name: is the program's
                    fields = dict(line.split(b":\t", 1) for line in f.read().splitlines() if b":\t" in line)
                tgid, ppid = int(fields[b"Tgid"]), int(fields[b"PPid"])
            except (OSError, KeyError, ValueError):
                continue
            if dead.tgid not in (tgid, ppid):
                continue
            status = self._early.pop(tid)
            sess = dead.session
            child = Tracee(tid, tgid, sess, self, state=STARTING)
            self._tracees[tid] = child
            sess.live.add(child)
            sess.tgids.add(tgid)
            log.info("adopted %r, orphaned in its parent's fork", child)
            sess.handler.on_spawn(dead, child, CLONE_THREAD if tgid == dead.tgid else signal.SIGCHLD)
            self._dispatch_one(child, status)

    def _dispatch_one(self, t: Tracee, status: int) -> None:
        if status & 0xFF == 0x7F:
            self._other_stop(t, status)
        else:
            self._gone(t, status)

    def _finish(self, sess: _Session) -> None:
        if not sess.done:
            sess.done = True
            self._wake_sessions()

    def _handler_failed(self, t: Tracee, e: Exception) -> None:
        sess = t.session
        if self.handler_errors == "enosys" and t.parked:
            log.exception("handler failed on %r; answering ENOSYS", t)
            try:
                t._complete(-errno.ENOSYS)
            except ProcessLookupError:
                t.state = DYING
            return
        if sess.error is None:
            sess.error = e
        self._finish(sess)

    # -- starting the program ----------------------------------------------------
    def _spawn(self, sess: _Session, path: str, argv: Sequence[str], env: Mapping[str, str],
               code: bytes, pass_fds: Sequence[int], stdio: Sequence[int | None] | None,
               cwd: str | None, preexec: Callable[[], None] | None) -> None:
        # Everything the child needs is built here, so between installing the
        # filter and execve it makes no syscall of its own.
        c_path = ctypes.create_string_buffer(os.fsencode(path))
        c_args = [ctypes.create_string_buffer(os.fsencode(a)) for a in argv]
        c_envs = [ctypes.create_string_buffer(os.fsencode(k) + b"=" + os.fsencode(v))
                  for k, v in env.items()]
        c_argv = (ctypes.c_void_p * (len(c_args) + 1))(*[ctypes.addressof(a) for a in c_args], None)
        c_envp = (ctypes.c_void_p * (len(c_envs) + 1))(*[ctypes.addressof(e) for e in c_envs], None)
        go_r, go_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            _child(go_r, err_w, ctypes.addressof(c_path), ctypes.addressof(c_argv),
                   ctypes.addressof(c_envp), code, pass_fds, stdio, cwd, preexec)
        os.close(go_r)
        os.close(err_w)
        sess.err_fd = err_r
        try:
            seize(pid, TRACE_OPTIONS)
        except OSError:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(go_w)
            raise
        t = Tracee(pid, pid, sess, self, ours=True)
        self._tracees[pid] = t
        sess.root = t
        sess.live.add(t)
        sess.tgids.add(pid)
        os.write(go_w, b"g")
        os.close(go_w)
        log.debug("started %s as %d", path, pid)

    # -- teardown ----------------------------------------------------------------------
    async def _cleanup(self, sess: _Session) -> None:
        """Kill what is left of this run and reap it (shielded)."""
        self._finish(sess)
        for tgid in {t.tgid for t in sess.live}:
            try:
                os.kill(tgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._sessions == {sess}:  # stops of tracees whose parent never reported them
            for pid in list(self._early):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                sess.tgids.add(pid)
            self._early.clear()
        delay = 0.0002
        ours = sess.tgids | {os.getpid()}
        with trio.move_on_after(10) as scope:
            while True:
                self._drain()
                if not sess.live and not _zombies(sess.tgids, ours):
                    break
                await trio.sleep(delay)
                delay = min(delay * 2, 0.02)
        if scope.cancelled_caught:
            log.warning("run cleanup: tracees %s / zombies %s left", sess.live, _zombies(sess.tgids, ours))
        for t in list(sess.live):  # never reported (e.g. killed as STARTING)
            t.state = GONE
            if self._tracees.get(t.tid) is t:
                del self._tracees[t.tid]
        sess.live.clear()
        # only now: orphans of the killed tree had to be reparented to us
        self._sessions.discard(sess)
        if not self._sessions:
            self._leave_process_settings()


def _zombies(tgids: Iterable[int], parents: set[int]) -> list[int]:
    """Those of ``tgids`` that are zombies of one of ``parents`` (a reused pid
    that is somebody else's zombie does not count)."""
    out = []
    for pid in tgids:
        try:   # one read holds the whole line (open() would add three syscalls)
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
            try:
                stat = os.read(fd, 4096)
            finally:
                os.close(fd)
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if fields[0] == b"Z" and int(fields[1]) in parents:
            out.append(pid)
    return out


def _resolve(name: str, env: Mapping[str, str]) -> str:
    if "/" in name:
        return name
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    return found


def _read_exec_error(fd: int) -> int:
    if fd < 0:
        return 0
    try:
        os.set_blocking(fd, False)
        data = os.read(fd, 4)
    except OSError:
        data = b""
    finally:
        os.close(fd)
    return struct.unpack("<i", data)[0] if len(data) == 4 else 0


def _child(go_r: int, err_w: int, path: int, argv: int, envp: int, code: bytes,
           pass_fds: Sequence[int], stdio: Sequence[int | None] | None, cwd: str | None,
           preexec: Callable[[], None] | None) -> None:  # pragma: no cover - runs in the child
    """Forked child: wait to be seized, set up, install the filter, exec."""
    err = errno.EIO
    try:
        if os.read(go_r, 1) != b"g":
            os._exit(127)
        if stdio is not None:
            for i, fd in enumerate(stdio):
                if fd is not None and fd != i:
                    os.dup2(fd, i)
                elif fd == i:
                    os.set_inheritable(fd, True)
        if cwd is not None:
            os.chdir(cwd)
        # Ignored dispositions survive exec: Python's own (SIGPIPE, SIGXFSZ) and any
        # this process inherited.  The program starts with every one at its default,
        # as the dispositions its handler keeps for it do (PM's for a new process).
        for sig in signal.valid_signals():
            if sig not in (signal.SIGKILL, signal.SIGSTOP) and \
                    signal.getsignal(sig) == signal.SIG_IGN:
                signal.signal(sig, signal.SIG_DFL)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        keep = sorted({fd for fd in pass_fds if fd > 2} | {err_w})
        lo = 3
        for fd in keep:
            os.closerange(lo, fd)
            lo = fd + 1
        os.closerange(lo, 1 << 20)
        for fd in pass_fds:
            os.set_inheritable(fd, True)
        if preexec is not None:
            preexec()
        seccomp.install(code)
        # Trapped like any call; the tracer lets it run (Tracee.ours until the exec).
        _libc.syscall(SYS_execve, path, argv, envp, 0, 0, 0)
        err = _libc.get_errno()
    except OSError as e:
        err = e.errno or errno.EIO
    except BaseException:  # noqa: BLE001 - the child must reach _exit, whatever happened
        err = errno.EIO
    finally:
        buf = struct.pack("<i", err)
        _libc.syscall(SYS_write, err_w, ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value or 0,
                      4, 0, 0, 0)
        _libc.syscall(SYS_exit_group, 127, 0, 0, 0, 0, 0)
        os._exit(127)
