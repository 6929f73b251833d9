"""Event fds and epoll: arguments copied in and checked as Linux does, then the VFS.

The VFS owns the files (``vfs_fuse/handlers_events.py``); here is what Linux
checks before it looks at a file: flags, sizes, EFAULT on user pointers.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ...lib import linux_abi as abi
from ...lib import protocol as p
from ...lib.errors import SysError
from .base import SyscallContext, SyscallGen, ask, ask_granted, c_int, path_arg
from ...lib.grants import GRANT_WRITE
from .files import SIGSET_SIZE, access_ok, local_grants, masked_wait

if TYPE_CHECKING:
    from ..kernel import Kernel

O_CLOEXEC, O_NONBLOCK = 0o2000000, 0o4000
EPOLL_EVENT_SIZE = 12                          # struct epoll_event, packed on x86-64
EP_MAX_EVENTS = 0x7FFFFFFF // EPOLL_EVENT_SIZE
EPOLL_CTL_DEL = 2
TFD_SETTIME_FLAGS = 0x3                        # TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
SIGKILL_STOP = (1 << 8) | (1 << 18)            # bits of signals 9 and 19


def sys_eventfd(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsEventfd(caller=c.pid, initval=c.args[0] & 0xFFFFFFFF,
                                                    flags=0))).result


def sys_eventfd2(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsEventfd(caller=c.pid, initval=c.args[0] & 0xFFFFFFFF,
                                                    flags=c_int(c.args[1])))).result


# --- epoll ---------------------------------------------------------------------------------

def sys_epoll_create(k: "Kernel", c: SyscallContext) -> SyscallGen:
    if c_int(c.args[0]) <= 0:
        raise SysError(errno.EINVAL)
    return (yield from ask(p.VFS_PID, p.VfsEpollCreate(caller=c.pid, flags=0))).result


def sys_epoll_create1(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsEpollCreate(caller=c.pid,
                                                        flags=c_int(c.args[0])))).result


def sys_epoll_ctl(k: "Kernel", c: SyscallContext) -> SyscallGen:
    epfd, op, fd, ptr = c_int(c.args[0]), c_int(c.args[1]), c_int(c.args[2]), c.args[3]
    events, data = 0, 0
    if op != EPOLL_CTL_DEL:                    # copy_from_user first: EFAULT before EBADF
        events, data = abi.EPOLL_EVENT.unpack(c.mem.read(ptr, abi.EPOLL_EVENT.size))
    return (yield from ask(p.VFS_PID, p.VfsEpollCtl(caller=c.pid, epfd=epfd, op=op, fd=fd,
                                                     events=events, data=data))).result


def _epoll_wait(k: "Kernel", c: SyscallContext, timeout_ns: int) -> SyscallGen:
    epfd, events_ptr, maxevents = c_int(c.args[0]), c.args[1], c_int(c.args[2])
    if maxevents <= 0 or maxevents > EP_MAX_EVENTS:
        raise SysError(errno.EINVAL)
    if not access_ok(events_ptr, maxevents * EPOLL_EVENT_SIZE):
        raise SysError(errno.EFAULT)
    grants = local_grants(k)
    if grants is not None:                     # the VFS copies the events itself
        return (yield from ask_granted(
            k, c, grants, p.VFS_PID, c.mem, ((events_ptr, maxevents * EPOLL_EVENT_SIZE),),
            GRANT_WRITE, lambda gid: p.VfsEpollWaitGrant(
                caller=c.pid, epfd=epfd, grant=gid, maxevents=maxevents,
                timeout_ns=timeout_ns))).result
    reply = yield from ask(p.VFS_PID, p.VfsEpollWait(caller=c.pid, epfd=epfd,
                                                      maxevents=maxevents, timeout_ns=timeout_ns))
    if reply.result:
        c.mem.write(events_ptr, reply.data)
    return reply.result


def _ms_to_ns(timeout_ms: int) -> int:
    return -1 if timeout_ms < 0 else timeout_ms * 10**6


def _sigmask(c: SyscallContext, mask_ptr: int, size: int) -> None:
    """epoll_pwait's mask: EINVAL unless sizeof(sigset_t) (files.masked_wait applies it)."""
    if mask_ptr and size != SIGSET_SIZE:
        raise SysError(errno.EINVAL)


def sys_epoll_wait(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _epoll_wait(k, c, _ms_to_ns(c_int(c.args[3]))))


