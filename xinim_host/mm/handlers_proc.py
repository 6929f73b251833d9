"""MM's process-life messages (spawn, exec, exec layout, fork, exit) and the maps query.

After the host loaded an image (exec, or the first program), MM imports the
host's mappings from /proc/HOST_PID/maps -- the binary, ld.so, stack, vdso,
vvar -- so it never picks an address the host already uses.  Imported pages
are not charged (the host filled them; MM never saw them).
"""
from __future__ import annotations

import errno
import re
import resource
from typing import TYPE_CHECKING

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.procfs import read_proc
from .handlers_common import MmProc, from_kernel
from ..lib.vm_abi import (
    DEFAULT_HEAP_START,
    DEFAULT_MMAP_BASE,
    DEFAULT_MMAP_MIN_ADDR,
    MAP_ANONYMOUS,
    MAP_GROWSDOWN,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    STACK_GAP,
    TASK_SIZE,
    page_down,
)
from .regions import ANON, AddressSpace, FileBacking, Region

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import MmServer

# --- importing the host's layout --------------------------------------------------------


def _prot(perms: str) -> int:
    return ((PROT_READ if perms[0] == "r" else 0) | (PROT_WRITE if perms[1] == "w" else 0)
            | (PROT_EXEC if perms[2] == "x" else 0))


# /proc/PID/maps perms column -> (protection, shared)
_PERMS = {r + w + x + s: (_prot(r + w + x), s == "s")
          for r in "r-" for w in "w-" for x in "x-" for s in "sp"}
# start-end perms offset dev inode [name]
_MAPS_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) (\S+) (\d+) *(.*)$", re.M)


def _host_region(start: int, end: int, perms: str, offset: str, dev: str, inode: str,
                 name: str) -> Region:
    """One line of the host's maps (offset in hex and inode as the text has them)."""
    prot, shared = _PERMS.get(perms) or (_prot(perms), perms[3:4] == "s")
    label = name if name[:1] == "[" else ""
    if inode == "0" and not shared:
        flags = MAP_PRIVATE | MAP_ANONYMOUS | (MAP_GROWSDOWN if name == "[stack]" else 0)
        return Region(start, end - start, prot, flags, ANON, label, bool(prot & PROT_WRITE))
    # a host object (file, shm): its own vnode, so it never merges with ours
    key = (dev, inode, offset, name)
    backing = _backings.get(key)
    if backing is None:
        ino = int(inode)
        major, _, minor = dev.partition(":")
        backing = FileBacking(("host", dev, ino, ino or start), int(offset, 16), path=name,
                              inode=ino, dev=(int(major, 16), int(minor, 16)))
        if ino:
            if len(_backings) >= BACKINGS_KEPT:
                _backings.clear()
            _backings[key] = backing
    return Region(start, end - start, prot, MAP_SHARED if shared else MAP_PRIVATE, backing,
                  label, not shared and bool(prot & PROT_WRITE))


# Backings are immutable and every exec of a program imports the same ones (its
# binary, ld.so at the same offsets): made once.
_backings: dict[tuple[str, int, int, str], FileBacking] = {}
BACKINGS_KEPT = 4096


def _data_limit(host_pid: int) -> int | None:
    """RLIMIT_DATA (soft) of the host process; None = unlimited or unknown."""
    try:
        soft = resource.prlimit(host_pid, resource.RLIMIT_DATA)[0]
    except (OSError, ValueError):
        return _data_limit_proc(host_pid)
    return None if soft == resource.RLIM_INFINITY else soft


def _data_limit_proc(host_pid: int) -> int | None:
    """The same from /proc (prlimit on another's process can be refused)."""
    try:
        with open(f"/proc/{host_pid}/limits") as f:
            for line in f:
                if line.startswith("Max data size"):
                    soft = line[26:].split()[0]
                    return None if soft == "unlimited" else int(soft)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _start_brk(host_pid: int) -> int | None:
    """The host process's start_brk (/proc/PID/stat field 47), None if unreadable.
    While the process has no [heap] its break is exactly there: execve sets brk =
    start_brk, and the heap vma exists whenever brk is above it."""
    try:
        stat_line = read_proc(f"/proc/{host_pid}/stat")
        value = int(stat_line[stat_line.rindex(b")") + 2:].split()[44])
    except (OSError, ValueError, IndexError):
        return None
    return value if value and value & (PAGE_SIZE - 1) == 0 else None


