"""Space and copies inside the VFS: fallocate, copy_file_range/sendfile/splice/tee,
memfd_create with its seals, chroot, close_range, RLIMIT_NOFILE notices.

A copy reads from one description's ``io`` and writes to the other's, in pieces,
inside the server: no data crosses to the kernel or the caller.  A pipe end that
would have to wait is answered by parking the copy on the pipe like a read (the
first piece only, as a read: once something moved, the copy returns what it has).
"""
from __future__ import annotations

import errno
import os
import stat
import weakref
from typing import TYPE_CHECKING, Any

from ..lib.errors import SysError
from ..lib.protocol import (COPY_RANGE, COPY_SENDFILE, COPY_SPLICE, COPY_TEE,
                            VfsCopyReply, trusted_sender)
from .fdtable import NR_OPEN, O_PATH, OpenFile
from .handlers_common import caller_proc, drop_setid
from .mounts import RamFileIO
from .pipes import PipeEnd
from .sockets import SocketIO

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

S_IFMT, S_IFREG, S_IFDIR = 0o170000, 0o100000, 0o040000
PAGE = 4096
PIECE = 1 << 16                       # one read+write of a copy
MAX_FILE = (1 << 63) - 1

# --- fallocate -----------------------------------------------------------------------

FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_NO_HIDE_STALE = 1, 2, 4
FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_ZERO_RANGE, FALLOC_FL_INSERT_RANGE = 8, 0x10, 0x20
FALLOC_FL_UNSHARE_RANGE = 0x40
_FALLOC_ALL = 0x7F


def do_fallocate(srv: VfsServer, req: Request) -> int:
    """As tmpfs (``shmem_fallocate``): allocate (0, KEEP_SIZE) or punch a hole
    (PUNCH_HOLE|KEEP_SIZE); the other modes are EOPNOTSUPP.  Linux's checks first:
    EINVAL for a bad range or mode mix, EBADF unless open for writing, ENODEV
    for what is not a regular file or directory, ESPIPE for a pipe."""
    b = req.msg.body
    fp = caller_proc(srv, req)
    mode, offset, length = b.mode, b.offset, b.length
    if offset < 0 or length <= 0:
        raise SysError(errno.EINVAL)
    if mode & ~_FALLOC_ALL:
        raise SysError(errno.EOPNOTSUPP)
    if mode & FALLOC_FL_PUNCH_HOLE and not mode & FALLOC_FL_KEEP_SIZE:
        raise SysError(errno.EOPNOTSUPP)
    if mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE) and \
            mode & ~(FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE):
        raise SysError(errno.EINVAL)
    of = fp.get(b.fd)
    if of.flags & O_PATH or not of.writable:
        raise SysError(errno.EBADF)
    if isinstance(of.io, PipeEnd):
        raise SysError(errno.ESPIPE)
    fmt = of.fs.mode(of.node) & S_IFMT
    if fmt == S_IFDIR:
        raise SysError(errno.EISDIR)
    if fmt != S_IFREG:
        raise SysError(errno.ENODEV)
    if of.flags & os.O_APPEND and mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE
                                          | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE):
        raise SysError(errno.EPERM)
    if offset + length > MAX_FILE or offset + length < 0:
        raise SysError(errno.EFBIG)
    if of.fs.kind != "ramfs":
        _host_fallocate(of, mode, offset, length)
        drop_setid(fp, of.fs, of.node)      # the host does not: it sees the VFS, root
        return 0
    if mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE):
        raise SysError(errno.EOPNOTSUPP)
    node = of.node
    seals = srv.seals.get(node, 0)
    if mode & FALLOC_FL_PUNCH_HOLE:
        if seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
            raise SysError(errno.EPERM)
        drop_setid(fp, of.fs, node)
        srv.ramfs.punch_hole(node, offset, length)
        return 0
    end = offset + length
    if seals & F_SEAL_GROW and end > node._size and not mode & FALLOC_FL_KEEP_SIZE:
        raise SysError(errno.EPERM)
    drop_setid(fp, of.fs, node)
    srv.ramfs.allocate(node, offset, length, keep_size=bool(mode & FALLOC_FL_KEEP_SIZE))
    return 0


