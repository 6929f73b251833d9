"""File calls: copied in from user memory, served by the VFS server (PID 2)."""
from __future__ import annotations

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


