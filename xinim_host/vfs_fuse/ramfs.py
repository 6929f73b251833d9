"""The XINIM root filesystem: an in-memory inode tree shared by the VFS server
and the FUSE export.

No permission checks here (namei/handlers check with the caller's credentials;
the FUSE side relies on the host kernel's ``default_permissions``).  Every
mutation calls the registered listeners *after* the change with
``(event, inode, parent, name)``:

* ``"create"``  -- ``name`` now names ``inode`` in directory ``parent``
                   (mknod/mkdir/symlink/link, and the new name of a rename);
* ``"remove"``  -- ``name`` no longer exists in ``parent`` (unlink/rmdir, the old
                   name of a rename, and an entry a rename replaced);
* ``"data"``    -- file contents or size changed (write/truncate); parent, name None;
* ``"attr"``    -- metadata changed (setattr, times); parent, name None;
* ``"free"``    -- the inode is gone (nlink 0 and no holds); parent, name None.

During a rename's events ``Ramfs.renaming`` is the inode being moved (inotify
reports a move, not a delete and a create).

The parent directory's own attributes (mtime/ctime/nlink/size) change with every
"create"/"remove"; listeners invalidate them too.

Directory positions: every entry gets a per-directory cookie, increasing in
insertion order and never reused; :meth:`Ramfs.readdir_from` continues after a
cookie, so a reader interleaved with unlink/create (``rm -r``) neither skips
nor repeats surviving entries.
"""
from __future__ import annotations

import bisect
import errno
import logging
import os
import stat
import time
import weakref
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

from ..lib.errors import SysError

log = logging.getLogger(__name__)

PAGE = 4096
_ZERO_PAGE = bytes(PAGE)
#: A write whose whole pages are all new, at least this many, keeps them in
#: one buffer (a _Chunk of at most CHUNK_PAGES pages; the pages are views of it)
CHUNK_MIN_PAGES = 16
CHUNK_PAGES = 256
_PAGE_SLICES = tuple(slice(i * PAGE, (i + 1) * PAGE) for i in range(CHUNK_PAGES))
NAME_MAX = 255
PATH_MAX = 4096
MAX_FILE_SIZE = (1 << 63) - 1           # Linux MAX_LFS_FILESIZE; EFBIG past it
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
ROOT_INO = 1                            # == pyfuse3.ROOT_INODE
BOGO_DIRENT_SIZE = 20                   # tmpfs reports dir size as 20 * (entries + 2)

_S_IFMT = stat.S_IFMT(0o170000)
_NODE_TYPES = frozenset({stat.S_IFREG, stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK,
                         stat.S_IFSOCK})

Listener = Callable[[str, "Inode", "Inode | None", "bytes | None"], None]
#: fence(then) -> True when ``then`` will run once the fence's owner has
#: published every change so far, False when there is nothing to wait for
Fence = Callable[[Callable[[], None]], bool]


class Tracker(Protocol):
    def wrote(self, inode: "Inode", first: int, last: int) -> None: ...
    def cut(self, inode: "Inode", size: int) -> None: ...


class _Chunk(bytearray):
    """The buffer behind a run of pages one write made: the pages in
    ``Inode.pages`` are writable memoryview slices of it, so a 1 MiB write is
    one copy instead of 256 page allocations, and a read inside the run is a
    slice of it with no copy (:func:`chunk_view`).  Page ``base + k``
    is bytes ``k * PAGE`` of the chunk.  ``intact``: none of its pages was
    ever dropped (truncate, punch-hole), so every index of the run still
    holds its own slice; a chunk that loses more than half of its pages
    gives the survivors their own copies and is freed (memory stays within
    twice what the pages account)."""

    __slots__ = ("base", "npages", "intact")


def _drop_pages(pages: dict[int, bytearray | memoryview], idxs: list[int]) -> None:
    """Remove pages ``idxs``; a chunk that loses pages is no longer intact,
    and one left with fewer than half of its pages lets them go (copies)."""
    hit: dict[int, _Chunk] = {}
    for i in idxs:
        page = pages.pop(i)
        if type(page) is memoryview:
            chunk = page.obj
            chunk.intact = False
            hit[id(chunk)] = chunk
    for chunk in hit.values():
        mine = [i for i in range(chunk.base, chunk.base + chunk.npages)
                if type(p := pages.get(i)) is memoryview and p.obj is chunk]
        if 2 * len(mine) < chunk.npages:
            for i in mine:
                pages[i] = bytearray(pages[i])


