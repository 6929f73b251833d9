"""Process Manager messages: the plan's 200-208 and reply 250; new types take 209-249.

``caller`` is the XINIM *tid* of the calling task (a main thread's tid is its
pid, so single-threaded callers simply pass their pid).  PM believes it only from
the kernel's or PM's channel (``effective_caller``); anyone else speaks for itself.

Requests marked *kernel only* answer EPERM from any other sender: they carry or
reveal host task ids, which are PM's secret.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .wire import *
from .wire import Payload, ReplyBase, reply, request

# --- the plan's PM numbers (200-208; the reply is wire.PROC_REPLY, 250) -------------
PROC_FORK, PROC_EXEC, PROC_EXIT, PROC_WAIT4, PROC_KILL = 200, 201, 202, 203, 204
PROC_GETPID, PROC_GETPPID, PROC_SIGNAL, PROC_SIGACTION = 205, 206, 207, 208

# --- new PM numbers (209-249) -----------------------------------------------------
PROC_EXIT_GROUP = 209       # exit_group: the whole process ends
PROC_TASK_EXITED = 210      # kernel only: a host task died (wait status word)
PROC_TASK_STOPPED = 211     # kernel only: a host task entered a group stop
PROC_TASK_CONTINUED = 212   # kernel only: a stopped host task was continued
PROC_HOST_TO_XINIM = 213    # kernel only: host tid -> XINIM tid and pid
PROC_XINIM_TO_HOST = 214    # kernel only: XINIM tid/pid -> host tid
PROC_GETTID = 215
PROC_GETPGRP = 216
PROC_GETPGID = 217
PROC_SETPGID = 218
PROC_GETSID = 219
PROC_SETSID = 220
PROC_WAITID = 221
PROC_TKILL = 222
PROC_TGKILL = 223
PROC_SIGPROCMASK = 224
PROC_SIGPENDING = 225
PROC_SIGSUSPEND = 226
PROC_SETUID = 227
PROC_SETGID = 228
PROC_SETREUID = 229
PROC_SETREGID = 230
PROC_SETRESUID = 231
PROC_SETRESGID = 232
PROC_GETRESUID = 233
PROC_GETRESGID = 234
PROC_GETGROUPS = 235
PROC_SETGROUPS = 236
PROC_LIST = 237             # xinim-ps: one record per process
PROC_INFO = 238             # one process in detail (/proc/PID/{stat,status,cmdline})
PROC_SIGFD_TAKE = 239       # VFS only: a signalfd read takes pending signals (issue 14)
PROC_TIMER_CREATE = 240     # timer_create: POSIX timers are PM's (issue 14)
PROC_TIMER_SET = 241        # timer_settime, setitimer(ITIMER_REAL), alarm
PROC_TIMER_GET = 242        # timer_gettime, timer_getoverrun, getitimer(ITIMER_REAL)
PROC_TIMER_DELETE = 243     # timer_delete
PROC_TTY_STOP = 244         # VFS only: a background job touched its terminal (SIGTTIN/SIGTTOU)

# Linux wait options (wait4 / waitid)
WNOHANG, WUNTRACED, WSTOPPED, WEXITED, WCONTINUED = 1, 2, 2, 4, 8
WNOWAIT = 0x01000000
WNOTHREAD, WALL, WCLONE = 0x20000000, 0x40000000, 0x80000000
# waitid idtype
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3
# siginfo si_code for SIGCHLD
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_TRAPPED, CLD_STOPPED, CLD_CONTINUED = 1, 2, 3, 4, 5, 6
# rt_sigprocmask how
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
# Linux-internal restart codes (never seen by programs; the kernel turns them into a
# restart of the call or EINTR): "restart if the handler has SA_RESTART", "restart
# if no handler runs" (a stop signal: the call goes on after SIGCONT)
ERESTARTSYS = 512
ERESTARTNOHAND = 514

# sigevent's sigev_notify values PM serves (SIGEV_THREAD is glibc's, on SIGEV_THREAD_ID)
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
TIMER_ABSTIME = 1
TIMER_REAL = -1             # the timer id of the process's ITIMER_REAL (setitimer, alarm)

# --- PM messages (200-208; new types take 209-249) -------------------------------


@request(PROC_FORK)
class ProcFork(Payload):
    """Kernel only.  The host made a task: ``parent_pid`` is the XINIM tid of the
    task that forked/cloned.  Reply :class:`ProcForkReply`: ``result`` is the
    child's XINIM pid (its tid for CLONE_THREAD), with its process's ids.  ``flags`` are the clone flags (fork = SIGCHLD, vfork =
    CLONE_VM|CLONE_VFORK|SIGCHLD); the low byte is the exit signal (0 flags at all
    means a plain fork)."""

    parent_pid: i32
    child_host_pid: i32 = 0   # the host task the interceptor saw being created (0: none)
    flags: u64 = 0            # clone flags (CLONE_VM, CLONE_THREAD, ...)


@request(PROC_EXEC)
class ProcExec(Payload):
    """Reply :class:`ProcExecReply`: what the host must exec."""

    caller: i32
    path: path
    argv: data = b""          # NUL-separated
    envp: data = b""          # NUL-separated


@request(PROC_EXIT)
class ProcExit(Payload):
    """exit(2): the calling *thread* ends; the last live thread ends the process."""

    caller: i32
    status: i32               # the wait status word, as Linux encodes it


@request(PROC_WAIT4)
class ProcWait4(Payload):
    """Reply :class:`ProcWaitReply`; parks (no reply yet) until a child is ready."""

    caller: i32
    pid: i32                  # -1 any, >0 that child, 0 own group, <-1 group -pid
    options: i32


@request(PROC_KILL)
class ProcKill(Payload):
    caller: i32
    pid: i32
    sig: i32


@request(PROC_GETPID)
class ProcGetpid(Payload):
    caller: i32


@request(PROC_GETPPID)
class ProcGetppid(Payload):
    caller: i32


@request(PROC_SIGNAL)
class ProcSignal(Payload):
    caller: i32
    sig: i32
    handler: u64


@request(PROC_SIGACTION)
class ProcSigaction(Payload):
    caller: i32
    sig: i32
    set: i32 = 1              # 0: only query the old action
    handler: u64 = 0
    flags: u64 = 0
    restorer: u64 = 0
    mask: u64 = 0


# --- new requests (209-249) --------------------------------------------------------


@request(PROC_EXIT_GROUP)
class ProcExitGroup(Payload):
    """exit_group(2): the whole process ends with ``status`` (a wait status word)."""

    caller: i32
    status: i32


@request(PROC_TASK_EXITED)
class ProcTaskExited(Payload):
    """Kernel only: host task ``host_tid`` died with wait status ``status`` (as the
    tracer's waitpid saw it).  Makes a process killed by a signal a zombie."""

    host_tid: i32
    status: i32


@request(PROC_TASK_STOPPED)
class ProcTaskStopped(Payload):
    """Kernel only: host task ``host_tid`` entered a group stop by ``sig``."""

    host_tid: i32
    sig: i32


@request(PROC_TASK_CONTINUED)
class ProcTaskContinued(Payload):
    """Kernel only: stopped host task ``host_tid`` was resumed by SIGCONT."""

    host_tid: i32


@request(PROC_HOST_TO_XINIM)
class ProcHostToXinim(Payload):
    """Kernel only.  Reply :class:`ProcIdsReply`: ``result`` = the XINIM tid to use
    as ``caller``, ``pid`` = its process."""

    host_tid: i32


@request(PROC_XINIM_TO_HOST)
class ProcXinimToHost(Payload):
    """Kernel only.  ``result`` = the host tid of XINIM task ``pid`` (tid or pid)."""

    caller: i32
    pid: i32


@request(PROC_GETTID)
class ProcGettid(Payload):
    caller: i32


@request(PROC_GETPGRP)
class ProcGetpgrp(Payload):
    caller: i32


@request(PROC_GETPGID)
class ProcGetpgid(Payload):
    caller: i32
    pid: i32                  # 0: the caller


@request(PROC_SETPGID)
class ProcSetpgid(Payload):
    caller: i32
    pid: i32                  # 0: the caller
    pgid: i32                 # 0: = pid


@request(PROC_GETSID)
class ProcGetsid(Payload):
    caller: i32
    pid: i32                  # 0: the caller


@request(PROC_SETSID)
class ProcSetsid(Payload):
    caller: i32


@request(PROC_WAITID)
class ProcWaitid(Payload):
    """Reply :class:`ProcWaitidReply` (``result`` 0; ``pid`` 0 under WNOHANG with
    nothing ready); parks like wait4."""

    caller: i32
    idtype: i32               # P_ALL, P_PID, P_PGID
    id: i32
    options: i32              # WEXITED | WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT


@request(PROC_TKILL)
class ProcTkill(Payload):
    caller: i32
    tid: i32
    sig: i32


@request(PROC_TGKILL)
class ProcTgkill(Payload):
    caller: i32
    tgid: i32
    tid: i32
    sig: i32


@request(PROC_SIGPROCMASK)
class ProcSigprocmask(Payload):
    """rt_sigprocmask bookkeeping (the host thread keeps the real mask).
    Reply :class:`ProcMaskReply` with the old mask."""

    caller: i32
    how: i32                  # SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK
    set: i32 = 1              # 0: only query
    mask: u64 = 0             # bit (sig - 1) per signal


@request(PROC_SIGPENDING)
class ProcSigpending(Payload):
    """Reply :class:`ProcMaskReply`: pending signals the caller blocks."""

    caller: i32


@request(PROC_SIGSUSPEND)
class ProcSigsuspend(Payload):
    """Parks with ``mask`` as the caller's mask until a signal is delivered to it;
    then answers EINTR and restores the old mask."""

    caller: i32
    mask: u64


@request(PROC_SETUID)
class ProcSetuid(Payload):
    caller: i32
    uid: i32


@request(PROC_SETGID)
class ProcSetgid(Payload):
    caller: i32
    gid: i32


@request(PROC_SETREUID)
class ProcSetreuid(Payload):
    caller: i32
    ruid: i32 = -1            # -1: unchanged
    euid: i32 = -1


@request(PROC_SETREGID)
class ProcSetregid(Payload):
    caller: i32
    rgid: i32 = -1
    egid: i32 = -1


@request(PROC_SETRESUID)
class ProcSetresuid(Payload):
    caller: i32
    ruid: i32 = -1
    euid: i32 = -1
    suid: i32 = -1


@request(PROC_SETRESGID)
class ProcSetresgid(Payload):
    caller: i32
    rgid: i32 = -1
    egid: i32 = -1
    sgid: i32 = -1


@request(PROC_GETRESUID)
class ProcGetresuid(Payload):
    """Reply :class:`ProcResidReply` (also serves getuid/geteuid)."""

    caller: i32


@request(PROC_GETRESGID)
class ProcGetresgid(Payload):
    caller: i32


@request(PROC_GETGROUPS)
class ProcGetgroups(Payload):
    """Reply :class:`ProcDataReply`: ``result`` = how many, ``data`` = u32 gids
    (empty when ``size`` is 0; EINVAL when ``size`` is too small)."""

    caller: i32
    size: i32


@request(PROC_SETGROUPS)
class ProcSetgroups(Payload):
    caller: i32
    data: data                # u32 gids, little-endian (at most 1024)


@request(PROC_LIST)
class ProcList(Payload):
    """Reply :class:`ProcListReply`: records of processes with pid >= ``start``,
    in pid order; ``next`` says where to continue (0: that was all)."""

    caller: i32
    start: i32 = 0


@request(PROC_INFO)
class ProcInfo(Payload):
    """Reply :class:`ProcInfoReply` for process ``pid`` (0: the caller)."""

    caller: i32
    pid: i32


@request(PROC_TIMER_CREATE)
class ProcTimerCreate(Payload):
    """A POSIX timer of the caller's process on ``clock``; ``result`` is its id.
    Expiry sends ``signo`` to the process (SIGEV_SIGNAL), to thread ``tid``
    (SIGEV_THREAD_ID), or nothing (SIGEV_NONE), with ``value`` as si_value."""

    caller: i32
    clock: i32
    notify: i32 = SIGEV_SIGNAL
    signo: i32 = 14           # SIGALRM (a NULL sigevent)
    tid: i32 = 0
    value: u64 = 0
    value_is_id: i32 = 0      # 1: si_value is the new timer's id (a NULL sigevent)


@request(PROC_TIMER_SET)
class ProcTimerSet(Payload):
    """Arm (``value_ns`` > 0) or disarm (0) timer ``timer`` (TIMER_REAL: the
    process's ITIMER_REAL); reply :class:`ProcTimerReply` with the old setting."""

    caller: i32
    timer: i32
    flags: i32 = 0            # TIMER_ABSTIME: ``value_ns`` is a time on the timer's clock
    value_ns: i64 = 0
    interval_ns: i64 = 0


@request(PROC_TIMER_GET)
class ProcTimerGet(Payload):
    """Reply :class:`ProcTimerReply`: time left, interval, last overrun."""

    caller: i32
    timer: i32


@request(PROC_TIMER_DELETE)
class ProcTimerDelete(Payload):
    caller: i32
    timer: i32


@request(PROC_TTY_STOP)
class ProcTtyStop(Payload):
    """VFS only (Linux ``tty_check_change``): process ``pid``, in the background
    of its controlling terminal, read it (``sig`` SIGTTIN) or changed or wrote it
    (SIGTTOU).  ``result`` 0: its process group was sent ``sig`` (the call restarts
    once it is continued); 1: it ignores or blocks ``sig`` (a write goes on, a read
    fails EIO); error EIO: its group is orphaned."""

    pid: i32           # (not ``caller``: the VFS speaks for it here)
    sig: i32


# --- replies -------------------------------------------------------------------------


@reply(PROC_REPLY)
class ProcReply(ReplyBase):
    """Generic PM reply: ``result`` is a pid, 0, ..."""


@reply(PROC_REPLY, PROC_WAIT4)
class ProcWaitReply(ReplyBase):
    status: i32 = 0           # the wait status word; ``result`` is the pid
    host_pid: i32 = 0         # the reaped child's host pid: only in replies to the kernel


@reply(PROC_REPLY, PROC_WAITID)
class ProcWaitidReply(ReplyBase):
    """waitid's siginfo: si_signo = ``signo`` (SIGCHLD), si_code = ``code``
    (CLD_*), si_pid = ``pid``, si_uid = ``uid``, si_status = ``status``."""

    pid: i32 = 0
    uid: i32 = 0
    signo: i32 = 0
    code: i32 = 0
    status: i32 = 0
    host_pid: i32 = 0         # only in replies to the kernel


@reply(PROC_REPLY, PROC_SIGACTION, PROC_SIGNAL)
class ProcSigactionReply(ReplyBase):
    handler: u64 = 0          # the previous action
    flags: u64 = 0
    restorer: u64 = 0
    mask: u64 = 0


@reply(PROC_REPLY, PROC_FORK)
class ProcForkReply(ReplyBase):
    """The new task's XINIM id (``result``) and its process's real and effective
    ids as PM holds them: the kernel's copy of a process's ids always starts from
    these (never from whatever an earlier process of that pid left)."""

    uid: i32 = 0
    euid: i32 = 0
    gid: i32 = 0
    egid: i32 = 0


@reply(PROC_REPLY, PROC_EXEC)
class ProcExecReply(ReplyBase):
    """What the kernel must make the host exec: ``path`` is the XINIM path of the
    file actually executed (the interpreter for a ``#!`` script), ``host_path``
    its host file (empty for a ramfs file: ``dev``/``ino`` name it), ``argv``
    the final argument vector (NUL-separated; the interpreter's for scripts).
    ``uid``..``egid``: the process's ids after the exec (set-id bits applied)."""

    dev: u64 = 0
    ino: u64 = 0
    uid: i32 = 0
    euid: i32 = 0
    gid: i32 = 0
    egid: i32 = 0
    path: path = b""
    host_path: data = b""
    argv: data = b""


@reply(PROC_REPLY, PROC_HOST_TO_XINIM)
class ProcIdsReply(ReplyBase):
    pid: i32 = 0              # the process (thread group); ``result`` is the tid


@reply(PROC_REPLY, PROC_SIGPROCMASK, PROC_SIGPENDING)
class ProcMaskReply(ReplyBase):
    mask: u64 = 0


@reply(PROC_REPLY, PROC_GETRESUID, PROC_GETRESGID)
class ProcResidReply(ReplyBase):
    real: i32 = 0
    effective: i32 = 0
    saved: i32 = 0


@reply(PROC_REPLY, PROC_GETGROUPS)
class ProcDataReply(ReplyBase):
    data: data = b""


@reply(PROC_REPLY, PROC_LIST)
class ProcListReply(ReplyBase):
    """``result`` = records in ``data`` (see :data:`PROC_LIST_RECORD`)."""

    next: i32 = 0
    data: data = b""


@request(PROC_SIGFD_TAKE)
class ProcSigfdTake(Payload):
    """VFS to PM, for a signalfd read by ``pid``: take up to ``max`` pending signals
    in ``mask`` (lowest first, the thread's before the process's), as Linux's
    dequeue_signal; answered with :class:`ProcSigfdReply`.  From then on PM tells
    the VFS of every change of the caller's pending set (``VfsSigPending``).  With
    ``max`` 0 (a signalfd made, or given a new mask) nothing is taken and PM holds
    the signals in ``mask`` back from the host thread while blocked."""

    pid: i32           # the reader (not ``caller``: the VFS speaks for it here)
    mask: u64
    max: i32


# one taken signal in ProcSigfdReply.data: signo, si_code, sender's XINIM pid, its uid
SIGFD_RECORD = struct.Struct("<IiiI")


@reply(PROC_REPLY, PROC_SIGFD_TAKE)
class ProcSigfdReply(ReplyBase):
    """``result`` signals taken, as :data:`SIGFD_RECORD`s in ``data``; ``pending``:
    what is still pending for the caller afterwards."""

    pending: u64 = 0
    data: data = b""


@reply(PROC_REPLY, PROC_TIMER_SET, PROC_TIMER_GET)
class ProcTimerReply(ReplyBase):
    value_ns: i64 = 0         # time left until the next expiry (0: disarmed)
    interval_ns: i64 = 0
    overrun: i32 = 0          # expiries missed before the last signal (timer_getoverrun)


@reply(PROC_REPLY, PROC_INFO)
class ProcInfoReply(ReplyBase):
    """One process for /proc: ids, state letter (R S T Z), signal sets (bit sig-1),
    start time (ns since the epoch), ``comm`` (15 bytes max) and ``data`` = its
    argv, NUL-separated with a final NUL (like /proc/PID/cmdline)."""

    pid: i32 = 0
    ppid: i32 = 0
    pgid: i32 = 0
    sid: i32 = 0
    state: i32 = 0
    ruid: i32 = 0
    euid: i32 = 0
    suid: i32 = 0
    rgid: i32 = 0
    egid: i32 = 0
    sgid: i32 = 0
    threads: i32 = 0
    sigpnd: u64 = 0           # the main thread's own pending set
    shdpnd: u64 = 0           # the process's shared pending set
    blocked: u64 = 0          # the main thread's mask
    ignored: u64 = 0
    caught: u64 = 0
    start_ns: i64 = 0
    comm: path = b""
    data: data = b""


# --- the listing's record -------------------------------------------------------------
# pid, ppid, pgid, sid, uid, host pid (0 unless asked by the kernel), threads,
# state letter, command (comm, NUL-padded)
PROC_LIST_RECORD = struct.Struct("<iiiiIiHc16s")


@dataclass(frozen=True, slots=True)
class ProcListEntry:
    """One process in PM's list (xinim-ps, /proc): its ids and host pid."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    uid: int
    host_pid: int
    threads: int
    state: str
    command: str


def decode_proc_list(blob: bytes) -> list[ProcListEntry]:
    """The records of a :class:`ProcListReply` (for xinim-ps)."""
    size = PROC_LIST_RECORD.size
    out = []
    for off in range(0, len(blob) - len(blob) % size, size):
        pid, ppid, pgid, sid, uid, host, threads, state, comm = \
            PROC_LIST_RECORD.unpack_from(blob, off)
        out.append(ProcListEntry(pid, ppid, pgid, sid, uid, host, threads, state.decode(errors="replace"),
                                 comm.rstrip(b"\0").decode(errors="replace")))
    return out
