"""Memory Manager messages: the plan's 300-303 and reply 350; new types take 304-349.

The hosted model: MM *decides* (validates, picks the address, updates its
record) and the kernel's handler makes the host kernel *apply* the decision
with injected syscalls.  A change the host then fails to apply is taken back
with :class:`MmUndo` and the ``token`` of MM's reply.

``caller`` is the XINIM pid of the process (its address space; threads share
it).  Every request except :class:`MmMaps` is believed only from the kernel
(0) or PM (3) -- anyone else gets EPERM: only they can keep the host in step.
"""
from __future__ import annotations

import struct

from .wire import *
from .wire import Payload, ReplyBase, reply, request

# --- the plan's MM numbers (300-303; the reply is wire.MM_REPLY, 350) ---------------
MM_BRK, MM_MMAP, MM_MUNMAP, MM_MPROTECT = 300, 301, 302, 303

# --- new MM numbers (304-349) -------------------------------------------------------
# Memory calls beyond the plan (sent by the kernel's handlers): 304-319.
MM_MREMAP = 304
MM_MADVISE = 305
MM_MSYNC = 306
MM_MMAP_FILE = 307      # mmap of a file: the kernel passes the fd's facts from VFS
MM_UNDO = 308           # the host failed to apply a decided change: take it back
MM_SET_BRK = 309        # the host's current break (learned by injecting brk(0))
MM_CHARGE = 310         # a write-path syscall wrote user pages: charge them
# System V shared memory (mm/shm.py): 311-314.
MM_SHMGET = 311
MM_SHMAT = 312          # MM records the attach; the kernel maps the segment's pages
MM_SHMDT = 313
MM_SHMCTL = 314
MM_REMAP_FILE = 318      # remap_file_pages: MM checks the range, records the new offset
# Process life (kernel or PM): 320-329.
MM_SPAWN = 320          # a brand-new process: import the host's layout
MM_EXEC_LAYOUT = 321    # the host loaded a new image: reset, import the host's layout
MM_FORK = 322           # copy the parent's record, frames shared copy-on-write
MM_EXIT = 323           # release everything
MM_EXEC = 324           # PM committed an exec: the old image is gone (MM_EXEC_LAYOUT follows)
# Queries: 330-339.
MM_MAPS = 330           # /proc/PID/maps text + frame usage (xinim-ps --mem)
MM_SHM_LIST = 331       # /proc/sysvipc/shm text
MM_SHM_LIMITS = 332     # /proc/sys/kernel/shm{max,all,mni}: read (and VFS: set) them

# ``MmReply.status`` bits
MM_FORK_SHARE_VM = 0x100   # MmFork.flags: the child shares the record (Linux's CLONE_VM)
MM_ST_BRK_UNKNOWN = 1   # MM does not know the host's break yet: send MmSetBrk, ask again
MM_ST_MORE = 2          # msync: more write-back entries; ask again from ``old``
MM_ST_RANGES = 4        # madvise: apply the host call only to the ranges in ``data``
MM_ST_HOLE = 8          # part of the range was not mapped (msync/madvise answer ENOMEM)
MM_ST_SURE = 16         # munmap: nothing to write back, no special mapping; mremap:
                        # private anonymous memory grows (the kernel checks the host's VMA)
MM_ST_SPLIT = 64        # munmap: a region is split in two (the host's VMA count grows)
MM_ST_GONE = 32         # remap_file_pages: the range was unmapped (the removed segment
                        # went with its last attach); the host unmaps it, answer EINVAL
                        # or close: the host's munmap cannot fail, no undo can follow

# One entry of ``MmReply.data``: write [addr, addr+length) of the caller's memory
# to ``fd`` at file offset ``offset`` (a MAP_SHARED file range, before the host
# unmaps or replaces it); for MM_ST_RANGES just a range (offset 0, fd -1).
MM_RANGE = struct.Struct("<QQqi")
MM_RANGES_MAX = DATA_MAX // MM_RANGE.size
MM_FD = struct.Struct("<i")

# mmap of a file: ``open_flags`` when the fd does not exist
MM_NO_FD = -1

# --- MM messages (300-303; new types take 304-349) -------------------------------


@request(MM_BRK)
class MmBrk(Payload):
    caller: i32
    addr: u64                 # 0: query


@request(MM_MMAP)
class MmMmap(Payload):
    """Anonymous mmap (MAP_ANONYMOUS); a file map is :class:`MmMmapFile` (EBADF here)."""

    caller: i32
    addr: u64
    length: u64
    prot: i32
    flags: i32
    fd: i32
    offset: i64