def _host_fallocate(of: OpenFile, mode: int, offset: int, length: int) -> int:
    try:
        os.posix_fallocate(of.hfd, offset, length) if mode == 0 else \
            _raw_fallocate(of.hfd, mode, offset, length)
    except OSError as exc:
        raise SysError(exc.errno or errno.EIO) from None
    return 0


def _raw_fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.fallocate(fd, mode, ctypes.c_long(offset), ctypes.c_long(length)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


# --- copies ----------------------------------------------------------------------------

def _copy_end(fp: Any, fd: int, reading: bool) -> OpenFile:
    of = fp.get(fd)
    if of.flags & O_PATH or not (of.readable if reading else of.writable):
        raise SysError(errno.EBADF)
    return of


def do_copy(srv: VfsServer, req: Request) -> Any:
    b = req.msg.body
    fp = caller_proc(srv, req)
    src = _copy_end(fp, b.in_fd, True)
    dst = _copy_end(fp, b.out_fd, False)
    src_pipe, dst_pipe = isinstance(src.io, PipeEnd), isinstance(dst.io, PipeEnd)
    kind = b.kind
    count = b.count
    in_off, out_off = b.in_off, b.out_off
    if kind == COPY_RANGE:
        for of in (src, dst):
            fmt = of.fs.mode(of.node) & S_IFMT
            if fmt == S_IFDIR:
                raise SysError(errno.EISDIR)
            if fmt != S_IFREG:
                raise SysError(errno.EINVAL)
        if dst.flags & os.O_APPEND:
            raise SysError(errno.EBADF)
        if src.node is dst.node and src.fs is dst.fs:
            a = src.offset if in_off < 0 else in_off
            o = dst.offset if out_off < 0 else out_off
            if a < o + count and o < a + count:
                raise SysError(errno.EINVAL)       # overlapping ranges of one file
    elif kind == COPY_SENDFILE:
        if src_pipe or src.fs.mode(src.node) & S_IFMT == S_IFDIR:
            raise SysError(errno.EINVAL)
    elif kind == COPY_SPLICE:
        if not (src_pipe or dst_pipe):
            raise SysError(errno.EINVAL)
        for of, is_pipe in ((src, src_pipe), (dst, dst_pipe)):
            # the other end: a file that splices -- a regular file, or one of the
            # memory devices (they never wait); a directory, an event fd, a
            # terminal cannot here (EINVAL)
            if not is_pipe and not _splices(of) and not isinstance(of.io, SocketIO):
                raise SysError(errno.EINVAL)
        if (src_pipe and in_off >= 0) or (dst_pipe and out_off >= 0):
            raise SysError(errno.ESPIPE)
        if src_pipe and dst_pipe and src.io.pipe is dst.io.pipe:
            raise SysError(errno.EINVAL)
        if dst.flags & os.O_APPEND and not dst_pipe:
            raise SysError(errno.EINVAL)
    elif kind == COPY_TEE:
        if not (src_pipe and dst_pipe) or src.io.pipe is dst.io.pipe:
            raise SysError(errno.EINVAL)
    else:
        raise SysError(errno.EINVAL)
    if count == 0:
        return VfsCopyReply(result=0, in_off=in_off, out_off=out_off)
    if kind == COPY_TEE:
        return _tee(src.io.pipe, dst, req, count, b.flags)
    if kind == COPY_SPLICE and (isinstance(src.io, SocketIO) or isinstance(dst.io, SocketIO)):
        if in_off >= 0 or out_off >= 0:
            raise SysError(errno.EINVAL)          # a socket cannot pread/pwrite (Linux)
        return _socket_splice(srv, req, src, dst, count, b.flags)
    return _move(srv, req, src, dst, in_off, out_off, count, b.flags)


SPLICE_F_NONBLOCK = 2
S_IFCHR = 0o020000
MEMORY_DEVICES = {os.makedev(1, minor) for minor in (3, 5, 7, 8, 9)}  # null zero full random urandom


def _splices(of: OpenFile) -> bool:
    fmt = of.fs.mode(of.node) & S_IFMT
    if fmt == S_IFREG:
        return bool(getattr(of.io, "seekable", False))
    return fmt == S_IFCHR and of.fs.stat_reply(of.node).rdev in MEMORY_DEVICES


def _tee(pipe: Any, dst: OpenFile, req: Request, count: int, flags: int) -> Any:
    """tee: what ``pipe`` holds now, copied into ``dst`` (the data stays)."""
    if not pipe.size:
        if not pipe.writers:
            return VfsCopyReply(result=0)
        raise SysError(errno.EAGAIN)       # (a blocking tee would wait: we do not)
    data = b"".join(pipe.chunks)[pipe.head:pipe.head + min(count, pipe.size)]
    out = dst.io.pipe
    room = out.capacity - out.size
    if not room:
        raise SysError(errno.EAGAIN)
    data = data[:room]
    out._put(data)
    out.pump()
    return VfsCopyReply(result=len(data))


def _move(srv: VfsServer, req: Request, src: OpenFile, dst: OpenFile, in_off: int,
          out_off: int, count: int, flags: int) -> Any:
    done = 0
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    while done < count:
        want = min(count - done, PIECE)
        if isinstance(src.io, PipeEnd):
            pipe = src.io.pipe
            if not pipe.size:
                if done or not pipe.writers:
                    break
                if nonblock or src.flags & os.O_NONBLOCK:
                    raise SysError(errno.EAGAIN)
                return _park_on_pipe(srv, req, src, dst, in_off, out_off, count, flags)
            want = min(want, pipe.size)
        if isinstance(dst.io, PipeEnd):
            pipe = dst.io.pipe
            if not pipe.readers:
                if done:
                    break
                raise SysError(errno.EPIPE)
            room = pipe.capacity - pipe.size
            if room <= 0:
                if done:
                    break
                if nonblock or dst.flags & os.O_NONBLOCK:
                    raise SysError(errno.EAGAIN)
                return _park_on_pipe(srv, req, src, dst, in_off, out_off, count, flags)
            want = min(want, room)
        data = src.io.read(req, src, want, in_off + done if in_off >= 0 else -1)
        if not isinstance(data, (bytes, bytearray)):
            raise SysError(errno.EINVAL)       # a source that cannot be read at once
        if not data:
            break
        n = dst.io.write(req, dst, data, out_off + done if out_off >= 0 else -1)
        if not isinstance(n, int):
            raise SysError(errno.EINVAL)
        done += n
        if n < len(data):
            if in_off < 0 and getattr(src.io, "seekable", False):
                src.offset -= len(data) - n      # the unwritten rest stays in the source
            break
        if len(data) < want:
            break
    return VfsCopyReply(result=done, in_off=in_off + done if in_off >= 0 else -1,
                        out_off=out_off + done if out_off >= 0 else -1)


def _socket_splice(srv: VfsServer, req: Request, src: OpenFile, dst: OpenFile, count: int,
                   flags: int) -> Any:
    """splice between a pipe and a socket (NET's): one send or receive of what the
    pipe holds or has room for; an empty (full) pipe waits as _move's do."""
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    if isinstance(src.io, PipeEnd):
        pipe = src.io.pipe
        if not pipe.size:
            if not pipe.writers:
                return VfsCopyReply(result=0, in_off=-1, out_off=-1)
            if nonblock or src.flags & os.O_NONBLOCK:
                raise SysError(errno.EAGAIN)
            return _park(srv, req, pipe, lambda: None if pipe.size or not pipe.writers else
                         _WAIT, lambda: _socket_splice(srv, req, src, dst, count, flags))
        return dst.io.splice_from_pipe(req, dst, pipe, count, nonblock)
    pipe = dst.io.pipe
    if not pipe.readers:
        raise SysError(errno.EPIPE)
    if pipe.capacity - pipe.size <= 0:
        if nonblock or dst.flags & os.O_NONBLOCK:
            raise SysError(errno.EAGAIN)
        return _park(srv, req, pipe, lambda: None if pipe.capacity > pipe.size or
                     not pipe.readers else _WAIT,
                     lambda: _socket_splice(srv, req, src, dst, count, flags))
    return src.io.splice_to_pipe(req, src, pipe, count, nonblock)


_WAIT = object()          # a parked copy: still nothing to do
_ANSWERED = object()      # a parked copy went on to NET, whose answer replies


def _park(srv: VfsServer, req: Request, pipe: Any, still: Any, go: Any) -> None:
    """Park ``req`` on ``pipe`` until ``still()`` stops saying _WAIT; then ``go()``
    (its None: NET answers the request later)."""
    def retry() -> Any:
        if still() is _WAIT:
            return None
        answer = go()
        return _ANSWERED if answer is None else answer

    waiter = _CopyWait(srv, req, retry, pipe)
    waiter.waitq.subscribe(waiter)
    srv.block(req.caller, waiter)
    return None


class _CopyWait:
    """A splice that waits for data (or room) on a pipe: retried on each change."""

    def __init__(self, srv: VfsServer, req: Request, retry: Any, pipe: Any) -> None:
        self.srv, self.req, self.retry, self.pipe = srv, req, retry, pipe
        self.waitq = pipe.waitq
        self.scheduled = False

    def __call__(self, mask: int = -1) -> None:
        # a wake runs in the waker's stack: the copy itself runs right after it
        if self.scheduled:
            return
        self.scheduled = True
        if self.srv.nursery is None:
            self.run()
            return

        async def later() -> None:
            self.run()
        self.srv.nursery.start_soon(later)

    def run(self) -> None:
        self.scheduled = False
        if self.req.replied:
            return
        try:
            answer = self.retry()
        except SysError as exc:
            self._done()
            self.req.fail(exc.errno)
            return
        if answer is None:
            return
        self._done()
        if answer is not _ANSWERED:           # else NET's answer replies
            self.req.reply(answer)

    def _done(self) -> None:
        self.srv.unblock(self.req.caller, self)
        self._unwatch()

    def _unwatch(self) -> None:
        self.waitq.unsubscribe(self)

    def cancel(self, err: int) -> None:
        self._unwatch()
        if not self.req.replied:
            self.req.fail(err)


def _park_on_pipe(srv: VfsServer, req: Request, src: OpenFile, dst: OpenFile, in_off: int,
                  out_off: int, count: int, flags: int) -> None:
    pipe = src.io.pipe if isinstance(src.io, PipeEnd) and not src.io.pipe.size else dst.io.pipe

    def retry() -> Any:
        p = src.io.pipe if isinstance(src.io, PipeEnd) else None
        q = dst.io.pipe if isinstance(dst.io, PipeEnd) else None
        if p is not None and not p.size and p.writers:
            return None
        if q is not None and q.readers and q.capacity - q.size <= 0:
            return None
        return _move(srv, req, src, dst, in_off, out_off, count, flags | SPLICE_F_NONBLOCK)

    waiter = _CopyWait(srv, req, retry, pipe)
    waiter.waitq.subscribe(waiter)
    srv.block(req.caller, waiter)
    return None


# --- memfd and seals ---------------------------------------------------------------

F_ADD_SEALS, F_GET_SEALS = 1033, 1034
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_FUTURE_WRITE = 1, 2, 4, 8, 0x10
F_SEAL_EXEC = 0x20
_SEALS_ALL = 0x3F
MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_NOEXEC_SEAL = 1, 2, 8


class MemfdIO(RamFileIO):
    """A memfd's reads and writes: a ramfs file with no name, checked against its seals."""

    __slots__ = ("seals",)

    def __init__(self, ramfs: Any, seals: Any) -> None:
        super().__init__(ramfs)
        self.seals = seals

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> int:
        s = self.seals.get(of.node, 0)
        if s & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) and data:
            raise SysError(errno.EPERM)
        if s & F_SEAL_GROW and data:
            pos = of.node._size if of.flags & os.O_APPEND else (of.offset if offset < 0 else offset)
            if pos + len(data) > of.node._size:
                raise SysError(errno.EPERM)
        return super().write(req, of, data, offset)


