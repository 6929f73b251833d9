"""System V shared memory, owned by MM: the per-key segment table and its handlers.

A segment's pages are one host memfd that MM holds (``Segment.fd``).  shmat
records the attach in the caller's address space as a region with a
:class:`~.regions.SysvBacking`, and the kernel's handler (kernel/calls/ipc.py)
has the tracee open the memfd through ``/proc/<MM's host pid>/fd/N`` and map
it ``MAP_SHARED|MAP_FIXED`` at MM's address: every attaching process maps the
very same pages, fork inherits them (a host MAP_SHARED mapping), exec and exit
drop them with the image.  The memfd is private to this XINIM system (only
its own tracees are told the path) and closed when the segment is destroyed.

``shm_nattch`` is not a counter kept in step by hand: it is the number of
regions that map the segment, counted over every address space when asked
(Linux counts vmas too).  A segment removed with IPC_RMID lives on (key
IPC_PRIVATE, SHM_DEST in its mode) until the last of those regions goes --
:meth:`ShmTable.collect`, after every MM request while one such segment exists.
"""
from __future__ import annotations

import errno
import itertools
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..lib import protocol as p
from ..lib import sysv_abi as sv
from ..lib.errors import SysError
from ..lib.vm_abi import (
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_SHARED,
    PAGE_SHIFT,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    page_up,
)
from .handlers_common import Span, Undo, from_kernel
from .regions import SysvBacking

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import MmServer

log = logging.getLogger(__name__)
_objects = itertools.count(1)


@dataclass(slots=True)
class Segment:
    """A System V shared memory segment: its ids, permissions, size and host memfd."""

    ident: int
    perm: sv.IpcPerm
    size: int
    fd: int                    # the host memfd holding the pages
    obj: int                   # SysvBacking.obj
    cpid: int
    lpid: int = 0
    atime: int = 0
    dtime: int = 0
    ctime: int = 0
    removed: bool = False

    @property
    def host_path(self) -> bytes:
        return f"/proc/{os.getpid()}/fd/{self.fd}".encode()


