"""openat2(2)'s RESOLVE_* rules, checked by walking the path before the open.

The walk here only judges: it follows the components (and symlinks) the way the
open will and refuses what the flags forbid -- ``..`` above the start or an
absolute path (BENEATH: EXDEV), any symlink (NO_SYMLINKS: ELOOP), /proc's magic
links (NO_MAGICLINKS, and BENEATH/IN_ROOT which imply it: ELOOP), a mount crossing
(NO_XDEV: EXDEV).  RESOLVE_IN_ROOT resolves as if the start were ``/`` (chroot
for the one call).  Then the ordinary open runs.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..lib.errors import SysError
from ..lib.linux_abi import AT_FDCWD
from .mounts import Loc

if TYPE_CHECKING:
    from .fdtable import Fproc
    from .server import VfsServer

RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS = 0x01, 0x02, 0x04
RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_CACHED = 0x08, 0x10, 0x20
S_IFMT, S_IFDIR, S_IFLNK = 0o170000, 0o040000, 0o120000
MAXSYMLINKS = 40


def start_loc(srv: VfsServer, fp: Fproc, dirfd: int) -> Loc:
    if dirfd == AT_FDCWD:
        return fp.cwd
    of = fp.get(dirfd)
    if of.fs is None or of.fs.mode(of.node) & S_IFMT != S_IFDIR:
        raise SysError(errno.ENOTDIR)
    return Loc(of.fs, of.node)


def check(srv: VfsServer, fp: Fproc, dirfd: int, path: bytes, resolve: int,
          follow_last: bool) -> None:
    """Raise what openat2 says for ``path`` under ``resolve``; None when it may go on."""
    start = start_loc(srv, fp, dirfd)
    beneath = resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT)
    if path[:1] == b"/" and resolve & RESOLVE_BENEATH:
        raise SysError(errno.EXDEV)
    no_magic = resolve & (RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH | RESOLVE_IN_ROOT)
    mounts = srv.mounts
    fs, node = (start if path[:1] == b"/" and resolve & RESOLVE_IN_ROOT else
                (fp.root or mounts.root) if path[:1] == b"/" else start)
    depth = 0
    comps = [c for c in path.split(b"/") if c]
    comps.reverse()
    links = 0
    while comps:
        name = comps.pop()
        if name == b".":
            continue
        if name == b"..":
            if beneath and depth == 0:
                if resolve & RESOLVE_IN_ROOT:
                    continue                       # '..' of the root is the root
                raise SysError(errno.EXDEV)
            depth -= 1
            parent = srv.namei.dotdot(Loc(fs, node))
            if resolve & RESOLVE_NO_XDEV and parent.fs is not fs:
                raise SysError(errno.EXDEV)
            fs, node = parent
            continue
        if fs.mode(node) & S_IFMT != S_IFDIR:
            return                                 # the open says ENOTDIR
        try:
            child = fs.lookup(node, name, fp)
        except SysError:
            return                                 # the open says why (or creates it)
        last = not comps
        if fs.mode(child) & S_IFMT == S_IFLNK and (not last or follow_last):
            links += 1
            if links > MAXSYMLINKS:
                raise SysError(errno.ELOOP)
            magic = getattr(fs, "magic", None)
            where = magic(child, fp) if magic is not None else None
            if where is not None:
                if no_magic:
                    raise SysError(errno.ELOOP)
                fs, node = where
                continue
            if resolve & RESOLVE_NO_SYMLINKS:
                raise SysError(errno.ELOOP)
            target = fs.readlink(child, fp)
            if target[:1] == b"/":
                if resolve & RESOLVE_BENEATH:
                    raise SysError(errno.EXDEV)
                if resolve & RESOLVE_IN_ROOT:
                    fs, node = start
                    depth = 0
                else:
                    fs, node = fp.root or mounts.root
            tcomps = [c for c in target.split(b"/") if c]
            tcomps.reverse()
            comps.extend(tcomps)
            continue
        depth += 1
        node = child
        if getattr(fs, "has_submounts", False) and child in mounts.covered:
            crossed = mounts.cross(Loc(fs, child))
            if resolve & RESOLVE_NO_XDEV and crossed.fs is not fs:
                raise SysError(errno.EXDEV)
            fs, node = crossed


def in_root(srv: VfsServer, fp: Fproc, dirfd: int) -> Any:
    """RESOLVE_IN_ROOT: the start directory is '/' for this one call; returns the
    root to put back."""
    loc = start_loc(srv, fp, dirfd)
    old = fp.root
    fp.root = loc
    return old
