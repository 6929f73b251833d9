"""Host directories mounted into the XINIM namespace (``--bind HOST:XINIM[:ro|rw]``).

A :class:`HostNode` is a path *relative to the mount's host root*, made only of
components namei looked up one at a time with ``lstat`` -- so ``..`` never reaches
here (namei handles it in XINIM's tree) and host symlinks are never followed on
the host side: namei reads them with :meth:`HostFs.readlink` and resolves the
target in the XINIM namespace.  Every content access (open, readdir) goes through
``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`` from the root's O_PATH fd, so
not even a host-side race (a directory swapped for a symlink after our lookup)
can escape the host root.  Metadata (``lstat``) uses ``fstatat`` relative to the
root; at worst such a race shows an outside file's attributes, never its data.
"""
from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
import time
from typing import Any

from ..lib.errors import SysError
from ..lib.protocol import VfsStatReply
from .ramfs import StatFs

_O_PATH = getattr(os, "O_PATH", 0o10000000)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_SYS_OPENAT2 = 437  # x86-64 (and the generic table)
FRESH_NS = 1_000_000  # an lstat younger than this (i.e. from this request) is reused
_now = time.monotonic_ns


class _StatfsBuf(ctypes.Structure):   # struct statfs, x86-64
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long),
                ("f_blocks", ctypes.c_ulong), ("f_bfree", ctypes.c_ulong),
                ("f_bavail", ctypes.c_ulong), ("f_files", ctypes.c_ulong),
                ("f_ffree", ctypes.c_ulong), ("f_fsid", ctypes.c_uint64),
                ("f_namelen", ctypes.c_long), ("f_frsize", ctypes.c_long),
                ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4)]


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_openat2_ok = True
# openat2's argument, made once (the VFS runs on one thread); set per call
_HOW = _OpenHow()
_HOW_REF = ctypes.byref(_HOW)
_HOW_SIZE = ctypes.sizeof(_HOW)
_NO_LINKS = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_CREATING = os.O_CREAT | getattr(os, "O_TMPFILE", 0)
# A host directory is read with the host's own getdents64: its records are
# linux_dirent64 as the caller's are, so each is kept as it is but for d_off
# (XINIM's positions are indexes) -- no DirEntry, no str name per entry.
_SYS_GETDENTS64 = 217  # x86-64
DIRENT64 = struct.Struct("<QqHB")       # d_ino, d_off, d_reclen, d_type; then the name
_DENTS_SIZE = 32768
_DENTS = ctypes.create_string_buffer(_DENTS_SIZE)   # one, reused (the VFS runs on one thread)
_DT_KEPT = (4, 8, 10)                   # DT_DIR, DT_REG, DT_LNK; any other type shows as 0
_DT_OF_FMT = {stat.S_IFDIR: 4, stat.S_IFREG: 8, stat.S_IFLNK: 10}


def open_beneath(root_fd: int, rel: bytes, flags: int, mode: int = 0) -> int:
    """openat2 below ``root_fd`` without following any symlink; raises SysError."""
    global _openat2_ok
    flags |= os.O_CLOEXEC
    if _openat2_ok:
        how = _HOW
        how.flags = flags
        how.mode = mode if flags & _CREATING else 0
        how.resolve = _NO_LINKS
        fd = _syscall(_SYS_OPENAT2, root_fd, rel or b".", _HOW_REF, _HOW_SIZE)
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EPERM):   # EPERM: a seccomp filter said no
            raise SysError(err)
        _openat2_ok = False
    # Old kernels: namei already checked every component; refuse a final symlink.
    try:
        return os.open(rel or b".", flags | os.O_NOFOLLOW, mode, dir_fd=root_fd)
    except OSError as exc:
        raise SysError(exc.errno or errno.EIO) from None


def _oserr(exc: OSError) -> SysError:
    return SysError(exc.errno or errno.EIO)


class HostNode:
    """A file under a host mount: (mount, relative path) plus its last ``lstat``."""

    __slots__ = ("fs", "rel", "st", "t")

    def __init__(self, fs: "HostFs", rel: bytes, st: os.stat_result) -> None:
        self.fs = fs
        self.rel = rel
        self.st = st
        self.t = _now()          # when ``st`` was read: refresh() skips fresh ones

    def __eq__(self, other: object) -> bool:
        return (type(other) is HostNode and other.fs is self.fs  # type: ignore[union-attr]
                and other.rel == self.rel)                       # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash((id(self.fs), self.rel))

    def __repr__(self) -> str:
        return f"<HostNode {self.fs.host_root!r}/{self.rel!r}>"


