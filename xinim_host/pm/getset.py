"""Identity calls (MINIX ``pm/getset.c``): pids, process groups, sessions, uids
and gids, supplementary groups.  All answer XINIM ids."""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from ..lib import protocol as p
from ..lib.errors import SysError
from .notify import Completion
from .proctable import Process

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import PmServer

NGROUPS_MAX = p.DATA_MAX // 4      # what one message carries (Linux allows 65536)


# --- pids: the hot path, so each is one lookup --------------------------------------------


def do_getpid(pm: "PmServer", req: "Request") -> int:
    return pm.table.live_task(req.caller).proc.pid


def do_getppid(pm: "PmServer", req: "Request") -> int:
    return pm.table.live_task(req.caller).proc.ppid


def do_gettid(pm: "PmServer", req: "Request") -> int:
    return pm.table.live_task(req.caller).tid


def do_getpgrp(pm: "PmServer", req: "Request") -> int:
    return pm.table.live_task(req.caller).proc.pgid


def _proc_arg(pm: "PmServer", req: "Request", pid: int) -> Process:
    """``pid`` or, for 0, the caller's process; ESRCH if there is none."""
    if pid == 0:
        return pm.table.live_task(req.caller).proc
    proc = pm.table.procs.get(pid)
    if proc is None:
        raise SysError(errno.ESRCH)
    return proc


def do_getpgid(pm: "PmServer", req: "Request") -> int:
    return _proc_arg(pm, req, req.body.pid).pgid


def do_getsid(pm: "PmServer", req: "Request") -> int:
    return _proc_arg(pm, req, req.body.pid).sid


# --- process groups and sessions ------------------------------------------------------------


def do_setpgid(pm: "PmServer", req: "Request") -> int:
    """POSIX/Linux rules: the caller or a child of it, in the caller's session, not
    a session leader, a child that has not exec'd, and a group that exists in the
    caller's session (or the target's own pid)."""
    body = req.body
    caller = pm.table.live_task(req.caller).proc
    if body.pgid < 0:
        raise SysError(errno.EINVAL)
    pid = body.pid or caller.pid
    pgid = body.pgid or pid
    target = pm.table.procs.get(pid)
    if target is None:
        raise SysError(errno.ESRCH)
    if target is not caller:
        if target.ppid != caller.pid:
            raise SysError(errno.ESRCH)
        if target.sid != caller.sid:
            raise SysError(errno.EPERM)
        if target.did_exec:
            raise SysError(errno.EACCES)
    if target.sid == target.pid:
        raise SysError(errno.EPERM)         # a session leader stays in its group
    if pgid != pid and not any(m.sid == caller.sid for m in pm.table.group(pgid)):
        raise SysError(errno.EPERM)
    if target.pgid != pgid:
        pm.table.set_pgid(target, pgid)
    return 0


def do_setsid(pm: "PmServer", req: "Request") -> int:
    proc = pm.table.live_task(req.caller).proc
    if proc.pid in pm.table.pgroups:        # it leads a group (or its pid names one)
        raise SysError(errno.EPERM)
    pm.table.set_sid(proc, proc.pid)
    pm.table.set_pgid(proc, proc.pid)
    return proc.pid


# --- uids and gids ------------------------------------------------------------------------


def _after(pm: "PmServer", done: Completion, result: Any) -> Any:
    """``result`` once VFS has the new ids (a VFS error does not undo the change)."""
    if isinstance(done, int):
        return result

    async def later() -> Any:
        await done
        return result
    return later()


def _told(pm: "PmServer", proc: Process) -> Any:
    return _after(pm, pm.notify.setids(proc.pid, proc.ruid, proc.euid, proc.rgid, proc.egid), 0)


def _check_ids(*ids: int) -> None:
    if any(i < -1 for i in ids):
        raise SysError(errno.EINVAL)


def _set_ids(proc: Process, kind: str, r: int, e: int, s: int, *, privileged: bool) -> None:
    """setresuid/setresgid: unprivileged callers may only use ids they already hold."""
    old = (getattr(proc, "r" + kind), getattr(proc, "e" + kind), getattr(proc, "s" + kind))
    if not privileged and any(v != -1 and v not in old for v in (r, e, s)):
        raise SysError(errno.EPERM)
    for prefix, value in (("r", r), ("e", e), ("s", s)):
        if value != -1:
            setattr(proc, prefix + kind, value)


