"""Memory calls: decided by the Memory Manager (PID 4), applied by the host.

MM validates, picks the address and updates its record; the handler then has
the host kernel make exactly that change in the calling process with injected
syscalls (``HostCall``: anonymous ``mmap`` at MM's address with MAP_FIXED,
``munmap``, ``mprotect``, ``mremap``, ``madvise``, ``brk``).  A host call that
fails is taken back in MM with MM_UNDO, so the record and the real mappings stay
in step.

File descriptors live only in the VFS, so the host kernel cannot map the
program's fd.  A file mapping is made one of two ways, at MM's address either way:

* **Host-mount files** (the VFS's ``VfsFdinfo`` answer carries ``host_path``),
  MAP_PRIVATE, or MAP_SHARED through a fd that is not open for writing -- what
  ld.so does with every library -- are mapped *directly* (``_map_host_file``):
  the kernel opens the host path itself, checks that it is the very file (device
  and inode) the VFS fd refers to, and the tracee maps it through an injected
  ``openat("/proc/<kernel>/fd/N")`` + ``mmap(MAP_FIXED)``; that fd is kept
  for the next maps of the same file -- ld.so maps a library four or five times
  in a row -- and inherited by fork children and exec'd images, which map libc
  and ld.so.cache through it with no injected open (``_open_maps``).  The data
  is the host file's, exactly what a VFS read would return (host mounts are
  pass-through), but shared with the host's page cache: no copy, and Linux's own
  semantics for pages past EOF (SIGBUS) and for file changes under a private map.
  Filling such maps through 4 KiB VFS reads (one sealed IPC round trip each,
  ~1,600 for ``python3 -c pass``) and charging a frame per filled page made
  ``python3 -c pass`` take ~79 ms in a booted system; with direct maps, ~41 ms.  MM is told (``MmMmapFile.direct``) and charges
  no frames for them: their pages are the host's page cache, not copies (see the
  policy in mm/accounting.py).  Anything that does not check out (no host side,
  the path now names another file, the bytes below the caller's red zone not
  writable, the host refusing the map) falls back to the fill below, and MM
  charges the filled pages then (MM_CHARGE).
* **MAP_SHARED maps of ramfs files** map the VFS's memfd mirror of the file
  (``VfsMapCache``, vfs_fuse/mapcache.py) the same way: one set of pages for
  every mapper in every process, coherent with read/write through the VFS,
  SIGBUS past the end of the file; MM records them with ``direct`` 2 (no frames
  charged, nothing written back: the pages are the file's own).
* **Everything else** -- MAP_PRIVATE maps of ramfs files, and MAP_SHARED maps of
  host files open for writing -- is an anonymous host mapping filled from the
  file through VFS reads
  (``_fill``).  A MAP_SHARED one is a *shared* anonymous host mapping (so fork
  shares it, as Linux does), written back to the file through a hidden dup of
  the fd on msync, munmap, replacement and exit/exec (``write_back``,
  :func:`flush_shared`).

MM's decision and the host's application of it are two steps with tracer
round trips in between, so the memory calls of one address space are
serialised (``_serialised``, a FIFO per process): otherwise thread A's munmap,
decided by MM, lets thread B's mmap get the same addresses from MM and map them
on the host *before* A's injected munmap runs -- which then unmaps B's fresh
memory (a SIGSEGV seen with four threads mapping and unmapping at once).
"""
from __future__ import annotations

import errno
import fcntl
import functools
import logging
import os
import resource
import stat
import struct
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import trio

from ..renumber import LINUX_NUMBERS
from ...lib.vm_abi import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_HUGETLB,
    MAP_LOCKED,
    MAP_NONBLOCK,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_TYPE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
    page_up,
)
from ...lib import protocol as p
from ...lib.errors import SysError
from ...lib.linux_abi import AT_FDCWD
from ...lib.procfs import read_proc
from .base import Await, HostCall, Op, Sendrec, SyscallContext, SyscallGen, ask, c_int
from .files import granted_read, local_grants

if TYPE_CHECKING:
    from ..kernel import Kernel

log = logging.getLogger(__name__)

NR_BRK = LINUX_NUMBERS["brk"]
NR_MMAP = LINUX_NUMBERS["mmap"]
NR_MUNMAP = LINUX_NUMBERS["munmap"]
NR_MPROTECT = LINUX_NUMBERS["mprotect"]
NR_MREMAP = LINUX_NUMBERS["mremap"]
NR_MADVISE = LINUX_NUMBERS["madvise"]
NR_OPENAT = LINUX_NUMBERS["openat"]
NR_CLOSE = LINUX_NUMBERS["close"]
RED_ZONE = 128                    # x86-64 ABI: below rsp-128 nothing lives

FILL_BLOCK = 64 << 10             # tracee memory is written in blocks this big
MS_SYNC = 4
DEV_ZERO = os.makedev(1, 5)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


# --- one memory call at a time per address space --------------------------------------

STALE_CHECK = 1.0                 # seconds between checks that the lock holder lives


class _SpaceLock:
    """The memory calls of one process in flight: ``holder`` (the host side of
    the call that runs) and the callers waiting for their turn, first come first
    served.  Released by handing it to the next waiter; dropped when none waits."""

    __slots__ = ("holder", "waiting")

    def __init__(self, holder: Any) -> None:
        self.holder = holder
        # made by the first waiter: most locks are taken and dropped with none
        self.waiting: deque[tuple[Any, trio.Event]] | None = None


_space_locks: dict[tuple[int, int], _SpaceLock] = {}


def _lock_key(c: SyscallContext) -> tuple[int, int]:
    # the host pid too: a XINIM pid reused by a new process is a new address space
    return c.pid, getattr(c.host, "host_pid", 0)


def _holder_alive(host: Any) -> bool:
    tracee = getattr(host, "tracee", None)
    return bool(getattr(tracee, "alive", True))


def _release(key: tuple[int, int], host: Any) -> None:
    """``host``'s call is done: the next waiter runs (no-op if not the holder --
    a dead holder's lock was already taken over)."""
    lock = _space_locks.get(key)
    if lock is None or lock.holder is not host:
        return
    if lock.waiting:
        lock.holder, wake = lock.waiting.popleft()
        wake.set()
    else:
        del _space_locks[key]


async def _wait_turn(key: tuple[int, int], lock: _SpaceLock, host: Any,
                     wake: trio.Event) -> None:
    while True:
        with trio.move_on_after(STALE_CHECK):
            await wake.wait()
            return
        # A holder whose tracee died mid-call is never resumed (its generator
        # just waits to be collected): take the lock over from it.
        holder = lock.holder
        if holder is not host and not _holder_alive(holder):
            log.info("pid %d: memory call of a dead thread held the address space; "
                     "released", key[0])
            _release(key, holder)


