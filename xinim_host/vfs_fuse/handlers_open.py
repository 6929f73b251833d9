"""open/close, the fd table calls (dup, dup2/dup3, fcntl, pipe), ioctl, flock, fdinfo."""
from __future__ import annotations

import errno
import os
import struct
from typing import TYPE_CHECKING, Any

from ..lib.errors import SysError
from ..lib.limits import CAP_SYS_RESOURCE, root_capable
from ..lib.protocol import HIDDEN_FD_BASE, VfsIoctlReply, VfsNodeReply, VfsPipeReply
from . import resolve
from .devfs_nodes import DeviceAlias
from .fdtable import O_PATH, SETFL_MASK, Fproc, OpenFile
from .handlers_common import (S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, caller_proc, check_rofs,
                              drop_setid, fs_writer)
from .handlers_space import (F_ADD_SEALS, F_GET_SEALS, F_SEAL_FUTURE_WRITE, F_SEAL_WRITE,
                             check_resize, seals_fcntl)
from .hostfs import HOST_FILE_IO
from .sysctl import SysctlIO
from .locks import F_RDLCK, F_UNLCK, F_WRLCK, FLOCK, LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN, OFFSET_MAX
from .mounts import DIR_IO, Loc
from .namei import R_OK, W_OK, X_OK, permission
from .pipes import PIPEFS, FifoEnd, FifoOpen, Pipe, PipeEnd

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

O_ACCMODE = os.O_ACCMODE
O_CREAT, O_EXCL, O_TRUNC = os.O_CREAT, os.O_EXCL, os.O_TRUNC
O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC = os.O_DIRECTORY, os.O_NOFOLLOW, os.O_CLOEXEC
O_NONBLOCK, O_NOCTTY = os.O_NONBLOCK, os.O_NOCTTY
O_TMPFILE = getattr(os, "O_TMPFILE", 0o20200000)
O_LARGEFILE = 0o100000
O_NOATIME = 0o1000000
O_ASYNC = 0o20000
_OPEN_ONLY = O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC   # not kept in the description
_WANT = {os.O_RDONLY: R_OK, os.O_WRONLY: W_OK, os.O_RDWR: R_OK | W_OK, O_ACCMODE: R_OK | W_OK}   # 3: ioctl-only, checked for both

F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW, F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG = 5, 6, 7, 8, 9, 10, 11
F_SETOWN_EX, F_GETOWN_EX = 15, 16
F_OWNER_TID, F_OWNER_PID, F_OWNER_PGRP = 0, 1, 2
OWNER_EX = struct.Struct("<ii")
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
F_SETLEASE, F_GETLEASE, F_NOTIFY = 1024, 1025, 1026
F_DUPFD_CLOEXEC, F_SETPIPE_SZ, F_GETPIPE_SZ = 1030, 1031, 1032
F_CREATED_QUERY = 1028
FD_CLOEXEC = 1
FIONBIO, FIOASYNC, FIONCLEX, FIOCLEX = 0x5421, 0x5452, 0x5450, 0x5451
_INT = struct.Struct("<i")


# --- open ----------------------------------------------------------------------------

def do_open(srv: VfsServer, req: Request) -> Any:
    fd = _open(srv, req)
    fp = srv.procs.get(req.caller)
    if type(fd) is int and fp is not None:   # (a FIFO open that waits: no path kept)
        b = req.msg.body
        srv.procfs.opened(fp, b.dirfd, b.path, fd)
    return fd


def do_openat2(srv: VfsServer, req: Request) -> Any:
    """openat2: the RESOLVE_* rules judged on a walk first (``resolve``), then the
    ordinary open -- with the start directory as '/' for RESOLVE_IN_ROOT."""
    b = req.msg.body
    fp = caller_proc(srv, req)
    rules = b.resolve
    if rules & resolve.RESOLVE_CACHED and b.flags & (O_CREAT | O_TRUNC | O_TMPFILE):
        raise SysError(errno.EAGAIN)          # nothing is cached: such an open would block
    if rules & ~resolve.RESOLVE_CACHED:
        follow_last = not b.flags & (O_NOFOLLOW | O_EXCL if b.flags & O_CREAT else O_NOFOLLOW)
        resolve.check(srv, fp, b.dirfd, b.path, rules, bool(follow_last))
    if not rules & resolve.RESOLVE_IN_ROOT:
        return do_open(srv, req)
    old = resolve.in_root(srv, fp, b.dirfd)
    try:
        return do_open(srv, req)
    finally:
        fp.root = old


