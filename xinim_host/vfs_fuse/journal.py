"""Durability of the ramfs under ``--image``: snapshot + write-ahead log.

On disk, next to the image ``FILE``:

* ``FILE`` -- a snapshot (image.py format), written whole by a *checkpoint*:
  temp file, fsync, rename, fsync of the directory;
* ``FILE.wal`` -- the log of what changed since that snapshot::

      header  b"XINIMWAL" u16 version u16 0 u32 page_size  digest[32]
      record  u32 length  u64 seq  payload[length]  sum[32]

  ``digest`` is the snapshot's own BLAKE2b: a log applies to that snapshot only
  (a crash between a checkpoint's rename of the image and the one of its fresh
  log leaves an old log that no longer matches, and is ignored: the new image
  holds all of it).  ``sum`` is BLAKE2b-256 keyed with ``digest`` over length,
  seq and payload; ``seq`` counts from 1.  Replay applies records in order and
  stops at the first one that is short (a torn tail) or whose sum or seq is
  wrong; nothing after it is used.

A record is *state*, not operations: the current attributes (and size, and the
smallest size the file was cut to) of every inode changed since the last
record, its changed pages, and, for every directory name created or removed,
what that name is now (an inode id, or nothing).  Inode ids are the session's
ramfs inode numbers; the checkpoint names inodes the same way, and every start
replays and then checkpoints at once, so ids never mix sessions.  Applying
records in order to the snapshot gives the tree as it was when the last whole
record was taken -- a consistent moment of the ramfs, since records are taken
on the trio thread between two changes.

Writers: ``fsync``/``fdatasync``/``syncfs``/``sync``/``msync(MS_SYNC)`` of a
ramfs file call :meth:`Journal.sync`, which appends a record of everything
changed so far and returns once it is fdatasync'd; a background task does the
same every :data:`FLUSH_INTERVAL` seconds while something changed.  File I/O runs
in a worker thread (the ramfs is read only on the trio thread).
"""
from __future__ import annotations

import errno
import glob
import hashlib
import logging
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import trio

from ..lib.errors import SysError
from . import image as img
from .ramfs import MAX_FILE_SIZE, PAGE, Inode, Ramfs

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5          # s: the background flush; the README promises <= 1 s of loss
EARLY_FLUSH_BYTES = 16 << 20  # dirty pages past this wake the flusher early
CHECKPOINT_MIN = 64 << 20     # the log is folded into a new snapshot past max(this, image size)
MAX_RECORD = 1 << 31          # a length above this is garbage, not a record

WAL_MAGIC = b"XINIMWAL"
WAL_VERSION = 1
_WAL_HEADER = struct.Struct("<8sHHI32s")
_FRAME = struct.Struct("<IQ")             # payload length, sequence number
_SUM = 32
_COUNT = struct.Struct("<I")
_INODE = struct.Struct("<Q")              # id, then image._ATTRS, then per type
_REG = struct.Struct("<QQ")               # cut, size
_U32 = struct.Struct("<I")
_PAGE_REF = struct.Struct("<QQ")          # id, page index (PAGE bytes follow)
_ENTRY = struct.Struct("<QH")             # directory id, name length (name, u64 child follow)
_ID = struct.Struct("<Q")
_NO_CHILD = 0                             # ramfs inode numbers start at 1


class WalError(Exception):
    """A log record that cannot be applied (replay stops before it)."""


def wal_path(image: str | os.PathLike[str]) -> Path:
    return Path(str(image) + ".wal")


def _sum(key: bytes, frame: bytes, payload: bytes | memoryview) -> bytes:
    h = hashlib.blake2b(digest_size=_SUM, key=key, person=b"xinim-wal-v1")
    h.update(frame)
    h.update(payload)
    return h.digest()


def frame_record(key: bytes, seq: int, payload: bytes) -> bytes:
    head = _FRAME.pack(len(payload), seq)
    return head + payload + _sum(key, head, payload)


def wal_header(digest: bytes) -> bytes:
    return _WAL_HEADER.pack(WAL_MAGIC, WAL_VERSION, 0, PAGE, digest)


