"""MM's memory calls: brk, mmap (anonymous and file), munmap, mprotect, mremap,
madvise, msync, plus the hosted helpers (undo, set-brk, charge).

Each handler decides on the record and answers at once; the kernel's handler
(``kernel/calls/memory.py``) then applies the decision on the host.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import stat
from typing import TYPE_CHECKING, Any

from ..lib import protocol as p
from ..lib.errors import SysError
from .handlers_common import (
    Span,
    Undo,
    change_reply,
    from_kernel,
    restore,
    written_back,
    whole,
)
from ..lib.vm_abi import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_GROWSDOWN,
    MAP_SHARED,
    PAGE_SHIFT,
    PAGE_SIZE,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    is_aligned,
    page_up,
)
from .regions import ANON, SPECIAL_MAPPINGS as SPECIAL, FileBacking, SysvBacking

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import MmServer

O_PATH = 0o10000000
MADV_DONTNEED, MADV_FREE, MADV_DONTNEED_LOCKED = 4, 8, 24
MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_WIPEONFORK = 12, 13, 18
DISCARDING = frozenset((MADV_DONTNEED, MADV_FREE, MADV_DONTNEED_LOCKED))
MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4
U64 = (1 << 64) - 1


# --- brk ----------------------------------------------------------------------------------


def do_brk(srv: MmServer, req: Request) -> p.MmReply:
    b = from_kernel(req)
    pid = req.caller
    if not srv.proc(pid).brk_known:
        return p.MmReply(status=p.MM_ST_BRK_UNKNOWN)
    space = srv.acct.space(pid)
    old = space.brk_value
    if b.addr == old or b.addr < space.heap_start:     # a query (0) or refused at once
        return p.MmReply(result=old, old=old)
    lo, hi = sorted((page_up(old), page_up(min(b.addr, space.task_size))))
    span = whole(space, lo, hi)
    new = srv.acct.brk(pid, b.addr)
    if new == old:
        return p.MmReply(result=old, old=old)
    token = srv.remember(pid, Undo([span] if hi > lo else [], brk=old))
    return p.MmReply(result=new, old=old, token=token)


def do_set_brk(srv: MmServer, req: Request) -> int:
    """The host's break, learned by the kernel: the heap starts there unless the
    imported layout already has a [heap] (then the break lies at or above it)."""
    b = from_kernel(req)
    pid = req.caller
    proc = srv.proc(pid)
    space = srv.acct.space(pid)
    if proc.brk_known:          # another thread taught MM first: MM's value stands
        return space.brk_value
    heap = next((r for r in space if r.name == "[heap]"), None)
    space.heap_start = heap.start if heap is not None and heap.start <= b.brk else b.brk
    space.brk_value = b.brk
    proc.brk_known = True
    return b.brk


# --- mmap -----------------------------------------------------------------------------------


def do_mmap(srv: MmServer, req: Request, fd: FileBacking | None = None) -> p.MmReply:
    """Anonymous mmap; without MAP_ANONYMOUS the record says EBADF (files come as
    MM_MMAP_FILE, with the fd's facts).  ``fd``: the map is of /dev/zero through it."""
    b = from_kernel(req)
    pid = req.caller
    res = srv.acct.mmap(pid, b.addr, b.length, b.prot, b.flags, fd or ANON, b.offset)
    region = res.region
    start = region.start
    undo = Undo([Span(start, start + region.length, tuple(res.replaced))])
    if not res.replaced:            # into a free range: nothing to write back or close
        return p.MmReply(result=start, token=srv.remember(pid, undo))
    return change_reply(srv, pid, start, undo, res.replaced)


def _file_backing(b: Any) -> FileBacking | None:
    if b.open_flags == p.MM_NO_FD or b.open_flags & O_PATH:
        return None                                    # EBADF, in Linux's order
    acc = b.open_flags & os.O_ACCMODE
    return FileBacking(("vfs", b.dev, b.ino), may_read=acc != os.O_WRONLY,
                       may_write=acc == os.O_RDWR,
                       path=b.path.decode(errors="replace"), inode=b.ino,
                       dev=(os.major(b.dev), os.minor(b.dev)), mirror=b.direct == 2)


def do_mmap_file(srv: MmServer, req: Request) -> p.MmReply:
    """mmap of a file.  On an error answer the kernel closes ``wb_fd`` itself."""
    b = from_kernel(req)
    pid = req.caller
    if b.flags & MAP_ANONYMOUS:     # /dev/zero: anonymous, but its fd's access mode counts
        return do_mmap(srv, req, _file_backing(b))
    backing = _file_backing(b)
    if backing is None or not stat.S_ISREG(b.file_mode):
        # Validation and address choice first (EINVAL, EBADF, ENOMEM, EEXIST, EACCES
        # in Linux's order), then "this file has no mmap": a directory, pipe, device
        # (a regular file's map is validated by the mmap itself, below)
        srv.acct.space(pid).check_map(b.addr, b.length, b.prot, b.flags,
                                      backing if backing is not None else ANON, b.offset)
        raise SysError(errno.ENODEV, "only regular files can be mapped")
    # frames for what the kernel fills from the file; a direct host-file map is
    # the host's page cache (see the policy in accounting.py): nothing now
    charge = 0 if b.direct else max(0, min(page_up(b.length & U64), b.size - (b.offset & U64)))
    res = srv.acct.mmap(pid, b.addr, b.length, b.prot, b.flags, backing, b.offset,
                        charge_bytes=charge)
    undo = Undo([Span(res.region.start, res.region.end, tuple(res.replaced))])
    close: list[int] = []
    if b.wb_fd >= 0:
        proc = srv.proc(pid)
        vnode = backing.vnode
        if not res.region.shared or vnode in proc.wb_fds:
            close.append(b.wb_fd)                      # not needed (private, or known)
        else:
            proc.wb_fds[vnode] = b.wb_fd
            undo.wb_added = vnode
    reply = change_reply(srv, pid, res.addr, undo, res.replaced)
    if close:
        reply = p.MmReply(result=reply.result, token=reply.token, data=reply.data,
                          fds=reply.fds + p.pack_fds(close))
    return reply


# --- munmap, mprotect, mremap ------------------------------------------------------------


def do_munmap(srv: MmServer, req: Request) -> p.MmReply:
    b = from_kernel(req)
    pid = req.caller
    space = srv.acct.space(pid)
    end = b.addr + page_up(b.length & U64)
    # Is the host's munmap sure to succeed (MM_ST_SURE: the kernel need not wait
    # for its result)?  Linux (mm/vma.c, vms_gather_munmap_vmas) fails a munmap
    # only (a) when the range lies strictly inside one VMA -- a split into two --
    # and the process is at max_map_count, (b) where a VMA refuses to be split
    # (special mappings: [vdso], [vvar]; MM refuses that first) or is sealed
    # (mseal: not offered).  MM_ST_SPLIT says (a) may apply: the kernel then
    # makes sure of the host's VMA count.  Without it, a range that ends on a
    # region boundary at either side cuts a VMA at its edge at most: the host's
    # VMAs refine the record's regions, so a boundary here is one there too.
    first = space.find(b.addr)
    interior = (first is not None and first.start < b.addr and end < first.start + first.length)
    removed = srv.acct.munmap(pid, b.addr, b.length)
    undo = Undo([Span(b.addr, end, tuple(removed))])
    special = shared = False
    for r in removed:
        special = special or r.name in SPECIAL
        shared = shared or bool(r.flags & MAP_SHARED)
    if special or shared:
        # a shared file piece may need writing back and its fd closing first
        reply = change_reply(srv, pid, 0, undo, removed)
        if special or reply.data or reply.fds:
            return reply
        return _sure(space, interior, reply.token)
    return _sure(space, interior, srv.remember(pid, undo))


def _sure(space: Any, interior: bool, token: int) -> p.MmReply:
    if interior:
        return p.MmReply(status=p.MM_ST_SURE | p.MM_ST_SPLIT, token=token)
    if len(space) * 2 < space.max_map_count:
        return p.MmReply(status=p.MM_ST_SURE, token=token)
    return p.MmReply(token=token)


def do_mprotect(srv: MmServer, req: Request) -> p.MmReply:
    b = from_kernel(req)
    pid = req.caller
    space = srv.acct.space(pid)
    # whole regions: PROT_GROWSDOWN may extend the change down to the region's start
    span = whole(space, b.addr, b.addr + page_up(b.length & U64))
    srv.acct.mprotect(pid, b.addr, b.length, b.prot)
    return change_reply(srv, pid, 0, Undo([span]), [])


def do_mremap(srv: MmServer, req: Request) -> p.MmReply:
    b = from_kernel(req)
    pid = req.caller
    if b.flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP):
        raise SysError(errno.EINVAL, "unknown mremap flags")
    if b.flags & MREMAP_DONTUNMAP:
        # not modelled yet (userfaultfd-style GCs use it); refused rather than faked
        raise SysError(errno.EINVAL, "MREMAP_DONTUNMAP is not supported")
    space = srv.acct.space(pid)
    old_len, new_len = page_up(b.old_len & U64), page_up(b.new_len & U64)
    fixed = b.new_addr if b.flags & MREMAP_FIXED else None
    spans = [whole(space, b.old_addr, b.old_addr + max(old_len, new_len))]
    if fixed is not None:
        spans.append(whole(space, fixed, fixed + new_len))
    src = spans[0].saved[0] if spans[0].saved else None
    res = srv.acct.mremap(pid, b.old_addr, b.old_len, b.new_len,
                          bool(b.flags & MREMAP_MAYMOVE), fixed)
    if fixed is None and res.addr != b.old_addr:
        spans.append(Span(res.addr, res.addr + new_len, ()))   # it was free
    # MM_ST_SURE: private anonymous memory grew, in place or into a range MM keeps
    # free -- as far as MM knows the host cannot refuse it; the kernel checks
    # the host's side of it (the VMA at old_addr, limits) before it does not wait
    plain = (fixed is None and src is not None and src.backing is ANON
             and not src.flags & (MAP_SHARED | MAP_GROWSDOWN) and not src.name)
    if plain and new_len > old_len and not res.removed:
        # (nothing removed: nothing to write back or close)
        return p.MmReply(result=res.addr, token=srv.remember(pid, Undo(spans)),
                         status=p.MM_ST_SURE)
    if plain and new_len < old_len and b.old_addr + old_len <= src.end:  # type: ignore[union-attr]
        # A shrink inside the region: the host munmaps the tail, which fails
        # only as that munmap would (see do_munmap): at max_map_count when the
        # tail lies strictly inside the region (MM_ST_SPLIT: the kernel counts
        # the host's VMAs), never when it ends where the region does.  Private
        # anonymous pieces: nothing to write back or close.
        status = p.MM_ST_SURE
        if b.old_addr + old_len < src.end:                    # type: ignore[union-attr]
            status |= p.MM_ST_SPLIT
        return p.MmReply(result=res.addr, token=srv.remember(pid, Undo(spans)),
                         status=status)
    return change_reply(srv, pid, res.addr, Undo(spans), res.removed)


