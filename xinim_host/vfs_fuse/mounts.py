"""The mount table: the ramfs at ``/`` and host directories mounted on it.

Each filesystem offers the same vnode operations (``lookup``, ``parent``,
``mode``, ``attr3``, ``readlink``, ``stat_reply``, ``mknod``/``mkdir``/...,
``setattr``, ``statfs``, ``hold``/``release``): :class:`RamMount` for the ramfs
(its vnodes are :class:`~.ramfs.Inode` objects), :class:`~.hostfs.HostFs` for host
directories (vnodes :class:`~.hostfs.HostNode`), and the synthetic filesystems
(devfs, devpts, procfs: :mod:`.devfs_nodes`).  A place in the namespace is a
:class:`Loc` -- which filesystem, which vnode.  A :class:`Bind` mounts a
directory of a filesystem (not its root) somewhere else: /dev/shm is the ramfs
directory /dev/shm (hidden under devfs) bound on devfs's shm/.
"""
from __future__ import annotations

import errno
import os
import stat
import struct
from typing import Any, NamedTuple

from ..lib.errors import SysError
from ..lib.protocol import VfsStatReply
from .hostfs import HostFs
from .ramfs import PAGE, Inode, Ramfs, StatFs

_INT = struct.Struct("<i")

RAMFS_DEV = os.makedev(0, 0x58)   # st_dev of every ramfs file
DEFAULT_MOUNTS: tuple[tuple[str, str, str], ...] = (
    ("/bin", "/bin", "ro"), ("/lib", "/lib", "ro"), ("/lib64", "/lib64", "ro"),
    ("/usr", "/usr", "ro"), ("/etc", "/etc", "ro"),
)


class Loc(NamedTuple):
    """A place in the XINIM namespace."""

    fs: Any      # RamMount | HostFs
    node: Any    # Inode | HostNode


class RamMount:
    """The ramfs seen through the vnode interface the VFS server uses."""

    kind = "ramfs"
    readonly = False
    has_submounts = True

    def __init__(self, ramfs: Ramfs) -> None:
        self.ramfs = ramfs
        self.root = ramfs.root
        self.dev = RAMFS_DEV
        self.covers: Loc | None = None
        # straight delegation: these are the ramfs operations themselves
        self.lookup = ramfs.lookup
        self.mknod = ramfs.mknod
        self.mkdir = ramfs.mkdir
        self.symlink = ramfs.symlink
        self.link = ramfs.link
        self.unlink = ramfs.unlink
        self.rmdir = ramfs.rmdir
        self.rename = ramfs.rename
        self.setattr = ramfs.setattr
        self.hold = ramfs.hold
        self.release = ramfs.release
        self.read = ramfs.read
        self.write = ramfs.write
        self.truncate = ramfs.truncate
        self.anon_file = ramfs.anon_file

    def is_root(self, node: Inode) -> bool:
        return node is self.root

    @staticmethod
    def parent(node: Inode) -> Inode:
        return node.parent or node

    @staticmethod
    def mode(node: Inode) -> int:
        return node.mode

    @staticmethod
    def attr3(node: Inode) -> tuple[int, int, int]:
        return node.mode, node.uid, node.gid

    @staticmethod
    def readlink(node: Inode, who: Any = None) -> bytes:
        return node.target

    @staticmethod
    def host_path(node: Inode) -> bytes:
        return b""

    @staticmethod
    def refresh(node: Inode) -> Inode:
        return node

    @staticmethod
    def size(node: Inode) -> int:
        return node.size

    def stat_reply(self, node: Inode, fresh: bool = True, who: Any = None) -> VfsStatReply:
        return VfsStatReply(dev=RAMFS_DEV, ino=node.ino, mode=node.mode, nlink=node.nlink,
                            uid=node.uid, gid=node.gid, rdev=node.rdev, size=node.size,
                            blksize=4096, blocks=node.blocks, atime_ns=node.atime_ns,
                            mtime_ns=node.mtime_ns, ctime_ns=node.ctime_ns)

    def statfs(self) -> StatFs:
        return self.ramfs.statfs()