def sys_epoll_pwait(k: "Kernel", c: SyscallContext) -> SyscallGen:
    _sigmask(c, c.args[4], c.args[5])
    return (yield from masked_wait(c, c.args[4], _epoll_wait(k, c, _ms_to_ns(c_int(c.args[3])))))


def sys_epoll_pwait2(k: "Kernel", c: SyscallContext) -> SyscallGen:
    timeout_ns = -1
    if c.args[3]:
        sec, nsec = abi.TIMESPEC.unpack(c.mem.read(c.args[3], abi.TIMESPEC.size))
        if sec < 0 or not 0 <= nsec < 10**9:
            raise SysError(errno.EINVAL)
        timeout_ns = min(sec * 10**9 + nsec, (1 << 63) - 1)
    _sigmask(c, c.args[4], c.args[5])
    return (yield from masked_wait(c, c.args[4], _epoll_wait(k, c, timeout_ns)))


# --- timerfd -------------------------------------------------------------------------------

def sys_timerfd_create(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsTimerfdCreate(caller=c.pid, clockid=c_int(c.args[0]),
                                                          flags=c_int(c.args[1])))).result


def _put_itimerspec(c: SyscallContext, ptr: int, reply: p.VfsTimerReply) -> None:
    value, interval = reply.value_ns, reply.interval_ns
    c.mem.write(ptr, abi.TIMESPEC.pack(interval // 10**9, interval % 10**9)
                + abi.TIMESPEC.pack(value // 10**9, value % 10**9))


def _ns(sec: int, nsec: int) -> int:
    if sec < 0 or not 0 <= nsec < 10**9:
        raise SysError(errno.EINVAL)
    return min(sec * 10**9 + nsec, (1 << 63) - 1)


def sys_timerfd_settime(k: "Kernel", c: SyscallContext) -> SyscallGen:
    fd, flags, new_ptr, old_ptr = c_int(c.args[0]), c_int(c.args[1]), c.args[2], c.args[3]
    if flags & ~TFD_SETTIME_FLAGS:
        raise SysError(errno.EINVAL)
    raw = c.mem.read(new_ptr, 2 * abi.TIMESPEC.size)
    interval = _ns(*abi.TIMESPEC.unpack_from(raw, 0))
    value = _ns(*abi.TIMESPEC.unpack_from(raw, abi.TIMESPEC.size))
    reply = yield from ask(p.VFS_PID, p.VfsTimerfdSettime(caller=c.pid, fd=fd, flags=flags,
                                                           value_ns=value, interval_ns=interval))
    if old_ptr:
        _put_itimerspec(c, old_ptr, reply)
    return 0


def sys_timerfd_gettime(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = yield from ask(p.VFS_PID, p.VfsTimerfdGettime(caller=c.pid, fd=c_int(c.args[0])))
    _put_itimerspec(c, c.args[1], reply)
    return 0


# --- signalfd ------------------------------------------------------------------------------

def _signalfd(c: SyscallContext, flags: int) -> SyscallGen:
    fd, mask_ptr, size = c_int(c.args[0]), c.args[1], c.args[2]
    if size != SIGSET_SIZE or flags & ~(O_CLOEXEC | O_NONBLOCK):
        raise SysError(errno.EINVAL)
    (mask,) = abi.U64.unpack(c.mem.read(mask_ptr, SIGSET_SIZE))
    return (yield from ask(p.VFS_PID, p.VfsSignalfd(caller=c.pid, fd=fd, mask=mask & ~SIGKILL_STOP,
                                                     flags=flags))).result


def sys_signalfd(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _signalfd(c, 0))


def sys_signalfd4(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _signalfd(c, c_int(c.args[3])))


# --- inotify -------------------------------------------------------------------------------

def sys_inotify_init(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsInotifyInit(caller=c.pid, flags=0))).result


def sys_inotify_init1(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsInotifyInit(caller=c.pid,
                                                        flags=c_int(c.args[0])))).result


def sys_inotify_add_watch(k: "Kernel", c: SyscallContext) -> SyscallGen:
    path = path_arg(c, c.args[1])
    return (yield from ask(p.VFS_PID, p.VfsInotifyAdd(caller=c.pid, fd=c_int(c.args[0]),
                                                       mask=c.args[2] & 0xFFFFFFFF,
                                                       path=path))).result


def sys_inotify_rm_watch(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsInotifyRm(caller=c.pid, fd=c_int(c.args[0]),
                                                      wd=c_int(c.args[1])))).result