# ------------------------------------------------------------------ dirty state
@dataclass
class Tracker:
    """What changed since the last record (fed by ramfs events and hooks)."""

    ramfs: Ramfs
    inodes: dict[int, Inode] = field(default_factory=dict)
    pages: dict[int, set[int]] = field(default_factory=dict)
    cuts: dict[int, int] = field(default_factory=dict)
    names: dict[int, tuple[Inode, set[bytes]]] = field(default_factory=dict)
    dirty_pages: int = 0
    wake: trio.Event | None = None        # set when dirty_pages passes EARLY_FLUSH_BYTES

    def attach(self) -> None:
        self.ramfs.add_listener(self.event)
        self.ramfs.tracker = self

    def detach(self) -> None:
        if self.ramfs.tracker is self:
            self.ramfs.tracker = None
        try:
            self.ramfs.remove_listener(self.event)
        except ValueError:
            pass

    def __bool__(self) -> bool:
        return bool(self.inodes or self.names)

    def clear(self) -> None:
        self.inodes, self.pages, self.cuts, self.names = {}, {}, {}, {}
        self.dirty_pages = 0

    # -- ramfs hooks --
    def event(self, what: str, inode: Inode, parent: Inode | None, name: bytes | None) -> None:
        ino = inode.ino
        if what == "free":
            self.inodes.pop(ino, None)
            self.pages.pop(ino, None)
            self.cuts.pop(ino, None)
            self.names.pop(ino, None)
            return
        self.inodes[ino] = inode
        if parent is not None and name is not None:      # create / remove
            self.inodes[parent.ino] = parent
            slot = self.names.get(parent.ino)
            if slot is None:
                self.names[parent.ino] = (parent, {name})
            else:
                slot[1].add(name)

    def wrote(self, inode: Inode, first: int, last: int) -> None:
        s = self.pages.get(inode.ino)
        if s is None:
            s = self.pages[inode.ino] = set()
        before = len(s)
        s.update(range(first, last + 1))
        self.dirty_pages += len(s) - before
        if self.wake is not None and self.dirty_pages * PAGE >= EARLY_FLUSH_BYTES:
            self.wake.set()

    def cut(self, inode: Inode, size: int) -> None:
        old = self.cuts.get(inode.ino)
        self.cuts[inode.ino] = size if old is None else min(old, size)

    # -- a record of it all --
    def take(self) -> bytes:
        """The record payload of everything changed (and forget it).  Inodes no
        longer linked anywhere are left out: no later change can link them."""
        live = self.ramfs.inodes
        out: list[bytes] = []
        n = 0
        parts: list[bytes] = []
        for ino, inode in self.inodes.items():
            if live.get(ino) is not inode or inode.nlink == 0:
                continue
            n += 1
            parts.append(_INODE.pack(ino) + img._attrs(inode))
            fmt = inode.mode & 0o170000
            if fmt == stat.S_IFREG:
                size = inode.size
                parts.append(_REG.pack(min(self.cuts.get(ino, size), size), size))
            elif fmt == stat.S_IFLNK:
                parts.append(_U32.pack(len(inode.target)) + inode.target)
        out.append(_COUNT.pack(n))
        out += parts
        parts = []
        n = 0
        for ino, idxs in self.pages.items():
            inode = live.get(ino)
            if inode is None or inode.nlink == 0 or ino not in self.inodes:
                continue
            pages = inode.pages
            for idx in sorted(idxs):
                page = pages.get(idx)
                if page is None:                 # cut off since: the size says so
                    continue
                n += 1
                parts.append(_PAGE_REF.pack(ino, idx))
                parts.append(bytes(page))
        out.append(_COUNT.pack(n))
        out += parts
        parts = []
        n = 0
        for ino, (d, names) in self.names.items():
            if live.get(ino) is not d or d.nlink == 0:
                continue
            for name in sorted(names):
                child = d.entries.get(name)
                n += 1
                parts.append(_ENTRY.pack(ino, len(name)) + name
                             + _ID.pack(_NO_CHILD if child is None else child.ino))
        out.append(_COUNT.pack(n))
        out += parts
        self.clear()
        return b"".join(out)


# ------------------------------------------------------------------ replay
@dataclass
class _Rec:
    inodes: list[tuple[int, tuple[int, ...], tuple[int, int] | bytes | None]]
    pages: list[tuple[int, int, memoryview]]
    entries: list[tuple[int, bytes, int]]


