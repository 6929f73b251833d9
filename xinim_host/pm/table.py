"""PM's call vector (MINIX ``pm/table.c``): message type -> handler.

Types not listed answer ENOSYS through the server base.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..lib import protocol as p
from ..lib.server import Handler
from . import exec as exec_
from . import forkexit, getset, info, sigcalls, timers, wait


def do_wait4(pm: Any, req: Any) -> Any:
    b = req.body
    task = pm.table.live_task(req.caller)
    return wait.start(pm, wait.wait4_waiter(req, task, b.pid, b.options))


def do_waitid(pm: Any, req: Any) -> Any:
    b = req.body
    task = pm.table.live_task(req.caller)
    return wait.start(pm, wait.waitid_waiter(req, task, b.idtype, b.id, b.options))


CALL_VECTOR: Mapping[int, Handler] = {
    # process life
    p.PROC_FORK: forkexit.do_fork,
    p.PROC_EXEC: exec_.do_exec,
    p.PROC_EXIT: forkexit.do_exit,
    p.PROC_EXIT_GROUP: forkexit.do_exit_group,
    p.PROC_WAIT4: do_wait4,
    p.PROC_WAITID: do_waitid,
    # the kernel's reports of host tasks
    p.PROC_TASK_EXITED: forkexit.do_task_exited,
    p.PROC_TASK_STOPPED: forkexit.do_task_stopped,
    p.PROC_TASK_CONTINUED: forkexit.do_task_continued,
    p.PROC_HOST_TO_XINIM: info.do_host_to_xinim,
    p.PROC_XINIM_TO_HOST: info.do_xinim_to_host,
    # ids
    p.PROC_GETPID: getset.do_getpid,
    p.PROC_GETPPID: getset.do_getppid,
    p.PROC_GETTID: getset.do_gettid,
    p.PROC_GETPGRP: getset.do_getpgrp,
    p.PROC_GETPGID: getset.do_getpgid,
    p.PROC_SETPGID: getset.do_setpgid,
    p.PROC_GETSID: getset.do_getsid,
    p.PROC_SETSID: getset.do_setsid,
    p.PROC_SETUID: getset.do_setuid,
    p.PROC_SETGID: getset.do_setgid,
    p.PROC_SETREUID: getset.do_setreuid,
    p.PROC_SETREGID: getset.do_setregid,
    p.PROC_SETRESUID: getset.do_setresuid,
    p.PROC_SETRESGID: getset.do_setresgid,
    p.PROC_GETRESUID: getset.do_getresuid,
    p.PROC_GETRESGID: getset.do_getresgid,
    p.PROC_GETGROUPS: getset.do_getgroups,
    p.PROC_SETGROUPS: getset.do_setgroups,
    # signals
    p.PROC_KILL: sigcalls.do_kill,
    p.PROC_TKILL: sigcalls.do_tkill,
    p.PROC_TGKILL: sigcalls.do_tgkill,
    p.PROC_SIGNAL: sigcalls.do_signal,
    p.PROC_SIGACTION: sigcalls.do_sigaction,
    p.PROC_SIGPROCMASK: sigcalls.do_sigprocmask,
    p.PROC_SIGFD_TAKE: sigcalls.do_sigfd_take,
    p.PROC_SIGPENDING: sigcalls.do_sigpending,
    p.PROC_SIGSUSPEND: sigcalls.do_sigsuspend,
    p.PROC_TTY_STOP: sigcalls.do_tty_stop,
    # timers
    p.PROC_TIMER_CREATE: timers.do_timer_create,
    p.PROC_TIMER_SET: timers.do_timer_set,
    p.PROC_TIMER_GET: timers.do_timer_get,
    p.PROC_TIMER_DELETE: timers.do_timer_delete,
    # information
    p.PROC_LIST: info.do_list,
    p.PROC_INFO: info.do_info,
}
