"""System V shared memory: MM decides, the host maps the segment's pages.

``shmget``/``shmctl`` are MM's answers alone.  ``shmat``: MM checks the
permission, picks the address and records the attach; the tracee then opens
the segment's memfd through ``/proc/<MM's host pid>/fd/N`` (MM's answer) and
maps it ``MAP_SHARED|MAP_FIXED`` there -- the same pages for every process of
this XINIM system that attaches (mm/shm.py).  ``shmdt``: MM names the ranges,
the host unmaps them.  A host call that fails is taken back with MM_UNDO, as
for mmap (calls/memory.py); both run under the address space's memory-call
lock.

Semaphores and message queues are the VFS's (vfs_fuse/sysv.py): their calls
are plain requests, a blocked one parks in the VFS.
"""
from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from ...lib import protocol as p
from ...lib import sysv_abi as sv
from ...lib.errors import SysError
from ...lib.vm_abi import MAP_FIXED, MAP_SHARED, PROT_WRITE
from .base import SyscallContext, SyscallGen, ask, c_int
from .memory import NR_MUNMAP, _host, _serialised, _undo, map_host_path

if TYPE_CHECKING:
    from ..kernel import Kernel


def sys_shmget(k: Kernel, c: SyscallContext) -> SyscallGen:
    key, size, flg = c_int(c.args[0]), c.args[1], c_int(c.args[2])
    reply = yield from ask(p.MM_PID, p.MmShmget(caller=c.pid, key=key, size=size, shmflg=flg,
                                                euid=c.euid, egid=c.egid))
    return reply.result


@_serialised
def sys_shmat(k: Kernel, c: SyscallContext) -> SyscallGen:
    shmid, addr, flg = c_int(c.args[0]), c.args[1], c_int(c.args[2])
    if c.host is None:
        raise SysError(errno.ENOSYS, "shmat needs a host side")
    reply = yield from ask(p.MM_PID, p.MmShmat(caller=c.pid, shmid=shmid, addr=addr, shmflg=flg,
                                               euid=c.euid, egid=c.egid))
    start = reply.result
    mode = os.O_RDWR if reply.prot & PROT_WRITE else os.O_RDONLY
    result = yield from map_host_path(c, reply.host_path, mode, start, reply.length,
                                      reply.prot, MAP_SHARED | MAP_FIXED, 0)
    if result != start:
        yield from _undo(c, reply.token)
        return result if result < 0 else -errno.ENOMEM
    return start


@_serialised
def sys_shmdt(k: Kernel, c: SyscallContext) -> SyscallGen:
    reply = yield from ask(p.MM_PID, p.MmShmdt(caller=c.pid, addr=c.args[0]))
    for start, length, _, _ in p.unpack_ranges(reply.data):
        result = yield from _host(NR_MUNMAP, start, length)
        if result < 0:
            yield from _undo(c, reply.token)
            return result
    return 0


def sys_shmctl(k: Kernel, c: SyscallContext) -> SyscallGen:
    shmid, cmd, buf = c_int(c.args[0]), c_int(c.args[1]), c.args[2]
    base = cmd & ~sv.IPC_64
    data = b""
    if base == sv.IPC_SET:
        data = c.mem.read(buf, sv.SHMID64_DS.size)
    reply = yield from ask(p.MM_PID, p.MmShmctl(caller=c.pid, shmid=shmid, cmd=cmd,
                                                euid=c.euid, egid=c.egid, data=data))
    if reply.data:
        c.mem.write(buf, reply.data)
    return reply.result