def chunk_view(inode: "Inode", offset: int, end: int) -> memoryview | None:
    """Bytes [offset, end) of a regular file as one slice of the chunk that
    holds them all (no copy), or None if they are not in one intact chunk.
    Valid until the next change of the file: use it at once."""
    page = inode.pages.get(offset // PAGE)
    if type(page) is not memoryview:
        return None
    chunk = page.obj
    base = chunk.base * PAGE
    if not chunk.intact or end > base + chunk.npages * PAGE:
        return None
    return memoryview(chunk)[offset - base:end - base]


def _slot_cookie(slot: tuple[int, bytes]) -> int:
    return slot[0]


def _err(code: int) -> SysError:
    return SysError(code)


class Inode:
    """One file object.  Directories use ``entries``/``parent``; regular files
    ``pages`` (page index -> a writable PAGE-byte buffer, sparse: a bytearray,
    or a memoryview slice of a _Chunk -- mutate in place, never resize);
    symlinks ``target``."""

    __slots__ = ("ino", "mode", "uid", "gid", "nlink", "rdev", "atime_ns", "mtime_ns",
                 "ctime_ns", "entries", "parent", "pages", "target", "_size", "holds",
                 "_cookies", "_slots", "_next_cookie", "generation", "cache", "__weakref__")

    def __init__(self, ino: int, mode: int, uid: int, gid: int, rdev: int = 0) -> None:
        now = time.time_ns()
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.nlink = 1
        self.rdev = rdev
        self.atime_ns = self.mtime_ns = self.ctime_ns = now
        self.entries: dict[bytes, Inode] = {}
        self.parent: Inode | None = None
        self.pages: dict[int, bytearray | memoryview] = {}
        self.target: bytes = b""
        self._size = 0
        self.holds = 0
        self._cookies: dict[bytes, int] = {}          # dirs: name -> cookie
        self._slots: list[tuple[int, bytes]] = []     # dirs: (cookie, name), cookie order
        self._next_cookie = 3                          # 1, 2 are . and .. for getdents
        self.generation = 0
        self.cache = -1               # a host memfd mirroring the data: MAP_SHARED maps

    # -- type predicates (cheap; used on hot paths) --
    @property
    def is_dir(self) -> bool:
        return self.mode & 0o170000 == stat.S_IFDIR

    @property
    def is_reg(self) -> bool:
        return self.mode & 0o170000 == stat.S_IFREG

    @property
    def is_lnk(self) -> bool:
        return self.mode & 0o170000 == stat.S_IFLNK

    @property
    def size(self) -> int:
        fmt = self.mode & 0o170000
        if fmt == stat.S_IFREG:
            return self._size
        if fmt == stat.S_IFDIR:
            return BOGO_DIRENT_SIZE * (len(self.entries) + 2)
        if fmt == stat.S_IFLNK:
            return len(self.target)
        return 0

    @property
    def blocks(self) -> int:
        """st_blocks in 512-byte units: only the allocated pages count."""
        return len(self.pages) * (PAGE // 512)

    def __repr__(self) -> str:
        return f"<Inode {self.ino} mode={self.mode:o} nlink={self.nlink} size={self.size}>"

    # -- directory entry bookkeeping (cookies for stable readdir positions) --
    def _add_entry(self, name: bytes, inode: "Inode") -> None:
        cookie = self._next_cookie
        self._next_cookie = cookie + 1
        self.entries[name] = inode
        self._cookies[name] = cookie
        self._slots.append((cookie, name))

    def _del_entry(self, name: bytes) -> "Inode":
        inode = self.entries.pop(name)
        del self._cookies[name]
        # slots are dropped lazily; compact when mostly dead (cookies survive compaction)
        if len(self._slots) > 2 * len(self.entries) + 64:
            self._slots = [(c, n) for c, n in self._slots if self._cookies.get(n) == c]
        return inode


@dataclass(frozen=True, slots=True)
class StatFs:
    """The fields of os.statvfs_result / struct statfs."""

    f_bsize: int
    f_frsize: int
    f_blocks: int
    f_bfree: int
    f_bavail: int
    f_files: int
    f_ffree: int
    f_favail: int
    f_flag: int
    f_namemax: int
    f_fsid: int = 0x58494E49   # "XINI"
    f_type: int = 0x01021994   # TMPFS_MAGIC: tools treat us like a tmpfs


def _default_capacity() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2  # as tmpfs
    except (ValueError, OSError):
        return 1 << 32


class Ramfs:
    """The inode tree.  Root is inode 1, owned by root, mode 0o755."""

    def __init__(self, *, capacity: int | None = None, max_inodes: int = 1 << 22,
                 max_file_size: int = MAX_FILE_SIZE) -> None:
        self.capacity = capacity if capacity is not None else _default_capacity()
        self.max_inodes = max_inodes
        self.max_file_size = max_file_size
        self.pages_used = 0
        self.inodes: dict[int, Inode] = {}
        self.cached: set[Inode] = set()           # inodes with a shared-map memfd mirror
        self._next_ino = ROOT_INO
        self._listeners: list[Listener] = []
        self.renaming: Inode | None = None      # the inode whose rename listeners hear now
        self._access_listeners: list[Callable[[str, Inode], None]] = []
        # listeners that publish changes later (the FUSE export's kernel
        # invalidations): see after_published
        self.fences: list[Fence] = []
        self.pinned: set[Inode] = set()     # mount points: rmdir/rename/unlink say EBUSY
        self.linkable: weakref.WeakSet[Inode] = weakref.WeakSet()   # O_TMPFILE files
        # the journal's page bookkeeping (journal.Tracker): which pages a write
        # touched and how far a truncate cut, which the "data" event does not say
        self.tracker: Tracker | None = None
        self.root = self._new_inode(stat.S_IFDIR | 0o755, 0, 0)
        self.root.nlink = 2
        self.root.parent = self.root

    # ------------------------------------------------------------------ events
    def add_listener(self, cb: Listener) -> None:
        self._listeners.append(cb)

    def remove_listener(self, cb: Listener) -> None:
        self._listeners.remove(cb)

    def after_published(self, then: Callable[[], None]) -> bool:
        """Run ``then`` once every change made so far is published by the
        listeners that publish asynchronously (``fences``); True if it was
        deferred, False if nothing is unpublished (the caller runs it now).
        The VFS holds its replies here: a XINIM call that changed the tree
        returns only when the host kernel has forgotten what it cached."""
        return self._after_fences(then, 0)

    def _after_fences(self, then: Callable[[], None], start: int) -> bool:
        fences = self.fences
        for i in range(start, len(fences)):
            if fences[i](lambda: self._after_fences(then, i + 1) or then()):
                return True
        return False

    def add_access_listener(self, cb: Callable[[str, Inode], None]) -> None:
        self._access_listeners.append(cb)

    def accessed(self, what: str, inode: Inode) -> None:
        """``inode`` was opened, read or closed ("open", "access", "close-write",
        "close-nowrite") by a XINIM program or through the FUSE export: not a change
        (the change listeners do not hear it), but inotify reports it."""
        for cb in self._access_listeners:
            try:
                cb(what, inode)
            except Exception:  # a listener must never break the filesystem
                log.exception("ramfs access listener failed on %s", what)

    def _emit(self, event: str, inode: Inode, parent: Inode | None = None,
              name: bytes | None = None) -> None:
        for cb in self._listeners:
            try:
                cb(event, inode, parent, name)
            except Exception:  # a listener must never break the filesystem
                log.exception("ramfs listener failed on %s", event)

    # ------------------------------------------------------------------ helpers
    def _new_inode(self, mode: int, uid: int, gid: int, rdev: int = 0) -> Inode:
        if len(self.inodes) >= self.max_inodes:
            raise _err(errno.ENOSPC)
        ino = self._next_ino
        self._next_ino = ino + 1
        inode = Inode(ino, mode, uid, gid, rdev)
        self.inodes[ino] = inode
        return inode

    @staticmethod
    def _check_dir(dir: Inode) -> None:
        if dir.mode & 0o170000 != stat.S_IFDIR:
            raise _err(errno.ENOTDIR)

    def _check_new_name(self, dir: Inode, name: bytes) -> None:
        self._check_dir(dir)
        if dir.nlink == 0:                      # removed directory (still someone's cwd)
            raise _err(errno.ENOENT)
        if not name:
            raise _err(errno.ENOENT)
        if len(name) > NAME_MAX:
            raise _err(errno.ENAMETOOLONG)
        if b"/" in name or b"\0" in name:
            raise _err(errno.EINVAL)
        if name in dir.entries or name == b"." or name == b"..":
            raise _err(errno.EEXIST)

    @staticmethod
    def _touch_dir(dir: Inode, now: int) -> None:
        dir.mtime_ns = dir.ctime_ns = now

    def _inherit(self, dir: Inode, mode: int, gid: int) -> tuple[int, int]:
        """setgid directories pass their group (and, to subdirs, the bit) on."""
        if dir.mode & stat.S_ISGID:
            gid = dir.gid
            if mode & 0o170000 == stat.S_IFDIR:
                mode |= stat.S_ISGID
        return mode, gid

    def _maybe_free(self, inode: Inode) -> None:
        if inode.nlink == 0 and inode.holds == 0 and inode.ino in self.inodes:
            if inode.cache >= 0:
                os.close(inode.cache)
                inode.cache = -1
                self.cached.discard(inode)
            del self.inodes[inode.ino]
            self.pages_used -= len(inode.pages)
            inode.pages = {}
            inode.entries = {}
            if self._listeners:
                self._emit("free", inode)

    def _link_in(self, dir: Inode, name: bytes, inode: Inode, now: int) -> None:
        dir._add_entry(name, inode)
        self._touch_dir(dir, now)
        if self._listeners:
            self._emit("create", inode, dir, name)

    # ------------------------------------------------------------------ namespace
    def lookup(self, dir: Inode, name: bytes, who: object = None) -> Inode:
        if dir.mode & 0o170000 != stat.S_IFDIR:
            raise _err(errno.ENOTDIR)
        inode = dir.entries.get(name)
        if inode is not None:
            return inode
        if name == b".":
            return dir
        if name == b"..":
            return dir.parent or dir
        if len(name) > NAME_MAX:
            raise _err(errno.ENAMETOOLONG)
        raise _err(errno.ENOENT)

    def mknod(self, dir: Inode, name: bytes, mode: int, uid: int, gid: int,
              rdev: int = 0) -> Inode:
        fmt = mode & 0o170000
        if fmt == 0:
            fmt = stat.S_IFREG
        if fmt not in _NODE_TYPES:
            raise _err(errno.EINVAL)
        self._check_new_name(dir, name)
        mode, gid = self._inherit(dir, fmt | (mode & 0o7777), gid)
        inode = self._new_inode(mode, uid, gid, rdev if fmt in (stat.S_IFCHR, stat.S_IFBLK) else 0)
        self._link_in(dir, name, inode, inode.ctime_ns)
        return inode

    def mkdir(self, dir: Inode, name: bytes, mode: int, uid: int, gid: int) -> Inode:
        self._check_new_name(dir, name)
        mode, gid = self._inherit(dir, stat.S_IFDIR | (mode & 0o7777), gid)
        inode = self._new_inode(mode, uid, gid)
        inode.nlink = 2
        inode.parent = dir
        dir.nlink += 1
        self._link_in(dir, name, inode, inode.ctime_ns)
        return inode

    def symlink(self, dir: Inode, name: bytes, target: bytes, uid: int, gid: int) -> Inode:
        if not target:
            raise _err(errno.ENOENT)
        if len(target) >= PATH_MAX:
            raise _err(errno.ENAMETOOLONG)
        self._check_new_name(dir, name)
        _, gid = self._inherit(dir, stat.S_IFLNK, gid)
        inode = self._new_inode(stat.S_IFLNK | 0o777, uid, gid)
        inode.target = bytes(target)
        self._link_in(dir, name, inode, inode.ctime_ns)
        return inode

    def anon_file(self, mode: int, uid: int, gid: int, linkable: bool = False) -> Inode:
        """A regular file with no name (memfd, O_TMPFILE); ``linkable``: linkat may
        give it one (O_TMPFILE without O_EXCL).  It lives while it is held."""
        inode = self._new_inode(mode, uid, gid)
        inode.nlink = 0
        if linkable:
            self.linkable.add(inode)
        return inode

    def link(self, inode: Inode, dir: Inode, name: bytes) -> None:
        if inode.mode & 0o170000 == stat.S_IFDIR:
            raise _err(errno.EPERM)
        self._check_new_name(dir, name)
        if inode.nlink == 0:                    # unlinked but still open: Linux says ENOENT
            if inode not in self.linkable:
                raise _err(errno.ENOENT)
            self.linkable.discard(inode)
        if inode.nlink >= 0xFFFFFFFF:
            raise _err(errno.EMLINK)
        now = time.time_ns()
        inode.nlink += 1
        inode.ctime_ns = now
        self._link_in(dir, name, inode, now)

    def _entry(self, dir: Inode, name: bytes) -> Inode:
        self._check_dir(dir)
        inode = dir.entries.get(name)
        if inode is None:
            if len(name) > NAME_MAX:
                raise _err(errno.ENAMETOOLONG)
            raise _err(errno.ENOENT)
        return inode

    def unlink(self, dir: Inode, name: bytes) -> None:
        inode = self._entry(dir, name)
        if inode.mode & 0o170000 == stat.S_IFDIR:
            raise _err(errno.EISDIR)
        now = time.time_ns()
        dir._del_entry(name)
        self._touch_dir(dir, now)
        inode.nlink -= 1
        inode.ctime_ns = now
        if self._listeners:
            self._emit("remove", inode, dir, name)
        self._maybe_free(inode)

    def rmdir(self, dir: Inode, name: bytes) -> None:
        if name == b".":
            raise _err(errno.EINVAL)
        if name == b"..":
            raise _err(errno.ENOTEMPTY)
        inode = self._entry(dir, name)
        if inode.mode & 0o170000 != stat.S_IFDIR:
            raise _err(errno.ENOTDIR)
        if inode in self.pinned:
            raise _err(errno.EBUSY)
        if inode.entries:
            raise _err(errno.ENOTEMPTY)
        now = time.time_ns()
        dir._del_entry(name)
        dir.nlink -= 1
        self._touch_dir(dir, now)
        inode.nlink = 0
        inode.ctime_ns = now
        if self._listeners:
            self._emit("remove", inode, dir, name)
        self._maybe_free(inode)

    @staticmethod
    def _is_ancestor(a: Inode, d: Inode) -> bool:
        """Is ``a`` the directory ``d`` or one of its ancestors?"""
        while True:
            if d is a:
                return True
            p = d.parent
            if p is None or p is d:
                return False
            d = p

    def rename(self, olddir: Inode, oldname: bytes, newdir: Inode, newname: bytes,
               flags: int = 0) -> None:
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or (
                flags & RENAME_NOREPLACE and flags & RENAME_EXCHANGE):
            raise _err(errno.EINVAL)
        self._check_dir(newdir)
        if oldname in (b".", b"..") or newname in (b".", b".."):
            raise _err(errno.EBUSY)
        src = self._entry(olddir, oldname)
        if src in self.pinned:
            raise _err(errno.EBUSY)
        if len(newname) > NAME_MAX:
            raise _err(errno.ENAMETOOLONG)
        if not newname:
            raise _err(errno.ENOENT)
        if b"/" in newname or b"\0" in newname:
            raise _err(errno.EINVAL)
        if newdir.nlink == 0:
            raise _err(errno.ENOENT)
        dst = newdir.entries.get(newname)
        if dst is not None and dst in self.pinned:
            raise _err(errno.EBUSY)
        src_dir = src.mode & 0o170000 == stat.S_IFDIR
        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise _err(errno.ENOENT)
            dst_dir = dst.mode & 0o170000 == stat.S_IFDIR
            if src is dst:
                return
            if (src_dir and self._is_ancestor(src, newdir)) or (
                    dst_dir and self._is_ancestor(dst, olddir)):
                raise _err(errno.EINVAL)
            self._exchange(olddir, oldname, src, newdir, newname, dst)
            return
        if src_dir and self._is_ancestor(src, newdir):
            raise _err(errno.EINVAL)
        if dst is not None:
            if flags & RENAME_NOREPLACE:
                raise _err(errno.EEXIST)
            if dst is src:                      # hard links to one inode: POSIX no-op
                return
            dst_dir = dst.mode & 0o170000 == stat.S_IFDIR
            if src_dir and not dst_dir:
                raise _err(errno.ENOTDIR)
            if dst_dir and not src_dir:
                raise _err(errno.EISDIR)
            if dst_dir and dst.entries:
                raise _err(errno.ENOTEMPTY)
        now = time.time_ns()
        if dst is not None:                     # drop the replaced entry first
            newdir._del_entry(newname)
            if dst.mode & 0o170000 == stat.S_IFDIR:
                dst.nlink = 0
                newdir.nlink -= 1
            else:
                dst.nlink -= 1
            dst.ctime_ns = now
            if self._listeners:
                self.renaming = src
                try:
                    self._emit("remove", dst, newdir, newname)
                finally:
                    self.renaming = None
        olddir._del_entry(oldname)
        if src_dir and olddir is not newdir:
            olddir.nlink -= 1
            newdir.nlink += 1
            src.parent = newdir
        newdir._add_entry(newname, src)
        src.ctime_ns = now
        self._touch_dir(olddir, now)
        self._touch_dir(newdir, now)
        if self._listeners:
            self.renaming = src                 # one move, not a delete and a create
            try:
                self._emit("remove", src, olddir, oldname)
                self._emit("create", src, newdir, newname)
            finally:
                self.renaming = None
        if dst is not None:
            self._maybe_free(dst)

    def _exchange(self, olddir: Inode, oldname: bytes, src: Inode, newdir: Inode,
                  newname: bytes, dst: Inode) -> None:
        now = time.time_ns()
        olddir.entries[oldname] = dst          # same names, same cookies: positions kept
        newdir.entries[newname] = src
        if olddir is not newdir:
            src_dir = src.mode & 0o170000 == stat.S_IFDIR
            dst_dir = dst.mode & 0o170000 == stat.S_IFDIR
            if src_dir:
                src.parent = newdir
                newdir.nlink += 1
                olddir.nlink -= 1
            if dst_dir:
                dst.parent = olddir
                olddir.nlink += 1
                newdir.nlink -= 1
        src.ctime_ns = dst.ctime_ns = now
        self._touch_dir(olddir, now)
        self._touch_dir(newdir, now)
        if self._listeners:
            self._emit("remove", src, olddir, oldname)
            self._emit("remove", dst, newdir, newname)
            self._emit("create", dst, olddir, oldname)
            self._emit("create", src, newdir, newname)

    def readdir(self, dir: Inode) -> list[tuple[bytes, Inode]]:
        self._check_dir(dir)
        return list(dir.entries.items())

    def readdir_from(self, dir: Inode, cookie: int = 0) -> Iterator[tuple[int, bytes, Inode]]:
        """Entries after ``cookie`` as (cookie, name, inode), in cookie order.

        Cookies start at 3 (1 and 2 are free for '.' and '..'); an entry's
        cookie never changes while the name exists, so a saved cookie stays a
        valid position whatever else is added or removed meanwhile."""
        self._check_dir(dir)
        key = _slot_cookie
        slots = dir._slots
        i = bisect.bisect_right(slots, cookie, key=key)
        last = cookie
        cookies = dir._cookies
        while True:
            if dir._slots is not slots:         # compacted while we were suspended
                slots = dir._slots
                i = bisect.bisect_right(slots, last, key=key)
            if i >= len(slots):
                return
            c, name = slots[i]
            i += 1
            last = c
            if cookies.get(name) == c:
                inode = dir.entries.get(name)
                if inode is not None:
                    yield c, name, inode

    # ------------------------------------------------------------------ data
    def read(self, inode: Inode, offset: int, size: int) -> bytes:
        if inode.mode & 0o170000 == stat.S_IFDIR:
            raise _err(errno.EISDIR)
        if offset < 0 or size < 0:
            raise _err(errno.EINVAL)
        end = min(offset + size, inode._size)
        if offset >= end:
            return b""
        if inode.atime_ns <= inode.mtime_ns:    # relatime, as tmpfs
            inode.atime_ns = time.time_ns()
        if inode.cache >= 0:                    # mapped shared: the mappers' stores are there
            data = os.pread(inode.cache, end - offset, offset)
            return data + bytes(end - offset - len(data))
        pages = inode.pages
        first, off = divmod(offset, PAGE)
        if end - offset <= PAGE - off:          # fast path: within one page
            page = pages.get(first)
            if page is None:
                return bytes(end - offset)
            return bytes(page[off:off + end - offset])
        view = chunk_view(inode, offset, end)   # all in one chunk: one plain copy
        if view is not None:
            return bytes(view)
        # the pieces, joined once (a hole reads as zeros)
        last = (end - 1) // PAGE
        get = pages.get
        parts = [get(i) or _ZERO_PAGE for i in range(first, last + 1)]
        if off:
            parts[0] = memoryview(parts[0])[off:]
        tail = end - last * PAGE                # (first < last here: one page is above)
        if tail < PAGE:
            parts[-1] = memoryview(parts[-1])[:tail]
        return b"".join(parts)

    def write(self, inode: Inode, offset: int, data: bytes | bytearray | memoryview) -> int:
        if inode.mode & 0o170000 == stat.S_IFDIR:
            raise _err(errno.EISDIR)
        if offset < 0:
            raise _err(errno.EINVAL)
        n = len(data)
        if n == 0:
            return 0
        end = offset + n
        first, off = divmod(offset, PAGE)
        if off + n <= PAGE and inode.cache < 0 and end <= self.max_file_size:
            # Within one page (4 KiB writes, small appends: the common FUSE
            # and write(2) case): the steps below, for one page.
            pages = inode.pages
            page = pages.get(first)
            if page is None:
                if (self.pages_used + 1) * PAGE > self.capacity:
                    raise _err(errno.ENOSPC)
                if n == PAGE:
                    pages[first] = bytearray(data)
                else:
                    page = pages[first] = bytearray(PAGE)
                    page[off:end - first * PAGE] = data
                self.pages_used += 1
            else:
                page[off:end - first * PAGE] = data
            self._wrote(inode, first, first, end)
            return n
        if end > self.max_file_size:
            if offset >= self.max_file_size:
                raise _err(errno.EFBIG)
            n = self.max_file_size - offset       # short write up to the limit, as Linux
            end = offset + n
        pages = inode.pages
        first = offset // PAGE
        last = (end - 1) // PAGE
        span = range(first, last + 1)
        new_pages = len(span) - sum(map(pages.__contains__, span))   # (counted in C)
        if new_pages and (self.pages_used + new_pages) * PAGE > self.capacity:
            raise _err(errno.ENOSPC)
        mv = memoryview(data)
        pos = offset
        src = 0
        off = pos % PAGE
        if off:                                   # a partial first page
            k = min(PAGE - off, end - pos)
            page = pages.get(first)
            if page is None:
                page = pages[first] = bytearray(PAGE)
            page[off:off + k] = mv[src:src + k]
            pos += k
            src += k
        idx = pos // PAGE
        get = pages.get
        if new_pages == last - first + 1:         # only new pages: whole ones in chunks
            while end - pos >= CHUNK_MIN_PAGES * PAGE:
                k = min((end - pos) // PAGE, CHUNK_PAGES)
                chunk = _Chunk(mv[src:src + k * PAGE])      # the one copy
                chunk.base, chunk.npages, chunk.intact = idx, k, True
                pages.update(zip(range(idx, idx + k),
                                 map(memoryview(chunk).__getitem__, _PAGE_SLICES[:k])))
                idx += k
                pos += k * PAGE
                src += k * PAGE
        while end - pos >= PAGE:                  # whole pages: a new one is the copy itself
            nxt = src + PAGE
            page = get(idx)
            if page is None:
                pages[idx] = bytearray(mv[src:nxt])
            else:
                page[:] = mv[src:nxt]
            idx += 1
            pos += PAGE
            src = nxt
        if pos < end:                             # a partial last page
            page = get(idx)
            if page is None:
                page = pages[idx] = bytearray(PAGE)
            page[:end - pos] = mv[src:src + end - pos]
        self.pages_used += new_pages
        if inode.cache >= 0:
            os.pwrite(inode.cache, mv[:n], offset)
        self._wrote(inode, first, last, end)
        return n

    def _wrote(self, inode: Inode, first: int, last: int, end: int) -> None:
        """What every write does after its bytes are in pages first..last."""
        if self.tracker is not None:
            self.tracker.wrote(inode, first, last)
        if end > inode._size:
            inode._size = end
        inode.mtime_ns = inode.ctime_ns = time.time_ns()
        if self._listeners:
            self._emit("data", inode)

    def allocate(self, inode: Inode, offset: int, length: int, keep_size: bool) -> None:
        """fallocate: the pages of [offset, offset+length) exist (ENOSPC if they
        cannot); the size grows to cover them unless ``keep_size``."""
        end = offset + length
        if end > self.max_file_size:
            raise _err(errno.EFBIG)
        pages = inode.pages
        first, last = offset // PAGE, (end - 1) // PAGE
        missing = [i for i in range(first, last + 1) if i not in pages]
        if missing and (self.pages_used + len(missing)) * PAGE > self.capacity:
            raise _err(errno.ENOSPC)
        for i in missing:
            pages[i] = bytearray(PAGE)
        self.pages_used += len(missing)
        if missing and self.tracker is not None:
            self.tracker.wrote(inode, first, last)
        now = time.time_ns()
        if not keep_size and end > inode._size:
            inode._size = end
            inode.mtime_ns = now
            if inode.cache >= 0:
                os.ftruncate(inode.cache, end)
        inode.ctime_ns = now
        if self._listeners:
            self._emit("data", inode)

    def punch_hole(self, inode: Inode, offset: int, length: int) -> None:
        """fallocate(PUNCH_HOLE|KEEP_SIZE): zeros over the range, whole pages freed."""
        end = min(offset + length, max(inode._size, offset))
        if end <= offset:
            return
        pages = inode.pages
        first, last = offset // PAGE, (end - 1) // PAGE
        dropped: list[int] = []
        for i in range(first, last + 1):
            page = pages.get(i)
            if page is None:
                continue
            lo, hi = max(offset, i * PAGE) - i * PAGE, min(end, (i + 1) * PAGE) - i * PAGE
            if lo == 0 and hi == PAGE:
                dropped.append(i)
            else:
                page[lo:hi] = bytes(hi - lo)
        _drop_pages(pages, dropped)
        if inode.cache >= 0:
            os.pwrite(inode.cache, bytes(end - offset), offset)
        self.pages_used -= len(dropped)
        if self.tracker is not None:
            self.tracker.wrote(inode, first, last)
        inode.mtime_ns = inode.ctime_ns = time.time_ns()
        if self._listeners:
            self._emit("data", inode)

    def truncate(self, inode: Inode, size: int) -> None:
        if inode.mode & 0o170000 == stat.S_IFDIR:
            raise _err(errno.EISDIR)
        if inode.mode & 0o170000 != stat.S_IFREG:
            raise _err(errno.EINVAL)
        if size < 0:
            raise _err(errno.EINVAL)
        if size > self.max_file_size:
            raise _err(errno.EFBIG)
        self._resize(inode, size)
        inode.mtime_ns = inode.ctime_ns = time.time_ns()
        if self._listeners:
            self._emit("data", inode)

    def _resize(self, inode: Inode, size: int) -> None:
        if size < inode._size:
            if self.tracker is not None:
                self.tracker.cut(inode, size)
            pages = inode.pages
            keep = -(-size // PAGE)             # pages wholly or partly below size
            dead = [i for i in pages if i >= keep]   # allocated pages only: cheap when sparse
            _drop_pages(pages, dead)
            self.pages_used -= len(dead)
            tail = size % PAGE
            if tail:
                page = pages.get(size // PAGE)
                if page is not None:            # zero the cut-off part of the last page
                    page[tail:] = bytes(PAGE - tail)
        inode._size = size
        if inode.cache >= 0:
            os.ftruncate(inode.cache, size)

    # ------------------------------------------------------------------ metadata
    def setattr(self, inode: Inode, *, mode: int | None = None, uid: int | None = None,
                gid: int | None = None, atime_ns: int | None = None,
                mtime_ns: int | None = None, size: int | None = None,
                ctime_ns: int | None = None) -> None:
        if size is not None:
            if inode.mode & 0o170000 == stat.S_IFDIR:
                raise _err(errno.EISDIR)
            if inode.mode & 0o170000 != stat.S_IFREG:
                raise _err(errno.EINVAL)
            if size < 0:
                raise _err(errno.EINVAL)
            if size > self.max_file_size:
                raise _err(errno.EFBIG)
        now = time.time_ns()
        if size is not None:
            self._resize(inode, size)
            inode.mtime_ns = now
        if mode is not None:
            inode.mode = (inode.mode & 0o170000) | (mode & 0o7777)
        if uid is not None and uid != -1:
            inode.uid = uid
        if gid is not None and gid != -1:
            inode.gid = gid
        if atime_ns is not None:
            inode.atime_ns = atime_ns
        if mtime_ns is not None:
            inode.mtime_ns = mtime_ns
        inode.ctime_ns = now if ctime_ns is None else ctime_ns
        if self._listeners:
            self._emit("data" if size is not None else "attr", inode)

    def statfs(self) -> StatFs:
        blocks = max(self.capacity // PAGE, self.pages_used)
        free = blocks - self.pages_used
        ffree = max(self.max_inodes - len(self.inodes), 0)
        return StatFs(f_bsize=PAGE, f_frsize=PAGE, f_blocks=blocks, f_bfree=free,
                      f_bavail=free, f_files=self.max_inodes, f_ffree=ffree,
                      f_favail=ffree, f_flag=0, f_namemax=NAME_MAX)

    # ------------------------------------------------------------------ lifetime
    def pin(self, inode: Inode) -> None:
        """Make ``inode`` a mount point: it cannot be removed or renamed (EBUSY),
        neither by XINIM processes nor through the FUSE export."""
        self.pinned.add(inode)
        self.hold(inode)

    def unpin(self, inode: Inode) -> None:
        if inode in self.pinned:
            self.pinned.discard(inode)
            self.release(inode)

    def hold(self, inode: Inode) -> None:
        inode.holds += 1

    # ------------------------------------------------------------------ shared maps
    def share(self, inode: Inode) -> int:
        """The host memfd that MAP_SHARED maps of ``inode`` map: made on the first
        such map (filled from the pages) and kept for the inode's life.  From then
        on the memfd is the file's data -- reads come from it, writes and size
        changes go to both -- and :meth:`sync_cache` brings the pages (what the
        image, the journal and the FUSE export see) up to date with it."""
        if inode.cache >= 0:
            return inode.cache
        if inode.mode & 0o170000 != stat.S_IFREG:
            raise _err(errno.ENODEV)
        fd = os.memfd_create(f"xinim-ramfs-{inode.ino}", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, inode._size)
            for idx, page in inode.pages.items():
                os.pwrite(fd, page[:max(0, min(PAGE, inode._size - idx * PAGE))], idx * PAGE)
        except OSError:
            os.close(fd)
            raise _err(errno.ENOMEM) from None
        inode.cache = fd
        self.cached.add(inode)
        return fd

    def sync_cache(self, inode: Inode) -> int:
        """Copy what mappers stored into the memfd back into the pages; returns the
        pages that changed."""
        if inode.cache < 0:
            return 0
        changed = 0
        size = inode._size
        pages = inode.pages
        for idx in range(-(-size // PAGE)):
            data = os.pread(inode.cache, PAGE, idx * PAGE)
            page = pages.get(idx)
            if page is None:
                if not any(data):
                    continue
                if (self.pages_used + 1) * PAGE > self.capacity:
                    break
                page = pages[idx] = bytearray(PAGE)
                self.pages_used += 1
            elif page[:len(data)] == data:
                continue
            page[:len(data)] = data
            changed += 1
            if self.tracker is not None:
                self.tracker.wrote(inode, idx, idx)
        if changed:
            inode.mtime_ns = inode.ctime_ns = time.time_ns()
        return changed

    def sync_caches(self) -> int:
        return sum(self.sync_cache(i) for i in list(self.cached))

    def release(self, inode: Inode) -> None:
        if inode.holds <= 0:
            raise ValueError(f"release of {inode!r} without hold")
        inode.holds -= 1
        if inode.holds == 0:
            if inode.cache >= 0:                # the last close: the pages catch up
                self.sync_cache(inode)
            if inode.nlink == 0:
                self._maybe_free(inode)
