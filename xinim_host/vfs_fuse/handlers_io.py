"""Data calls: read, write (and pread/pwrite), lseek, getdents64, fsync, ftruncate, poll."""
from __future__ import annotations

import ctypes
import errno
import math
import os
import struct
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

import trio

from ..lib.errors import SysError
from ..lib.grants import GRANT_READ, GRANT_WRITE, Grant
from ..lib.protocol import DATA_MAX, FSYNC_ALL, FSYNC_FS, READ_MORE, VfsDataReply
from .handlers_space import check_resize
from .handlers_common import S_IFDIR, S_IFMT, caller_proc, drop_setid
from .hostfs import DIRENT64 as _DIRENT, HOST_FILE_IO
from .mounts import DIR_IO, fsize_check
from .parking import park
from ..lib.readiness import DEFAULT_POLLMASK, POLLNVAL, WaitQueue

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

_POLLFD = struct.Struct("<ihh")
_LIBC = ctypes.CDLL(None, use_errno=True)
DT_BY_FMT = {0o010000: 1, 0o020000: 2, 0o040000: 4, 0o060000: 6, 0o100000: 8,
             0o120000: 10, 0o140000: 12}


_READY = 0x1 | 0x8 | 0x10                   # POLLIN | POLLERR | POLLHUP: a read won't wait


def _open_fd(srv: VfsServer, req: Request, reading: bool) -> tuple[Any, Any]:
    """The caller's process and the description of the request's fd, opened for
    reading (or for writing): EBADF otherwise."""
    fp = srv.procs.get(req.caller) or caller_proc(srv, req)
    of = fp.get(req.msg.body.fd)
    if not (of.readable if reading else of.writable):
        raise SysError(errno.EBADF)
    return fp, of


def _read_offset(of: Any, offset: int) -> int | None:
    """A read's offset: READ_MORE (the rest of a stream read, which never waits) is
    -1, or None when the stream has nothing now; below -1 otherwise is EINVAL."""
    if offset >= -1:
        return offset
    if offset != READ_MORE:
        raise SysError(errno.EINVAL)
    if not of.io.seekable and not of.io.poll(of, 0x1) & _READY:
        return None
    return -1


def do_read(srv: VfsServer, req: Request) -> Any:
    b = req.msg.body
    _, of = _open_fd(srv, req, True)
    offset = _read_offset(of, b.offset)
    if offset is None:
        return VfsDataReply(result=0, data=b"")
    res = of.io.read(req, of, b.count if b.count < DATA_MAX else DATA_MAX, offset)
    if type(res) is bytes:
        if res and srv.inotify.watches:
            _accessed(srv, of)
        return VfsDataReply(result=len(res), data=res)
    return res


def _accessed(srv: VfsServer, of: Any) -> None:
    """A read of a ramfs file got bytes: inotify's IN_ACCESS."""
    if of.fs.kind == "ramfs":
        srv.ramfs.accessed("access", of.node)


def do_write(srv: VfsServer, req: Request) -> Any:
    b = req.msg.body
    fp, of = _open_fd(srv, req, False)
    if b.offset < -1:
        raise SysError(errno.EINVAL)
    if fp.euid and b.data:
        _before_file_write(srv, fp, of)
    return of.io.write(req, of, b.data, b.offset)


def _before_file_write(srv: VfsServer, fp: Any, of: Any) -> None:
    """A non-root caller writes bytes: a regular file loses its set-ID bits first."""
    if of.io is srv.ram_io or of.io is HOST_FILE_IO:
        drop_setid(fp, of.fs, of.node)


# --- the bulk data path: the caller's buffer through a grant (lib/grants.py) ---------

# A file moves in pieces of this size between the ramfs (or host file) and the
# caller's memory: one process_vm_writev/readv each.
BULK_PIECE = 1 << 20


def _grant(srv: VfsServer, req: Request, access: int) -> Grant:
    """The request's grant, if the kernel that sent it made it for this caller and
    this server (EFAULT otherwise)."""
    return srv.lattice.grants.check(req.msg.body.grant, req.msg.m_source, req.caller,
                                    srv.pid, access)