class Bind:
    """A directory ``loc`` mounted somewhere else (what ``covered`` maps a bind's
    mount point to)."""

    __slots__ = ("loc", "at")

    def __init__(self, loc: Loc, at: Loc) -> None:
        self.loc = loc          # the directory shown
        self.at = at            # its mount point

    @property
    def fs(self) -> Any:
        return self.loc.fs


class MountTable:
    """Which filesystem covers which directory; crossing mount points."""

    def __init__(self, ramfs: Ramfs) -> None:
        self.root_fs = RamMount(ramfs)
        self.root = Loc(self.root_fs, self.root_fs.root)
        self.covered: dict[Any, Any] = {}        # mount-point vnode -> fs (or Bind) on it
        self.mounts: list[tuple[bytes, Any]] = [(b"/", self.root_fs)]
        self.bind_points: dict[Any, Loc] = {}    # a bound directory -> its mount point

    def mount(self, fs: Any, at: Loc, xpath: bytes) -> None:
        if not stat.S_ISDIR(at.fs.mode(at.node)):
            raise NotADirectoryError(xpath)
        if isinstance(at.fs, RamMount):
            at.fs.ramfs.pin(at.node)              # EBUSY for rmdir/rename, also via FUSE
        else:
            at.fs.hold(at.node)
        below = self.covered.get(at.node)
        if below is not None:                     # mounting over a mount: stack on top
            return self.mount(fs, below.loc if type(below) is Bind else Loc(below, below.root),
                              xpath)
        fs.covers = at
        self.covered[at.node] = fs
        at.fs.has_submounts = True
        self.mounts.append((xpath, fs))

    def bind(self, loc: Loc, at: Loc, xpath: bytes) -> None:
        """Show directory ``loc`` at mount point ``at`` (``..`` there leads to the
        mount point's parent, as for any mount)."""
        if not stat.S_ISDIR(loc.fs.mode(loc.node)) or not stat.S_ISDIR(at.fs.mode(at.node)):
            raise NotADirectoryError(xpath)
        if at.node in self.covered:
            raise SysError(errno.EBUSY, f"{xpath!r} is a mount point already")
        if isinstance(loc.fs, RamMount):
            loc.fs.ramfs.pin(loc.node)            # the shown directory must stay
        at.fs.hold(at.node)
        self.covered[at.node] = Bind(loc, at)
        self.bind_points[loc.node] = at
        at.fs.has_submounts = True
        self.mounts.append((xpath, Bind(loc, at)))

    def cross(self, loc: Loc) -> Loc:
        """The root of whatever is mounted on ``loc`` (loc itself when nothing is)."""
        fs = self.covered.get(loc.node)
        while fs is not None:
            loc = fs.loc if type(fs) is Bind else Loc(fs, fs.root)
            fs = self.covered.get(loc.node) if loc.fs.has_submounts else None
        return loc

    def is_mountpoint(self, node: Any) -> bool:
        return node in self.covered

    def close(self) -> None:
        for _, fs in self.mounts:
            if isinstance(fs, HostFs):
                fs.close()


# --- the ``io`` of open regular files and directories (see fdtable) -------------------

SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = 0, 1, 2, 3, 4
FIONREAD = 0x541B
_READY = 0x1 | 0x4 | 0x40 | 0x100          # POLLIN|POLLOUT|POLLRDNORM|POLLWRNORM
_LOFF_MAX = (1 << 63) - 1


def seek_position(of: Any, offset: int, whence: int, size: int) -> int:
    """The new position of a plain lseek (SEEK_SET/CUR/END); EINVAL if negative."""
    if whence == SEEK_SET:
        pos = offset
    elif whence == SEEK_CUR:
        pos = of.offset + offset
    elif whence == SEEK_END:
        pos = size + offset
    else:
        raise SysError(errno.EINVAL)
    if pos < 0 or pos > _LOFF_MAX:
        raise SysError(errno.EINVAL)
    return pos


SIGXFSZ = 25


