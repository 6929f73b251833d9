"""Signals: the default actions as data, permission rules, and generation.

PM decides *whether* a signal may be sent and keeps the bookkeeping (pending,
blocked, dispositions); the host kernel delivers it (``signal_host``), and the
tracer re-injects it into the program.  What PM must do itself is answer the
calls it holds parked (wait4, waitid, sigsuspend), because the tracer keeps a
task stopped until PM replies, and the host cannot deliver to a stopped task.
"""
from __future__ import annotations

import enum
import errno
import signal as _signal
from typing import TYPE_CHECKING

from ..lib import protocol as p
from . import wait
from .proctable import NSIG, SIG_DFL, SIG_IGN, Process, ProcTable, State, Task

if TYPE_CHECKING:
    from .server import PmServer

SIGKILL = int(_signal.SIGKILL)
SIGSTOP = int(_signal.SIGSTOP)
SIGCONT = int(_signal.SIGCONT)
SIGCHLD = int(_signal.SIGCHLD)
SIGHUP = int(_signal.SIGHUP)
SIGTTIN = int(_signal.SIGTTIN)
SIGTTOU = int(_signal.SIGTTOU)

SA_NOCLDSTOP = 0x1
SA_NOCLDWAIT = 0x2
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000


class Act(enum.Enum):
    TERM = "terminate"
    CORE = "core"          # terminate with the core bit (0x80) in the status word
    STOP = "stop"
    CONT = "continue"
    IGN = "ignore"


# signal(7), x86-64: the default action of every signal; 32-64 (real-time) terminate.
DEFAULT_ACTIONS: dict[int, Act] = {
    1: Act.TERM,   # SIGHUP
    2: Act.TERM,   # SIGINT
    3: Act.CORE,   # SIGQUIT
    4: Act.CORE,   # SIGILL
    5: Act.CORE,   # SIGTRAP
    6: Act.CORE,   # SIGABRT
    7: Act.CORE,   # SIGBUS
    8: Act.CORE,   # SIGFPE
    9: Act.TERM,   # SIGKILL
    10: Act.TERM,  # SIGUSR1
    11: Act.CORE,  # SIGSEGV
    12: Act.TERM,  # SIGUSR2
    13: Act.TERM,  # SIGPIPE
    14: Act.TERM,  # SIGALRM
    15: Act.TERM,  # SIGTERM
    16: Act.TERM,  # SIGSTKFLT
    17: Act.IGN,   # SIGCHLD
    18: Act.CONT,  # SIGCONT
    19: Act.STOP,  # SIGSTOP
    20: Act.STOP,  # SIGTSTP
    21: Act.STOP,  # SIGTTIN
    22: Act.STOP,  # SIGTTOU
    23: Act.IGN,   # SIGURG
    24: Act.CORE,  # SIGXCPU
    25: Act.CORE,  # SIGXFSZ
    26: Act.TERM,  # SIGVTALRM
    27: Act.TERM,  # SIGPROF
    28: Act.IGN,   # SIGWINCH
    29: Act.TERM,  # SIGIO
    30: Act.TERM,  # SIGPWR
    31: Act.CORE,  # SIGSYS
    **{sig: Act.TERM for sig in range(32, NSIG + 1)},
}


def sigmask(sig: int) -> int:
    return 1 << (sig - 1)


ALL_SIGNALS = (1 << NSIG) - 1
UNBLOCKABLE = sigmask(SIGKILL) | sigmask(SIGSTOP)
STOP_MASK = sum(sigmask(s) for s, a in DEFAULT_ACTIONS.items() if a is Act.STOP)


def valid(sig: int) -> bool:
    return 1 <= sig <= NSIG


def is_caught(proc: Process, sig: int) -> bool:
    return proc.actions[sig].handler not in (SIG_DFL, SIG_IGN)


def is_ignored(proc: Process, sig: int) -> bool:
    """Discarded at generation (when not blocked), as Linux ``sig_ignored``."""
    if sig in (SIGKILL, SIGSTOP):
        return False
    handler = proc.actions[sig].handler
    return handler == SIG_IGN or (handler == SIG_DFL and DEFAULT_ACTIONS[sig] is Act.IGN)


def is_fatal(proc: Process, sig: int) -> bool:
    """Would end the process: uncaught terminate/core signals and SIGKILL."""
    return sig == SIGKILL or (proc.actions[sig].handler == SIG_DFL
                              and DEFAULT_ACTIONS[sig] in (Act.TERM, Act.CORE))


