"""Files without a name: eventfd, epoll, timerfd, signalfd and inotify instances.

Linux puts them on one inode of the ``anon_inodefs`` pseudo filesystem
(``fs/anon_inodes.c``): ``fstat`` shows mode 0600 with no file type, and
``/proc/PID/fd/N`` reads ``anon_inode:[eventfd]`` and the like.  Here the
``node`` of such an open file description is the object itself (an
:class:`AnonFile`), which is also its ``io``; :data:`ANONFS` is the ``fs``.

An :class:`AnonFile` is an io as ``fdtable`` describes (read, write, poll,
waitq, ioctl, seek, open, close) plus ``name`` (what the fd link reads after
``anon_inode:``) and ``fdinfo(of)`` (its lines of /proc/PID/fdinfo/N).
"""
from __future__ import annotations

import errno
import os
import time
from typing import Any

from ..lib.errors import SysError
from ..lib.protocol import VfsStatReply
from ..lib.readiness import WaitQueue
from .pseudofs import PseudoFs

ANON_INODE_DEV = os.makedev(0, 0x0E)
ANON_INODE_INO = 1                       # every anon file shares the one inode, as on Linux
ANON_INODE_MAGIC = 0x09041934
ANON_MODE = 0o600                        # S_IRUSR | S_IWUSR, no file type bits


class AnonFile:
    """Base of the nameless files: not seekable, no ioctls, its own wait queue."""

    name = b"[anon]"
    seekable = False

    def __init__(self) -> None:
        self.q = WaitQueue()
        self.mtime_ns = time.time_ns()

    def read(self, req: Any, of: Any, count: int, offset: int) -> Any:
        raise SysError(errno.EINVAL)

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> Any:
        raise SysError(errno.EINVAL)

    def seek(self, of: Any, offset: int, whence: int) -> int:
        raise SysError(errno.ESPIPE)

    def ioctl(self, req: Any, of: Any, request: int, data: bytes) -> tuple[int, bytes]:
        raise SysError(errno.ENOTTY)

    def poll(self, of: Any, events: int) -> int:
        return 0

    def waitq(self, of: Any) -> WaitQueue:
        return self.q

    def open(self, req: Any, of: Any) -> None:
        pass

    def close(self, of: Any) -> None:
        pass

    def fdinfo(self, of: Any) -> bytes:
        return b""


class AnonFs(PseudoFs):
    """The pseudo filesystem nameless files live on (fstat, fstatfs; fchmod refused)."""

    kind = "anon_inodefs"
    readonly = True
    magic = ANON_INODE_MAGIC
    dev = ANON_INODE_DEV

    @staticmethod
    def mode(node: AnonFile) -> int:
        return ANON_MODE

    @staticmethod
    def attr3(node: AnonFile) -> tuple[int, int, int]:
        return ANON_MODE, 0, 0

    def stat_reply(self, node: AnonFile, fresh: bool = True, who: Any = None) -> VfsStatReply:
        return VfsStatReply(dev=ANON_INODE_DEV, ino=ANON_INODE_INO, mode=ANON_MODE, nlink=1,
                            uid=0, gid=0, size=0, blksize=4096, atime_ns=node.mtime_ns,
                            mtime_ns=node.mtime_ns, ctime_ns=node.mtime_ns)

    @staticmethod
    def setattr(node: AnonFile, **changes: Any) -> None:
        raise SysError(errno.EPERM)


ANONFS = AnonFs()


def install_anon(srv: Any, fp: Any, obj: AnonFile, flags: int, cloexec: bool) -> int:
    """A new description of ``obj`` (O_RDWR plus ``flags``' O_NONBLOCK) at the lowest
    free fd of ``fp``."""
    fd = fp.lowest_free()                 # EMFILE before anything is made
    of = srv.open_file(ANONFS, obj, obj, os.O_RDWR | (flags & os.O_NONBLOCK))
    return fp.install(of, fd, cloexec)