def _parse(payload: bytes) -> _Rec:
    mv = memoryview(payload)
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        if pos + n > len(mv):
            raise WalError("record shorter than its contents")
        b = mv[pos:pos + n]
        pos += n
        return b

    rec = _Rec([], [], [])
    (n,) = _COUNT.unpack(take(_COUNT.size))
    for _ in range(n):
        (iid,) = _INODE.unpack(take(_INODE.size))
        attrs = img._ATTRS.unpack(take(img._ATTRS.size))
        fmt = attrs[0] & 0o170000
        extra: tuple[int, int] | bytes | None = None
        if fmt == stat.S_IFREG:
            extra = _REG.unpack(take(_REG.size))
        elif fmt == stat.S_IFLNK:
            (tlen,) = _U32.unpack(take(_U32.size))
            extra = bytes(take(tlen))
        rec.inodes.append((iid, attrs, extra))
    (n,) = _COUNT.unpack(take(_COUNT.size))
    for _ in range(n):
        iid, idx = _PAGE_REF.unpack(take(_PAGE_REF.size))
        rec.pages.append((iid, idx, take(PAGE)))
    (n,) = _COUNT.unpack(take(_COUNT.size))
    for _ in range(n):
        did, namelen = _ENTRY.unpack(take(_ENTRY.size))
        name = bytes(take(namelen))
        (child,) = _ID.unpack(take(_ID.size))
        rec.entries.append((did, name, child))
    if pos != len(mv):
        raise WalError("bytes after the record's contents")
    return rec


def _check(rec: _Rec, by_id: dict[int, Inode]) -> None:
    """Everything the record names exists and has the right type: applying it
    cannot fail half-way (but for ENOSPC)."""
    new: dict[int, int] = {}

    def fmt_of(iid: int) -> int | None:
        inode = by_id.get(iid)
        return inode.mode & 0o170000 if inode is not None else new.get(iid)

    for iid, attrs, _ in rec.inodes:
        fmt = attrs[0] & 0o170000
        known = fmt_of(iid)
        if iid == _NO_CHILD or (known is not None and known != fmt):
            raise WalError(f"inode {iid} changes type")
        new[iid] = fmt
    for iid, idx, _ in rec.pages:
        if fmt_of(iid) != stat.S_IFREG or (idx + 1) * PAGE > MAX_FILE_SIZE:
            raise WalError(f"page {idx} of {iid}, which is no regular file")
    for did, name, child in rec.entries:
        if fmt_of(did) != stat.S_IFDIR:
            raise WalError(f"entry {name!r} in {did}, which is no directory")
        if not name or len(name) > 255 or b"/" in name or b"\0" in name or name in (b".", b".."):
            raise WalError(f"bad name {name!r}")
        if child != _NO_CHILD and fmt_of(child) is None:
            raise WalError(f"entry {name!r} names unknown inode {child}")


def apply_record(ramfs: Ramfs, by_id: dict[int, Inode], payload: bytes) -> None:
    """Apply one record to ``ramfs`` (ids -> inodes in ``by_id``, updated).
    Raises WalError, before changing anything, for a record that does not fit.
    Link counts and parents are left for :func:`fix_links`."""
    rec = _parse(payload)
    _check(rec, by_id)
    for iid, attrs, extra in rec.inodes:
        mode, uid, gid, rdev = attrs[0], attrs[1], attrs[2], attrs[3]
        inode = by_id.get(iid)
        if inode is None:
            try:
                inode = ramfs._new_inode(mode, uid, gid, rdev)
            except SysError as e:
                raise WalError(f"no room for inode {iid}") from e
            inode.nlink = 0                         # fix_links counts the names
            by_id[iid] = inode
        inode.mode, inode.uid, inode.gid, inode.rdev = mode, uid, gid, rdev
        if isinstance(extra, bytes):
            inode.target = extra
        elif extra is not None and extra[0] < inode.size:
            ramfs._resize(inode, extra[0])          # truncated since the last record
    for iid, idx, data in rec.pages:
        try:
            ramfs.write(by_id[iid], idx * PAGE, data)
        except SysError as e:
            raise WalError(f"page {idx} of inode {iid}: {e}") from e
    for iid, attrs, extra in rec.inodes:
        inode = by_id[iid]
        if isinstance(extra, tuple):
            ramfs._resize(inode, extra[1])          # zeroes the tail past size
        inode.atime_ns, inode.mtime_ns, inode.ctime_ns = attrs[4], attrs[5], attrs[6]
    for did, name, child in rec.entries:
        d = by_id[did]
        if name in d.entries:
            d._del_entry(name)
        if child != _NO_CHILD:
            d._add_entry(name, by_id[child])


def fix_links(ramfs: Ramfs) -> None:
    """After replay: link counts and parents from the tree itself; inodes no
    name reaches are dropped (a directory reached twice keeps its first name)."""
    root = ramfs.root
    root.parent = root
    links: dict[int, int] = {}
    seen_dirs = {root.ino}
    stack = [root]
    while stack:
        d = stack.pop()
        subdirs = 0
        for name, child in list(d.entries.items()):
            if child.mode & 0o170000 == stat.S_IFDIR:
                if child.ino in seen_dirs:
                    d._del_entry(name)
                    continue
                seen_dirs.add(child.ino)
                child.parent = d
                subdirs += 1
                stack.append(child)
            else:
                links[child.ino] = links.get(child.ino, 0) + 1
        d.nlink = 2 + subdirs
    for ino, inode in list(ramfs.inodes.items()):
        n = links.get(ino)
        if n is not None:
            inode.nlink = n
        elif ino not in seen_dirs:
            del ramfs.inodes[ino]
            ramfs.pages_used -= len(inode.pages)
            inode.pages, inode.entries, inode.nlink = {}, {}, 0