def _open(srv: VfsServer, req: Request) -> Any:
    b = req.msg.body
    fp = caller_proc(srv, req)
    flags = b.flags
    path = b.path
    fp.lowest_free()                              # EMFILE comes first, as on Linux
    if flags & O_PATH:
        flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
    acc = flags & O_ACCMODE
    if flags & O_TMPFILE & ~O_DIRECTORY:          # build_open_flags: the form, then writable
        if flags & (O_TMPFILE | O_CREAT) != O_TMPFILE or acc == os.O_RDONLY:
            raise SysError(errno.EINVAL)
        return _open_tmpfile(srv, fp, b.dirfd, path, flags, b.mode)
    if flags & O_CREAT and flags & O_DIRECTORY:
        raise SysError(errno.EINVAL)
    namei = srv.namei
    follow = not flags & O_NOFOLLOW
    created = False
    if flags & O_CREAT:
        nd = namei.lookup(fp, b.dirfd, path, parent=True)
        if nd.last in (b"", b".", b"..") or nd.trailing:
            raise SysError(errno.EISDIR)          # O_CREAT and a trailing '/': Linux too
        if flags & O_EXCL:
            loc = namei.child(nd)
            if loc is not None:
                raise SysError(errno.EEXIST)
        elif follow:
            nd, loc = namei.follow_last(fp, nd)
            if loc is None and nd.trailing:
                raise SysError(errno.EISDIR)      # a dangling link to "name/"
        else:
            loc = namei.child(nd)
        if loc is None:
            fs, dnode = nd.loc
            if fs.readonly:
                raise SysError(errno.EROFS)
            permission(fp, fs, dnode, W_OK | X_OK)
            node = fs.mknod(dnode, nd.last, S_IFREG | (b.mode & 0o7777 & ~fp.umask),
                            fp.euid, fp.egid)
            loc = Loc(fs, node)
            created = True
    else:
        loc = namei.lookup(fp, b.dirfd, path, follow=follow).loc
    fs, node = loc
    fmt = fs.mode(node) & S_IFMT
    if flags & O_DIRECTORY and fmt != S_IFDIR:
        raise SysError(errno.ENOTDIR)
    if fmt == S_IFLNK and not flags & O_PATH:
        raise SysError(errno.ELOOP)               # O_NOFOLLOW on a symlink
    cloexec = bool(flags & O_CLOEXEC)
    status = flags & ~_OPEN_ONLY | O_LARGEFILE      # 64-bit Linux forces it: F_GETFL shows it
    if flags & O_PATH:
        of = srv.open_file(fs, node, None, status)
        return _install(srv, fp, of, cloexec)
    if fmt == S_IFDIR and (acc != os.O_RDONLY or flags & O_CREAT):
        raise SysError(errno.EISDIR)
    if not created:
        want = _WANT[acc] | (W_OK if flags & O_TRUNC else 0)
        if want & W_OK:
            check_rofs(fs, node)
        permission(fp, fs, node, want)
        if flags & O_NOATIME and fp.euid != 0 and fp.euid != fs.attr3(node)[1]:
            raise SysError(errno.EPERM)           # O_NOATIME: the owner's (or root's) only
    if fmt == S_IFREG:
        def finish() -> int:
            if flags & O_TRUNC and not created:
                drop_setid(fp, fs, node)           # O_TRUNC is a truncate (Linux do_truncate)
            if fs.kind == "ramfs":
                sealed = node in srv.seals          # a memfd reopened by /proc/PID/fd/N
                if flags & O_TRUNC and not created:
                    if sealed:
                        check_resize(srv, node, 0)
                    fs.truncate(node, 0)
                of = srv.open_file(fs, node, srv.memfd_io if sealed else srv.ram_io, status)
            elif acc != os.O_RDONLY and (write := fs_writer(fs, node)) is not None:
                hfd = fs.open_host(node, os.O_RDONLY, fp)   # a root-writable /proc/sys file
                of = srv.open_file(fs, node, SysctlIO(write), status, hfd)
            else:
                hfd = fs.open_host(node, flags, fp)
                of = srv.open_file(fs, node, HOST_FILE_IO, status, hfd)
            of.path = path
            of.created = created
            return _install(srv, fp, of, cloexec)
        if srv.locks.files and not created:
            writing = acc != os.O_RDONLY or bool(flags & O_TRUNC)
            if _break_leases(srv, req, Loc(fs, node), writing, bool(flags & O_NONBLOCK), finish):
                return None
        return finish()
    elif fmt == S_IFDIR:
        of = srv.open_file(fs, node, DIR_IO, status)
    elif fmt == 0o010000:                          # S_IFIFO
        return _open_fifo(srv, req, fp, loc, status, cloexec)
    elif fmt == 0o020000:                          # S_IFCHR
        if type(node) is DeviceAlias:
            dev = node.device                      # that very console, reopened
        else:
            rdev = node.rdev if fs.kind == "ramfs" else node.st.st_rdev
            dev = srv.devices.get(rdev)
        if dev is None:
            raise SysError(errno.ENXIO)
        of = srv.open_file(fs, node, dev, status, req=req)
    else:                                         # block devices, sockets
        raise SysError(errno.ENXIO)
    of.path = path
    return _install(srv, fp, of, cloexec)