def _acquire(c: SyscallContext) -> Generator[Op, Any, None]:
    key = _lock_key(c)
    lock = _space_locks.get(key)
    if lock is None:
        _space_locks[key] = _SpaceLock(c.host)
        return
    wake = trio.Event()
    if lock.waiting is None:
        lock.waiting = deque()
    lock.waiting.append((c.host, wake))
    try:
        yield Await(functools.partial(_wait_turn, key, lock, c.host, wake))
    except BaseException:
        # never got the turn (or got it and cannot use it): pass it on
        if lock.holder is c.host:
            _release(key, c.host)
        else:
            try:
                if lock.waiting is not None:
                    lock.waiting.remove((c.host, wake))
            except ValueError:
                pass
        raise


def _serialised(fn: Callable[..., SyscallGen]) -> Callable[..., SyscallGen]:
    """Run memory-call handler ``fn`` alone among its address space's calls."""
    @functools.wraps(fn)
    def handler(k: Kernel, c: SyscallContext) -> SyscallGen:
        host = c.host
        if host is None:               # a kernel-side caller: nothing on a host to race
            return (yield from fn(k, c))
        key = (c.pid, getattr(host, "host_pid", 0))     # ``_lock_key``, inline
        if key in _space_locks:
            yield from _acquire(c)     # another call holds it: wait for the turn
        else:
            _space_locks[key] = _SpaceLock(host)   # (``_acquire``'s free case, inline)
        try:
            return (yield from fn(k, c))
        finally:
            _release(key, host)
    return handler


# --- the host side and MM's undo -------------------------------------------------------


def _host(nr: int, *args: int) -> Generator[Op, Any, int]:
    """One injected syscall: its result, -errno on failure (ENOSYS: no host side)."""
    try:
        return (yield HostCall(nr, args))
    except SysError as exc:
        return -exc.errno


def _close_fds(c: SyscallContext, blob: bytes) -> Generator[Op, Any, None]:
    for fd in p.unpack_fds(blob):
        try:
            yield from ask(p.VFS_PID, p.VfsClose(caller=c.pid, fd=fd))
        except SysError:
            pass                   # closed behind our back (close_range, dup2 onto it)


def _undo(c: SyscallContext, token: int) -> Generator[Op, Any, None]:
    if not token:
        return
    try:
        reply = yield from ask(p.MM_PID, p.MmUndo(caller=c.pid, token=token))
    except SysError as exc:
        log.warning("pid %d: MM could not undo change %d: %s", c.pid, token, exc)
        return
    yield from _close_fds(c, reply.fds)


def _apply(c: SyscallContext, reply: Any, nr: int, *args: int,
           flushed: bool = False) -> Generator[Op, Any, int]:
    """Carry out MM's decision ``reply`` with host call ``nr(args)``: shared file
    ranges it drops are written back first (unless ``flushed`` already), MM's
    undo follows a failure, and write-back fds MM released are closed after a
    success."""
    if reply.data and not flushed:
        yield from write_back(c, reply.data)
    result = yield from _host(nr, *args)
    if result < 0:
        yield from _undo(c, reply.token)
        return result
    if reply.fds:
        yield from _close_fds(c, reply.fds)
    return result


# --- one stop: a host change the host cannot refuse --------------------------------------
#
# A memory call is two stops -- the trap, and the exit stop where the kernel sees
# the host's answer and has MM undo a refused change.  When the host cannot
# refuse what MM decided, the trapped call itself is turned into the host's
# call and its answer goes to the program as it is (``HostCall(tail=True)``):
# no exit stop.  ld.so's maps and mprotects are 11 of a fork+exec's 14 exit stops.
# Linux refuses an mmap(MAP_FIXED) / mprotect MM accepted only for:
#  * max_map_count: the host has at least MM's regions (more: it does not merge
#    what it faulted separately), so /proc/TGID/maps is counted, and at most
#    TAIL_BATCH calls (each adds <= 2 VMAs) pass before it is counted again;
#  * RLIMIT_AS (MM does not check it) and RLIMIT_DATA: only when both are
#    unlimited (looked at with the count; a limit set anywhere forgets them);
#    RLIMIT_MEMLOCK after a host-run mlockall(MCL_FUTURE): not with memory
#    locked, unless the image has CAP_IPC_LOCK (``_locking``);
#  * commit accounting (writable private maps): never in overcommit mode 1, in
#    mode 0 only for one map larger than RAM + swap (MM's pool refuses far
#    less), so not in mode 2 and not above a quarter of RAM;
#  * EPERM/EACCES: PROT_EXEC of a noexec mount's file (checked), PROT_WRITE
#    with PROT_EXEC (memory-deny-write-execute, prctl PR_SET_MDWE), a shared
#    writable map of a read-only fd, MAP_LOCKED, MAP_HUGETLB (never tail).
# And no other thread may come between MM's decision and the host's (one
# thread, untraced: ``sole_thread``).  A refusal nobody foresaw would leave MM
# a region the host lacks; the program still gets the host's errno.

TAIL_BATCH = 64
_TAIL_AS_IS = HostCall(None, None, True)   # the trapped call itself, no exit stop
MAP_COUNT_MARGIN = 256
_vma_room: dict[int, int] = {}     # host tgid -> tail calls left before a recount (-1: none)
_host_vm: dict[str, int] = {}      # overcommit mode, max_map_count, RAM (read once)
_noexec: dict[bytes, bool] = {}    # host path -> on a noexec mount


def _host_vm_fact(name: str) -> int:
    value = _host_vm.get(name)
    if value is None:
        try:
            if name == "ram":
                value = os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE
            else:
                with open(f"/proc/sys/vm/{name}", "rb") as f:
                    value = int(f.read())
        except (OSError, ValueError):
            value = {"overcommit_memory": 2, "max_map_count": 0}.get(name, 0)
        _host_vm[name] = value
    return value


def _commit_cap() -> int:
    """The longest accountable map the host's commit accounting cannot refuse
    (see above): -1 in overcommit mode 2, a quarter of RAM in mode 0, any in 1."""
    cap = _host_vm.get("commit_cap")
    if cap is None:
        mode = _host_vm_fact("overcommit_memory")
        cap = -1 if mode == 2 else _host_vm_fact("ram") // 4 if mode == 0 else 1 << 64
        _host_vm["commit_cap"] = cap
    return cap