def check_resize(srv: VfsServer, node: Any, size: int) -> None:
    """ftruncate of a sealed file: SHRINK/GROW seals say EPERM."""
    s = srv.seals.get(node, 0)
    if (s & F_SEAL_SHRINK and size < node._size) or (s & F_SEAL_GROW and size > node._size):
        raise SysError(errno.EPERM)


def do_memfd(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    fp.lowest_free()
    mode = stat.S_IFREG | (0o666 if b.flags & MFD_NOEXEC_SEAL else 0o777)
    fs = srv.mounts.root_fs
    node = fs.anon_file(mode, fp.euid, fp.egid)
    io = srv.memfd_io
    seals = F_SEAL_SEAL if not b.flags & (MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL) else 0
    if b.flags & MFD_NOEXEC_SEAL:
        seals |= F_SEAL_EXEC
    srv.seals[node] = seals
    of = srv.open_file(fs, node, io, os.O_RDWR | 0o100000)
    of.path = b"/memfd:" + b.path
    try:
        return fp.add(of, bool(b.flags & MFD_CLOEXEC))
    except SysError:
        srv.drop(of)
        raise


def seals_fcntl(srv: VfsServer, of: OpenFile, cmd: int, arg: int) -> int:
    """F_GET_SEALS/F_ADD_SEALS: a memfd's seals; any other ramfs file is a tmpfs
    file sealed with F_SEAL_SEAL; other files have none (EINVAL)."""
    if of.node not in srv.seals:
        if of.fs.kind != "ramfs" or of.fs.mode(of.node) & S_IFMT != S_IFREG:
            raise SysError(errno.EINVAL)
        if cmd == F_GET_SEALS:
            return F_SEAL_SEAL
        raise SysError(errno.EINVAL if arg & ~_SEALS_ALL else errno.EPERM)
    if cmd == F_GET_SEALS:
        return srv.seals[of.node]
    if arg & ~_SEALS_ALL:
        raise SysError(errno.EINVAL)
    if not of.writable:
        raise SysError(errno.EPERM)
    cur = srv.seals[of.node]
    if cur & F_SEAL_SEAL:
        raise SysError(errno.EPERM)
    if arg & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) & ~cur and arg & F_SEAL_WRITE:
        if _mapped_shared_writable(srv, of.node):
            raise SysError(errno.EBUSY)
    srv.seals[of.node] = cur | arg
    return 0