def _setre(proc: Process, kind: str, r: int, e: int, *, privileged: bool) -> None:
    """setreuid/setregid (Linux): real may become real or effective; effective may
    become any of the three; the saved id follows a changed effective id."""
    old_r, old_e, old_s = (getattr(proc, "r" + kind), getattr(proc, "e" + kind),
                           getattr(proc, "s" + kind))
    if not privileged:
        if r != -1 and r not in (old_r, old_e):
            raise SysError(errno.EPERM)
        if e != -1 and e not in (old_r, old_e, old_s):
            raise SysError(errno.EPERM)
    new_r = old_r if r == -1 else r
    new_e = old_e if e == -1 else e
    setattr(proc, "r" + kind, new_r)
    setattr(proc, "e" + kind, new_e)
    if r != -1 or (e != -1 and e != old_r):
        setattr(proc, "s" + kind, new_e)


def _setone(proc: Process, kind: str, value: int) -> None:
    """setuid/setgid: privileged callers set all three, others only the effective
    id, and only to the real or saved one."""
    if value < 0:
        raise SysError(errno.EINVAL)
    if proc.euid == 0:
        for prefix in "res":
            setattr(proc, prefix + kind, value)
    elif value in (getattr(proc, "r" + kind), getattr(proc, "s" + kind)):
        setattr(proc, "e" + kind, value)
    else:
        raise SysError(errno.EPERM)


def do_setuid(pm: "PmServer", req: "Request") -> Any:
    proc = pm.table.live_task(req.caller).proc
    _setone(proc, "uid", req.body.uid)
    return _told(pm, proc)


def do_setgid(pm: "PmServer", req: "Request") -> Any:
    proc = pm.table.live_task(req.caller).proc
    _setone(proc, "gid", req.body.gid)
    return _told(pm, proc)


def do_setreuid(pm: "PmServer", req: "Request") -> Any:
    b = req.body
    _check_ids(b.ruid, b.euid)
    proc = pm.table.live_task(req.caller).proc
    _setre(proc, "uid", b.ruid, b.euid, privileged=proc.euid == 0)
    return _told(pm, proc)


def do_setregid(pm: "PmServer", req: "Request") -> Any:
    b = req.body
    _check_ids(b.rgid, b.egid)
    proc = pm.table.live_task(req.caller).proc
    _setre(proc, "gid", b.rgid, b.egid, privileged=proc.euid == 0)
    return _told(pm, proc)


def do_setresuid(pm: "PmServer", req: "Request") -> Any:
    b = req.body
    _check_ids(b.ruid, b.euid, b.suid)
    proc = pm.table.live_task(req.caller).proc
    _set_ids(proc, "uid", b.ruid, b.euid, b.suid, privileged=proc.euid == 0)
    return _told(pm, proc)


def do_setresgid(pm: "PmServer", req: "Request") -> Any:
    b = req.body
    _check_ids(b.rgid, b.egid, b.sgid)
    proc = pm.table.live_task(req.caller).proc
    _set_ids(proc, "gid", b.rgid, b.egid, b.sgid, privileged=proc.euid == 0)
    return _told(pm, proc)


def do_getresuid(pm: "PmServer", req: "Request") -> p.Payload:
    proc = pm.table.live_task(req.caller).proc
    return p.ProcResidReply(real=proc.ruid, effective=proc.euid, saved=proc.suid)


def do_getresgid(pm: "PmServer", req: "Request") -> p.Payload:
    proc = pm.table.live_task(req.caller).proc
    return p.ProcResidReply(real=proc.rgid, effective=proc.egid, saved=proc.sgid)


def do_getgroups(pm: "PmServer", req: "Request") -> p.Payload:
    proc = pm.table.live_task(req.caller).proc
    size, count = req.body.size, len(proc.groups)
    if size < 0 or (size and size < count):
        raise SysError(errno.EINVAL)
    blob = struct.pack(f"<{count}I", *proc.groups) if size else b""
    return p.ProcDataReply(result=count, data=blob)


def do_setgroups(pm: "PmServer", req: "Request") -> Any:
    proc = pm.table.live_task(req.caller).proc
    blob = req.body.data
    if proc.euid != 0:
        raise SysError(errno.EPERM)
    if len(blob) % 4 or len(blob) // 4 > NGROUPS_MAX:
        raise SysError(errno.EINVAL)
    proc.groups = struct.unpack(f"<{len(blob) // 4}I", blob)
    return _after(pm, pm.notify.setgroups(proc.pid, proc.groups), 0)
