"""mount(2) and umount2(2) inside XINIM.

Every mount made here is a :class:`MountView`: a filesystem the VFS already
has, seen from one of its directories, with its own root, mount point
(``covers``), read-only flag and /proc/mounts row.  Through a view a file is
the base filesystem's own vnode (a ramfs inode, a host node), so every
handler serves it as usual; only ``readonly`` and the crossing at its root are
the view's.

* ``tmpfs``/``ramfs``: a new, empty tree -- a fresh directory of the ramfs
  kept under the ramfs's ``/dev`` (covered by devfs, so no XINIM path reaches
  it except through the mount) and removed with everything in it at umount.
  It shares the ramfs's page pool and st_dev (Linux gives each tmpfs its own
  superblock and device number); ``size=`` is accepted and not enforced.
* ``proc``, ``devpts``, ``mqueue``: the system's instance again.
* ``MS_BIND`` (``MS_REC`` alike: submounts are crossed by their vnode, so they
  show through the bind anyway): a directory seen at another place;
  ``MS_REMOUNT|MS_BIND|MS_RDONLY`` makes that place read-only (EROFS), the
  original stays writable.  Bind mounts of single files are not done (ENOTDIR).
* block-device filesystems (ext4, xfs, vfat...) and any other type: ENODEV,
  with a log line saying why; ``MS_MOVE``: EINVAL; propagation changes
  (``--make-private`` and friends) are accepted and change nothing.

Only root (effective uid 0) may mount or unmount: EPERM otherwise.
"""
from __future__ import annotations

import errno
import itertools
import logging
import stat
from typing import TYPE_CHECKING, Any

from ..lib.errors import SysError
from ..lib.linux_abi import AT_FDCWD
from .handlers_common import caller_proc
from .mounts import Loc

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

log = logging.getLogger(__name__)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC = 32, 4096, 8192, 16384
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20
MS_PROPAGATION = MS_UNBINDABLE | MS_PRIVATE | MS_SLAVE | MS_SHARED
MNT_FORCE, MNT_DETACH, MNT_EXPIRE, UMOUNT_NOFOLLOW = 1, 2, 4, 8
BLOCK_FS = frozenset((b"ext2", b"ext3", b"ext4", b"xfs", b"btrfs", b"vfat", b"msdos",
                      b"exfat", b"ntfs", b"ntfs3", b"iso9660", b"udf", b"f2fs", b"jfs",
                      b"reiserfs", b"squashfs", b"erofs", b"hfs", b"hfsplus", b"minix"))
HIDDEN_DIR = b"dev"                 # the ramfs directory tmpfs trees live in (under devfs)
HIDDEN_PREFIX = b".tmpfs-"
_serial = itertools.count(1)


class MountView:
    """``base`` seen from its directory ``root`` (see the module notes)."""

    def __init__(self, base: Any, root: Any, *, readonly: bool, source: bytes, fstype: bytes,
                 options: bytes, hidden: bytes = b"") -> None:
        self.base = base
        self.root = root
        self.covers: Loc | None = None
        self.has_submounts = True
        self.own_readonly = readonly
        self.source = source
        self.fstype = fstype
        self.extra = options             # the mount's own options (size=..., mode=...)
        self.hidden = hidden             # tmpfs: its directory's name under the ramfs /dev

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    @property
    def readonly(self) -> bool:
        return self.own_readonly or bool(self.base.readonly)

    @property
    def options(self) -> bytes:
        opts = b"ro" if self.readonly else b"rw"
        base = getattr(self.base, "options", b"")
        rest = [o for o in base.split(b",") if o and o not in (b"rw", b"ro")] \
            if self.fstype == getattr(self.base, "fstype", None) else [b"relatime"]
        if self.extra:
            rest += [o for o in self.extra.split(b",") if o and o not in rest]
        return b",".join([opts] + rest)

    def is_root(self, node: Any) -> bool:
        return node is self.root

    def parent(self, node: Any) -> Any:
        return node if node is self.root else self.base.parent(node)


