"""The address-space record of one process: heap, break and a sorted region list.

Pure and synchronous: every method either raises :class:`MmError` with the
errno Linux (x86-64, 6.x) gives for the same call and leaves the record
unchanged, or applies the whole change.  The MM server applies the same change
to the real tracee afterwards, so the record and the host stay in step.

Deliberate differences from Linux, all in the "refuse atomically" direction:

* ``protect`` over a range with a hole fails with ENOMEM *without* changing the
  part before the hole (Linux changes it, then fails) -- the server then skips
  the host call, so both still agree;
* ``remap`` validates the old range before unmapping an MREMAP_FIXED target.

Like Linux, regions that were ever writable (VM_ACCOUNT) do not merge with ones
that never were; for anonymous memory Linux drops that mark on mprotect only
while no page was touched, which MM cannot see -- it assumes untouched.

Adjacent regions with equal attributes and a continuous backing are always
merged (Linux's vma_merge does so in the common cases), so the record can have
fewer, never more, entries than the host's /proc/PID/maps shows.
"""
from __future__ import annotations

import bisect
import dataclasses
import errno
import itertools
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import MmError
from ..lib.vm_abi import (
    DEFAULT_HEAP_START,
    DEFAULT_MAX_MAP_COUNT,
    DEFAULT_MMAP_BASE,
    DEFAULT_MMAP_MIN_ADDR,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_TYPE,
    MAP_VALIDATE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_READ,
    PROT_RWX,
    PROT_SEM,
    PROT_WRITE,
    REGION_FLAGS,
    STACK_GUARD_GAP,
    TASK_SIZE,
    is_aligned,
    page_down,
    page_up,
)

U64 = (1 << 64) - 1
# the host kernel's special mappings (imported with the layout): Linux unmaps,
# replaces or protects them whole, never a part (their may_split says EINVAL)
SPECIAL_MAPPINGS = frozenset(("[vdso]", "[vvar]", "[vvar_vclock]", "[uprobes]"))


# --- backings ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Anon:
    """Private anonymous memory (zero-filled on first touch)."""

    @property
    def offset(self) -> int:
        return 0

    def at(self, delta: int) -> Anon:
        return self

    def follows(self, prev: Backing, prev_len: int) -> bool:
        return isinstance(prev, Anon)

    def object_key(self) -> Hashable | None:
        return None


ANON = Anon()


@dataclass(frozen=True, slots=True)
class FileBacking:
    """A file: ``vnode`` is the VFS's opaque key; ``offset`` the byte offset of
    the region's first page.  ``may_read``/``may_write`` say how the fd was
    opened (every file map needs read; MAP_SHARED with PROT_WRITE needs write).  ``path``/``inode``/``dev``
    only feed format_maps and never make two backings different."""

    vnode: Hashable
    offset: int = 0
    may_write: bool = True
    may_read: bool = True
    path: str = field(default="", compare=False)
    inode: int = field(default=0, compare=False)
    # the pages are the VFS's memfd mirror of the file (vfs_fuse/mapcache.py):
    # the file already has every store, nothing is written back
    mirror: bool = field(default=False, compare=False)
    dev: tuple[int, int] = field(default=(0, 0), compare=False)

    def at(self, delta: int) -> FileBacking:
        # the constructor, not dataclasses.replace: several times cheaper (hot path)
        return FileBacking(self.vnode, self.offset + delta, self.may_write, self.may_read,
                           self.path, self.inode, self.mirror, self.dev)

    def follows(self, prev: Backing, prev_len: int) -> bool:
        return (isinstance(prev, FileBacking) and prev.vnode == self.vnode
                and prev.may_write == self.may_write and prev.offset + prev_len == self.offset)

    def object_key(self) -> Hashable | None:
        return ("file", self.vnode)


_shm_ids = itertools.count(1)   # shared anonymous objects are unique system-wide


@dataclass(frozen=True, slots=True)
class SharedBacking:
    """A shared anonymous memory object (MAP_SHARED|MAP_ANONYMOUS): fork does
    not copy it, both sides see one object.  ``may_write`` False: a shared map of
    /dev/zero through a fd not open for writing (Linux's VM_MAYWRITE cleared: an
    mprotect to PROT_WRITE is EACCES)."""

    key: int
    offset: int = 0
    may_write: bool = True

    @classmethod
    def new(cls, may_write: bool = True) -> SharedBacking:
        return cls(next(_shm_ids), 0, may_write)

    def at(self, delta: int) -> SharedBacking:
        return dataclasses.replace(self, offset=self.offset + delta)

    def follows(self, prev: Backing, prev_len: int) -> bool:
        return (isinstance(prev, SharedBacking) and prev.key == self.key
                and prev.offset + prev_len == self.offset)

    def object_key(self) -> Hashable | None:
        return ("shm", self.key)


