"""execve: VFS resolves and checks the file, PM follows ``#!`` lines, then commits
the new image: other threads gone, caught signals back to default, set-id bits,
the command name, and VFS (close-on-exec) and MM (new address space) told.  The
reply tells the kernel what the host must exec."""
from __future__ import annotations

import errno
import logging
import posixpath
import stat
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any

from ..lib import protocol as p
from ..lib.errors import SysError
from . import signals, wait
from .notify import ExecTarget, combine
from .proctable import DEFAULT_ACTION, SIG_IGN, SigAction, State, Task

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import PmServer

log = logging.getLogger(__name__)

MAX_INTERP_DEPTH = 4        # Linux BINPRM_MAX_RECURSION: #! chains deeper are ELOOP
COMM_LEN = 15               # TASK_COMM_LEN - 1


def do_exec(pm: "PmServer", req: "Request") -> Any:
    task = pm.table.live_task(req.caller)
    return _run(_exec(pm, req, task))


# The exec is a generator that yields what it waits for -- a VFS check, the
# notices' completion -- each an answer now or an awaitable of one.  It runs
# straight through while the answers are there at once (the VFS answered inline,
# the common case: the kernel gets PM's reply inside its call, no trio task),
# and as a task from the first one that is not.
Steps = Generator[Any, Any, p.Payload]


def _advance(steps: Steps, value: Any) -> tuple[bool, Any]:
    """Send ``value`` and go on while answers are there at once: (True, the exec's
    result) when it ends, (False, the awaitable) at the first wait."""
    while True:
        try:
            wanted = steps.send(value)
        except StopIteration as stop:
            return True, stop.value
        if isinstance(wanted, Awaitable):
            return False, wanted
        value = wanted


def _run(steps: Steps) -> Any:
    done, got = _advance(steps, None)
    return got if done else _finish(steps, got)


async def _finish(steps: Steps, wanted: Awaitable[Any]) -> p.Payload:
    while True:
        done, got = _advance(steps, await wanted)
        if done:
            return got
        wanted = got


def _fits(argv: list[bytes]) -> bool:
    """The command line fits PM's record (else the exec fails with E2BIG)."""
    return sum(len(a) + 1 for a in argv) - 1 <= p.DATA_MAX


def _check(pm: "PmServer", pid: int, path: bytes, commit: bool) -> Generator[Any, Any, ExecTarget]:
    """VFS's check of ``path``.  ``commit``: nothing after it can fail the exec if
    the file is an ELF image, so the VFS closes the close-on-exec fds right
    away (one message, not a check and a VFS_EXEC)."""
    found = yield pm.notify.exec_check(pid, path, commit)
    if isinstance(found, int):
        raise SysError(found or errno.EIO)
    return found


def _exec(pm: "PmServer", req: "Request", task: Task) -> Steps:
    body = req.body
    proc = task.proc
    path = body.path
    argv = body.argv.split(b"\0") if body.argv else []
    target = yield from _check(pm, proc.pid, path, _fits(argv))
    exe = path
    for depth in range(1, MAX_INTERP_DEPTH + 2):
        if not target.script:
            break
        if not target.interp:
            raise SysError(errno.ENOEXEC)
        # Linux: interpreter, its one optional argument, the script's path, argv[1:]
        argv = [target.interp, *([target.interp_arg] if target.interp_arg else []),
                exe, *argv[1:]]
        exe = target.interp
        # (the check one past the deepest interpreter only decides the errno)
        target = yield from _check(pm, proc.pid, exe,
                                   depth <= MAX_INTERP_DEPTH and _fits(argv))
    else:
        raise SysError(errno.ELOOP)
    blob = b"\0".join(argv)
    if len(blob) > p.DATA_MAX:
        raise SysError(errno.E2BIG)
    if not task.alive or proc.state is State.ZOMBIE:
        raise SysError(errno.ESRCH)             # killed while VFS was looking
    ids_changed = _commit(pm, task, target, path, tuple(argv))
    # MM hears of the new image from the kernel when a host loads it (a fresh
    # MmExecLayout replaces the record); the VFS may have heard with the check
    done = pm.notify.exec(proc.pid, vfs=not target.committed, mm=not pm.host_exits)
    if ids_changed:
        done = combine(done, pm.notify.setids(proc.pid, proc.ruid, proc.euid, proc.rgid,
                                              proc.egid))
    err = yield done
    if err:  # past the point of no return: the old image is gone either way
        log.warning("pid %d exec: VFS/MM answered errno %d", proc.pid, err)
    return p.ProcExecReply(path=exe, host_path=target.host_path, argv=blob, dev=target.dev,
                           ino=target.ino, uid=proc.ruid, euid=proc.euid, gid=proc.rgid,
                           egid=proc.egid)


def _commit(pm: "PmServer", task: Task, target: ExecTarget, path: bytes,
            argv: tuple[bytes, ...]) -> bool:
    """The new image replaces the old; True when set-id bits changed the ids."""
    proc = task.proc
    table = pm.table
    # every other thread dies; the caller takes over the leader's tid, and on the
    # host the leader's tid too (Linux de_thread)
    leader = proc.tasks.get(proc.pid)
    host = leader.host_tid if leader is not None and leader is not task else 0
    for other in list(proc.tasks.values()):
        if other is not task:
            signals.wake_suspended(other)
            wait.interrupt(proc, other, errno.EINTR)
            table.remove_task(other)
    if task.tid != proc.pid:
        table.tasks.pop(task.tid, None)
        proc.tasks.pop(task.tid, None)
        task.tid = proc.pid
        proc.tasks[proc.pid] = task
        table.tasks[proc.pid] = task
        table.set_host(task, host or task.host_tid)
    pm.timers.drop(proc, keep_real=True)     # POSIX timers go; ITIMER_REAL stays
    # caught signals go back to default; ignored ones stay ignored (POSIX)
    proc.actions = [DEFAULT_ACTION if a.handler != SIG_IGN else
                    (a if a.flags == a.mask == a.restorer == 0 else SigAction(SIG_IGN))
                    for a in proc.actions]
    old = (proc.euid, proc.egid)
    if target.mode & stat.S_ISUID:
        proc.euid = target.uid
    if target.mode & stat.S_ISGID:
        proc.egid = target.gid
    proc.suid, proc.sgid = proc.euid, proc.egid     # saved ids follow the effective ones
    proc.did_exec = True
    proc.argv = argv
    # comm is the file's name, as Linux (bprm->filename), cut to 15 bytes
    proc.command = posixpath.basename(path.rstrip(b"/") or path)[:COMM_LEN].decode(
        errors="replace")
    return (proc.euid, proc.egid) != old