# --- madvise, msync ------------------------------------------------------------------------


def _clipped(space: Any, lo: int, hi: int) -> tuple[list[Any], bool]:
    """Regions meeting [lo, hi) cut to it, and whether the range has a hole."""
    pieces = [r.slice(max(r.start, lo), min(r.end, hi)) for r in space.overlapping(lo, hi - lo)]
    covered = sum(r.length for r in pieces)
    return pieces, covered < hi - lo


def do_madvise(srv: MmServer, req: Request) -> p.MmReply:
    """DONTNEED and friends drop the frames of the range.  A private *file* range
    is left out of the host call: the host mapping is anonymous, so DONTNEED would
    zero it where Linux re-reads the file (``MM_ST_RANGES`` lists the rest)."""
    b = from_kernel(req)
    pid = req.caller
    if b.advice in (MADV_MERGEABLE, MADV_UNMERGEABLE):
        # XINIM shows no /sys/kernel/mm/ksm: a kernel without CONFIG_KSM, whose
        # madvise says EINVAL before any other check (the host's KSM would not)
        raise SysError(errno.EINVAL, "no KSM")
    if not is_aligned(b.addr):
        raise SysError(errno.EINVAL, "unaligned address")
    length = page_up(b.length & U64)
    if b.advice == MADV_WIPEONFORK and length:
        # Linux refuses it for a file or shared map; the host's map of a private
        # file range is anonymous and would take it (checked for the whole range
        # first: Linux would have marked the anonymous regions before the file's)
        pieces, _ = _clipped(srv.acct.space(pid), b.addr, b.addr + length)
        if any(isinstance(r.backing, (FileBacking, SysvBacking)) for r in pieces):
            raise SysError(errno.EINVAL, "MADV_WIPEONFORK of a file or System V map")
    if b.advice not in DISCARDING or length == 0:
        return p.MmReply()
    space = srv.acct.space(pid)
    pieces, hole = _clipped(space, b.addr, b.addr + length)
    keep = [r for r in pieces if not (not r.shared and isinstance(r.backing, FileBacking))]
    for r in keep:
        srv.acct.release(pid, r.start, r.length)
    status = p.MM_ST_HOLE if hole else 0
    if len(keep) == len(pieces):
        return p.MmReply(status=status)
    ranges: list[tuple[int, int, int, int]] = []
    for r in keep:                                   # adjacent pieces: one host call
        if ranges and ranges[-1][0] + ranges[-1][1] == r.start:
            ranges[-1] = (ranges[-1][0], ranges[-1][1] + r.length, 0, -1)
        else:
            ranges.append((r.start, r.length, 0, -1))
    return p.MmReply(status=status | p.MM_ST_RANGES, data=p.pack_ranges(ranges[:p.MM_RANGES_MAX]))