@dataclass(frozen=True, slots=True)
class SysvBacking:
    """An attached System V segment (mm/shm.py): ``obj`` is the segment's
    system-wide object number, ``shmid``/``key`` only feed format_maps."""

    obj: int
    offset: int = 0
    shmid: int = field(default=0, compare=False)
    key: int = field(default=0, compare=False)

    def at(self, delta: int) -> SysvBacking:
        return dataclasses.replace(self, offset=self.offset + delta)

    def follows(self, prev: Backing, prev_len: int) -> bool:
        return (isinstance(prev, SysvBacking) and prev.obj == self.obj
                and prev.offset + prev_len == self.offset)

    def object_key(self) -> Hashable | None:
        return ("sysv", self.obj)


Backing = Anon | FileBacking | SharedBacking | SysvBacking


# --- regions -----------------------------------------------------------------


# Not frozen=True: a frozen dataclass's __init__ sets each field through
# object.__setattr__, ~3x the cost of a plain one, and every mmap and munmap
# builds several Regions.  Still pure data by rule: nothing assigns to a
# Region's fields (records share them: fork's copy, undo snapshots); the hash
# stays that of its values.
@dataclass(slots=True, unsafe_hash=True)
class Region:
    """``length`` bytes at ``start`` (both page-aligned).  ``flags`` holds only
    the lasting properties: MAP_SHARED or MAP_PRIVATE plus REGION_FLAGS
    (MAP_ANONYMOUS, MAP_GROWSDOWN, ...).  ``name`` is "[heap]", "[stack]" or "".
    Pure data: every change makes new Region objects (never assign to a field)."""

    start: int
    length: int
    prot: int
    flags: int
    backing: Backing = ANON
    name: str = ""
    # Linux's VM_ACCOUNT: set while a private mapping is writable and, for a
    # file, ever after (see _still_accounted).  It only matters for merging:
    # Linux will not merge an accounted region with an unaccounted one.
    accounted: bool = False

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def shared(self) -> bool:
        return bool(self.flags & MAP_SHARED)

    @property
    def pages(self) -> int:
        return self.length >> PAGE_SHIFT

    @property
    def label(self) -> str:
        """The pathname column of /proc/PID/maps."""
        if self.name:
            return self.name
        if isinstance(self.backing, FileBacking):
            return self.backing.path
        if isinstance(self.backing, SharedBacking):
            return "/dev/zero (deleted)"
        if isinstance(self.backing, SysvBacking):
            return f"/SYSV{self.backing.key & 0xFFFFFFFF:08x} (deleted)"
        return ""

    @property
    def perms(self) -> str:
        p = self.prot
        return ("r" if p & PROT_READ else "-") + ("w" if p & PROT_WRITE else "-") \
            + ("x" if p & PROT_EXEC else "-") + ("s" if self.shared else "p")

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def slice(self, start: int, end: int) -> Region:
        """The part [start, end) of this region, its backing offset advanced."""
        if start == self.start and end == self.start + self.length:
            return self                  # immutable: the whole region is itself
        # the constructor, not dataclasses.replace: several times cheaper (hot path)
        return Region(start, end - start, self.prot, self.flags,
                      self.backing.at(start - self.start), self.name, self.accounted)

    def resized(self, start: int, length: int) -> Region:
        """The same attributes at ``start`` with ``length`` (backing unchanged)."""
        return Region(start, length, self.prot, self.flags, self.backing, self.name,
                      self.accounted)

    def joins(self, nxt: Region) -> bool:
        """Can ``nxt`` (right after this one) be merged into it?"""
        return (self.start + self.length == nxt.start and self.prot == nxt.prot
                and self.flags == nxt.flags
                and self.name == nxt.name and self.accounted == nxt.accounted
                and nxt.backing.follows(self.backing, self.length))

    def format(self) -> str:
        """One /proc/PID/maps line (without newline), byte-exact with Linux's."""
        b = self.backing
        offset = b.offset if not isinstance(b, Anon) else 0
        dev, inode = (b.dev, b.inode) if isinstance(b, FileBacking) else \
            ((0, 1), b.key) if isinstance(b, SharedBacking) else \
            ((0, 1), b.shmid) if isinstance(b, SysvBacking) else ((0, 0), 0)
        head = (f"{self.start:08x}-{self.end:08x} {self.perms} {offset:08x} "
                f"{dev[0]:02x}:{dev[1]:02x} {inode} ")
        label = self.label
        # Linux pads the header to 72 columns, then one space, then the name.
        return f"{head.ljust(72)} {label}" if label else head


#: ``_joins(a, b)`` is ``a.joins(b)`` without the bound-method lookup (hot paths).
_joins = Region.joins