def do_read_grant(srv: VfsServer, req: Request) -> Any:
    """read/pread/readv straight into the caller's memory.  A file is read and
    copied piece by piece to the end of the grant or of the file; a stream
    (pipe, tty) takes at most DATA_MAX at first -- that one may wait, and then
    answers with its data in the reply as VFS_READ does -- and then only what
    is there without waiting (READ_MORE)."""
    b = req.msg.body
    g = _grant(srv, req, GRANT_WRITE)
    _, of = _open_fd(srv, req, True)
    io = of.io
    offset = _read_offset(of, b.offset)
    if offset is None:
        return 0
    read_grant = getattr(io, "read_grant", None)
    if read_grant is not None:       # another server copies (a socket: NET)
        return read_grant(req, of, g, offset)
    size = g.size
    piece = BULK_PIECE if io.seekable else DATA_MAX
    asked = size if size < piece else piece
    res = io.read(req, of, asked, offset)
    if type(res) is not bytes:
        return res                   # it waits: its reply carries the data
    done = 0
    while True:
        n = len(res)
        if not n:
            break
        ok = g.copy_to(done, res)
        done += ok
        if ok < n:
            if offset < 0 and io.seekable:
                of.offset -= n - ok      # the position covers what the caller got
            if not done:
                raise SysError(errno.EFAULT)
            break
        if n < asked or done >= size:
            break                    # a short read (the end), or the grant is full
        if not io.seekable and not io.poll(of, 0x1) & _READY:
            break                    # a stream: only what is there now
        want = size - done
        asked = want if want < piece else piece
        try:
            res = io.read(req, of, asked, offset if offset < 0 else offset + done)
        except SysError:
            break                    # what was read is the answer; the error comes next time
        if type(res) is not bytes:   # cannot happen for a ready stream; never wait here
            if hasattr(res, "close"):
                res.close()
            break
    if done and srv.inotify.watches:
        _accessed(srv, of)
    # an int: the server answers with its kept VfsDataReply of that count, no data
    return done


def do_write_grant(srv: VfsServer, req: Request) -> Any:
    """write/pwrite/writev from the caller's memory.  A file takes the whole grant,
    piece by piece; a stream one message's worth (DATA_MAX, so a pipe write up
    to PIPE_BUF stays atomic and a full pipe parks as with VFS_WRITE)."""
    b = req.msg.body
    g = _grant(srv, req, GRANT_READ)
    fp, of = _open_fd(srv, req, False)
    if b.offset < -1:
        raise SysError(errno.EINVAL)
    io = of.io
    size = g.size
    if fp.euid and size:
        _before_file_write(srv, fp, of)
    write_grant = getattr(io, "write_grant", None)
    if write_grant is not None:      # another server copies (a socket: NET)
        return write_grant(req, of, g, b.offset)
    if not io.seekable:
        data = g.copy_from(0, size if size < DATA_MAX else DATA_MAX)
        if not data and size:
            raise SysError(errno.EFAULT)
        return io.write(req, of, data, b.offset)
    done = 0
    while done < size:
        want = min(size - done, BULK_PIECE)
        data = g.copy_from(done, want)
        if not data:
            if done:
                break
            raise SysError(errno.EFAULT)
        try:
            n = io.write(req, of, data, b.offset if b.offset < 0 else b.offset + done)
        except SysError:
            if done:
                break
            raise
        if type(n) is not int:       # a device that answers later: only as the first piece
            if done:
                if hasattr(n, "close"):
                    n.close()
                break
            return n
        done += n
        if n < len(data) or len(data) < want:
            break
    return done


def do_getdents_grant(srv: VfsServer, req: Request) -> Any:
    """getdents64 into the caller's buffer: as many records as the grant holds, in
    one copy; a buffer that cannot take them is EFAULT with the position unmoved."""
    g = _grant(srv, req, GRANT_WRITE)
    of, out, pos = _dirents(srv, req, g.size)
    if out and g.copy_to(0, out) < len(out):
        raise SysError(errno.EFAULT)
    of.offset = pos
    return len(out)                  # (a kept VfsDataReply with no data, as for reads)