def fsize_cut(req: Any, pos: int, data: Any) -> Any:
    """RLIMIT_FSIZE of the writer: what fits below it; nothing fits: SIGXFSZ, EFBIG."""
    fp = req.server.procs.get(req.caller) if req is not None else None
    if fp is None or pos + len(data) <= fp.fsize or not data:
        return data
    if pos >= fp.fsize:
        req.server.send_signal(req.caller, SIGXFSZ)
        raise SysError(errno.EFBIG)
    return data[:fp.fsize - pos]


def fsize_check(srv: Any, fp: Any, size: int) -> None:
    """truncate beyond RLIMIT_FSIZE: SIGXFSZ, EFBIG (inode_newsize_ok)."""
    if size > fp.fsize:
        srv.send_signal(fp.pid, SIGXFSZ)
        raise SysError(errno.EFBIG)


class RamFileIO:
    """Reads and writes of an open ramfs regular file."""

    __slots__ = ("ramfs",)
    seekable = True

    def __init__(self, ramfs: Ramfs) -> None:
        self.ramfs = ramfs

    def read(self, req: Any, of: Any, count: int, offset: int) -> bytes:
        if offset < 0:
            pos = of.offset
            data = self.ramfs.read(of.node, pos, count)
            of.offset = pos + len(data)
            return data
        return self.ramfs.read(of.node, offset, count)

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> int:
        node = of.node
        if of.flags & os.O_APPEND:            # also for pwrite, as Linux does
            pos = node._size
        elif offset < 0:
            pos = of.offset
        else:
            pos = offset
        data = fsize_cut(req, pos, data)
        n = self.ramfs.write(node, pos, data)
        if offset < 0:
            of.offset = pos + n
        return n

    def seek(self, of: Any, offset: int, whence: int) -> int:
        node = of.node
        size = node._size
        if whence in (SEEK_DATA, SEEK_HOLE):
            if offset < 0 or offset >= size:
                raise SysError(errno.ENXIO)
            idx = offset // PAGE
            pages = node.pages
            if whence == SEEK_DATA:
                later = [i for i in pages if i >= idx]
                if not later:
                    raise SysError(errno.ENXIO)
                return max(offset, min(later) * PAGE)
            while idx in pages:
                idx += 1
            return min(max(offset, idx * PAGE), size)
        return seek_position(of, offset, whence, size)

    def poll(self, of: Any, events: int) -> int:
        return events & _READY

    def waitq(self, of: Any) -> None:
        return None                           # never changes: always ready (regular files)

    def ioctl(self, req: Any, of: Any, request: int, data: bytes) -> tuple[int, bytes]:
        if request == FIONREAD:
            return 0, _INT.pack(max(0, min(of.node._size - of.offset, 0x7FFFFFFF)))
        raise SysError(errno.ENOTTY)

    def open(self, req: Any, of: Any) -> None:
        pass

    def close(self, of: Any) -> None:
        pass


class DirIO:
    """An open directory: no read/write (EISDIR); getdents works on ``of`` directly."""

    seekable = True

    def read(self, req: Any, of: Any, count: int, offset: int) -> bytes:
        raise SysError(errno.EISDIR)

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> int:
        raise SysError(errno.EBADF)

    def seek(self, of: Any, offset: int, whence: int) -> int:
        if whence == SEEK_SET:
            pos = offset
        elif whence == SEEK_CUR:
            pos = of.offset + offset
        else:
            raise SysError(errno.EINVAL)
        if pos < 0:
            raise SysError(errno.EINVAL)
        if pos == 0:
            of.dirlist = None                 # rewinddir: a fresh listing
        return pos

    def poll(self, of: Any, events: int) -> int:
        return events & _READY

    def waitq(self, of: Any) -> None:
        return None                           # never changes: always ready (regular files)

    def ioctl(self, req: Any, of: Any, request: int, data: bytes) -> tuple[int, bytes]:
        raise SysError(errno.ENOTTY)

    def open(self, req: Any, of: Any) -> None:
        pass

    def close(self, of: Any) -> None:
        pass


DIR_IO = DirIO()
