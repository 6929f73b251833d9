"""What PM tells about processes: the listing for xinim-ps, one process for
/proc, and the host <-> XINIM id lookups only the kernel may make."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..lib import protocol as p
from ..lib.errors import SysError
from . import signals
from .forkexit import kernel_only
from .nodes import check_task
from .proctable import SIG_DFL, Process

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import PmServer

_PER_MESSAGE = p.DATA_MAX // p.PROC_LIST_RECORD.size


def list_record(proc: Process, *, with_host: bool) -> bytes:
    return p.PROC_LIST_RECORD.pack(
        proc.pid, proc.ppid, proc.pgid, proc.sid, proc.ruid & 0xFFFFFFFF,
        proc.host_pid if with_host else 0, min(len(proc.tasks), 0xFFFF),
        proc.state.value.encode(), proc.command.encode()[:16])


def do_list(pm: "PmServer", req: "Request") -> p.Payload:
    # host pids: for the boot's kernel, not a joined node's
    source = req.msg.m_source
    with_host = p.is_kernel(source) and pm.lattice.peer_of_kernel(source) is None
    start = req.body.start
    pids = sorted(pid for pid in pm.table.procs if pid >= start)
    chunk, rest = pids[:_PER_MESSAGE], pids[_PER_MESSAGE:]
    blob = b"".join(list_record(pm.table.procs[pid], with_host=with_host) for pid in chunk)
    return p.ProcListReply(result=len(chunk), next=rest[0] if rest else 0, data=blob)


def do_info(pm: "PmServer", req: "Request") -> p.Payload:
    pid = req.body.pid
    if pid == 0:
        proc = pm.table.live_task(req.caller).proc
    else:
        proc = pm.table.procs.get(pid)
        if proc is None:
            raise SysError(errno.ESRCH)
    leader = proc.tasks.get(proc.pid)
    ignored = caught = 0
    for sig in range(1, len(proc.actions)):
        handler = proc.actions[sig].handler
        if handler == signals.SIG_IGN:
            ignored |= signals.sigmask(sig)
        elif handler != SIG_DFL:
            caught |= signals.sigmask(sig)
    cmdline = b"".join(arg + b"\0" for arg in proc.argv)[:p.DATA_MAX]
    state = proc.state.value
    if state == "R" and proc.host_pid:
        state = _host_state(proc.host_pid)
    return p.ProcInfoReply(
        pid=proc.pid, ppid=proc.ppid, pgid=proc.pgid, sid=proc.sid,
        state=ord(state), ruid=proc.ruid, euid=proc.euid, suid=proc.suid,
        rgid=proc.rgid, egid=proc.egid, sgid=proc.sgid,
        threads=sum(1 for _ in proc.live_tasks()),
        sigpnd=leader.pending if leader else 0, shdpnd=proc.pending,
        blocked=leader.blocked if leader else 0, ignored=ignored, caught=caught,
        start_ns=int(proc.start_time * 1e9), comm=proc.command.encode()[:15], data=cmdline)


def _host_state(host_pid: int) -> str:
    """A running process as the host sees it: waiting in a host-run call (pause,
    futex, sigsuspend) is sleeping ("S").  A tracing stop stays "R": the
    process may be the very one reading its /proc/self/stat."""
    try:
        with open(f"/proc/{host_pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return "R"
    state = text[text.rfind(b")") + 2:][:1]
    return "S" if state in (b"S", b"D") else "R"


def do_host_to_xinim(pm: "PmServer", req: "Request") -> p.Payload:
    kernel_only(req)
    task = pm.table.by_host.get(req.body.host_tid)
    if task is None:
        raise SysError(errno.ESRCH)
    check_task(pm, req, task)
    return p.ProcIdsReply(result=task.tid, pid=task.proc.pid)


def do_xinim_to_host(pm: "PmServer", req: "Request") -> int:
    kernel_only(req)
    task = pm.table.tasks.get(req.body.pid)
    if task is None or not task.host_tid:
        raise SysError(errno.ESRCH)
    check_task(pm, req, task)
    return task.host_tid
