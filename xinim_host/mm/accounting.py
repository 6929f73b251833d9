"""Per-process page-frame accounting: which frames of the pool each process's
pages hold, shared copy-on-write after fork.

Charging policy (issue 6 asks us to pick one; this is it):

* **Private anonymous pages** (heap, anonymous mmap) are charged when mapped
  with MAP_POPULATE, or when a write-path syscall writes them (``read(2)`` and
  friends filling a user buffer: ``charge(pid, buf, n, write=True)``).  Stores
  the program makes itself are invisible to MM and not charged: MM never polls
  /proc/PID/smaps or pagemap.
* **File-backed pages** (private or shared) are charged when the kernel fills
  them from the file through the VFS at mmap time (``mmap(...,
  charge_bytes=...)``; the default is the whole mapping, the server passes less
  when the file ends earlier).  A map the kernel makes *directly* from a host
  file (host-mount libraries, what ld.so maps -- see kernel/calls/memory.py) is
  not filled: its pages are the host's page cache, one copy shared by every
  process, so nothing is charged at mmap time (Linux's commit accounting leaves
  read-only file maps out too); the private copies of such pages are charged
  like anonymous pages, when a write-path syscall writes them.
* **Shared pages** (MAP_SHARED, anonymous or file) belong to their object: one
  frame per object page, one reference per process page that maps it.
* **fork** gives the child a reference to every frame of the parent.  A
  CLONE_VM child (vfork, what shells and posix_spawn use) gets no copy: it
  shares the parent's record -- regions and frames, charged once -- until its
  exec or exit drops only its own reference to it.  A
  write-path write to a private page whose frame is still shared gives the
  writer a fresh frame (the copy of copy-on-write); the other side keeps the old.
* munmap, MAP_FIXED replacement, brk and mremap shrinking, madvise(DONTNEED),
  exec and exit drop references; a frame returns to the pool at zero.
* **Overcommit** follows Linux's heuristic mode (vm.overcommit_memory=0): one
  private writable (or shared anonymous) mapping, brk step or mremap growth
  larger than the whole pool is ENOMEM at once, even though it is not charged.

Every operation counts the frames it needs and compares with the free frames
*before* changing anything, so exhausting the pool is an ENOMEM answer
(:class:`OutOfFrames`) with the record and the pool exactly as before.
"""
from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field

from .errors import MmError, OutOfFrames
from .frames import FrameAllocator
from ..lib.vm_abi import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_NORESERVE,
    MAP_POPULATE,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_WRITE,
    page_down,
    page_up,
)
from .regions import ANON, AddressSpace, Backing, MapResult, Region, RemapResult

ObjectPage = tuple[Hashable, int]   # (backing object key, page index in the object)


@dataclass(frozen=True)
class Usage:
    """Frames of one process (what ``xinim-ps --mem`` prints)."""

    used: int           # distinct frames this process references
    shared: int         # of those, also referenced by another process (COW or MAP_SHARED)
    private: int        # referenced by this process only
    mapped_pages: int   # virtual size of the record, in pages


@dataclass
class _Proc:
    """One process's address space and its pages' frames."""

    space: AddressSpace
    pages: dict[int, int] = field(default_factory=dict)   # page address -> frame
    users: int = 1      # processes sharing this record (CLONE_VM children)