# --- helpers ---------------------------------------------------------------------------------


def _resolve(srv: VfsServer, fp: Any, path: bytes) -> Loc:
    return srv.namei.resolve(fp, AT_FDCWD, path)


def _mount_at(srv: VfsServer, loc: Loc) -> Any:
    """The mount whose root ``loc`` is (None: not a mount's root)."""
    for _, fs in srv.mounts.mounts:
        if getattr(fs, "covers", None) is not None and loc.fs is fs and fs.is_root(loc.node):
            return fs
    return None


def _hidden_dir(srv: VfsServer) -> Any:
    ramfs = srv.ramfs
    return ramfs.lookup(ramfs.root, HIDDEN_DIR)


def _options(data: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for opt in data.split(b","):
        if opt:
            k, _, v = opt.partition(b"=")
            out[k] = v
    return out


def _new_tmpfs(srv: VfsServer, fp: Any, source: bytes, fstype: bytes, flags: int,
               data: bytes) -> MountView:
    opts = _options(data)
    try:
        mode = int(opts.get(b"mode", b"1777"), 8) & 0o7777
        uid = int(opts.get(b"uid", b"0"))
        gid = int(opts.get(b"gid", b"0"))
    except ValueError:
        raise SysError(errno.EINVAL, "bad tmpfs option") from None
    name = HIDDEN_PREFIX + b"%d" % next(_serial)
    holder = _hidden_dir(srv)
    root = srv.ramfs.mkdir(holder, name, mode, uid, gid)
    srv.ramfs.setattr(root, mode=stat.S_IFDIR | mode)      # no umask, no setgid inheritance
    keep = [o for o in data.split(b",") if o and o.split(b"=")[0] in
            (b"size", b"nr_inodes", b"mode", b"uid", b"gid")]
    return MountView(srv.mounts.root_fs, root, readonly=bool(flags & MS_RDONLY),
                     source=source or b"none", fstype=fstype, options=b",".join(keep),
                     hidden=name)


def _remove_tree(srv: VfsServer, dir: Any) -> None:
    ramfs = srv.ramfs
    for name, child in list(dir.entries.items()):
        if child.is_dir:
            _remove_tree(srv, child)
            ramfs.rmdir(dir, name)
        else:
            ramfs.unlink(dir, name)


def clean_leftovers(srv: VfsServer) -> None:
    """At boot: tmpfs trees an earlier run left in a persisted ramfs go."""
    try:
        holder = _hidden_dir(srv)
    except SysError:
        return
    for name, child in list(holder.entries.items()):
        if name.startswith(HIDDEN_PREFIX) and child.is_dir:
            _remove_tree(srv, child)
            srv.ramfs.rmdir(holder, name)


def _busy(srv: VfsServer, fs: Any) -> bool:
    for fp in srv.procs.values():
        if fp.cwd.fs is fs or (fp.root is not None and fp.root.fs is fs):
            return True
        for of in list(fp.fds) + list(fp.hidden.values()):
            if of is not None and of.fs is fs:
                return True
    for _, other in srv.mounts.mounts:
        covers = getattr(other, "covers", None)
        if other is not fs and covers is not None and covers.fs is fs:
            return True
    return False


# --- the calls -------------------------------------------------------------------------------


def do_mount(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    if fp.euid != 0:
        raise SysError(errno.EPERM)
    parts = (b.data + b"\0\0\0").split(b"\0")
    source, fstype, data = parts[0], parts[1], parts[2]
    flags = b.flags
    target = _resolve(srv, fp, b.path)
    if flags & MS_REMOUNT:
        fs = _mount_at(srv, target)
        if fs is None:
            raise SysError(errno.EINVAL, "not a mount point")
        if not isinstance(fs, MountView):
            log.warning("mount: remount of %s (%s) is not supported inside XINIM",
                        b.path.decode(errors="replace"), getattr(fs, "kind", "?"))
            raise SysError(errno.EINVAL)
        fs.own_readonly = bool(flags & MS_RDONLY)
        return 0
    if flags & MS_PROPAGATION and not flags & (MS_BIND | MS_MOVE):
        return 0                                # one namespace: nothing propagates anyway
    if flags & MS_MOVE:
        log.warning("mount: MS_MOVE is not supported inside XINIM")
        raise SysError(errno.EINVAL)
    if stat.S_ISLNK(target.fs.mode(target.node)):
        # only a magic link (/proc/PID/fd/N of an O_PATH|O_NOFOLLOW fd) ends on a
        # symlink: Linux refuses to mount there (commit d80b065bb172)
        raise SysError(errno.ENOENT)
    if not stat.S_ISDIR(target.fs.mode(target.node)):
        raise SysError(errno.ENOTDIR)
    if flags & MS_BIND:
        src = _resolve(srv, fp, source)
        if not stat.S_ISDIR(src.fs.mode(src.node)):
            log.warning("mount: bind of a non-directory (%s) is not supported inside XINIM",
                        source.decode(errors="replace"))
            raise SysError(errno.ENOTDIR)
        base = src.fs.base if isinstance(src.fs, MountView) else src.fs
        origin = _mount_at(srv, Loc(src.fs, src.node))
        view = MountView(base, src.node, readonly=bool(flags & MS_RDONLY),
                         source=getattr(src.fs, "source", b"none")
                         if src.fs is not srv.mounts.root_fs else b"ramfs",
                         fstype=getattr(src.fs, "fstype", src.fs.kind.encode())
                         if src.fs is not srv.mounts.root_fs else b"ramfs",
                         options=getattr(origin, "extra", b"") if origin is not None else b"")
    elif fstype in (b"tmpfs", b"ramfs"):
        view = _new_tmpfs(srv, fp, source, fstype, flags, data)
    elif fstype in (b"proc", b"devpts", b"mqueue"):
        base = {b"proc": srv.procfs, b"devpts": srv.devpts, b"mqueue": srv.mqueue}[fstype]
        view = MountView(base, base.root, readonly=bool(flags & MS_RDONLY),
                         source=source or fstype, fstype=fstype, options=b"")
    elif fstype in BLOCK_FS:
        log.warning("mount: %s needs a block device; XINIM has none (ENODEV)",
                    fstype.decode(errors="replace"))
        raise SysError(errno.ENODEV)
    else:
        log.warning("mount: filesystem type %r is not available inside XINIM (ENODEV)",
                    fstype.decode(errors="replace"))
        raise SysError(errno.ENODEV)
    xpath = srv.namei.path_of(target) if target.fs.kind == "ramfs" else b.path
    try:
        srv.mounts.mount(view, target, xpath)
    except NotADirectoryError:
        raise SysError(errno.ENOTDIR) from None
    return 0


def do_umount(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    if b.flags & ~(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW):
        raise SysError(errno.EINVAL)
    if fp.euid != 0:
        raise SysError(errno.EPERM)
    loc = _resolve(srv, fp, b.path)
    fs = _mount_at(srv, loc)
    if fs is None:
        raise SysError(errno.EINVAL, "not a mount point")
    if _busy(srv, fs) and not b.flags & MNT_DETACH:
        raise SysError(errno.EBUSY)
    mounts = srv.mounts
    at = fs.covers
    mounts.covered.pop(at.node, None)
    mounts.mounts[:] = [(x, m) for x, m in mounts.mounts if m is not fs]
    fs.covers = None
    if at.fs is mounts.root_fs:
        srv.ramfs.unpin(at.node)
    else:
        at.fs.release(at.node)
    if isinstance(fs, MountView) and fs.hidden:
        holder = _hidden_dir(srv)
        _remove_tree(srv, fs.root)
        srv.ramfs.rmdir(holder, fs.hidden)
    return 0