def host_layout(host_pid: int) -> AddressSpace:
    """A record holding the host process's current mappings (empty for 0)."""
    return host_import(host_pid)[0]


def host_import(host_pid: int) -> tuple[AddressSpace, bool]:
    """``host_layout`` and whether the record's break is the host's (known without
    asking the kernel: no [heap] yet, so the break is the host's start_brk)."""
    if host_pid <= 0:
        return AddressSpace(), False
    try:   # names are any bytes
        text = read_proc(f"/proc/{host_pid}/maps").decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        raise SysError(errno.ESRCH, f"no host process {host_pid}") from None
    except PermissionError:
        raise SysError(errno.EACCES, f"cannot read the maps of host {host_pid}") from None
    regions = []
    stack_end = heap_start = 0
    for lo, hi, perms, offset, dev, inode, name in _MAPS_LINE.findall(text):
        start, end = int(lo, 16), int(hi, 16)
        if end > TASK_SIZE:             # not [vsyscall]
            continue
        regions.append(_host_region(start, end, perms, offset, dev, inode, name))
        if name == "[stack]":
            stack_end = end
        elif name == "[heap]":
            heap_start = start
            heap_end = end
    # Linux keeps at least 128 MiB between the stack top and mmap_base: new
    # mappings go top-down from there, clear of the stack's growth (with ASLR the
    # host's own libraries lie further down, and are imported anyway).
    base = DEFAULT_MMAP_BASE
    if stack_end and page_down(stack_end) - STACK_GAP > DEFAULT_MMAP_MIN_ADDR:
        base = min(base, page_down(stack_end) - STACK_GAP)
    brk = None if heap_start else _start_brk(host_pid)
    space = AddressSpace(mmap_base=base,
                         heap_start=heap_start or brk or DEFAULT_HEAP_START,
                         data_limit=_data_limit(host_pid))
    space.load(regions)
    if heap_start:
        space.brk_value = heap_end     # at most a page off until MM_SET_BRK says
    elif brk is not None:
        space.brk_value = brk
    return space, brk is not None


# --- process life --------------------------------------------------------------------------


def _adopt(srv: MmServer, pid: int, host_pid: int) -> int:
    if pid <= 0:
        raise SysError(errno.EINVAL)
    space, brk_known = host_import(host_pid)   # first: a failure leaves the old record
    srv.drop_proc(pid)
    srv.add_proc(pid, space, MmProc(host_pid, brk_known))
    return 0


def do_spawn(srv: MmServer, req: Request) -> int:
    """A new process (no parent MM knows).  A record PM's fork notification made
    already (empty: the parent was unknown) is replaced."""
    b = from_kernel(req)
    return _adopt(srv, b.pid, b.host_pid)


def _shape(space: AddressSpace) -> list[tuple[int, int, int, bool]]:
    """Pages and their protections, neighbours of one kind merged; the stack left
    out (the host grows it on faults MM never sees)."""
    out: list[tuple[int, int, int, bool]] = []
    for r in space:
        if r.name == "[stack]":
            continue
        if out and out[-1][1] == r.start and out[-1][2:] == (r.prot, r.shared):
            out[-1] = (out[-1][0], r.end, r.prot, r.shared)
        else:
            out.append((r.start, r.end, r.prot, r.shared))
    return out