def forget_layout(host_pid: int) -> None:
    """``host_pid`` got a new image (exec) or is a new or dead process: its VMAs
    (and limits) are looked at again before its next one-stop memory call."""
    _vma_room.pop(host_pid, None)
    _ipc_lock.pop(host_pid, None)
    _fresh_image.discard(host_pid)
    _checked_fds.pop(host_pid, None)
    fd = _maps_fds.pop(host_pid, None)
    if fd is not None:
        os.close(fd)              # it holds the old image's mm: a new one is opened


def image_loaded(host_pid: int) -> None:
    """``host_pid`` has just exec'd: ``forget_layout``, and its first count needs
    no look at the host -- the new mm holds only the image's VMAs (at most
    ``EXEC_VMAS_MAX``) and nothing locked, MCL_FUTURE being cleared by exec.
    (A host-run mlockall before the first one-stop call is seen at the next
    count, as one after any count is.)"""
    forget_layout(host_pid)
    if len(_fresh_image) >= _OPEN_MAPS_MAX:
        _fresh_image.clear()
    _fresh_image.add(host_pid)


def files_shared(host_pid: int) -> None:
    """``host_pid`` shares its host fd table with another process (clone with
    CLONE_FILES, not a thread): the other's injected closes reach its fds, so its
    held map fds are checked at every use (until it dies)."""
    if len(_shared_files) >= _OPEN_MAPS_MAX:
        _shared_files.clear()          # (then checked anyway: _checked_fds is per image)
        _checked_fds.clear()
    _shared_files.add(host_pid)
    _checked_fds.pop(host_pid, None)


def process_gone(host_pid: int) -> None:
    """The process ``host_pid`` died: ``forget_layout``, and no fd table of its is shared."""
    forget_layout(host_pid)
    _shared_files.discard(host_pid)


