"""The Process Manager (PID 3): receive loop and call vector.

Until the Process Manager issue lands, PM serves only what needs no process
table beyond the boot-time one (getpid/getppid of known pids); everything else
answers ENOSYS through the server base.
"""
from __future__ import annotations

import errno

from ..kernel import protocol as p
from ..kernel.errors import SysError
from ..kernel.server import Request, Server


class PmServer(Server):
    pid = p.PM_PID
    reply_type = p.PROC_REPLY

    def __init__(self, lattice) -> None:
        super().__init__(lattice)
        # pid -> parent pid; the servers and init are there from boot (plan §7.2)
        self.parents: dict[int, int] = {p.INIT_PID: 0, p.VFS_PID: 0, p.PM_PID: 0, p.MM_PID: 0}


def do_getpid(pm: PmServer, req: Request) -> int:
    if req.caller not in pm.parents:
        raise SysError(errno.ESRCH)
    return req.caller


def do_getppid(pm: PmServer, req: Request) -> int:
    parent = pm.parents.get(req.caller)
    if parent is None:
        raise SysError(errno.ESRCH)
    return parent


PmServer.handlers = {
    p.PROC_GETPID: do_getpid,
    p.PROC_GETPPID: do_getppid,
}