@request(MM_MUNMAP)
class MmMunmap(Payload):
    caller: i32
    addr: u64
    length: u64


@request(MM_MPROTECT)
class MmMprotect(Payload):
    caller: i32
    addr: u64
    length: u64
    prot: i32


@request(MM_MREMAP)
class MmMremap(Payload):
    """``result`` = the new address (MM picks it under MREMAP_MAYMOVE)."""

    caller: i32
    old_addr: u64
    old_len: u64
    new_len: u64
    flags: i32
    new_addr: u64 = 0          # MREMAP_FIXED's target


@request(MM_MADVISE)
class MmMadvise(Payload):
    caller: i32
    addr: u64
    length: u64
    advice: i32


@request(MM_MSYNC)
class MmMsync(Payload):
    """Reply ``data``: the MAP_SHARED file ranges to write back (MM_RANGE entries)."""

    caller: i32
    addr: u64
    length: u64
    flags: i32


@request(MM_MMAP_FILE)
class MmMmapFile(Payload):
    """mmap of VFS file descriptor ``fd`` with its facts from VFS (VFS_FDINFO).
    ``open_flags`` = MM_NO_FD when VFS said EBADF (MM answers it in Linux's
    order).  ``wb_fd``: for MAP_SHARED, a hidden dup of ``fd`` that MM keeps to
    write the map back after ``fd`` is closed (-1: none).  ``direct`` = 1: the
    kernel maps the host file itself (its pages are the host's page cache), so
    MM charges no frames now; if that fails and the kernel fills the map from
    the VFS after all, it charges the filled range with MM_CHARGE."""

    caller: i32
    addr: u64
    length: u64
    prot: i32
    flags: i32
    fd: i32
    offset: i64
    file_mode: u32 = 0
    open_flags: i32 = 0
    ino: u64 = 0
    dev: u64 = 0
    size: i64 = 0
    wb_fd: i32 = -1
    path: path = b""          # for the maps listing only (host files; empty for ramfs)
    direct: i32 = 0           # 1: a direct host-file map, no frames charged; 2: the VFS's
                              # memfd mirror of a ramfs file: no frames, no write-back


@request(MM_UNDO)
class MmUndo(Payload):
    """Take back the change MM answered with ``token`` (the host refused it).
    Reply ``fds``: write-back fds to close."""

    caller: i32
    token: u64


@request(MM_SET_BRK)
class MmSetBrk(Payload):
    caller: i32
    brk: u64                  # what the host's brk(0) answered


@request(MM_CHARGE)
class MmCharge(Payload):
    """A write-path syscall (read into a user buffer) touched these pages: charge
    them (copy-on-write breaks included).  ENOMEM when the pool is exhausted."""

    caller: i32
    addr: u64
    length: u64
    write: i32 = 1


@request(MM_SPAWN)
class MmSpawn(Payload):
    """Kernel/PM only: ``pid`` is a new process; import the host layout of
    ``host_pid`` (0: start empty).  A record MM has for ``pid`` is replaced."""

    pid: i32
    host_pid: i32 = 0


@request(MM_EXEC_LAYOUT)
class MmExecLayout(Payload):
    """Kernel only: the host loaded a new image into ``pid``: its record is reset
    and the host's mappings are imported from /proc/``host_pid``/maps.  ``fresh``:
    an exec the host has just done (the old image's record goes whatever it held;
    PM then sends no MmExec of its own)."""

    pid: i32
    host_pid: i32
    fresh: i32 = 0


@request(MM_FORK)
class MmFork(Payload):
    """Kernel/PM only: ``child`` gets a copy of ``parent``'s record; with
    MM_FORK_SHARE_VM (a CLONE_VM child: vfork, posix_spawn) it shares the very
    record until its exec or exit."""

    parent: i32
    child: i32
    child_host_pid: i32 = 0
    flags: i32 = 0


@request(MM_EXIT)
class MmExit(Payload):
    """Kernel/PM only: release everything of ``pid`` (an unknown pid is a no-op)."""

    pid: i32


@request(MM_EXEC)
class MmExec(Payload):
    """PM only (or the kernel): ``pid`` passed exec's point of no return.  Its old
    image's record and frames go now; the kernel's MmExecLayout, after the host
    loaded the new image, imports that one."""

    pid: i32


@request(MM_MAPS)
class MmMaps(Payload):
    """The record of ``pid`` as /proc/PID/maps text, from byte ``offset``.
    Kernel/PM may ask for any pid, others for themselves only."""

    pid: i32
    offset: u32 = 0