class HostFs:
    """A host directory as a XINIM filesystem (the vnode operations namei and the
    handlers use; :class:`~xinim_host.vfs_fuse.mounts.RamMount` has the same ones)."""

    kind = "host"

    def __init__(self, host_root: str | bytes, readonly: bool = True) -> None:
        self.host_root = os.fsencode(os.path.realpath(os.fsencode(host_root)))
        self.readonly = readonly
        try:
            self.root_fd = os.open(self.host_root, _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise SysError(exc.errno or errno.ENOENT, f"{host_root!r}: {exc.strerror}") from None
        self.root = HostNode(self, b"", os.stat(self.root_fd))
        self.dev = self.root.st.st_dev
        self.covers: Any = None      # the Loc this is mounted on (set by the mount table)
        self.has_submounts = False

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    # -- namespace -----------------------------------------------------------
    def is_root(self, node: HostNode) -> bool:
        return not node.rel

    def lookup(self, dir: HostNode, name: bytes, who: Any = None) -> HostNode:
        rel = dir.rel + b"/" + name if dir.rel else name
        try:
            st = os.stat(rel, dir_fd=self.root_fd, follow_symlinks=False)
        except OSError as exc:
            raise _oserr(exc) from None
        return HostNode(self, rel, st)

    def parent(self, node: HostNode) -> HostNode:
        if not node.rel:
            return node
        i = node.rel.rfind(b"/")
        rel = node.rel[:i] if i > 0 else b""
        return self._node(rel)

    def _node(self, rel: bytes) -> HostNode:
        try:
            st = os.stat(rel or b".", dir_fd=self.root_fd, follow_symlinks=False)
        except OSError as exc:
            raise _oserr(exc) from None
        return HostNode(self, rel, st)

    def refresh(self, node: HostNode) -> HostNode:
        if _now() - node.t > FRESH_NS:
            node.st = self._node(node.rel).st
            node.t = _now()
        return node

    @staticmethod
    def mode(node: HostNode) -> int:
        return node.st.st_mode

    @staticmethod
    def attr3(node: HostNode) -> tuple[int, int, int]:
        st = node.st
        return st.st_mode, st.st_uid, st.st_gid

    def readlink(self, node: HostNode, who: Any = None) -> bytes:
        try:
            return os.readlink(node.rel, dir_fd=self.root_fd)
        except OSError as exc:
            raise _oserr(exc) from None

    def host_path(self, node: HostNode) -> bytes:
        return self.host_root + b"/" + node.rel if node.rel else self.host_root

    def stat_reply(self, node: HostNode, fresh: bool = True, who: Any = None) -> VfsStatReply:
        st = self.refresh(node).st
        return VfsStatReply(dev=st.st_dev, ino=st.st_ino, mode=st.st_mode, nlink=st.st_nlink,
                            uid=st.st_uid, gid=st.st_gid, rdev=st.st_rdev, size=st.st_size,
                            blksize=st.st_blksize, blocks=st.st_blocks,
                            atime_ns=st.st_atime_ns, mtime_ns=st.st_mtime_ns,
                            ctime_ns=st.st_ctime_ns)

    def size(self, node: HostNode) -> int:
        return self.refresh(node).st.st_size

    def hold(self, node: HostNode) -> None:
        pass

    def release(self, node: HostNode) -> None:
        pass

    def statfs(self) -> StatFs:
        buf = _StatfsBuf()
        if _libc.fstatfs(self.root_fd, ctypes.byref(buf)) != 0:
            raise SysError(ctypes.get_errno() or errno.EIO)
        return StatFs(f_bsize=buf.f_bsize, f_frsize=buf.f_frsize or buf.f_bsize,
                      f_blocks=buf.f_blocks, f_bfree=buf.f_bfree, f_bavail=buf.f_bavail,
                      f_files=buf.f_files, f_ffree=buf.f_ffree, f_favail=buf.f_ffree,
                      f_flag=buf.f_flags | (1 if self.readonly else 0),  # ST_RDONLY
                      f_namemax=buf.f_namelen, f_fsid=buf.f_fsid, f_type=buf.f_type)

    # -- changes (rw binds only) ----------------------------------------------
    def _writable(self) -> None:
        if self.readonly:
            raise SysError(errno.EROFS)

    def _dir_fd(self, dir: HostNode) -> int:
        return open_beneath(self.root_fd, dir.rel, _O_PATH | os.O_DIRECTORY)

    def _in_dir(self, dir: HostNode, fn: Any, *args: Any, **kw: Any) -> Any:
        self._writable()
        pfd = self._dir_fd(dir)
        try:
            return fn(*args, dir_fd=pfd, **kw)
        except OSError as exc:
            raise _oserr(exc) from None
        finally:
            os.close(pfd)
            dir.t = 0                         # its mtime changed: no reuse of the old lstat

    def _child(self, dir: HostNode, name: bytes) -> HostNode:
        return self.lookup(dir, name)

    def mknod(self, dir: HostNode, name: bytes, mode: int, uid: int, gid: int,
              rdev: int = 0) -> HostNode:
        fmt = stat.S_IFMT(mode) or stat.S_IFREG
        if fmt == stat.S_IFREG:
            fd = self._in_dir(dir, os.open, name, os.O_CREAT | os.O_EXCL | os.O_WRONLY
                              | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o7777)
            os.close(fd)
        else:
            self._in_dir(dir, os.mknod, name, fmt | (mode & 0o7777), rdev)
        return self._child(dir, name)

    def mkdir(self, dir: HostNode, name: bytes, mode: int, uid: int, gid: int) -> HostNode:
        self._in_dir(dir, os.mkdir, name, mode & 0o7777)
        return self._child(dir, name)

    def symlink(self, dir: HostNode, name: bytes, target: bytes, uid: int, gid: int) -> HostNode:
        self._in_dir(dir, os.symlink, target, name)
        return self._child(dir, name)

    def link(self, node: HostNode, dir: HostNode, name: bytes) -> None:
        self._writable()
        if stat.S_ISDIR(node.st.st_mode):
            raise SysError(errno.EPERM)
        src = self._dir_fd(self.parent(node))
        try:
            dst = self._dir_fd(dir)
            try:
                os.link(os.path.basename(node.rel), name, src_dir_fd=src, dst_dir_fd=dst,
                        follow_symlinks=False)
                node.t = dir.t = 0
            except OSError as exc:
                raise _oserr(exc) from None
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def unlink(self, dir: HostNode, name: bytes) -> None:
        self._in_dir(dir, os.unlink, name)

    def rmdir(self, dir: HostNode, name: bytes) -> None:
        self._in_dir(dir, os.rmdir, name)

    def rename(self, olddir: HostNode, oldname: bytes, newdir: HostNode, newname: bytes,
               flags: int = 0) -> None:
        self._writable()
        if flags:
            raise SysError(errno.EINVAL)  # renameat2 flags: not on host mounts
        a = self._dir_fd(olddir)
        try:
            b = self._dir_fd(newdir)
            try:
                os.rename(oldname, newname, src_dir_fd=a, dst_dir_fd=b)
                olddir.t = newdir.t = 0
            except OSError as exc:
                raise _oserr(exc) from None
            finally:
                os.close(b)
        finally:
            os.close(a)

    def setattr(self, node: HostNode, *, mode: int | None = None, uid: int | None = None,
                gid: int | None = None, atime_ns: int | None = None,
                mtime_ns: int | None = None, size: int | None = None) -> None:
        self._writable()
        is_lnk = stat.S_ISLNK(node.st.st_mode)
        flags = _O_PATH if is_lnk else os.O_RDONLY | os.O_NONBLOCK
        if size is not None:
            flags = os.O_WRONLY
        fd = open_beneath(self.root_fd, node.rel, flags | os.O_NOFOLLOW)
        try:
            if size is not None:
                os.ftruncate(fd, size)
            if mode is not None and not is_lnk:
                os.chmod(fd, mode & 0o7777)
            if uid is not None or gid is not None:
                os.chown(node.rel, -1 if uid is None else uid, -1 if gid is None else gid,
                         dir_fd=self.root_fd, follow_symlinks=False)
            if atime_ns is not None or mtime_ns is not None:
                st = os.fstat(fd)
                times = (st.st_atime_ns if atime_ns is None else atime_ns,
                         st.st_mtime_ns if mtime_ns is None else mtime_ns)
                if is_lnk:
                    os.utime(node.rel, ns=times, dir_fd=self.root_fd, follow_symlinks=False)
                else:
                    os.utime(fd, ns=times)
        except OSError as exc:
            raise _oserr(exc) from None
        finally:
            os.close(fd)
        node.t = 0
        self.refresh(node)

    # -- file I/O -----------------------------------------------------------------
    def open_host(self, node: HostNode, flags: int, who: Any = None) -> int:
        """A host fd for reading/writing ``node``'s data (no O_APPEND: VFS positions)."""
        acc = flags & os.O_ACCMODE
        if acc != os.O_RDONLY:
            self._writable()
        hflags = acc | os.O_NOFOLLOW | (flags & os.O_TRUNC)
        if node.st.st_mode & 0o170000 == stat.S_IFIFO:
            raise SysError(errno.ENXIO)   # host FIFOs would block the server
        return open_beneath(self.root_fd, node.rel, hflags | os.O_NONBLOCK)

    def pread(self, hfd: int, offset: int, count: int) -> bytes:
        try:
            return os.pread(hfd, count, offset)
        except OSError as exc:
            raise _oserr(exc) from None

    def pwrite(self, hfd: int, offset: int, data: bytes) -> int:
        self._writable()
        try:
            return os.pwrite(hfd, data, offset)
        except OSError as exc:
            raise _oserr(exc) from None

    def pack_listing(self, node: HostNode, out: bytearray, ends: list[int]) -> None:
        """Append ``node``'s entries (not '.' and '..') to ``out`` as linux_dirent64
        records, the one at index i with d_off i + 1, and each record's end to
        ``ends``, as getdents64 gives them (a DT_UNKNOWN entry typed by an lstat,
        as scandir does; a type other than dir, file or link shows as 0)."""
        fd = open_beneath(self.root_fd, node.rel, os.O_RDONLY | os.O_DIRECTORY)
        unpack_from, pack = DIRENT64.unpack_from, DIRENT64.pack
        buf = _DENTS
        try:
            while True:
                ctypes.memset(buf, 0, _DENTS_SIZE)   # the padding after a name is ours: zeros
                n = _syscall(_SYS_GETDENTS64, fd, buf, _DENTS_SIZE)
                if n <= 0:
                    if n < 0:
                        raise SysError(ctypes.get_errno() or errno.EIO)
                    return
                data = ctypes.string_at(buf, n)
                o = 0
                while o < n:
                    ino, _, reclen, dt = unpack_from(data, o)
                    if reclen == 24 and (data[o + 19:o + 21] == b".\0"
                                         or data[o + 19:o + 22] == b"..\0"):
                        o += reclen
                        continue
                    if dt not in _DT_KEPT:
                        dt = self._dt_of(fd, data[o + 19:data.index(0, o + 19)]) if dt == 0 else 0
                    out += pack(ino, len(ends) + 1, reclen, dt)
                    out += data[o + 19:o + reclen]
                    ends.append(len(out))
                    o += reclen
        finally:
            os.close(fd)

    @staticmethod
    def _dt_of(dir_fd: int, name: bytes) -> int:
        """DT_UNKNOWN from the host: the type from an lstat (as scandir's is_dir...)."""
        try:
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
        except OSError:
            return 0
        return _DT_OF_FMT.get(stat.S_IFMT(mode), 0)


class HostFileIO:
    """Reads and writes of an open host file, through the host fd in ``of.hfd``."""

    seekable = True

    def read(self, req: Any, of: Any, count: int, offset: int) -> bytes:
        try:
            if offset < 0:
                data = os.pread(of.hfd, count, of.offset)
                of.offset += len(data)
                return data
            return os.pread(of.hfd, count, offset)
        except OSError as exc:
            raise _oserr(exc) from None

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> int:
        of.fs._writable()
        try:
            if of.flags & os.O_APPEND:
                pos = os.fstat(of.hfd).st_size
            else:
                pos = of.offset if offset < 0 else offset
            n = os.pwrite(of.hfd, data, pos)
        except OSError as exc:
            raise _oserr(exc) from None
        of.node.t = 0                         # size/mtime changed
        if offset < 0:
            of.offset = pos + n
        return n

    def seek(self, of: Any, offset: int, whence: int) -> int:
        if whence in (3, 4):                  # SEEK_DATA / SEEK_HOLE: the host knows
            try:
                return os.lseek(of.hfd, offset, whence)
            except OSError as exc:
                raise _oserr(exc) from None
        from .mounts import seek_position
        return seek_position(of, offset, whence, os.fstat(of.hfd).st_size)

    def poll(self, of: Any, events: int) -> int:
        return events & (0x1 | 0x4 | 0x40 | 0x100)

    def waitq(self, of: Any) -> None:
        return None                           # never changes: always ready (regular files)

    def ioctl(self, req: Any, of: Any, request: int, data: bytes) -> tuple[int, bytes]:
        if request == 0x541B:                 # FIONREAD
            left = max(0, os.fstat(of.hfd).st_size - of.offset)
            return 0, min(left, 0x7FFFFFFF).to_bytes(4, "little")
        raise SysError(errno.ENOTTY)

    def open(self, req: Any, of: Any) -> None:
        pass

    def close(self, of: Any) -> None:
        if of.hfd >= 0:
            os.close(of.hfd)
            of.hfd = -1


HOST_FILE_IO = HostFileIO()
