"""PM's process table: one PCB per process, one task record per thread.

A :class:`Process` is what programs call a process (a Linux thread group); its
:class:`Task` records are its threads.  A main thread's tid equals its pid, and
tids come from the same number space as pids.  Host task ids are kept here only
(``Task.host_tid``); nothing shows them to programs.
"""
from __future__ import annotations

import enum
import errno
import signal as _signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.limits import PID_MAX

NSIG = 64                 # signals 1..64
SIG_DFL, SIG_IGN = 0, 1
SIGCHLD = int(_signal.SIGCHLD)



class State(enum.Enum):
    RUNNING = "R"
    SLEEPING = "S"         # parked in PM (wait4/waitid/sigsuspend)
    STOPPED = "T"
    ZOMBIE = "Z"


@dataclass(frozen=True, slots=True)
class SigAction:
    """One disposition (frozen: forks copy the list, not the records)."""

    handler: int = SIG_DFL
    flags: int = 0
    restorer: int = 0
    mask: int = 0


DEFAULT_ACTION = SigAction()


def fresh_actions() -> list[SigAction]:
    return [DEFAULT_ACTION] * (NSIG + 1)   # index = signal number; 0 unused


@dataclass(slots=True, eq=False)
class Task:
    """One thread.  ``blocked``/``pending`` are PM's bookkeeping; the real mask and
    queue live in the host thread."""

    tid: int
    proc: "Process"
    host_tid: int = 0
    blocked: int = 0
    pending: int = 0              # thread-directed signals held back by ``blocked``
    alive: bool = True
    suspended: Any = None         # the parked sigsuspend Request
    saved_mask: int = 0           # the mask sigsuspend restores