def may_signal(sender_pid: int, sender: Process | None, target: Process, sig: int) -> int:
    """0 when allowed, else the errno (Linux ``kill_ok_by_cred`` plus XINIM's rule
    that user processes may not signal init or the servers)."""
    if sender_pid < p.FIRST_USER_PID:       # the kernel, init, the servers
        return 0
    if target.pid < p.FIRST_USER_PID:
        return errno.EPERM
    assert sender is not None
    if sender.euid == 0:
        return 0
    if sig == SIGCONT and sender.sid == target.sid:
        return 0
    ids = (target.ruid, target.suid)
    if sender.euid in ids or sender.ruid in ids:
        return 0
    return errno.EPERM


SI_USER, SI_KERNEL, SI_TIMER, SI_TKILL = 0, 0x80, -2, -6
NO_INFO = (SI_KERNEL, 0, 0)


def send(pm: "PmServer", proc: Process, sig: int, task: Task | None = None,
         info: tuple[int, int, int] = NO_INFO, host_info: bytes = b"") -> None:
    """Generate ``sig`` for ``proc`` (or only its thread ``task``): bookkeeping,
    host delivery, and answering the parked calls it interrupts.  ``info`` (si_code,
    sender's pid, its uid) is kept while the signal is pending, for signalfd;
    ``host_info``, a whole siginfo_t (a timer's), goes with the host's signal."""
    if proc.state is State.ZOMBIE or sig == 0 or proc.pid < p.FIRST_USER_PID:
        return  # init and the servers have no host task and cannot be killed
    before = all_pending(proc) if proc.sigfd_watch else 0
    try:
        _send(pm, proc, sig, task, info, host_info)
    finally:
        if proc.sigfd_watch and all_pending(proc) != before:
            pending_changed(pm, proc)


def all_pending(proc: Process) -> int:
    """Every signal pending for ``proc`` or one of its threads."""
    pending = proc.pending
    for t in proc.tasks.values():
        pending |= t.pending
    return pending


def pending_changed(pm: "PmServer", proc: Process) -> None:
    """Tell the VFS (signalfd readiness) when a process with a signalfd has a new
    pending set; a notice, not awaited."""
    if not proc.sigfd_watch:
        return
    tell = getattr(pm.notify, "sig_pending", None)
    if tell is not None:
        tell(proc.pid, all_pending(proc))


def _send(pm: "PmServer", proc: Process, sig: int, task: Task | None,
          info: tuple[int, int, int], host_info: bytes) -> None:
    bit = sigmask(sig)
    # SIGCONT discards pending stop signals and a stop signal a pending SIGCONT (POSIX).
    if sig == SIGCONT:
        _discard(proc, STOP_MASK)
    elif bit & STOP_MASK:
        _discard(proc, sigmask(SIGCONT))
    targets = [task] if task is not None else list(proc.live_tasks())
    open_tasks = [t for t in targets if not t.blocked & bit]
    host_sig = sig
    if not open_tasks:
        # every candidate blocks it: it stays pending (sigpending shows it)
        if not (proc.pending | (task.pending if task is not None else 0)) & bit:
            proc.sig_info[sig] = info    # a standard signal already pending keeps its first
        if task is not None:
            task.pending |= bit
        else:
            proc.pending |= bit
        if proc.sigfd_mask & bit:
            # PM alone holds it: a signalfd read takes it, or the host gets it when a
            # mask opens (release_pending) -- the host never keeps a copy to deliver late
            return
    elif is_ignored(proc, sig):
        return  # discarded; the host would discard it too, so don't even ask it
    elif bit & STOP_MASK and proc.actions[sig].handler == SIG_DFL:
        if sig != SIGSTOP and pgrp_orphaned(pm.table, proc.pgid):
            return  # Linux: an orphaned group's members ignore SIGTSTP/SIGTTIN/SIGTTOU
        # The host would apply *its* orphaned-group rule to its own process groups,
        # which are not XINIM's: it gets SIGSTOP, and PM reports the stop as ``sig``.
        proc.stop_signal = sig
        host_sig, host_info = SIGSTOP, b""
    _deliver_host(pm, proc, task, host_sig, host_info)
    if open_tasks:
        _interrupt(pm, proc, open_tasks, sig)


