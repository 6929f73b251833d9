"""Space and copy calls: fallocate, copy_file_range, splice, tee, vmsplice,
preadv2/pwritev2, sync_file_range, readahead, memfd_create, chroot, close_range.

The copies are one ``VfsCopy`` each: the data moves inside the VFS, never through
the caller's memory (vmsplice, whose data *is* the caller's memory, excepted).
"""
from __future__ import annotations

import errno
import os
import struct
from typing import TYPE_CHECKING, Any, Generator

from ...lib import linux_abi as abi
from ...lib import protocol as p
from ...lib.errors import SysError
from .base import Op, SyscallContext, SyscallGen, ask, c_int, path_arg
from .files import read_into, vector_io, write_from

if TYPE_CHECKING:
    from ..kernel import Kernel

LOFF = abi.POINTER                 # a loff_t in user memory (8 bytes, little-endian)
S_IFMT, S_IFIFO, S_IFREG, S_IFDIR = 0o170000, 0o010000, 0o100000, 0o040000
O_PATH = 0o10000000
MAX_RW_COUNT = 0x7FFFF000
SPLICE_F_ALL = 0xF                 # MOVE | NONBLOCK | MORE | GIFT


def _signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def sys_fallocate(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsFallocate(
        caller=c.pid, fd=c_int(c.args[0]), mode=c_int(c.args[1]),
        offset=_signed(c.args[2]), length=_signed(c.args[3])))).result


def _loff_in(c: SyscallContext, ptr: int) -> int:
    if not ptr:
        return -1
    (value,) = LOFF.unpack(c.mem.read(ptr, LOFF.size))
    value = _signed(value)
    if value < 0:
        raise SysError(errno.EINVAL)
    return value


def _copy(c: SyscallContext, kind: int, in_fd: int, in_ptr: int, out_fd: int, out_ptr: int,
          count: int, flags: int) -> Generator[Op, Any, int]:
    in_off, out_off = _loff_in(c, in_ptr), _loff_in(c, out_ptr)
    reply = yield from ask(p.VFS_PID, p.VfsCopy(
        caller=c.pid, kind=kind, in_fd=in_fd, out_fd=out_fd, in_off=in_off, out_off=out_off,
        count=min(count, MAX_RW_COUNT), flags=flags))
    if in_ptr and reply.result:
        c.mem.write(in_ptr, LOFF.pack(reply.in_off))
    if out_ptr and reply.result:
        c.mem.write(out_ptr, LOFF.pack(reply.out_off))
    return reply.result


def sys_copy_file_range(k: "Kernel", c: SyscallContext) -> SyscallGen:
    flags = c.args[5] & 0xFFFFFFFF
    if flags:
        raise SysError(errno.EINVAL)
    return (yield from _copy(c, p.COPY_RANGE, c_int(c.args[0]), c.args[1], c_int(c.args[2]),
                             c.args[3], c.args[4], 0))


def sys_splice(k: "Kernel", c: SyscallContext) -> SyscallGen:
    flags = c.args[5] & 0xFFFFFFFF
    if flags & ~SPLICE_F_ALL:
        raise SysError(errno.EINVAL)
    return (yield from _copy(c, p.COPY_SPLICE, c_int(c.args[0]), c.args[1], c_int(c.args[2]),
                             c.args[3], c.args[4], flags))


def sys_tee(k: "Kernel", c: SyscallContext) -> SyscallGen:
    flags = c.args[3] & 0xFFFFFFFF
    if flags & ~SPLICE_F_ALL:
        raise SysError(errno.EINVAL)
    return (yield from _copy(c, p.COPY_TEE, c_int(c.args[0]), 0, c_int(c.args[1]), 0,
                             c.args[2], flags))


