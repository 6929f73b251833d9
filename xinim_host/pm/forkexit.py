"""fork/clone events, exit, exit_group, and the kernel's host-task reports.

The host makes the task; the kernel then reports it (``ProcFork``) and PM gives
it a XINIM pid.  Exits come two ways: the exit syscalls (the kernel asks before
the host runs them) and ``ProcTaskExited`` (the tracer saw the host task die,
e.g. by a signal).  Whichever comes first makes the zombie; the other is a no-op.
"""
from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING, Any

from ..lib import protocol as p
from ..lib.errors import SysError
from . import nodes, signals, wait
from .notify import combine
from .proctable import SIG_IGN, Process, State, Task

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import PmServer

log = logging.getLogger(__name__)

SIGKILL_STATUS = 9      # a wait status: killed by SIGKILL

CLONE_VM = 0x00000100
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000


def kernel_only(req: "Request") -> None:
    if not p.is_kernel(req.msg.m_source):
        raise SysError(errno.EPERM)


# --- fork ------------------------------------------------------------------------------


def do_fork(pm: "PmServer", req: "Request") -> Any:
    kernel_only(req)
    peer = nodes.check_fork(pm, req)      # a joined node: only from init or its own
    body = req.body
    parent_task = pm.table.live_task(body.parent_pid)
    parent = parent_task.proc
    host = body.child_host_pid
    if host and host in pm.table.by_host:
        # the host reused a tid whose death we never heard of: that task is gone
        log.warning("host tid %d reported again by a fork: its old task is dropped", host)
        task_gone(pm, pm.table.by_host[host], 9)     # as if SIGKILLed
    flags = body.flags
    if flags & CLONE_THREAD:
        tid = pm.table.new_thread(parent, host, parent_task.blocked).tid
        nodes.adopt(pm, peer, tid, None, False)
        return _ids_reply(parent, tid)
    if flags & CLONE_PARENT:
        if parent.pid == p.INIT_PID:
            raise SysError(errno.EINVAL)
        adopter = pm.table.procs.get(parent.ppid) or pm.table.procs[p.INIT_PID]
        exit_signal = parent.exit_signal
    else:
        adopter = parent
        exit_signal = (flags & 0xFF) if flags else signals.SIGCHLD  # 0 flags: a plain fork
    child = pm.table.new_process(parent, adopter, host, parent_task.blocked, exit_signal)
    if adopter.pid == p.INIT_PID:
        wait.wake(pm, adopter)      # init may be parked waiting for its first child
    done = pm.notify.fork(parent.pid, child.pid, bool(flags & CLONE_VM))
    done = combine(done, nodes.adopt(pm, peer, child.pid, child, parent.pid == p.INIT_PID))
    if isinstance(done, int):
        return _forked(pm, child, done)
    return _fork_later(pm, child, done)


async def _fork_later(pm: "PmServer", child: Process, done: Any) -> p.ProcForkReply:
    return _forked(pm, child, await done)


def _forked(pm: "PmServer", child: Process, err: int) -> p.ProcForkReply:
    if err:
        # VFS/MM could not copy: no child (the kernel kills the host task it made)
        pm.table.forget(child)
        raise SysError(err)
    return _ids_reply(child, child.pid)


def _ids_reply(proc: Process, tid: int) -> p.ProcForkReply:
    """The new task's id with its process's ids: the kernel's copy starts from PM's."""
    return p.ProcForkReply(result=tid, uid=proc.ruid, euid=proc.euid, gid=proc.rgid,
                           egid=proc.egid)


# --- exit --------------------------------------------------------------------------------


def do_exit(pm: "PmServer", req: "Request") -> int:
    """exit(2): the calling thread ends; the last one takes the process with it."""
    task = pm.table.live_task(req.caller)
    thread_exit(pm, task, req.body.status)
    return 0


def do_exit_group(pm: "PmServer", req: "Request") -> int:
    task = pm.table.live_task(req.caller)
    exit_process(pm, task.proc, req.body.status)
    return 0


def thread_exit(pm: "PmServer", task: Task, status: int) -> None:
    proc = task.proc
    if not any(t is not task for t in proc.live_tasks()):
        if not proc.leader.alive and status & 0x7F == 0:
            status = proc.exit_status   # the leader exited first: its code is the process's
        exit_process(pm, proc, status)
        return
    _end_parked(task)
    if task.tid == proc.pid:
        task.alive = False              # the leader lingers (its tid is the pid)
        proc.exit_status = status
    else:
        pm.table.remove_task(task)


def _end_parked(task: Task) -> None:
    signals.wake_suspended(task)
    wait.interrupt(task.proc, task, errno.EINTR)


def exit_process(pm: "PmServer", proc: Process, status: int) -> None:
    """The process becomes a zombie with ``status`` (a wait status word)."""
    if proc.state is State.ZOMBIE:
        return
    table = pm.table
    for task in list(proc.tasks.values()):
        _end_parked(task)
        if task.tid == proc.pid:
            task.alive = False
            task.pending = 0
        else:
            table.remove_task(task)
    wait.drop_all(proc, errno.EINTR)
    proc.state = State.ZOMBIE
    proc.nparked = 0
    proc.exit_status = status
    proc.pending = 0
    proc.stop_report = 0
    proc.cont_report = False
    pm.timers.drop(proc)
    _hangup_orphaned_groups(pm, proc)
    # orphans go to init, which reaps them
    init = table.procs[p.INIT_PID]
    adopted = bool(proc.children)
    for child in proc.children.values():
        child.ppid = p.INIT_PID
        init.children[child.pid] = child
    proc.children.clear()
    pm.notify.exit(proc.pid)
    if pm.host_exits and _host_alive(pm, proc):
        # exit_group reached PM before the host ran it: the parent hears of the
        # zombie once the host task is gone (task_gone), so its wait finds a host
        # zombie to reap and a dead process, as on Linux
        proc.host_exiting = True
    else:
        parent = table.procs.get(proc.ppid)
        if parent is not None:
            _tell_parent(pm, proc, parent)
    if adopted:
        wait.wake(pm, init)


