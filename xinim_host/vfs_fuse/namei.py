"""Path resolution (Linux ``namei``) and permission checks.

Paths resolve from the root, the caller's cwd or a dirfd; ``.`` and ``..`` are
handled here, in XINIM's tree (``..`` at a mount's root goes to the mount point's
parent, ``..`` at ``/`` stays), and symlinks -- on the ramfs or on host mounts --
are read and resolved here too, in XINIM's namespace, at most 40 per lookup.
A synthetic filesystem's *magic* links (procfs ``fd/N``, ``cwd``, ``exe``) are
not resolved by their text: ``fs.magic(node, who)`` names the place itself.

The caller's record (``fp``) goes down to every filesystem operation as ``who``
and stays on the result (``Nd.who``): procfs answers ``self`` and checks access
with it; the ramfs and host mounts ignore it.
"""
from __future__ import annotations

import errno
import stat
from dataclasses import dataclass
from typing import Any

from ..lib.errors import SysError
from ..lib.linux_abi import AT_FDCWD
from .fdtable import Fproc
from .mounts import Loc, MountTable

PATH_MAX = 4096
NAME_MAX = 255
MAXSYMLINKS = 40
R_OK, W_OK, X_OK = 4, 2, 1

_S_IFMT = 0o170000
_S_IFDIR = stat.S_IFDIR
_S_IFLNK = stat.S_IFLNK


def permission(fp: Fproc, fs: Any, node: Any, want: int, *, real: bool = False) -> None:
    """EACCES unless ``fp`` may ``want`` (R_OK|W_OK|X_OK) on the vnode.  Root passes,
    except that executing a non-directory needs at least one x bit."""
    mode, uid, gid = fs.attr3(node)
    euid = fp.uid if real else fp.euid
    if euid == 0:
        if want & X_OK and not mode & 0o111 and mode & _S_IFMT != _S_IFDIR:
            raise SysError(errno.EACCES)
        return
    if euid == uid:
        bits = mode >> 6
    elif gid == (fp.gid if real else fp.egid) or gid in fp.groups:
        bits = mode >> 3
    else:
        bits = mode
    if want & ~bits & 7:
        raise SysError(errno.EACCES)


def is_owner(fp: Fproc, fs: Any, node: Any) -> bool:
    return fp.euid == 0 or fs.attr3(node)[1] == fp.euid


def check_sticky(fp: Fproc, fs: Any, dir: Any, child: Any) -> None:
    """Removing/renaming ``child`` out of a sticky ``dir``: owner of either, or root."""
    if fp.euid == 0:
        return
    dmode, duid, _ = fs.attr3(dir)
    if dmode & stat.S_ISVTX and fp.euid != duid and fs.attr3(child)[1] != fp.euid:
        raise SysError(errno.EPERM)


@dataclass(slots=True)
class Nd:
    """A lookup's result: the vnode (or, for ``parent=True``, the directory that
    would contain ``last``), whether the path ended in '/', symlinks used so far,
    and for whom it was looked up."""

    loc: Loc
    last: bytes = b""
    trailing: bool = False
    links: int = 0
    who: Fproc | None = None