@dataclass(slots=True, eq=False)
class Process:
    """PM's record of one process (MINIX mproc): ids, group, session, signals, state."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    ruid: int = 0
    euid: int = 0
    suid: int = 0
    rgid: int = 0
    egid: int = 0
    sgid: int = 0
    groups: tuple[int, ...] = ()
    state: State = State.RUNNING
    exit_status: int = 0          # the wait status word, once a zombie
    exit_signal: int = SIGCHLD    # sent to the parent at exit (clone's low byte)
    actions: list[SigAction] = field(default_factory=fresh_actions)
    pending: int = 0              # process-directed signals every thread blocks
    tasks: dict[int, Task] = field(default_factory=dict)
    children: dict[int, "Process"] = field(default_factory=dict)
    waiters: list[Any] = field(default_factory=list)   # parked wait4/waitid (wait.Waiter)
    nparked: int = 0              # parked requests of its threads (SLEEPING while > 0)
    command: str = ""             # comm: at most 15 bytes, as Linux
    argv: tuple[bytes, ...] = ()
    start_time: float = field(default_factory=time.time)
    did_exec: bool = False        # setpgid on a child that exec'd: EACCES
    stop_report: int = 0          # an unreported stop's status word (WUNTRACED)
    cont_report: bool = False     # an unreported continue (WCONTINUED)
    stop_signal: int = 0          # the stop signal PM sent the host as SIGSTOP
    timers: dict[int, Any] = field(default_factory=dict)   # POSIX timers, ITIMER_REAL
    next_timer: int = 0           # the next POSIX timer id to try
    host_exiting: bool = False    # a zombie whose host task is not gone yet: not waitable
    # signalfd (issue 14): who sent each pending signal (code, XINIM pid, uid), and
    # whether the VFS wants to hear when the pending set changes (a signalfd exists)
    sig_info: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    sigfd_watch: bool = False
    sigfd_mask: int = 0           # every signal a signalfd of it was made for

    @property
    def leader(self) -> Task:
        return self.tasks[self.pid]

    @property
    def host_pid(self) -> int:
        task = self.tasks.get(self.pid)
        return task.host_tid if task is not None else 0

    def live_tasks(self) -> Iterator[Task]:
        return (t for t in self.tasks.values() if t.alive)

    def park(self) -> None:
        self.nparked += 1
        if self.state is State.RUNNING:
            self.state = State.SLEEPING

    def unpark(self) -> None:
        self.nparked -= 1
        if self.nparked <= 0:
            self.nparked = 0
            if self.state is State.SLEEPING:
                self.state = State.RUNNING


class ProcTable:
    """Every PCB, keyed every way PM looks them up."""

    def __init__(self, pid_max: int = PID_MAX) -> None:
        self.pid_max = pid_max
        self.procs: dict[int, Process] = {}
        self.tasks: dict[int, Task] = {}            # XINIM tid -> task (incl. zombie leaders)
        self.by_host: dict[int, Task] = {}          # host tid -> task
        self.pgroups: dict[int, dict[Process, None]] = {}   # pgid -> members (ordered set)
        self.sessions: dict[int, int] = {}          # sid -> member count
        self._next = p.FIRST_USER_PID
        self._boot()

    def _boot(self) -> None:
        # init leads session and group 1; the servers sit in group/session 0 with the kernel.
        init = Process(p.INIT_PID, 0, p.INIT_PID, p.INIT_PID, command="init")
        self._insert(init, None)
        for pid, name in ((p.VFS_PID, "vfs"), (p.PM_PID, "pm"), (p.MM_PID, "mm")):
            self._insert(Process(pid, 0, 0, 0, command=name), None)

    # --- numbers ---------------------------------------------------------------------

    def in_use(self, n: int) -> bool:
        """A number is taken while a task, a process group or a session uses it."""
        return n in self.tasks or n in self.pgroups or n in self.sessions

    def alloc(self) -> int:
        """The next free number, cycling from FIRST_USER_PID (Linux allocates cyclically)."""
        n = self._next
        span = self.pid_max - p.FIRST_USER_PID
        for _ in range(span):
            if n >= self.pid_max:
                n = p.FIRST_USER_PID
            if not self.in_use(n):
                self._next = n + 1
                return n
            n += 1
        raise SysError(errno.EAGAIN, "process table full")

    # --- membership --------------------------------------------------------------------

    def _insert(self, proc: Process, parent: Process | None, host_tid: int = 0,
                blocked: int = 0) -> Task:
        self.procs[proc.pid] = proc
        task = Task(proc.pid, proc, host_tid, blocked)
        proc.tasks[proc.pid] = task
        self.tasks[proc.pid] = task
        if host_tid:
            self.by_host[host_tid] = task
        self.pgroups.setdefault(proc.pgid, {})[proc] = None
        self.sessions[proc.sid] = self.sessions.get(proc.sid, 0) + 1
        if parent is not None:
            parent.children[proc.pid] = proc
        return task

    def new_process(self, parent: Process, ppid_proc: Process, host_tid: int,
                    blocked: int, exit_signal: int) -> Process:
        """A forked copy of ``parent`` (ids, dispositions; pending cleared), child of
        ``ppid_proc`` (the parent itself, or its parent for CLONE_PARENT)."""
        pid = self.alloc()
        child = Process(
            pid, ppid_proc.pid, parent.pgid, parent.sid,
            parent.ruid, parent.euid, parent.suid, parent.rgid, parent.egid, parent.sgid,
            parent.groups, exit_signal=exit_signal, actions=list(parent.actions),
            command=parent.command, argv=parent.argv, sigfd_watch=parent.sigfd_watch,
            sigfd_mask=parent.sigfd_mask)
        self._insert(child, ppid_proc, host_tid, blocked)
        return child

    def new_thread(self, proc: Process, host_tid: int, blocked: int) -> Task:
        tid = self.alloc()
        task = Task(tid, proc, host_tid, blocked)
        proc.tasks[tid] = task
        self.tasks[tid] = task
        if host_tid:
            self.by_host[host_tid] = task
        return task

    def set_host(self, task: Task, host_tid: int) -> None:
        if task.host_tid and self.by_host.get(task.host_tid) is task:
            del self.by_host[task.host_tid]
        task.host_tid = host_tid
        if host_tid:
            self.by_host[host_tid] = task

    def drop_host(self, task: Task) -> None:
        """Forget the host task (it died); the XINIM task may live on as a zombie."""
        if task.host_tid and self.by_host.get(task.host_tid) is task:
            del self.by_host[task.host_tid]

    def remove_task(self, task: Task) -> None:
        """A non-leader thread is gone: its tid is free again."""
        task.alive = False
        self.drop_host(task)
        task.proc.tasks.pop(task.tid, None)
        if self.tasks.get(task.tid) is task:
            del self.tasks[task.tid]

    def set_pgid(self, proc: Process, pgid: int) -> None:
        self._leave_group(proc)
        proc.pgid = pgid
        self.pgroups.setdefault(pgid, {})[proc] = None

    def set_sid(self, proc: Process, sid: int) -> None:
        self._leave_session(proc)
        proc.sid = sid
        self.sessions[sid] = self.sessions.get(sid, 0) + 1

    def _leave_group(self, proc: Process) -> None:
        members = self.pgroups.get(proc.pgid)
        if members is not None:
            members.pop(proc, None)
            if not members:
                del self.pgroups[proc.pgid]

    def _leave_session(self, proc: Process) -> None:
        count = self.sessions.get(proc.sid, 0) - 1
        if count > 0:
            self.sessions[proc.sid] = count
        else:
            self.sessions.pop(proc.sid, None)

    def forget(self, proc: Process) -> None:
        """Reaped: the PCB and every number it held go away."""
        for task in list(proc.tasks.values()):
            task.alive = False
            self.drop_host(task)
            if self.tasks.get(task.tid) is task:
                del self.tasks[task.tid]
        proc.tasks.clear()
        self._leave_group(proc)
        self._leave_session(proc)
        self.procs.pop(proc.pid, None)
        parent = self.procs.get(proc.ppid)
        if parent is not None and parent.children.get(proc.pid) is proc:
            del parent.children[proc.pid]

    # --- lookups -----------------------------------------------------------------------

    def live_task(self, tid: int) -> Task:
        """The calling task, or ESRCH (unknown, or already exited)."""
        task = self.tasks.get(tid)
        if task is None or not task.alive:
            raise SysError(errno.ESRCH)
        return task

    def group(self, pgid: int) -> list[Process]:
        members = self.pgroups.get(pgid)
        return list(members) if members else []
