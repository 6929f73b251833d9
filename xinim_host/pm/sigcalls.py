"""Signal calls: kill, tkill, tgkill, sigaction, signal, rt_sigprocmask,
sigpending, sigsuspend."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..lib import protocol as p
from ..lib.errors import SysError
from . import signals
from .proctable import SIG_IGN, Process, SigAction
from .signals import UNBLOCKABLE, may_signal, send, valid

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import PmServer


def _sender(pm: "PmServer", req: "Request") -> Process | None:
    """The signalling process; None for the kernel (which has no PCB)."""
    if req.caller in (p.KERNEL_PID, p.VFS_PID):   # the VFS: a lease-break signal
        return None
    return pm.table.live_task(req.caller).proc


def _signal_one(pm: "PmServer", caller: int, sender: Process | None, target: Process,
                sig: int, task: Any = None) -> int:
    """Linux order: the target exists (the caller checked), the signal is valid,
    the caller may signal it; 0 only checks."""
    if not (sig == 0 or valid(sig)):
        return errno.EINVAL
    err = may_signal(caller, sender, target, sig)
    if err == 0 and sig:
        if sender is None:
            info = signals.NO_INFO
        else:
            info = (signals.SI_TKILL if task is not None else signals.SI_USER, caller,
                    sender.ruid)
        send(pm, target, sig, task, info)
    return err


def do_kill(pm: "PmServer", req: "Request") -> int:
    body = req.body
    sender = _sender(pm, req)
    pid, sig = body.pid, body.sig
    table = pm.table
    if pid > 0:
        target = table.procs.get(pid)
        if target is None:
            raise SysError(errno.ESRCH)
        err = _signal_one(pm, req.caller, sender, target, sig)
        if err:
            raise SysError(err)
        return 0
    if pid == -1:
        return _kill_all(pm, req.caller, sender, sig)
    if pid == 0:
        if sender is None:
            raise SysError(errno.ESRCH)     # the kernel has no process group
        pgid = sender.pgid
    elif pid == -(1 << 31):
        raise SysError(errno.ESRCH)
    else:
        pgid = -pid
    # a group: success if any member got it, else the last error (Linux __kill_pgrp_info)
    err, ok = errno.ESRCH, False
    for target in table.group(pgid):
        err = _signal_one(pm, req.caller, sender, target, sig)
        ok = ok or not err
    if ok:
        return 0
    raise SysError(err)


def _kill_all(pm: "PmServer", caller: int, sender: Process | None, sig: int) -> int:
    """kill(-1): everyone the caller may signal except init, the servers and itself;
    EPERM answers are not errors here, and nobody at all is ESRCH (Linux)."""
    count, result = 0, 0
    for target in list(pm.table.procs.values()):
        if target.pid < p.FIRST_USER_PID or target is sender:
            continue
        count += 1
        err = _signal_one(pm, caller, sender, target, sig)
        if err != errno.EPERM:
            result = err
    if not count:
        raise SysError(errno.ESRCH)
    if result:
        raise SysError(result)
    return 0


def do_tkill(pm: "PmServer", req: "Request") -> int:
    body = req.body
    return _thread_kill(pm, req, body.tid, body.sig, None)


def do_tgkill(pm: "PmServer", req: "Request") -> int:
    body = req.body
    if body.tgid <= 0:
        raise SysError(errno.EINVAL)
    return _thread_kill(pm, req, body.tid, body.sig, body.tgid)


def _thread_kill(pm: "PmServer", req: "Request", tid: int, sig: int, tgid: int | None) -> int:
    if tid <= 0:
        raise SysError(errno.EINVAL)
    sender = _sender(pm, req)
    task = pm.table.tasks.get(tid)
    if task is None or not task.alive or (tgid is not None and task.proc.pid != tgid):
        raise SysError(errno.ESRCH)
    err = _signal_one(pm, req.caller, sender, task.proc, sig, task)
    if err:
        raise SysError(err)
    return 0


# --- dispositions -------------------------------------------------------------------------


def _set_action(proc: Process, sig: int, action: SigAction) -> SigAction:
    old = proc.actions[sig]
    # SIGKILL/SIGSTOP can never be blocked during a handler either
    if action.mask & UNBLOCKABLE:
        action = SigAction(action.handler, action.flags, action.restorer,
                           action.mask & ~UNBLOCKABLE)
    proc.actions[sig] = action
    if signals.is_ignored(proc, sig):
        # a pending signal that becomes ignored is discarded (POSIX)
        bit = signals.sigmask(sig)
        proc.pending &= ~bit
        for t in proc.tasks.values():
            t.pending &= ~bit
    return old


def _old_reply(old: SigAction) -> p.ProcSigactionReply:
    return p.ProcSigactionReply(handler=old.handler, flags=old.flags, restorer=old.restorer,
                                mask=old.mask)


def do_sigaction(pm: "PmServer", req: "Request") -> p.Payload:
    body = req.body
    proc = pm.table.live_task(req.caller).proc
    sig = body.sig
    if not valid(sig) or (body.set and sig in (signals.SIGKILL, signals.SIGSTOP)):
        raise SysError(errno.EINVAL)
    if not body.set:
        return _old_reply(proc.actions[sig])
    old = _set_action(proc, sig, SigAction(body.handler, body.flags, body.restorer, body.mask))
    signals.pending_changed(pm, proc)
    return _old_reply(old)


def do_signal(pm: "PmServer", req: "Request") -> p.Payload:
    """The old signal(2): one-shot, not masked during the handler (Linux sys_signal)."""
    body = req.body
    proc = pm.table.live_task(req.caller).proc
    sig = body.sig
    if not valid(sig) or sig in (signals.SIGKILL, signals.SIGSTOP):
        raise SysError(errno.EINVAL)
    flags = 0 if body.handler in (0, SIG_IGN) else signals.SA_RESETHAND | signals.SA_NODEFER
    return _old_reply(_set_action(proc, sig, SigAction(body.handler, flags)))


# --- masks ----------------------------------------------------------------------------------


def do_sigprocmask(pm: "PmServer", req: "Request") -> p.Payload:
    body = req.body
    task = pm.table.live_task(req.caller)
    old = task.blocked
    if body.set:
        mask = body.mask & signals.ALL_SIGNALS
        how = body.how
        if how == p.SIG_BLOCK:
            new = old | mask
        elif how == p.SIG_UNBLOCK:
            new = old & ~mask
        elif how == p.SIG_SETMASK:
            new = mask
        else:
            raise SysError(errno.EINVAL)
        task.blocked = new & ~UNBLOCKABLE
        if old & ~task.blocked:             # something was unblocked: the host delivers it
            signals.release_pending(task, pm)
    return p.ProcMaskReply(mask=old)


def do_sigpending(pm: "PmServer", req: "Request") -> p.Payload:
    task = pm.table.live_task(req.caller)
    return p.ProcMaskReply(mask=(task.pending | task.proc.pending) & task.blocked)


def do_sigsuspend(pm: "PmServer", req: "Request") -> None:
    """Park with the given mask until a signal is delivered (answered EINTR by
    :func:`signals.wake_suspended`)."""
    task = pm.table.live_task(req.caller)
    if task.suspended is not None:
        raise SysError(errno.EBUSY)         # one task cannot be in two calls
    task.saved_mask = task.blocked
    task.blocked = req.body.mask & signals.ALL_SIGNALS & ~UNBLOCKABLE
    if signals.release_pending(task, pm):
        task.blocked = task.saved_mask      # something was waiting already
        raise SysError(errno.EINTR)
    task.suspended = req
    task.proc.park()


# --- signalfd ---------------------------------------------------------------------------


def do_sigfd_take(pm: "PmServer", req: "Request") -> p.Payload:
    """A signalfd read in the VFS takes the caller's pending signals (VFS only)."""
    if req.msg.m_source != p.VFS_PID:
        raise SysError(errno.EPERM)
    body = req.body
    task = pm.table.live_task(body.pid)
    proc = task.proc
    proc.sigfd_watch = True
    if body.max == 0:                       # a signalfd made or given a mask: hold these back
        proc.sigfd_mask |= body.mask & ~UNBLOCKABLE
    limit = max(0, min(body.max, p.DATA_MAX // p.SIGFD_RECORD.size))
    taken = signals.sigfd_take(task, body.mask, limit)
    return p.ProcSigfdReply(result=len(taken), pending=signals.all_pending(proc),
                            data=b"".join(p.SIGFD_RECORD.pack(*t) for t in taken))


def do_tty_stop(pm: "PmServer", req: "Request") -> int:
    """A background job touched its terminal: stop its group (see ``ProcTtyStop``)."""
    if req.msg.m_source != p.VFS_PID:
        raise SysError(errno.EPERM)
    sig = req.body.sig
    if sig not in (signals.SIGTTIN, signals.SIGTTOU):
        raise SysError(errno.EINVAL)
    task = pm.table.live_task(req.body.pid)
    proc = task.proc
    if task.blocked & signals.sigmask(sig) or proc.actions[sig].handler == SIG_IGN:
        return 1
    if signals.pgrp_orphaned(pm.table, proc.pgid):
        raise SysError(errno.EIO)
    for member in pm.table.group(proc.pgid):
        send(pm, member, sig, info=(signals.SI_KERNEL, 0, 0))
    return 0
