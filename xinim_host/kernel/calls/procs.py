"""Process calls: served by the Process Manager (PID 3)."""
from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any, Generator

from ...lib import linux_abi as abi
from ...lib import protocol as p
from ...lib.errors import SysError
from .base import (
    HostCall,
    Op,
    Sendrec,
    SyscallContext,
    SyscallGen,
    ask,
    c_int,
    path_arg,
    pointer_array,
)
from .memory import flush_shared

LINUX_WAIT4 = 61

if TYPE_CHECKING:
    from ..kernel import Kernel

# --- PM ---------------------------------------------------------------------------
# ``caller`` for PM is the calling *thread* (``ctx.tid``); VFS and MM speak of the
# process (``ctx.pid``).

def _pm(body: p.Payload) -> Generator[Op, Any, Any]:
    return (yield from ask(p.PM_PID, body))


def _result(body: p.Payload) -> SyscallGen:
    # ``ask`` inline: the getpid family is the hot path, one generator less per call
    reply = (yield Sendrec(p.PM_PID, body)).body
    if reply.error:
        raise SysError(reply.error)
    return reply.result


def sys_getpid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = (yield Sendrec(p.PM_PID, p.ProcGetpid(caller=c.tid))).body   # ``_result``, inline
    if reply.error:
        raise SysError(reply.error)
    return reply.result


def sys_getppid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = (yield Sendrec(p.PM_PID, p.ProcGetppid(caller=c.tid))).body   # ``_result``, inline
    if reply.error:
        raise SysError(reply.error)
    return reply.result


def sys_gettid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = (yield Sendrec(p.PM_PID, p.ProcGettid(caller=c.tid))).body   # ``_result``, inline
    if reply.error:
        raise SysError(reply.error)
    return reply.result


def sys_getpgrp(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = (yield Sendrec(p.PM_PID, p.ProcGetpgrp(caller=c.tid))).body   # ``_result``, inline
    if reply.error:
        raise SysError(reply.error)
    return reply.result


def sys_getpgid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _result(p.ProcGetpgid(caller=c.tid, pid=c_int(c.args[0]))))


def sys_setpgid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _result(p.ProcSetpgid(caller=c.tid, pid=c_int(c.args[0]),
                                             pgid=c_int(c.args[1]))))


def sys_getsid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _result(p.ProcGetsid(caller=c.tid, pid=c_int(c.args[0]))))


def sys_setsid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _result(p.ProcSetsid(caller=c.tid)))


def sys_kill(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _result(p.ProcKill(caller=c.tid, pid=c_int(c.args[0]),
                                          sig=c_int(c.args[1]))))


def xinim_tid(c: SyscallContext, tid: int) -> Generator[Op, Any, int]:
    """glibc names its own threads by the tid the host kernel wrote at clone time;
    turn such a host tid of the caller's own process into the XINIM tid."""
    if c.host is not None and c.host.owns_thread(tid):
        return (yield from _pm(p.ProcHostToXinim(host_tid=tid))).result
    return tid


def sys_tkill(k: "Kernel", c: SyscallContext) -> SyscallGen:
    tid = yield from xinim_tid(c, c_int(c.args[0]))
    return (yield from _result(p.ProcTkill(caller=c.tid, tid=tid, sig=c_int(c.args[1]))))


def sys_tgkill(k: "Kernel", c: SyscallContext) -> SyscallGen:
    tid = yield from xinim_tid(c, c_int(c.args[1]))
    return (yield from _result(p.ProcTgkill(caller=c.tid, tgid=c_int(c.args[0]), tid=tid,
                                            sig=c_int(c.args[2]))))


def _host_finishes(c: SyscallContext) -> SyscallGen:
    """The trapped call runs on the host and its result is the program's: with no
    exit stop when nobody looks at the result (the trace does).  For calls whose
    host failure needs nothing undone: the kernel has checked or copied in what
    could fail before asking PM, and the host then fails, if at all, as Linux
    would have (an ``oldset`` pointer it cannot write: EFAULT after the change)."""
    untraced = getattr(c.host, "untraced", None)
    return (yield HostCall(None, tail=bool(untraced is not None and untraced())))


