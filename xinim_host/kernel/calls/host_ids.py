"""Host-run calls that name a task, a process group or a user: confined to XINIM.

Scheduling, priorities, resource limits and CPU masks are the host kernel's job
(the renumbering table says so), but these calls name *which* task they act on,
and a program speaks XINIM ids.  So they are trapped, and the handler here turns
the XINIM id into the host task PM recorded for it before the host runs the call
(``HostCall`` with rewritten arguments).  An id that is not a task of the
caller's XINIM system answers ESRCH, as Linux does for a task in another pid
namespace; a host pid is never passed through.

Permission checks use XINIM's credentials, as Linux's would use the caller's
(``set_one_prio_perm``, ``check_same_owner``, ``check_prlimit_permission``):
the host side runs as whoever started xinim-run, so the host's own checks say
nothing about XINIM's users.

``capget`` is answered from XINIM's credentials alone: XINIM root has the
capabilities of the host side, anybody else none.  The header's pid is read
once, so no other thread can retarget it between our check and the host's read.
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any, Generator

from ...lib import linux_abi as abi
from ...lib import protocol as p
from ...lib.errors import SysError
from ...lib.limits import host_caps
from .base import HostCall, Op, Sendrec, SyscallContext, SyscallGen, ask, c_int
from .memory import limits_changed

if TYPE_CHECKING:
    from ..kernel import Kernel

PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2
LINUX_GETPRIORITY, LINUX_SETPRIORITY = 140, 141
CAP_V1, CAP_V2, CAP_V3 = 0x19980330, 0x20071026, 0x20080522


def _host_tid(c: SyscallContext, xinim_id: int) -> Generator[Op, Any, int]:
    """The host tid of XINIM task ``xinim_id`` (0: the caller); ESRCH if none."""
    if xinim_id == 0 or xinim_id == c.tid:
        return 0                     # "myself" stays 0: the host means the same thread
    if xinim_id < 0:
        raise SysError(errno.ESRCH)
    reply = yield from ask(p.PM_PID, p.ProcXinimToHost(caller=c.tid, pid=xinim_id))
    if reply.result <= 0:
        raise SysError(errno.ESRCH)
    return reply.result


def _target_pid(c: SyscallContext, xinim_id: int) -> int:
    """The XINIM process a task id belongs to (for its credentials)."""
    return c.pid if xinim_id in (0, c.tid) else xinim_id


def _same_owner(k: "Kernel", c: SyscallContext, target_pid: int) -> bool:
    """Linux's set_one_prio_perm / check_same_owner, with XINIM's ids."""
    if c.euid == 0 or target_pid == c.pid:
        return True
    t = k.creds_of(target_pid)
    return c.euid in (t.uid, t.euid)


def _not_host(c: SyscallContext) -> None:
    if c.host is None:               # a kernel-side caller has no host task to act on
        raise SysError(errno.ENOSYS)


def _by_tid(arg: int, negative: int = errno.ESRCH) -> Any:
    """Handler for calls whose argument ``arg`` is a tid (0: the caller) and that
    only read: sched_getaffinity, sched_getparam, sched_getscheduler,
    get_robust_list.  ``negative``: Linux's answer for a negative id."""
    def handler(k: "Kernel", c: SyscallContext) -> SyscallGen:
        _not_host(c)
        who = c_int(c.args[arg])
        if who < 0:
            raise SysError(negative)
        host = yield from _host_tid(c, who)
        args = list(c.args)
        args[arg] = host
        return (yield HostCall(None, tuple(args)))
    return handler


_getaffinity = _by_tid(0)