def _open_tmpfile(srv: VfsServer, fp: Fproc, dirfd: int, path: bytes, flags: int,
                  mode: int) -> int:
    """O_TMPFILE: an unnamed regular file in the ramfs directory ``path``; linkat
    (AT_EMPTY_PATH or /proc/self/fd/N) may name it later unless O_EXCL."""
    loc = srv.namei.lookup(fp, dirfd, path).loc
    fs, dnode = loc
    if fs.mode(dnode) & S_IFMT != S_IFDIR:
        raise SysError(errno.ENOTDIR)
    if fs.kind != "ramfs":
        raise SysError(errno.EOPNOTSUPP)
    permission(fp, fs, dnode, W_OK | X_OK)
    node = fs.anon_file(S_IFREG | (mode & 0o7777 & ~fp.umask), fp.euid, fp.egid,
                        linkable=not flags & O_EXCL)
    status = flags & ~(_OPEN_ONLY | O_TMPFILE) | O_LARGEFILE
    of = srv.open_file(fs, node, srv.ram_io, status)
    of.path = path.rstrip(b"/") + b"/#%d" % node.ino
    return _install(srv, fp, of, bool(flags & O_CLOEXEC))


def _break_leases(srv: VfsServer, req: Request, loc: Loc, writing: bool, nonblock: bool,
                  finish: Any) -> bool:
    """An open that meets a lease it breaks: the holders get their lease-break
    signal; True when the open was parked (it finishes when they gave way, or
    after lease-break-time)."""
    locks = srv.locks

    def signal(of: OpenFile, sig: int) -> None:
        pid = locks.owners.get(of, 0)
        if pid > 0:
            srv.send_signal(pid, sig)

    waiter = locks.break_lease(req, locks.key_of(loc.fs, loc.node), writing, nonblock,
                               finish, signal)
    if waiter is None:
        return False
    srv.after(srv.lease_break_time, lambda: locks.lease_timeout(waiter))
    return True


def _install(srv: VfsServer, fp: Fproc, of: OpenFile, cloexec: bool) -> int:
    try:
        return fp.add(of, cloexec)
    except SysError:
        srv.drop(of)
        raise


