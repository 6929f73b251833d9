"""System V semaphores and message queues, POSIX message queues: the VFS keeps
them (vfs_fuse/sysv.py, vfs_fuse/mqueue.py).

The handlers copy the arguments in (sembufs, the message, the timeout), send
one VFS_SYSV request -- a message longer than one message's data goes first
in SV_STAGE pieces -- and copy the answer out.  A call that must wait is
parked in the VFS, which answers it when it can go on (or with EINTR when PM
cancels it for a signal).
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any, Generator

from ...lib import linux_abi as abi
from ...lib import protocol as p
from ...lib import sysv_abi as sv
from ...lib.errors import SysError
from .base import Op, SyscallContext, SyscallGen, ask, c_int, path_arg

if TYPE_CHECKING:
    from ..kernel import Kernel

TIMESPEC = struct.Struct("<qq")


def _c_long(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def _stage(c: SyscallContext, data: bytes) -> Generator[Op, Any, bytes]:
    """Send all but the last message's worth of a long message ahead (SV_STAGE: the
    VFS puts the pieces together); what is left goes in the call itself."""
    while len(data) > p.DATA_MAX:
        yield from ask(p.VFS_PID, p.VfsSysv(caller=c.pid, op=p.SV_STAGE,
                                            data=data[:p.DATA_MAX]))
        data = data[p.DATA_MAX:]
    return data


def _sysv(c: SyscallContext, op: int, ident: int, a1: int = 0, a2: int = 0, a3: int = 0,
          data: bytes = b"", timeout_ns: int = -1) -> Generator[Op, Any, Any]:
    data = yield from _stage(c, data)
    return (yield from ask(p.VFS_PID, p.VfsSysv(caller=c.pid, op=op, ident=ident, a1=a1, a2=a2,
                                                a3=a3, data=data, timeout_ns=timeout_ns)))


def timeout_arg(c: SyscallContext, addr: int) -> int:
    """A struct timespec in ns (-1: none), relative (semtimedop) or absolute
    CLOCK_REALTIME (mq_timed*); EINVAL as Linux for a bad one."""
    if not addr:
        return -1
    sec, nsec = TIMESPEC.unpack(c.mem.read(addr, TIMESPEC.size))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise SysError(errno.EINVAL)
    return sec * 1_000_000_000 + nsec


# --- semaphores ------------------------------------------------------------------------


def sys_semget(k: Kernel, c: SyscallContext) -> SyscallGen:
    reply = yield from _sysv(c, p.SV_SEMGET, c_int(c.args[0]), c_int(c.args[1]),
                             c_int(c.args[2]))
    return reply.result


def _semop(c: SyscallContext, semid: int, sops: int, nsops: int,
           timeout_ns: int) -> Generator[Op, Any, int]:
    if nsops < 1 or semid < 0:
        raise SysError(errno.EINVAL)
    if nsops > sv.SEMOPM:
        raise SysError(errno.E2BIG)
    blob = c.mem.read(sops, nsops * sv.SEMBUF_SIZE)
    reply = yield from _sysv(c, p.SV_SEMOP, semid, data=blob, timeout_ns=timeout_ns)
    return reply.result


def sys_semop(k: Kernel, c: SyscallContext) -> SyscallGen:
    return (yield from _semop(c, c_int(c.args[0]), c.args[1], _c_long(c.args[2]), -1))


def sys_semtimedop(k: Kernel, c: SyscallContext) -> SyscallGen:
    semid, nsops = c_int(c.args[0]), _c_long(c.args[2])
    if nsops < 1 or semid < 0:
        raise SysError(errno.EINVAL)
    timeout = timeout_arg(c, c.args[3])
    return (yield from _semop(c, semid, c.args[1], nsops, timeout))


def sys_semctl(k: Kernel, c: SyscallContext) -> SyscallGen:
    semid, num, cmd, arg = c_int(c.args[0]), c_int(c.args[1]), c_int(c.args[2]), c.args[3]
    base = cmd & ~sv.IPC_64
    data = b""
    if base == sv.SETALL:
        n = (yield from _sysv(c, p.SV_NSEMS, semid)).result
        data = c.mem.read(arg, 2 * n) if n else b""
    elif base == sv.IPC_SET:
        data = c.mem.read(arg, sv.SEMID64_DS.size)
    val = c_int(arg) if base == sv.SETVAL else 0
    reply = yield from _sysv(c, p.SV_SEMCTL, semid, num, cmd, val, data)
    if reply.data:
        c.mem.write(arg, reply.data)
    return reply.result


# --- message queues ----------------------------------------------------------------------


def sys_msgget(k: Kernel, c: SyscallContext) -> SyscallGen:
    reply = yield from _sysv(c, p.SV_MSGGET, c_int(c.args[0]), c_int(c.args[1]))
    return reply.result


def sys_msgsnd(k: Kernel, c: SyscallContext) -> SyscallGen:
    msqid, msgp, size, flg = c_int(c.args[0]), c.args[1], _c_long(c.args[2]), c_int(c.args[3])
    (mtype,) = abi.POINTER.unpack(c.mem.read(msgp, 8))
    mtype = _c_long(mtype)
    if size > sv.MSGMAX or size < 0 or msqid < 0 or mtype < 1:
        raise SysError(errno.EINVAL)
    text = c.mem.read(msgp + 8, size) if size else b""
    reply = yield from _sysv(c, p.SV_MSGSND, msqid, mtype, flg, data=text)
    return reply.result


def sys_msgrcv(k: Kernel, c: SyscallContext) -> SyscallGen:
    msqid, msgp, size = c_int(c.args[0]), c.args[1], _c_long(c.args[2])
    msgtyp, flg = _c_long(c.args[3]), c_int(c.args[4])
    if size < 0 or msqid < 0:
        raise SysError(errno.EINVAL)
    reply = yield from _sysv(c, p.SV_MSGRCV, msqid, size, msgtyp, flg)
    out = reply.data
    want = 8 + reply.result
    while len(out) < want:
        more = yield from ask(p.VFS_PID, p.VfsSysv(caller=c.pid, op=p.SV_FETCH, a1=len(out)))
        if not more.data:
            break
        out += more.data
    c.mem.write(msgp, out)
    return reply.result


def sys_msgctl(k: Kernel, c: SyscallContext) -> SyscallGen:
    msqid, cmd, buf = c_int(c.args[0]), c_int(c.args[1]), c.args[2]
    data = b""
    if cmd & ~sv.IPC_64 == sv.IPC_SET:
        data = c.mem.read(buf, sv.MSQID64_DS.size)
    reply = yield from _sysv(c, p.SV_MSGCTL, msqid, cmd, data=data)
    if reply.data:
        c.mem.write(buf, reply.data)
    return reply.result


# --- POSIX message queues (the VFS: vfs_fuse/mqueue.py) ------------------------------------

MQ_ATTR_SIZE = 64
SIGEVENT_SIZE = 64


def _mq(c: SyscallContext, op: int, fd: int = -1, a1: int = 0, a2: int = 0, path: bytes = b"",
        data: bytes = b"", timeout_ns: int = -1) -> Generator[Op, Any, Any]:
    data = yield from _stage(c, data)      # a long message: staged as System V's are
    return (yield from ask(p.VFS_PID, p.VfsMq(caller=c.pid, op=op, fd=fd, a1=a1, a2=a2,
                                              path=path, data=data, timeout_ns=timeout_ns)))


def _mq_name(c: SyscallContext, addr: int) -> bytes:
    name = path_arg(c, addr)
    if len(name) > 255:                 # one name in the mqueue filesystem: NAME_MAX
        raise SysError(errno.ENAMETOOLONG)
    return name


def sys_mq_open(k: Kernel, c: SyscallContext) -> SyscallGen:
    name = _mq_name(c, c.args[0])
    oflag, mode, attr = c_int(c.args[1]), c_int(c.args[2]), c.args[3]
    data = c.mem.read(attr, MQ_ATTR_SIZE) if attr and oflag & 0o100 else b""   # O_CREAT
    return (yield from _mq(c, p.MQ_OPEN, a1=oflag, a2=mode, path=name, data=data)).result


def sys_mq_unlink(k: Kernel, c: SyscallContext) -> SyscallGen:
    name = _mq_name(c, c.args[0])
    return (yield from _mq(c, p.MQ_UNLINK, path=name)).result


def sys_mq_timedsend(k: Kernel, c: SyscallContext) -> SyscallGen:
    fd, buf, size, prio = c_int(c.args[0]), c.args[1], c.args[2], c.args[3] & 0xFFFFFFFF
    timeout = timeout_arg(c, c.args[4])
    if size > 16 << 20:                 # past any queue's msgsize (HARD_MSGSIZEMAX)
        raise SysError(errno.EMSGSIZE)
    data = c.mem.read(buf, size) if size else b""
    return (yield from _mq(c, p.MQ_SEND, fd, prio, data=data, timeout_ns=timeout)).result


def sys_mq_timedreceive(k: Kernel, c: SyscallContext) -> SyscallGen:
    fd, buf, size, prio_p = c_int(c.args[0]), c.args[1], c.args[2], c.args[3]
    timeout = timeout_arg(c, c.args[4])
    reply = yield from _mq(c, p.MQ_RECEIVE, fd, min(size, 1 << 62), timeout_ns=timeout)
    out = reply.data
    want = 4 + reply.result
    while len(out) < want:
        more = yield from ask(p.VFS_PID, p.VfsSysv(caller=c.pid, op=p.SV_FETCH, a1=len(out)))
        if not more.data:
            break
        out += more.data
    c.mem.write(buf, out[4:])
    if prio_p:
        c.mem.write(prio_p, out[:4])
    return reply.result


def sys_mq_notify(k: Kernel, c: SyscallContext) -> SyscallGen:
    fd, sev = c_int(c.args[0]), c.args[1]
    data = c.mem.read(sev, SIGEVENT_SIZE) if sev else b""
    return (yield from _mq(c, p.MQ_NOTIFY, fd, data=data)).result


def sys_mq_getsetattr(k: Kernel, c: SyscallContext) -> SyscallGen:
    fd, new, old = c_int(c.args[0]), c.args[1], c.args[2]
    data = c.mem.read(new, MQ_ATTR_SIZE) if new else b""
    reply = yield from _mq(c, p.MQ_GETSETATTR, fd, data=data)
    if old:
        c.mem.write(old, reply.data)
    return 0