def do_msync(srv: MmServer, req: Request) -> p.MmReply:
    """The MAP_SHARED file ranges to write back.  MS_ASYNC writes back too: the
    host mapping is not the file's page cache, so nothing else would."""
    b = from_kernel(req)
    pid = req.caller
    if (b.flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or not is_aligned(b.addr)
            or (b.flags & MS_ASYNC and b.flags & MS_SYNC)):
        raise SysError(errno.EINVAL)
    length = page_up(b.length & U64)
    if length == 0:
        return p.MmReply()
    proc = srv.proc(pid)
    lo, hi = b.addr, b.addr + length
    wb_fds = proc.wb_fds
    entries = []
    resume = 0
    covered = 0
    # Only the shared file maps with a write-back fd are cut to the range; for the
    # rest the coverage is enough (an exit's or exec's flush of the whole address
    # space with no such map -- the common case -- slices nothing).
    for r in srv.acct.space(pid).overlapping(lo, length):
        start, end = max(r.start, lo), min(r.end, hi)
        covered += end - start
        if resume or not wb_fds or not written_back(r):
            continue
        fd = wb_fds.get(r.backing.vnode)
        if fd is None:
            continue
        if len(entries) == p.MM_RANGES_MAX:
            resume = start
            continue
        piece = r.slice(start, end)
        entries.append((piece.start, piece.length, piece.backing.offset, fd))
    hole = covered < length
    status = (p.MM_ST_HOLE if hole else 0) | (p.MM_ST_MORE if resume else 0)
    return p.MmReply(status=status, old=resume, data=p.pack_ranges(entries))


