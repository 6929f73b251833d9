"""Namespace calls: stat, access, mkdir, rmdir, unlink, link, rename, symlink,
readlink, mknod, chmod/chown (and the fd forms), truncate, utimensat, statfs,
chdir/fchdir/getcwd, umask, and the execve check."""
from __future__ import annotations

import errno
import os
import stat
import time
from typing import TYPE_CHECKING, Any

from ..lib.errors import SysError
from ..lib.protocol import (DATA_MAX, EXEC_COMMIT, UTIME_NOW, UTIME_OMIT, VfsDataReply,
                            VfsNodeReply, VfsStatfsReply, trusted_sender)
from ..lib.linux_abi import (AT_EACCESS, AT_EMPTY_PATH, AT_FDCWD, AT_NO_AUTOMOUNT,
                             AT_REMOVEDIR, AT_STATX_SYNC_TYPE, AT_SYMLINK_FOLLOW,
                             AT_SYMLINK_NOFOLLOW)
from .handlers_common import (S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, caller_proc, check_flags, check_rofs,
                              drop_setid, fd_loc, path_loc, sgid_to_drop)
from .fdtable import Fproc
from .hostfs import open_beneath
from .mounts import Loc, fsize_check
from .namei import R_OK, W_OK, X_OK, Nd, check_sticky, is_owner, permission
from .ramfs import RENAME_EXCHANGE, RENAME_NOREPLACE

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK = 0o010000, 0o020000, 0o060000, 0o140000
ST_VALID = 0x20
BINPRM_BUF_SIZE = 256


# --- stat and access -----------------------------------------------------------------

def do_stat(srv: VfsServer, req: Request) -> Any:
    b = req.msg.body
    fp = caller_proc(srv, req)
    check_flags(b.flags, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT
                | AT_STATX_SYNC_TYPE)
    fs, node = path_loc(srv, fp, b.dirfd, b.path, b.flags)
    return fs.stat_reply(node, who=fp)


def do_fstat(srv: VfsServer, req: Request) -> Any:
    fp = caller_proc(srv, req)
    of = fp.get(req.msg.body.fd)
    return of.fs.stat_reply(of.node, who=fp)


