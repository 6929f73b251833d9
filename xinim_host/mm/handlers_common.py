"""What MM's handlers share: per-process server state, who may send what, undo
records for changes the host has yet to apply, and MAP_SHARED write-back
bookkeeping.

The hosted model: a handler changes the record at once and answers a
``token``; the kernel then makes the host apply the change.  If the host
refuses, the kernel sends MM_UNDO with the token and :func:`restore` puts the
record back.  An undo record keeps the regions a change overwrote (they are
immutable, so keeping them is cheap); restoring drops the frames charged in
the touched ranges -- on this rare path MM would rather under-count than leak.
"""
from __future__ import annotations

import errno
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..lib import protocol as p
from ..lib.errors import SysError
from .regions import AddressSpace, FileBacking, Region

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import MmServer

UNDO_KEEP = 32      # undo records kept per process (one per change in flight is enough)


@dataclass(slots=True)
class MmProc:
    """MM's side table of one process (the record itself lives in MemoryAccounting)."""

    host_pid: int = 0
    brk_known: bool = False            # has the host's break been learned (MM_SET_BRK)?
    wb_fds: dict[Hashable, int] = field(default_factory=dict)   # file vnode -> hidden fd
    undos: dict[int, Undo] = field(default_factory=dict)        # token -> record, oldest first

    def child(self, host_pid: int) -> MmProc:
        # fork: the VFS copies the fd table, so the hidden write-back fds stay valid
        return MmProc(host_pid, self.brk_known, dict(self.wb_fds))


# Not frozen (its __init__ would set each field through object.__setattr__,
# ~3x the cost; every memory call makes one); never assigned to.
@dataclass(slots=True)
class Span:
    """[lo, hi) of the record as it was before a change: the regions in ``saved``."""

    lo: int
    hi: int
    saved: tuple[Region, ...]


@dataclass(slots=True)
class Undo:
    """What an MM change did, so it can be put back if the host refuses it."""

    spans: list[Span]
    brk: int | None = None                                        # the old break
    wb_added: Hashable | None = None                              # registered write-back vnode
    wb_dropped: dict[Hashable, int] = field(default_factory=dict)  # released ones


# --- who may send -----------------------------------------------------------------------


def from_kernel(req: Request) -> Any:
    """The body of a request only the kernel or PM may send (EPERM otherwise)."""
    if not p.trusted_sender(req.msg.m_source):
        raise SysError(errno.EPERM, "MM changes come from the kernel or PM")
    return req.msg.body


# --- snapshots and undo ---------------------------------------------------------------------


def whole(space: AddressSpace, lo: int, hi: int) -> Span:
    """The whole regions meeting [lo, hi), and the span they cover together with it."""
    saved = tuple(space.overlapping(lo, hi - lo)) if hi > lo else ()
    if saved:
        lo, hi = min(lo, saved[0].start), max(hi, saved[-1].end)
    return Span(lo, hi, saved)


def restore(srv: MmServer, pid: int, undo: Undo) -> list[int]:
    """Put the record back as ``undo`` saw it; returns write-back fds to close."""
    acct = srv.acct
    space = acct.space(pid)
    proc = srv.proc(pid)
    for span in reversed(undo.spans):
        if span.hi > span.lo:
            acct.release(pid, span.lo, span.hi - span.lo)
            space.unmap(span.lo, span.hi - span.lo)
            for region in span.saved:
                space.commit(region)
    if undo.brk is not None:
        space.brk_value = undo.brk
    proc.wb_fds.update(undo.wb_dropped)
    if undo.wb_added is not None:
        return orphaned_fds(space, proc, [undo.wb_added])
    return []


# --- MAP_SHARED write-back ------------------------------------------------------------------


def shared_file(r: Region) -> bool:
    return r.shared and isinstance(r.backing, FileBacking)


def written_back(r: Region) -> bool:
    """A MAP_SHARED file map whose stores the kernel must copy to the file (not
    one of the VFS's memfd mirrors, whose pages are the file's own)."""
    return shared_file(r) and not r.backing.mirror  # type: ignore[union-attr]


def flush_entries(proc: MmProc, pieces: Iterable[Region]) -> list[tuple[int, int, int, int]]:
    """MM_RANGE entries for the MAP_SHARED file pieces among ``pieces`` that have a
    write-back fd: the kernel writes them to the file before the host drops them."""
    out = []
    for r in pieces:
        if written_back(r):
            fd = proc.wb_fds.get(r.backing.vnode)  # type: ignore[union-attr]
            if fd is not None:
                out.append((r.start, r.length, r.backing.offset, fd))
    return out


def orphaned_fds(space: AddressSpace, proc: MmProc, vnodes: Iterable[Hashable],
                 undo: Undo | None = None) -> list[int]:
    """Write-back fds of ``vnodes`` no region of the process maps any more: released
    here (the kernel closes them after the host call; ``undo`` may re-register)."""
    gone = {v for v in vnodes if v in proc.wb_fds}
    if not gone:
        return []
    for r in space:
        if shared_file(r):
            gone.discard(r.backing.vnode)  # type: ignore[union-attr]
            if not gone:
                return []
    fds = []
    for v in gone:
        fd = proc.wb_fds.pop(v)
        if undo is not None:
            undo.wb_dropped[v] = fd
        fds.append(fd)
    return fds


def removed_vnodes(pieces: Iterable[Region]) -> list[Hashable]:
    return [r.backing.vnode for r in pieces if shared_file(r)]  # type: ignore[union-attr]


def change_reply(srv: MmServer, pid: int, result: int, undo: Undo,
                 removed: list[Region]) -> p.MmReply:
    """The answer to a change the host still has to apply: its undo token, the
    shared file pieces to write back first, and the fds to close afterwards."""
    proc = srv.proc(pid)
    data = fds = b""
    if removed:
        entries = flush_entries(proc, removed)
        if entries:
            data = p.pack_ranges(entries[:p.MM_RANGES_MAX])
        vnodes = removed_vnodes(removed)
        if vnodes:
            fds = p.pack_fds(orphaned_fds(srv.acct.space(pid), proc, vnodes, undo))
    return p.MmReply(result=result, token=srv.remember(pid, undo), data=data, fds=fds)