def do_lseek(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    of = fp.io_file(b.fd)
    pos = of.io.seek(of, b.offset, b.whence)
    of.offset = pos
    return pos


def do_getdents(srv: VfsServer, req: Request) -> VfsDataReply:
    """linux_dirent64 records from the fd's position on; '.' and '..' first.
    Ramfs positions are the directory's entry cookies (stable under changes);
    host directories are listed once per open/rewind and indexed."""
    of, out, pos = _dirents(srv, req, min(req.msg.body.count, DATA_MAX))
    of.offset = pos
    return VfsDataReply(result=len(out), data=out)


def _dirents(srv: VfsServer, req: Request, room: int) -> tuple[Any, bytes, int]:
    """The open directory, its records from the fd's position (at most ``room``
    bytes) and the position after them."""
    b = req.msg.body
    fp = caller_proc(srv, req)
    of = fp.io_file(b.fd)
    fs, node = of.fs, of.node
    if fs.mode(node) & S_IFMT != S_IFDIR:
        raise SysError(errno.ENOTDIR)
    out = bytearray()
    pos = of.offset
    full = False

    def emit(ino: int, off: int, dtype: int, name: bytes) -> bool:
        nonlocal full
        mark = len(out)
        _pack_dirent(out, ino, off, dtype, name)
        if len(out) > room:
            del out[mark:]
            full = True
            return False
        return True

    if fs.kind == "ramfs":
        if node.nlink == 0:
            raise SysError(errno.ENOENT)          # a removed directory
        if pos < 1 and emit(node.ino, 1, 4, b"."):
            pos = 1
        if pos == 1 and not full and emit((node.parent or node).ino, 2, 4, b".."):
            pos = 2
        if not full:
            for cookie, name, child in srv.ramfs.readdir_from(node, max(pos, 2)):
                if not emit(child.ino, cookie, DT_BY_FMT.get(child.mode & S_IFMT, 0), name):
                    break
                pos = cookie
    else:
        listing = of.dirlist
        if listing is None or pos == 0:
            listing = of.dirlist = _listing(srv, fs, node, fp)
        blob, ends = listing
        n = len(ends)
        if pos < n:                               # records pos.. that fit, in one slice
            start = ends[pos - 1] if pos else 0
            end = bisect_right(ends, start + room, pos, n)
            if end == pos:
                raise SysError(errno.EINVAL)      # not even one record fits
            return of, blob[start:ends[end - 1]], end
        return of, b"", pos
    if full and not out:
        raise SysError(errno.EINVAL)              # not even one record fits
    return of, bytes(out), pos


def _listing(srv: VfsServer, fs: Any, node: Any, fp: Any) -> tuple[bytes, list[int]]:
    """A host or synthetic directory listed once per open/rewind: its getdents64
    records ('.' and '..' first; record i has d_off i + 1) and where each ends."""
    out = bytearray()
    ends: list[int] = []
    parent = srv.namei.dotdot((fs, node))
    for ino, name in ((node.st.st_ino, b"."), (_ino(parent), b"..")):
        _pack_dirent(out, ino, len(ends) + 1, 4, name)
        ends.append(len(out))
    pack = getattr(fs, "pack_listing", None)
    if pack is not None:
        pack(node, out, ends)
    else:
        for name, ino, dtype in fs.listdir(node, fp):
            _pack_dirent(out, ino, len(ends) + 1, dtype, name)
            ends.append(len(out))
    return bytes(out), ends


def _pack_dirent(out: bytearray, ino: int, off: int, dtype: int, name: bytes) -> None:
    """Append one linux_dirent64 record (the name NUL-padded to 8 bytes)."""
    reclen = (_DIRENT.size + len(name) + 1 + 7) & ~7
    out += _DIRENT.pack(ino, off, reclen, dtype)
    out += name
    out += bytes(reclen - _DIRENT.size - len(name))


def _ino(loc: Any) -> int:
    fs, node = loc
    return node.ino if fs.kind == "ramfs" else node.st.st_ino


def do_fsync(srv: VfsServer, req: Request) -> Any:
    """fsync/fdatasync/syncfs/sync (VfsFsync.datasync says which).  Under --image a
    ramfs file's call parks until the journal has the data on disk."""
    how = req.msg.body.datasync
    journal = srv.journal
    if how == FSYNC_ALL:
        srv.ramfs.sync_caches()                   # what MAP_SHARED mappers stored
        return _journal_sync(journal) if journal is not None else 0
    fp = caller_proc(srv, req)
    of = fp.io_file(req.msg.body.fd)
    if how == FSYNC_FS:                           # any fd names its filesystem
        if of.fs.kind == "ramfs" and journal is not None:
            return _journal_sync(journal)
        if of.hfd >= 0 and of.fs.kind == "host":
            return _host_syncfs(of.hfd)
        return 0
    if not (of.io is srv.ram_io or of.io is HOST_FILE_IO or of.io is DIR_IO):
        raise SysError(errno.EINVAL)              # pipes, devices: nothing to sync
    if of.hfd >= 0:
        try:
            os.fsync(of.hfd)
        except OSError as exc:
            raise SysError(exc.errno or errno.EIO) from None
    elif of.fs.kind == "ramfs":
        srv.ramfs.sync_cache(of.node)
        if journal is not None:
            return _journal_sync(journal)
    return 0


async def _journal_sync(journal: Any) -> int:
    await journal.sync()                          # SysError(EIO) when the disk failed
    return 0


async def _host_syncfs(hfd: int) -> int:
    def run() -> None:
        if _LIBC.syncfs(hfd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    try:
        await trio.to_thread.run_sync(run)
    except OSError as exc:
        raise SysError(exc.errno or errno.EIO) from None
    return 0


def do_ftruncate(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    of = fp.io_file(b.fd)
    if b.length < 0 or not of.writable or of.fs.mode(of.node) & S_IFMT != 0o100000:
        raise SysError(errno.EINVAL)
    if of.node in srv.seals:
        check_resize(srv, of.node, b.length)
    fsize_check(srv, fp, b.length)
    drop_setid(fp, of.fs, of.node)
    if of.fs.kind == "ramfs":
        srv.ramfs.truncate(of.node, b.length)
    else:
        try:
            os.ftruncate(of.hfd, b.length)
        except OSError as exc:
            raise SysError(exc.errno or errno.EIO) from None
        of.node.t = 0
    return 0


# --- poll ------------------------------------------------------------------------------

def _short(value: int) -> int:
    """The low 16 bits as a C short (events and revents are shorts of any bits)."""
    value &= 0xFFFF
    return value - 0x10000 if value & 0x8000 else value


def _poll_once(fp: Any, entries: list[tuple[int, int]]) -> tuple[int, bytes]:
    out = bytearray(len(entries) * _POLLFD.size)
    ready = 0
    fds = fp.fds
    for i, (fd, events) in enumerate(entries):
        revents = 0
        if fd >= 0:
            of = fds[fd] if fd < len(fds) else None
            if of is None:
                revents = POLLNVAL
            elif of.io is None:
                revents = events & DEFAULT_POLLMASK
            else:
                revents = of.io.poll(of, events)
            if revents & 0xFFFF:
                ready += 1
        _POLLFD.pack_into(out, i * _POLLFD.size, fd, _short(events), _short(revents))
    return ready, bytes(out)


def do_poll(srv: VfsServer, req: Request) -> Any:
    b = req.msg.body
    fp = caller_proc(srv, req)
    if len(b.data) % _POLLFD.size:
        raise SysError(errno.EINVAL)
    return _poll(srv, req, fp, b.data, b.timeout_ms,
                 lambda ready, out: VfsDataReply(result=ready, data=out))


def do_poll_grant(srv: VfsServer, req: Request) -> Any:
    """poll of more fds than a message holds: the pollfd array read from and the
    revents written to the caller's memory through the kernel's grant."""
    b = req.msg.body
    fp = caller_proc(srv, req)
    if b.nfds > fp.nofile:
        raise SysError(errno.EINVAL)              # RLIMIT_NOFILE, as Linux
    g = _grant(srv, req, GRANT_READ | GRANT_WRITE)
    size = b.nfds * _POLLFD.size
    if size > g.size:
        raise SysError(errno.EFAULT)
    raw = g.copy_from(0, size)
    if len(raw) < size:
        raise SysError(errno.EFAULT)

    def deliver(ready: int, out: bytes) -> int:
        if g.copy_to(0, out) < len(out):
            raise SysError(errno.EFAULT)
        return ready
    return _poll(srv, req, fp, raw, b.timeout_ms, deliver)


def _poll(srv: VfsServer, req: Request, fp: Any, raw: bytes, timeout_ms: int,
          deliver: Any) -> Any:
    entries = [(fd, ev & 0xFFFF) for fd, ev, _ in _POLLFD.iter_unpack(raw)]
    ready, out = _poll_once(fp, entries)
    if ready or timeout_ms == 0:
        return deliver(ready, out)
    return _poll_wait(srv, req, fp, entries, timeout_ms, deliver)


def _poll_wait(srv: VfsServer, req: Request, fp: Any, entries: list[tuple[int, int]],
               timeout_ms: int, deliver: Any) -> None:
    """Park on the polled files' wait queues until one is ready (``poll`` agrees) or
    the timeout passes: the shared readiness model, answered by the wake itself."""
    deadline = math.inf if timeout_ms < 0 else trio.current_time() + timeout_ms / 1000
    queues: list[WaitQueue] = []
    fds = fp.fds
    for fd, _ in entries:
        of = fds[fd] if 0 <= fd < len(fds) else None
        if of is not None and of.io is not None:
            q = waitq_of(of)
            if q is not None:
                queues.append(q)

    def attempt() -> Any:
        ready, out = _poll_once(fp, entries)
        return deliver(ready, out) if ready else None

    def timed_out() -> Any:
        return deliver(*_poll_once(fp, entries))

    return park(req, queues, attempt, deadline=deadline, on_timeout=timed_out, no_restart=True)


def waitq_of(of: Any) -> WaitQueue | None:
    """The wait queue of an open file description's io (None: it never changes)."""
    get = getattr(of.io, "waitq", None)
    return get(of) if get is not None else None
