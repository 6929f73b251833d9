"""File calls: copied in from user memory, served by the VFS server (PID 2)."""
from __future__ import annotations

import errno
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Generator

from ...lib import linux_abi as abi
from ...lib import protocol as p
from ...lib.errors import SysError
from ...lib.grants import GRANT_READ, GRANT_WRITE, GrantTable, Segment, skip
from ...lib.usermem import FlatMemory
from .base import HostCall, Op, Sendrec, SyscallContext, SyscallGen, ask, ask_granted, path_arg, c_int

if TYPE_CHECKING:
    from ..kernel import Kernel

# --- VFS --------------------------------------------------------------------------

# open(2)'s flags keep only the bits Linux knows (build_open_how); with O_PATH, only
# the few that go with it
VALID_OPEN_FLAGS = 0o37777703
O_PATH_FLAGS = 0o12600000          # O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC


def open_flags(value: int) -> int:
    flags = value & VALID_OPEN_FLAGS
    return flags & O_PATH_FLAGS if flags & 0o10000000 else flags


def sys_open(k: "Kernel", c: SyscallContext) -> SyscallGen:
    path = path_arg(c, c.args[0])
    reply = yield from ask(p.VFS_PID, p.VfsOpen(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                 flags=open_flags(c.args[1]),
                                                 mode=c.args[2] & 0o7777, path=path))
    return reply.result


def sys_close(k: "Kernel", c: SyscallContext) -> SyscallGen:
    # ``ask`` inline in the hottest file calls: one generator less per call
    reply = (yield Sendrec(p.VFS_PID, p.VfsClose(caller=c.pid, fd=c_int(c.args[0])))).body
    if reply.error:
        raise SysError(reply.error)
    return reply.result


# Linux's bounds on one read or write: the user range must lie below TASK_SIZE_MAX
# (access_ok: EFAULT before anything moves), and the count is cut to MAX_RW_COUNT.
TASK_SIZE_MAX = (1 << 47) - 4096
MAX_RW_COUNT = 0x7FFFF000


def access_ok(addr: int, size: int) -> bool:
    return size <= TASK_SIZE_MAX and addr <= TASK_SIZE_MAX - size


# A read or write moves through user memory in blocks of this size: one
# process_vm_readv/writev per block, not one per DATA_MAX message.
COPY_BLOCK = 1 << 20
PAGE = 4096


def _copy_out(c: SyscallContext, fd: int, addr: int, data: bytes,
              offset: int) -> Generator[Op, Any, int]:
    """Copy ``data`` to the caller; returns how much arrived.  A buffer that ends
    early takes what fits, page by page, as copy_to_user does; the file position
    goes back over what the caller did not get (a stream loses it)."""
    try:
        c.mem.write(addr, data)
        return len(data)
    except SysError as exc:
        if exc.errno != errno.EFAULT:
            raise
    ok = 0
    while ok < len(data):
        n = min(len(data) - ok, PAGE - (addr + ok) % PAGE)
        try:
            c.mem.write(addr + ok, data[ok:ok + n])
        except SysError:
            break
        ok += n
    if offset < 0 and ok < len(data):
        yield Sendrec(p.VFS_PID, p.VfsLseek(caller=c.pid, fd=fd, offset=ok - len(data),
                                             whence=os.SEEK_CUR))   # ESPIPE for streams
    return ok


def read_into(c: SyscallContext, fd: int, buf: int, count: int,
              offset: int = -1) -> Generator[Op, Any, int]:
    """read/pread: messages of at most DATA_MAX; the data is gathered and copied
    out in blocks.  Only the first message may wait (a pipe read blocks until
    there is data); stops at a short read."""
    if not count or not access_ok(buf, count):   # still the fd's errors: EBADF, EISDIR, ...
        yield from ask(p.VFS_PID, p.VfsRead(caller=c.pid, fd=fd, count=0,
                                             offset=offset if offset >= 0 else -1))
        if count:
            raise SysError(errno.EFAULT)
        return 0
    count = min(count, MAX_RW_COUNT)
    done = 0                      # copied out to the caller
    parts: list[bytes] = []       # read, not yet copied out
    held = 0
    while done + held < count:
        got = done + held
        want = min(count - got, p.DATA_MAX)
        try:
            reply = yield from ask(p.VFS_PID, p.VfsRead(
                caller=c.pid, fd=fd, count=want,
                offset=offset + got if offset >= 0 else p.READ_MORE if got else -1))
        except SysError:
            if got:           # report what was read; the error shows on the next call
                break
            raise
        data = reply.data
        if data:
            parts.append(data)
            held += len(data)
            if held >= COPY_BLOCK:
                block = b"".join(parts)
                parts.clear()
                held = 0
                ok = yield from _copy_out(c, fd, buf + done, block, offset)
                done += ok
                if ok < len(block):
                    return _partial(done)
        if len(data) < want:
            break
    if held:
        block = parts[0] if len(parts) == 1 else b"".join(parts)
        ok = yield from _copy_out(c, fd, buf + done, block, offset)
        done += ok
        if ok < len(block):
            return _partial(done)
    return done


def _partial(done: int) -> int:
    if not done:
        raise SysError(errno.EFAULT)
    return done


def _copy_in(c: SyscallContext, addr: int, size: int) -> bytes:
    """Up to ``size`` bytes of the caller's buffer: all of it, or the pages that are
    there before the first one that is not (EFAULT if none)."""
    try:
        return c.mem.read(addr, size)
    except SysError as exc:
        if exc.errno != errno.EFAULT:
            raise
    out = bytearray()
    while len(out) < size:
        n = min(size - len(out), PAGE - (addr + len(out)) % PAGE)
        try:
            out += c.mem.read(addr + len(out), n)
        except SysError:
            break
    if not out:
        raise SysError(errno.EFAULT)
    return bytes(out)


def write_from(c: SyscallContext, fd: int, buf: int, count: int,
               offset: int = -1) -> Generator[Op, Any, int]:
    """write/pwrite: the caller's buffer copied in by blocks, sent in messages of at
    most DATA_MAX; a buffer that ends early writes what is there (as Linux)."""
    if not count or not access_ok(buf, count):   # still the fd's errors (EBADF)
        result = (yield from ask(p.VFS_PID, p.VfsWrite(
            caller=c.pid, fd=fd, offset=offset if offset >= 0 else -1, data=b""))).result
        if count:
            raise SysError(errno.EFAULT)
        return result
    count = min(count, MAX_RW_COUNT)
    done = 0
    while done < count:
        size = min(count - done, COPY_BLOCK)
        try:
            block = _copy_in(c, buf + done, size)
        except SysError:
            if done:
                break
            raise
        pos = 0
        while pos < len(block):
            chunk = block[pos:pos + p.DATA_MAX] if len(block) > p.DATA_MAX else block
            try:
                reply = yield from ask(p.VFS_PID, p.VfsWrite(
                    caller=c.pid, fd=fd, offset=-1 if offset < 0 else offset + done,
                    data=chunk))
            except SysError:
                if done:
                    return done
                raise
            done += reply.result
            pos += reply.result
            if reply.result < len(chunk):
                return done
        if len(block) < size:
            break
    return done


