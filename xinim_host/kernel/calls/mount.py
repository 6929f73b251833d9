"""mount(2) and umount2(2): the VFS's mount table (vfs_fuse/mount_calls.py)."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ...lib import protocol as p
from ...lib.errors import SysError
from .base import SyscallContext, SyscallGen, ask, c_int, path_arg

if TYPE_CHECKING:
    from ..kernel import Kernel

OPTIONS_MAX = 4096 - 2 * 256          # source and type travel with the options


def _string(c: SyscallContext, addr: int, limit: int) -> bytes:
    if not addr:
        return b""
    raw = c.mem.read_cstring(addr, limit + 1)
    if len(raw) > limit:
        raise SysError(errno.ENAMETOOLONG if limit < OPTIONS_MAX else errno.EINVAL)
    return raw


def sys_mount(k: Kernel, c: SyscallContext) -> SyscallGen:
    source = _string(c, c.args[0], p.PATH_MAX_WIRE)
    target = path_arg(c, c.args[1])
    fstype = _string(c, c.args[2], p.PATH_MAX_WIRE)
    flags = c.args[3] & 0xFFFFFFFF
    options = _string(c, c.args[4], OPTIONS_MAX)
    reply = yield from ask(p.VFS_PID, p.VfsMount(caller=c.pid, flags=flags, path=target,
                                                 data=source + b"\0" + fstype + b"\0" + options))
    return reply.result


def sys_umount2(k: Kernel, c: SyscallContext) -> SyscallGen:
    target = path_arg(c, c.args[0])
    reply = yield from ask(p.VFS_PID, p.VfsUmount(caller=c.pid, flags=c_int(c.args[1]),
                                                  path=target))
    return reply.result