class Namei:
    def __init__(self, mounts: MountTable) -> None:
        self.mounts = mounts
        self.root = mounts.root

    # -- starting points ------------------------------------------------------------
    def start(self, fp: Fproc, dirfd: int, path: bytes) -> Loc:
        if path[:1] == b"/":
            return fp.root or self.root
        if dirfd == AT_FDCWD:
            return fp.cwd
        of = fp.get(dirfd)
        if of.fs is None or of.fs.mode(of.node) & _S_IFMT != _S_IFDIR:
            raise SysError(errno.ENOTDIR)
        return Loc(of.fs, of.node)

    def dotdot(self, loc: Loc) -> Loc:
        fs, node = loc
        binds = self.mounts.bind_points
        while True:
            if binds and node in binds:            # a bound directory: its mount point
                loc = binds[node]
                fs, node = loc
                continue
            if not fs.is_root(node):
                break
            if fs.covers is None:
                return loc                         # '..' of '/' is '/'
            loc = fs.covers                        # the mount point, in the fs below
            fs, node = loc
        return Loc(fs, fs.parent(node))

    # -- the walk ---------------------------------------------------------------------
    def lookup(self, fp: Fproc, dirfd: int, path: bytes, *, follow: bool = True,
               parent: bool = False, links: int = 0) -> Nd:
        """Resolve ``path`` for ``fp``.  ``parent``: stop before the last component
        and return its directory and name (for create/remove/rename)."""
        if not path:
            raise SysError(errno.ENOENT)
        if len(path) >= PATH_MAX:
            raise SysError(errno.ENAMETOOLONG)
        return self.walk(fp, self.start(fp, dirfd, path), path, follow=follow,
                         parent=parent, links=links)

    def walk(self, fp: Fproc, loc: Loc, path: bytes, *, follow: bool, parent: bool,
             links: int = 0) -> Nd:
        root = fp.root or self.root               # chroot(2): '/' and where '..' stops
        if path[:1] == b"/":
            loc = root
        comps = [c for c in path.split(b"/") if c]
        trailing = path[-1:] == b"/" and bool(comps)
        comps.reverse()
        mounts = self.mounts
        covered = mounts.covered
        root_caller = fp.euid == 0
        fs, node = loc                             # plain locals: no Loc per component
        while comps:
            name = comps.pop()
            if fs.mode(node) & _S_IFMT != _S_IFDIR:
                raise SysError(errno.ENOTDIR)
            if parent and not comps:
                if len(name) > NAME_MAX:
                    raise SysError(errno.ENAMETOOLONG)
                if not root_caller:
                    permission(fp, fs, node, X_OK)
                return Nd(Loc(fs, node), name, trailing, links, fp)
            if not root_caller:
                permission(fp, fs, node, X_OK)
            if name == b".":
                continue
            if name == b"..":
                if node is not root.node or fs is not root.fs:
                    fs, node = self.dotdot(Loc(fs, node))
                continue
            if len(name) > NAME_MAX:
                raise SysError(errno.ENAMETOOLONG)
            child = fs.lookup(node, name, fp)
            if fs.mode(child) & _S_IFMT == _S_IFLNK and (comps or follow or trailing):
                links += 1
                if links > MAXSYMLINKS:
                    raise SysError(errno.ELOOP)
                magic = getattr(fs, "magic", None)
                if magic is not None:              # /proc/PID/fd/N and such: go there
                    where = magic(child, fp)
                    if where is not None:
                        fs, node = where
                        continue
                target = fs.readlink(child, fp)
                if not target:
                    raise SysError(errno.ENOENT)
                if target[:1] == b"/":
                    fs, node = root
                if not comps and target[-1:] == b"/":
                    trailing = True
                tcomps = [c for c in target.split(b"/") if c]
                tcomps.reverse()
                comps.extend(tcomps)
                continue
            node = child
            if fs.has_submounts and child in covered:
                fs, node = mounts.cross(Loc(fs, child))
        if parent:                                 # '/' itself: no last component
            return Nd(Loc(fs, node), b"", trailing, links, fp)
        if trailing and fs.mode(node) & _S_IFMT != _S_IFDIR:
            raise SysError(errno.ENOTDIR)
        return Nd(Loc(fs, node), b"", trailing, links, fp)

    def resolve(self, fp: Fproc, dirfd: int, path: bytes, follow: bool = True) -> Loc:
        return self.lookup(fp, dirfd, path, follow=follow).loc

    def child(self, nd: Nd) -> Loc | None:
        """The vnode ``nd.last`` names in ``nd.loc`` (mounts crossed), None if absent;
        looked up for ``nd.who``."""
        fs, node = nd.loc
        name = nd.last
        if name == b"." or not name:
            return nd.loc
        if name == b"..":
            root = nd.who.root if nd.who is not None else None
            if root is not None and node is root.node and fs is root.fs:
                return nd.loc
            return self.dotdot(nd.loc)
        try:
            child = fs.lookup(node, name, nd.who)
        except SysError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        loc = Loc(fs, child)
        if fs.has_submounts and child in self.mounts.covered:
            loc = self.mounts.cross(loc)
        return loc

    def follow_last(self, fp: Fproc, nd: Nd) -> tuple[Nd, Loc | None]:
        """For open(O_CREAT): look the last component up, following symlinks to
        their final name (a dangling one names the file to create)."""
        while True:
            loc = self.child(nd)
            if loc is None or loc.fs.mode(loc.node) & _S_IFMT != _S_IFLNK:
                return nd, loc
            links = nd.links + 1
            if links > MAXSYMLINKS:
                raise SysError(errno.ELOOP)
            magic = getattr(loc.fs, "magic", None)
            where = magic(loc.node, fp) if magic is not None else None
            if where is not None:                  # a magic link names an existing file
                return nd, where
            target = loc.fs.readlink(loc.node, fp)
            if not target:
                raise SysError(errno.ENOENT)
            trailing = nd.trailing
            nd = self.walk(fp, nd.loc, target, follow=True, parent=True, links=links)
            nd.trailing = nd.trailing or trailing

    # -- names of places -----------------------------------------------------------------
    def path_of(self, loc: Loc) -> bytes:
        """The absolute path of a directory (getcwd); ENOENT if it was removed.
        Host and synthetic files have one too (their place below the mount)."""
        parts: list[bytes] = []
        fs, node = loc
        binds = self.mounts.bind_points
        while True:
            if binds and node in binds:
                fs, node = binds[node]
                continue
            if fs.is_root(node):
                if fs.covers is None:
                    break
                fs, node = fs.covers
                continue
            kind = fs.kind
            if kind == "host":
                parts.append(node.rel)
                node = fs.root
                continue
            if kind != "ramfs":
                rel_path = getattr(fs, "rel_path", None)
                if rel_path is None:               # pipes: no place in the namespace
                    raise SysError(errno.ENOENT)
                parts.append(rel_path(node))
                node = fs.root
                continue
            if node.nlink == 0:
                raise SysError(errno.ENOENT)
            parent = node.parent
            for name, inode in parent.entries.items():
                if inode is node:
                    parts.append(name)
                    break
            else:
                raise SysError(errno.ENOENT)
            node = parent
        return b"/" + b"/".join(reversed(parts))