# --- the bulk data path: grants (lib/grants.py) -----------------------------------
#
# When the VFS is on this node the kernel grants it the caller's buffer and the
# VFS copies the data itself: one request per program call for a file, however
# big.  A VFS across a node link (xinim-run --join) gets no grants -- they would
# let another process name memory here -- and the data travels in sealed
# DATA_MAX messages (read_into / write_from above).

def local_grants(k: "Kernel") -> GrantTable | None:
    """The node's grant table if the VFS is on this node, else None."""
    lattice = k.lattice
    channel = lattice.send_channels.get((k.pid, p.VFS_PID))
    if channel is None or channel.node != lattice.node_id:
        return None
    return lattice.grants


def granted_read(k: "Kernel", grants: GrantTable, c: SyscallContext, fd: int,
                 segs: tuple[Segment, ...], total: int,
                 offset: int = -1) -> Generator[Op, Any, int]:
    """read/pread/readv of ``total`` bytes (> 0, in range) into ``segs``."""
    done = 0
    while done < total:
        g = grants.grant(k.pid, c.pid, p.VFS_PID, c.mem, skip(segs, done) if done else segs,
                         GRANT_WRITE)
        try:
            reply = (yield Sendrec(p.VFS_PID, p.VfsReadGrant(     # ``ask``, inline
                caller=c.pid, fd=fd, grant=g.gid,
                offset=offset + done if offset >= 0 else p.READ_MORE if done else -1))).body
            if reply.error:
                raise SysError(reply.error)
            data = reply.data
            if not data:                 # the VFS copied it: the read is complete
                return done + reply.result
            # a read that waited answers with its data: copy it here
            ok = g.copy_to(0, data)
        except SysError:
            if done:          # report what was read; the error shows on the next call
                return done
            raise
        finally:
            grants.revoke(g)
        done += ok
        if ok < len(data):
            return _partial(done)
        if len(data) < p.DATA_MAX:
            break
    return done


def granted_write(k: "Kernel", grants: GrantTable, c: SyscallContext, fd: int,
                  segs: tuple[Segment, ...], total: int,
                  offset: int = -1) -> Generator[Op, Any, int]:
    """write/pwrite/writev of ``total`` bytes (> 0, in range) from ``segs``; a file
    takes it in one request, a stream by DATA_MAX per request."""
    done = 0
    while done < total:
        try:
            n = (yield from ask_granted(
                k, c, grants, p.VFS_PID, c.mem, skip(segs, done) if done else segs, GRANT_READ,
                lambda gid: p.VfsWriteGrant(caller=c.pid, fd=fd, grant=gid,
                                            offset=-1 if offset < 0 else offset + done))).result
        except SysError:
            if done:
                return done
            raise
        if n <= 0:
            break
        done += n
    return done


def one_buffer(k: "Kernel", c: SyscallContext, reading: bool, fd: int, buf: int, count: int,
               offset: int = -1) -> Generator[Op, Any, int]:
    """read/write/pread/pwrite of one buffer: through a grant when the VFS is on this
    node and the buffer is in range, else in messages (whose copy gives EFAULT)."""
    grants = local_grants(k)
    if grants is not None and count and access_ok(buf, count):
        count = min(count, MAX_RW_COUNT)
        granted = granted_read if reading else granted_write
        return (yield from granted(k, grants, c, fd, ((buf, count),), count, offset))
    return (yield from (read_into if reading else write_from)(c, fd, buf, count, offset))


def sys_read(k: "Kernel", c: SyscallContext) -> SyscallGen:
    # ``one_buffer``, inline: one generator less per read
    buf, count = c.args[1], c.args[2]
    grants = local_grants(k)
    if grants is not None and count and access_ok(buf, count):
        count = min(count, MAX_RW_COUNT)
        return (yield from granted_read(k, grants, c, c_int(c.args[0]), ((buf, count),), count))
    return (yield from read_into(c, c_int(c.args[0]), buf, count, -1))


def sys_write(k: "Kernel", c: SyscallContext) -> SyscallGen:
    # ``one_buffer``, inline: one generator less per write
    buf, count = c.args[1], c.args[2]
    grants = local_grants(k)
    if grants is not None and count and access_ok(buf, count):
        count = min(count, MAX_RW_COUNT)
        return (yield from granted_write(k, grants, c, c_int(c.args[0]), ((buf, count),), count))
    return (yield from write_from(c, c_int(c.args[0]), buf, count, -1))


def sys_lseek(k: "Kernel", c: SyscallContext) -> SyscallGen:
    offset = c.args[1] - (1 << 64) if c.args[1] >> 63 else c.args[1]
    return (yield from ask(p.VFS_PID, p.VfsLseek(caller=c.pid, fd=c_int(c.args[0]),
                                                  offset=offset, whence=c_int(c.args[2])))).result


def stat_into(c: SyscallContext, dirfd: int, path: bytes, flags: int,
              buf: int) -> Generator[Op, Any, int]:
    reply = (yield Sendrec(p.VFS_PID, p.VfsStat(caller=c.pid, dirfd=dirfd, flags=flags,
                                                 path=path))).body
    if reply.error:
        raise SysError(reply.error)
    c.mem.write(buf, abi.pack_stat(reply))
    return 0


def sys_stat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from stat_into(c, abi.AT_FDCWD, path_arg(c, c.args[0]), 0, c.args[1]))


def sys_fstat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = (yield Sendrec(p.VFS_PID, p.VfsFstat(caller=c.pid, fd=c_int(c.args[0])))).body
    if reply.error:
        raise SysError(reply.error)
    c.mem.write(c.args[1], abi.pack_stat(reply))
    return 0


def sys_access(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsAccess(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                   mode=c_int(c.args[1]), flags=0,
                                                   path=path_arg(c, c.args[0])))).result


def sys_dup(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsDup(caller=c.pid, fd=c_int(c.args[0])))).result


def sys_dup2(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsDup2(caller=c.pid, oldfd=c_int(c.args[0]),
                                                 newfd=c_int(c.args[1])))).result


def sys_pipe(k: "Kernel", c: SyscallContext) -> SyscallGen:
    c.mem.read(c.args[0], abi.TWO_INTS.size)  # EFAULT before the pipe exists
    reply = yield from ask(p.VFS_PID, p.VfsPipe(caller=c.pid, flags=0))
    c.mem.write(c.args[0], abi.TWO_INTS.pack(reply.read_fd, reply.write_fd))
    return 0


def sys_ioctl(k: "Kernel", c: SyscallContext) -> SyscallGen:
    request, arg = c.args[1] & 0xFFFFFFFF, c.args[2]
    in_size, out_size = abi.IOCTL_ARG_SIZES.get(request, (0, 0))
    data = c.mem.read(arg, in_size) if in_size else b""
    reply = yield from ask(p.VFS_PID, p.VfsIoctl(caller=c.pid, fd=c_int(c.args[0]),
                                                  request=request, arg=arg, data=data))
    if out_size and reply.data:
        c.mem.write(arg, reply.data[:out_size])
    return reply.result