def pgrp_orphaned(table: ProcTable, pgid: int, leaving: Process | None = None) -> bool:
    """POSIX orphaned process group (Linux ``will_become_orphaned_pgrp``): no member
    but ``leaving`` has a parent outside the group in its session (init does not
    count: it is nobody's job-control parent)."""
    for member in table.group(pgid):
        if member is leaving or member.state is State.ZOMBIE:
            continue
        parent = table.procs.get(member.ppid)
        if (parent is not None and parent is not leaving and parent.pid != p.INIT_PID
                and parent.pgid != pgid and parent.sid == member.sid):
            return False
    return True


def _discard(proc: Process, mask: int) -> None:
    proc.pending &= ~mask
    for t in proc.tasks.values():
        t.pending &= ~mask


def _deliver_host(pm: "PmServer", proc: Process, task: Task | None, sig: int,
                  info: bytes = b"") -> None:
    if task is not None:
        if task.host_tid:
            pm.deliver_to_thread(proc.host_pid, task.host_tid, sig, info)
    elif proc.host_pid:
        pm.deliver_to_process(proc.host_pid, sig, info)


def _interrupt(pm: "PmServer", proc: Process, tasks: list[Task], sig: int) -> None:
    """Answer parked calls the signal interrupts: every one for a fatal signal
    (the host must be let to kill the process), the first task's for a caught one."""
    fatal = is_fatal(proc, sig)
    handled = fatal     # a handler runs or the process dies: sigsuspend ends
    if fatal:
        err = errno.EINTR
    elif is_caught(proc, sig):
        handled = True
        restart = proc.actions[sig].flags & SA_RESTART
        err = pm.restart_errno if restart else errno.EINTR
    elif (DEFAULT_ACTIONS[sig] is Act.STOP and proc.actions[sig].handler == SIG_DFL
          and pm.restart_errno != errno.EINTR):
        err = pm.restart_errno  # the task must run to stop; the kernel restarts the call
    else:
        return  # continue/ignore (and stop while nobody restarts): parked calls carry on
    hit = False
    for task in (list(proc.live_tasks()) if fatal else tasks):
        woke = handled and wake_suspended(task)
        woke = wait.interrupt(proc, task, err) or woke
        hit = hit or woke
        if hit and not fatal:
            break
    if fatal or not hit:
        # calls blocked elsewhere (a pipe read in the VFS, a sleep in the kernel)
        # too -- not asked of the VFS and NET when the kernel's host half knows
        # no call of the process is held anywhere (a SIGCHLD to a shell that
        # its wait just answered: the common case)
        if pm.may_be_parked(proc.pid):
            pm.notify.interrupt(proc.pid, err)
        pm.interrupt_kernel_waits(proc.pid, err)


def wake_suspended(task: Task) -> bool:
    """A parked sigsuspend ends: EINTR, and the mask it replaced comes back."""
    req = task.suspended
    if req is None:
        return False
    task.suspended = None
    task.blocked = task.saved_mask
    task.proc.unpark()
    req.fail(errno.EINTR)
    return True


def deliverable_pending(task: Task) -> int:
    """Pending signals ``task``'s mask no longer blocks."""
    return (task.pending | task.proc.pending) & ~task.blocked


def release_pending(task: Task, pm: "PmServer | None" = None) -> int:
    """After the mask opened: the host delivers what was pending; forget it here."""
    ready = deliverable_pending(task)
    if ready:
        task.pending &= ~ready
        task.proc.pending &= ~ready
        if pm is not None and task.proc.sigfd_watch:
            for sig in range(1, NSIG + 1):       # what PM held back goes to the host now
                if ready & task.proc.sigfd_mask & sigmask(sig):
                    task.proc.sig_info.pop(sig, None)
                    _deliver_host(pm, task.proc, task, sig)
            pending_changed(pm, task.proc)
    return ready


def sigfd_take(task: Task, mask: int, limit: int) -> list[tuple[int, int, int, int]]:
    """signalfd's read: up to ``limit`` pending signals in ``mask``, lowest first, the
    thread's own before the process's (Linux dequeue_signal); (signo, code, pid, uid)."""
    proc = task.proc
    out = []
    while len(out) < limit:
        own = task.pending & mask
        avail = own or proc.pending & mask
        if not avail:
            break
        low = avail & -avail
        sig = low.bit_length()
        if own:
            task.pending &= ~low
        else:
            proc.pending &= ~low
        code, pid, uid = proc.sig_info.pop(sig, NO_INFO)
        out.append((sig, code, pid, uid))
    return out