def sys_sigaction(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """PM records the disposition; a traced process's host half installs it too,
    because the host kernel is what delivers signals."""
    sig, act, oldact = c_int(c.args[0]), c.args[1], c.args[2]
    if not act and c.host is not None:
        # a query: the host's disposition is the answer (PM's record would not be
        # read), so PM need not be asked -- Python asks for every signal at start
        return (yield from _host_finishes(c))
    handler = flags = restorer = mask = 0
    if act:
        handler, flags, restorer, mask = abi.SIGACTION.unpack(c.mem.read(act, abi.SIGACTION.size))
    reply = yield from _pm(p.ProcSigaction(caller=c.tid, sig=sig, set=1 if act else 0,
                                           handler=handler, flags=flags, restorer=restorer,
                                           mask=mask))
    if c.host is not None:
        return (yield from _host_finishes(c))
    if oldact:
        c.mem.write(oldact, abi.SIGACTION.pack(reply.handler, reply.flags, reply.restorer,
                                               reply.mask))
    return 0


def sys_signal(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = yield from _pm(p.ProcSignal(caller=c.tid, sig=c_int(c.args[0]), handler=c.args[1]))
    return reply.handler


def sys_rt_sigprocmask(k: "Kernel", c: SyscallContext) -> SyscallGen:
    how, new, old, size = c_int(c.args[0]), c.args[1], c.args[2], c.args[3]
    if size != 8:
        raise SysError(errno.EINVAL)
    if not new and c.host is not None:
        return (yield from _host_finishes(c))     # a query: the host thread's mask
    mask = abi.POINTER.unpack(c.mem.read(new, 8))[0] if new else 0
    reply = yield from _pm(p.ProcSigprocmask(caller=c.tid, how=how, set=1 if new else 0,
                                             mask=mask))
    if c.host is not None:   # the host thread's real mask changes too
        return (yield from _host_finishes(c))
    if old:
        c.mem.write(old, abi.POINTER.pack(reply.mask))
    return 0


def sys_sigpending(k: "Kernel", c: SyscallContext) -> SyscallGen:
    if c.host is not None:   # pending signals live in the host thread
        return (yield HostCall(None))
    reply = yield from _pm(p.ProcSigpending(caller=c.tid))
    c.mem.write(c.args[0], abi.POINTER.pack(reply.mask))
    return 0


def _exit_status(c: SyscallContext) -> int:
    return (c_int(c.args[0]) & 0xFF) << 8   # the wait status word of a normal exit


def sys_exit(k: "Kernel", c: SyscallContext) -> SyscallGen:
    yield from _pm(p.ProcExit(caller=c.tid, status=_exit_status(c)))
    if c.host is not None:
        return (yield HostCall(None))      # the host ends the thread; no return
    return 0


def sys_exit_group(k: "Kernel", c: SyscallContext) -> SyscallGen:
    yield from flush_shared(k, c)   # MAP_SHARED file maps reach the file before the image goes
    if c.host is not None and _alone_untraced(c):
        # One task: PM hears of the exit from its death (ProcTaskExited, the report
        # every death gets, with the same status), so no ProcExitGroup first.
        return (yield HostCall(None, tail=True))
    yield from _pm(p.ProcExitGroup(caller=c.tid, status=_exit_status(c)))
    if c.host is not None:
        return (yield HostCall(None))
    return 0


def _alone_untraced(c: SyscallContext) -> bool:
    untraced = getattr(c.host, "untraced", None)
    sole = getattr(c.host, "sole_thread", None)
    return untraced is not None and sole is not None and untraced() and sole()


def sys_fork(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """fork/vfork/clone/clone3: the host makes the task (PM names it from the fork
    event the interceptor reports); the parent is told the XINIM id."""
    if c.host is None:
        raise SysError(errno.ENOSYS, "only a process with a host half can fork")
    host_tid = yield HostCall(None)
    if host_tid <= 0:
        return host_tid
    # The interceptor knows the id PM gave the child at its fork event, even when
    # the child has already come and gone (PM has then forgotten its host tid).
    known = c.host.xinim_tid_of(host_tid)
    if known:
        return known
    return (yield from _pm(p.ProcHostToXinim(host_tid=host_tid))).result


def _wait_host_zombie(c: SyscallContext, host_pid: int) -> Generator[Op, Any, None]:
    """PM reaped the XINIM zombie; the host one goes too (the caller is its real
    parent on the host).  PM answers a wait only once the tracer saw the host task
    die, so the zombie is there: WNOHANG never blocks the caller on the host (where
    a signal could interrupt it).  ECHILD: the tracer reaped it (orphans come to us)."""
    if c.host is not None and host_pid > 0:
        yield HostCall(LINUX_WAIT4, (host_pid, 0, os.WNOHANG | abi.WALL, 0))


def sys_wait4(k: "Kernel", c: SyscallContext) -> SyscallGen:
    status_ptr, options, rusage = c.args[1], c_int(c.args[2]), c.args[3]
    reply = yield from _pm(p.ProcWait4(caller=c.tid, pid=c_int(c.args[0]), options=options))
    # as Linux's kernel_wait4: the child is reaped, then a bad status or rusage
    # pointer makes the call EFAULT
    if reply.result > 0:
        yield from _wait_host_zombie(c, reply.host_pid)
        if status_ptr:
            c.mem.write(status_ptr, abi.INT.pack(reply.status))
    if rusage:
        c.mem.write(rusage, bytes(abi.RUSAGE_SIZE))
    return reply.result


def sys_waitid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    idtype, ident, infop, options = c_int(c.args[0]), c_int(c.args[1]), c.args[2], c_int(c.args[3])
    reply = yield from _pm(p.ProcWaitid(caller=c.tid, idtype=idtype, id=ident, options=options))
    if reply.pid > 0 and not options & p.WNOWAIT and reply.code in (
            p.CLD_EXITED, p.CLD_KILLED, p.CLD_DUMPED):
        yield from _wait_host_zombie(c, reply.host_pid)
    if infop:
        info = bytearray(abi.SIGINFO_SIZE)
        if reply.pid > 0:
            abi.SIGINFO_CHLD.pack_into(info, 0, reply.signo, 0, reply.code, reply.pid, reply.uid,
                                       reply.status)
        c.mem.write(infop, bytes(info))
    return 0


MAX_ARG_STRLEN = 128 * 1024   # Linux's bounds on what execve takes
ARG_MAX = 2 * 1024 * 1024
ARG_PROBE = 4096


def sys_execve(k: "Kernel", c: SyscallContext) -> SyscallGen:
    path = path_arg(c, c.args[0])
    argv_ptrs = pointer_array(c, c.args[1])
    argv = [_arg_string(c, ptr) for ptr in argv_ptrs]
    if sum(len(a) + 1 for a in argv) > ARG_MAX:
        raise SysError(errno.E2BIG)
    envp_ptr = c.args[2]
    # PM records the command line (whole arguments, as much as a message holds);
    # the host exec gets all of it, from the caller's own memory.
    told = _fitting(argv, p.DATA_MAX)
    # MAP_SHARED file maps reach their files first: PM's exec makes VFS close the
    # close-on-exec fds, MM's write-back fds among them.
    yield from flush_shared(k, c)
    reply = yield from _pm(p.ProcExec(caller=c.tid, path=path, argv=b"\0".join(told), envp=b""))
    k.set_creds(c.pid, reply.uid, reply.euid, reply.gid, reply.egid)   # set-id bits took
    if c.host is None:
        return 0
    # PM's argv is ours with an interpreter prefix for a #! script: keep that prefix
    # and hand on the caller's own arguments after argv[0].
    shown = reply.argv.split(b"\0") if reply.argv else told
    prefix = shown[:len(shown) - max(len(told) - 1, 0)]
    rest = argv_ptrs[1:]
    if reply.host_path:
        return (yield from _exec_on_host(c, reply.host_path, prefix, rest, argv, envp_ptr))
    memfd = yield from ramfs_image(c.pid, reply.path)
    try:
        image = f"/proc/{os.getpid()}/fd/{memfd}".encode()
        return (yield from _exec_on_host(c, image, prefix, rest, argv, envp_ptr,
                                         keep_handler=True))
    finally:
        os.close(memfd)


def _arg_string(c: SyscallContext, ptr: int) -> bytes:
    """One execve argument: a page's worth first (a shell's arguments lie in its
    heap, where the whole MAX_ARG_STRLEN would be copied every time), all of it
    only for a longer one."""
    try:
        return c.mem.read_cstring(ptr, ARG_PROBE)
    except SysError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
    return c.mem.read_cstring(ptr, MAX_ARG_STRLEN)


def _fitting(argv: list[bytes], limit: int) -> list[bytes]:
    out, size = [], 0
    for arg in argv:
        size += len(arg) + 1
        if size - 1 > limit:
            break
        out.append(arg)
    return out


def _exec_on_host(c: SyscallContext, image: bytes, prefix: list[bytes], rest: list[int],
                  argv: list[bytes], envp_ptr: int, keep_handler: bool = False) -> SyscallGen:
    """Run the trapped execve on the host with the image's host path; argv stays the
    caller's own array unless a script's interpreter goes in front of it."""
    if prefix == argv[:1]:
        path_ptr, argv_ptr = _scratch_strings(c, image, [], [])[0], c.args[1]
    else:
        path_ptr, argv_ptr = _scratch_strings(c, image, prefix, rest)
    # A host path: nothing of ours must outlive the exec (a ramfs image's memfd
    # does, until the host has opened it), so the host's answer -- none on
    # success, an errno the program should see on failure -- needs no exit stop.
    untraced = getattr(c.host, "untraced", None)
    tail = not keep_handler and untraced is not None and untraced()
    return (yield HostCall(None, (path_ptr, argv_ptr, envp_ptr), tail=tail))


def ramfs_image(caller: int, path: bytes) -> Generator[Op, Any, int]:
    """A ramfs file has no host path: copy it, read through the VFS as ``caller``,
    into a memfd the host kernel can exec.  Also xinim-run's, for a ramfs program
    (cli/launch drives it, answering each Sendrec from the lattice)."""
    fd = (yield from ask(p.VFS_PID, p.VfsOpen(caller=caller, dirfd=abi.AT_FDCWD,
                                               flags=os.O_RDONLY | os.O_CLOEXEC, mode=0,
                                               path=path))).result
    memfd = os.memfd_create("xinim-exec", 0)
    try:
        offset = 0
        while True:
            chunk = (yield from ask(p.VFS_PID, p.VfsRead(caller=caller, fd=fd, count=p.DATA_MAX,
                                                          offset=offset))).data
            if not chunk:
                break
            os.pwrite(memfd, chunk, offset)
            offset += len(chunk)
    except BaseException:
        os.close(memfd)
        raise
    finally:
        yield from ask(p.VFS_PID, p.VfsClose(caller=caller, fd=fd))
    return memfd


def _scratch_strings(c: SyscallContext, path: bytes, strings: list[bytes],
                     more: list[int]) -> tuple[int, int]:
    """Write ``path`` and an argv array (``strings`` written here, then the pointers
    ``more`` already in the caller's memory) below the caller's stack red zone,
    where nothing lives while it is stopped in a syscall; return both addresses."""
    assert c.host is not None
    sp = c.host.stack_pointer() - 128 - 4096
    blob = bytearray()
    offsets = []
    for s in [path, *strings]:
        offsets.append(len(blob))
        blob += s + b"\0"
    count = len(strings) + len(more) + 1
    array_at = (sp - len(blob) - 8 * count) & ~15
    strings_at = array_at + 8 * count
    pointers = [strings_at + off for off in offsets[1:]] + more + [0]
    c.mem.write(array_at, b"".join(abi.POINTER.pack(ptr) for ptr in pointers) + bytes(blob))
    return strings_at + offsets[0], array_at


def refresh_creds(k: "Kernel", c: SyscallContext) -> Generator[Op, Any, None]:
    """The kernel's copy of a process's ids (it serves getuid itself)."""
    uids = yield from _pm(p.ProcGetresuid(caller=c.tid))
    gids = yield from _pm(p.ProcGetresgid(caller=c.tid))
    k.set_creds(c.pid, uids.real, uids.effective, gids.real, gids.effective)


def _set_ids(k: "Kernel", c: SyscallContext, body: p.Payload) -> SyscallGen:
    """PM changes the ids; the kernel then refreshes its copy of them."""
    result = yield from _result(body)
    yield from refresh_creds(k, c)
    return result


def sys_setuid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _set_ids(k, c, p.ProcSetuid(caller=c.tid, uid=c_int(c.args[0]))))


def sys_setgid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _set_ids(k, c, p.ProcSetgid(caller=c.tid, gid=c_int(c.args[0]))))


def sys_setreuid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _set_ids(k, c, p.ProcSetreuid(caller=c.tid, ruid=c_int(c.args[0]),
                                                     euid=c_int(c.args[1]))))