# fcntl commands whose argument points to a struct flock (copied in, and out for GETLK)
F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 5, 6, 7, 36, 37, 38
FLOCK_SIZE = 32
_LOCK_CMDS = {F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW}
F_SETOWN_EX, F_GETOWN_EX, OWNER_EX_SIZE = 15, 16, 8     # struct f_owner_ex {int type, pid}


def sys_fcntl(k: "Kernel", c: SyscallContext) -> SyscallGen:
    cmd = c_int(c.args[1])
    arg = c.args[2] - (1 << 64) if c.args[2] >> 63 else c.args[2]
    lock = (c.mem.read(c.args[2], FLOCK_SIZE) if cmd in _LOCK_CMDS else
            c.mem.read(c.args[2], OWNER_EX_SIZE) if cmd == F_SETOWN_EX else b"")
    reply = (yield Sendrec(p.VFS_PID, p.VfsFcntl(caller=c.pid, fd=c_int(c.args[0]), cmd=cmd,
                                                  arg=arg, data=lock))).body
    if reply.error:
        raise SysError(reply.error)
    if cmd in (F_GETLK, F_OFD_GETLK) and reply.data:
        c.mem.write(c.args[2], reply.data[:FLOCK_SIZE])
    if cmd == F_GETOWN_EX and reply.data:
        c.mem.write(c.args[2], reply.data[:OWNER_EX_SIZE])
    return reply.result


# --- extended attributes: neither the ramfs nor XINIM's host mounts carry any -------
#
# As on a Linux filesystem without xattr handlers: the path is looked up (ENOENT,
# ENOTDIR, ELOOP, EACCES as usual), then get/set fail with EOPNOTSUPP and list
# gives an empty list.  EOPNOTSUPP (not ENODATA) tells ls, cp and libselinux that
# the filesystem has none, so they stop asking for each file (ls -la: one call
# per device instead of two per file).



def _xattr_target(c: SyscallContext, path_ptr: int, follow: bool) -> Generator[Op, Any, None]:
    """The file must exist and be reachable, as for Linux; then it has no attributes."""
    flags = abi.AT_EACCESS | (0 if follow else abi.AT_SYMLINK_NOFOLLOW)   # as the caller's euid
    reply = (yield Sendrec(p.VFS_PID, p.VfsAccess(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                   mode=os.F_OK, flags=flags,
                                                   path=path_arg(c, path_ptr)))).body
    if reply.error:                            # ``ask``, inline (ls asks this per file)
        raise SysError(reply.error)


def _xattr_fd(c: SyscallContext, fd: int) -> Generator[Op, Any, None]:
    info = yield from ask(p.VFS_PID, p.VfsFdinfo(caller=c.pid, fd=fd))
    if info.flags & O_PATH:                    # an O_PATH fd does no I/O: EBADF
        raise SysError(errno.EBADF)


XATTR_CREATE, XATTR_REPLACE = 1, 2
XATTR_NAME_MAX, XATTR_SIZE_MAX = 255, 65536


def _xattr_args(c: SyscallContext, kind: str) -> None:
    """What Linux copies in before it looks at the file: set's flags (EINVAL), the
    name (EFAULT; empty or longer than 255 bytes: ERANGE) and set's value (E2BIG
    over 64 KiB, EFAULT)."""
    if kind == "list":
        return
    if kind == "set" and c_int(c.args[4]) & ~(XATTR_CREATE | XATTR_REPLACE):
        raise SysError(errno.EINVAL)
    try:
        name = c.mem.read_cstring(c.args[1], XATTR_NAME_MAX + 1)
    except SysError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        name = b""
    if not name or len(name) > XATTR_NAME_MAX:
        raise SysError(errno.ERANGE)
    if kind == "set" and c.args[3]:
        if c.args[3] > XATTR_SIZE_MAX:
            raise SysError(errno.E2BIG)
        c.mem.read(c.args[2], c.args[3])


def _xattr_call(target: str, kind: str) -> Callable[["Kernel", SyscallContext], SyscallGen]:
    """An xattr call ("get", "set" or "list") on a ``target`` ("path", "lpath" or
    "fd") whose arguments and file are checked in Linux's order; then get and set
    fail with EOPNOTSUPP, and a listing is empty."""
    def handler(k: "Kernel", c: SyscallContext) -> SyscallGen:
        if target == "fd":
            yield from _xattr_fd(c, c_int(c.args[0]))      # the fd first (EBADF)
            _xattr_args(c, kind)
        else:
            _xattr_args(c, kind)
            yield from _xattr_target(c, c.args[0], follow=target == "path")
        if kind != "list":
            raise SysError(errno.EOPNOTSUPP)
        return 0
    return handler


sys_getxattr, sys_setxattr = _xattr_call("path", "get"), _xattr_call("path", "set")
sys_lgetxattr, sys_lsetxattr = _xattr_call("lpath", "get"), _xattr_call("lpath", "set")
sys_fgetxattr, sys_fsetxattr = _xattr_call("fd", "get"), _xattr_call("fd", "set")
sys_listxattr = _xattr_call("path", "list")
sys_llistxattr = _xattr_call("lpath", "list")
sys_flistxattr = _xattr_call("fd", "list")
sys_removexattr = _xattr_call("path", "remove")
sys_lremovexattr = _xattr_call("lpath", "remove")
sys_fremovexattr = _xattr_call("fd", "remove")


def sys_mkdir(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsMkdir(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                  mode=c.args[1] & 0o7777,
                                                  path=path_arg(c, c.args[0])))).result


def sys_rmdir(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsRmdir(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                  path=path_arg(c, c.args[0])))).result


def sys_chdir(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsChdir(caller=c.pid, path=path_arg(c, c.args[0])))).result


def sys_getcwd(k: "Kernel", c: SyscallContext) -> SyscallGen:
    size = min(c.args[1], p.DATA_MAX)
    reply = yield from ask(p.VFS_PID, p.VfsGetcwd(caller=c.pid, size=size))
    c.mem.write(c.args[0], reply.data)
    return len(reply.data)


def sys_link(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsLink(
        caller=c.pid, olddirfd=abi.AT_FDCWD, newdirfd=abi.AT_FDCWD, flags=0,
        oldpath=path_arg(c, c.args[0]), newpath=path_arg(c, c.args[1])))).result


def sys_unlink(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsUnlink(caller=c.pid, dirfd=abi.AT_FDCWD, flags=0,
                                                   path=path_arg(c, c.args[0])))).result


def sys_rename(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsRename(
        caller=c.pid, olddirfd=abi.AT_FDCWD, newdirfd=abi.AT_FDCWD, flags=0,
        oldpath=path_arg(c, c.args[0]), newpath=path_arg(c, c.args[1])))).result


def sys_chmod(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsChmod(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                  mode=c.args[1] & 0o7777, flags=0,
                                                  path=path_arg(c, c.args[0])))).result


def sys_chown(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsChown(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                  uid=c_int(c.args[1]), gid=c_int(c.args[2]),
                                                  flags=0, path=path_arg(c, c.args[0])))).result




# --- the hosted extension: *at forms, vectors, positioned I/O -----------------------

