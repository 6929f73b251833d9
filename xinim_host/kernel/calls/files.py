"""File calls: copied in from user memory, served by the VFS server (PID 2)."""
from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any, Generator

from .. import linux_abi as abi
from .. import protocol as p
from ..errors import SysError
from .base import Op, SyscallContext, SyscallGen, ask, path_arg, c_int

if TYPE_CHECKING:
    from ..kernel import Kernel

# --- VFS --------------------------------------------------------------------------

def sys_open(k: "Kernel", c: SyscallContext) -> SyscallGen:
    path = path_arg(c, c.args[0])
    reply = yield from ask(p.VFS_PID, p.VfsOpen(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                 flags=c_int(c.args[1]),
                                                 mode=c.args[2] & 0o7777, path=path))
    return reply.result


def sys_close(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsClose(caller=c.pid, fd=c_int(c.args[0])))).result


def read_into(c: SyscallContext, fd: int, buf: int, count: int,
              offset: int = -1) -> Generator[Op, Any, int]:
    """read/pread: split into messages of at most DATA_MAX, stop at a short read."""
    done = 0
    while done < count:
        want = min(count - done, p.DATA_MAX)
        try:
            reply = yield from ask(p.VFS_PID, p.VfsRead(
                caller=c.pid, fd=fd, count=want, offset=-1 if offset < 0 else offset + done))
        except SysError:
            if done:          # report what was read; the error shows on the next call
                break
            raise
        if reply.data:
            c.mem.write(buf + done, reply.data)
        done += len(reply.data)
        if len(reply.data) < want:
            break
    return done


def write_from(c: SyscallContext, fd: int, buf: int, count: int,
               offset: int = -1) -> Generator[Op, Any, int]:
    """write/pwrite: split into messages of at most DATA_MAX."""
    done = 0
    while done < count:
        chunk = c.mem.read(buf + done, min(count - done, p.DATA_MAX))
        try:
            reply = yield from ask(p.VFS_PID, p.VfsWrite(
                caller=c.pid, fd=fd, offset=-1 if offset < 0 else offset + done, data=chunk))
        except SysError:
            if done:
                break
            raise
        done += reply.result
        if reply.result < len(chunk):
            break
    return done


def sys_read(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from read_into(c, c_int(c.args[0]), c.args[1], c.args[2]))


def sys_write(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from write_from(c, c_int(c.args[0]), c.args[1], c.args[2]))


def sys_lseek(k: "Kernel", c: SyscallContext) -> SyscallGen:
    offset = c.args[1] - (1 << 64) if c.args[1] >> 63 else c.args[1]
    return (yield from ask(p.VFS_PID, p.VfsLseek(caller=c.pid, fd=c_int(c.args[0]),
                                                  offset=offset, whence=c_int(c.args[2])))).result


def stat_into(c: SyscallContext, dirfd: int, path: bytes, flags: int,
              buf: int) -> Generator[Op, Any, int]:
    reply = yield from ask(p.VFS_PID, p.VfsStat(caller=c.pid, dirfd=dirfd, flags=flags, path=path))
    c.mem.write(buf, abi.pack_stat(reply))
    return 0


def sys_stat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from stat_into(c, abi.AT_FDCWD, path_arg(c, c.args[0]), 0, c.args[1]))


def sys_fstat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = yield from ask(p.VFS_PID, p.VfsFstat(caller=c.pid, fd=c_int(c.args[0])))
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


def sys_fcntl(k: "Kernel", c: SyscallContext) -> SyscallGen:
    arg = c.args[2] - (1 << 64) if c.args[2] >> 63 else c.args[2]
    return (yield from ask(p.VFS_PID, p.VfsFcntl(caller=c.pid, fd=c_int(c.args[0]),
                                                  cmd=c_int(c.args[1]), arg=arg))).result


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
    return (yield from ask(p.VFS_PID, p.VfsOpen(caller=c.pid, dirfd=c_int(c.args[0]),
                                                 flags=c_int(c.args[2]),
                                                 mode=c.args[3] & 0o7777, path=path))).result


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
    return (yield from read_into(c, c_int(c.args[0]), c.args[1], c.args[2], _offset(c.args[3])))


def sys_pwrite64(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from write_from(c, c_int(c.args[0]), c.args[1], c.args[2], _offset(c.args[3])))


def _iovecs(c: SyscallContext, addr: int, count: int) -> list[tuple[int, int]]:
    if count > abi.IOV_MAX:
        raise SysError(errno.EINVAL)
    raw = c.mem.read(addr, count * abi.IOVEC.size) if count else b""
    return [abi.IOVEC.unpack_from(raw, i * abi.IOVEC.size) for i in range(count)]


def vector_io(c: SyscallContext, fd: int, iov: int, count: int, offset: int,
              transfer) -> Generator[Op, Any, int]:
    """readv/writev and friends: one transfer per buffer, stopping at a short one."""
    total = 0
    for base, length in _iovecs(c, iov, count):
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
    return (yield from vector_io(c, c_int(c.args[0]), c.args[1], c.args[2], -1, read_into))


def sys_writev(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from vector_io(c, c_int(c.args[0]), c.args[1], c.args[2], -1, write_from))


def sys_preadv(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from vector_io(c, c_int(c.args[0]), c.args[1], c.args[2],
                                 _offset(c.args[3]), read_into))


def sys_pwritev(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from vector_io(c, c_int(c.args[0]), c.args[1], c.args[2],
                                 _offset(c.args[3]), write_from))


def sys_lstat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from stat_into(c, abi.AT_FDCWD, path_arg(c, c.args[0]),
                                 abi.AT_SYMLINK_NOFOLLOW, c.args[1]))


def _stat_flags(flags: int) -> int:
    return flags & (abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH)


def sys_newfstatat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from stat_into(c, c_int(c.args[0]), path_arg(c, c.args[1]),
                                 _stat_flags(c_int(c.args[3])), c.args[2]))


def sys_statx(k: "Kernel", c: SyscallContext) -> SyscallGen:
    dirfd, path, flags, buf = c_int(c.args[0]), path_arg(c, c.args[1]), c_int(c.args[2]), c.args[4]
    c.mem.read(buf, abi.STATX_SIZE)   # EFAULT before asking anyone
    reply = yield from ask(p.VFS_PID, p.VfsStat(caller=c.pid, dirfd=dirfd,
                                                 flags=_stat_flags(flags), path=path))
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