def sys_sched_getaffinity(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """The host's answer, but where it is exactly the tracer's pinning (inherited,
    not the program's choice) the mask the program may really use (nproc)."""
    size = yield from _getaffinity(k, c)
    pinned, real = k.cpus_pinned, k.cpus_real
    if pinned is None or real is None or size <= 0:
        return size
    mask = int.from_bytes(c.mem.read(c.args[2], size), "little")
    if mask != sum(1 << cpu for cpu in pinned):
        return size
    shown = sum(1 << cpu for cpu in real if cpu < 8 * size)
    c.mem.write(c.args[2], shown.to_bytes(size, "little"))
    return size
sys_sched_getparam = _by_tid(0, errno.EINVAL)
sys_sched_getscheduler = _by_tid(0, errno.EINVAL)
sys_get_robust_list = _by_tid(0)


def sys_sched_setaffinity(k: "Kernel", c: SyscallContext) -> SyscallGen:
    _not_host(c)
    who = c_int(c.args[0])
    host = yield from _host_tid(c, who)
    if not _same_owner(k, c, _target_pid(c, who)):
        raise SysError(errno.EPERM)
    return (yield HostCall(None, (host,) + tuple(c.args[1:])))


RLIM_NLIMITS = 16


def sys_prlimit64(k: "Kernel", c: SyscallContext) -> SyscallGen:
    _not_host(c)
    if c.args[1] & 0xFFFFFFFF >= RLIM_NLIMITS:      # checked before the pid, as Linux does
        raise SysError(errno.EINVAL)
    who = c_int(c.args[0])
    host = yield from _host_tid(c, who)
    target = _target_pid(c, who)
    if target != c.pid and c.euid != 0:
        # check_prlimit_permission: every id of the target is the caller's
        t = k.creds_of(target)
        if not (t.uid == t.euid == c.uid and t.gid == t.egid == c.gid):
            raise SysError(errno.EPERM)
    tell_vfs = c.args[1] & 0xFFFFFFFF in VFS_LIMITS and c.args[2]
    if c.args[2]:
        limits_changed()           # one-stop memory calls look at RLIMIT_AS/DATA again
    if not tell_vfs and c.host is not None and c.host.untraced():
        # nothing follows the host's answer (glibc asks RLIMIT_STACK at every
        # start): the call itself, no exit stop
        yield HostCall(None, (host,) + tuple(c.args[1:]), tail=True)
    result = yield HostCall(None, (host,) + tuple(c.args[1:]))
    if result == 0 and tell_vfs:
        yield from _tell_vfs(c, target, c.args[1] & 0xFFFFFFFF, c.args[2])
    return result


RLIMIT_FSIZE, RLIMIT_NOFILE = 1, 7
VFS_LIMITS = (RLIMIT_FSIZE, RLIMIT_NOFILE)      # the VFS enforces these itself


def _tell_vfs(c: SyscallContext, pid: int, resource: int,
              limit_ptr: int) -> Generator[Op, Any, None]:
    """The host took a new limit the VFS enforces (its fd table, file sizes): tell it."""
    try:
        (cur,) = struct.unpack("<Q", c.mem.read(limit_ptr, 8))
    except SysError:
        return
    yield Sendrec(p.VFS_PID, p.VfsSetLimit(pid=pid, resource=resource, value=cur))


def sys_setrlimit(k: "Kernel", c: SyscallContext) -> SyscallGen:
    limits_changed()
    result = yield HostCall(None)
    if result == 0 and c.args[0] & 0xFFFFFFFF in VFS_LIMITS:
        yield from _tell_vfs(c, c.pid, c.args[0] & 0xFFFFFFFF, c.args[1])
    return result


def _members(k: "Kernel", c: SyscallContext, which: int, who: int
             ) -> Generator[Op, Any, list[tuple[int, int]]]:
    """(XINIM pid, host pid) of every live process a PRIO_PGRP/PRIO_USER call
    names (``who`` 0: the caller's group / real uid)."""
    if which == PRIO_PGRP and who == 0:
        who = (yield from ask(p.PM_PID, p.ProcGetpgid(caller=c.tid, pid=0))).result
    elif which == PRIO_USER:
        who = (who or c.uid) & 0xFFFFFFFF      # the list carries uids unsigned
    out: list[tuple[int, int]] = []
    start = 0
    while True:
        reply = yield from ask(p.PM_PID, p.ProcList(caller=c.tid, start=start))
        for e in p.decode_proc_list(reply.data):
            key = e.pgid if which == PRIO_PGRP else e.uid
            if key == who and e.host_pid > 0 and e.state != "Z":
                out.append((e.pid, e.host_pid))
        if not reply.next or reply.next <= start:
            return out
        start = reply.next


def sys_getpriority(k: "Kernel", c: SyscallContext) -> SyscallGen:
    _not_host(c)
    which, who = c_int(c.args[0]), c_int(c.args[1])
    if which == PRIO_PROCESS:
        host = yield from _host_tid(c, who)
        return (yield HostCall(None, (PRIO_PROCESS, host)))
    if which not in (PRIO_PGRP, PRIO_USER):
        raise SysError(errno.EINVAL)
    best = -errno.ESRCH
    for pid, host in (yield from _members(k, c, which, who)):
        # the raw syscall answers 20 - nice (1..40); the highest wins, as in Linux
        value = yield HostCall(LINUX_GETPRIORITY, (PRIO_PROCESS, 0 if pid == c.pid else host))
        if value >= 0:
            best = max(best, value)
    if best < 0:
        raise SysError(-best)
    return best


def sys_setpriority(k: "Kernel", c: SyscallContext) -> SyscallGen:
    _not_host(c)
    which, who, prio = c_int(c.args[0]), c_int(c.args[1]), c_int(c.args[2])
    if which == PRIO_PROCESS:
        host = yield from _host_tid(c, who)
        if not _same_owner(k, c, _target_pid(c, who)):
            raise SysError(errno.EPERM)
        return (yield HostCall(None, (PRIO_PROCESS, host, c.args[2])))
    if which not in (PRIO_PGRP, PRIO_USER):
        raise SysError(errno.EINVAL)
    found, error = False, 0
    for pid, host in (yield from _members(k, c, which, who)):
        found = True
        if not _same_owner(k, c, pid):
            error = errno.EPERM
            continue
        value = yield HostCall(LINUX_SETPRIORITY,
                               (PRIO_PROCESS, 0 if pid == c.pid else host, prio & 0xFFFFFFFF))
        if value < 0:
            error = -value
    if not found:
        raise SysError(errno.ESRCH)
    if error:
        raise SysError(error)
    return 0


def sys_capget(k: "Kernel", c: SyscallContext) -> SyscallGen:
    hdrp, datap = c.args[0], c.args[1]
    version, pid = abi.CAP_HEADER.unpack(c.mem.read(hdrp, abi.CAP_HEADER.size))
    if version not in (CAP_V1, CAP_V2, CAP_V3):
        c.mem.write(hdrp, abi.CAP_HEADER.pack(CAP_V3, pid))
        raise SysError(errno.EINVAL)
    pid = c_int(pid)
    if pid < 0:
        raise SysError(errno.EINVAL)
    if pid and pid != c.pid:
        yield from _host_tid(c, pid)             # ESRCH unless a XINIM task
    if not datap:
        return 0
    creds = k.creds_of(pid or c.pid)
    eff, prm, inh = host_caps() if creds.euid == 0 else (0, 0, 0)
    words = 1 if version == CAP_V1 else 2
    out = b"".join(abi.CAP_DATA.pack(eff >> (32 * i) & 0xFFFFFFFF, prm >> (32 * i) & 0xFFFFFFFF,
                                   inh >> (32 * i) & 0xFFFFFFFF) for i in range(words))
    c.mem.write(datap, out)
    return 0
