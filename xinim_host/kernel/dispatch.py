"""The syscall dispatcher: one table, XINIM number -> name, owning server, handler.

A handler is a generator ``handler(kernel, ctx)``: it copies its arguments in from
user memory, ``yield``s the operations it has to wait for -- a :class:`Sendrec`
to a server, an :class:`Await` of kernel-side work such as a sleep -- and
``return``s the call's result.  Raising :class:`SysError` fails the call with
``-errno``.  Generators let one handler run straight through when every server
answers at once (the common case: no task switch at all) and park mid-way when
one does not (a pipe read), the way MINIX servers suspend a caller; the driver in
``kernel.Kernel`` does the resuming.
"""
from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generator

from . import linux_abi as abi
from . import protocol as p
from .errors import SysError
from .syscalls import Sys
from .usermem import UserMemory

if TYPE_CHECKING:
    from .kernel import Kernel


@dataclass(frozen=True, slots=True)
class Sendrec:
    """Wait for a server's reply to ``body``."""
    dst: int
    body: p.Payload


@dataclass(frozen=True, slots=True)
class Await:
    """Wait for kernel-side async work (a timer, an IPC receive); its result is sent back."""
    make: Callable[[], Awaitable[Any]]


Op = Sendrec | Await
SyscallGen = Generator[Op, Any, int]


@dataclass(slots=True)
class SyscallContext:
    """Who is calling, with what arguments, and how to reach their memory."""
    pid: int
    args: tuple[int, ...]
    mem: UserMemory
    uid: int = 0
    euid: int = 0
    gid: int = 0
    egid: int = 0


def ask(dst: int, body: p.Payload) -> Generator[Op, Any, Any]:
    """Sendrec ``body`` and return the reply payload; an error reply raises SysError."""
    reply = (yield Sendrec(dst, body)).body
    if reply.error:
        raise SysError(reply.error)
    return reply


def _path(c: SyscallContext, addr: int) -> bytes:
    raw = c.mem.read_cstring(addr, p.PATH_MAX_WIRE + 1)
    if len(raw) > p.PATH_MAX_WIRE:
        raise SysError(errno.ENAMETOOLONG)
    return raw


def _string_array(c: SyscallContext, addr: int, limit: int = 4096) -> list[bytes]:
    out: list[bytes] = []
    while addr:
        (ptr,) = abi.POINTER.unpack(c.mem.read(addr, 8))
        if ptr == 0:
            break
        out.append(c.mem.read_cstring(ptr, limit))
        addr += 8
        if len(out) > 4096:
            raise SysError(errno.E2BIG)
    return out