# ELF program headers fit in 64 KiB (binfmt_elf), so an image has at most 1170
# PT_LOADs, each at most a file map and a bss map, in the binary and in ld.so,
# plus stack, [heap], vvar, vvar_vclock and vdso.
EXEC_VMAS_MAX = 4 * (65536 // 56) + 8
_fresh_image: set[int] = set()     # host tgids exec'd since their last count

# --- a host VMA, asked of the host (PROCMAP_QUERY, Linux 6.11+) ---------------------------
#
# An mremap MM accepted can still fail on the host where MM's record is coarser
# than the host's VMAs: MM merges neighbours the host keeps apart (separately
# faulted anonymous memory, a [heap] beside an mmap), and Linux moves or grows
# only a range inside one VMA (EFAULT, or ENOMEM in place).  So the one-stop
# mremap asks the host for the VMA at the old address: one ioctl on the tracer's
# fd of /proc/TGID/maps (kept per image; ~1.5 us), not a read of the whole file.

PROCMAP_QUERY = (3 << 30) | (104 << 16) | (ord("f") << 8) | 17   # _IOWR('f', 17, 104 bytes)
_PMQ = struct.Struct("=QQQQQQQQQIIIIQQ")   # struct procmap_query (include/uapi/linux/fs.h)
PMQ_SHARED = 0x08                          # PROCMAP_QUERY_VMA_SHARED
_PMQ_ASK = _PMQ.pack(_PMQ.size, *[0] * 14)   # a query: its size set, all else 0
_PMQ_ADDR = struct.Struct("=Q")
# vma_start, vma_end, vma_flags, (page size, offset), inode, dev major, dev minor
_PMQ_VMA = struct.Struct("=QQQ16xQII")
CAP_IPC_LOCK = 14
_MAPS_FDS_MAX = 256
_maps_fds: dict[int, int] = {}     # host tgid -> the tracer's fd of its /proc/TGID/maps
_ipc_lock: dict[int, bool] = {}    # host tgid -> its image has CAP_IPC_LOCK


def _host_vma(tgid: int, addr: int) -> tuple[int, int, int, int, int, int] | None:
    """(start, end, PROCMAP flags, inode, dev major, dev minor) of the host VMA
    holding ``addr`` in ``tgid``, or None (none there, the query not offered)."""
    fd = _maps_fds.get(tgid)
    if fd is None:
        if len(_maps_fds) >= _MAPS_FDS_MAX:
            for old in _maps_fds.values():
                os.close(old)
            _maps_fds.clear()
        try:
            fd = os.open(f"/proc/{tgid}/maps", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        _maps_fds[tgid] = fd
    buf = bytearray(_PMQ_ASK)
    _PMQ_ADDR.pack_into(buf, 16, addr)                  # query_addr
    try:
        fcntl.ioctl(fd, PROCMAP_QUERY, buf, True)
    except OSError:
        return None
    return _PMQ_VMA.unpack_from(buf, 24)


def _may_lock(tgid: int) -> bool:
    """Does the image have CAP_IPC_LOCK (then an mlock'ed VMA -- mlock is host-run,
    MM never sees it -- may grow past RLIMIT_MEMLOCK)?  Host credentials never
    change under XINIM (its setuid family is XINIM's, capset ENOSYS): read once."""
    known = _ipc_lock.get(tgid)
    if known is None:
        known = False
        try:
            for line in read_proc(f"/proc/{tgid}/status").splitlines():
                if line.startswith(b"CapEff:"):
                    known = bool(int(line.split()[1], 16) >> CAP_IPC_LOCK & 1)
                    break
        except (OSError, ValueError, IndexError):
            pass
        if len(_ipc_lock) >= _OPEN_MAPS_MAX:
            _ipc_lock.clear()
        _ipc_lock[tgid] = known
    return known


def _resize_sure(c: SyscallContext, old: int, old_len: int, new_len: int,
                 in_place: bool) -> bool:
    """May the host's mremap of MM's decision (MM_ST_SURE: a private anonymous
    region grows, in place or moved to a range MM keeps free) be the trapped call
    itself?  Besides ``_host_sure``'s facts, the host's VMA at ``old`` must hold
    the whole old range (and end there, to grow in place), be private anonymous,
    and may be mlock'ed only if the image can lock any amount."""
    host = c.host
    tgid = getattr(host, "host_pid", None)
    if tgid is None:
        return False
    old_end = old + page_up(old_len)
    vma = _host_vma(tgid, old)
    if vma is None:
        return False
    start, end, flags, inode, major, minor = vma
    if (start > old or end < old_end or (in_place and end != old_end)
            or inode or major or minor or flags & PMQ_SHARED or not _may_lock(tgid)):
        return False
    # commit accounting charges the growth in place, the whole new length on a move
    grow = page_up(new_len) - (page_up(old_len) if in_place else 0)
    return _host_sure(c, grow, True)


def _shrink_sure(c: SyscallContext, old: int, status: int) -> bool:
    """May the host's in-place shrink of MM's decision (MM_ST_SURE: inside one
    private anonymous region) be the trapped call itself?  It is the munmap of
    the tail, sure as ``sys_munmap``'s (MM_ST_SPLIT: the host's VMAs counted),
    once the host's VMA at ``old`` is private anonymous memory of normal pages
    (MM's record does not tell a MAP_HUGETLB map, whose host VMA has a
    hugetlbfs inode and refuses an unaligned shrink)."""
    tgid = getattr(c.host, "host_pid", None)
    vma = _host_vma(tgid, old) if tgid is not None else None
    if vma is None or vma[3] or vma[4] or vma[5] or vma[2] & PMQ_SHARED:
        return False
    return _host_sure(c, 0, False) if status & p.MM_ST_SPLIT else _sole(c)


def limits_changed() -> None:
    """Some process's resource limits are being set: every process's limits are
    looked at again (rare, and the target may be another's thread)."""
    _vma_room.clear()


def _count_vmas(tgid: int) -> int:
    try:
        return read_proc(f"/proc/{tgid}/maps").count(b"\n")
    except OSError:
        return -1


def _sole(c: SyscallContext) -> bool:
    """Is the caller its untraced process's only thread (nothing can come
    between MM's decision and the host's)?"""
    sole = getattr(c.host, "sole_thread", None)
    return sole is not None and sole()


def _host_sure(c: SyscallContext, length: int, accountable: bool) -> bool:
    """May the host call of MM's decision run as the trapped call itself, with no
    exit stop (see above)?  Counts one call against the VMA room."""
    if not _sole(c):
        return False
    host = c.host
    if accountable and length > _commit_cap():
        return False
    tgid = host.host_pid                                     # type: ignore[union-attr]
    room = _vma_room.get(tgid, 0)
    if room < 0:                      # limits set: not until they change (or an exec)
        return False
    if room == 0:
        if len(_vma_room) >= _OPEN_MAPS_MAX:
            _vma_room.clear()
        # a fresh image's bound leaves a whole batch under any usual max_map_count
        fresh = tgid in _fresh_image and (_host_vm_fact("max_map_count") - EXEC_VMAS_MAX
                                          - MAP_COUNT_MARGIN) // 2 >= TAIL_BATCH
        _fresh_image.discard(tgid)
        try:
            limited = (resource.prlimit(tgid, resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY
                       or resource.prlimit(tgid, resource.RLIMIT_DATA)[0]
                       != resource.RLIM_INFINITY
                       or (not fresh and _locking(tgid)))
        except (OSError, ValueError):
            limited = True
        count = -1 if limited else EXEC_VMAS_MAX if fresh else _count_vmas(tgid)
        room = min(TAIL_BATCH, (_host_vm_fact("max_map_count") - count - MAP_COUNT_MARGIN) // 2)
        if count < 0 or room <= 0:
            _vma_room[tgid] = -1
            return False
    _vma_room[tgid] = room - 1
    return True


def _locking(tgid: int) -> bool:
    """May a new map of ``tgid`` be refused for RLIMIT_MEMLOCK?  Only after a
    (host-run) mlockall(MCL_FUTURE), which shows as locked memory: not with
    CAP_IPC_LOCK or no limit, nor with nothing locked.  (MCL_FUTURE alone, before
    anything is locked, is seen at the next count, at most TAIL_BATCH calls on.)"""
    if resource.prlimit(tgid, resource.RLIMIT_MEMLOCK)[0] == resource.RLIM_INFINITY \
            or _may_lock(tgid):
        return False
    try:
        for line in read_proc(f"/proc/{tgid}/status").splitlines():
            if line.startswith(b"VmLck:"):
                return int(line.split()[1]) > 0
    except (OSError, ValueError, IndexError):
        pass
    return True


def _on_noexec(path: bytes) -> bool:
    seen = _noexec.get(path)
    if seen is None:
        try:
            seen = bool(os.statvfs(path).f_flag & os.ST_NOEXEC)
        except OSError:
            seen = True
        if len(_noexec) >= _OPEN_MAPS_MAX:
            _noexec.clear()
        _noexec[path] = seen
    return seen


def _write_exec(prot: int) -> bool:
    """Writable and executable: a host process under memory-deny-write-execute
    (prctl PR_SET_MDWE, host-run, unseen by MM) refuses such a map with EACCES."""
    return bool(prot & PROT_WRITE and prot & PROT_EXEC)


def _accountable(prot: int, flags: int, shared: bool, anon: bool) -> bool:
    """Linux's commit accounting charges this map (mm/mmap.c accountable_mapping)."""
    if flags & MAP_NORESERVE:
        return False
    return bool(prot & PROT_WRITE) if not shared else anon


# --- MAP_SHARED write-back and file fills ------------------------------------------------


def write_back(c: SyscallContext, blob: bytes) -> Generator[Op, Any, int]:
    """Write MM_RANGE entries of the caller's memory to their files, never past
    the file's end (a shared mapping does not extend its file).  Returns 0 or the
    first -errno; every range is tried."""
    err = 0
    sizes: dict[int, int] = {}
    for addr, length, offset, fd in p.unpack_ranges(blob):
        try:
            if fd not in sizes:
                sizes[fd] = (yield from ask(p.VFS_PID, p.VfsFstat(caller=c.pid, fd=fd))).size
            count = max(0, min(length, sizes[fd] - offset))
            done = 0
            while done < count:
                block = c.mem.read(addr + done, min(count - done, FILL_BLOCK))
                for i in range(0, len(block), p.DATA_MAX):
                    yield from ask(p.VFS_PID, p.VfsWrite(caller=c.pid, fd=fd,
                                                         offset=offset + done + i,
                                                         data=block[i:i + p.DATA_MAX]))
                done += len(block)
        except SysError as exc:
            log.warning("pid %d: write-back of %#x+%#x to fd %d failed: %s",
                        c.pid, addr, length, fd, exc)
            err = err or -exc.errno
    return err


# The host files a process holds open for its direct maps.  ld.so maps each
# library four or five times in a row, and every program maps ld.so.cache and
# libc: a tracee opens such a file once (one injected openat) and keeps the fd
# *without* O_CLOEXEC, so its fork children and the images it execs inherit it
# and map the same file with no openat at all -- the fork+exec of a shell's
# command maps libc through the shell's fd.  Host fds are invisible to the
# program (its fds are the VFS's; no host-run call takes one), so the program
# cannot use or close them.  An fd is used only after /proc/TGID/fd/FD is seen
# to be that very file (a reused tgid, a fd the program's exec chain dropped:
# anything else is opened afresh).  At most HELD_MAX are kept per process; past
# that a file's fd is close-on-exec and closed when the next file comes, as
# before.
#   tgid -> {(dev, ino): fd};  (dev, ino) -> the fd numbers tracees last got for
#   that file (where an inheriting process looks)
_open_maps: dict[int, dict[tuple[int, int], int]] = {}
_fd_hints: dict[tuple[int, int], list[int]] = {}
HINTS_KEPT = 3
_OPEN_MAPS_MAX = 4096
HELD_MAX = 8
_transient: dict[int, tuple[int, int]] = {}   # tgid -> the close-on-exec one's (dev, ino)
# tgid -> the files whose held fd was seen to be theirs since the image began: only
# our own injected calls change a tracee's host fds (no host-run call takes one),
# so one look per image will do -- unless another process shares the fd table
_checked_fds: dict[int, set[tuple[int, int]]] = {}
_shared_files: set[int] = set()    # tgids whose host fd table another process shares


def _still_open(tgid: int, fd: int, dev: int, ino: int) -> bool:
    try:
        st = os.stat(f"/proc/{tgid}/fd/{fd}")
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def _fd_checked(tgid: int, key: tuple[int, int]) -> None:
    """The held fd of ``key`` in ``tgid`` is that file (looked at, or just opened)."""
    if tgid in _shared_files:
        return
    checked = _checked_fds.get(tgid)
    if checked is None:
        if len(_checked_fds) >= _OPEN_MAPS_MAX:
            _checked_fds.clear()
        checked = _checked_fds[tgid] = set()
    checked.add(key)


def _held_fd(tgid: int, key: tuple[int, int]) -> int:
    """The tracee's own fd for host file ``key`` (checked), or -1."""
    held = _open_maps.get(tgid)
    fd = held.get(key) if held is not None else None
    if fd is not None:
        checked = _checked_fds.get(tgid)
        if checked is not None and key in checked:
            return fd
        if _still_open(tgid, fd, *key):
            _fd_checked(tgid, key)
            return fd
        del held[key]                 # not that file any more (a reused tgid)
        if _transient.get(tgid) == key:
            del _transient[tgid]
    # inherited from the process that opened it (or one of its ancestors)?
    fd = next((n for n in _fd_hints.get(key, ()) if _still_open(tgid, n, *key)), -1)
    if fd < 0:
        return -1
    if held is None:
        if len(_open_maps) >= _OPEN_MAPS_MAX:
            _open_maps.clear()
            _transient.clear()
        held = _open_maps[tgid] = {}
    held[key] = fd
    _fd_checked(tgid, key)
    return fd


def tracee_open(c: SyscallContext, path: bytes, flags: int,
                cloexec: bool = True) -> Generator[Op, Any, int]:
    """Have the tracee itself open host ``path`` (an fd of its own, or -errno).
    The string goes just below the red zone, which the ABI lets signal delivery
    clobber at any time; put back anyway."""
    if c.host is None:
        return -errno.ENOSYS
    link = path + b"\0"
    at = (c.host.stack_pointer() - RED_ZONE - len(link)) & ~15
    try:
        saved = c.mem.read(at, len(link))
        c.mem.write(at, link)
    except SysError as exc:
        return -exc.errno
    tfd = yield from _host(NR_OPENAT, AT_FDCWD & (1 << 64) - 1, at,
                           flags | os.O_CLOEXEC if cloexec else flags, 0)
    try:
        c.mem.write(at, saved)
    except SysError:
        pass
    if tfd < 0:
        log.debug("pid %d: tracee could not open %r: %d", c.pid, path, tfd)
    return tfd


def map_host_path(c: SyscallContext, path: bytes, open_flags: int, start: int, length: int,
                  prot: int, host_flags: int, offset: int) -> Generator[Op, Any, int]:
    """The tracee maps host file ``path`` at ``start`` (opened, mapped, closed
    again): the host mmap's result, or -errno."""
    tfd = yield from tracee_open(c, path, open_flags)
    if tfd < 0:
        return tfd
    result = yield from _host(NR_MMAP, start, length, prot, host_flags, tfd, offset)
    yield from _host(NR_CLOSE, tfd)
    return result


def _map_host_file(c: SyscallContext, info: Any, start: int, length: int, prot: int,
                   flags: int, offset: int, tail: bool = False) -> Generator[Op, Any, bool]:
    """Map the host file behind a host-mount fd at ``start`` in the tracee itself
    (see the module notes).  True when mapped; False when the caller must make
    the anonymous mapping and fill it through the VFS instead.  ``tail``: nothing
    is left to do after the map, which may then end the call (``_host_sure``)."""
    if c.host is None:
        return False
    tgid = c.host.host_pid
    key = (info.dev, info.ino)
    tfd = _held_fd(tgid, key)
    if tfd < 0:
        tfd = yield from _open_for_maps(c, info, tgid, key)
        if tfd < 0:
            return False
    kind = MAP_SHARED if flags & MAP_TYPE in (MAP_SHARED, MAP_SHARED_VALIDATE) else MAP_PRIVATE
    host_flags = kind | MAP_FIXED | flags & (MAP_NORESERVE | MAP_LOCKED | MAP_POPULATE
                                             | MAP_NONBLOCK)
    if (tail and kind == MAP_PRIVATE and not flags & MAP_LOCKED
            and 0 <= offset and offset + length < 1 << 62
            and not (prot & PROT_EXEC and _on_noexec(info.host_path)) and not _write_exec(prot)
            and _host_sure(c, length, _accountable(prot, flags, False, False))):
        # the held fd is open for reading: a private map of it cannot be refused
        yield HostCall(NR_MMAP, (start, length, prot, host_flags, tfd, offset), tail=True)
    result = yield from _host(NR_MMAP, start, length, prot, host_flags, tfd, offset)
    if result != start:
        log.debug("pid %d: host refused the direct map of %r: %d", c.pid, info.host_path,
                  result)
        return False
    return True


def _open_for_maps(c: SyscallContext, info: Any, tgid: int,
                   key: tuple[int, int]) -> Generator[Op, Any, int]:
    """The tracee opens the host file behind the VFS fd (see ``_open_maps``): its
    fd, or -1 when the path does not name that file any more or the open fails."""
    try:
        hfd = os.open(info.host_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
                      | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        log.debug("pid %d: direct map of %r: %s", c.pid, info.host_path, exc)
        return -1
    try:
        st = os.fstat(hfd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != key:
            log.info("pid %d: %r is no longer the file of the fd; filling through the VFS",
                     c.pid, info.host_path)
            return -1
        held = _open_maps.get(tgid)
        if held is None:
            if len(_open_maps) >= _OPEN_MAPS_MAX:
                _open_maps.clear()
                _transient.clear()
            held = _open_maps[tgid] = {}
        keep = len(held) - (tgid in _transient) < HELD_MAX
        # The tracee opens our fd's magic link: exactly our open file, whatever
        # happened to the path since.
        tfd = yield from tracee_open(c, f"/proc/{os.getpid()}/fd/{hfd}".encode(), os.O_RDONLY,
                                     cloexec=not keep)
        if tfd < 0:
            return -1
        if not keep:
            old = _transient.pop(tgid, None)
            old_fd = held.pop(old, None) if old is not None else None
            if old_fd is not None and old_fd != tfd and _still_open(tgid, old_fd, *old):
                yield from _host(NR_CLOSE, old_fd)     # the previous extra file's
            _transient[tgid] = key
        else:
            if len(_fd_hints) >= _OPEN_MAPS_MAX and key not in _fd_hints:
                _fd_hints.clear()
            hints = _fd_hints.setdefault(key, [])
            if tfd not in hints:
                hints.insert(0, tfd)
                del hints[HINTS_KEPT:]
        held[key] = tfd
        _fd_checked(tgid, key)
        return tfd
    finally:
        os.close(hfd)


def _fill(c: SyscallContext, fd: int, addr: int, length: int, offset: int,
          size: int, k: Kernel | None = None) -> Generator[Op, Any, int]:
    """Copy the file into the fresh (zeroed) mapping: positioned reads on the
    caller's fd; what lies past the end of the file stays zero.  With the VFS on
    this node, one read through a grant for the whole mapping (the VFS copies it
    in); else DATA_MAX messages."""
    count = max(0, min(page_up(length), size - offset))
    grants = local_grants(k) if k is not None and count else None
    if grants is not None:
        try:
            yield from granted_read(k, grants, c, fd, ((addr, count),), count, offset)
        except SysError as exc:
            return -exc.errno
        return 0
    done = 0
    buf = bytearray()
    try:
        while done < count:
            want = min(count - done, p.DATA_MAX)
            data = (yield from ask(p.VFS_PID, p.VfsRead(caller=c.pid, fd=fd, count=want,
                                                        offset=offset + done))).data
            buf += data
            done += len(data)
            if len(buf) >= FILL_BLOCK or len(data) < want:
                c.mem.write(addr + done - len(buf), bytes(buf))
                buf.clear()
            if len(data) < want:
                break
        if buf:
            c.mem.write(addr + done - len(buf), bytes(buf))
    except SysError as exc:
        return -exc.errno
    return 0


# --- brk ------------------------------------------------------------------------------------


@_serialised
def sys_brk(k: Kernel, c: SyscallContext) -> SyscallGen:
    """MM decides the break, the host moves it; refused: the old break, as Linux."""
    want = c.args[0]
    reply = yield from ask(p.MM_PID, p.MmBrk(caller=c.pid, addr=want))
    if reply.status & p.MM_ST_BRK_UNKNOWN:
        # first brk of this image: the host chose the initial break at exec
        current = yield from _host(NR_BRK, 0)
        if current < 0:
            return current
        yield from ask(p.MM_PID, p.MmSetBrk(caller=c.pid, brk=current))
        reply = yield from ask(p.MM_PID, p.MmBrk(caller=c.pid, addr=want))
    new, old = reply.result, reply.old
    if new == old:
        return old
    if not reply.fds and _host_sure(c, max(0, new - old), True):
        # the host moves it as MM said (a refusal would answer the old break)
        yield HostCall(NR_BRK, (new,), tail=True)
    moved = yield from _host(NR_BRK, new)
    if moved != new:               # the host refused: take MM's decision back
        yield from _undo(c, reply.token)
        return old
    return new


# --- mmap -------------------------------------------------------------------------------------


@_serialised
def sys_mmap(k: Kernel, c: SyscallContext) -> SyscallGen:
    addr, length = c.args[0], c.args[1]
    prot, flags, fd = c_int(c.args[2]), c_int(c.args[3]), c_int(c.args[4])
    offset = _signed(c.args[5])
    if flags & MAP_ANONYMOUS:
        return (yield from _map_anon(c, addr, length, prot, flags, offset))
    return (yield from _map_file(c, addr, length, prot, flags, fd, offset, k))


def _map_anon(c: SyscallContext, addr: int, length: int, prot: int, flags: int,
              offset: int, zero: Any = None) -> Generator[Op, Any, int]:
    """``zero``: the VfsFdinfo of the /dev/zero fd mapped (MM checks its access mode)."""
    if zero is None:
        body: Any = p.MmMmap(caller=c.pid, addr=addr, length=length, prot=prot, flags=flags,
                             fd=-1, offset=offset)
    else:
        body = p.MmMmapFile(caller=c.pid, addr=addr, length=length, prot=prot, flags=flags,
                            fd=-1, offset=offset, file_mode=zero.mode, open_flags=zero.flags)
    reply = (yield Sendrec(p.MM_PID, body)).body      # ``ask``, inline (every mmap)
    if reply.error:
        raise SysError(reply.error)
    start = reply.result
    host_flags = (flags | MAP_FIXED) & ~MAP_FIXED_NOREPLACE
    if (not reply.data and not reply.fds and not flags & (MAP_LOCKED | MAP_HUGETLB)
            and not _write_exec(prot)
            and _host_sure(c, length, _accountable(
                prot, flags, flags & MAP_TYPE != MAP_PRIVATE, True))):
        yield HostCall(NR_MMAP, (start, length, prot, host_flags, -1, 0), True)
    result = yield from _apply(c, reply, NR_MMAP, start, length, prot, host_flags, -1, 0)
    return result if result < 0 else start


# host tgid -> (the tracer's count of trapped calls, fd, VfsFdinfo answer) of its
# last file map of a host-mount file.  ld.so maps a library four or five times in
# a row through one fd: when not one trapped call -- of any process -- came in
# between, nothing can have changed what that fd is (fd tables change only by
# trapped calls), so the VFS is asked once per library, not once per map.
_last_facts: dict[int, tuple[int, int, Any]] = {}


def _fd_facts(c: SyscallContext, fd: int) -> Generator[Op, Any, Any]:
    """VFS's description of ``fd`` (None: no such fd -- MM answers EBADF in order)."""
    seen = getattr(c.host, "calls_seen", None)
    count = seen() if seen is not None else -1
    if count >= 0:
        tgid = c.host.host_pid      # type: ignore[union-attr]
        last = _last_facts.get(tgid)
        if last is not None and last[1] == fd and last[0] == count - 1:
            _last_facts[tgid] = (count, fd, last[2])
            return last[2]
    try:
        info = yield from ask(p.VFS_PID, p.VfsFdinfo(caller=c.pid, fd=fd))
    except SysError as exc:
        if exc.errno == errno.EBADF:
            return None
        raise
    if count >= 0 and info.host_path:
        if len(_last_facts) >= _OPEN_MAPS_MAX:
            _last_facts.clear()
        _last_facts[c.host.host_pid] = (count, fd, info)   # type: ignore[union-attr]
    return info


def _map_file(c: SyscallContext, addr: int, length: int, prot: int, flags: int, fd: int,
              offset: int, k: Kernel | None = None) -> Generator[Op, Any, int]:
    info = yield from _fd_facts(c, fd)
    if info is not None and stat.S_ISCHR(info.mode):
        st = yield from ask(p.VFS_PID, p.VfsFstat(caller=c.pid, fd=fd))
        if st.rdev == DEV_ZERO:     # /dev/zero maps as anonymous memory
            return (yield from _map_anon(c, addr, length, prot, flags | MAP_ANONYMOUS, offset,
                                         info))
    shared = flags & MAP_TYPE in (MAP_SHARED, MAP_SHARED_VALIDATE)
    wb_fd = -1
    sealed = False
    if (info is not None and shared and stat.S_ISREG(info.mode)
            and info.flags & os.O_ACCMODE == os.O_RDWR):
        # a hidden dup keeps the file for write-back after the program closes fd
        if k is not None:
            k.write_backs.add(c.pid)      # its exit and exec flush from now on
        try:
            wb_fd = (yield from ask(p.VFS_PID, p.VfsDup(caller=c.pid, fd=fd, min_fd=p.HIDDEN_FD_BASE,
                                                         cloexec=1))).result
        except SysError as exc:
            if exc.errno == errno.EPERM:        # a memfd sealed against writing
                if prot & PROT_WRITE:
                    raise
                sealed = True                   # and never made writable (mprotect)
            else:
                log.warning("pid %d: no write-back fd for a shared map of fd %d: %s",
                            c.pid, fd, exc)
    mirror = b""
    if (info is not None and shared and stat.S_ISREG(info.mode) and not info.host_path
            and getattr(c.host, "stack_pointer", None) is not None):
        # a ramfs file: every shared mapper maps the VFS's memfd mirror of it
        # (vfs_fuse/mapcache.py), so no fill and no write-back through a fd
        try:
            mirror = (yield from ask(p.VFS_PID, p.VfsMapCache(caller=c.pid, fd=fd))).data
        except SysError as exc:
            log.info("pid %d: no shared-map mirror for fd %d: %s", c.pid, fd, exc)
        # (the hidden fd stays: it keeps the file, and says "mapped writable" to
        # F_ADD_SEALS; MM writes nothing back through it -- ``direct`` 2)
    direct = bool(mirror) or bool(c.host is not None and info is not None and info.host_path
                                  and stat.S_ISREG(info.mode) and (not shared or wb_fd < 0))
    if info is None:
        body = p.MmMmapFile(caller=c.pid, addr=addr, length=length, prot=prot, flags=flags,
                            fd=fd, offset=offset, open_flags=p.MM_NO_FD)
    else:
        body = p.MmMmapFile(caller=c.pid, addr=addr, length=length, prot=prot, flags=flags,
                            fd=fd, offset=offset, file_mode=info.mode,
                            open_flags=info.flags & ~os.O_ACCMODE if sealed else info.flags,
                            ino=info.ino, dev=info.dev, size=info.size, wb_fd=wb_fd,
                            path=info.host_path[:p.PATH_MAX_WIRE],
                            direct=2 if mirror else int(direct))
    try:
        reply = yield from ask(p.MM_PID, body)
    except SysError:
        if wb_fd >= 0:
            yield from _close_fds(c, p.pack_fds([wb_fd]))
        raise
    start = reply.result
    if reply.data:                  # MAP_FIXED over shared file maps: theirs first
        yield from write_back(c, reply.data)
    if mirror:
        host_flags = MAP_SHARED | MAP_FIXED | flags & (MAP_NORESERVE | MAP_LOCKED | MAP_POPULATE
                                                       | MAP_NONBLOCK)
        mode = os.O_RDWR if info.flags & os.O_ACCMODE == os.O_RDWR else os.O_RDONLY
        result = yield from map_host_path(c, mirror, mode, start, length, prot, host_flags,
                                          offset)
        if result != start:
            yield from _undo(c, reply.token)
            return result if result < 0 else -errno.ENOMEM
        if reply.fds:
            yield from _close_fds(c, reply.fds)
        return start
    if direct:
        if (yield from _map_host_file(c, info, start, length, prot, flags, offset,
                                      not reply.fds)):
            if reply.fds:
                yield from _close_fds(c, reply.fds)
            return start
    host_flags = ((MAP_SHARED if shared else MAP_PRIVATE) | MAP_ANONYMOUS | MAP_FIXED
                  | flags & (MAP_NORESERVE | MAP_LOCKED))
    result = yield from _apply(c, reply, NR_MMAP, start, length, prot | PROT_WRITE,
                               host_flags, -1, 0, flushed=True)
    if result < 0:
        return result
    err = 0
    if direct:                      # filled after all: MM charges what is filled now
        filled = max(0, min(page_up(length), info.size - offset))
        if filled:
            try:
                yield from ask(p.MM_PID, p.MmCharge(caller=c.pid, addr=start, length=filled,
                                                     write=0))
            except SysError as exc:
                err = -exc.errno
    if not err:
        err = yield from _fill(c, fd, start, length, offset, info.size, k)
    if not err and not prot & PROT_WRITE:
        err = yield from _host(NR_MPROTECT, start, page_up(length), prot)
    if err:
        yield from _host(NR_MUNMAP, start, page_up(length))
        yield from _undo(c, reply.token)
        return err
    return start


# --- munmap, mprotect, mremap ---------------------------------------------------------------


@_serialised
def sys_munmap(k: Kernel, c: SyscallContext) -> SyscallGen:
    addr, length = c.args[0], c.args[1]
    reply = (yield Sendrec(p.MM_PID, p.MmMunmap(caller=c.pid, addr=addr, length=length))).body
    if reply.error:                 # (``ask``, inline: every munmap)
        raise SysError(reply.error)
    status = reply.status
    if status & p.MM_ST_SURE and (
            _host_sure(c, 0, False) if status & p.MM_ST_SPLIT else _sole(c)):
        # the host cannot fail it and nothing follows: the trapped munmap itself
        # runs and answers, one tracer stop instead of two.  A split in two fails
        # only at max_map_count: ``_host_sure`` has counted the host's VMAs
        yield _TAIL_AS_IS
    return min(0, (yield from _apply(c, reply, NR_MUNMAP, addr, length)))


@_serialised
def sys_mprotect(k: Kernel, c: SyscallContext) -> SyscallGen:
    addr, length, prot = c.args[0], c.args[1], c_int(c.args[2])
    reply = yield from ask(p.MM_PID, p.MmMprotect(caller=c.pid, addr=addr, length=length,
                                                   prot=prot))
    if (not prot & ~PROT_READ and not reply.data and not reply.fds
            and _host_sure(c, length, False)):
        # read-only or none: nothing to charge, no access to refuse
        yield _TAIL_AS_IS
    return min(0, (yield from _apply(c, reply, NR_MPROTECT, addr, length, prot)))


@_serialised
def sys_mremap(k: Kernel, c: SyscallContext) -> SyscallGen:
    old, old_len, new_len, flags, new_addr = c.args[:5]
    flags = c_int(flags)
    reply = yield from ask(p.MM_PID, p.MmMremap(caller=c.pid, old_addr=old, old_len=old_len,
                                                 new_len=new_len, flags=flags,
                                                 new_addr=new_addr))
    dest = reply.result
    in_place = dest == old and not flags & MREMAP_FIXED
    if in_place:
        args: tuple[int, ...] = (old, old_len, new_len, 0, 0)
    else:                           # MM picked (or checked) the new place
        args = (old, old_len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED, dest)
    status = reply.status
    if status & p.MM_ST_SURE and not reply.data and not reply.fds and (
            _shrink_sure(c, old, status)
            if in_place and page_up(new_len) < page_up(old_len)
            else _resize_sure(c, old, old_len, new_len, in_place)):
        # the host answers dest (or -errno) itself: no exit stop
        yield HostCall(NR_MREMAP, args, True)
    result = yield from _apply(c, reply, NR_MREMAP, *args)
    return result if result < 0 else dest


# --- madvise, msync ---------------------------------------------------------------------------


@_serialised
def sys_madvise(k: Kernel, c: SyscallContext) -> SyscallGen:
    addr, length, advice = c.args[0], c.args[1], c_int(c.args[2])
    reply = yield from ask(p.MM_PID, p.MmMadvise(caller=c.pid, addr=addr, length=length,
                                                  advice=advice))
    if not reply.status & p.MM_ST_RANGES:
        return (yield from _host(NR_MADVISE, addr, length, advice))
    for start, size, _, _ in p.unpack_ranges(reply.data):
        result = yield from _host(NR_MADVISE, start, size, advice)
        if result < 0:
            return result
    return -errno.ENOMEM if reply.status & p.MM_ST_HOLE else 0


def _sync(c: SyscallContext, addr: int, length: int, flags: int) -> Generator[Op, Any, int]:
    """Write back the MAP_SHARED file ranges of [addr, addr+length): 0, -EIO
    (a write failed), or -ENOMEM (part of the range is not mapped)."""
    end = addr + length
    failed = hole = False
    while True:
        reply = yield from ask(p.MM_PID, p.MmMsync(caller=c.pid, addr=addr, length=end - addr,
                                                    flags=flags))
        if reply.data and (yield from write_back(c, reply.data)) < 0:
            failed = True
        hole |= bool(reply.status & p.MM_ST_HOLE)
        if not reply.status & p.MM_ST_MORE:
            break
        addr = reply.old
    return -errno.EIO if failed else -errno.ENOMEM if hole else 0


@_serialised
def sys_msync(k: Kernel, c: SyscallContext) -> SyscallGen:
    # the host mapping is anonymous: nothing for the host to do
    flags = c_int(c.args[2])
    result = yield from _sync(c, c.args[0], c.args[1], flags)
    if result == 0 and flags & MS_SYNC:    # written back: now on disk (the image's journal)
        yield from ask(p.VFS_PID, p.VfsFsync(caller=c.pid, fd=-1, datasync=p.FSYNC_ALL))
    return result


def flush_shared(k: Kernel, c: SyscallContext) -> Generator[Op, Any, None]:
    """Write back every MAP_SHARED file mapping of the caller: for the exit (and
    exec) handlers, *before* the host ends or replaces the image.  Only a process
    the kernel ever got a write-back fd for (or whose parent it did) can have one:
    the others need not ask MM."""
    if c.pid not in k.write_backs:
        return
    if c.host is not None:
        yield from _acquire(c)
    try:
        yield from _sync(c, 0, TASK_SIZE, MS_SYNC)
    except SysError as exc:
        log.info("pid %d: no write-back at exit: %s", c.pid, exc)
    finally:
        if c.host is not None:
            _release(_lock_key(c), c.host)


# --- remap_file_pages -------------------------------------------------------------------------

NR_REMAP_FILE_PAGES = LINUX_NUMBERS["remap_file_pages"]


@_serialised
def sys_remap_file_pages(k: Kernel, c: SyscallContext) -> SyscallGen:
    """MM checks the range and records the new file offset; the host's own
    remap_file_pages (Linux's emulation: an mmap MAP_FIXED of the vma's file)
    then remaps the tracee's real shared mapping -- the file, the VFS's memfd
    mirror or the SysV segment's memfd -- so every sharer keeps seeing one set
    of pages."""
    start, size, prot, pgoff, flags = c.args[:5]
    reply = yield from ask(p.MM_PID, p.MmRemapFile(caller=c.pid, start=start, size=size,
                                                    prot=prot, pgoff=pgoff, flags=flags))
    start, size = reply.result, size & ~(PAGE_SIZE - 1)
    if reply.status & p.MM_ST_GONE:      # the removed segment's last attach went
        yield from _host(NR_MUNMAP, start, size)
        return -errno.EINVAL
    if reply.data:
        yield from write_back(c, reply.data)
    result = yield from _host(NR_REMAP_FILE_PAGES, start, size, 0, pgoff, flags & MAP_NONBLOCK)
    if result == -errno.EINVAL and size > PAGE_SIZE:
        # MM found one object over the range, but the host may hold it as several
        # open files (each map of a ramfs mirror opens it anew), and Linux wants
        # one: page by page, each lies in one host mapping
        for i in range(size // PAGE_SIZE):
            result = yield from _host(NR_REMAP_FILE_PAGES, start + i * PAGE_SIZE, PAGE_SIZE,
                                      0, pgoff + i, flags & MAP_NONBLOCK)
            if result < 0:
                break
    if result < 0:
        yield from _undo(c, reply.token)
        return result
    if reply.fds:
        yield from _close_fds(c, reply.fds)
    return 0