# --- undo, charge ----------------------------------------------------------------------------


def do_undo(srv: MmServer, req: Request) -> p.MmReply:
    b = from_kernel(req)
    pid = req.caller
    undo = srv.take_undo(pid, b.token)
    return p.MmReply(fds=p.pack_fds(restore(srv, pid, undo)))


def do_charge(srv: MmServer, req: Request) -> int:
    b = from_kernel(req)
    return srv.acct.charge(req.caller, b.addr, b.length, write=bool(b.write))



# --- remap_file_pages -----------------------------------------------------------------------


def do_remap_file(srv: MmServer, req: Request) -> p.MmReply:
    """remap_file_pages(2) as Linux emulates it (mm/mmap.c): prot must be 0, the
    range must lie in shared mappings of one object, contiguous; it becomes an
    mmap(MAP_SHARED|MAP_FIXED) of that object at ``pgoff`` with the first
    mapping's protection.  Only MAP_NONBLOCK of ``flags`` counts, the rest is
    ignored (as Linux)."""
    b = from_kernel(req)
    pid = req.caller
    start, size = b.start & ~(PAGE_SIZE - 1) & U64, b.size & ~(PAGE_SIZE - 1) & U64
    if b.prot:
        raise SysError(errno.EINVAL, "remap_file_pages: prot must be 0")
    if start + size <= start or start + size > U64:
        raise SysError(errno.EINVAL, "remap_file_pages: empty or wrapping range")
    if b.pgoff + (size >> PAGE_SHIFT) > U64:
        raise SysError(errno.EINVAL, "remap_file_pages: pgoff wraps")
    space = srv.acct.space(pid)
    first = space.find(start)
    if first is None or not first.shared:
        raise SysError(errno.EINVAL, "remap_file_pages: not in a shared mapping")
    key = first.backing.object_key()
    at = first.start
    for r in space.overlapping(start, size):
        if (r.start != at or r.backing.object_key() != key or r.prot != first.prot
                or r.flags != first.flags):
            raise SysError(errno.EINVAL, "remap_file_pages: range spans other mappings")
        at = r.end
    if at < start + size:
        raise SysError(errno.EINVAL, "remap_file_pages: range runs past the mapping")
    backing = first.backing
    if not isinstance(backing, (FileBacking, SysvBacking)):
        # shared anonymous memory: the host's shmem object is the whole truth,
        # and MM's record of it keeps no per-page offsets
        return p.MmReply(result=start)
    if (isinstance(backing, FileBacking) and not backing.mirror
            and backing.vnode in srv.proc(pid).wb_fds):
        # an anonymous host map filled through the VFS and written back through
        # a fd: the host would only shuffle its pages, and the write-back would
        # then put them at the new offsets -- refused rather than corrupt the file
        raise SysError(errno.EINVAL, "remap_file_pages: a written-back shared map")
    if isinstance(backing, SysvBacking) and _last_attach(srv, pid, backing.obj, start, size):
        # Linux's mmap MAP_FIXED unmaps the range first: the IPC_RMID'd segment's
        # last attach goes, the segment with it, and mapping it again fails
        srv.acct.munmap(pid, start, size)
        srv.shm.collect()
        return p.MmReply(result=start, status=p.MM_ST_GONE)
    offset = b.pgoff << PAGE_SHIFT
    res = srv.acct.mmap(pid, start, size, first.prot, MAP_SHARED | MAP_FIXED,
                        dataclasses.replace(backing, offset=0), offset, charge_bytes=0)
    undo = Undo([Span(res.region.start, res.region.end, tuple(res.replaced))])
    return change_reply(srv, pid, start, undo, res.replaced)


def _last_attach(srv: MmServer, pid: int, obj: int, start: int, size: int) -> bool:
    """Is segment ``obj`` removed (IPC_RMID) and mapped nowhere but in
    [start, start+size) of ``pid``?"""
    seg = next((s for s in srv.shm.ids if getattr(s, "obj", None) == obj), None)
    if seg is None or not seg.removed:
        return False
    end = start + size
    mine = srv.acct.space(pid)
    for _, space in srv.acct.spaces():
        for r in space:
            if isinstance(r.backing, SysvBacking) and r.backing.obj == obj and (
                    space is not mine or r.start < start or r.end > end):
                return False
    return True