def _mapped_shared_writable(srv: VfsServer, node: Any) -> bool:
    """A writable shared map holds a hidden reference (the kernel's write-back file)."""
    for proc in srv.procs.values():
        for of in proc.hidden.values():
            if of.node is node and of.writable:
                return True
    return False


class SealTable(weakref.WeakKeyDictionary):
    """memfd inode -> its seals; gone with the inode.  Asking about any other
    vnode (a pipe, a pseudo file) just finds nothing."""

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return super().get(key, default)
        except TypeError:
            return default

    def __contains__(self, key: Any) -> bool:
        try:
            return super().__contains__(key)
        except TypeError:
            return False


def new_seal_table() -> SealTable:
    return SealTable()


# --- chroot, close_range, limits --------------------------------------------------------

def do_chroot(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    loc = srv.namei.lookup(fp, -100, b.path).loc
    if loc.fs.mode(loc.node) & S_IFMT != S_IFDIR:
        raise SysError(errno.ENOTDIR)
    from .namei import X_OK, permission
    permission(fp, loc.fs, loc.node, X_OK)
    if fp.euid != 0:
        raise SysError(errno.EPERM)
    srv.set_root(fp, loc)
    return 0


CLOSE_RANGE_CLOEXEC = 4


def do_close_range(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    last = min(b.last, len(fp.fds) - 1)
    for fd in range(b.first, last + 1):
        if fd >= len(fp.fds) or fp.fds[fd] is None:
            continue
        if b.flags & CLOSE_RANGE_CLOEXEC:
            fp.cloexec[fd] = True
        else:
            srv.close_fd(fp, fd)
    return 0


RLIMIT_FSIZE, RLIMIT_NOFILE = 1, 7


def do_set_limit(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    if not trusted_sender(req.msg.m_source):
        raise SysError(errno.EPERM)
    fp = srv.proc(b.pid)
    if b.resource == RLIMIT_NOFILE:
        fp.nofile = max(0, min(b.value, NR_OPEN))
    elif b.resource == RLIMIT_FSIZE:
        fp.fsize = b.value
    else:
        raise SysError(errno.EINVAL)
    return 0