def _open_fifo(srv: VfsServer, req: Request, fp: Fproc, loc: Loc, status: int, cloexec: bool) -> Any:
    if loc.fs is PIPEFS:
        # an anonymous pipe reached through its magic link (/proc/PID/fd/N,
        # /dev/stdin...): Linux opens that very pipe as if it were a FIFO
        pipe = loc.node
        io: PipeEnd = PipeEnd(pipe)
    elif loc.fs.kind != "ramfs":
        raise SysError(errno.ENXIO)                # host FIFOs would block the server
    else:
        pipe = srv.fifos.get(loc.node)
        if pipe is None:
            pipe = srv.fifos[loc.node] = Pipe(fp.euid, fp.egid)
        io = FifoEnd(pipe, srv.fifos, loc.node)
    of = srv.open_file(loc.fs, loc.node, io, status)
    if loc.fs is PIPEFS:
        return _install(srv, fp, of, cloexec)     # Linux fifo_open: no partner wait for pipes
    acc = status & O_ACCMODE
    need_writer = acc == os.O_RDONLY and not pipe.writers and not status & O_NONBLOCK
    need_reader = acc == os.O_WRONLY and not pipe.readers
    if need_reader and status & O_NONBLOCK:
        srv.drop(of)
        raise SysError(errno.ENXIO)
    if not (need_writer or need_reader):
        return _install(srv, fp, of, cloexec)
    waiter = FifoOpen(req, pipe, need_writer, lambda: _install(srv, fp, of, cloexec),
                      lambda: srv.drop(of))
    pipe.open_waiters.append(waiter)
    srv.block(req.caller, waiter)
    return None


def do_close(srv: VfsServer, req: Request) -> int:
    fp = caller_proc(srv, req)
    srv.close_fd(fp, req.msg.body.fd)
    return 0


# --- descriptors -----------------------------------------------------------------------

