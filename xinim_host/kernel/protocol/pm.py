"""Process Manager messages: the plan's 200-208 and reply 250; new types take 209-249."""
from __future__ import annotations

from .wire import *  # noqa: F403 -- numbers, field kinds (i32, path, data...)
from .wire import Payload, ReplyBase, reply, request

# --- PM messages (200-208; new types take 209-249) -------------------------------


@request(PROC_FORK)
class ProcFork(Payload):
    parent_pid: i32
    child_host_pid: i32 = 0   # the host task the interceptor saw being created
    flags: u64 = 0            # clone flags (CLONE_VM, CLONE_THREAD, ...)


@request(PROC_EXEC)
class ProcExec(Payload):
    caller: i32
    path: path
    argv: data = b""          # NUL-separated
    envp: data = b""          # NUL-separated


@request(PROC_EXIT)
class ProcExit(Payload):
    caller: i32
    status: i32               # the wait status word, as Linux encodes it


@request(PROC_WAIT4)
class ProcWait4(Payload):
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


@reply(PROC_REPLY)
class ProcReply(ReplyBase):
    """Generic PM reply: ``result`` is a pid, 0, ..."""


@reply(PROC_REPLY, PROC_WAIT4)
class ProcWaitReply(ReplyBase):
    status: i32 = 0           # the wait status word; ``result`` is the pid


@reply(PROC_REPLY, PROC_SIGACTION, PROC_SIGNAL)
class ProcSigactionReply(ReplyBase):
    handler: u64 = 0          # the previous action
    flags: u64 = 0
    restorer: u64 = 0
    mask: u64 = 0


