"""sync and syncfs: the VFS answers once the data is where it must be.

Under ``--image`` that means in the image's journal on disk (vfs_fuse/journal.py);
fsync/fdatasync (calls/files.py) and msync(MS_SYNC) (calls/memory.py) take the
same road (VfsFsync, its ``datasync`` field saying which call it is).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...lib import protocol as p
from ...lib.errors import SysError
from .base import SyscallContext, SyscallGen, ask, c_int

if TYPE_CHECKING:
    from ..kernel import Kernel


def sys_sync(k: "Kernel", c: SyscallContext) -> SyscallGen:
    # void on Linux: a disk error is not the caller's to see
    try:
        yield from ask(p.VFS_PID, p.VfsFsync(caller=c.pid, fd=-1, datasync=p.FSYNC_ALL))
    except SysError:
        pass
    return 0


def sys_syncfs(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.VFS_PID, p.VfsFsync(caller=c.pid, fd=c_int(c.args[0]),
                                                  datasync=p.FSYNC_FS))).result