def _int(value: int) -> int:
    """A register's low 32 bits as a signed C int."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


# --- served in the kernel ---------------------------------------------------------

def sys_debug_write(k: "Kernel", c: SyscallContext) -> SyscallGen:
    buf, count = c.args[0], c.args[1]
    data = c.mem.read(buf, min(count, 1 << 20))
    return k.console.write(data)
    yield  # noqa: unreachable -- makes this a generator like every handler


def sys_monotonic_ns(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return time.monotonic_ns()
    yield


def sys_time(k: "Kernel", c: SyscallContext) -> SyscallGen:
    now = time.time_ns() // 10**9
    if c.args[0]:
        c.mem.write(c.args[0], abi.POINTER.pack(now))
    return now
    yield


def sys_gettimeofday(k: "Kernel", c: SyscallContext) -> SyscallGen:
    if c.args[0]:
        now = time.time_ns()
        c.mem.write(c.args[0], abi.TIMEVAL.pack(now // 10**9, now % 10**9 // 1000))
    if c.args[1]:
        c.mem.write(c.args[1], bytes(8))  # struct timezone: UTC
    return 0
    yield


_CLOCKS = {0, 1, 2, 3, 4, 5, 6, 7}  # REALTIME .. BOOTTIME (host clocks; CPU clocks are per task)


def sys_clock_gettime(k: "Kernel", c: SyscallContext) -> SyscallGen:
    clock = _int(c.args[0])
    if clock not in _CLOCKS:
        raise SysError(errno.EINVAL)
    now = time.clock_gettime_ns(clock)
    c.mem.write(c.args[1], abi.TIMESPEC.pack(now // 10**9, now % 10**9))
    return 0
    yield


def sys_nanosleep(k: "Kernel", c: SyscallContext) -> SyscallGen:
    sec, nsec = abi.TIMESPEC.unpack(c.mem.read(c.args[0], abi.TIMESPEC.size))
    if sec < 0 or not 0 <= nsec < 10**9:
        raise SysError(errno.EINVAL)
    yield Await(lambda: k.sleep(sec + nsec / 1e9))
    return 0


def _cred(field: str) -> Callable[["Kernel", SyscallContext], SyscallGen]:
    def handler(k: "Kernel", c: SyscallContext) -> SyscallGen:
        return getattr(c, field)
        yield
    handler.__name__ = f"sys_get{field}"
    return handler


def sys_lattice_connect(k: "Kernel", c: SyscallContext) -> SyscallGen:
    k.process_endpoint(c.pid)
    k.lattice.connect_local(c.pid, _int(c.args[0]))
    return 0
    yield


def sys_lattice_send(k: "Kernel", c: SyscallContext) -> SyscallGen:
    data = c.mem.read(c.args[1], min(c.args[2], p.HEADER.size + 2 * p.DATA_MAX))
    _, m_type, _ = p.decode_header(data)
    k.lattice.send_bytes(c.pid, _int(c.args[0]), m_type, data)
    return 0
    yield


def sys_lattice_recv(k: "Kernel", c: SyscallContext) -> SyscallGen:
    from .ipc import IpcFlags
    flags = IpcFlags(c.args[2] & 1)
    k.process_endpoint(c.pid)
    delivery = yield Await(lambda: k.lattice.recv(c.pid, flags))
    if isinstance(delivery, p.ProtocolError):
        raise SysError(delivery.errno)
    data = p.encode(delivery.body, delivery.m_source, delivery.req_id)
    if len(data) > c.args[1]:
        raise SysError(errno.EMSGSIZE)
    c.mem.write(c.args[0], data)
    return len(data)


def sys_lattice_close(k: "Kernel", c: SyscallContext) -> SyscallGen:
    dst = _int(c.args[0])
    if k.lattice.send_channels.pop((c.pid, dst), None) is None:
        raise SysError(errno.ENOTCONN)
    return 0
    yield


# --- VFS --------------------------------------------------------------------------

def sys_open(k: "Kernel", c: SyscallContext) -> SyscallGen:
    path = _path(c, c.args[0])
    reply = yield from ask(p.VFS_PID, p.VfsOpen(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                 flags=_int(c.args[1]),
                                                 mode=c.args[2] & 0o7777, path=path))
    return reply.result


def sys_close(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsClose(caller=c.pid, fd=_int(c.args[0])))).result


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
    return (yield from read_into(c, _int(c.args[0]), c.args[1], c.args[2]))


def sys_write(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from write_from(c, _int(c.args[0]), c.args[1], c.args[2]))


def sys_lseek(k: "Kernel", c: SyscallContext) -> SyscallGen:
    offset = c.args[1] - (1 << 64) if c.args[1] >> 63 else c.args[1]
    return (yield from ask(p.VFS_PID, p.VfsLseek(caller=c.pid, fd=_int(c.args[0]),
                                                  offset=offset, whence=_int(c.args[2])))).result


def stat_into(c: SyscallContext, dirfd: int, path: bytes, flags: int,
              buf: int) -> Generator[Op, Any, int]:
    reply = yield from ask(p.VFS_PID, p.VfsStat(caller=c.pid, dirfd=dirfd, flags=flags, path=path))
    c.mem.write(buf, abi.pack_stat(reply))
    return 0


def sys_stat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from stat_into(c, abi.AT_FDCWD, _path(c, c.args[0]), 0, c.args[1]))


def sys_fstat(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = yield from ask(p.VFS_PID, p.VfsFstat(caller=c.pid, fd=_int(c.args[0])))
    c.mem.write(c.args[1], abi.pack_stat(reply))
    return 0


def sys_access(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsAccess(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                   mode=_int(c.args[1]), flags=0,
                                                   path=_path(c, c.args[0])))).result


def sys_dup(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsDup(caller=c.pid, fd=_int(c.args[0])))).result


def sys_dup2(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsDup2(caller=c.pid, oldfd=_int(c.args[0]),
                                                 newfd=_int(c.args[1])))).result


def sys_pipe(k: "Kernel", c: SyscallContext) -> SyscallGen:
    c.mem.read(c.args[0], abi.TWO_INTS.size)  # EFAULT before the pipe exists
    reply = yield from ask(p.VFS_PID, p.VfsPipe(caller=c.pid, flags=0))
    c.mem.write(c.args[0], abi.TWO_INTS.pack(reply.read_fd, reply.write_fd))
    return 0


def sys_ioctl(k: "Kernel", c: SyscallContext) -> SyscallGen:
    request, arg = c.args[1] & 0xFFFFFFFF, c.args[2]
    in_size, out_size = abi.IOCTL_ARG_SIZES.get(request, (0, 0))
    data = c.mem.read(arg, in_size) if in_size else b""
    reply = yield from ask(p.VFS_PID, p.VfsIoctl(caller=c.pid, fd=_int(c.args[0]),
                                                  request=request, arg=arg, data=data))
    if out_size and reply.data:
        c.mem.write(arg, reply.data[:out_size])
    return reply.result


def sys_fcntl(k: "Kernel", c: SyscallContext) -> SyscallGen:
    arg = c.args[2] - (1 << 64) if c.args[2] >> 63 else c.args[2]
    return (yield from ask(p.VFS_PID, p.VfsFcntl(caller=c.pid, fd=_int(c.args[0]),
                                                  cmd=_int(c.args[1]), arg=arg))).result


def sys_mkdir(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsMkdir(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                  mode=c.args[1] & 0o7777,
                                                  path=_path(c, c.args[0])))).result


def sys_rmdir(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsRmdir(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                  path=_path(c, c.args[0])))).result


def sys_chdir(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsChdir(caller=c.pid, path=_path(c, c.args[0])))).result


def sys_getcwd(k: "Kernel", c: SyscallContext) -> SyscallGen:
    size = min(c.args[1], p.DATA_MAX)
    reply = yield from ask(p.VFS_PID, p.VfsGetcwd(caller=c.pid, size=size))
    c.mem.write(c.args[0], reply.data)
    return len(reply.data)


def sys_link(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsLink(
        caller=c.pid, olddirfd=abi.AT_FDCWD, newdirfd=abi.AT_FDCWD, flags=0,
        oldpath=_path(c, c.args[0]), newpath=_path(c, c.args[1])))).result


def sys_unlink(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsUnlink(caller=c.pid, dirfd=abi.AT_FDCWD, flags=0,
                                                   path=_path(c, c.args[0])))).result


def sys_rename(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsRename(
        caller=c.pid, olddirfd=abi.AT_FDCWD, newdirfd=abi.AT_FDCWD, flags=0,
        oldpath=_path(c, c.args[0]), newpath=_path(c, c.args[1])))).result


def sys_chmod(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsChmod(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                  mode=c.args[1] & 0o7777, flags=0,
                                                  path=_path(c, c.args[0])))).result


def sys_chown(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsChown(caller=c.pid, dirfd=abi.AT_FDCWD,
                                                  uid=_int(c.args[1]), gid=_int(c.args[2]),
                                                  flags=0, path=_path(c, c.args[0])))).result


# --- PM ---------------------------------------------------------------------------

def sys_exit(k: "Kernel", c: SyscallContext) -> SyscallGen:
    status = (_int(c.args[0]) & 0xFF) << 8   # the wait status word of a normal exit
    return (yield from ask(p.PM_PID, p.ProcExit(caller=c.pid, status=status))).result


def sys_fork(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.PM_PID, p.ProcFork(parent_pid=c.pid))).result


def sys_execve(k: "Kernel", c: SyscallContext) -> SyscallGen:
    path = _path(c, c.args[0])
    argv = b"\0".join(_string_array(c, c.args[1]))
    envp = b"\0".join(_string_array(c, c.args[2]))
    if len(argv) > p.DATA_MAX or len(envp) > p.DATA_MAX:
        raise SysError(errno.E2BIG)
    return (yield from ask(p.PM_PID, p.ProcExec(caller=c.pid, path=path, argv=argv,
                                                 envp=envp))).result


def sys_wait4(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = yield from ask(p.PM_PID, p.ProcWait4(caller=c.pid, pid=_int(c.args[0]),
                                                  options=_int(c.args[2])))
    if c.args[1] and reply.result > 0:
        c.mem.write(c.args[1], abi.INT.pack(reply.status))
    if c.args[3]:
        c.mem.write(c.args[3], bytes(abi.RUSAGE_SIZE))
    return reply.result


def sys_getpid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.PM_PID, p.ProcGetpid(caller=c.pid))).result


def sys_getppid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.PM_PID, p.ProcGetppid(caller=c.pid))).result


def sys_kill(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.PM_PID, p.ProcKill(caller=c.pid, pid=_int(c.args[0]),
                                                 sig=_int(c.args[1])))).result


def sys_signal(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = yield from ask(p.PM_PID, p.ProcSignal(caller=c.pid, sig=_int(c.args[0]),
                                                   handler=c.args[1]))
    return reply.handler


def sys_sigaction(k: "Kernel", c: SyscallContext) -> SyscallGen:
    sig, act, oldact = _int(c.args[0]), c.args[1], c.args[2]
    handler = flags = restorer = mask = 0
    if act:
        handler, flags, restorer, mask = abi.SIGACTION.unpack(c.mem.read(act, abi.SIGACTION.size))
    reply = yield from ask(p.PM_PID, p.ProcSigaction(
        caller=c.pid, sig=sig, set=1 if act else 0, handler=handler, flags=flags,
        restorer=restorer, mask=mask))
    if oldact:
        c.mem.write(oldact, abi.SIGACTION.pack(reply.handler, reply.flags, reply.restorer,
                                               reply.mask))
    return 0


# --- MM ---------------------------------------------------------------------------

def sys_brk(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.MM_PID, p.MmBrk(caller=c.pid, addr=c.args[0]))).result


def sys_mmap(k: "Kernel", c: SyscallContext) -> SyscallGen:
    offset = c.args[5] - (1 << 64) if c.args[5] >> 63 else c.args[5]
    return (yield from ask(p.MM_PID, p.MmMmap(caller=c.pid, addr=c.args[0], length=c.args[1],
                                               prot=_int(c.args[2]), flags=_int(c.args[3]),
                                               fd=_int(c.args[4]), offset=offset))).result


def sys_munmap(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.MM_PID, p.MmMunmap(caller=c.pid, addr=c.args[0],
                                                 length=c.args[1]))).result


def sys_mprotect(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.MM_PID, p.MmMprotect(caller=c.pid, addr=c.args[0],
                                                   length=c.args[1],
                                                   prot=_int(c.args[2])))).result


# --- the table ----------------------------------------------------------------------

KERNEL, VFS, PM, MM = "kernel", "vfs", "pm", "mm"


@dataclass(frozen=True, slots=True)
class SyscallEntry:
    name: str
    owner: str
    handler: Callable[["Kernel", SyscallContext], SyscallGen]


_TABLE: dict[Sys, tuple[str, Callable[["Kernel", SyscallContext], SyscallGen]]] = {
    Sys.DEBUG_WRITE: (KERNEL, sys_debug_write),
    Sys.MONOTONIC_NS: (KERNEL, sys_monotonic_ns),
    Sys.OPEN: (VFS, sys_open),
    Sys.CLOSE: (VFS, sys_close),
    Sys.READ: (VFS, sys_read),
    Sys.WRITE: (VFS, sys_write),
    Sys.LSEEK: (VFS, sys_lseek),
    Sys.STAT: (VFS, sys_stat),
    Sys.FSTAT: (VFS, sys_fstat),
    Sys.ACCESS: (VFS, sys_access),
    Sys.DUP: (VFS, sys_dup),
    Sys.DUP2: (VFS, sys_dup2),
    Sys.PIPE: (VFS, sys_pipe),
    Sys.IOCTL: (VFS, sys_ioctl),
    Sys.FCNTL: (VFS, sys_fcntl),
    Sys.MKDIR: (VFS, sys_mkdir),
    Sys.RMDIR: (VFS, sys_rmdir),
    Sys.CHDIR: (VFS, sys_chdir),
    Sys.GETCWD: (VFS, sys_getcwd),
    Sys.LINK: (VFS, sys_link),
    Sys.UNLINK: (VFS, sys_unlink),
    Sys.RENAME: (VFS, sys_rename),
    Sys.CHMOD: (VFS, sys_chmod),
    Sys.CHOWN: (VFS, sys_chown),
    Sys.EXIT: (PM, sys_exit),
    Sys.FORK: (PM, sys_fork),
    Sys.EXECVE: (PM, sys_execve),
    Sys.WAIT4: (PM, sys_wait4),
    Sys.GETPID: (PM, sys_getpid),
    Sys.GETPPID: (PM, sys_getppid),
    Sys.KILL: (PM, sys_kill),
    Sys.SIGNAL: (PM, sys_signal),
    Sys.SIGACTION: (PM, sys_sigaction),
    Sys.BRK: (MM, sys_brk),
    Sys.MMAP: (MM, sys_mmap),
    Sys.MUNMAP: (MM, sys_munmap),
    Sys.MPROTECT: (MM, sys_mprotect),
    Sys.LATTICE_CONNECT: (KERNEL, sys_lattice_connect),
    Sys.LATTICE_SEND: (KERNEL, sys_lattice_send),
    Sys.LATTICE_RECV: (KERNEL, sys_lattice_recv),
    Sys.LATTICE_CLOSE: (KERNEL, sys_lattice_close),
    Sys.TIME: (KERNEL, sys_time),
    Sys.GETTIMEOFDAY: (KERNEL, sys_gettimeofday),
    Sys.CLOCK_GETTIME: (KERNEL, sys_clock_gettime),
    Sys.NANOSLEEP: (KERNEL, sys_nanosleep),
    Sys.GETUID: (KERNEL, _cred("uid")),
    Sys.GETEUID: (KERNEL, _cred("euid")),
    Sys.GETGID: (KERNEL, _cred("gid")),
    Sys.GETEGID: (KERNEL, _cred("egid")),
}

SYSCALLS: dict[int, SyscallEntry] = {
    int(nr): SyscallEntry(nr.name.lower(), owner, handler) for nr, (owner, handler) in _TABLE.items()
}


def register(nr: Sys, owner: str, handler: Callable[["Kernel", SyscallContext], SyscallGen]) -> None:
    """Add an extension number's entry (used by the modules that implement them)."""
    if int(nr) in SYSCALLS:
        raise ValueError(f"syscall {nr!r} already in the table")
    SYSCALLS[int(nr)] = SyscallEntry(nr.name.lower(), owner, handler)