def sys_openat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    path = path_arg(c, c.args[1])
    reply = (yield Sendrec(p.VFS_PID, p.VfsOpen(caller=c.pid, dirfd=c_int(c.args[0]),
                                                 flags=open_flags(c.args[2]),
                                                 mode=c.args[3] & 0o7777, path=path))).body
    if reply.error:
        raise SysError(reply.error)
    return reply.result


def sys_creat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    flags = os.O_CREAT | os.O_WRONLY | os.O_TRUNC
    return (yield from ask(p.VFS_PID, p.VfsOpen(caller=c.pid, dirfd=abi.AT_FDCWD, flags=flags,
                                                 mode=c.args[1] & 0o7777,
                                                 path=path_arg(c, c.args[0])))).result


def _offset(value: int) -> int:
    offset = value - (1 << 64) if value >> 63 else value
    if offset < 0:
        raise SysError(errno.EINVAL)
    return offset


def sys_pread64(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from one_buffer(k, c, True, c_int(c.args[0]), c.args[1], c.args[2],
                                  _offset(c.args[3])))


def sys_pwrite64(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from one_buffer(k, c, False, c_int(c.args[0]), c.args[1], c.args[2],
                                  _offset(c.args[3])))


def _iovecs(c: SyscallContext, addr: int, count: int) -> list[tuple[int, int]]:
    """The caller's iovec array, checked as Linux's import_iovec: a negative length
    is EINVAL, a range outside user space EFAULT; the total is cut to MAX_RW_COUNT."""
    if count > abi.IOV_MAX:
        raise SysError(errno.EINVAL)
    raw = c.mem.read(addr, count * abi.IOVEC.size) if count else b""
    vecs = [abi.IOVEC.unpack_from(raw, i * abi.IOVEC.size) for i in range(count)]
    if any(length >> 63 for _, length in vecs):
        raise SysError(errno.EINVAL)
    out, total = [], 0
    for base, length in vecs:
        if not access_ok(base, length):
            raise SysError(errno.EFAULT)
        length = min(length, MAX_RW_COUNT - total)
        total += length
        out.append((base, length))
    return out


def vector_io(k: "Kernel", c: SyscallContext, fd: int, iov: int, count: int, offset: int,
              transfer) -> Generator[Op, Any, int]:
    """readv/writev and friends: with grants, one grant over all the buffers (one
    request for a file); else one transfer per buffer, stopping at a short one."""
    total = 0
    try:
        vecs = _iovecs(c, iov, count)
    except SysError:              # the fd's own errors come first (EBADF)
        yield from transfer(c, fd, 0, 0, offset)
        raise
    grants = local_grants(k)
    if grants is not None:
        segs = tuple(v for v in vecs if v[1])
        size = sum(n for _, n in segs)
        if size:
            granted = granted_read if transfer is read_into else granted_write
            return (yield from granted(k, grants, c, fd, segs, size, offset))
    for base, length in vecs:
        if not length:
            continue
        try:
            done = yield from transfer(c, fd, base, length, -1 if offset < 0 else offset + total)
        except SysError:
            if total:
                break
            raise
        total += done
        if done < length:
            break
    return total


def sys_readv(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from vector_io(k, c, c_int(c.args[0]), c.args[1], c.args[2], -1, read_into))


def sys_writev(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from vector_io(k, c, c_int(c.args[0]), c.args[1], c.args[2], -1, write_from))


def sys_preadv(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from vector_io(k, c, c_int(c.args[0]), c.args[1], c.args[2],
                                 _offset(c.args[3]), read_into))


def sys_pwritev(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from vector_io(k, c, c_int(c.args[0]), c.args[1], c.args[2],
                                 _offset(c.args[3]), write_from))


def sys_lstat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from stat_into(c, abi.AT_FDCWD, path_arg(c, c.args[0]),
                                 abi.AT_SYMLINK_NOFOLLOW, c.args[1]))


STATX__RESERVED = 0x80000000
_STAT_VALID = (abi.AT_SYMLINK_NOFOLLOW | abi.AT_NO_AUTOMOUNT | abi.AT_EMPTY_PATH
               | abi.AT_STATX_SYNC_TYPE)


def _stat_flags(flags: int) -> int:
    """The lookup flags of newfstatat/statx; unknown bits are EINVAL (vfs_statx)."""
    if flags & ~_STAT_VALID:
        raise SysError(errno.EINVAL)
    return flags & (abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH)


def sys_newfstatat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    flags = _stat_flags(c_int(c.args[3]))
    path = path_arg(c, c.args[1])
    reply = (yield Sendrec(p.VFS_PID, p.VfsStat(caller=c.pid, dirfd=c_int(c.args[0]),
                                                 flags=flags, path=path))).body   # stat_into
    if reply.error:
        raise SysError(reply.error)
    c.mem.write(c.args[2], abi.pack_stat(reply))
    return 0


def sys_statx(k: "Kernel", c: SyscallContext) -> SyscallGen:
    dirfd, flags, mask, buf = c_int(c.args[0]), c_int(c.args[2]), c.args[3] & 0xFFFFFFFF, c.args[4]
    if flags & abi.AT_STATX_SYNC_TYPE == abi.AT_STATX_SYNC_TYPE or mask & STATX__RESERVED:
        raise SysError(errno.EINVAL)
    flags = _stat_flags(flags)
    path = path_arg(c, c.args[1])
    # a bad buffer is EFAULT at the copy-out, after the lookup's own errors (Linux)
    reply = (yield Sendrec(p.VFS_PID, p.VfsStat(caller=c.pid, dirfd=dirfd,
                                                 flags=flags, path=path))).body
    if reply.error:                            # ``ask``, inline
        raise SysError(reply.error)
    c.mem.write(buf, abi.pack_statx(reply))
    return 0


def sys_faccessat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsAccess(caller=c.pid, dirfd=c_int(c.args[0]),
                                                   mode=c_int(c.args[2]), flags=0,
                                                   path=path_arg(c, c.args[1])))).result


def sys_faccessat2(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsAccess(caller=c.pid, dirfd=c_int(c.args[0]),
                                                   mode=c_int(c.args[2]), flags=c_int(c.args[3]),
                                                   path=path_arg(c, c.args[1])))).result


def sys_mkdirat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsMkdir(caller=c.pid, dirfd=c_int(c.args[0]),
                                                  mode=c.args[2] & 0o7777,
                                                  path=path_arg(c, c.args[1])))).result


def sys_unlinkat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsUnlink(caller=c.pid, dirfd=c_int(c.args[0]),
                                                   flags=c_int(c.args[2]),
                                                   path=path_arg(c, c.args[1])))).result


def _rename(c: SyscallContext, olddirfd: int, oldpath: int, newdirfd: int, newpath: int,
            flags: int) -> Generator[Op, Any, int]:
    return (yield from ask(p.VFS_PID, p.VfsRename(
        caller=c.pid, olddirfd=olddirfd, newdirfd=newdirfd, flags=flags,
        oldpath=path_arg(c, oldpath), newpath=path_arg(c, newpath)))).result


def sys_renameat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _rename(c, c_int(c.args[0]), c.args[1], c_int(c.args[2]), c.args[3], 0))