def sys_vmsplice(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """vmsplice: the caller's memory into a pipe (its write end) or out of it (its
    read end) -- a writev or readv of the pipe."""
    fd, flags = c_int(c.args[0]), c.args[3] & 0xFFFFFFFF
    if flags & ~SPLICE_F_ALL:
        raise SysError(errno.EINVAL)
    info = yield from ask(p.VFS_PID, p.VfsFdinfo(caller=c.pid, fd=fd))
    if info.mode & S_IFMT != S_IFIFO or info.flags & O_PATH:
        raise SysError(errno.EBADF)
    writing = info.flags & os.O_ACCMODE != os.O_RDONLY
    return (yield from vector_io(k, c, fd, c.args[1], c.args[2], -1,
                                 write_from if writing else read_into))


# preadv2/pwritev2 flags (RWF_*)
RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_APPEND, RWF_NOAPPEND = 1, 2, 4, 8, 0x10, 0x20
RWF_SUPPORTED = 0x3F


def _rw2(k: "Kernel", c: SyscallContext, writing: bool) -> Generator[Op, Any, int]:
    fd, flags = c_int(c.args[0]), c.args[5] & 0xFFFFFFFF
    offset = _signed(c.args[3])
    if flags & ~RWF_SUPPORTED:
        raise SysError(errno.EOPNOTSUPP)
    if offset < -1:
        raise SysError(errno.EINVAL)
    if flags & RWF_NOWAIT:
        # only files that can wait honour it (a pipe); a ramfs file says, as tmpfs,
        # that it cannot promise not to block
        info = yield from ask(p.VFS_PID, p.VfsFdinfo(caller=c.pid, fd=fd))
        if info.mode & S_IFMT != S_IFIFO:
            raise SysError(errno.EOPNOTSUPP)
    transfer = write_from if writing else read_into
    done = yield from vector_io(k, c, fd, c.args[1], c.args[2], offset, transfer)
    if writing and done and flags & (RWF_DSYNC | RWF_SYNC):
        yield from ask(p.VFS_PID, p.VfsFsync(caller=c.pid, fd=fd,
                                              datasync=0 if flags & RWF_SYNC else 1))
    return done


def sys_preadv2(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _rw2(k, c, False))


def sys_pwritev2(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _rw2(k, c, True))


SYNC_FILE_RANGE_ALL = 7


def sys_sync_file_range(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """The ramfs has no page cache to start writing out; the checks are Linux's
    (EINVAL before EBADF, ESPIPE for a pipe)."""
    fd, offset, nbytes, flags = c_int(c.args[0]), _signed(c.args[1]), _signed(c.args[2]), \
        c.args[3] & 0xFFFFFFFF
    if flags & ~SYNC_FILE_RANGE_ALL or offset < 0 or nbytes < 0 or offset + nbytes < 0:
        raise SysError(errno.EINVAL)
    info = yield from ask(p.VFS_PID, p.VfsFdinfo(caller=c.pid, fd=fd))
    if info.flags & O_PATH:
        raise SysError(errno.EBADF)
    fmt = info.mode & S_IFMT
    if fmt not in (S_IFREG, S_IFDIR, 0o120000, 0o060000):
        raise SysError(errno.ESPIPE)
    return 0


def sys_readahead(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """readahead: an fd open for reading (EBADF) on a regular file (EINVAL)."""
    fd = c_int(c.args[0])
    info = yield from ask(p.VFS_PID, p.VfsFdinfo(caller=c.pid, fd=fd))
    if info.flags & O_PATH or info.flags & os.O_ACCMODE == os.O_WRONLY:
        raise SysError(errno.EBADF)
    if info.mode & S_IFMT != S_IFREG:
        raise SysError(errno.EINVAL)
    return 0


MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB = 1, 2, 4
MFD_NOEXEC_SEAL, MFD_EXEC = 8, 0x10
MFD_NAME_MAX = 249                 # NAME_MAX less "memfd:"


def sys_memfd_create(k: "Kernel", c: SyscallContext) -> SyscallGen:
    flags = c.args[1] & 0xFFFFFFFF
    if flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC):
        raise SysError(errno.EINVAL)
    if flags & MFD_HUGETLB:
        raise SysError(errno.EINVAL)          # no hugetlbfs here
    try:
        name = c.mem.read_cstring(c.args[0], MFD_NAME_MAX + 1)
    except SysError as exc:
        raise SysError(errno.EINVAL if exc.errno == errno.ENAMETOOLONG else exc.errno)
    return (yield from ask(p.VFS_PID, p.VfsMemfd(caller=c.pid, flags=flags, path=name))).result


OPEN_HOW = struct.Struct("<QQQ")      # flags, mode, resolve: OPEN_HOW_SIZE_VER0 = 24
RESOLVE_ALL, RESOLVE_BENEATH, RESOLVE_IN_ROOT = 0x3F, 0x08, 0x10
O_CREAT, O_TMPFILE = 0o100, 0o20200000
VALID_OPEN_FLAGS = 0o37777703
O_PATH_FLAGS = 0o12600000


def sys_openat2(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """openat2(dirfd, path, how, size): struct open_how checked as Linux's
    copy_struct_from_user and build_open_how (unknown bits are errors here, not
    ignored as by openat), then the open with its RESOLVE_* rules."""
    size = c.args[3]
    if size < OPEN_HOW.size:
        raise SysError(errno.EINVAL)
    if size > 4096:
        raise SysError(errno.E2BIG)
    raw = c.mem.read(c.args[2], size)
    if any(raw[OPEN_HOW.size:]):
        raise SysError(errno.E2BIG)
    flags, mode, rules = OPEN_HOW.unpack_from(raw)
    if flags & ~VALID_OPEN_FLAGS or rules & ~RESOLVE_ALL or mode & ~0o7777:
        raise SysError(errno.EINVAL)
    if rules & RESOLVE_BENEATH and rules & RESOLVE_IN_ROOT:
        raise SysError(errno.EINVAL)
    if mode and not flags & O_CREAT and flags & O_TMPFILE != O_TMPFILE:
        raise SysError(errno.EINVAL)
    if flags & O_PATH and flags & ~O_PATH_FLAGS:
        raise SysError(errno.EINVAL)
    path = path_arg(c, c.args[1])
    return (yield from ask(p.VFS_PID, p.VfsOpenat2(caller=c.pid, dirfd=c_int(c.args[0]),
                                                    flags=flags, mode=mode, resolve=rules,
                                                    path=path))).result


def sys_chroot(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsChroot(caller=c.pid,
                                                   path=path_arg(c, c.args[0])))).result


def sys_close_range(k: "Kernel", c: SyscallContext) -> SyscallGen:
    first, last, flags = c.args[0] & 0xFFFFFFFF, c.args[1] & 0xFFFFFFFF, c_int(c.args[2])
    if first > last or flags & ~(abi.CLOSE_RANGE_CLOEXEC | 2):
        raise SysError(errno.EINVAL)
    return (yield from ask(p.VFS_PID, p.VfsCloseRange(caller=c.pid, first=first, last=last,
                                                       flags=flags))).result