@request(MM_SHMGET)
class MmShmget(Payload):
    """shmget(key, size, shmflg) with the caller's effective ids; result: the id."""

    caller: i32
    key: i32
    size: u64
    shmflg: i32
    euid: u32 = 0
    egid: u32 = 0


@request(MM_SHMAT)
class MmShmat(Payload):
    """shmat: MM checks, picks the address and records the attach (answer
    :class:`MmShmatReply`); the kernel then maps ``host_path`` there."""

    caller: i32
    shmid: i32
    addr: u64
    shmflg: i32
    euid: u32 = 0
    egid: u32 = 0


@request(MM_SHMDT)
class MmShmdt(Payload):
    """shmdt: reply ``data`` lists the ranges (MM_RANGE, fd -1) the host unmaps."""

    caller: i32
    addr: u64


@request(MM_REMAP_FILE)
class MmRemapFile(Payload):
    """remap_file_pages(2), emulated as Linux does (mmap MAP_FIXED of the same
    file at ``pgoff``); reply as an mmap's (``result`` = start, undo ``token``)."""

    caller: i32
    start: u64
    size: u64
    prot: u64
    pgoff: u64
    flags: u64


@request(MM_SHMCTL)
class MmShmctl(Payload):
    """shmctl: ``data`` is IPC_SET's shmid64_ds; reply ``data`` what *_STAT and
    *_INFO copy out (the kernel writes it to the caller's buffer)."""

    caller: i32
    shmid: i32
    cmd: i32
    euid: u32 = 0
    egid: u32 = 0
    data: data = b""


@request(MM_SHM_LIST)
class MmShmList(Payload):
    """/proc/sysvipc/shm from byte ``offset`` (reply: MmMapsReply's shape)."""

    offset: u32 = 0


@request(MM_SHM_LIMITS)
class MmShmLimits(Payload):
    """The System V shm limits: ``set`` nonzero (VFS only, for a root write of
    /proc/sys) replaces them first; the reply's ``data`` is SHM_LIMITS (shmmax,
    shmall, shmmni) as they are now."""

    set: i32 = 0
    shmmax: u64 = 0
    shmall: u64 = 0
    shmmni: u64 = 0


SHM_LIMITS = struct.Struct("<3Q")


@reply(MM_REPLY, MM_SHMAT)
class MmShmatReply(ReplyBase):
    """``result``: the address; ``length``/``prot`` the host map; ``host_path``:
    where the tracee opens the segment's pages (MM's memfd via /proc)."""

    token: u64 = 0
    length: u64 = 0
    prot: i32 = 0
    host_path: path = b""


@reply(MM_REPLY, MM_SHMCTL, MM_SHM_LIST, MM_SHM_LIMITS)
class MmDataReply(ReplyBase):
    data: data = b""


@reply(MM_REPLY)
class MmReply(ReplyBase):
    """Generic MM reply: ``result`` is an address, a break or 0.

    ``token``: nonzero when the host still has to apply the change; pass it to
    MmUndo if the host fails.  ``old``: brk's previous break; msync's resume
    address with MM_ST_MORE.  ``status``: MM_ST_* bits.  ``data``: MM_RANGE
    entries (write back these MAP_SHARED file ranges *before* the host call, or
    madvise's ranges).  ``fds``: MM_FD entries -- write-back fds to close with
    VFS_CLOSE *after* the host call."""

    token: u64 = 0
    old: u64 = 0
    status: i32 = 0
    data: data = b""
    fds: data = b""


@reply(MM_REPLY, MM_MAPS)
class MmMapsReply(ReplyBase):
    """``data``: up to 4096 bytes of the maps text from the request's offset;
    ``result``: the text's whole length; frames of the process (``used`` =
    ``shared`` + ``private``) and its mapped pages."""

    used: u64 = 0
    shared: u64 = 0
    private: u64 = 0
    mapped_pages: u64 = 0
    data: data = b""


def pack_ranges(ranges: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(MM_RANGE.pack(*r) for r in ranges)


def unpack_ranges(blob: bytes) -> list[tuple[int, int, int, int]]:
    size = MM_RANGE.size
    return [MM_RANGE.unpack_from(blob, off) for off in range(0, len(blob) - size + 1, size)]


def pack_fds(fds: list[int]) -> bytes:
    return b"".join(MM_FD.pack(fd) for fd in fds)


def unpack_fds(blob: bytes) -> list[int]:
    return [fd for (fd,) in MM_FD.iter_unpack(blob[:len(blob) - len(blob) % 4])]