class ShmTable:
    """Every segment of the system, by id and by key."""

    def __init__(self, srv: MmServer) -> None:
        self.srv = srv
        self.ids = sv.IdTable(sv.SHMMNI)          # its limit is kernel/shmmni
        self.shmmax = sv.SHMMAX                   # /proc/sys/kernel/shmmax and shmall:
        self.shmall = sv.SHMALL                   # root may change them (MM_SHM_LIMITS)
        self.doomed = 0               # removed segments still attached somewhere
        self.total_pages = 0

    # --- counting attaches ----------------------------------------------------------

    def nattch(self, seg: Segment) -> int:
        acct = self.srv.acct
        n = 0
        for _, space in acct.spaces():      # a CLONE_VM sharer's attach is the same one
            for r in space:
                if isinstance(r.backing, SysvBacking) and r.backing.obj == seg.obj:
                    n += 1
        return n

    def mapped(self, obj: int) -> bool:
        """Does any region still map segment object ``obj``?  (Stops at the first.)"""
        acct = self.srv.acct
        for _, space in acct.spaces():
            for r in space:
                if isinstance(r.backing, SysvBacking) and r.backing.obj == obj:
                    return True
        return False

    def collect(self) -> None:
        """Destroy the removed segments no process maps any more."""
        for seg in list(self.ids):
            if seg.removed and not self.mapped(seg.obj):   # type: ignore[attr-defined]
                self.destroy(seg)                          # type: ignore[arg-type]

    def destroy(self, seg: Segment) -> None:
        self.ids.remove(seg.ident, seg.perm.key)
        self.total_pages -= page_up(seg.size) >> PAGE_SHIFT
        if seg.removed:
            self.doomed -= 1
        try:
            os.close(seg.fd)
        except OSError:
            pass

    # --- the calls ------------------------------------------------------------------

    def get(self, ident: int) -> Segment:
        seg = self.ids.get(ident)
        if seg is None:
            raise SysError(errno.EINVAL, f"no segment {ident}")
        return seg  # type: ignore[return-value]

    def shmget(self, pid: int, key: int, size: int, flg: int, euid: int, egid: int) -> int:
        if key != sv.IPC_PRIVATE:
            ident = self.ids.by_key.get(key)
            if ident is not None:
                seg = self.get(ident)
                if flg & sv.IPC_CREAT and flg & sv.IPC_EXCL:
                    raise SysError(errno.EEXIST)
                if seg.size < size:
                    raise SysError(errno.EINVAL, "existing segment is smaller")
                if not seg.perm.allows(euid, egid, (), flg & 0o777):
                    raise SysError(errno.EACCES)
                return seg.ident
            if not flg & sv.IPC_CREAT:
                raise SysError(errno.ENOENT)
        if size < sv.SHMMIN or size > self.shmmax:
            raise SysError(errno.EINVAL, "size out of range")
        pages = page_up(size) >> PAGE_SHIFT
        if self.total_pages + pages > self.shmall:
            raise SysError(errno.ENOSPC)
        if flg & sv.SHM_HUGETLB:
            # Linux hugetlb_file_setup: who is neither privileged nor in the
            # hugetlb_shm_group (0) may not (EPERM: MM does not see RLIMIT_MEMLOCK);
            # the others find XINIM's huge page pool empty (/proc/meminfo)
            raise SysError(errno.EPERM if euid != 0 and egid != 0 else errno.ENOMEM)
        ident = self.ids.new_id()
        if ident is None:
            raise SysError(errno.ENOSPC, "SHMMNI segments exist")
        try:
            fd = os.memfd_create(f"SYSV{key & 0xFFFFFFFF:08x}", os.MFD_CLOEXEC)
        except OSError as exc:
            raise SysError(errno.ENOMEM, f"no memfd: {exc}") from None
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            os.close(fd)
            raise SysError(errno.ENOMEM if exc.errno in (errno.EFBIG, errno.EINVAL)
                           else exc.errno or errno.ENOMEM) from None
        seg = Segment(ident, sv.IpcPerm(key, euid, egid, euid, egid, flg & 0o777,
                                        ident // sv.IPCMNI),
                      size, fd, next(_objects), pid, ctime=int(time.time()))
        self.ids.add(ident, key, seg)
        self.total_pages += pages
        return ident

    def rmid(self, seg: Segment) -> None:
        if seg.removed:
            return
        seg.removed = True
        seg.perm.mode |= sv.SHM_DEST
        self.doomed += 1
        # the key is free at once: a later shmget(key, IPC_CREAT) makes a new one
        if seg.perm.key != sv.IPC_PRIVATE and self.ids.by_key.get(seg.perm.key) == seg.ident:
            del self.ids.by_key[seg.perm.key]
        seg.perm.key = sv.IPC_PRIVATE

    def stat(self, seg: Segment) -> bytes:
        return sv.SHMID64_DS.pack(seg.perm.pack(), seg.size, seg.atime, seg.dtime, seg.ctime,
                                  seg.cpid, seg.lpid, self.nattch(seg), 0, 0)

    def listing(self) -> bytes:
        out = [sv.SHM_HEADER]
        for seg in self.ids:
            s: Segment = seg  # type: ignore[assignment]
            out.append("%10d %10d  %4o %21u %5u %5u  %5u %5u %5u %5u %5u %10d %10d %10d %21u %21u\n"
                       % (s.perm.key, s.ident, s.perm.mode, s.size, s.cpid, s.lpid,
                          self.nattch(s), s.perm.uid, s.perm.gid, s.perm.cuid, s.perm.cgid,
                          s.atime, s.dtime, s.ctime, self._rss(s), 0))
        return "".join(out).encode()

    @staticmethod
    def _rss(seg: Segment) -> int:
        try:
            return os.fstat(seg.fd).st_blocks * 512
        except OSError:
            return 0


# --- handlers ------------------------------------------------------------------------------


def do_shmget(srv: MmServer, req: Request) -> int:
    b = from_kernel(req)
    return srv.shm.shmget(req.caller, b.key, b.size, b.shmflg, b.euid, b.egid)


def do_shmat(srv: MmServer, req: Request) -> p.MmShmatReply:
    b = from_kernel(req)
    pid = req.caller
    addr, flg = b.addr, b.shmflg
    if b.shmid < 0:
        raise SysError(errno.EINVAL)
    if addr:
        if addr & (sv.SHMLBA - 1):
            if not flg & sv.SHM_RND:
                raise SysError(errno.EINVAL, "unaligned address without SHM_RND")
            addr &= ~(sv.SHMLBA - 1)
            if not addr and flg & sv.SHM_REMAP:
                raise SysError(errno.EINVAL)
        flags = MAP_SHARED | (MAP_FIXED if flg & sv.SHM_REMAP else MAP_FIXED_NOREPLACE)
    elif flg & sv.SHM_REMAP:
        raise SysError(errno.EINVAL, "SHM_REMAP without an address")
    else:
        flags = MAP_SHARED
    if flg & sv.SHM_RDONLY:
        prot, want = PROT_READ, sv.S_IRUGO
    else:
        prot, want = PROT_READ | PROT_WRITE, sv.S_IRUGO | sv.S_IWUGO
    if flg & sv.SHM_EXEC:
        prot |= PROT_EXEC
        want |= sv.S_IXUGO
    seg = srv.shm.get(b.shmid)
    if not seg.perm.allows(b.euid, b.egid, (), want):
        raise SysError(errno.EACCES)
    backing = SysvBacking(seg.obj, 0, seg.ident, seg.perm.key)
    try:
        res = srv.acct.mmap(pid, addr, seg.size, prot, flags, backing, 0, charge_bytes=0)
    except SysError as exc:
        if exc.errno == errno.EEXIST:         # in use, no SHM_REMAP: Linux says EINVAL
            raise SysError(errno.EINVAL, "range in use") from None
        raise
    seg.atime, seg.lpid = int(time.time()), pid
    undo = Undo([Span(res.region.start, res.region.end, tuple(res.replaced))])
    return p.MmShmatReply(result=res.addr, token=srv.remember(pid, undo),
                          length=res.region.length, prot=prot, host_path=seg.host_path)


def do_shmdt(srv: MmServer, req: Request) -> p.MmReply:
    """Every region of the segment attached at ``addr`` (it may have been split
    by mprotect or partly unmapped), as Linux's shmdt."""
    b = from_kernel(req)
    pid = req.caller
    if b.addr & (sv.SHMLBA - 1):
        raise SysError(errno.EINVAL)
    space = srv.acct.space(pid)
    first = space.find(b.addr)
    if (first is None or first.start != b.addr or not isinstance(first.backing, SysvBacking)
            or first.backing.offset != 0):
        raise SysError(errno.EINVAL, "no attach starts there")
    obj = first.backing.obj
    seg = next((s for s in srv.shm.ids if s.obj == obj), None)  # type: ignore[attr-defined]
    end = b.addr + page_up(seg.size if seg is not None else first.length)
    pieces = [r for r in space.overlapping(b.addr, end - b.addr)
              if isinstance(r.backing, SysvBacking) and r.backing.obj == obj
              and r.backing.offset == r.start - b.addr]
    spans = []
    for r in pieces:
        spans.append(Span(r.start, r.end, (r,)))
        srv.acct.munmap(pid, r.start, r.length)
    if seg is not None:
        seg.dtime, seg.lpid = int(time.time()), pid
    ranges = [(r.start, r.length, 0, -1) for r in pieces]
    return p.MmReply(token=srv.remember(pid, Undo(spans)),
                     data=p.pack_ranges(ranges[:p.MM_RANGES_MAX]))


def do_shmctl(srv: MmServer, req: Request) -> Any:
    b = from_kernel(req)
    shm = srv.shm
    cmd = b.cmd & ~sv.IPC_64
    if cmd == sv.IPC_INFO:
        info = sv.SHMINFO64.pack(srv.shm.shmmax, sv.SHMMIN, srv.shm.ids.limit, srv.shm.ids.limit,
                                 srv.shm.shmall, 0, 0, 0, 0)
        return p.MmDataReply(result=max(shm.ids.max_index(), 0), data=info)
    if cmd == sv.SHM_INFO:
        rss = sum(ShmTable._rss(s) for s in shm.ids) >> PAGE_SHIFT  # type: ignore[arg-type]
        info = sv.SHM_INFO_T.pack(len(shm.ids.slots), shm.total_pages, rss, 0, 0, 0)
        return p.MmDataReply(result=max(shm.ids.max_index(), 0), data=info)
    if cmd in (sv.SHM_STAT, sv.SHM_STAT_ANY):
        seg = shm.ids.by_index(b.shmid)
        if seg is None:
            raise SysError(errno.EINVAL)
        if cmd == sv.SHM_STAT and not seg.perm.allows(b.euid, b.egid, (), sv.S_IRUGO):  # type: ignore[attr-defined]
            raise SysError(errno.EACCES)
        return p.MmDataReply(result=seg.ident, data=shm.stat(seg))  # type: ignore[attr-defined, arg-type]
    seg = shm.get(b.shmid)
    if cmd == sv.IPC_STAT:
        if not seg.perm.allows(b.euid, b.egid, (), sv.S_IRUGO):
            raise SysError(errno.EACCES)
        return p.MmDataReply(result=0, data=shm.stat(seg))
    if cmd in (sv.IPC_SET, sv.IPC_RMID):
        if not seg.perm.owner(b.euid):
            raise SysError(errno.EPERM)
        if cmd == sv.IPC_SET:
            if len(b.data) < sv.IPC64_PERM.size:
                raise SysError(errno.EFAULT)
            seg.perm.set(*sv.unpack_perm_set(b.data))
            seg.ctime = int(time.time())
        else:
            shm.rmid(seg)
            shm.collect()
        return p.MmDataReply(result=0)
    if cmd in (sv.SHM_LOCK, sv.SHM_UNLOCK):
        if not seg.perm.owner(b.euid):
            raise SysError(errno.EPERM)
        if cmd == sv.SHM_LOCK:
            seg.perm.mode |= sv.SHM_LOCKED
        else:
            seg.perm.mode &= ~sv.SHM_LOCKED
        return p.MmDataReply(result=0)
    raise SysError(errno.EINVAL, f"shmctl command {b.cmd}")


def do_shm_list(srv: MmServer, req: Request) -> p.MmDataReply:
    b = req.msg.body
    text = srv.shm.listing()
    return p.MmDataReply(result=len(text), data=text[b.offset:b.offset + p.DATA_MAX])


def do_shm_limits(srv: MmServer, req: Request) -> p.MmDataReply:
    """kernel/shmmax, shmall (pages, as Linux counts it) and shmmni; the VFS sets
    them for a root write of /proc/sys, having checked the value as Linux does."""
    b = req.msg.body
    table = srv.shm
    if b.set:
        if req.msg.m_source != p.VFS_PID:
            raise SysError(errno.EPERM, "only the VFS sets the shm limits")
        if b.shmmni > sv.IPCMNI:
            raise SysError(errno.EINVAL)
        table.shmmax, table.shmall, table.ids.limit = b.shmmax, b.shmall, b.shmmni
    data = p.SHM_LIMITS.pack(table.shmmax, table.shmall, table.ids.limit)
    return p.MmDataReply(result=len(data), data=data)