class MapResult(NamedTuple):
    region: Region          # what was mapped (before merging with neighbours)
    replaced: list[Region]  # pieces MAP_FIXED unmapped to make room (write back shared ones)

    @property
    def addr(self) -> int:
        return self.region.start


class RemapResult(NamedTuple):
    addr: int               # where the range lives now
    removed: list[Region]   # pieces unmapped: the shrunk tail, an MREMAP_FIXED target


def _accountable(flags: int, prot: int) -> bool:
    """Linux's accountable_mapping(): private, writable, not MAP_NORESERVE."""
    return bool(prot & PROT_WRITE) and not flags & (MAP_SHARED | MAP_NORESERVE)


def _still_accounted(r: Region, prot: int) -> bool:
    """VM_ACCOUNT after mprotect (Linux mprotect_fixup): gained when a private
    region becomes writable; lost when it stops being writable only if it is
    anonymous and has no anon_vma yet.  We cannot see the anon_vma (pages the
    program touched), so we assume untouched: the record may then merge two
    anonymous regions the host keeps apart, never the other way round."""
    if prot & PROT_WRITE:
        return r.accounted or _accountable(r.flags, prot)
    return r.accounted and not r.flags & MAP_ANONYMOUS


def _fail(err: int, what: str) -> MmError:
    return MmError(err, what)


# --- the address space -----------------------------------------------------------


