"""Small helpers the VFS handlers share: flags, the caller's process, *at() starts."""
from __future__ import annotations

import errno
import stat
from typing import TYPE_CHECKING, Any

from ..lib.errors import SysError
from ..lib.linux_abi import AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW
from .fdtable import Fproc
from .mounts import Loc

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

S_IFMT = 0o170000
S_IFDIR = stat.S_IFDIR
S_IFREG = stat.S_IFREG
S_IFLNK = stat.S_IFLNK


def caller_proc(srv: VfsServer, req: Request) -> Fproc:
    fp = srv.procs.get(req.caller)
    if fp is None:
        raise SysError(errno.ESRCH)
    return fp


def fd_loc(fp: Fproc, dirfd: int) -> Loc:
    """What an fd (or AT_FDCWD) refers to, for AT_EMPTY_PATH and the f*() calls."""
    if dirfd == AT_FDCWD:
        return fp.cwd
    of = fp.get(dirfd)
    return Loc(of.fs, of.node)


def path_loc(srv: VfsServer, fp: Fproc, dirfd: int, path: bytes, flags: int,
             follow: bool = True) -> Loc:
    """The *at() convention: AT_EMPTY_PATH with "" means dirfd itself; otherwise
    follow the last symlink unless AT_SYMLINK_NOFOLLOW (for ``follow`` calls)."""
    if not path:
        if flags & AT_EMPTY_PATH:
            return fd_loc(fp, dirfd)
        raise SysError(errno.ENOENT)
    return srv.namei.lookup(fp, dirfd, path,
                            follow=follow and not flags & AT_SYMLINK_NOFOLLOW).loc


def check_rofs(fs: Any, node: Any) -> None:
    """Linux: writing to a regular file, directory or symlink of a read-only fs."""
    if fs.readonly and fs.mode(node) & S_IFMT in (S_IFREG, S_IFDIR, S_IFLNK):
        rofs = getattr(fs, "rofs", None)        # procfs: /proc/sys files are not EROFS
        if rofs is None or rofs(node):
            raise SysError(errno.EROFS)


def fs_writer(fs: Any, node: Any) -> Any:
    """What a write of this file of a read-only filesystem does (a root-writable
    /proc/sys file: ``ProcFs.writer``), or None."""
    writer = getattr(fs, "writer", None)
    return writer(node) if writer is not None else None


def sgid_to_drop(fp: Fproc, mode: int, gid: int) -> int:
    """Linux ``setattr_should_drop_sgid``: S_ISGID goes when the group may execute
    (a real set-group-ID file), or when the caller is neither in the file's group
    nor has CAP_FSETID (XINIM: euid 0 has every capability)."""
    if not mode & stat.S_ISGID:
        return 0
    if mode & stat.S_IXGRP or (fp.euid != 0 and not fp.in_group(gid)):
        return stat.S_ISGID
    return 0


def drop_setid(fp: Fproc, fs: Any, node: Any) -> None:
    """Linux ``file_remove_privs``: a write, truncate or fallocate by a caller
    without CAP_FSETID clears a regular file's S_ISUID and, as
    :func:`sgid_to_drop` says, its S_ISGID.  The VFS does it itself: the host
    kernel would not for a bound host file, since the VFS writes it as root."""
    if fp.euid == 0:
        return
    mode, _uid, gid = fs.attr3(node)
    if mode & S_IFMT != S_IFREG or not mode & (stat.S_ISUID | stat.S_ISGID):
        return
    kill = (mode & stat.S_ISUID) | sgid_to_drop(fp, mode, gid)
    if kill and not fs.readonly:
        fs.setattr(node, mode=mode & 0o7777 & ~kill)


def check_flags(flags: int, allowed: int) -> None:
    if flags & ~allowed:
        raise SysError(errno.EINVAL)