@dataclass
class ReplayResult:
    records: int = 0
    stopped: str = ""        # why replay stopped before the end of the log ("" = clean)
    dropped_bytes: int = 0


def read_records(f: BinaryIO, key: bytes, size: int,
                 result: ReplayResult) -> Iterator[bytes]:
    """The good records of an open log positioned after its header."""
    pos = _WAL_HEADER.size
    seq = 0
    while pos < size:
        head = f.read(_FRAME.size)
        if len(head) < _FRAME.size:
            result.stopped = "torn record header"
            break
        length, rseq = _FRAME.unpack(head)
        if length > MAX_RECORD or pos + _FRAME.size + length + _SUM > size:
            result.stopped = "torn record"
            break
        payload = f.read(length)
        sm = f.read(_SUM)
        if len(payload) != length or len(sm) != _SUM:
            result.stopped = "torn record"
            break
        if _sum(key, head, payload) != sm:
            result.stopped = "bad checksum"
            break
        if rseq != seq + 1:
            result.stopped = f"sequence {rseq} after {seq}"
            break
        seq = rseq
        yield payload
        pos += _FRAME.size + length + _SUM
    result.dropped_bytes = max(size - pos, 0)


def replay(ramfs: Ramfs, by_id: dict[int, Inode], digest: bytes,
           path: str | os.PathLike[str]) -> ReplayResult:
    """Apply the log at ``path`` if it belongs to the snapshot ``digest``."""
    result = ReplayResult()
    try:
        f = open(path, "rb", buffering=1 << 20)
    except FileNotFoundError:
        return result
    with f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(_WAL_HEADER.size)
        if len(head) < _WAL_HEADER.size:
            result.stopped = "no complete header"
            return result
        magic, version, _, page, wdigest = _WAL_HEADER.unpack(head)
        if magic != WAL_MAGIC or version != WAL_VERSION or page != PAGE:
            result.stopped = "not a log of this format"
            return result
        if wdigest != digest:
            result.stopped = "belongs to an older snapshot"   # its contents are in the image
            return result
        for payload in read_records(f, digest, size, result):
            try:
                apply_record(ramfs, by_id, payload)
            except (WalError, struct.error) as e:
                result.stopped = f"record {result.records + 1} does not apply: {e}"
                break
            result.records += 1
    if result.records:
        fix_links(ramfs)
    return result


def remove_temps(image: str | os.PathLike[str]) -> list[str]:
    """Delete the temp files of interrupted saves of ``image``."""
    p = Path(image)
    pattern = os.path.join(glob.escape(str(p.parent)), img.temp_pattern(p))
    gone = []
    for t in glob.glob(pattern):
        try:
            os.unlink(t)
            gone.append(t)
        except OSError as e:
            log.warning("cannot remove %s: %s", t, e)
    if gone:
        log.warning("removed %d temp file(s) of an interrupted save of %s", len(gone), image)
    return gone


def open_image(image: str | os.PathLike[str], *, clean_temps: bool = True) -> Ramfs | None:
    """At start: remove stale temps, load the snapshot, replay its log.  None
    when there is no image yet.  Raises ImageError for a bad snapshot.  Reads
    only (but for the temps): the next checkpoint folds the log in."""
    if clean_temps:
        remove_temps(image)
    try:
        ramfs, by_id, digest = img.load_snapshot(image)
    except FileNotFoundError:
        return None
    r = replay(ramfs, by_id, digest, wal_path(image))
    if r.records or r.stopped:
        log.log(logging.WARNING if r.stopped and r.stopped != "belongs to an older snapshot"
                else logging.INFO, "image %s: replayed %d log record(s)%s", image, r.records,
                f"; stopped: {r.stopped} ({r.dropped_bytes} bytes unused)" if r.stopped else "")
    return ramfs


