"""The XINIM ramfs, mounted on the host with pyfuse3 (on trio).

:class:`RamfsFuse` serves the *very same* :class:`~.ramfs.Ramfs` objects the
VFS server uses: no copy, no sync step.  What a host tool does in the mount is
seen by XINIM processes at once; what XINIM processes do reaches the host
because

* a ramfs listener collects every change that did *not* come through this
  mount (to an inode or name the kernel knows) and a helper task sends the
  matching ``invalidate_entry`` / ``invalidate_inode`` notifications, batched,
  from a worker thread (they can block until a related request is answered,
  so never from a handler and never from the trio thread serving the mount);
* the VFS holds its replies until that batch is out (``Ramfs.after_published``,
  the fence this export registers): the XINIM call that changed something
  returns only once the host kernel has forgotten what it cached;
* so the kernel may cache: names (absent ones too: negative entries) and
  attributes for ``DEFAULT_TIMEOUT`` seconds (a backstop for the few changes no event reports: atime of XINIM
  reads, stores into MAP_SHARED maps) and file pages across opens
  (``keep_cache``, except for files XINIM maps shared, whose memfd changes
  without events), with libfuse's ``auto_inval_data`` turned off
  (:mod:`.fuse_conn`): what the mount's own writes put in the kernel's pages
  is read back from there.  There is no writeback cache: a host write reaches the
  ramfs before write(2) returns, so XINIM sees it at once.

Lookup counts are tracked per inode: while the kernel knows an inode (count >
0) or a handle is open on it, the ramfs keeps it alive through
``Ramfs.hold``/``Ramfs.release`` even after its last name is gone.

pyfuse3 keeps its session in process-global state: **one mount per process**.
:func:`serve_fuse` refuses a second concurrent call.  Never do blocking I/O on
the mount from the trio thread that serves it (it would wait for itself): use
``trio.to_thread.run_sync`` or a subprocess -- and not even from another thread
of this process for anything that faults on mapped pages of the mount while
holding the GIL (``mmap`` slicing): the server needs the GIL to answer.  The
same goes for ``vfork``: CPython before 3.11.4 holds the GIL across it
(gh-104372), so a child spawned with its cwd on the mount (``trio.run_process(...,
cwd=mount)``) would deadlock us; importing this module turns subprocess's vfork
off on those versions (Debian 12's is 3.11.2).  A
process that dies with files of its own mount open hangs in exit (the kernel
sends it FLUSH); ``mountpoint.abort_fuse_connection`` is the cure.

Throughput: libfuse 3 negotiates 1 MiB writes (max_pages 256; pyfuse3 offers
no max_write option and needs none), :func:`serve_fuse` raises the mount's
readahead to 1 MiB so sequential reads arrive as 1 MiB requests too, and
:func:`tune_malloc` stops glibc from handing freed memory back (each
re-faulted 4 KiB page cost as much as copying it).  A big write lands in one
ramfs chunk (one copy), and a read inside one chunk is answered with a slice
of it (no copy of ours: the kernel copies straight from the ramfs).  The
request loop is :mod:`.fuse_loop`'s (no scheduler turn per request while
requests keep coming).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Sequence

import pyfuse3
import trio

from ..lib.errors import SysError
from . import fuse_conn, fuse_loop
from .mountpoint import abort_fuse_connection, mounts_at, prepare_mountpoint
from .ramfs import NAME_MAX, PAGE, Inode, Ramfs, chunk_view

# See the module text: a vfork that holds the GIL must never wait on this mount.
if sys.version_info < (3, 11, 4):
    subprocess._USE_VFORK = False  # type: ignore[attr-defined]

log = logging.getLogger(__name__)

ROOT_INODE: int = pyfuse3.ROOT_INODE
FUSE_OPTIONS: frozenset[str] = frozenset({
    "fsname=xinim", "subtype=xinim",
    # Host-side permission checks by the kernel against our attributes.  Only the
    # mounting user sees the mount unless the caller adds allow_other (as any
    # FUSE daemon: ``-o allow_other``).
    "default_permissions",
})
#: Readahead for the mount (KiB).  The kernel starts FUSE mounts at 128 KiB,
#: so sequential reads arrive in 128 KiB requests; 1 MiB lets one request carry
#: 1 MiB (libfuse 3 already negotiates max_write = max_pages = 1 MiB).
DEFAULT_READ_AHEAD_KB = 1024
#: Entry and attribute timeout (s).  Every change made behind the kernel's
#: back is invalidated before the XINIM call returns, so this only bounds
#: what no event reports (see the module docstring).
DEFAULT_TIMEOUT = 1.0
#: A batch of invalidations that has not gone out after this long (a host
#: process stuck in a request?) stops holding the VFS's replies.
FENCE_PATIENCE = 1.0
_ZERO_PAGE = bytes(PAGE)

_S_IFMT = 0o170000
_BLOCKS_PER_PAGE = PAGE // 512
_KILL_SUID_SGID = stat.S_ISUID | stat.S_ISGID

def _errors(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Make a plain (never waiting) handler the coroutine pyfuse3 awaits,
    turning ramfs errors into FUSE replies; nothing a request does may take
    the server down (a MemoryError answers ENOMEM, a bug EIO).  The handler
    itself is not a coroutine: one coroutine per request, not two."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except SysError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        except MemoryError:
            log.error("out of memory in %s", fn.__name__)
            raise pyfuse3.FUSEError(errno.ENOMEM) from None
        except Exception:
            log.exception("FUSE %s failed", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


@dataclass(slots=True)
class _Handle:
    inode: Inode
    is_dir: bool
    uid: int          # opener's uid: write() carries no context (for kill-suid)
    append: bool = False
    writable: bool = False   # for inotify's IN_CLOSE_WRITE at release


class RamfsFuse(pyfuse3.Operations):
    """pyfuse3 operations over a live :class:`Ramfs`."""

    supports_dot_lookup = True
    enable_writeback_cache = False   # the ramfs changes behind the kernel's back
    enable_acl = False

    def __init__(self, ramfs: Ramfs, *, entry_timeout: float = DEFAULT_TIMEOUT,
                 attr_timeout: float = DEFAULT_TIMEOUT, keep_cache: bool = True,
                 uid: int | None = None, gid: int | None = None) -> None:
        """The kernel caches names, attributes and pages; the VFS's replies
        wait for the invalidations (the fence), so a XINIM call's change is
        seen on the host once the call returns.  A change made straight on
        the Ramfs (tests, the journal) is seen once ``wait_invalidated``
        returns.  Timeouts 0 and ``keep_cache=False`` make the kernel ask on
        every access instead (many more requests)."""
        super().__init__()
        self.fs = ramfs
        # -o uid=N,gid=N: every file shows this owner (libfuse's high-level option)
        self.show_uid = uid
        self.show_gid = gid
        self.entry_timeout = entry_timeout
        self.attr_timeout = attr_timeout
        self.keep_cache = keep_cache
        self._lookups: dict[int, int] = {}       # ino -> kernel lookup count
        self._known: dict[int, Inode] = {}       # ino -> inode, while count > 0
        self._handles: dict[int, _Handle] = {}
        self._next_fh = 1
        # > 0 while a handler changes the ramfs: the kernel already knows what
        # its own request did, so those changes need no invalidation.
        self._local = 0
        # Invalidation state (filled by the listener, drained by _invalidator).
        self._pending_entries: set[tuple[int, bytes]] = set()
        self._pending_inodes: dict[int, bool] = {}   # ino -> data too?
        # The fence: callbacks (held VFS replies) to run once the next batch /
        # the batch in flight is out.
        self._next_waiters: list[Callable[[], None]] = []
        self._flight_waiters: list[Callable[[], None]] | None = None
        self._wakeup: trio.Event | None = None
        self._idle: trio.Event | None = None
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._trio_thread: int | None = None
        self._initialized: trio.Event | None = None
        self._attached = False
        self.auto_inval_data = True    # libfuse's default, until init() drops it
        self.stats = {"invalidate_entry": 0, "invalidate_inode": 0, "batches": 0}

    # ------------------------------------------------------------------ lifetime
    def attach(self) -> None:
        """Start listening to ramfs changes (call inside the trio run)."""
        self._trio_token = trio.lowlevel.current_trio_token()
        self._trio_thread = threading.get_ident()
        self._wakeup = trio.Event()
        self._initialized = trio.Event()
        if not self._attached:
            self.fs.add_listener(self._on_change)
            self.fs.fences.append(self.fence)
            self._attached = True

    def detach(self) -> None:
        if self._attached:
            self.fs.remove_listener(self._on_change)
            self.fs.fences.remove(self.fence)
            self._attached = False
        self._release_waiters()

    def drop_all(self) -> None:
        """After unmount: the kernel will send no more forgets; let go of every
        lookup count and handle so unlinked inodes can be freed."""
        handles, self._handles = self._handles, {}
        for h in handles.values():
            self.fs.release(h.inode)
        known, self._known = self._known, {}
        self._lookups.clear()
        for inode in known.values():
            self.fs.release(inode)

    def init(self) -> None:
        # Called from fuse_init before the INIT reply goes out (trio thread).
        # Explicit invalidation covers every change made behind the kernel's
        # back: the mtime heuristic would only drop pages the mount's own
        # writes filled (fuse_conn).
        self.auto_inval_data = not fuse_conn.drop_auto_inval_data()
        if self._initialized is not None:
            self._initialized.set()

    # ------------------------------------------------------------------ helpers
    def _inode(self, ino: int) -> Inode:
        if ino == ROOT_INODE:
            return self.fs.root
        inode = self._known.get(ino)
        if inode is None:
            inode = self.fs.inodes.get(ino)
            if inode is None:
                raise pyfuse3.FUSEError(errno.ESTALE)
        return inode

    def _attrs(self, inode: Inode) -> pyfuse3.EntryAttributes:
        # Hot (every lookup, getattr, create, readdirplus entry): each field
        # is a setter call, so leave pyfuse3's defaults (generation 0, rdev
        # 0, blksize 4096 == PAGE) alone and read regular files' size and
        # blocks without the properties.
        e = pyfuse3.EntryAttributes()
        e.st_ino = inode.ino
        if inode.generation:
            e.generation = inode.generation
        e.entry_timeout = self.entry_timeout
        e.attr_timeout = self.attr_timeout
        mode = e.st_mode = inode.mode
        e.st_nlink = inode.nlink
        e.st_uid = inode.uid if self.show_uid is None else self.show_uid
        e.st_gid = inode.gid if self.show_gid is None else self.show_gid
        if inode.rdev:
            e.st_rdev = inode.rdev
        if mode & _S_IFMT == stat.S_IFREG:
            e.st_size = inode._size
            e.st_blocks = len(inode.pages) * _BLOCKS_PER_PAGE
        else:
            e.st_size = inode.size
            e.st_blocks = inode.blocks
        e.st_atime_ns = inode.atime_ns
        e.st_mtime_ns = inode.mtime_ns
        e.st_ctime_ns = inode.ctime_ns
        return e

    def _remember(self, inode: Inode) -> pyfuse3.EntryAttributes:
        """The kernel now holds one more lookup reference on ``inode``."""
        ino = inode.ino
        n = self._lookups.get(ino, 0)
        if n == 0:
            self.fs.hold(inode)
            self._known[ino] = inode
        self._lookups[ino] = n + 1
        return self._attrs(inode)

    def _new_fh(self, inode: Inode, is_dir: bool, uid: int, append: bool = False,
                flags: int = os.O_RDONLY) -> int:
        fh = self._next_fh
        self._next_fh = fh + 1
        self.fs.hold(inode)   # an open handle keeps an unlinked inode alive
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        self._handles[fh] = _Handle(inode, is_dir, uid, append, writable)
        self.fs.accessed("open", inode)
        return fh

    def _keep(self, inode: Inode) -> bool:
        """May the kernel keep the pages it cached before this open?  Every
        ramfs write invalidates them, but stores into a XINIM MAP_SHARED map
        land in the memfd without an event: such files are reread per open."""
        return self.keep_cache and inode.cache < 0

    def _handle(self, fh: int) -> _Handle:
        h = self._handles.get(fh)
        if h is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return h

    def _kill_priv(self, inode: Inode, uid: int) -> None:
        """libfuse 3 negotiates HANDLE_KILLPRIV: the filesystem, not the kernel,
        drops set-user-ID (and set-group-ID with group exec) when a non-root
        caller writes or truncates."""
        if uid == 0 or inode.mode & _S_IFMT != stat.S_IFREG:
            return
        kill = stat.S_ISUID
        if inode.mode & stat.S_IXGRP:
            kill |= stat.S_ISGID
        if inode.mode & kill:
            self.fs.setattr(inode, mode=inode.mode & 0o7777 & ~kill)

    # ------------------------------------------------------------------ names
    @_errors
    def lookup(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        parent = self._inode(parent_inode)
        inode = parent.entries.get(name)
        if inode is None:
            if (self.entry_timeout and parent.mode & _S_IFMT == stat.S_IFDIR
                    and len(name) <= NAME_MAX and name != b"." and name != b".."):
                return self._miss()            # Ramfs.lookup's ENOENT, without raising
            try:
                inode = self.fs.lookup(parent, name)
            except SysError as e:
                if e.errno != errno.ENOENT or not self.entry_timeout:
                    raise
                return self._miss()
        return self._remember(inode)

    def _miss(self) -> pyfuse3.EntryAttributes:
        # A negative entry the kernel may cache (PATH and import searches
        # ask again and again): a create in XINIM invalidates the name.
        miss = pyfuse3.EntryAttributes()
        miss.st_ino = 0
        miss.entry_timeout = self.entry_timeout
        return miss

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        # Must not raise: it answers no request.
        for ino, nlookup in inode_list:
            n = self._lookups.get(ino, 0) - nlookup
            if n > 0:
                self._lookups[ino] = n
                continue
            if n < 0:
                log.warning("forget(%d, %d) below zero", ino, nlookup)
            self._lookups.pop(ino, None)
            inode = self._known.pop(ino, None)
            if inode is not None:
                try:
                    self.fs.release(inode)
                except Exception:
                    log.exception("release of inode %d failed", ino)

    @_errors
    def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(self._inode(inode))

    @_errors
    def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self._inode(inode) if fh is None else self._handle(fh).inode
        kw: dict[str, int] = {}
        if fields.update_size:
            kw["size"] = attr.st_size
        if fields.update_mode:
            kw["mode"] = attr.st_mode & 0o7777
        if fields.update_uid:
            kw["uid"] = attr.st_uid
        if fields.update_gid:
            kw["gid"] = attr.st_gid
        if fields.update_atime:
            kw["atime_ns"] = attr.st_atime_ns
        if fields.update_mtime:
            kw["mtime_ns"] = attr.st_mtime_ns
        if node.mode & _S_IFMT == stat.S_IFREG and "mode" not in kw:
            # HANDLE_KILLPRIV (see _kill_priv): chown drops set-ID bits for
            # everyone, truncate for non-root callers, as Linux does.
            chown = ("uid" in kw and kw["uid"] != node.uid) or (
                "gid" in kw and kw["gid"] != node.gid)
            if chown or ("size" in kw and ctx.uid != 0):
                kill = stat.S_ISUID | (stat.S_ISGID if node.mode & stat.S_IXGRP else 0)
                if node.mode & kill:
                    kw["mode"] = node.mode & 0o7777 & ~kill
        self._local += 1
        try:
            self.fs.setattr(node, **kw)
        finally:
            self._local -= 1
        return self._attrs(node)

    @_errors
    def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        node = self._inode(inode)
        if node.mode & _S_IFMT != stat.S_IFLNK:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return node.target

    @_errors
    def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._local += 1
        try:
            inode = self.fs.mknod(self._inode(parent_inode), name, mode, ctx.uid, ctx.gid, rdev)
        finally:
            self._local -= 1
        return self._remember(inode)

    @_errors
    def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._local += 1
        try:
            inode = self.fs.mkdir(self._inode(parent_inode), name, mode, ctx.uid, ctx.gid)
        finally:
            self._local -= 1
        return self._remember(inode)

    @_errors
    def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._local += 1
        try:
            inode = self.fs.symlink(self._inode(parent_inode), name, target, ctx.uid, ctx.gid)
        finally:
            self._local -= 1
        return self._remember(inode)

    @_errors
    def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self._inode(inode)
        self._local += 1
        try:
            self.fs.link(node, self._inode(new_parent_inode), new_name)
        finally:
            self._local -= 1
        return self._remember(node)

    @_errors
    def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        # The inode itself lives on while the kernel's lookup count or a
        # handle holds it (ramfs.hold); forget/release let it go.
        self._local += 1
        try:
            self.fs.unlink(self._inode(parent_inode), name)
        finally:
            self._local -= 1

    @_errors
    def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._local += 1
        try:
            self.fs.rmdir(self._inode(parent_inode), name)
        finally:
            self._local -= 1

    @_errors
    def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        # pyfuse3.RENAME_* are the Linux values, which the ramfs uses too.
        self._local += 1
        try:
            self.fs.rename(self._inode(parent_inode_old), name_old,
                           self._inode(parent_inode_new), name_new, flags)
        finally:
            self._local -= 1

    # ------------------------------------------------------------------ files
    @_errors
    def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        parent = self._inode(parent_inode)
        self._local += 1
        try:
            try:
                inode = self.fs.mknod(parent, name, stat.S_IFREG | (mode & 0o7777),
                                      ctx.uid, ctx.gid)
            except SysError as e:
                # Lost a race with a XINIM process creating the same name:
                # without O_EXCL, open what is there (as open(2) would).
                if e.errno != errno.EEXIST or flags & os.O_EXCL:
                    raise
                inode = self.fs.lookup(parent, name)
                if inode.mode & _S_IFMT == stat.S_IFDIR:
                    raise SysError(errno.EISDIR) from None
                if flags & os.O_TRUNC and inode.mode & _S_IFMT == stat.S_IFREG:
                    self.fs.truncate(inode, 0)
        finally:
            self._local -= 1
        fh = self._new_fh(inode, False, ctx.uid, bool(flags & os.O_APPEND), flags)
        return pyfuse3.FileInfo(fh=fh, keep_cache=self._keep(inode)), self._remember(inode)

    @_errors
    def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self._inode(inode)
        if node.mode & _S_IFMT == stat.S_IFDIR and flags & os.O_ACCMODE != os.O_RDONLY:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if flags & os.O_TRUNC and node.mode & _S_IFMT == stat.S_IFREG:
            # libfuse 3 negotiates atomic O_TRUNC: the truncation is ours.
            self._local += 1
            try:
                self.fs.truncate(node, 0)
                self._kill_priv(node, ctx.uid)
            finally:
                self._local -= 1
        fh = self._new_fh(node, False, ctx.uid, bool(flags & os.O_APPEND), flags)
        return pyfuse3.FileInfo(fh=fh, keep_cache=self._keep(node))

    @_errors
    def read(self, fh: int, off: int, size: int) -> bytes | memoryview:
        h = self._handles.get(fh)
        if h is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        inode = h.inode
        if inode.mode & _S_IFMT != stat.S_IFREG:
            return self.fs.read(inode, off, size)
        data = _read_pages(inode, off, size)
        if data:
            self.fs.accessed("access", inode)    # inotify's IN_ACCESS
        return data

    @_errors
    def write(self, fh: int, off: int, buf: bytes) -> int:
        h = self._handles.get(fh)
        if h is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        inode = h.inode
        if h.append and off != inode.size:
            # The kernel computed the append offset from a size it cached
            # before a XINIM process appended: append at the real end, and
            # drop the pages the kernel filled in at the wrong place.
            off = inode.size
            self._pending_inodes[inode.ino] = True
            if self._wakeup is not None:
                self._wakeup.set()
        self._local += 1
        try:
            n = self.fs.write(inode, off, buf)
            if inode.mode & _KILL_SUID_SGID:
                self._kill_priv(inode, h.uid)
                self._pending_inodes.setdefault(inode.ino, False)   # the mode it caches
                if self._wakeup is not None:
                    self._wakeup.set()
        finally:
            self._local -= 1
        return n

    async def flush(self, fh: int) -> None:
        # Nothing to do at close: ENOSYS makes the kernel stop sending FLUSH
        # (one request fewer per close; locks are the kernel's own).
        raise pyfuse3.FUSEError(errno.ENOSYS)

    @_errors
    def release(self, fh: int) -> None:
        self._drop_handle(fh)

    def _drop_handle(self, fh: int) -> None:
        h = self._handles.pop(fh, None)
        if h is not None:
            self.fs.accessed("close-write" if h.writable else "close-nowrite", h.inode)
            self.fs.release(h.inode)

    async def fsync(self, fh: int, datasync: bool) -> None:
        return None   # nothing below memory; the image is saved separately

    # ------------------------------------------------------------------ dirs
    @_errors
    def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self._inode(inode)
        if node.mode & _S_IFMT != stat.S_IFDIR:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return self._new_fh(node, True, ctx.uid)

    @_errors
    def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        # Offsets are the ramfs's per-directory cookies (never reused, stable
        # while other entries come and go); '.' and '..' are 1 and 2.
        d = self._handle(fh).inode
        if start_id < 1:
            if not pyfuse3.readdir_reply(token, b".", self._attrs(d), 1):
                return
        if start_id < 2:
            # The kernel takes no lookup reference for '.' and '..' entries.
            if not pyfuse3.readdir_reply(token, b"..", self._attrs(d.parent or d), 2):
                return
        for cookie, name, inode in self.fs.readdir_from(d, max(start_id, 2)):
            if not pyfuse3.readdir_reply(token, name, self._attrs(inode), cookie):
                return
            self._remember(inode)   # readdirplus: the entry's lookup count went up

    @_errors
    def releasedir(self, fh: int) -> None:
        self._drop_handle(fh)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None

    @_errors
    def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = self.fs.statfs()
        out = pyfuse3.StatvfsData()
        out.f_bsize = s.f_bsize
        out.f_frsize = s.f_frsize
        out.f_blocks = s.f_blocks
        out.f_bfree = s.f_bfree
        out.f_bavail = s.f_bavail
        out.f_files = s.f_files
        out.f_ffree = s.f_ffree
        out.f_favail = s.f_favail
        out.f_namemax = NAME_MAX   # 255: tools derive NAME_MAX/PATH_MAX from it
        return out

    # ------------------------------------------------------------------ invalidation
    def _on_change(self, event: str, inode: Inode, parent: Inode | None,
                   name: bytes | None) -> None:
        """Ramfs listener: remember what the kernel must forget.  Cheap and
        synchronous; the notifications go out later from a worker thread."""
        if self._local:
            return   # made by a request of this mount: the kernel knows
        if self._trio_thread is not None and threading.get_ident() != self._trio_thread:
            assert self._trio_token is not None
            self._trio_token.run_sync_soon(self._record, event, inode, parent, name)
            return
        self._record(event, inode, parent, name)

    def _record(self, event: str, inode: Inode, parent: Inode | None,
                name: bytes | None) -> None:
        # Only what the kernel knows needs telling: it learns anything else
        # from a later lookup, after the change.  (A reply in flight was made
        # after _remember counted the inode, so it is known here.)
        known = self._lookups
        if event == "free":
            self._pending_inodes.pop(inode.ino, None)
            return
        ino = inode.ino
        added = False
        if parent is not None and name is not None:
            pino = parent.ino
            if pino == ROOT_INODE or pino in known:
                self._pending_entries.add((pino, name))
                self._pending_inodes.setdefault(pino, False)   # mtime, nlink, size
                added = True
            if ino in known:
                self._pending_inodes.setdefault(ino, False)    # nlink, ctime
                added = True
        elif ino in known or ino == ROOT_INODE:
            if event == "data":
                self._pending_inodes[ino] = True
            else:
                self._pending_inodes.setdefault(ino, False)
            added = True
        if added and self._wakeup is not None:
            self._wakeup.set()

    def _take_batch(self) -> tuple[list[tuple[int, bytes]], list[tuple[int, bool]]]:
        known = self._lookups
        entries = [(p, n) for p, n in self._pending_entries
                   if p == ROOT_INODE or p in known]
        inodes = [(i, d) for i, d in self._pending_inodes.items()
                  if i == ROOT_INODE or i in known]
        self._pending_entries.clear()
        self._pending_inodes.clear()
        return entries, inodes

    def _send_batch(self, entries: list[tuple[int, bytes]],
                    inodes: list[tuple[int, bool]]) -> None:
        # Worker thread.  ENOENT means the kernel dropped it already: fine.
        for parent, name in entries:
            try:
                pyfuse3.invalidate_entry(parent, name)
                self.stats["invalidate_entry"] += 1
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                    log.debug("invalidate_entry(%d, %r): %s", parent, name, e)
        for ino, data in inodes:
            try:
                pyfuse3.invalidate_inode(ino, attr_only=not data)
                self.stats["invalidate_inode"] += 1
            except OSError as e:
                if e.errno != errno.ENOENT:
                    log.debug("invalidate_inode(%d): %s", ino, e)

    # ------------------------------------------------------------------ the fence
    def fence(self, then: Callable[[], None]) -> bool:
        """Ramfs fence (see Ramfs.after_published): hold ``then`` until every
        change recorded so far has been sent to the kernel."""
        if not self._attached or self._trio_thread is None:
            return False
        if self._pending_entries or self._pending_inodes:
            self._next_waiters.append(then)          # goes out with the next batch
            return True
        if self._flight_waiters is not None:
            self._flight_waiters.append(then)        # may be in the batch in flight
            return True
        return False

    def _release_waiters(self) -> None:
        """Run every held callback (the export stops: nothing will be sent)."""
        waiters = (self._flight_waiters or []) + self._next_waiters
        self._flight_waiters = None
        self._next_waiters = []
        _run_all(waiters)

    async def _invalidator(self) -> None:
        assert self._wakeup is not None
        self._idle = trio.Event()
        self._idle.set()
        async with trio.open_nursery() as nursery:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                await trio.sleep(0)   # let changes of the same moment join the batch
                entries, inodes = self._take_batch()
                waiters, self._next_waiters = self._next_waiters, []
                if not entries and not inodes:
                    _run_all(waiters)
                    continue
                self.stats["batches"] += 1
                self._flight_waiters = waiters
                done = trio.Event()
                self._idle = trio.Event()
                nursery.start_soon(self._send, entries, inodes, done)
                with trio.move_on_after(FENCE_PATIENCE):
                    await done.wait()
                if not done.is_set():
                    log.warning("FUSE invalidations not out after %.1f s: the VFS's "
                                "replies go on without them", FENCE_PATIENCE)
                held, self._flight_waiters = self._flight_waiters or [], None
                _run_all(held)
                await done.wait()

    async def _send(self, entries: list[tuple[int, bytes]], inodes: list[tuple[int, bool]],
                    done: trio.Event) -> None:
        assert self._idle is not None
        idle = self._idle
        try:
            # Not abandonable: the thread must be done before the session
            # is closed (serve_fuse aborts the connection if it hangs).
            await trio.to_thread.run_sync(self._send_batch, entries, inodes)
        finally:
            idle.set()
            done.set()

    async def wait_invalidated(self) -> None:
        """Wait until every change recorded so far has been sent to the kernel
        (for tests and for callers that change the Ramfs directly)."""
        done = trio.Event()
        if self.fence(done.set):
            await done.wait()

    async def _tune_read_ahead(self, mountpoint: Path, kb: int) -> None:
        assert self._initialized is not None
        await self._initialized.wait()
        await trio.sleep(0)   # the INIT reply (which caps readahead) is out by now
        for e in mounts_at(mountpoint):
            if not e.is_fuse:
                continue
            p = Path(f"/sys/class/bdi/{e.major}:{e.minor}/read_ahead_kb")
            try:
                p.write_text(str(kb))
                log.debug("read_ahead_kb of %s set to %d", mountpoint, kb)
            except OSError as err:
                log.debug("cannot set %s: %s", p, err)


def _read_pages(inode: Inode, off: int, size: int) -> bytes | memoryview:
    """Read a regular file straight from its pages: a slice of the chunk
    that holds the whole range (no copy: pyfuse3 replies from any buffer,
    before anything can change it), else one copy (b"".join); the same
    semantics as Ramfs.read (relatime included)."""
    end = min(off + size, inode.size)
    if off >= end:
        if off < 0 or size < 0:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return b""
    if inode.atime_ns <= inode.mtime_ns:   # relatime, as Ramfs.read
        inode.atime_ns = time.time_ns()
    if inode.cache >= 0:                   # mapped shared in XINIM: the memfd is current
        data = os.pread(inode.cache, end - off, off)
        return data + bytes(end - off - len(data))
    pages = inode.pages
    first, poff = divmod(off, PAGE)
    last = (end - 1) // PAGE
    if first == last:
        page = pages.get(first)
        if page is None:
            return bytes(end - off)
        return bytes(page[poff:poff + end - off])
    view = chunk_view(inode, off, end)
    if view is not None:
        return view
    get = pages.get
    parts: list[Any] = [get(i, _ZERO_PAGE) for i in range(first, last + 1)]
    if poff:
        parts[0] = memoryview(parts[0])[poff:]
    tail = end - last * PAGE
    if tail < PAGE:
        parts[-1] = memoryview(parts[-1])[:tail]
    return b"".join(parts)


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for fn in callbacks:
        try:
            fn()
        except Exception:  # a held reply must never take the export down
            log.exception("held reply failed")


_serving = False
_malloc_tuned = False


def tune_malloc() -> bool:
    """Keep freed memory in this process instead of handing it back to the
    kernel (and serve 1 MiB request buffers from the heap, not fresh mmaps).

    Each 4 KiB page the ramfs allocates from memory glibc had returned to the
    kernel costs a page fault; with the defaults a 1 MiB FUSE write spent
    about as long faulting as copying.  Process-wide and one-way: RSS stays
    at its high-water mark, as a ramfs's would anyway.  True when applied."""
    global _malloc_tuned
    if _malloc_tuned:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
        ok = (libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1
              and libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1
              and libc.mallopt(M_TOP_PAD, 16 << 20) == 1)
    except (OSError, AttributeError):
        ok = False
    _malloc_tuned = ok
    log.debug("malloc tuning %s", "applied" if ok else "unavailable")
    return ok