def sys_renameat2(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _rename(c, c_int(c.args[0]), c.args[1], c_int(c.args[2]), c.args[3],
                               c.args[4] & 0xFFFFFFFF))


def sys_linkat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsLink(
        caller=c.pid, olddirfd=c_int(c.args[0]), newdirfd=c_int(c.args[2]),
        flags=c_int(c.args[4]), oldpath=path_arg(c, c.args[1]),
        newpath=path_arg(c, c.args[3])))).result


def sys_fchmodat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsChmod(caller=c.pid, dirfd=c_int(c.args[0]),
                                                  mode=c.args[2] & 0o7777, flags=0,
                                                  path=path_arg(c, c.args[1])))).result


def sys_fchmodat2(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsChmod(caller=c.pid, dirfd=c_int(c.args[0]),
                                                  mode=c.args[2] & 0o7777, flags=c_int(c.args[3]),
                                                  path=path_arg(c, c.args[1])))).result


def sys_fchownat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsChown(caller=c.pid, dirfd=c_int(c.args[0]),
                                                  uid=c_int(c.args[2]), gid=c_int(c.args[3]),
                                                  flags=c_int(c.args[4]),
                                                  path=path_arg(c, c.args[1])))).result


def sys_lchown(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsChown(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                  uid=c_int(c.args[1]), gid=c_int(c.args[2]),
                                                  flags=abi.AT_SYMLINK_NOFOLLOW,
                                                  path=path_arg(c, c.args[0])))).result


def sys_dup3(k: "Kernel", c: SyscallContext) -> SyscallGen:
    oldfd, newfd, flags = c_int(c.args[0]), c_int(c.args[1]), c_int(c.args[2])
    if oldfd == newfd or flags & ~os.O_CLOEXEC:
        raise SysError(errno.EINVAL)
    return (yield from ask(p.VFS_PID, p.VfsDup2(caller=c.pid, oldfd=oldfd, newfd=newfd,
                                                 flags=flags))).result


def sys_pipe2(k: "Kernel", c: SyscallContext) -> SyscallGen:
    flags = c_int(c.args[1])
    if flags & ~(os.O_CLOEXEC | os.O_NONBLOCK | os.O_DIRECT):
        raise SysError(errno.EINVAL)
    c.mem.read(c.args[0], abi.TWO_INTS.size)
    reply = yield from ask(p.VFS_PID, p.VfsPipe(caller=c.pid, flags=flags))
    c.mem.write(c.args[0], abi.TWO_INTS.pack(reply.read_fd, reply.write_fd))
    return 0


# --- the hosted extension: directories, links, times, sizes, polling -----------------

DIRENT64_MAX = (abi.DIRENT64.size + 255 + 1 + 7) & ~7    # the longest linux_dirent64 record


def sys_getdents64(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """As many records as fit in the caller's buffer, in one or more messages of at
    most DATA_MAX, copied out once.  A message that came back with room for any
    record left means the directory is at its end: no further message then."""
    fd, room = c_int(c.args[0]), min(c.args[2] & 0xFFFFFFFF, COPY_BLOCK)
    if room and not _writable(c, c.args[1]):
        return (yield from _getdents_fault(c, fd, room))
    grants = local_grants(k)
    if grants is not None and room:
        return (yield from ask_granted(
            k, c, grants, p.VFS_PID, c.mem, ((c.args[1], room),), GRANT_WRITE,
            lambda gid: p.VfsGetdentsGrant(caller=c.pid, fd=fd, grant=gid))).result
    parts: list[bytes] = []
    got = 0
    while True:
        want = min(room - got, p.DATA_MAX)
        try:
            reply = yield from ask(p.VFS_PID, p.VfsGetdents(caller=c.pid, fd=fd, count=want))
        except SysError:
            if got:           # what was read is the answer; the error shows next time
                break
            raise
        data = reply.data
        parts.append(data)
        got += len(data)
        if not data or want - len(data) >= DIRENT64_MAX or room - got < DIRENT64_MAX:
            break
    if got:
        c.mem.write(c.args[1], parts[0] if len(parts) == 1 else b"".join(parts))
    return got


def _writable(c: SyscallContext, addr: int) -> bool:
    try:
        c.mem.write(addr, c.mem.read(addr, 1))
        return True
    except SysError:
        return False


def _getdents_fault(c: SyscallContext, fd: int, count: int) -> Generator[Op, Any, int]:
    """getdents into a buffer that cannot take a record: the fd's errors, 0 at the
    end of the directory, else EFAULT with the directory where it was (Linux's
    filldir fails before the position moves)."""
    pos = (yield from ask(p.VFS_PID, p.VfsLseek(caller=c.pid, fd=fd, offset=0,
                                                 whence=os.SEEK_CUR))).result
    reply = yield from ask(p.VFS_PID, p.VfsGetdents(caller=c.pid, fd=fd,
                                                     count=min(count, p.DATA_MAX)))
    if not reply.data:
        return 0
    yield Sendrec(p.VFS_PID, p.VfsLseek(caller=c.pid, fd=fd, offset=pos, whence=os.SEEK_SET))
    raise SysError(errno.EFAULT)


def sys_getdents(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """The old getdents: the same entries in struct linux_dirent's layout (d_type
    last), re-packed from linux_dirent64 records; each is no larger."""
    count = min(c.args[2] & 0xFFFFFFFF, p.DATA_MAX)
    if count and not _writable(c, c.args[1]):
        return (yield from _getdents_fault(c, c_int(c.args[0]), count))
    reply = yield from ask(p.VFS_PID, p.VfsGetdents(caller=c.pid, fd=c_int(c.args[0]),
                                                     count=count))
    out, pos, raw = bytearray(), 0, reply.data
    while pos < len(raw):
        ino, off, reclen, dtype = abi.DIRENT64.unpack_from(raw, pos)
        name = raw[pos + abi.DIRENT64.size:pos + reclen].split(b"\0", 1)[0]
        size = (abi.DIRENT.size + len(name) + 2 + 7) & ~7
        out += abi.DIRENT.pack(ino, off, size) + name + b"\0"
        out += bytes(size - abi.DIRENT.size - len(name) - 2) + bytes([dtype])
        pos += reclen
    if out:
        c.mem.write(c.args[1], bytes(out))
    return len(out)


def _readlink(c: SyscallContext, dirfd: int, path_ptr: int, buf: int,
              size: int) -> Generator[Op, Any, int]:
    if c_int(size) <= 0:
        raise SysError(errno.EINVAL)
    reply = (yield Sendrec(p.VFS_PID, p.VfsReadlink(caller=c.pid, dirfd=dirfd,
                                                     size=min(size, p.DATA_MAX),
                                                     path=path_arg(c, path_ptr)))).body
    if reply.error:                            # ``ask``, inline
        raise SysError(reply.error)
    c.mem.write(buf, reply.data)
    return len(reply.data)


def sys_readlink(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _readlink(c, abi.AT_FDCWD, c.args[0], c.args[1], c.args[2]))


def sys_readlinkat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _readlink(c, c_int(c.args[0]), c.args[1], c.args[2], c.args[3]))


def _symlink(c: SyscallContext, target_ptr: int, dirfd: int,
             path_ptr: int) -> Generator[Op, Any, int]:
    target = c.mem.read_cstring(target_ptr, p.DATA_MAX)
    if not target:
        raise SysError(errno.ENOENT)
    return (yield from ask(p.VFS_PID, p.VfsSymlink(caller=c.pid, dirfd=dirfd, target=target,
                                                    path=path_arg(c, path_ptr)))).result


def sys_symlink(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _symlink(c, c.args[0], abi.AT_FDCWD, c.args[1]))


def sys_symlinkat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _symlink(c, c.args[0], c_int(c.args[1]), c.args[2]))