def sys_setregid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _set_ids(k, c, p.ProcSetregid(caller=c.tid, rgid=c_int(c.args[0]),
                                                     egid=c_int(c.args[1]))))


def sys_setresuid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _set_ids(k, c, p.ProcSetresuid(
        caller=c.tid, ruid=c_int(c.args[0]), euid=c_int(c.args[1]), suid=c_int(c.args[2]))))


def sys_setresgid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _set_ids(k, c, p.ProcSetresgid(
        caller=c.tid, rgid=c_int(c.args[0]), egid=c_int(c.args[1]), sgid=c_int(c.args[2]))))


def _getres(body: p.Payload, c: SyscallContext) -> SyscallGen:
    reply = yield from _pm(body)
    for addr, value in zip(c.args[:3], (reply.real, reply.effective, reply.saved)):
        c.mem.write(addr, abi.INT.pack(value))
    return 0


def sys_getresuid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _getres(p.ProcGetresuid(caller=c.tid), c))


def sys_getresgid(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _getres(p.ProcGetresgid(caller=c.tid), c))


def sys_getgroups(k: "Kernel", c: SyscallContext) -> SyscallGen:
    size = c_int(c.args[0])
    reply = yield from _pm(p.ProcGetgroups(caller=c.tid, size=size))
    if size and reply.data:
        c.mem.write(c.args[1], reply.data)
    return reply.result


def sys_setgroups(k: "Kernel", c: SyscallContext) -> SyscallGen:
    size = c_int(c.args[0])
    if not 0 <= size <= 1024:
        raise SysError(errno.EINVAL)
    data = c.mem.read(c.args[1], 4 * size) if size else b""
    return (yield from _result(p.ProcSetgroups(caller=c.tid, data=data)))