class MemoryAccounting:
    """Address spaces of all processes plus the frame pool they draw from."""

    def __init__(self, frames: FrameAllocator | None = None) -> None:
        self.frames = frames if frames is not None else FrameAllocator()
        self._procs: dict[int, _Proc] = {}
        self._objects: dict[ObjectPage, int] = {}   # shared object page -> frame
        self._object_of: dict[int, ObjectPage] = {}  # and back

    # --- processes --------------------------------------------------------------

    def add(self, pid: int, space: AddressSpace | None = None) -> AddressSpace:
        """Start keeping ``pid`` (a new process, e.g. init or one adopted at exec)."""
        if pid in self._procs:
            raise ValueError(f"pid {pid} already has an address space")
        self._procs[pid] = _Proc(space if space is not None else AddressSpace())
        return self._procs[pid].space

    def __contains__(self, pid: object) -> bool:
        return pid in self._procs

    def pids(self) -> list[int]:
        return sorted(self._procs)

    def spaces(self) -> list[tuple[int, AddressSpace]]:
        """One (pid, record) per distinct record: CLONE_VM sharers count once."""
        seen: set[int] = set()
        out = []
        for pid in sorted(self._procs):
            proc = self._procs[pid]
            if id(proc) not in seen:
                seen.add(id(proc))
                out.append((pid, proc.space))
        return out

    def shared(self, pid: int) -> bool:
        """Does ``pid`` share its record with another process (CLONE_VM)?"""
        proc = self._procs.get(pid)
        return proc is not None and proc.users > 1

    def space(self, pid: int) -> AddressSpace:
        return self._proc(pid).space

    def fork(self, parent: int, child: int) -> AddressSpace:
        """The child gets a copy of the record and a reference to every frame."""
        p = self._proc(parent)
        if child in self._procs:
            raise ValueError(f"pid {child} already has an address space")
        for frame in p.pages.values():
            self.frames.share(frame)
        self._procs[child] = _Proc(p.space.copy(), dict(p.pages))
        return self._procs[child].space

    def share(self, parent: int, child: int) -> AddressSpace:
        """A CLONE_VM child: the parent's very record (and frames) under a second
        pid, until the child's exec or exit drops its reference."""
        p = self._proc(parent)
        if child in self._procs:
            raise ValueError(f"pid {child} already has an address space")
        p.users += 1
        self._procs[child] = p
        return p.space

    def exec(self, pid: int, space: AddressSpace) -> list[Region]:
        """Replace the record (execve); returns the old regions (write back shared ones)."""
        old = self.exit(pid)
        self._procs[pid] = _Proc(space)
        return old

    def exit(self, pid: int) -> list[Region]:
        """Drop every reference of ``pid`` and forget it; returns its regions
        (none while another process still shares the record: they live on)."""
        proc = self._proc(pid)
        if proc.users > 1:
            proc.users -= 1
            del self._procs[pid]
            return []
        for frame in proc.pages.values():
            self._drop(frame)
        del self._procs[pid]
        return list(proc.space)

    # --- the memory syscalls, charged per the policy -----------------------------------

    def mmap(self, pid: int, addr: int, length: int, prot: int, flags: int,
             backing: Backing = ANON, offset: int = 0, name: str = "", *,
             charge_bytes: int | None = None) -> MapResult:
        """mmap(2) on ``pid``'s record, charging ``charge_bytes`` from the start of
        the mapping (default: all of it for MAP_POPULATE or a file, else none)."""
        proc = self._proc(pid)
        region = proc.space.check_map(addr, length, prot, flags, backing, offset, name)
        if charge_bytes is None:
            populate = flags & MAP_POPULATE or not flags & MAP_ANONYMOUS
            charge_bytes = region.length if populate else 0
        charge_end = region.start + min(page_up(max(charge_bytes, 0)), region.length)
        if region.length >> PAGE_SHIFT > self.frames.total_pages:
            self._check_overcommit(region, region.length >> PAGE_SHIFT)
        # a range the record has free holds no charged page (frames live only in
        # mapped regions): nothing to reclaim or release -- the common mmap.
        # Only MAP_FIXED may land on mappings (check_map found or checked a free
        # range for every other map)
        fresh = not flags & MAP_FIXED or proc.space.is_free(region.start, region.length)
        if charge_end == region.start:
            # nothing to charge (an anonymous map without MAP_POPULATE): no frame
            # count to check, only the replaced range's frames to drop
            if fresh:
                proc.space.insert(region)
                return MapResult(region, [])
            replaced = proc.space.commit(region)
            self._release(proc, region.start, region.end)
            return MapResult(region, replaced)
        need = self._need_new(region, region.start, charge_end)
        if need > self.frames.free_pages + (
                0 if fresh else self._reclaimable(proc, region.start, region.end)):
            raise OutOfFrames(f"mmap needs {need} frames, {self.frames.free_pages} free")
        replaced = proc.space.commit(region)
        if not fresh:
            self._release(proc, region.start, region.end)
        try:
            self._charge(proc, region.start, charge_end, write=False, strict=True)
        except MmError:     # cannot happen after the check above; never leave it half-done
            proc.space.unmap(region.start, region.length)
            self._release(proc, region.start, region.end)
            raise
        return MapResult(region, replaced)

    def munmap(self, pid: int, addr: int, length: int) -> list[Region]:
        proc = self._proc(pid)
        removed = proc.space.unmap(addr, length)
        self._release(proc, addr, addr + page_up(length))
        return removed

    def mprotect(self, pid: int, addr: int, length: int, prot: int) -> None:
        self._proc(pid).space.protect(addr, length, prot)

    def mremap(self, pid: int, old_addr: int, old_len: int, new_len: int, may_move: bool,
               fixed_addr: int | None = None) -> RemapResult:
        proc = self._proc(pid)
        old_len, new_len = page_up(old_len), page_up(new_len)
        vma = proc.space.find(old_addr)
        if vma is not None and new_len > old_len:
            self._check_overcommit(vma, (new_len - old_len) >> PAGE_SHIFT)
        result = proc.space.remap(old_addr, old_len, new_len, may_move, fixed_addr)
        for r in result.removed:          # shrunk tail, MREMAP_FIXED target
            self._release(proc, r.start, r.end)
        if result.addr != old_addr:       # the kept pages moved with their frames
            self._move(proc, old_addr, result.addr, min(old_len, new_len))
        return result

    def brk(self, pid: int, new: int) -> int:
        """brk(2): the resulting break (the old one when refused)."""
        proc = self._proc(pid)
        space = proc.space
        old = space.brk_value
        grow = page_up(new) - page_up(old)
        if new >= space.heap_start and grow >> PAGE_SHIFT > self.frames.total_pages:
            return old                    # overcommit refuses; brk reports the old break
        result = space.brk(new)
        if page_up(result) < page_up(old):
            self._release(proc, page_up(result), page_up(old))
        return result

    def discard(self, pid: int, addr: int, length: int) -> int:
        """madvise(MADV_DONTNEED): drop the frames of the range (the pages read
        back as zero or file contents later).  Returns the references dropped."""
        proc = self._proc(pid)
        if addr & (PAGE_SIZE - 1):
            raise MmError(errno.EINVAL, "unaligned address")
        return self._release(proc, addr, addr + page_up(length))

    # --- charging --------------------------------------------------------------------

    def charge(self, pid: int, addr: int, length: int, *, write: bool = False,
               strict: bool = False) -> int:
        """Charge the pages of [addr, addr+length) per the policy: a frame for each
        page that has none; with ``write`` also a private copy for each private page
        whose frame is shared (COW).  Pages outside the record, or read-only ones
        when ``write``, are skipped -- the host kernel decides EFAULT -- unless
        ``strict``, which raises EFAULT for them instead.  All or nothing; returns
        the frames newly allocated."""
        proc = self._proc(pid)
        if length <= 0:
            return 0
        return self._charge(proc, page_down(addr), page_up(addr + length), write, strict)

    def release(self, pid: int, addr: int, length: int) -> int:
        """Drop ``pid``'s references in the range (the record is left alone)."""
        proc = self._proc(pid)
        return self._release(proc, page_down(addr), page_up(addr + length))

    def frame_of(self, pid: int, addr: int) -> int | None:
        """The frame charged for the page holding ``addr``, if any."""
        return self._proc(pid).pages.get(page_down(addr))

    def usage(self, pid: int) -> Usage:
        proc = self._proc(pid)
        own = Counter(proc.pages.values())     # a process may map one object page twice
        shared = sum(1 for f, n in own.items() if self.frames.refcount(f) > n)
        return Usage(used=len(own), shared=shared, private=len(own) - shared,
                     mapped_pages=proc.space.mapped_bytes >> PAGE_SHIFT)

    # --- internals -----------------------------------------------------------------

    def _proc(self, pid: int) -> _Proc:
        try:
            return self._procs[pid]
        except KeyError:
            raise MmError(errno.ESRCH, f"no address space for pid {pid}") from None

    def _check_overcommit(self, region: Region, pages: int) -> None:
        if pages <= self.frames.total_pages:      # the common case: nothing to ask
            return
        accountable = (region.flags & MAP_NORESERVE == 0
                       and ((not region.shared and region.prot & PROT_WRITE)
                            or (region.shared and region.flags & MAP_ANONYMOUS)))
        if accountable:
            raise OutOfFrames(f"{pages} pages exceed the pool of {self.frames.total_pages}")

    @staticmethod
    def _object_page(region: Region, page: int) -> ObjectPage:
        key = region.backing.object_key()
        return key, (region.backing.offset + page - region.start) >> PAGE_SHIFT

    def _need_new(self, region: Region, start: int, end: int) -> int:
        """Frames a not-yet-installed region needs to charge [start, end)."""
        if not region.shared:
            return (end - start) >> PAGE_SHIFT
        return sum(1 for page in range(start, end, PAGE_SIZE)
                   if self._object_page(region, page) not in self._objects)

    def _reclaimable(self, proc: _Proc, start: int, end: int) -> int:
        """Frames releasing [start, end) certainly returns to the pool: private
        ones referenced once (shared-object frames are left out on purpose, so
        a re-map of the same object can only need fewer than counted)."""
        return sum(1 for page in self._pages_in(proc, start, end)
                   if self.frames.refcount(proc.pages[page]) == 1
                   and proc.pages[page] not in self._object_of)

    def _charge(self, proc: _Proc, start: int, end: int, write: bool, strict: bool) -> int:
        todo: list[tuple[int, Region]] = []
        need = 0
        cursor = start
        for r in proc.space.overlapping(start, end - start):
            if strict and r.start > cursor:
                raise MmError(errno.EFAULT, f"hole at {cursor:#x}")
            if strict and write and not r.prot & PROT_WRITE:
                raise MmError(errno.EFAULT, f"region at {r.start:#x} is not writable")
            cursor = r.end
            if write and not r.prot & PROT_WRITE:
                continue
            for page in range(max(r.start, start), min(r.end, end), PAGE_SIZE):
                frame = proc.pages.get(page)
                if frame is None:
                    todo.append((page, r))
                    if not r.shared or self._object_page(r, page) not in self._objects:
                        need += 1
                elif write and not r.shared and self.frames.refcount(frame) > 1:
                    todo.append((page, r))
                    need += 1
        if strict and cursor < end:
            raise MmError(errno.EFAULT, f"hole at {cursor:#x}")
        if need > self.frames.free_pages:
            raise OutOfFrames(f"{need} frames needed, {self.frames.free_pages} free")
        allocated = 0
        for page, r in todo:
            if r.shared:
                key = self._object_page(r, page)
                frame = self._objects.get(key)
                if frame is None:
                    frame = self.frames.alloc(0)
                    self._objects[key] = frame
                    self._object_of[frame] = key
                    allocated += 1
                else:
                    self.frames.share(frame)
            else:
                frame = self.frames.alloc(0)
                allocated += 1
                old = proc.pages.get(page)
                if old is not None:            # copy-on-write break
                    self._drop(old)
            proc.pages[page] = frame
        return allocated

    def _pages_in(self, proc: _Proc, start: int, end: int) -> list[int]:
        """Charged page addresses in [start, end): walk whichever is shorter."""
        if (end - start) >> PAGE_SHIFT <= len(proc.pages):
            return [p for p in range(start, end, PAGE_SIZE) if p in proc.pages]
        return [p for p in proc.pages if start <= p < end]

    def _release(self, proc: _Proc, start: int, end: int) -> int:
        if not proc.pages:                        # nothing charged at all
            return 0
        pages = self._pages_in(proc, start, end)
        for page in pages:
            self._drop(proc.pages.pop(page))
        return len(pages)

    def _move(self, proc: _Proc, old: int, new: int, length: int) -> None:
        if not proc.pages:                        # nothing charged at all
            return
        moved = {page: proc.pages.pop(page) for page in self._pages_in(proc, old, old + length)}
        for page, frame in moved.items():
            proc.pages[page - old + new] = frame

    def _drop(self, frame: int) -> None:
        if self.frames.release(frame):
            key = self._object_of.pop(frame, None)
            if key is not None:
                del self._objects[key]