def do_exec_layout(srv: MmServer, req: Request) -> int:
    """The host loaded a new image: import its layout.  MAP_SHARED file maps of
    the old one cannot be written back any more (the memory is gone) -- the
    exit/exec handlers call the kernel's ``flush_shared`` before the host execs.

    The interceptor also sends this for every new process it names, a fork child
    included, right after PM's MM_FORK gave the child a copy of its parent's
    record.  A host layout that is page for page the record's (as a fork child's
    is: it cannot map anything before it is named) means no new image: the
    record stays, with what an import would lose -- file backings, write-back fds,
    the copy-on-write frame references.  A CLONE_VM child's record is its
    parent's own (shared): nothing is imported for it until its exec."""
    b = from_kernel(req)
    if b.fresh:
        # the host has just exec'd: the old image's record goes whatever it was
        # like (PM sent no MmExec; a failed host exec leaves the record as it was)
        return _adopt(srv, b.pid, b.host_pid)
    proc = srv.procs.get(b.pid)
    if proc is not None and b.host_pid > 0 and srv.acct.shared(b.pid):
        # a CLONE_VM child naming itself: its record is its parent's, which the
        # host's is (nothing to import; another import would replace the record
        # both use)
        proc.host_pid = b.host_pid
        return 0
    if proc is not None and b.host_pid > 0:
        host, brk_known = host_import(b.host_pid)
        if _shape(host) == _shape(srv.acct.space(b.pid)):
            proc.host_pid = b.host_pid
            return 0
        srv.drop_proc(b.pid)
        srv.add_proc(b.pid, host, MmProc(b.host_pid, brk_known))
        return 0
    return _adopt(srv, b.pid, b.host_pid)


def do_exec(srv: MmServer, req: Request) -> int:
    """PM's exec notice: the old image is gone.  The record is emptied now (its
    frames released) so that the kernel's MM_EXEC_LAYOUT, after the host loaded
    the new image, imports that image even when it looks page for page like the
    old one (the shape test there keeps a fork child's record).  An unknown pid
    is fine: the first program is exec'd before MM hears of it."""
    b = from_kernel(req)
    proc = srv.procs.get(b.pid)
    if proc is None:
        return 0
    srv.drop_proc(b.pid)
    srv.add_proc(b.pid, AddressSpace(), MmProc(proc.host_pid))
    return 0


def do_fork(srv: MmServer, req: Request) -> int:
    """PM's fork notification.  A parent MM never heard of gets its child an
    imported layout (host pid given) or an empty one, rather than a failed fork."""
    b = from_kernel(req)
    if b.child <= 0 or b.child == b.parent:
        raise SysError(errno.EINVAL)
    srv.drop_proc(b.child)                # a stale record under a reused pid
    if b.parent in srv.acct:
        if b.flags & p.MM_FORK_SHARE_VM:
            # vfork: one address space until the child's exec or exit, so its
            # memory calls change the parent's record, as they do on the host
            srv.acct.share(b.parent, b.child)
        else:
            srv.acct.fork(b.parent, b.child)
        srv.procs[b.child] = srv.proc(b.parent).child(b.child_host_pid)
    else:
        srv.log.debug("fork of %d by %d, which MM does not know", b.child, b.parent)
        space, brk_known = host_import(b.child_host_pid)
        srv.add_proc(b.child, space, MmProc(b.child_host_pid, brk_known))
    return 0


def do_exit(srv: MmServer, req: Request) -> int | None:
    """Everything of the process goes.  An unknown pid is fine (PM and the kernel
    may both report one exit).  PM's notice is one-way (request id 0): no answer."""
    b = from_kernel(req)
    srv.drop_proc(b.pid)
    return 0 if req.msg.req_id else None


# --- the maps query ---------------------------------------------------------------------


def do_maps(srv: MmServer, req: Request) -> p.MmMapsReply:
    b = req.msg.body
    source = req.msg.m_source
    # VFS serves /proc/PID/maps from this; kernels and PM act for processes.
    if not (p.trusted_sender(source) or source == p.VFS_PID or b.pid == source):
        raise SysError(errno.EPERM, "only kernels, PM and VFS see other processes' maps")
    text = srv.acct.space(b.pid).format_maps().encode()
    use = srv.acct.usage(b.pid)
    return p.MmMapsReply(result=len(text), used=use.used, shared=use.shared,
                         private=use.private, mapped_pages=use.mapped_pages,
                         data=text[b.offset:b.offset + p.DATA_MAX])
