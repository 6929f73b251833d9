"""wait4 / waitid: pick a child that changed state, or park until one does.

A call that cannot be answered yet is parked as a :class:`Waiter` on the caller's
process (MINIX's SUSPEND): the handler returns ``None`` and the server keeps
serving.  Whenever a child of that process exits, stops or continues, or the
process gains or loses children, :func:`wake` re-checks its waiters.

Init (PID 1) is the reaper of orphans and has none at boot, so its wait without
WNOHANG parks even when it has no children at all (instead of ECHILD): it is
answered when it first gets a child (a fork, or an orphan handed to it).
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..lib import protocol as p
from ..lib.errors import SysError
from .proctable import SIGCHLD, Process, State, Task

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import PmServer

WAIT4_OPTIONS = p.WNOHANG | p.WUNTRACED | p.WCONTINUED | p.WNOTHREAD | p.WALL | p.WCLONE
WAITID_OPTIONS = (p.WNOHANG | p.WNOWAIT | p.WEXITED | p.WSTOPPED | p.WCONTINUED
                  | p.WNOTHREAD | p.WALL | p.WCLONE)
INT_MIN = -(1 << 31)


@dataclass(slots=True, eq=False)
class Waiter:
    """A parked wait4/waitid: what it waits for and how it answers."""

    req: "Request"
    task: Task              # the waiting thread (its mask decides signal interruption)
    pid: int | None         # only this child
    pgid: int | None        # only children of this process group
    options: int            # always includes WEXITED for wait4
    waitid: bool


def wait4_waiter(req: "Request", task: Task, pid: int, options: int) -> Waiter:
    if options & ~WAIT4_OPTIONS:
        raise SysError(errno.EINVAL)
    if pid == INT_MIN:      # -INT_MIN does not exist: Linux answers ESRCH
        raise SysError(errno.ESRCH)
    options |= p.WEXITED
    if pid > 0:
        return Waiter(req, task, pid, None, options, False)
    if pid == -1:
        return Waiter(req, task, None, None, options, False)
    # 0: the caller's group now (not when a child changes); < -1: group -pid
    return Waiter(req, task, None, task.proc.pgid if pid == 0 else -pid, options, False)


def waitid_waiter(req: "Request", task: Task, idtype: int, id_: int, options: int) -> Waiter:
    if options & ~WAITID_OPTIONS or not options & (p.WEXITED | p.WSTOPPED | p.WCONTINUED):
        raise SysError(errno.EINVAL)
    if idtype == p.P_ALL:
        return Waiter(req, task, None, None, options, True)
    if idtype == p.P_PID and id_ > 0:
        return Waiter(req, task, id_, None, options, True)
    if idtype == p.P_PGID and id_ >= 0:
        return Waiter(req, task, None, id_ or task.proc.pgid, options, True)
    raise SysError(errno.EINVAL)


def start(pm: "PmServer", w: Waiter) -> Any:
    """Answer at once, or park (return None)."""
    proc = w.task.proc
    answer = check(pm, proc, w)
    if answer is None:
        proc.waiters.append(w)
        proc.park()
        return None
    if proc.waiters:        # a reap may leave other waiters with nothing to wait for
        wake(pm, proc)
    return answer


def check(pm: "PmServer", proc: Process, w: Waiter) -> Any:
    """The answer for ``w`` now, or None to keep waiting.  Raises ECHILD."""
    found = False
    opts = w.options
    for child in proc.children.values():
        if (w.pid is not None and child.pid != w.pid) or \
                (w.pgid is not None and child.pgid != w.pgid):
            continue
        found = True
        if child.state is State.ZOMBIE:
            if opts & p.WEXITED and not child.host_exiting:
                answer = _answer(w, child, child.exit_status)
                if not opts & p.WNOWAIT:
                    pm.table.forget(child)    # reaped: the PCB and its numbers go
                return answer
        elif child.stop_report and opts & p.WSTOPPED:
            status = child.stop_report
            if not opts & p.WNOWAIT:
                child.stop_report = 0
            return _answer(w, child, status)
        elif child.cont_report and opts & p.WCONTINUED:
            if not opts & p.WNOWAIT:
                child.cont_report = False
            return _answer(w, child, 0xFFFF)
    if not found and (proc.pid != p.INIT_PID or opts & p.WNOHANG):
        raise SysError(errno.ECHILD)
    if opts & p.WNOHANG:
        return p.ProcWaitidReply() if w.waitid else 0
    return None


def _answer(w: Waiter, child: Process, status: int) -> p.Payload:
    # the host pid lets the kernel reap the host zombie; nobody else may see it
    host = child.host_pid if p.is_kernel(w.req.msg.m_source) else 0
    if not w.waitid:
        return p.ProcWaitReply(result=child.pid, status=status, host_pid=host)
    code, value = siginfo_of(status)
    return p.ProcWaitidReply(pid=child.pid, uid=child.ruid, signo=SIGCHLD, code=code,
                             status=value, host_pid=host)


def siginfo_of(status: int) -> tuple[int, int]:
    """(si_code, si_status) for a wait status word."""
    if status == 0xFFFF:
        return p.CLD_CONTINUED, 18          # SIGCONT
    if status & 0xFF == 0x7F:
        return p.CLD_STOPPED, (status >> 8) & 0xFF
    sig = status & 0x7F
    if sig == 0:
        return p.CLD_EXITED, (status >> 8) & 0xFF
    return (p.CLD_DUMPED if status & 0x80 else p.CLD_KILLED), sig


def wake(pm: "PmServer", proc: Process) -> None:
    """Something changed among ``proc``'s children: answer the waiters that can be."""
    if not proc.waiters:
        return
    for w in list(proc.waiters):
        try:
            answer = check(pm, proc, w)
        except SysError as exc:
            _unpark(proc, w)
            w.req.fail(exc.errno)
            continue
        if answer is not None:
            _unpark(proc, w)
            w.req.reply(answer)


def interrupt(proc: Process, task: Task, err: int) -> bool:
    """A signal for ``task`` ends its parked waits with ``err``."""
    hit = False
    for w in list(proc.waiters):
        if w.task is task:
            _unpark(proc, w)
            w.req.fail(err)
            hit = True
    return hit


def drop_all(proc: Process, err: int) -> None:
    for w in list(proc.waiters):
        _unpark(proc, w)
        w.req.fail(err)


def _unpark(proc: Process, w: Waiter) -> None:
    proc.waiters.remove(w)
    proc.unpark()
