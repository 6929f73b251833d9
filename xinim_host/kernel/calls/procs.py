"""Process calls: served by the Process Manager (PID 3)."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .. import linux_abi as abi
from .. import protocol as p
from ..errors import SysError
from .base import SyscallContext, SyscallGen, ask, path_arg, string_array, c_int

if TYPE_CHECKING:
    from ..kernel import Kernel

# --- PM ---------------------------------------------------------------------------

def sys_exit(k: "Kernel", c: SyscallContext) -> SyscallGen:
    status = (c_int(c.args[0]) & 0xFF) << 8   # the wait status word of a normal exit
    return (yield from ask(p.PM_PID, p.ProcExit(caller=c.pid, status=status))).result


def sys_fork(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.PM_PID, p.ProcFork(parent_pid=c.pid))).result


def sys_execve(k: "Kernel", c: SyscallContext) -> SyscallGen:
    path = path_arg(c, c.args[0])
    argv = b"\0".join(string_array(c, c.args[1]))
    envp = b"\0".join(string_array(c, c.args[2]))
    if len(argv) > p.DATA_MAX or len(envp) > p.DATA_MAX:
        raise SysError(errno.E2BIG)
    return (yield from ask(p.PM_PID, p.ProcExec(caller=c.pid, path=path, argv=argv,
                                                 envp=envp))).result


def sys_wait4(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = yield from ask(p.PM_PID, p.ProcWait4(caller=c.pid, pid=c_int(c.args[0]),
                                                  options=c_int(c.args[2])))
    if c.args[1] and reply.result > 0:
        c.mem.write(c.args[1], abi.INT.pack(reply.status))
    if c.args[3]:
        c.mem.write(c.args[3], bytes(abi.RUSAGE_SIZE))
    return reply.result


def sys_getpid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.PM_PID, p.ProcGetpid(caller=c.pid))).result


def sys_getppid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.PM_PID, p.ProcGetppid(caller=c.pid))).result


def sys_kill(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from ask(p.PM_PID, p.ProcKill(caller=c.pid, pid=c_int(c.args[0]),
                                                 sig=c_int(c.args[1])))).result


def sys_signal(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = yield from ask(p.PM_PID, p.ProcSignal(caller=c.pid, sig=c_int(c.args[0]),
                                                   handler=c.args[1]))
    return reply.handler


def sys_sigaction(k: "Kernel", c: SyscallContext) -> SyscallGen:
    sig, act, oldact = c_int(c.args[0]), c.args[1], c.args[2]
    handler = flags = restorer = mask = 0
    if act:
        handler, flags, restorer, mask = abi.SIGACTION.unpack(c.mem.read(act, abi.SIGACTION.size))
    reply = yield from ask(p.PM_PID, p.ProcSigaction(
        caller=c.pid, sig=sig, set=1 if act else 0, handler=handler, flags=flags,
        restorer=restorer, mask=mask))
    if oldact:
        c.mem.write(oldact, abi.SIGACTION.pack(reply.handler, reply.flags, reply.restorer,
                                               reply.mask))
    return 0


