"""Synthetic vnodes: the filesystems the VFS makes up instead of storing (devfs,
devpts, procfs).

They offer the vnode operations of :mod:`.mounts` (``lookup``, ``mode``,
``attr3``, ``readlink``, ``stat_reply``, ``listdir``...) over :class:`PNode`
objects, so namei and the handlers treat them like a host mount: directory
listings come from :meth:`PseudoFs.listdir`, a regular file's contents from
:meth:`PseudoFs.open_host` -- a memfd written with the text at open time (what
``cat`` then reads through the ordinary host-file I/O), a device's driver from
its ``st.st_rdev``.  Every change of the namespace is EROFS: the tree is what
the filesystem says it is.

A filesystem may also have *magic* symlinks (``/proc/PID/fd/N``, ``cwd``,
``exe``): :meth:`PseudoFs.magic` gives the place the link stands for, and namei
goes there directly instead of resolving the link's text, as Linux does.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..lib.errors import SysError
from ..lib.protocol import VfsStatReply
from .ramfs import StatFs

if TYPE_CHECKING:
    from .fdtable import Fproc

S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR = stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK, stat.S_IFCHR
DT_DIR, DT_REG, DT_LNK, DT_CHR = 4, 8, 10, 2
_DT = {S_IFDIR: DT_DIR, S_IFREG: DT_REG, S_IFLNK: DT_LNK, S_IFCHR: DT_CHR}


def _erofs(*args: Any, **kw: Any) -> Any:
    raise SysError(errno.EROFS)


class PNode:
    """A synthetic vnode.  ``data`` is what its filesystem needs to produce it (a
    static directory's entries, a link target, a pid...).  ``st`` is the node
    itself: the handlers read ``node.st.st_ino``/``st_rdev`` of non-ramfs vnodes."""

    __slots__ = ("ino", "mode", "uid", "gid", "rdev", "name", "parent", "data", "key",
                 "mtime_ns")

    def __init__(self, ino: int, mode: int, name: bytes, parent: "PNode | None" = None,
                 *, uid: int = 0, gid: int = 0, rdev: int = 0, data: Any = None,
                 key: Any = None) -> None:
        self.ino = ino
        self.mode = mode
        self.name = name
        self.parent = parent
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.data = data
        self.key = key
        self.mtime_ns = 0

    @property
    def st(self) -> "PNode":
        return self

    @property
    def st_ino(self) -> int:
        return self.ino

    @property
    def st_rdev(self) -> int:
        return self.rdev

    @property
    def st_mode(self) -> int:
        return self.mode

    @property
    def is_dir(self) -> bool:
        return self.mode & 0o170000 == S_IFDIR

    def __repr__(self) -> str:
        return f"<PNode {self.name!r} ino={self.ino} mode={self.mode:o}>"



class DeviceAlias(PNode):
    """A device node standing for one particular device object, not for whatever
    its numbers name: xinim-run's second console (the program's fd 2 on our
    stderr), a joined node's terminal.  It has the name, numbers and owner of
    ``node`` (fstat and /proc/PID/fd/N show /dev/console), and opening it --
    through /proc/PID/fd/N, /dev/stderr -- opens ``device`` itself."""

    __slots__ = ("device",)

    def __init__(self, node: PNode, device: Any) -> None:
        super().__init__(node.ino, node.mode, node.name, node.parent, uid=node.uid,
                         gid=node.gid, rdev=node.rdev, data=node.data, key=node.key)
        self.device = device

class PseudoFs:
    """Base of devfs, devpts and procfs.  Subclasses give ``children(dir)`` (and may
    speed up ``child(dir, name)``), ``link_target(node)``, ``content(node)`` and
    ``magic(node)``.  Each takes ``who``, the calling process's VFS record (None
    when nobody in XINIM asks, e.g. the FUSE export): procfs answers "self" and
    checks access with it; the vnode operations hand it down."""

    kind = "pseudo"
    fstype = b"pseudo"         # the type /proc/mounts shows
    source = b"none"           # its "device" there
    options = b"rw"
    readonly = True
    has_submounts = False
    f_type = 0

    def __init__(self, dev: int) -> None:
        self.dev = dev
        self.covers: Any = None
        self.root = PNode(1, S_IFDIR | 0o755, b"")
        self.born_ns = time.time_ns()

    # -- the tree: what subclasses override -------------------------------------------
    def children(self, dir: PNode, who: Fproc | None = None) -> Iterable[tuple[bytes, PNode]]:
        entries = dir.data
        return entries.items() if isinstance(entries, dict) else ()

    def child(self, dir: PNode, name: bytes, who: Fproc | None = None) -> PNode | None:
        entries = dir.data
        if isinstance(entries, dict):
            return entries.get(name)
        for n, node in self.children(dir, who):
            if n == name:
                return node
        return None

    def link_target(self, node: PNode, who: Fproc | None = None) -> bytes:
        target = node.data
        if callable(target):
            target = target()
        if not isinstance(target, bytes):
            raise SysError(errno.ENOENT)
        return target

    def content(self, node: PNode, who: Fproc | None = None) -> bytes:
        data = node.data
        if callable(data):
            data = data()
        return data if isinstance(data, bytes) else b""

    def magic(self, node: PNode, who: Fproc | None = None) -> Any:
        """The Loc a magic link stands for (None: an ordinary symlink)."""
        return None

    def times_ns(self, node: PNode) -> int:
        return node.mtime_ns or self.born_ns

    # -- vnode operations (see mounts.RamMount / hostfs.HostFs) --------------------------
    def is_root(self, node: PNode) -> bool:
        return node is self.root

    def lookup(self, dir: PNode, name: bytes, who: Fproc | None = None) -> PNode:
        if dir.mode & 0o170000 != S_IFDIR:
            raise SysError(errno.ENOTDIR)
        if name == b"." or not name:
            return dir
        if name == b"..":
            return dir.parent or dir
        node = self.child(dir, name, who)
        if node is None:
            raise SysError(errno.ENAMETOOLONG if len(name) > 255 else errno.ENOENT)
        return node

    @staticmethod
    def parent(node: PNode) -> PNode:
        return node.parent or node

    @staticmethod
    def mode(node: PNode) -> int:
        return node.mode

    @staticmethod
    def attr3(node: PNode) -> tuple[int, int, int]:
        return node.mode, node.uid, node.gid

    def readlink(self, node: PNode, who: Fproc | None = None) -> bytes:
        if node.mode & 0o170000 != S_IFLNK:
            raise SysError(errno.EINVAL)
        return self.link_target(node, who)

    @staticmethod
    def host_path(node: PNode) -> bytes:
        return b""

    @staticmethod
    def refresh(node: PNode) -> PNode:
        return node

    def size(self, node: PNode, who: Fproc | None = None) -> int:
        if node.mode & 0o170000 == S_IFLNK:
            try:
                return len(self.link_target(node, who))
            except SysError:
                return 0
        return 0                              # as Linux: generated files say 0

    def rel_path(self, node: PNode) -> bytes:
        """The path of ``node`` below this filesystem's root (for getcwd, fd links)."""
        parts = []
        while node.parent is not None and node is not self.root:
            parts.append(node.name)
            node = node.parent
        return b"/".join(reversed(parts))

    def nlink(self, node: PNode) -> int:
        if node.mode & 0o170000 != S_IFDIR:
            return 1
        entries = node.data
        if isinstance(entries, dict):
            return 2 + sum(1 for n in entries.values() if n.is_dir)
        return 2

    def stat_reply(self, node: PNode, fresh: bool = True,
                   who: Fproc | None = None) -> VfsStatReply:
        t = self.times_ns(node)
        return VfsStatReply(dev=self.dev, ino=node.ino, mode=node.mode, nlink=self.nlink(node),
                            uid=node.uid, gid=node.gid, rdev=node.rdev,
                            size=self.size(node, who),
                            blksize=1024, blocks=0, atime_ns=t, mtime_ns=t, ctime_ns=t)

    def statfs(self) -> StatFs:
        return StatFs(f_bsize=4096, f_frsize=4096, f_blocks=0, f_bfree=0, f_bavail=0,
                      f_files=0, f_ffree=0, f_favail=0, f_flag=0, f_namemax=255,
                      f_fsid=self.dev, f_type=self.f_type)

    def hold(self, node: PNode) -> None:
        pass

    def release(self, node: PNode) -> None:
        pass

    def listdir(self, node: PNode, who: Fproc | None = None) -> list[tuple[bytes, int, int]]:
        if node.mode & 0o170000 != S_IFDIR:
            raise SysError(errno.ENOTDIR)
        return [(name, child.ino, _DT.get(child.mode & 0o170000, 0))
                for name, child in self.children(node, who)]

    def open_host(self, node: PNode, flags: int, who: Fproc | None = None) -> int:
        """The file's text, generated now, in a memfd the host-file I/O reads."""
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise SysError(errno.EACCES)
        data = self.content(node, who)
        fd = os.memfd_create("xinim-" + self.kind, os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            os.close(fd)
            raise SysError(exc.errno or errno.EIO) from None
        return fd

    def _writable(self) -> None:
        raise SysError(errno.EROFS)

    mknod = mkdir = symlink = link = unlink = rmdir = rename = setattr = staticmethod(_erofs)


class Inos:
    """Stable inode numbers for made-up nodes: one per key, never reused."""

    def __init__(self, first: int = 2) -> None:
        self._next = first
        self._of: dict[Any, int] = {}

    def __call__(self, key: Any) -> int:
        ino = self._of.get(key)
        if ino is None:
            ino = self._of[key] = self._next
            self._next += 1
        return ino


def add(parent: PNode, node: PNode) -> PNode:
    node.parent = parent
    parent.data[node.name] = node
    return node


Content = Callable[[], bytes]
