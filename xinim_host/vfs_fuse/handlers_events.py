"""Event fds and epoll: eventfd2, epoll_create1/ctl/wait, timerfd_*, signalfd4.

The kernel has copied the arguments in and checked what Linux checks before the
file is looked at (EFAULT, the flags); here the files are made and served.
"""
from __future__ import annotations

import errno
import math
import os
from typing import TYPE_CHECKING, Any

import trio

from ..lib.errors import SysError
from ..lib.grants import GRANT_WRITE
from ..lib.linux_abi import AT_FDCWD
from ..lib.protocol import DATA_MAX, PM_PID, VfsDataReply, VfsTimerReply
from .anon import install_anon
from .epoll import (EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLL_EVENT, EPOLLEXCLUSIVE,
                    EPOLLEXCLUSIVE_OK_BITS, Epoll)
from .eventfds import EFD_SEMAPHORE, TIMER_CLOCKS, EventFd, TimerFd
from .handlers_common import caller_proc
from .handlers_io import waitq_of
from .inotify import ALL_INOTIFY_BITS, IN_DONT_FOLLOW, IN_MASK_ADD, IN_MASK_CREATE, IN_ONLYDIR, Inotify
from .namei import permission
from .parking import park
from .signalfd import SignalFd, pending_changed, watch

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

S_IFMT, S_IFDIR, R_OK = 0o170000, 0o040000, 4
O_CLOEXEC = os.O_CLOEXEC
O_NONBLOCK = os.O_NONBLOCK