def _length(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def sys_truncate(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsTruncate(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                     length=_length(c.args[1]),
                                                     path=path_arg(c, c.args[0])))).result


def sys_ftruncate(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsFtruncate(caller=c.pid, fd=c_int(c.args[0]),
                                                      length=_length(c.args[1])))).result


_TIME_MIN, _TIME_MAX = -(1 << 63) // 10**9 + 1, ((1 << 63) - 1) // 10**9 - 1


def _utimens(c: SyscallContext, dirfd: int, path_ptr: int, flags: int,
             times: tuple[int, int, int, int] | None) -> Generator[Op, Any, int]:
    """Linux do_utimes, the times already copied in (their EFAULT comes first): a
    NULL path with a dirfd is that fd's file (no flags allowed), else the path is
    read now (NULL: EFAULT; "" is ENOENT unless AT_EMPTY_PATH)."""
    if not path_ptr and dirfd != abi.AT_FDCWD:
        if flags:
            raise SysError(errno.EINVAL)
        path, flags = b"", abi.AT_EMPTY_PATH
    elif not path_ptr:
        raise SysError(errno.EFAULT)
    else:
        path = path_arg(c, path_ptr)
    if times is None:
        times = (0, p.UTIME_NOW, 0, p.UTIME_NOW)
    # the VFS keeps nanoseconds in an i64 (the years 1678..2262): seconds beyond
    # are clamped, as a filesystem clamps to its own range
    times = tuple(min(max(v, _TIME_MIN), _TIME_MAX) if i % 2 == 0 else v
                  for i, v in enumerate(times))  # type: ignore[assignment]
    return (yield from ask(p.VFS_PID, p.VfsUtimens(
        caller=c.pid, dirfd=dirfd, flags=flags, atime_sec=times[0], atime_nsec=times[1],
        mtime_sec=times[2], mtime_nsec=times[3], path=path))).result


def sys_utimensat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    dirfd, path_ptr, times_ptr, flags = c_int(c.args[0]), c.args[1], c.args[2], c_int(c.args[3])
    times = None
    if times_ptr:
        raw = c.mem.read(times_ptr, 2 * abi.TIMESPEC.size)
        times = abi.TIMESPEC.unpack_from(raw, 0) + abi.TIMESPEC.unpack_from(raw, abi.TIMESPEC.size)
        if times[1] == p.UTIME_OMIT and times[3] == p.UTIME_OMIT:
            return 0                   # Linux: nothing to do, before any other check
        for nsec in (times[1], times[3]):
            if not (0 <= nsec < 10**9 or nsec in (p.UTIME_NOW, p.UTIME_OMIT)):
                raise SysError(errno.EINVAL)
    return (yield from _utimens(c, dirfd, path_ptr, flags, times))


def _timevals(c: SyscallContext, ptr: int) -> tuple[int, int, int, int] | None:
    if not ptr:
        return None
    raw = c.mem.read(ptr, 2 * abi.TIMEVAL.size)
    (asec, ausec), (msec, musec) = abi.TIMEVAL.unpack_from(raw, 0), abi.TIMEVAL.unpack_from(raw, 16)
    if not (0 <= ausec < 10**6 and 0 <= musec < 10**6):
        raise SysError(errno.EINVAL)
    return asec, ausec * 1000, msec, musec * 1000


def sys_utimes(k: "Kernel", c: SyscallContext) -> SyscallGen:
    times = _timevals(c, c.args[1])
    return (yield from _utimens(c, abi.AT_FDCWD, c.args[0], 0, times))


def sys_futimesat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    times = _timevals(c, c.args[2])
    return (yield from _utimens(c, c_int(c.args[0]), c.args[1], 0, times))


def sys_utime(k: "Kernel", c: SyscallContext) -> SyscallGen:
    times = None
    if c.args[1]:
        atime, mtime = abi.UTIMBUF.unpack(c.mem.read(c.args[1], abi.UTIMBUF.size))
        times = (atime, 0, mtime, 0)
    return (yield from _utimens(c, abi.AT_FDCWD, c.args[0], 0, times))


def sys_fsync(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsFsync(caller=c.pid, fd=c_int(c.args[0])))).result


def sys_fdatasync(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsFsync(caller=c.pid, fd=c_int(c.args[0]),
                                                  datasync=1))).result


POSIX_FADV_NORMAL, POSIX_FADV_NOREUSE = 0, 5        # advice 0..5 (x86-64)
O_PATH = 0o10000000


def sys_fadvise64(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """posix_fadvise: the ramfs and the host mounts take the advice and do nothing
    with it (no page cache here); the errors are Linux's: EBADF (no fd, O_PATH),
    ESPIPE (a pipe or FIFO), EINVAL (unknown advice, negative length)."""
    fd, length, advice = c_int(c.args[0]), _length(c.args[2]), c_int(c.args[3])
    info = yield from ask(p.VFS_PID, p.VfsFdinfo(caller=c.pid, fd=fd))
    if info.flags & O_PATH:
        raise SysError(errno.EBADF)
    if info.mode & 0o170000 == 0o010000:               # S_IFIFO
        raise SysError(errno.ESPIPE)
    if not POSIX_FADV_NORMAL <= advice <= POSIX_FADV_NOREUSE or length < 0:
        raise SysError(errno.EINVAL)
    return 0


def sys_fchdir(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsFchdir(caller=c.pid, fd=c_int(c.args[0])))).result


def sys_fchmod(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsFchmod(caller=c.pid, fd=c_int(c.args[0]),
                                                   mode=c.args[1] & 0o7777))).result


def sys_fchown(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsFchown(caller=c.pid, fd=c_int(c.args[0]),
                                                   uid=c_int(c.args[1]),
                                                   gid=c_int(c.args[2])))).result


def sys_umask(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsUmask(caller=c.pid, mask=c.args[0] & 0o777))).result


def sys_statfs(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = yield from ask(p.VFS_PID, p.VfsStatfs(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                   path=path_arg(c, c.args[0])))
    c.mem.write(c.args[1], abi.pack_statfs(reply))
    return 0


def sys_fstatfs(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = yield from ask(p.VFS_PID, p.VfsFstatfs(caller=c.pid, fd=c_int(c.args[0])))
    c.mem.write(c.args[1], abi.pack_statfs(reply))
    return 0


def _mknod(c: SyscallContext, dirfd: int, path_ptr: int, mode: int,
           dev: int) -> Generator[Op, Any, int]:
    return (yield from ask(p.VFS_PID, p.VfsMknod(caller=c.pid, dirfd=dirfd, mode=mode & 0xFFFFFFFF,
                                                  dev=dev, path=path_arg(c, path_ptr)))).result


def sys_mknod(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _mknod(c, abi.AT_FDCWD, c.args[0], c.args[1], c.args[2]))


def sys_mknodat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _mknod(c, c_int(c.args[0]), c.args[1], c.args[2], c.args[3]))


def sys_flock(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsFlock(caller=c.pid, fd=c_int(c.args[0]),
                                                  op=c_int(c.args[1])))).result


