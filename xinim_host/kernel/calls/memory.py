"""Memory calls: decided by the Memory Manager (PID 4)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import protocol as p
from .base import SyscallContext, SyscallGen, ask, c_int

if TYPE_CHECKING:
    from ..kernel import Kernel

# --- MM ---------------------------------------------------------------------------

def sys_brk(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.MM_PID, p.MmBrk(caller=c.pid, addr=c.args[0]))).result


def sys_mmap(k: "Kernel", c: SyscallContext) -> SyscallGen:
    offset = c.args[5] - (1 << 64) if c.args[5] >> 63 else c.args[5]
    return (yield from ask(p.MM_PID, p.MmMmap(caller=c.pid, addr=c.args[0], length=c.args[1],
                                               prot=c_int(c.args[2]), flags=c_int(c.args[3]),
                                               fd=c_int(c.args[4]), offset=offset))).result


def sys_munmap(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.MM_PID, p.MmMunmap(caller=c.pid, addr=c.args[0],
                                                 length=c.args[1]))).result


def sys_mprotect(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.MM_PID, p.MmMprotect(caller=c.pid, addr=c.args[0],
                                                   length=c.args[1],
                                                   prot=c_int(c.args[2])))).result