def do_eventfd(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    if b.flags & ~(EFD_SEMAPHORE | O_CLOEXEC | O_NONBLOCK):
        raise SysError(errno.EINVAL)
    fp = caller_proc(srv, req)
    obj = EventFd(b.initval, bool(b.flags & EFD_SEMAPHORE))
    return install_anon(srv, fp, obj, b.flags, bool(b.flags & O_CLOEXEC))


# --- epoll ---------------------------------------------------------------------------------

def do_epoll_create(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    if b.flags & ~O_CLOEXEC:
        raise SysError(errno.EINVAL)
    return install_anon(srv, caller_proc(srv, req), Epoll(), 0, bool(b.flags & O_CLOEXEC))


def do_epoll_ctl(srv: VfsServer, req: Request) -> int:
    """Linux's order of checks (do_epoll_ctl): EBADF, EPERM, EINVAL, ELOOP, EEXIST/ENOENT."""
    b = req.msg.body
    fp = caller_proc(srv, req)
    epf = fp.io_file(b.epfd)                  # an O_PATH fd is none here (EBADF)
    tf = fp.io_file(b.fd)
    q = waitq_of(tf) if tf.io is not None else None
    if q is None:
        raise SysError(errno.EPERM)           # regular files and directories: cannot wait
    events = b.events
    if b.op != EPOLL_CTL_DEL and events & EPOLLEXCLUSIVE:
        if b.op == EPOLL_CTL_MOD:
            raise SysError(errno.EINVAL)
        if b.op == EPOLL_CTL_ADD and (isinstance(tf.io, Epoll)
                                      or events & ~EPOLLEXCLUSIVE_OK_BITS):
            raise SysError(errno.EINVAL)
    if epf is tf or not isinstance(epf.io, Epoll):
        raise SysError(errno.EINVAL)
    ep: Epoll = epf.io
    if b.op == EPOLL_CTL_ADD:
        ep.add(tf, b.fd, events, b.data, q)
    elif b.op == EPOLL_CTL_MOD:
        ep.modify(tf, b.fd, events, b.data)
    elif b.op == EPOLL_CTL_DEL:
        ep.delete(tf, b.fd)
    else:
        raise SysError(errno.EINVAL)
    return 0


def _events_reply(out: list[tuple[int, int]]) -> VfsDataReply:
    return VfsDataReply(result=len(out), data=b"".join(EPOLL_EVENT.pack(ev & 0xFFFFFFFF, data)
                                                       for ev, data in out))


def _epoll_of(srv: VfsServer, req: Request) -> Epoll:
    b = req.msg.body
    of = caller_proc(srv, req).io_file(b.epfd)
    if not isinstance(of.io, Epoll) or b.maxevents <= 0:
        raise SysError(errno.EINVAL)
    return of.io


def do_epoll_wait(srv: VfsServer, req: Request) -> Any:
    """epoll_wait with the events in the reply (a joined node's kernel)."""
    ep = _epoll_of(srv, req)
    n = min(req.msg.body.maxevents, DATA_MAX // EPOLL_EVENT.size)

    def attempt() -> VfsDataReply | None:
        got = ep.collect(n)
        return _events_reply(got) if got else None
    return _epoll_wait(req, ep, attempt, lambda: _events_reply([]))


def do_epoll_wait_grant(srv: VfsServer, req: Request) -> Any:
    """epoll_wait copying the events straight into the caller's buffer."""
    ep = _epoll_of(srv, req)
    b = req.msg.body
    g = srv.lattice.grants.check(b.grant, req.msg.m_source, req.caller, srv.pid, GRANT_WRITE)
    n = min(b.maxevents, g.size // EPOLL_EVENT.size)

    def deliver(out: list[tuple[int, int]]) -> int:
        blob = b"".join(EPOLL_EVENT.pack(ev & 0xFFFFFFFF, data) for ev, data in out)
        return g.copy_to(0, blob) // EPOLL_EVENT.size

    def attempt() -> int | None:
        ready = bool(ep.ready)
        got = ep.collect(n, deliver)
        if got:
            return len(got)
        if ready and ep.ready:
            raise SysError(errno.EFAULT)      # ready, but nothing could be copied
        return None
    return _epoll_wait(req, ep, attempt, lambda: 0)


def _epoll_wait(req: Request, ep: Epoll, attempt: Any, empty: Any) -> Any:
    b = req.msg.body
    got = attempt()
    if got is not None or b.timeout_ns == 0:
        return empty() if got is None else got
    ep.arm_edges()
    deadline = math.inf if b.timeout_ns < 0 else trio.current_time() + b.timeout_ns / 1e9
    return park(req, [ep.q], attempt, deadline=deadline, on_timeout=empty, no_restart=True)


# --- timerfd -------------------------------------------------------------------------------

def _timerfd(srv: VfsServer, req: Request) -> TimerFd:
    of = caller_proc(srv, req).get(req.msg.body.fd)
    if not isinstance(of.io, TimerFd):
        raise SysError(errno.EINVAL)
    return of.io


def do_timerfd_create(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    if b.flags & ~(O_CLOEXEC | O_NONBLOCK) or b.clockid not in TIMER_CLOCKS:
        raise SysError(errno.EINVAL)
    fp = caller_proc(srv, req)
    return install_anon(srv, fp, TimerFd(srv, b.clockid), b.flags, bool(b.flags & O_CLOEXEC))


def do_timerfd_settime(srv: VfsServer, req: Request) -> VfsTimerReply:
    b = req.msg.body
    timer = _timerfd(srv, req)
    value, interval = timer.settime(b.flags, b.value_ns, b.interval_ns)
    return VfsTimerReply(value_ns=value, interval_ns=interval)


def do_timerfd_gettime(srv: VfsServer, req: Request) -> VfsTimerReply:
    value, interval = _timerfd(srv, req).gettime()
    return VfsTimerReply(value_ns=value, interval_ns=interval)


# --- signalfd ------------------------------------------------------------------------------

def do_signalfd(srv: VfsServer, req: Request) -> Any:
    b = req.msg.body
    fp = caller_proc(srv, req)
    if b.fd == -1:
        fp.lowest_free()                          # EMFILE before PM is asked
        return _new_signalfd(srv, req, b.mask, b.flags)
    of = fp.get(b.fd)
    if not isinstance(of.io, SignalFd):
        raise SysError(errno.EINVAL)
    return _remask(srv, req, of.io, b.mask, b.fd)


async def _remask(srv: VfsServer, req: Request, sfd: SignalFd, mask: int, fd: int) -> int:
    await watch(srv, req.caller, mask)
    sfd.set_mask(mask)
    return fd


async def _new_signalfd(srv: VfsServer, req: Request, mask: int, flags: int) -> int:
    await watch(srv, req.caller, mask)            # PM reports the pending set from now on
    fp = caller_proc(srv, req)
    return install_anon(srv, fp, SignalFd(srv, req.caller, mask), flags,
                        bool(flags & O_CLOEXEC))


def do_sig_pending(srv: VfsServer, req: Request) -> int:
    """PM's notice: a process with a signalfd has a new pending set."""
    if req.msg.m_source != PM_PID:
        raise SysError(errno.EPERM)
    b = req.msg.body
    pending_changed(srv, b.pid, b.pending)
    return 0


# --- inotify -------------------------------------------------------------------------------

def _inotify(fp: Any, fd: int) -> Inotify:
    of = fp.get(fd)
    if not isinstance(of.io, Inotify):
        raise SysError(errno.EINVAL)
    return of.io


def do_inotify_init(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    if b.flags & ~(O_CLOEXEC | O_NONBLOCK):
        raise SysError(errno.EINVAL)
    return install_anon(srv, caller_proc(srv, req), Inotify(srv.inotify), b.flags,
                        bool(b.flags & O_CLOEXEC))


def do_inotify_add(srv: VfsServer, req: Request) -> int:
    """inotify_add_watch in Linux's order: the mask, the fd, the path, read permission."""
    b = req.msg.body
    mask = b.mask
    if mask & IN_MASK_ADD and mask & IN_MASK_CREATE or not mask & ALL_INOTIFY_BITS:
        raise SysError(errno.EINVAL)
    fp = caller_proc(srv, req)
    inst = _inotify(fp, b.fd)
    fs, node = srv.namei.lookup(fp, AT_FDCWD, b.path, follow=not mask & IN_DONT_FOLLOW).loc
    if mask & IN_ONLYDIR and fs.mode(node) & S_IFMT != S_IFDIR:
        raise SysError(errno.ENOTDIR)
    permission(fp, fs, node, R_OK)
    return inst.add(node, mask, fs)


def do_inotify_rm(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    _inotify(caller_proc(srv, req), b.fd).remove(b.wd)
    return 0