NR_OPEN = 1 << 20                 # Linux's fs.nr_open: no RLIMIT_NOFILE goes beyond it
# VfsPoll.timeout_ms is an i32: a longer timeout is waited in pieces of this size
# (a ready fd answers the first one at once)
POLL_WAIT_MAX_MS = (1 << 31) - 1
SIGSET_SIZE = 8


def _poll_granted(k: "Kernel", grants: GrantTable, c: SyscallContext, fds_ptr: int, nfds: int,
                  timeout_ms: int, mem: Any = None) -> Generator[Op, Any, int]:
    """poll of more pollfds than a message holds (up to RLIMIT_NOFILE, as Linux): the
    VFS reads the array and writes the revents through a grant."""
    while True:
        piece = timeout_ms if timeout_ms <= POLL_WAIT_MAX_MS else POLL_WAIT_MAX_MS
        reply = yield from ask_granted(
            k, c, grants, p.VFS_PID, c.mem if mem is None else mem,
            ((fds_ptr, nfds * abi.POLLFD.size),),
            GRANT_READ | GRANT_WRITE,
            lambda gid: p.VfsPollGrant(caller=c.pid, grant=gid, nfds=nfds, timeout_ms=piece))
        if reply.result or piece == timeout_ms:
            return reply.result
        timeout_ms -= piece


def _poll_vfs(c: SyscallContext, raw: bytes, timeout_ms: int) -> Generator[Op, Any, Any]:
    """One VfsPoll, or as many as a timeout longer than an i32 of ms takes."""
    while True:
        piece = timeout_ms if timeout_ms <= POLL_WAIT_MAX_MS else POLL_WAIT_MAX_MS
        reply = yield from ask(p.VFS_PID, p.VfsPoll(caller=c.pid, timeout_ms=piece, data=raw))
        if reply.result or piece == timeout_ms:
            return reply
        timeout_ms -= piece


def _poll(k: "Kernel", c: SyscallContext, fds_ptr: int, nfds: int,
          timeout_ms: int) -> Generator[Op, Any, int]:
    if nfds > p.DATA_MAX // abi.POLLFD.size:
        grants = local_grants(k)
        # beyond any RLIMIT_NOFILE (the VFS checks the caller's), or from a joined node
        # (one message)
        if nfds > NR_OPEN or grants is None:
            raise SysError(errno.EINVAL)
        if not access_ok(fds_ptr, nfds * abi.POLLFD.size):
            raise SysError(errno.EFAULT)
        return (yield from _poll_granted(k, grants, c, fds_ptr, nfds, timeout_ms))
    raw = c.mem.read(fds_ptr, nfds * abi.POLLFD.size) if nfds else b""
    reply = yield from _poll_vfs(c, raw, timeout_ms)
    if nfds:
        c.mem.write(fds_ptr, reply.data)
    return reply.result


def sys_poll(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _poll(k, c, c.args[0], c.args[1] & 0xFFFFFFFF, c_int(c.args[2])))


def _timeout_ms(c: SyscallContext, ptr: int, struct_: Any, unit: int) -> int:
    """A timespec (unit 10**6 ns per ms) or timeval (unit 1000 us per ms) in ms,
    rounded up; -1 for none.  As Linux's poll_select_set_timeout: a timeval's
    microseconds are carried into seconds first (C division), then a negative
    part or nanoseconds >= 1e9 is EINVAL."""
    if not ptr:
        return -1
    sec, frac = struct_.unpack(c.mem.read(ptr, struct_.size))
    if unit == 1000:                             # timeval: usec -> sec + nsec
        carry = abs(frac) // 10**6 * (1 if frac >= 0 else -1)
        sec, frac = sec + carry, (frac - carry * 10**6) * 1000
    if sec < 0 or not 0 <= frac < 10**9:
        raise SysError(errno.EINVAL)
    return sec * 1000 + (frac + 10**6 - 1) // 10**6


def _sigmask_size(c: SyscallContext, mask_ptr: int, size: int) -> None:
    """ppoll/pselect6's signal mask argument: EINVAL unless sizeof(sigset_t)."""
    if mask_ptr and size != SIGSET_SIZE:
        raise SysError(errno.EINVAL)


LINUX_PPOLL = 271
RED_ZONE = 128
UNBLOCKABLE_SIGS = (1 << 8) | (1 << 18)          # SIGKILL, SIGSTOP


def masked_wait(c: SyscallContext, mask_ptr: int,
                wait: Generator[Op, Any, int]) -> Generator[Op, Any, int]:
    """ppoll/pselect6/epoll_pwait's signal mask, as Linux: the wait runs with
    ``*mask_ptr`` as the caller's mask in PM, so a signal it lets through ends the
    wait (EINTR); then the host delivers that signal under the same mask and
    restores the old one after the handler, by running ``ppoll(NULL, 0, {0, 0},
    mask)`` in the caller (-EINTR with the signal pending: the kernel's
    TIF_RESTORE_SIGMASK does the rest).  The host thread's own mask is not changed
    for the wait; a signal pending before it ends it at once."""
    if not mask_ptr or c.host is None:
        return (yield from wait)
    (temp,) = abi.U64.unpack(c.mem.read(mask_ptr, SIGSET_SIZE))
    temp &= ~UNBLOCKABLE_SIGS
    pending = (yield from ask(p.PM_PID, p.ProcSigpending(caller=c.pid))).mask
    # (opening the mask in PM also forgets what it lets through: the host delivers it)
    old = (yield from ask(p.PM_PID, p.ProcSigprocmask(caller=c.pid, how=p.SIG_SETMASK,
                                                      mask=temp))).mask
    if pending & ~temp:
        yield from ask(p.PM_PID, p.ProcSigprocmask(caller=c.pid, how=p.SIG_SETMASK, mask=old))
        return (yield from _deliver_under(c, temp))
    try:
        result = yield from wait
    except SysError as exc:
        yield from ask(p.PM_PID, p.ProcSigprocmask(caller=c.pid, how=p.SIG_SETMASK, mask=old))
        if exc.errno == errno.EINTR:
            return (yield from _deliver_under(c, temp))
        raise
    yield from ask(p.PM_PID, p.ProcSigprocmask(caller=c.pid, how=p.SIG_SETMASK, mask=old))
    return result


def _deliver_under(c: SyscallContext, mask: int) -> Generator[Op, Any, int]:
    """EINTR, with the signal that caused it delivered under ``mask`` by the host."""
    assert c.host is not None
    at = (c.host.stack_pointer() - RED_ZONE - 64) & ~15       # below the red zone
    c.mem.write(at, abi.TIMESPEC.pack(0, 0) + abi.U64.pack(mask))
    yield HostCall(LINUX_PPOLL, (0, 0, at, at + abi.TIMESPEC.size, SIGSET_SIZE))
    raise SysError(errno.EINTR)


