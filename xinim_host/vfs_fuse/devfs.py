"""devfs at /dev and devpts at /dev/pts: XINIM-side filesystems in the mount table.

``/dev`` (a :class:`DevFs` mounted on the ramfs directory ``/dev``)::

    null zero full random urandom    c 1,3 1,5 1,7 1,8 1,9   (devices.py)
    tty console ptmx                 c 5,0 5,1 5,2           (the caller's terminal,
                                                              the console, a new pty)
    stdin stdout stderr fd           -> /proc/self/fd/0 1 2, /proc/self/fd (as Linux:
                                        resolved per caller through procfs' magic links)
    pts/                             devpts: ptmx (c 5,2) and N (c 136,N) per open pty
    shm/                             the ramfs directory /dev/shm (mode 1777), bound here

The device nodes name drivers by ``st_rdev`` exactly as ramfs device nodes do
(``mknod`` in the ramfs works too); the nodes themselves are made up here, so
the FUSE export, which shows the ramfs, shows ``/dev`` with only ``shm`` in it.
devfs is read-only (EROFS for mknod/chmod/...); ``/dev/shm`` is ordinary ramfs.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Any, Iterable

from ..lib.errors import SysError
from .devfs_nodes import S_IFCHR, S_IFDIR, S_IFLNK, PNode, PseudoFs, add
from .devfs_pty import TTY_GID, PtmxDevice, PtsDevice, Pty, PtyRegistry, TtyDevice
from .mounts import Loc

DEVFS_DEV = os.makedev(0, 5)          # devtmpfs's usual st_dev
DEVPTS_DEV = os.makedev(0, 0x18)
TMPFS_MAGIC = 0x01021994
DEVPTS_SUPER_MAGIC = 0x1CD1

# name, (major, minor), mode, gid: the device nodes of /dev
DEV_NODES: tuple[tuple[bytes, tuple[int, int], int, int], ...] = (
    (b"null", (1, 3), 0o666, 0), (b"zero", (1, 5), 0o666, 0), (b"full", (1, 7), 0o666, 0),
    (b"random", (1, 8), 0o666, 0), (b"urandom", (1, 9), 0o666, 0),
    (b"tty", (5, 0), 0o666, TTY_GID), (b"console", (5, 1), 0o600, TTY_GID),
    (b"ptmx", (5, 2), 0o666, TTY_GID),
)
DEV_LINKS: tuple[tuple[bytes, bytes], ...] = (
    (b"stdin", b"/proc/self/fd/0"), (b"stdout", b"/proc/self/fd/1"),
    (b"stderr", b"/proc/self/fd/2"), (b"fd", b"/proc/self/fd"),
)


class DevFs(PseudoFs):
    kind = "devfs"
    fstype = b"devtmpfs"
    source = b"devtmpfs"
    options = b"rw,nosuid,mode=755"
    has_submounts = True                   # pts/ and shm/ are mount points
    f_type = TMPFS_MAGIC

    def __init__(self) -> None:
        super().__init__(DEVFS_DEV)
        root = self.root
        root.data = {}
        ino = 2
        for name, (major, minor), mode, gid in DEV_NODES:
            add(root, PNode(ino, S_IFCHR | mode, name, gid=gid,
                            rdev=os.makedev(major, minor)))
            ino += 1
        for name, target in DEV_LINKS:
            add(root, PNode(ino, S_IFLNK | 0o777, name, data=target))
            ino += 1
        self.pts = add(root, PNode(ino, S_IFDIR | 0o755, b"pts", data={}))
        self.shm = add(root, PNode(ino + 1, S_IFDIR | 0o1777, b"shm", data={}))
        self.mqueue = add(root, PNode(ino + 2, S_IFDIR | 0o1777, b"mqueue", data={}))


class DevPtsFs(PseudoFs):
    """/dev/pts: ``ptmx`` and one node per pty opened through XINIM."""

    kind = "devpts"
    fstype = b"devpts"
    source = b"devpts"
    options = b"rw,nosuid,noexec,gid=5,mode=620,ptmxmode=000"
    f_type = DEVPTS_SUPER_MAGIC

    def __init__(self, reg: PtyRegistry) -> None:
        super().__init__(DEVPTS_DEV)
        self.reg = reg
        self.ptmx = PNode(2, S_IFCHR, b"ptmx", self.root, gid=TTY_GID,
                          rdev=os.makedev(5, 2))
        reg.on_change = self._changed

    def _changed(self, pty: Pty, made: bool) -> None:
        if made:
            pty.node = PNode(pty.n + 3, S_IFCHR | 0o620, b"%d" % pty.n, self.root,
                             uid=pty.uid, gid=pty.gid, rdev=pty.rdev)

    def children(self, dir: PNode, who: Any = None) -> Iterable[tuple[bytes, PNode]]:
        if dir is not self.root:
            return ()
        out = [(b"ptmx", self.ptmx)]
        out.extend((pty.node.name, pty.node) for _, pty in sorted(self.reg.ptys.items()))
        return out

    def child(self, dir: PNode, name: bytes, who: Any = None) -> PNode | None:
        if dir is not self.root:
            return None
        if name == b"ptmx":
            return self.ptmx
        if name.isdigit() and name[:1] != b"0" or name == b"0":
            pty = self.reg.ptys.get(int(name))
            return pty.node if pty is not None else None
        return None

    def nlink(self, node: PNode) -> int:
        return 2 if node is self.root else 1


def install_devfs(srv: Any) -> None:
    """Mount devfs on the ramfs directory /dev, devpts on /dev/pts, and bind the
    ramfs directory /dev/shm (hidden under devfs) on devfs's shm/; register the
    pty and terminal drivers.  ``srv`` has made /dev and /dev/shm in its ramfs."""
    mounts = srv.mounts
    ramfs = srv.ramfs
    dev_dir = ramfs.lookup(ramfs.root, b"dev")
    shm_dir = ramfs.lookup(dev_dir, b"shm")
    if not stat.S_ISDIR(dev_dir.mode) or not stat.S_ISDIR(shm_dir.mode):
        raise SysError(errno.ENOTDIR, "/dev and /dev/shm must be ramfs directories")
    devfs = DevFs()
    reg = PtyRegistry()
    devpts = DevPtsFs(reg)
    mounts.mount(devfs, Loc(mounts.root_fs, dev_dir), b"/dev")
    mounts.bind(Loc(mounts.root_fs, shm_dir), Loc(devfs, devfs.shm), b"/dev/shm")
    mounts.mount(devpts, Loc(devfs, devfs.pts), b"/dev/pts")
    srv.devfs, srv.devpts, srv.ptys = devfs, devpts, reg
    devices = srv.devices
    console = devices.get(os.makedev(5, 1))
    devices[os.makedev(5, 0)] = TtyDevice(srv, reg, console)
    devices[os.makedev(5, 2)] = PtmxDevice(srv, reg)
    devices.pts = PtsDevice(srv, reg)