# ------------------------------------------------------------------ the live journal
class Journal:
    """Keeps ``image`` (+ its log) up to date with ``ramfs``; see the module doc.

    ``await start()`` (a checkpoint, then the flusher in ``nursery``),
    ``await sync()`` from fsync & co., ``await checkpoint()`` on SIGUSR1 and
    ``await close()`` at shutdown.  Every method runs on the trio thread.
    """

    def __init__(self, ramfs: Ramfs, image: str | os.PathLike[str], *,
                 interval: float = FLUSH_INTERVAL, checkpoint_min: int = CHECKPOINT_MIN) -> None:
        self.ramfs = ramfs
        self.image = Path(image)
        self.wal = wal_path(image)
        self.interval = interval
        self.checkpoint_min = checkpoint_min
        self.tracker = Tracker(ramfs)
        self.lock = trio.Lock()           # one writer at a time, in arrival order
        self.fd = -1                      # the log, open for appending
        self.key = b""                    # the current snapshot's digest
        self.seq = 0
        self.wal_size = 0
        self.image_size = 0
        self.broken = True                # no snapshot of ours yet: next write is a checkpoint
        self.closed = False

    async def start(self, nursery: trio.Nursery) -> None:
        self.tracker.attach()
        await self.checkpoint("start")
        nursery.start_soon(self._flusher)

    async def _flusher(self) -> None:
        while not self.closed:
            self.tracker.wake = trio.Event()
            with trio.move_on_after(self.interval):
                await self.tracker.wake.wait()
            if self.tracker and not self.closed:
                try:
                    await self.sync()
                except SysError:
                    pass                         # logged; the next try checkpoints

    async def sync(self) -> None:
        """Return once every change made before the call is on disk.  Raises
        SysError(EIO) when the disk refused it."""
        if self.closed:
            return                               # shut down: the last checkpoint has it
        async with self.lock:
            if self.broken or self.wal_size > max(self.checkpoint_min, self.image_size):
                await self._checkpoint_locked("log full" if not self.broken else "recovery")
                return
            if not self.tracker:
                return                           # an earlier record (done: we had to wait) has it
            seq = self.seq + 1
            data = frame_record(self.key, seq, self.tracker.take())
            try:
                await trio.to_thread.run_sync(self._append, data)
            except OSError as e:
                log.error("journal %s: append failed: %s; next write makes a new image",
                          self.wal, e)
                self.broken = True
                raise SysError(errno.EIO) from None
            self.seq = seq

    def _append(self, data: bytes) -> None:
        mv = memoryview(data)
        off = self.wal_size
        while mv:
            n = os.pwrite(self.fd, mv, off)
            mv = mv[n:]
            off += n
        os.fdatasync(self.fd)
        self.wal_size = off

    async def checkpoint(self, reason: str = "request") -> None:
        async with self.lock:
            await self._checkpoint_locked(reason)

    async def _checkpoint_locked(self, reason: str) -> None:
        # The snapshot is taken on this thread in one go (a consistent tree; the
        # loop stalls ~5 ms per MiB of ramfs); the fsyncs and renames run in a thread.
        try:
            pending = img.write_temp(self.ramfs, self.image, ino_ids=True)
        except img.ImageError as e:
            log.error("journal: checkpoint failed: %s", e)
            self.broken = True
            raise SysError(errno.EIO) from None
        self.tracker.clear()                     # the snapshot holds all of it
        try:
            fd = await trio.to_thread.run_sync(self._install, pending)
        except (OSError, img.ImageError) as e:
            log.error("journal: checkpoint failed: %s", e)
            self.broken = True
            raise SysError(errno.EIO) from None
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.key, self.seq = fd, pending.digest, 0
        self.wal_size, self.image_size = _WAL_HEADER.size, pending.size
        self.broken = False
        log.info("journal: checkpoint (%s): image %s, %d bytes", reason, self.image, pending.size)

    def _install(self, pending: img.PendingImage) -> int:
        """In a thread: the new snapshot into place, then a fresh log for it."""
        img.commit_temp(pending)
        fd, tmp = _mkstemp_for(self.image)
        try:
            os.write(fd, wal_header(pending.digest))
            os.fdatasync(fd)
            os.replace(tmp, self.wal)
        except BaseException:
            os.close(fd)
            img.discard_temp(tmp)
            raise
        img.fsync_dir(self.image.parent if str(self.image.parent) else ".")
        return fd

    async def close(self) -> None:
        """Shutdown: a last checkpoint (the image alone holds everything)."""
        if self.closed:
            return
        try:
            await self.checkpoint("shutdown")
        except SysError:
            pass
        finally:
            self.closed = True
            self.tracker.detach()
            if self.tracker.wake is not None:
                self.tracker.wake.set()
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


def _mkstemp_for(image: Path) -> tuple[int, str]:
    import tempfile
    fd, tmp = tempfile.mkstemp(prefix=f".{image.name}.wal.", suffix=".tmp",
                               dir=image.parent if str(image.parent) else ".")
    return fd, tmp