def _host_alive(pm: "PmServer", proc: Process) -> bool:
    by_host = pm.table.by_host
    return any(t.host_tid and by_host.get(t.host_tid) is t for t in proc.tasks.values())


def _hangup_orphaned_groups(pm: "PmServer", proc: Process) -> None:
    """POSIX: a process group that this exit orphans and that has a stopped member
    gets SIGHUP then SIGCONT (so stopped jobs of a departed shell do not hang)."""
    table = pm.table
    parent = table.procs.get(proc.ppid)
    groups = []
    if parent is not None:
        groups.append((parent, proc))
    groups += [(proc, child) for child in proc.children.values()]
    done: set[int] = set()
    for outside, member in groups:
        pgid = member.pgid
        if (pgid not in done and outside.pgid != pgid and outside.sid == member.sid
                and signals.pgrp_orphaned(table, pgid, proc)
                and any(m.state is State.STOPPED for m in table.group(pgid))):
            done.add(pgid)
            for target in table.group(pgid):
                signals.send(pm, target, signals.SIGHUP)
                signals.send(pm, target, signals.SIGCONT)


def _tell_parent(pm: "PmServer", proc: Process, parent: Process) -> None:
    sig = proc.exit_signal
    if sig == signals.SIGCHLD:
        act = parent.actions[signals.SIGCHLD]
        if act.handler == SIG_IGN or act.flags & signals.SA_NOCLDWAIT:
            pm.table.forget(proc)       # auto-reaped: no zombie (POSIX)
            if act.handler == SIG_IGN:
                sig = 0
    # wake waiters before the signal, so the SIGCHLD does not interrupt the wait it ends
    wait.wake(pm, parent)
    if sig:
        signals.send(pm, parent, sig)


# --- the kernel's reports of host tasks ---------------------------------------------------


def do_task_exited(pm: "PmServer", req: "Request") -> int:
    kernel_only(req)
    task = pm.table.by_host.get(req.body.host_tid)
    if task is None:
        raise SysError(errno.ESRCH)
    nodes.check_task(pm, req, task)
    task_gone(pm, task, req.body.status)
    return 0


def task_gone(pm: "PmServer", task: Task, status: int) -> None:
    pm.table.drop_host(task)
    proc = task.proc
    if task.alive and proc.state is not State.ZOMBIE:
        thread_exit(pm, task, status)
    elif proc.host_exiting and not _host_alive(pm, proc):
        proc.host_exiting = False
        parent = pm.table.procs.get(proc.ppid)
        if parent is not None:
            _tell_parent(pm, proc, parent)


def do_task_stopped(pm: "PmServer", req: "Request") -> int:
    kernel_only(req)
    proc = _host_proc(pm, req, req.body.host_tid)
    if proc.state in (State.ZOMBIE, State.STOPPED):
        return 0    # a group stop is reported once per thread; the first one counts
    proc.state = State.STOPPED
    # the signal PM stopped it with (the host got SIGSTOP for it), else the host's
    sig = proc.stop_signal or req.body.sig
    proc.stop_signal = 0
    proc.stop_report = ((sig & 0xFF) << 8) | 0x7F
    proc.cont_report = False
    _child_changed(pm, proc)
    return 0


def do_task_continued(pm: "PmServer", req: "Request") -> int:
    kernel_only(req)
    proc = _host_proc(pm, req, req.body.host_tid)
    if proc.state is not State.STOPPED:
        return 0
    proc.state = State.SLEEPING if proc.nparked else State.RUNNING
    proc.stop_report = 0
    proc.cont_report = True
    _child_changed(pm, proc)
    return 0


def _host_proc(pm: "PmServer", req: "Request", host_tid: int) -> Process:
    task = pm.table.by_host.get(host_tid)
    if task is None:
        raise SysError(errno.ESRCH)
    nodes.check_task(pm, req, task)
    return task.proc


def _child_changed(pm: "PmServer", proc: Process) -> None:
    """A stop or continue: the parent's WUNTRACED/WCONTINUED waiters, and SIGCHLD
    unless the parent asked for SA_NOCLDSTOP."""
    parent = pm.table.procs.get(proc.ppid)
    if parent is None:
        return
    wait.wake(pm, parent)
    if not parent.actions[signals.SIGCHLD].flags & signals.SA_NOCLDSTOP:
        # The host kernel notifies the host parent too (CLD_STOPPED/CLD_CONTINUED),
        # but the tracer may hear of the stop after the parent's handler asked
        # waitpid(WNOHANG): this SIGCHLD, sent once PM knows, makes it ask again.
        signals.send(pm, parent, signals.SIGCHLD, info=(signals.SI_KERNEL, proc.pid, 0))


def node_gone(pm: "PmServer", node: int) -> int:
    """Node ``node`` left: its tasks die as if SIGKILLed (their host tasks are
    forgotten, never signalled).  Returns how many processes ended."""
    owners = pm.lattice.owners
    mine = [pid for pid, owner in owners.items() if owner == node]
    ended = 0
    for pid in mine:
        del owners[pid]
        task = pm.table.tasks.get(pid)
        if task is None or not task.alive:
            continue
        pm.table.drop_host(task)
        task_gone(pm, task, SIGKILL_STATUS)
        ended += 1
    if ended:
        log.info("node %d left: %d of its tasks ended", node, ended)
    return ended