def sys_ppoll(k: "Kernel", c: SyscallContext) -> SyscallGen:
    timeout = _timeout_ms(c, c.args[2], abi.TIMESPEC, 10**6)
    _sigmask_size(c, c.args[3], c.args[4])
    return (yield from masked_wait(c, c.args[3],
                                   _poll(k, c, c.args[0], c.args[1] & 0xFFFFFFFF, timeout)))


POLL_BOUNCE_BASE = 0x10000


def _poll_array(k: "Kernel", c: SyscallContext, raw: bytes,
                timeout_ms: int) -> Generator[Op, Any, tuple[int, bytes]]:
    """A pollfd array built by the kernel polled: in one message when it fits, else
    from a kernel-side bounce buffer granted to the VFS (as poll's own grant path).
    Returns (ready count, the array with revents)."""
    if len(raw) <= p.DATA_MAX:
        reply = yield from _poll_vfs(c, raw, timeout_ms)
        return reply.result, reply.data
    grants = local_grants(k)
    if grants is None:                 # a joined node: one message only
        raise SysError(errno.EINVAL)
    buf = FlatMemory(len(raw), POLL_BOUNCE_BASE)
    buf.write(POLL_BOUNCE_BASE, raw)
    result = yield from _poll_granted(k, grants, c, POLL_BOUNCE_BASE, len(raw) // abi.POLLFD.size,
                                      timeout_ms, mem=buf)
    return result, buf.read(POLL_BOUNCE_BASE, len(raw))


def _select(k: "Kernel", c: SyscallContext, nfds: int, sets: tuple[int, int, int],
            timeout_ms: int) -> Generator[Op, Any, int]:
    """select as poll: fd_sets in, a pollfd array to VFS, fd_sets back.  As Linux,
    ``nfds`` beyond the fd table is cut to its size: the table is taken as Linux's
    (64 slots, doubled until it holds the highest open fd asked about), and a
    closed fd inside it is EBADF.  Any nfds up to NR_OPEN is taken (FD_SETSIZE is
    only glibc's fd_set size); an array too big for a message goes by grant."""
    if nfds < 0:
        raise SysError(errno.EINVAL)
    nfds = min(nfds, NR_OPEN)
    nbytes = (nfds + 63) // 64 * 8
    bits = [int.from_bytes(c.mem.read(ptr, nbytes), "little") & ((1 << nfds) - 1)
            if ptr and nbytes else 0 for ptr in sets]
    pollfds, order = bytearray(), []
    asked = bits[0] | bits[1] | bits[2]
    while asked:                       # only the set bits, lowest first
        low = asked & -asked
        fd = low.bit_length() - 1
        asked ^= low
        events = ((abi.POLLIN if bits[0] >> fd & 1 else 0) | (abi.POLLOUT if bits[1] >> fd & 1 else 0)
                  | (abi.POLLPRI if bits[2] >> fd & 1 else 0))
        order.append(fd)
        pollfds += abi.POLLFD.pack(fd, events, 0)
    # A closed fd answers POLLNVAL at once (it counts as ready), so one poll both
    # waits and says which asked-about fds are closed; only then is the table
    # worked out and the poll made again without the fds beyond it.
    _, data = yield from _poll_array(k, c, bytes(pollfds), timeout_ms)
    bad = {fd for i, fd in enumerate(order)
           if abi.POLLFD.unpack_from(data, i * abi.POLLFD.size)[2] & abi.POLLNVAL}
    if bad:
        table = 64
        while any(fd >= table for fd in order if fd not in bad):
            table *= 2
        if any(fd < table for fd in bad):
            raise SysError(errno.EBADF)
        # beyond the table: not looked at
        keep = [i for i, fd in enumerate(order) if fd not in bad]
        pollfds = bytearray(b"".join(bytes(pollfds[i * 8:i * 8 + 8]) for i in keep))
        order = [order[i] for i in keep]
        for fd in bad:
            for i in range(3):
                bits[i] &= ~(1 << fd)
        _, data = yield from _poll_array(k, c, bytes(pollfds), timeout_ms)
    out = [0, 0, 0]
    for i, fd in enumerate(order):
        _, _, revents = abi.POLLFD.unpack_from(data, i * abi.POLLFD.size)
        if revents & abi.POLLNVAL:
            raise SysError(errno.EBADF)
        if revents & (abi.POLLIN | abi.POLLHUP | abi.POLLERR) and bits[0] >> fd & 1:
            out[0] |= 1 << fd
        if revents & (abi.POLLOUT | abi.POLLERR) and bits[1] >> fd & 1:
            out[1] |= 1 << fd
        if revents & abi.POLLPRI and bits[2] >> fd & 1:
            out[2] |= 1 << fd
    for ptr, value in zip(sets, out):
        if ptr and nbytes:
            c.mem.write(ptr, value.to_bytes(nbytes, "little"))
    return sum(bin(v).count("1") for v in out)


def _with_timeout_back(c: SyscallContext, ptr: int, struct_: Any, unit: int,
                       wait: Generator[Op, Any, int]) -> Generator[Op, Any, int]:
    """As Linux's poll_select_finish: select and pselect6 write the time left back
    into their timeval/timespec, however the wait ends (0 once it ran out)."""
    if not ptr:
        return (yield from wait)
    sec, frac = struct_.unpack(c.mem.read(ptr, struct_.size))
    ns_per = 10**9 // (unit * 1000)              # timeval: us -> ns 1000, timespec: 1
    end = time.monotonic_ns() + sec * 10**9 + frac * ns_per
    try:
        return (yield from wait)
    finally:
        left = max(0, end - time.monotonic_ns())
        try:
            c.mem.write(ptr, struct_.pack(left // 10**9, left % 10**9 // ns_per))
        except SysError:
            pass                                 # as Linux: a read-only timeout is kept


def sys_select(k: "Kernel", c: SyscallContext) -> SyscallGen:
    timeout = _timeout_ms(c, c.args[4], abi.TIMEVAL, 1000)
    return (yield from _with_timeout_back(c, c.args[4], abi.TIMEVAL, 1000, _select(
        k, c, c_int(c.args[0]), (c.args[1], c.args[2], c.args[3]), timeout)))


def sys_pselect6(k: "Kernel", c: SyscallContext) -> SyscallGen:
    timeout = _timeout_ms(c, c.args[4], abi.TIMESPEC, 10**6)
    mask_ptr = 0
    if c.args[5]:                 # { const sigset_t *ss; size_t ss_len }
        mask_ptr, size = abi.IOVEC.unpack(c.mem.read(c.args[5], abi.IOVEC.size))
        _sigmask_size(c, mask_ptr, size)
    return (yield from _with_timeout_back(c, c.args[4], abi.TIMESPEC, 10**6, masked_wait(
        c, mask_ptr, _select(k, c, c_int(c.args[0]), (c.args[1], c.args[2], c.args[3]),
                             timeout))))