def do_dup(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    of = fp.get(b.fd)
    if b.min_fd < 0:
        raise SysError(errno.EINVAL)
    if b.min_fd >= HIDDEN_FD_BASE and srv.seals.get(of.node, 0) & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
        raise SysError(errno.EPERM)             # the write-back file of a shared map
    fd = fp.add(of, bool(b.cloexec), b.min_fd)
    of.refs += 1
    return fd


def do_dup2(srv: VfsServer, req: Request) -> int:
    """dup2, and dup3 when ``flags`` has O_CLOEXEC.  dup3(fd, fd, 0) must be refused
    by the kernel (this message cannot tell it from dup2)."""
    b = req.msg.body
    fp = caller_proc(srv, req)
    if b.flags & ~O_CLOEXEC:
        raise SysError(errno.EINVAL)
    of = fp.get(b.oldfd)
    newfd = b.newfd
    if newfd == b.oldfd:
        if b.flags:
            raise SysError(errno.EINVAL)
        return newfd
    if not 0 <= newfd < fp.nofile:
        raise SysError(errno.EBADF)
    of.refs += 1
    old = fp.fds[newfd] if newfd < len(fp.fds) else None
    if old is not None:
        fp.fds[newfd] = None
        srv.locks.closed(fp.pid, old)
        srv.drop(old)                             # closed silently, as dup2 does
    fp.install(of, newfd, bool(b.flags & O_CLOEXEC))
    return newfd


def do_pipe(srv: VfsServer, req: Request) -> VfsPipeReply:
    b = req.msg.body
    fp = caller_proc(srv, req)
    if b.flags & ~(O_CLOEXEC | O_NONBLOCK | getattr(os, "O_DIRECT", 0o40000)):
        raise SysError(errno.EINVAL)
    fp.lowest_free(fp.lowest_free() + 1)          # EMFILE unless two fds are free
    pipe = Pipe(fp.euid, fp.egid)
    nb = b.flags & O_NONBLOCK
    cloexec = bool(b.flags & O_CLOEXEC)
    r = srv.open_file(PIPEFS, pipe, PipeEnd(pipe), os.O_RDONLY | nb)
    w = srv.open_file(PIPEFS, pipe, PipeEnd(pipe), os.O_WRONLY | nb)
    rfd = fp.add(r, cloexec)
    wfd = fp.add(w, cloexec)
    return VfsPipeReply(read_fd=rfd, write_fd=wfd)


def do_fcntl(srv: VfsServer, req: Request) -> Any:
    b = req.msg.body
    fp = caller_proc(srv, req)
    of = fp.get(b.fd)
    cmd, arg = b.cmd, b.arg
    if cmd == F_GETFD:
        return FD_CLOEXEC if fp.is_cloexec(b.fd) else 0
    if cmd == F_SETFD:
        if b.fd < len(fp.cloexec):
            fp.cloexec[b.fd] = bool(arg & FD_CLOEXEC)
        return 0
    if cmd == F_GETFL:
        return of.flags
    if cmd == F_CREATED_QUERY:
        return int(of.created)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        if not 0 <= arg < fp.nofile:
            raise SysError(errno.EINVAL)
        fd = fp.add(of, cmd == F_DUPFD_CLOEXEC, arg)
        of.refs += 1
        return fd
    if of.flags & O_PATH:
        raise SysError(errno.EBADF)
    if cmd == F_SETFL:
        of.flags = (of.flags & ~SETFL_MASK) | (arg & SETFL_MASK)
        srv.locks.async_io(of)
        return 0
    if cmd in (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        return _lock(srv, req, fp, of, cmd, b.data)
    locks = srv.locks
    if cmd == F_SETOWN:                     # an int: -pgrp for a process group
        argi = arg & 0xFFFFFFFF
        locks.set_owner(of, argi - (1 << 32) if argi & 0x80000000 else argi)
        return 0
    if cmd == F_GETOWN:
        return locks.owners.get(of, 0)
    if cmd == F_SETOWN_EX:
        if len(b.data) < OWNER_EX.size:
            raise SysError(errno.EFAULT)
        kind, pid = OWNER_EX.unpack_from(b.data)
        if kind not in (F_OWNER_TID, F_OWNER_PID, F_OWNER_PGRP):
            raise SysError(errno.EINVAL)
        locks.set_owner(of, -pid if kind == F_OWNER_PGRP else pid, kind)
        return 0
    if cmd == F_GETOWN_EX:
        owner = locks.owners.get(of, 0)
        kind = locks.owner_kinds.get(of, F_OWNER_PGRP if owner < 0 else F_OWNER_PID)
        return VfsIoctlReply(result=0, data=OWNER_EX.pack(kind, abs(owner)))
    if cmd == F_SETSIG:
        if not 0 <= arg <= 64:
            raise SysError(errno.EINVAL)
        locks.sigs[of] = arg
        return 0
    if cmd == F_GETSIG:
        return locks.sigs.get(of, 0)
    if cmd == F_GETLEASE:
        return locks.getlease(of) if _lease_file(of) else F_UNLCK
    if cmd == F_SETLEASE:
        return _setlease(srv, fp, of, arg)
    if cmd in (F_ADD_SEALS, F_GET_SEALS):
        return seals_fcntl(srv, of, cmd, arg)
    if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ):
        if not isinstance(of.io, PipeEnd):
            raise SysError(errno.EBADF)
        pipe = of.io.pipe
        if cmd == F_GETPIPE_SZ:
            return pipe.capacity
        return _set_pipe_size(srv, fp, pipe, arg)
    raise SysError(errno.EINVAL)


PAGE = 4096


def _set_pipe_size(srv: VfsServer, fp: Fproc, pipe: Pipe, arg: int) -> int:
    """F_SETPIPE_SZ: a power of two of pages, at least one; over pipe-max-size only
    with CAP_SYS_RESOURCE (root's, if the host side has it; EPERM); never below
    what the pipe holds (EBUSY)."""
    if arg < 0 or arg > 1 << 31:
        raise SysError(errno.EINVAL)
    size = PAGE
    while size < arg:
        size <<= 1
    if size > srv.pipe_max_size and not (fp.euid == 0 and root_capable(CAP_SYS_RESOURCE)):
        raise SysError(errno.EPERM)
    if size < pipe.size:
        raise SysError(errno.EBUSY)
    pipe.capacity = size
    pipe.pump()
    return size


def _lock(srv: VfsServer, req: Request, fp: Fproc, of: OpenFile, cmd: int, data: bytes) -> Any:
    """Record locks, POSIX (owned by the process) or OFD (by the description)."""
    if len(data) < FLOCK.size:
        raise SysError(errno.EFAULT)
    ltype, whence, start, length, pid = FLOCK.unpack_from(data)
    ofd = cmd in (F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW)
    if ofd and pid != 0:
        raise SysError(errno.EINVAL)
    if ltype not in (F_RDLCK, F_WRLCK, F_UNLCK):
        raise SysError(errno.EINVAL)
    lo, hi = srv.locks.range_of(of, whence, start, length)
    owner = ("o", id(of)) if ofd else ("p", fp.pid)
    if cmd in (F_GETLK, F_OFD_GETLK):
        if ltype == F_UNLCK:
            raise SysError(errno.EINVAL)
        lk = srv.locks.getlk(of, owner, ltype, lo, hi)
        if lk is None:
            out = FLOCK.pack(F_UNLCK, whence, start, length, pid)
        else:
            out = FLOCK.pack(lk.type, 0, lk.start, 0 if lk.end == OFFSET_MAX else lk.end - lk.start + 1,
                             lk.pid)
        return VfsIoctlReply(result=0, data=out)
    if (ltype == F_RDLCK and not of.readable) or (ltype == F_WRLCK and not of.writable):
        raise SysError(errno.EBADF)
    return srv.locks.setlk(req, of, owner, ltype, lo, hi, -1 if ofd else fp.pid,
                           wait=cmd in (F_SETLKW, F_OFD_SETLKW))


def _lease_file(of: OpenFile) -> bool:
    return of.fs.mode(of.node) & S_IFMT == S_IFREG


def _setlease(srv: VfsServer, fp: Fproc, of: OpenFile, arg: int) -> int:
    """F_SETLEASE: regular files only (EINVAL), by their owner or root (EACCES)."""
    if arg not in (F_RDLCK, F_WRLCK, F_UNLCK):
        raise SysError(errno.EINVAL)
    if not _lease_file(of):
        raise SysError(errno.EINVAL)
    st = of.fs.stat_reply(of.node, who=fp)
    if fp.euid != 0 and fp.euid != st.uid:
        raise SysError(errno.EACCES)
    key = srv.locks.key(of)
    seen: set[int] = set()
    total = writers = 0
    for proc in srv.procs.values():
        for other in proc.fds:
            if other is None or id(other) in seen or other.flags & O_PATH:
                continue
            seen.add(id(other))
            if other.fs is of.fs and srv.locks.key(other) == key:
                total += 1
                writers += other.writable
    result = srv.locks.setlease(of, arg, (total, writers))
    if arg != F_UNLCK:
        srv.locks.owners.setdefault(of, fp.pid)
    return result


def do_flock(srv: VfsServer, req: Request) -> Any:
    """flock: the description's lock (see ``locks``); waits unless LOCK_NB."""
    b = req.msg.body
    fp = caller_proc(srv, req)
    of = fp.io_file(b.fd)
    if (b.op & ~LOCK_NB) not in (LOCK_SH, LOCK_EX, LOCK_UN):
        raise SysError(errno.EINVAL)
    return srv.locks.flock(req, of, b.op)


def do_ioctl(srv: VfsServer, req: Request) -> Any:
    b = req.msg.body
    fp = caller_proc(srv, req)
    of = fp.io_file(b.fd)
    request = b.request & 0xFFFFFFFF
    if request == FIOCLEX or request == FIONCLEX:
        if b.fd < len(fp.cloexec):
            fp.cloexec[b.fd] = request == FIOCLEX
        return 0
    if request == FIONBIO:
        if len(b.data) < 4:
            raise SysError(errno.EFAULT)
        on = _INT.unpack_from(b.data)[0]
        of.flags = of.flags | O_NONBLOCK if on else of.flags & ~O_NONBLOCK
        return 0
    if request == FIOASYNC:
        if len(b.data) < 4:
            raise SysError(errno.EFAULT)
        on = _INT.unpack_from(b.data)[0]
        of.flags = of.flags | O_ASYNC if on else of.flags & ~O_ASYNC
        srv.locks.async_io(of)
        return 0
    result, out = of.io.ioctl(req, of, request, b.data)
    return VfsIoctlReply(result=result, data=out)


def do_fdinfo(srv: VfsServer, req: Request) -> VfsNodeReply:
    fp = caller_proc(srv, req)
    of = fp.get(req.msg.body.fd)
    st = of.fs.stat_reply(of.node, who=fp)
    return VfsNodeReply(dev=st.dev, ino=st.ino, mode=st.mode, uid=st.uid, gid=st.gid,
                        size=st.size, flags=of.flags, offset=of.offset,
                        host_path=of.fs.host_path(of.node))