def do_access(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    check_flags(b.flags, AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)
    if b.mode & ~7:
        raise SysError(errno.EINVAL)
    who = fp
    if not b.flags & AT_EACCESS and (fp.uid != fp.euid or fp.gid != fp.egid):
        who = Fproc(fp.pid, fp.cwd, fp.fds, fp.cloexec, fp.umask, fp.uid, fp.uid, fp.gid,
                    fp.gid, fp.groups, fp.nofile, fp.hidden,
                    fp.root)                    # access(2) checks with the real ids
    fs, node = path_loc(srv, who, b.dirfd, b.path, b.flags)
    if b.mode:
        if b.mode & W_OK:
            check_rofs(fs, node)
        permission(who, fs, node, b.mode)
    return 0


# --- creating and removing names -----------------------------------------------------------

def _parent(srv: VfsServer, fp: Fproc, dirfd: int, path: bytes) -> Nd:
    return srv.namei.lookup(fp, dirfd, path, parent=True)


def _may_create(fp: Fproc, nd: Nd) -> tuple[Any, Any]:
    fs, dnode = nd.loc
    if fs.readonly:
        raise SysError(errno.EROFS)
    permission(fp, fs, dnode, W_OK | X_OK)
    return fs, dnode


def _new_name(srv: VfsServer, fp: Fproc, dirfd: int, path: bytes, is_dir: bool = False) -> Nd:
    """The parent directory and free last name for mkdir/mknod/symlink/link;
    a trailing '/' is only good for a new directory (else ENOENT, as Linux)."""
    nd = _parent(srv, fp, dirfd, path)
    if nd.last in (b"", b".", b"..") or srv.namei.child(nd) is not None:
        raise SysError(errno.EEXIST)
    if nd.trailing and not is_dir:
        raise SysError(errno.ENOENT)
    return nd


def do_mkdir(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    nd = _new_name(srv, fp, b.dirfd, b.path, is_dir=True)
    fs, dnode = _may_create(fp, nd)
    fs.mkdir(dnode, nd.last, b.mode & 0o1777 & ~fp.umask, fp.euid, fp.egid)
    return 0


def do_mknod(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    fmt = b.mode & S_IFMT or S_IFREG
    if fmt == S_IFDIR:
        raise SysError(errno.EPERM)
    if fmt not in (S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK):
        raise SysError(errno.EINVAL)
    if fmt in (S_IFCHR, S_IFBLK) and fp.euid != 0:
        raise SysError(errno.EPERM)
    nd = _new_name(srv, fp, b.dirfd, b.path)
    fs, dnode = _may_create(fp, nd)
    fs.mknod(dnode, nd.last, fmt | (b.mode & 0o7777 & ~fp.umask), fp.euid, fp.egid, b.dev)
    return 0


def do_symlink(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    if not b.target:
        raise SysError(errno.ENOENT)
    nd = _new_name(srv, fp, b.dirfd, b.path)
    fs, dnode = _may_create(fp, nd)
    fs.symlink(dnode, nd.last, b.target, fp.euid, fp.egid)
    return 0


def do_link(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    check_flags(b.flags, AT_SYMLINK_FOLLOW | AT_EMPTY_PATH)
    if not b.oldpath and b.flags & AT_EMPTY_PATH:
        old = fd_loc(fp, b.olddirfd)
    else:
        old = srv.namei.lookup(fp, b.olddirfd, b.oldpath,
                               follow=bool(b.flags & AT_SYMLINK_FOLLOW)).loc
    nd = _new_name(srv, fp, b.newdirfd, b.newpath)
    if nd.loc.fs is not old.fs:
        raise SysError(errno.EXDEV)
    mode = old.fs.mode(old.node)
    if fp.euid != 0 and not is_owner(fp, old.fs, old.node):
        # fs.protected_hardlinks (on by default): only files one may read and write
        try:
            if mode & S_IFMT != S_IFREG or mode & stat.S_ISUID or (
                    mode & stat.S_ISGID and mode & stat.S_IXGRP):
                raise SysError(errno.EPERM)
            permission(fp, old.fs, old.node, R_OK | W_OK)
        except SysError:
            raise SysError(errno.EPERM) from None
    fs, dnode = _may_create(fp, nd)
    if mode & S_IFMT == S_IFDIR:
        raise SysError(errno.EPERM)
    fs.link(old.node, dnode, nd.last)
    return 0


def _victim(srv: VfsServer, fp: Fproc, nd: Nd) -> Loc:
    """The existing entry ``nd`` names, for removal (ENOENT if there is none)."""
    loc = srv.namei.child(nd)
    if loc is None:
        raise SysError(errno.ENOENT)
    return loc


def _may_delete(srv: VfsServer, fp: Fproc, nd: Nd, victim: Loc) -> tuple[Any, Any]:
    fs, dnode = nd.loc
    if srv.mounts.is_mountpoint(victim.node) or victim.fs is not fs:
        raise SysError(errno.EBUSY)
    if fs.readonly:
        raise SysError(errno.EROFS)
    permission(fp, fs, dnode, W_OK | X_OK)
    check_sticky(fp, fs, dnode, victim.node)
    return fs, dnode


def _rmdir(srv: VfsServer, fp: Fproc, dirfd: int, path: bytes) -> int:
    nd = _parent(srv, fp, dirfd, path)
    if nd.last == b"":
        raise SysError(errno.EBUSY)               # rmdir("/")
    if nd.last == b".":
        raise SysError(errno.EINVAL)
    if nd.last == b"..":
        raise SysError(errno.ENOTEMPTY)
    victim = _victim(srv, fp, nd)
    if victim.fs.mode(victim.node) & S_IFMT != S_IFDIR:
        raise SysError(errno.ENOTDIR)
    fs, dnode = _may_delete(srv, fp, nd, victim)
    fs.rmdir(dnode, nd.last)
    return 0


def do_rmdir(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    return _rmdir(srv, caller_proc(srv, req), b.dirfd, b.path)


def do_unlink(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    check_flags(b.flags, AT_REMOVEDIR)
    if b.flags & AT_REMOVEDIR:
        return _rmdir(srv, fp, b.dirfd, b.path)
    nd = _parent(srv, fp, b.dirfd, b.path)
    if nd.last in (b"", b".", b".."):
        raise SysError(errno.EISDIR)
    victim = _victim(srv, fp, nd)
    is_dir = victim.fs.mode(victim.node) & S_IFMT == S_IFDIR
    if nd.trailing and not is_dir:
        raise SysError(errno.ENOTDIR)
    if is_dir:
        raise SysError(errno.EISDIR)
    fs, dnode = _may_delete(srv, fp, nd, victim)
    fs.unlink(dnode, nd.last)
    return 0


def do_rename(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    flags = b.flags
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or (
            flags & RENAME_NOREPLACE and flags & RENAME_EXCHANGE):
        raise SysError(errno.EINVAL)              # RENAME_WHITEOUT is not supported either
    old = _parent(srv, fp, b.olddirfd, b.oldpath)
    new = _parent(srv, fp, b.newdirfd, b.newpath)
    if old.last in (b"", b".", b"..") or new.last in (b"", b".", b".."):
        raise SysError(errno.EBUSY)
    src = _victim(srv, fp, old)
    if old.loc.fs is not new.loc.fs:
        raise SysError(errno.EXDEV)
    dst = srv.namei.child(new)
    src_dir = src.fs.mode(src.node) & S_IFMT == S_IFDIR
    if not src_dir and (old.trailing or new.trailing):
        raise SysError(errno.ENOTDIR)
    if dst is None and flags & RENAME_EXCHANGE:
        raise SysError(errno.ENOENT)
    if dst is not None and flags & RENAME_NOREPLACE:
        raise SysError(errno.EEXIST)
    fs, odir = _may_delete(srv, fp, old, src)
    if dst is not None:
        _may_delete(srv, fp, new, dst)
    else:
        _may_create(fp, new)
    ndir = new.loc.node
    if src_dir and odir is not ndir and fp.euid != 0:
        permission(fp, fs, src.node, W_OK)        # its '..' changes
    fs.rename(odir, old.last, ndir, new.last, flags)
    return 0


# --- attributes ---------------------------------------------------------------------------

def _chmod(fp: Fproc, fs: Any, node: Any, mode: int) -> int:
    if fs.readonly:
        raise SysError(errno.EROFS)
    if not is_owner(fp, fs, node):
        raise SysError(errno.EPERM)
    mode &= 0o7777
    if fp.euid != 0 and mode & stat.S_ISGID and not fp.in_group(fs.attr3(node)[2]):
        mode &= ~stat.S_ISGID     # Linux: neither in the file's group nor CAP_FSETID
    fs.setattr(node, mode=mode)
    return 0


def do_chmod(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    check_flags(b.flags, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)
    fs, node = path_loc(srv, fp, b.dirfd, b.path, b.flags)
    if fs.mode(node) & S_IFMT == S_IFLNK:
        raise SysError(errno.EOPNOTSUPP)          # fchmodat2(AT_SYMLINK_NOFOLLOW) on a link
    return _chmod(fp, fs, node, b.mode)


def do_fchmod(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    of = fp.io_file(b.fd)
    return _chmod(fp, of.fs, of.node, b.mode)


def _chown(fp: Fproc, fs: Any, node: Any, uid: int, gid: int) -> int:
    if fs.readonly:
        raise SysError(errno.EROFS)
    mode, ouid, ogid = fs.attr3(node)
    new_uid = None if uid == -1 else uid & 0xFFFFFFFF
    new_gid = None if gid == -1 else gid & 0xFFFFFFFF
    if fp.euid != 0:
        if new_uid is not None and (fp.euid != ouid or new_uid != ouid):
            raise SysError(errno.EPERM)
        if new_gid is not None and (fp.euid != ouid or (new_gid != ogid
                                                       and not fp.in_group(new_gid))):
            raise SysError(errno.EPERM)
    new_mode = None
    if mode & S_IFMT not in (S_IFDIR, S_IFLNK):
        # Linux chown_common: S_ISUID always goes (even for root, even for -1, -1);
        # S_ISGID as setattr_should_drop_sgid says, judged on the old group
        kill = (mode & stat.S_ISUID) | sgid_to_drop(fp, mode, ogid)
        if kill:
            new_mode = mode & 0o7777 & ~kill
    fs.setattr(node, uid=new_uid, gid=new_gid, mode=new_mode)
    return 0


def do_chown(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    check_flags(b.flags, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)
    fs, node = path_loc(srv, fp, b.dirfd, b.path, b.flags)
    return _chown(fp, fs, node, b.uid, b.gid)


def do_fchown(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    of = fp.io_file(b.fd)
    return _chown(fp, of.fs, of.node, b.uid, b.gid)


def do_truncate(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    if b.length < 0:
        raise SysError(errno.EINVAL)
    fs, node = srv.namei.resolve(fp, b.dirfd, b.path)
    fmt = fs.mode(node) & S_IFMT
    if fmt == S_IFDIR:
        raise SysError(errno.EISDIR)
    if fmt != S_IFREG:
        raise SysError(errno.EINVAL)
    check_rofs(fs, node)
    permission(fp, fs, node, W_OK)
    fsize_check(srv, fp, b.length)
    drop_setid(fp, fs, node)
    if fs.kind == "ramfs":
        srv.ramfs.truncate(node, b.length)
    else:
        fs.setattr(node, size=b.length)
    return 0


def _valid_nsec(nsec: int) -> bool:
    return 0 <= nsec < 1_000_000_000 or nsec in (UTIME_NOW, UTIME_OMIT)


def do_utimens(srv: VfsServer, req: Request) -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    check_flags(b.flags, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)
    if not (_valid_nsec(b.atime_nsec) and _valid_nsec(b.mtime_nsec)):
        raise SysError(errno.EINVAL)
    if b.atime_nsec == UTIME_OMIT and b.mtime_nsec == UTIME_OMIT:
        return 0
    fs, node = path_loc(srv, fp, b.dirfd, b.path, b.flags)
    if fs.readonly:
        raise SysError(errno.EROFS)
    explicit = b.atime_nsec not in (UTIME_NOW, UTIME_OMIT) or \
        b.mtime_nsec not in (UTIME_NOW, UTIME_OMIT)
    if not is_owner(fp, fs, node):
        if explicit:
            raise SysError(errno.EPERM)
        permission(fp, fs, node, W_OK)
    now = time.time_ns()

    def pick(sec: int, nsec: int) -> int | None:
        if nsec == UTIME_OMIT:
            return None
        if nsec == UTIME_NOW:
            return now
        return sec * 1_000_000_000 + nsec

    fs.setattr(node, atime_ns=pick(b.atime_sec, b.atime_nsec),
               mtime_ns=pick(b.mtime_sec, b.mtime_nsec))
    return 0


def do_readlink(srv: VfsServer, req: Request) -> VfsDataReply:
    b = req.msg.body
    fp = caller_proc(srv, req)
    if b.size <= 0:
        raise SysError(errno.EINVAL)
    if not b.path:
        if b.dirfd == AT_FDCWD:
            raise SysError(errno.ENOENT)
        fs, node = fd_loc(fp, b.dirfd)
        if fs.mode(node) & S_IFMT != S_IFLNK:
            raise SysError(errno.ENOENT)
    else:
        fs, node = srv.namei.resolve(fp, b.dirfd, b.path, follow=False)
        if fs.mode(node) & S_IFMT != S_IFLNK:
            raise SysError(errno.EINVAL)
    target = fs.readlink(node, fp)[:min(b.size, DATA_MAX)]
    return VfsDataReply(result=len(target), data=target)


def _statfs_reply(fs: Any) -> VfsStatfsReply:
    st = fs.statfs()
    return VfsStatfsReply(type=st.f_type, bsize=st.f_bsize, blocks=st.f_blocks,
                          bfree=st.f_bfree, bavail=st.f_bavail, files=st.f_files,
                          ffree=st.f_ffree, fsid=st.f_fsid, namelen=st.f_namemax,
                          frsize=st.f_frsize, flags=st.f_flag | ST_VALID)


def do_statfs(srv: VfsServer, req: Request) -> VfsStatfsReply:
    b = req.msg.body
    fp = caller_proc(srv, req)
    return _statfs_reply(srv.namei.resolve(fp, b.dirfd, b.path).fs)


def do_fstatfs(srv: VfsServer, req: Request) -> VfsStatfsReply:
    fp = caller_proc(srv, req)
    return _statfs_reply(fp.get(req.msg.body.fd).fs)


# --- where a process is ----------------------------------------------------------------

def _chdir(srv: VfsServer, fp: Fproc, loc: Loc) -> int:
    if loc.fs.mode(loc.node) & S_IFMT != S_IFDIR:
        raise SysError(errno.ENOTDIR)
    permission(fp, loc.fs, loc.node, X_OK)
    srv.set_cwd(fp, loc)
    return 0


def do_chdir(srv: VfsServer, req: Request) -> int:
    fp = caller_proc(srv, req)
    return _chdir(srv, fp, srv.namei.resolve(fp, AT_FDCWD, req.msg.body.path))


def do_fchdir(srv: VfsServer, req: Request) -> int:
    fp = caller_proc(srv, req)
    of = fp.get(req.msg.body.fd)
    return _chdir(srv, fp, Loc(of.fs, of.node))


def do_getcwd(srv: VfsServer, req: Request) -> VfsDataReply:
    fp = caller_proc(srv, req)
    data = srv.namei.path_of(fp.cwd) + b"\0"
    if len(data) > DATA_MAX:
        raise SysError(errno.ENAMETOOLONG)
    if req.msg.body.size < len(data):
        raise SysError(errno.ERANGE)
    return VfsDataReply(result=len(data), data=data)


def do_umask(srv: VfsServer, req: Request) -> int:
    fp = caller_proc(srv, req)
    old = fp.umask
    fp.umask = req.msg.body.mask & 0o777
    return old


# --- execve ---------------------------------------------------------------------------------

def do_exec_open(srv: VfsServer, req: Request) -> VfsNodeReply:
    """Resolve a path for execve: ENOENT/ENOTDIR/ELOOP from the lookup, EACCES for a
    non-regular file or no x permission, ETXTBSY if open for writing, ENOEXEC if
    neither ELF nor '#!'.  Reply: host path (host mounts) or ino (ramfs), script info."""
    b = req.msg.body
    commit = b.flags & EXEC_COMMIT
    if commit and not trusted_sender(req.msg.m_source):
        raise SysError(errno.EPERM)                # only PM's exec commits
    fp = caller_proc(srv, req)
    flags = b.flags & ~EXEC_COMMIT
    check_flags(flags, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)
    fs, node = path_loc(srv, fp, b.dirfd, b.path, flags)
    fmt = fs.mode(node) & S_IFMT
    if fmt == S_IFLNK:
        raise SysError(errno.ELOOP)               # execveat(AT_SYMLINK_NOFOLLOW)
    if fmt != S_IFREG:
        raise SysError(errno.EACCES)
    permission(fp, fs, node, X_OK)
    if srv.write_opens.get(node):
        raise SysError(errno.ETXTBSY)
    st = fs.stat_reply(node, who=fp)
    if fs.kind == "ramfs":
        head = srv.ramfs.read(node, 0, BINPRM_BUF_SIZE)
        host_path = b""
    else:
        host_path = fs.host_path(node)
        head = _host_head(fs, node)
    script, interp, arg = 0, b"", b""
    if head[:2] == b"#!":
        script = 1
        interp, arg = parse_shebang(head)
    elif head[:4] != b"\x7fELF":
        raise SysError(errno.ENOEXEC)
    srv.procfs.exec_checked(fp, b.dirfd, b.path, Loc(fs, node))   # /proc/PID/exe
    if commit and not script:
        # PM's last check of this exec: what VFS_EXEC does happens now
        srv.exec_proc(fp.pid)
        srv.procfs.execed(fp.pid)
    return VfsNodeReply(dev=st.dev, ino=st.ino, mode=st.mode, uid=st.uid, gid=st.gid,
                        size=st.size, script=script, host_path=host_path, interp=interp,
                        interp_arg=arg)


def _host_head(fs: Any, node: Any) -> bytes:
    fd = open_beneath(fs.root_fd, node.rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        return os.pread(fd, BINPRM_BUF_SIZE, 0)
    except OSError as exc:
        raise SysError(exc.errno or errno.EIO) from None
    finally:
        os.close(fd)


def parse_shebang(head: bytes) -> tuple[bytes, bytes]:
    """Linux ``load_script``: interpreter and one optional argument from '#!' line."""
    line = head[2:]
    nl = line.find(b"\n")
    if nl < 0:
        if len(head) >= BINPRM_BUF_SIZE:          # the name may be cut: Linux refuses
            stripped = line.lstrip(b" \t")
            if not any(c in stripped for c in (b" ", b"\t")):
                raise SysError(errno.ENOEXEC)
    else:
        line = line[:nl]
    line = line.strip(b" \t")
    if not line:
        raise SysError(errno.ENOEXEC)
    for i, c in enumerate(line):
        if c in (0x20, 0x09):
            return line[:i], line[i:].strip(b" \t")
    return line, b""