class AddressSpace:
    """One process's layout.  Addresses and lengths are plain ints (u64)."""

    def __init__(self, *, mmap_base: int = DEFAULT_MMAP_BASE,
                 heap_start: int = DEFAULT_HEAP_START, data_limit: int | None = None,
                 min_addr: int = DEFAULT_MMAP_MIN_ADDR, task_size: int = TASK_SIZE,
                 max_map_count: int = DEFAULT_MAX_MAP_COUNT) -> None:
        for what, v in (("mmap_base", mmap_base), ("heap_start", heap_start),
                        ("task_size", task_size)):
            if not is_aligned(v):
                raise ValueError(f"{what} {v:#x} is not page-aligned")
        if not 0 <= min_addr < mmap_base <= task_size:
            raise ValueError("need 0 <= min_addr < mmap_base <= task_size")
        self.mmap_base = mmap_base
        self.min_addr = page_up(min_addr) or PAGE_SIZE   # never hand out page 0
        self.task_size = task_size
        self.max_map_count = max_map_count
        self.heap_start = heap_start
        self.brk_value = heap_start       # the program's break; may be unaligned
        self.data_limit = data_limit      # RLIMIT_DATA for the heap; None = infinity
        self._regions: list[Region] = []
        self._starts: list[int] = []      # parallel to _regions, for bisect
        # also parallel: each region's end and gap start (_gap_start), so the
        # free-range search is a scan of two int lists, not of Region objects
        self._ends: list[int] = []
        self._gstarts: list[int] = []

    # --- queries ---------------------------------------------------------------

    @property
    def regions(self) -> tuple[Region, ...]:
        return tuple(self._regions)

    def __len__(self) -> int:
        return len(self._regions)

    def __iter__(self) -> Iterator[Region]:
        return iter(tuple(self._regions))

    @property
    def mapped_bytes(self) -> int:
        return sum(r.length for r in self._regions)

    def find(self, addr: int) -> Region | None:
        """The region containing ``addr``, if any."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and self._ends[i] > addr:
            return self._regions[i]
        return None

    def overlapping(self, addr: int, length: int) -> list[Region]:
        """Whole regions meeting [addr, addr+length), in address order."""
        i, j = self._span(addr, addr + length)
        return self._regions[i:j]

    def is_free(self, addr: int, length: int) -> bool:
        """True when no region meets [addr, addr+length)."""
        i, j = self._span(addr, addr + length)
        return i == j

    def format_maps(self) -> str:
        """/proc/PID/maps text of the record, one line per region."""
        return "".join(r.format() + "\n" for r in self._regions)

    def copy(self) -> AddressSpace:
        """An independent record with the same layout (fork).  Regions are
        immutable, so sharing them between the copies is safe."""
        # field by field, in __init__'s order: copy.copy would build both
        # instances' __dict__, and CPython 3.11 then takes its slow attribute
        # path on them for the rest of the process's life
        new = AddressSpace.__new__(AddressSpace)
        new.mmap_base = self.mmap_base
        new.min_addr = self.min_addr
        new.task_size = self.task_size
        new.max_map_count = self.max_map_count
        new.heap_start = self.heap_start
        new.brk_value = self.brk_value
        new.data_limit = self.data_limit
        new._regions = list(self._regions)
        new._starts = list(self._starts)
        new._ends = list(self._ends)
        new._gstarts = list(self._gstarts)
        return new

    # --- address selection ---------------------------------------------------------

    def find_free(self, length: int, hint: int = 0, fixed: bool = False,
                  fixed_noreplace: bool = False) -> int:
        """Where a mapping of ``length`` bytes goes, as Linux's get_unmapped_area
        with the default top-down layout: the fixed address itself (checked), a
        free hint, else the highest fitting gap below ``mmap_base``, else the
        lowest one above it."""
        length &= U64
        if length == 0:
            raise _fail(errno.EINVAL, "length 0")
        length = page_up(length)
        if length > self.task_size - self.min_addr:
            raise _fail(errno.ENOMEM, "longer than the address space")
        if fixed or fixed_noreplace:
            if hint > self.task_size - length:
                raise _fail(errno.ENOMEM, "fixed range beyond the top of user space")
            if not is_aligned(hint):
                raise _fail(errno.EINVAL, "fixed address not page-aligned")
            if hint < self.min_addr:     # security_mmap_addr(): below mmap_min_addr
                raise _fail(errno.EPERM, "fixed address below mmap_min_addr")
            if fixed_noreplace and not self.is_free(hint, length):
                raise _fail(errno.EEXIST, "MAP_FIXED_NOREPLACE range is in use")
            return hint
        if hint:
            h = max(page_down(hint), self.min_addr)     # round_hint_to_min()
            if h <= self.task_size - length and self._gap_free(h, h + length):
                return h
        addr = self._search_down(length, self.min_addr, self.mmap_base)
        if addr is None:   # Linux falls back to a bottom-up search above the base
            addr = self._search_up(length, self.mmap_base, self.task_size)
        if addr is None:
            raise _fail(errno.ENOMEM, "no free range")
        return addr

    def _gap_start(self, r: Region) -> int:
        # A stack keeps a guard gap below it, as Linux's vm_start_gap().
        return max(r.start - STACK_GUARD_GAP, 0) if r.flags & MAP_GROWSDOWN else r.start

    def _gap_free(self, start: int, end: int) -> bool:
        i, j = self._span(start, end)
        if i != j:
            return False
        return j == len(self._regions) or end <= self._gap_start(self._regions[j])

    def _search_down(self, length: int, low: int, high: int) -> int | None:
        # The highest gap that fits, walking down from ``high``: on the parallel
        # int lists (every mmap without an address runs this; a program has
        # tens to hundreds of regions below mmap_base).
        ends, gstarts = self._ends, self._gstarts
        k = bisect.bisect_left(self._starts, high) - 1
        top = high
        if k + 1 < len(gstarts) and gstarts[k + 1] < top:
            top = gstarts[k + 1]
        while top - length >= low:
            if k < 0:
                return top - length          # the floor is ``low``: it fits
            floor = ends[k]
            if floor < low:
                floor = low
            if top - floor >= length:
                return top - length
            g = gstarts[k]
            if g < top:
                top = g
            k -= 1
        return None

    def _search_up(self, length: int, low: int, high: int) -> int | None:
        regions = self._regions
        i = bisect.bisect_right(self._starts, low) - 1
        cur = max(low, regions[i].end) if i >= 0 else low
        i += 1
        while cur + length <= high:
            nxt = min(self._gap_start(regions[i]), high) if i < len(regions) else high
            if nxt - cur >= length:
                return cur
            if i >= len(regions):
                return None
            cur = max(cur, regions[i].end)
            i += 1
        return None

    # --- mmap ---------------------------------------------------------------------

    def check_map(self, addr: int, length: int, prot: int, flags: int,
                  backing: Backing = ANON, offset: int = 0, name: str = "") -> Region:
        """Validate an mmap and choose its address without changing anything;
        returns the region :meth:`commit` would install.  ``backing`` is the
        object (a FileBacking for a file; with MAP_ANONYMOUS only /dev/zero's fd,
        whose access mode is checked as a file's) and
        ``offset`` the mmap offset argument.  Checks in Linux's order, so the
        first failing one decides the errno."""
        offset &= U64
        length &= U64
        if offset & (PAGE_SIZE - 1):
            raise _fail(errno.EINVAL, "offset not page-aligned")
        anonymous = bool(flags & MAP_ANONYMOUS)
        if not anonymous and not isinstance(backing, (FileBacking, SysvBacking)):
            raise _fail(errno.EBADF, "file mapping without a file")
        if length == 0:
            raise _fail(errno.EINVAL, "length 0")
        length = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)     # page_up
        if length > U64:
            raise _fail(errno.ENOMEM, "length overflows")
        if (offset >> PAGE_SHIFT) + (length >> PAGE_SHIFT) > U64 >> PAGE_SHIFT:
            raise _fail(errno.EOVERFLOW, "offset + length overflows")
        if len(self._regions) > self.max_map_count:
            raise _fail(errno.ENOMEM, "too many mappings")
        noreplace = bool(flags & MAP_FIXED_NOREPLACE)
        start = self.find_free(length, addr, fixed=bool(flags & MAP_FIXED) or noreplace,
                               fixed_noreplace=noreplace)
        mtype = flags & MAP_TYPE
        if anonymous:
            fd = backing if isinstance(backing, FileBacking) else None    # /dev/zero's
            if fd is not None:
                if mtype == MAP_SHARED and prot & PROT_WRITE and not fd.may_write:
                    raise _fail(errno.EACCES, "shared writable map of a read-only fd")
                if not fd.may_read:
                    raise _fail(errno.EACCES, "map of a write-only fd")
            if mtype == MAP_SHARED:
                if flags & MAP_GROWSDOWN:
                    raise _fail(errno.EINVAL, "shared anonymous GROWSDOWN")
                backing = SharedBacking.new(fd is None or fd.may_write)
            elif mtype != MAP_PRIVATE:
                raise _fail(errno.EINVAL, f"bad map type {mtype:#x}")
            else:
                backing = ANON
        elif isinstance(backing, SysvBacking):     # shmat: always shared
            backing = backing.at(offset)
            mtype = MAP_SHARED
        else:
            assert isinstance(backing, FileBacking)
            if mtype == MAP_SHARED_VALIDATE and flags & ~MAP_VALIDATE_MASK:
                raise _fail(errno.EOPNOTSUPP, "unknown flag with MAP_SHARED_VALIDATE")
            if mtype not in (MAP_SHARED, MAP_SHARED_VALIDATE, MAP_PRIVATE):
                raise _fail(errno.EINVAL, f"bad map type {mtype:#x}")
            if mtype != MAP_PRIVATE and prot & PROT_WRITE and not backing.may_write:
                raise _fail(errno.EACCES, "shared writable map of a read-only fd")
            if not backing.may_read:
                raise _fail(errno.EACCES, "map of a write-only fd")
            backing = backing.at(offset)
        kind = MAP_PRIVATE if mtype == MAP_PRIVATE else MAP_SHARED
        keep = kind | (flags & REGION_FLAGS)
        return Region(start, length, prot & PROT_RWX, keep, backing, name,
                      _accountable(keep, prot))

    def load(self, regions: Iterable[Region]) -> None:
        """Install ``regions`` -- in address order, none overlapping another or
        what the record holds -- as that many :meth:`commit` calls would (merged
        with their neighbours), in one pass: an import of the host's layout."""
        merged = self._regions
        for r in regions:
            if merged:
                last = merged[-1]
                if r.start < last.start + last.length:
                    raise ValueError(f"region at {r.start:#x} is not above the record")
                if last.joins(r):
                    merged[-1] = last.resized(last.start, last.length + r.length)
                    continue
            merged.append(r)
        if len(merged) > self.max_map_count:
            raise _fail(errno.ENOMEM, "too many mappings")
        self._starts[:] = [r.start for r in merged]
        self._ends[:] = [r.start + r.length for r in merged]
        self._gstarts[:] = [self._gap_start(r) for r in merged]

    def commit(self, region: Region) -> list[Region]:
        """Install a region from :meth:`check_map` (no await in between), replacing
        whatever it overlaps (MAP_FIXED).  Returns the replaced pieces."""
        start = region.start
        end = start + region.length
        i, j = self._span(start, end)
        if i == j:                       # into a free range (the common mmap)
            self.insert(region)
            return []
        left, removed, right = self._carve(i, j, start, end)
        left.append(region)
        left += right
        self._replace(i, j, left)
        return removed

    def insert(self, region: Region) -> None:
        """:meth:`commit` of a region into a range the record has free (the
        common mmap): merged with the neighbours it joins, no carving."""
        starts = self._starts
        i = bisect.bisect_left(starts, region.start)
        regions = self._regions
        n = len(regions)
        lo, hi = i, i
        if i > 0:
            left = regions[i - 1]
            if _joins(left, region):
                region = Region(left.start, left.length + region.length, left.prot,
                                left.flags, left.backing, left.name, left.accounted)
                lo = i - 1
        if i < n:
            right = regions[i]
            if _joins(region, right):
                region = Region(region.start, region.length + right.length, region.prot,
                                region.flags, region.backing, region.name, region.accounted)
                hi = i + 1
        if n + 1 - (hi - lo) > self.max_map_count:      # as ``_replace``'s check
            raise _fail(errno.ENOMEM, "too many mappings")
        rs = region.start
        regions[lo:hi] = (region,)
        starts[lo:hi] = (rs,)
        self._ends[lo:hi] = (rs + region.length,)
        self._gstarts[lo:hi] = (max(rs - STACK_GUARD_GAP, 0) if region.flags & MAP_GROWSDOWN
                                else rs,)

    def map(self, addr: int, length: int, prot: int, flags: int, backing: Backing = ANON,
            offset: int = 0, name: str = "") -> MapResult:
        """mmap(2): validate, choose the address, install."""
        region = self.check_map(addr, length, prot, flags, backing, offset, name)
        return MapResult(region, self.commit(region))

    # --- munmap / mprotect -------------------------------------------------------------

    def unmap(self, addr: int, length: int) -> list[Region]:
        """munmap(2).  Unmapping nothing is fine.  Returns the removed pieces."""
        length &= U64
        if not is_aligned(addr) or length == 0:
            raise _fail(errno.EINVAL, "unaligned address or length 0")
        length = page_up(length)
        if length > self.task_size or addr > self.task_size - length:
            raise _fail(errno.EINVAL, "range beyond user space")
        return self._unmap_range(addr, addr + length)

    def protect(self, addr: int, length: int, prot: int) -> None:
        """mprotect(2), all or nothing."""
        length &= U64
        grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
        prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP)
        if grows == PROT_GROWSDOWN | PROT_GROWSUP or not is_aligned(addr):
            raise _fail(errno.EINVAL, "unaligned address or both GROWS flags")
        if length == 0:
            return
        end = addr + page_up(length)
        if end > U64:
            raise _fail(errno.ENOMEM, "range wraps")
        if prot & ~(PROT_RWX | PROT_SEM):
            raise _fail(errno.EINVAL, f"unknown prot bits {prot:#x}")
        i, j = self._span(addr, end)
        if i == j:
            raise _fail(errno.ENOMEM, "range not mapped")
        first = self._regions[i]
        if grows & PROT_GROWSDOWN:
            if not first.flags & MAP_GROWSDOWN:
                raise _fail(errno.EINVAL, "PROT_GROWSDOWN on a region that does not grow")
            addr = first.start
        elif first.start > addr:
            raise _fail(errno.ENOMEM, "range starts in a hole")
        elif grows & PROT_GROWSUP:
            raise _fail(errno.EINVAL, "no region grows up on x86-64")
        cursor = addr
        for r in self._regions[i:j]:
            if r.start > cursor:
                raise _fail(errno.ENOMEM, "hole in range")
            if (prot & PROT_WRITE and r.shared
                    and isinstance(r.backing, (FileBacking, SharedBacking))
                    and not r.backing.may_write):
                raise _fail(errno.EACCES, "shared map of a read-only fd")
            cursor = r.end
        if cursor < end:
            raise _fail(errno.ENOMEM, "range runs past the last region")
        prot &= PROT_RWX
        left, middle, right = self._carve(i, j, addr, end)
        changed = [dataclasses.replace(r, prot=prot, accounted=_still_accounted(r, prot))
                   for r in middle]
        self._replace(i, j, left + changed + right)

    # --- mremap --------------------------------------------------------------------

    def remap(self, old_addr: int, old_len: int, new_len: int, may_move: bool,
              fixed_addr: int | None = None) -> RemapResult:
        """mremap(2): shrink in place, grow in place when the pages after the
        region are free, else move (MREMAP_MAYMOVE) or ENOMEM.  ``fixed_addr``
        is MREMAP_FIXED's new address.  old_len 0 duplicates a shared mapping.
        As Linux 6.17+: a plain shrink may run past the mapping at ``old_addr``
        (it only unmaps the tail), and a pure MREMAP_FIXED move (old_len ==
        new_len) may span several mappings and holes (the target opposite a
        hole is left alone); anything else must lie inside the one mapping at
        ``old_addr`` (EFAULT).  ``removed`` lists exactly what was unmapped."""
        old_len &= U64
        new_len &= U64
        if fixed_addr is not None and not may_move:
            raise _fail(errno.EINVAL, "MREMAP_FIXED without MREMAP_MAYMOVE")
        if not is_aligned(old_addr):
            raise _fail(errno.EINVAL, "old address not page-aligned")
        old_len, new_len = page_up(old_len), page_up(new_len)
        if new_len == 0 or new_len > U64:
            raise _fail(errno.EINVAL, "new length 0")
        if fixed_addr is not None:
            if not is_aligned(fixed_addr):
                raise _fail(errno.EINVAL, "new address not page-aligned")
            if new_len > self.task_size or fixed_addr > self.task_size - new_len:
                raise _fail(errno.EINVAL, "new range beyond user space")
            if old_addr + old_len > fixed_addr and fixed_addr + new_len > old_addr:
                raise _fail(errno.EINVAL, "old and new ranges overlap")
        vma = self.find(old_addr)
        if vma is None:
            raise _fail(errno.EFAULT, "old address not mapped")
        shrink_only = fixed_addr is None and new_len <= old_len
        # Linux >= 6.17: a pure MREMAP_FIXED move may span several mappings and
        # the gaps between them, which it keeps.
        multi_move = fixed_addr is not None and old_len == new_len
        keep = min(old_len, new_len)      # what stays mapped (and maybe moves)
        if not (shrink_only or multi_move) and keep > vma.end - old_addr:
            # a plain shrink may run past the mapping (it only unmaps the tail);
            # what is kept, moved or grown must lie inside one mapping
            raise _fail(errno.EFAULT, "old range is not inside one mapping")
        if old_len == 0 and not vma.shared:
            raise _fail(errno.EINVAL, "old_len 0 needs a shared mapping")
        src = vma.slice(old_addr, old_addr + keep)
        if not multi_move and fixed_addr is None:
            # one change at a time here: each either raises before it changes the
            # record or completes, so only the move needs the snapshot
            if shrink_only:
                return RemapResult(old_addr,
                                   self._unmap_range(old_addr + new_len, old_addr + old_len))
            grow_end = old_addr + new_len
            if (old_addr + old_len == vma.end and grow_end <= self.task_size
                    and self._gap_free(vma.end, grow_end)):
                i = bisect.bisect_left(self._starts, vma.start)
                self._replace(i, i + 1, [vma.resized(vma.start, grow_end - vma.start)])
                return RemapResult(old_addr, [])
            if not may_move:
                raise _fail(errno.ENOMEM, "cannot grow in place")
            dest = self.find_free(new_len)
            snapshot = (list(self._regions), list(self._starts), list(self._ends),
                        list(self._gstarts))
            try:
                self._move(src, new_len, dest)
            except BaseException:
                self._regions, self._starts, self._ends, self._gstarts = snapshot
                raise
            return RemapResult(dest, [])
        snapshot = (list(self._regions), list(self._starts), list(self._ends),
                    list(self._gstarts))
        try:
            removed: list[Region] = []
            if multi_move:
                # mapping by mapping, as Linux's remap_move(): only the target of
                # each piece is cleared; what lies opposite the holes stays
                assert fixed_addr is not None
                i, j = self._span(old_addr, old_addr + old_len)
                for piece in self._carve(i, j, old_addr, old_addr + old_len)[1]:
                    dest = piece.start - old_addr + fixed_addr
                    removed += self._unmap_range(dest, dest + piece.length)
                    self._move(piece, piece.length, dest)
                return RemapResult(fixed_addr, removed)
            assert fixed_addr is not None
            removed += self._unmap_range(fixed_addr, fixed_addr + new_len)
            removed += self._unmap_range(old_addr + new_len, old_addr + old_len)
            self._move(src, new_len, fixed_addr)
            return RemapResult(fixed_addr, removed)
        except BaseException:
            self._regions, self._starts, self._ends, self._gstarts = snapshot
            raise

    def _move(self, src: Region, new_len: int, dest: int) -> None:
        """Unmap ``src`` (a 0-length source stays: that is the shared duplicate)
        and map its attributes at ``dest`` with ``new_len``."""
        self._unmap_range(src.start, src.end)
        self.insert(src.resized(dest, new_len))     # the destination is free

    # --- brk --------------------------------------------------------------------

    def brk(self, new: int) -> int:
        """brk(2) as the syscall (not glibc): returns the break, which is the old
        one when the request is refused (below the heap start -- so 0 queries --,
        over ``data_limit``, or colliding with a mapping within one page)."""
        old = self.brk_value
        if new < self.heap_start:
            return old
        if self.data_limit is not None and new - self.heap_start > self.data_limit:
            return old
        new_end, old_end = page_up(new), page_up(old)
        if new_end == old_end:
            self.brk_value = new
            return new
        if new < old:
            self._unmap_range(new_end, old_end)
            self.brk_value = new
            return new
        if new_end > self.task_size:
            return old
        i = bisect.bisect_right(self._starts, old_end)   # first region after the heap end
        if i > 0 and self._regions[i - 1].end > old_end:
            i -= 1
        if i < len(self._regions) and new_end + PAGE_SIZE > self._gap_start(self._regions[i]):
            return old
        heap = Region(old_end, new_end - old_end, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, ANON, "[heap]", accounted=True)
        try:
            self._replace(i, i, [heap])
        except MmError:
            return old
        self.brk_value = new
        return new

    # --- internals -----------------------------------------------------------------

    def _span(self, start: int, end: int) -> tuple[int, int]:
        """Indices [i, j) of the regions meeting [start, end)."""
        starts = self._starts
        i = bisect.bisect_right(starts, start) - 1
        if i < 0 or self._ends[i] <= start:
            i += 1
        j = bisect.bisect_left(starts, end)
        return i, j if j > i else i

    def _carve(self, i: int, j: int, start: int, end: int
               ) -> tuple[list[Region], list[Region], list[Region]]:
        """Split regions[i:j] at start/end: (left stub, inside pieces, right stub)."""
        left: list[Region] = []
        inside: list[Region] = []
        right: list[Region] = []
        for r in self._regions[i:j]:
            rs = r.start
            re_ = rs + r.length
            if (rs < start or re_ > end) and r.name in SPECIAL_MAPPINGS:
                # Linux's special mappings refuse a split (vm_ops->may_split):
                # before anything changed, as there
                raise _fail(errno.EINVAL, f"{r.name} cannot be split")
            if rs < start:
                left.append(r.slice(rs, start))
                rs = start
            if re_ > end:
                inside.append(r.slice(rs, end))
                right.append(r.slice(end, re_))
            else:
                inside.append(r if rs == r.start else r.slice(rs, re_))
        return left, inside, right

    def _unmap_range(self, start: int, end: int) -> list[Region]:
        if start >= end:
            return []
        i, j = self._span(start, end)
        if i == j:
            return []
        if j == i + 1:
            # within one region (the common munmap): the whole of it, or one end
            # cut off, without carving and re-merging the neighbourhood
            regions = self._regions
            r = regions[i]
            rs = r.start
            re_ = rs + r.length
            if start <= rs and end >= re_:
                # a gap stays where it was: its neighbours cannot meet
                del regions[i], self._starts[i], self._ends[i], self._gstarts[i]
                return [r]
            if start <= rs:                      # the head goes, [end, re_) stays
                gone, rest, k = r.slice(rs, end), r.slice(end, re_), i + 1
            elif end >= re_:                     # the tail goes, [rs, start) stays
                gone, rest, k = r.slice(start, re_), r.slice(rs, start), i - 1
            else:
                k = -2                           # a split in two: the general path
            # the rest joins the neighbour on its far side exactly when the
            # region did; the record keeps none such, but if it did, merge
            if (k != -2 and r.name not in SPECIAL_MAPPINGS
                    and not (0 <= k < len(regions) and (
                        _joins(regions[k], rest) if k < i else _joins(rest, regions[k])))):
                rst = rest.start
                regions[i] = rest
                self._starts[i] = rst
                self._ends[i] = rst + rest.length
                self._gstarts[i] = (max(rst - STACK_GUARD_GAP, 0) if rest.flags & MAP_GROWSDOWN
                                    else rst)
                return [gone]
        left, removed, right = self._carve(i, j, start, end)
        left += right
        self._replace(i, j, left)
        return removed

    def _replace(self, i: int, j: int, new: list[Region]) -> None:
        """regions[i:j] = new, merged with each other and the two neighbours;
        refuses (ENOMEM, nothing changed) past max_map_count."""
        regions = self._regions
        n = len(regions)
        lo = i - 1 if i > 0 else 0
        hi = j + 1 if j < n else n
        seq = regions[lo:i]
        seq += new
        seq += regions[j:hi]
        merged: list[Region] = []
        last: Region | None = None
        for r in seq:
            # ``last.joins(r)``, inline (the hot path of every change)
            if (last is not None and last.start + last.length == r.start
                    and last.prot == r.prot and last.flags == r.flags
                    and last.name == r.name and last.accounted == r.accounted
                    and r.backing.follows(last.backing, last.length)):
                last = Region(last.start, last.length + r.length, last.prot, last.flags,
                              last.backing, last.name, last.accounted)
                merged[-1] = last
            else:
                merged.append(r)
                last = r
        if n - (hi - lo) + len(merged) > self.max_map_count:
            raise _fail(errno.ENOMEM, "too many mappings")
        regions[lo:hi] = merged
        self._starts[lo:hi] = [r.start for r in merged]
        self._ends[lo:hi] = [r.start + r.length for r in merged]
        self._gstarts[lo:hi] = [max(r.start - STACK_GUARD_GAP, 0) if r.flags & MAP_GROWSDOWN
                                else r.start for r in merged]


# --- reading /proc/PID/maps ----------------------------------------------------------


class MapsEntry(NamedTuple):
    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    name: str


def parse_maps(text: str) -> list[MapsEntry]:
    """Parse /proc/PID/maps text (the host's, or :meth:`AddressSpace.format_maps`)."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split(maxsplit=5)
        lo, hi = parts[0].split("-")
        entries.append(MapsEntry(int(lo, 16), int(hi, 16), parts[1], int(parts[2], 16),
                                 parts[3], int(parts[4]), parts[5] if len(parts) > 5 else ""))
    return entries
