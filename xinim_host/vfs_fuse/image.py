"""Save the ramfs tree to an image file and load it back.

Format (version 1, all integers little-endian)::

    header   b"XINIMIMG" u16 version u16 0 u32 page_size
    records  one tag byte each:
      R  root:        id attrs
      F  first name:  parent_id u16 namelen name id attrs payload
      L  hard link:   parent_id u16 namelen name id       (id seen before)
      Z  end:         u64 record_count
    digest   BLAKE2b-256 of every byte before it

    attrs    u32 mode u32 uid u32 gid u64 rdev i64 atime_ns i64 mtime_ns i64 ctime_ns
    payload  regular file: u64 size u64 npages, npages x (u64 page_index, page bytes)
             symlink:      u32 len target
             others:       nothing

Regular files keep their sparse layout (only allocated pages are stored),
hard links are preserved by inode identity, directories are written in
pre-order so every parent exists before its entries.

Saving streams page by page through a hashing writer into a temp file in
the target directory, then fsync, rename over the target, fsync the
directory: a crash leaves either the old or the new image.  Loading first
checks the whole file (magic, version, digest) without touching anything,
then builds the tree; a corrupt, truncated or foreign file raises
:class:`ImageError` and is left as it is on disk.

Under ``--image`` the image is the snapshot half of journal.py: ids are then
inode numbers (the log's names for inodes), and saving is split in
:func:`write_temp` (reads the ramfs) and :func:`commit_temp` (fsync + rename,
fine in a worker thread).

Both run synchronously and must not race with changes to the ramfs: call them
from the trio thread that owns it (a consistent snapshot; the event loop
stalls for the duration, ~0.5 s per 100 MiB), never with the image inside the
ramfs's own FUSE mount (the server would wait for itself).
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..lib.errors import SysError
from .mountpoint import read_mountinfo
from .ramfs import PAGE, Inode, Ramfs

log = logging.getLogger(__name__)

MAGIC = b"XINIMIMG"
VERSION = 1
_HEADER = struct.Struct("<8sHHI")
_ATTRS = struct.Struct("<IIIQqqq")
_ENTRY = struct.Struct("<QH")          # parent id, name length (name follows)
_ID = struct.Struct("<Q")
_REG = struct.Struct("<QQ")            # size, number of pages
_PAGE_IDX = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_COUNT = struct.Struct("<Q")
_DIGEST_SIZE = 32
_TAG_ROOT, _TAG_FIRST, _TAG_LINK, _TAG_END = b"R", b"F", b"L", b"Z"
_READ_CHUNK = 1 << 20


class ImageError(Exception):
    """The image cannot be used; the message says why (and names the file)."""


def _new_hash() -> "hashlib._Hash":
    return hashlib.blake2b(digest_size=_DIGEST_SIZE, person=b"xinim-img-v1")


# ---------------------------------------------------------------------- save
class _HashingWriter:
    """Writes through to a buffered file and hashes what it writes.  ``ino_ids``:
    name inodes by their ramfs inode numbers (the journal's ids, see journal.py)
    instead of by order of first appearance."""

    __slots__ = ("f", "h", "count", "ino_ids")

    def __init__(self, f: BinaryIO, ino_ids: bool = False) -> None:
        self.f = f
        self.h = _new_hash()
        self.count = 0
        self.ino_ids = ino_ids

    def write(self, b: bytes | bytearray | memoryview) -> None:
        self.h.update(b)
        self.f.write(b)


def _check_not_in_xinim_mount(path: Path) -> None:
    # No filesystem access here: a stat inside our own mount would deadlock.
    p = os.path.abspath(path)
    for e in read_mountinfo():
        inside = p == e.mountpoint or p.startswith(e.mountpoint.rstrip("/") + "/")
        if e.fstype == "fuse.xinim" and inside:
            raise ImageError(f"image {path} lies inside the xinim FUSE mount {e.mountpoint}; "
                             "keep it on a host filesystem")


def _attrs(inode: Inode) -> bytes:
    return _ATTRS.pack(inode.mode, inode.uid, inode.gid, inode.rdev,
                       inode.atime_ns, inode.mtime_ns, inode.ctime_ns)


def _write_tree(ramfs: Ramfs, w: _HashingWriter) -> None:
    # Ids are assigned in order of first appearance (root = 0), not taken from
    # inode numbers: the same tree always gives the same bytes.  The journal's
    # checkpoints take inode numbers instead: its log records name inodes so.
    ramfs.sync_caches()          # MAP_SHARED mappers' stores (mapcache.py) into the pages
    root = ramfs.root
    by_ino = w.ino_ids
    w.write(_HEADER.pack(MAGIC, VERSION, 0, PAGE))
    ids: dict[int, int] = {root.ino: root.ino if by_ino else 0}
    w.write(_TAG_ROOT + _ID.pack(ids[root.ino]) + _attrs(root))
    stack: list[Inode] = [root]
    while stack:
        d = stack.pop()
        did = ids[d.ino]
        subdirs: list[Inode] = []
        for name, inode in list(d.entries.items()):
            w.count += 1
            iid = ids.get(inode.ino)
            if iid is not None:                    # another name of a known inode
                w.write(_TAG_LINK + _ENTRY.pack(did, len(name)) + name + _ID.pack(iid))
                continue
            iid = ids[inode.ino] = inode.ino if by_ino else len(ids)
            w.write(_TAG_FIRST + _ENTRY.pack(did, len(name)) + name + _ID.pack(iid)
                    + _attrs(inode))
            fmt = inode.mode & 0o170000
            if fmt == stat.S_IFREG:
                pages = inode.pages
                w.write(_REG.pack(inode.size, len(pages)))
                for idx in sorted(pages):          # stream: one page at a time
                    page = pages[idx]
                    w.write(_PAGE_IDX.pack(idx))
                    w.write(page if len(page) == PAGE else bytes(page).ljust(PAGE, b"\0"))
            elif fmt == stat.S_IFLNK:
                w.write(_U32.pack(len(inode.target)) + inode.target)
            elif fmt == stat.S_IFDIR:
                subdirs.append(inode)
        stack.extend(reversed(subdirs))            # pre-order, entries in order
    w.write(_TAG_END + _COUNT.pack(w.count))


@dataclass(frozen=True, slots=True)
class PendingImage:
    """A snapshot written to a temp file, not yet fsync'd nor renamed into place."""

    path: Path          # where it goes
    tmp: str            # where it is
    size: int
    digest: bytes       # its trailing BLAKE2b: the journal's key for this snapshot
    count: int


def temp_pattern(path: str | os.PathLike[str]) -> str:
    """Glob (in the image's directory) of the temp files saves of ``path`` make."""
    return f".{Path(path).name}.*.tmp"


def write_temp(ramfs: Ramfs, path: str | os.PathLike[str], *,
               ino_ids: bool = False) -> PendingImage:
    """First half of a save: the tree into a temp file next to ``path`` (no
    fsync).  Reads the ramfs: call it from the thread that owns it."""
    path = Path(path)
    _check_not_in_xinim_mount(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise ImageError(f"cannot create a temporary file next to {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            w = _HashingWriter(f, ino_ids)
            _write_tree(ramfs, w)
            digest = w.h.digest()
            f.write(digest)
            f.flush()
            size = f.tell()
    except BaseException as e:
        discard_temp(tmp)
        if isinstance(e, OSError):
            raise ImageError(f"cannot write image {path}: {e.strerror or e}") from e
        raise
    return PendingImage(path, tmp, size, digest, w.count)


def discard_temp(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make renames in ``directory`` durable; raises OSError."""
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def commit_temp(pending: PendingImage) -> None:
    """Second half of a save (no ramfs access: fine in a worker thread): fsync the
    temp file, rename it over the image, fsync the directory.  A crash at any
    point leaves the old image or the new one, never a mix."""
    path = pending.path
    try:
        fd = os.open(pending.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(pending.tmp, path)
    except BaseException as e:
        discard_temp(pending.tmp)
        if isinstance(e, OSError):
            raise ImageError(f"cannot write image {path}: {e.strerror or e}") from e
        raise
    try:   # make the rename itself durable
        fsync_dir(path.parent if str(path.parent) else Path("."))
    except OSError as e:
        log.warning("fsync of directory %s failed: %s", path.parent, e)
    log.info("saved ramfs image %s (%d bytes, %d records)", path, pending.size, pending.count)


def save_image(ramfs: Ramfs, path: str | os.PathLike[str]) -> int:
    """Write the tree of ``ramfs`` to ``path`` atomically; returns the image
    size in bytes.  Raises ImageError (the old image, if any, is untouched)."""
    pending = write_temp(ramfs, path)
    commit_temp(pending)
    return pending.size


# ---------------------------------------------------------------------- load
def verify_image(path: str | os.PathLike[str]) -> int:
    """Check magic, version and digest of the image at ``path`` without
    building anything; returns its size.  Raises ImageError."""
    return _verify(Path(path))[0]


def _verify(path: Path) -> tuple[int, bytes]:
    """(size, digest) of a good image; raises ImageError."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ImageError(f"cannot open image {path}: {e.strerror}") from e
    with f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(_HEADER.size)
        _check_header(path, head)
        if size < _HEADER.size + 1 + _COUNT.size + _DIGEST_SIZE:
            raise ImageError(f"image {path} is truncated ({size} bytes)")
        h = _new_hash()
        h.update(head)
        left = size - _DIGEST_SIZE - _HEADER.size
        while left > 0:
            chunk = f.read(min(_READ_CHUNK, left))
            if not chunk:
                raise ImageError(f"image {path} is truncated (shrank while reading)")
            h.update(chunk)
            left -= len(chunk)
        digest = f.read(_DIGEST_SIZE)
        if h.digest() != digest:
            raise ImageError(f"image {path} is corrupt or truncated: checksum mismatch "
                             f"({size} bytes); refusing to load it")
    return size, digest


def _check_header(path: Path, head: bytes) -> None:
    if len(head) < len(MAGIC) or head[:len(MAGIC)] != MAGIC:
        if MAGIC.startswith(head) and head:
            raise ImageError(f"image {path} is truncated (inside the header)")
        raise ImageError(f"{path} is not a XINIM ramfs image (bad magic)")
    if len(head) < _HEADER.size:
        raise ImageError(f"image {path} is truncated (inside the header)")
    _, version, _, page = _HEADER.unpack(head)
    if version != VERSION:
        raise ImageError(f"image {path} has format version {version}; "
                         f"this xinim reads version {VERSION}")
    if page != PAGE:
        raise ImageError(f"image {path} uses {page}-byte pages; this ramfs uses {PAGE}")


class _Reader:
    """Exact reads with hashing; a short read means a truncated image."""

    __slots__ = ("f", "h", "path")

    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f = f
        self.h = _new_hash()
        self.path = path

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise ImageError(f"image {self.path} is truncated")
        self.h.update(b)
        return b

    def readinto(self, buf: bytearray) -> None:
        if self.f.readinto(buf) != len(buf):
            raise ImageError(f"image {self.path} is truncated")
        self.h.update(buf)


def load_image(path: str | os.PathLike[str], ramfs: Ramfs | None = None) -> Ramfs:
    """Load the image at ``path`` into ``ramfs`` (which must be empty; default:
    a new ``Ramfs()``) and return it.

    The whole file is verified before the ramfs is touched.  Raises
    FileNotFoundError when there is no image, ImageError for anything else.
    """
    return load_snapshot(path, ramfs)[0]


def load_snapshot(path: str | os.PathLike[str],
                  ramfs: Ramfs | None = None) -> tuple[Ramfs, dict[int, Inode], bytes]:
    """:func:`load_image`, also returning the image's ids (id -> inode) and its
    digest: what the journal needs to replay its log on top."""
    path = Path(path)
    _, digest = _verify(path)
    if ramfs is None:
        ramfs = Ramfs()
    elif ramfs.root.entries:
        raise ValueError("load_image needs an empty ramfs")
    try:
        with open(path, "rb", buffering=1 << 20) as f:
            by_id = _build(ramfs, _Reader(f, path), path)
    except ImageError:
        raise
    except SysError as e:
        raise ImageError(f"image {path} cannot be loaded: {e} "
                         f"(errno {errno.errorcode.get(e.errno, e.errno)})") from e
    except OSError as e:
        raise ImageError(f"cannot read image {path}: {e.strerror or e}") from e
    log.info("loaded ramfs image %s (%d inodes)", path, len(ramfs.inodes))
    return ramfs, by_id, digest


def _build(ramfs: Ramfs, r: _Reader, path: Path) -> dict[int, Inode]:
    def corrupt(why: str) -> ImageError:
        return ImageError(f"image {path} is corrupt: {why}")

    _check_header(path, r.read(_HEADER.size))
    by_id: dict[int, Inode] = {}
    attrs: list[tuple[Inode, tuple[int, ...]]] = []
    buf = bytearray(PAGE)
    count = 0
    while True:
        tag = r.read(1)
        if tag == _TAG_END:
            (n,) = _COUNT.unpack(r.read(_COUNT.size))
            if n != count:
                raise corrupt(f"{count} records, trailer says {n}")
            expect = r.h.digest()
            if r.f.read(_DIGEST_SIZE) != expect:
                raise ImageError(f"image {path} changed while loading (checksum mismatch)")
            if r.f.read(1):
                raise corrupt("data after the end record")
            break
        if tag == _TAG_ROOT:
            if by_id:
                raise corrupt("second root record")
            (rid,) = _ID.unpack(r.read(_ID.size))
            by_id[rid] = ramfs.root
            attrs.append((ramfs.root, _ATTRS.unpack(r.read(_ATTRS.size))))
            continue
        if tag not in (_TAG_FIRST, _TAG_LINK):
            raise corrupt(f"unknown record tag {tag!r}")
        count += 1
        parent_id, namelen = _ENTRY.unpack(r.read(_ENTRY.size))
        name = r.read(namelen)
        (iid,) = _ID.unpack(r.read(_ID.size))
        parent = by_id.get(parent_id)
        if parent is None or parent.mode & 0o170000 != stat.S_IFDIR:
            raise corrupt(f"entry {name!r} in unknown directory {parent_id}")
        if tag == _TAG_LINK:
            target = by_id.get(iid)
            if target is None:
                raise corrupt(f"hard link {name!r} to unknown inode {iid}")
            ramfs.link(target, parent, name)
            continue
        if iid in by_id:
            raise corrupt(f"inode {iid} defined twice")
        a = _ATTRS.unpack(r.read(_ATTRS.size))
        mode, uid, gid, rdev = a[0], a[1], a[2], a[3]
        fmt = mode & 0o170000
        if fmt == stat.S_IFDIR:
            inode = ramfs.mkdir(parent, name, mode & 0o7777, uid, gid)
        elif fmt == stat.S_IFLNK:
            (tlen,) = _U32.unpack(r.read(_U32.size))
            inode = ramfs.symlink(parent, name, r.read(tlen), uid, gid)
        elif fmt == stat.S_IFREG:
            inode = ramfs.mknod(parent, name, mode, uid, gid)
            size, npages = _REG.unpack(r.read(_REG.size))
            for _ in range(npages):
                (idx,) = _PAGE_IDX.unpack(r.read(_PAGE_IDX.size))
                r.readinto(buf)                      # straight from the file
                ramfs.write(inode, idx * PAGE, buf)  # copied once into the page
            ramfs.truncate(inode, size)
        else:
            inode = ramfs.mknod(parent, name, mode, uid, gid, rdev)
        by_id[iid] = inode
        attrs.append((inode, a))
    if not by_id:
        raise corrupt("no root record")
    # Metadata last: creating entries touched the directories' times.
    for inode, (mode, uid, gid, _rdev, atime, mtime, ctime) in attrs:
        ramfs.setattr(inode, mode=mode & 0o7777, uid=uid, gid=gid,
                      atime_ns=atime, mtime_ns=mtime, ctime_ns=ctime)
    return by_id