async def serve_fuse(ramfs: Ramfs, mountpoint: str | os.PathLike[str] | None = None, *,
                     task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
                     options: Iterable[str] = (),
                     read_ahead_kb: int | None = DEFAULT_READ_AHEAD_KB,
                     entry_timeout: float = DEFAULT_TIMEOUT,
                     attr_timeout: float = DEFAULT_TIMEOUT,
                     keep_cache: bool = True, malloc_tuning: bool = True,
                     ops: RamfsFuse | None = None, uid: int | None = None,
                     gid: int | None = None, spin_s: float = fuse_loop.SPIN_S) -> None:
    """Mount ``ramfs`` at ``mountpoint`` (default: the per-user runtime
    directory) and serve it in the current trio task until cancelled or
    unmounted from outside (``fusermount3 -u``).

    ``task_status.started(path)`` reports the mount directory once mounted.
    ``malloc_tuning`` applies :func:`tune_malloc` (process-wide).  The
    request loop polls /dev/fuse for ``spin_s`` before it sleeps
    (:mod:`.fuse_loop`; 0: never).  ``options``
    are FUSE mount options (``allow_other``, ``ro``...); ``uid``/``gid`` show
    every file with that owner.
    A dead mount left at the place by a crashed run is detached first.  On
    return, cancellation or error the mount is removed (``finally``) and every
    inode reference the kernel held is released.  One call per process at a
    time (pyfuse3's session is global); cancel this task on SIGINT/SIGTERM.
    """
    global _serving
    if _serving:
        raise RuntimeError("pyfuse3 serves one mount per process; one is active already")
    _serving = True
    try:
        mp = await trio.to_thread.run_sync(prepare_mountpoint, mountpoint)
        if malloc_tuning:
            tune_malloc()
        if ops is None:
            ops = RamfsFuse(ramfs, entry_timeout=entry_timeout, attr_timeout=attr_timeout,
                            keep_cache=keep_cache, uid=uid, gid=gid)
        opts = set(pyfuse3.default_options) | FUSE_OPTIONS | set(options)
        ops.attach()
        try:
            try:
                pyfuse3.init(ops, str(mp), opts)
            except RuntimeError as e:
                if "mount" in str(e):
                    pyfuse3.close(unmount=False)   # session made, mount failed
                raise RuntimeError(f"cannot mount the xinim FUSE export at {mp}: {e}") from e
            log.info("ramfs mounted at %s", mp)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(ops._invalidator, name="xinim-fuse-invalidator")
                    if read_ahead_kb:
                        nursery.start_soon(ops._tune_read_ahead, mp, read_ahead_kb)
                    task_status.started(mp)
                    try:
                        # One worker task: no handler ever waits, so a second
                        # only costs a lock hand-off per request.
                        fuse_loop.install(spin_s=spin_s)
                        try:
                            await pyfuse3.main(min_tasks=1, max_tasks=1)
                        finally:
                            fuse_loop.uninstall()
                        log.info("FUSE session at %s ended (unmounted from outside?)", mp)
                    finally:
                        with trio.CancelScope(shield=True):
                            await _stop_helpers(ops, nursery, mp)
            finally:
                ops.detach()
                pyfuse3.close(unmount=True)
                log.info("ramfs unmounted from %s", mp)
        finally:
            ops.detach()
            ops.drop_all()
    finally:
        _serving = False


async def _stop_helpers(ops: RamfsFuse, nursery: trio.Nursery, mp: Path) -> None:
    """main() stopped answering requests.  A batch of notifications in flight
    may wait for a request nobody will answer now: give it a moment, then
    abort the connection (every pending request fails, the thread returns)."""
    nursery.cancel_scope.cancel()
    idle = ops._idle
    if idle is None or idle.is_set():
        return
    with trio.move_on_after(1.0):
        await idle.wait()
    if not idle.is_set():
        log.warning("invalidation thread stuck at shutdown; aborting the FUSE connection")
        abort_fuse_connection(mp)
        with trio.move_on_after(5.0):
            await idle.wait()
        if not idle.is_set():
            log.error("invalidation thread still blocked after abort; shutdown will wait for it")
