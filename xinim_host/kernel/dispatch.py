"""The syscall dispatcher's one table: XINIM number -> name, owning server, handler.

Handlers live in ``calls/`` by owner; ``calls/base.py`` says what a handler is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .calls import events, files, host_ids, kernel_served, memory, procs, sync
from .calls.base import SyscallContext, SyscallGen
from ..lib.syscalls import Sys

if TYPE_CHECKING:
    from .kernel import Kernel
# --- the table ----------------------------------------------------------------------

KERNEL, VFS, PM, MM = "kernel", "vfs", "pm", "mm"


@dataclass(frozen=True, slots=True)
class SyscallEntry:
    name: str
    owner: str
    handler: Callable[["Kernel", SyscallContext], SyscallGen]


_TABLE: dict[Sys, tuple[str, Callable[["Kernel", SyscallContext], SyscallGen]]] = {
    Sys.DEBUG_WRITE: (KERNEL, kernel_served.sys_debug_write),
    Sys.MONOTONIC_NS: (KERNEL, kernel_served.sys_monotonic_ns),
    Sys.OPEN: (VFS, files.sys_open),
    Sys.CLOSE: (VFS, files.sys_close),
    Sys.READ: (VFS, files.sys_read),
    Sys.WRITE: (VFS, files.sys_write),
    Sys.LSEEK: (VFS, files.sys_lseek),
    Sys.STAT: (VFS, files.sys_stat),
    Sys.FSTAT: (VFS, files.sys_fstat),
    Sys.ACCESS: (VFS, files.sys_access),
    Sys.DUP: (VFS, files.sys_dup),
    Sys.DUP2: (VFS, files.sys_dup2),
    Sys.PIPE: (VFS, files.sys_pipe),
    Sys.IOCTL: (VFS, files.sys_ioctl),
    Sys.FCNTL: (VFS, files.sys_fcntl),
    Sys.MKDIR: (VFS, files.sys_mkdir),
    Sys.RMDIR: (VFS, files.sys_rmdir),
    Sys.CHDIR: (VFS, files.sys_chdir),
    Sys.GETCWD: (VFS, files.sys_getcwd),
    Sys.LINK: (VFS, files.sys_link),
    Sys.UNLINK: (VFS, files.sys_unlink),
    Sys.RENAME: (VFS, files.sys_rename),
    Sys.CHMOD: (VFS, files.sys_chmod),
    Sys.CHOWN: (VFS, files.sys_chown),
    Sys.EXIT: (PM, procs.sys_exit),
    Sys.FORK: (PM, procs.sys_fork),
    Sys.EXECVE: (PM, procs.sys_execve),
    Sys.WAIT4: (PM, procs.sys_wait4),
    Sys.GETPID: (PM, procs.sys_getpid),
    Sys.GETPPID: (PM, procs.sys_getppid),
    Sys.KILL: (PM, procs.sys_kill),
    Sys.SIGNAL: (PM, procs.sys_signal),
    Sys.SIGACTION: (PM, procs.sys_sigaction),
    Sys.BRK: (MM, memory.sys_brk),
    Sys.MMAP: (MM, memory.sys_mmap),
    Sys.MUNMAP: (MM, memory.sys_munmap),
    Sys.MPROTECT: (MM, memory.sys_mprotect),
    Sys.MREMAP: (MM, memory.sys_mremap),
    Sys.MADVISE: (MM, memory.sys_madvise),
    Sys.MSYNC: (MM, memory.sys_msync),
    Sys.LATTICE_CONNECT: (KERNEL, kernel_served.sys_lattice_connect),
    Sys.LATTICE_SEND: (KERNEL, kernel_served.sys_lattice_send),
    Sys.LATTICE_RECV: (KERNEL, kernel_served.sys_lattice_recv),
    Sys.LATTICE_CLOSE: (KERNEL, kernel_served.sys_lattice_close),
    Sys.TIME: (KERNEL, kernel_served.sys_time),
    Sys.GETTIMEOFDAY: (KERNEL, kernel_served.sys_gettimeofday),
    Sys.CLOCK_GETTIME: (KERNEL, kernel_served.sys_clock_gettime),
    Sys.NANOSLEEP: (KERNEL, kernel_served.sys_nanosleep),
    Sys.GETUID: (KERNEL, kernel_served.cred_getter("uid")),
    Sys.GETEUID: (KERNEL, kernel_served.cred_getter("euid")),
    Sys.GETGID: (KERNEL, kernel_served.cred_getter("gid")),
    Sys.GETEGID: (KERNEL, kernel_served.cred_getter("egid")),
    # hosted extension
    Sys.OPENAT: (VFS, files.sys_openat),
    Sys.CREAT: (VFS, files.sys_creat),
    Sys.PREAD64: (VFS, files.sys_pread64),
    Sys.PWRITE64: (VFS, files.sys_pwrite64),
    Sys.READV: (VFS, files.sys_readv),
    Sys.WRITEV: (VFS, files.sys_writev),
    Sys.PREADV: (VFS, files.sys_preadv),
    Sys.PWRITEV: (VFS, files.sys_pwritev),
    Sys.LSTAT: (VFS, files.sys_lstat),
    Sys.NEWFSTATAT: (VFS, files.sys_newfstatat),
    Sys.STATX: (VFS, files.sys_statx),
    Sys.FACCESSAT: (VFS, files.sys_faccessat),
    Sys.FACCESSAT2: (VFS, files.sys_faccessat2),
    Sys.MKDIRAT: (VFS, files.sys_mkdirat),
    Sys.UNLINKAT: (VFS, files.sys_unlinkat),
    Sys.RENAMEAT: (VFS, files.sys_renameat),
    Sys.RENAMEAT2: (VFS, files.sys_renameat2),
    Sys.LINKAT: (VFS, files.sys_linkat),
    Sys.FCHMODAT: (VFS, files.sys_fchmodat),
    Sys.FCHMODAT2: (VFS, files.sys_fchmodat2),
    Sys.FCHOWNAT: (VFS, files.sys_fchownat),
    Sys.LCHOWN: (VFS, files.sys_lchown),
    Sys.DUP3: (VFS, files.sys_dup3),
    Sys.PIPE2: (VFS, files.sys_pipe2),
    Sys.CLOCK_GETRES: (KERNEL, kernel_served.sys_clock_getres),
    Sys.CLOCK_NANOSLEEP: (KERNEL, kernel_served.sys_clock_nanosleep),
    Sys.UNAME: (KERNEL, kernel_served.sys_uname),
    Sys.GETTID: (PM, procs.sys_gettid),
    Sys.GETPGRP: (PM, procs.sys_getpgrp),
    Sys.GETPGID: (PM, procs.sys_getpgid),
    Sys.SETPGID: (PM, procs.sys_setpgid),
    Sys.GETSID: (PM, procs.sys_getsid),
    Sys.SETSID: (PM, procs.sys_setsid),
    Sys.TKILL: (PM, procs.sys_tkill),
    Sys.TGKILL: (PM, procs.sys_tgkill),
    Sys.RT_SIGPROCMASK: (PM, procs.sys_rt_sigprocmask),
    Sys.SIGPENDING: (PM, procs.sys_sigpending),
    Sys.EXIT_GROUP: (PM, procs.sys_exit_group),
    Sys.WAITID: (PM, procs.sys_waitid),
    Sys.VFORK: (PM, procs.sys_fork),
    Sys.CLONE: (PM, procs.sys_fork),
    Sys.CLONE3: (PM, procs.sys_fork),
    Sys.SETUID: (PM, procs.sys_setuid),
    Sys.SETGID: (PM, procs.sys_setgid),
    Sys.SETREUID: (PM, procs.sys_setreuid),
    Sys.SETREGID: (PM, procs.sys_setregid),
    Sys.SETRESUID: (PM, procs.sys_setresuid),
    Sys.SETRESGID: (PM, procs.sys_setresgid),
    Sys.GETRESUID: (PM, procs.sys_getresuid),
    Sys.GETRESGID: (PM, procs.sys_getresgid),
    Sys.GETGROUPS: (PM, procs.sys_getgroups),
    Sys.SETGROUPS: (PM, procs.sys_setgroups),
    Sys.GETDENTS64: (VFS, files.sys_getdents64),
    Sys.GETDENTS: (VFS, files.sys_getdents),
    Sys.READLINK: (VFS, files.sys_readlink),
    Sys.READLINKAT: (VFS, files.sys_readlinkat),
    Sys.SYMLINK: (VFS, files.sys_symlink),
    Sys.SYMLINKAT: (VFS, files.sys_symlinkat),
    Sys.TRUNCATE: (VFS, files.sys_truncate),
    Sys.FTRUNCATE: (VFS, files.sys_ftruncate),
    Sys.UTIMENSAT: (VFS, files.sys_utimensat),
    Sys.UTIMES: (VFS, files.sys_utimes),
    Sys.FUTIMESAT: (VFS, files.sys_futimesat),
    Sys.UTIME: (VFS, files.sys_utime),
    Sys.FSYNC: (VFS, files.sys_fsync),
    Sys.FDATASYNC: (VFS, files.sys_fdatasync),
    Sys.SYNC: (VFS, sync.sys_sync),
    Sys.SYNCFS: (VFS, sync.sys_syncfs),
    Sys.FCHDIR: (VFS, files.sys_fchdir),
    Sys.FCHMOD: (VFS, files.sys_fchmod),
    Sys.FCHOWN: (VFS, files.sys_fchown),
    Sys.UMASK: (VFS, files.sys_umask),
    Sys.STATFS: (VFS, files.sys_statfs),
    Sys.FSTATFS: (VFS, files.sys_fstatfs),
    Sys.MKNOD: (VFS, files.sys_mknod),
    Sys.MKNODAT: (VFS, files.sys_mknodat),
    Sys.FLOCK: (VFS, files.sys_flock),
    Sys.CLOSE_RANGE: (VFS, files.sys_close_range),
    Sys.POLL: (VFS, files.sys_poll),
    Sys.PPOLL: (VFS, files.sys_ppoll),
    Sys.SELECT: (VFS, files.sys_select),
    Sys.PSELECT6: (VFS, files.sys_pselect6),
    Sys.EVENTFD: (VFS, events.sys_eventfd),
    Sys.EVENTFD2: (VFS, events.sys_eventfd2),
    Sys.EPOLL_CREATE: (VFS, events.sys_epoll_create),
    Sys.EPOLL_CREATE1: (VFS, events.sys_epoll_create1),
    Sys.EPOLL_CTL: (VFS, events.sys_epoll_ctl),
    Sys.EPOLL_WAIT: (VFS, events.sys_epoll_wait),
    Sys.EPOLL_PWAIT: (VFS, events.sys_epoll_pwait),
    Sys.EPOLL_PWAIT2: (VFS, events.sys_epoll_pwait2),
    Sys.TIMERFD_CREATE: (VFS, events.sys_timerfd_create),
    Sys.TIMERFD_SETTIME: (VFS, events.sys_timerfd_settime),
    Sys.TIMERFD_GETTIME: (VFS, events.sys_timerfd_gettime),
    Sys.SIGNALFD: (VFS, events.sys_signalfd),
    Sys.SIGNALFD4: (VFS, events.sys_signalfd4),
    Sys.INOTIFY_INIT: (VFS, events.sys_inotify_init),
    Sys.INOTIFY_INIT1: (VFS, events.sys_inotify_init1),
    Sys.INOTIFY_ADD_WATCH: (VFS, events.sys_inotify_add_watch),
    Sys.INOTIFY_RM_WATCH: (VFS, events.sys_inotify_rm_watch),
    Sys.GETXATTR: (VFS, files.sys_getxattr),
    Sys.LGETXATTR: (VFS, files.sys_lgetxattr),
    Sys.FGETXATTR: (VFS, files.sys_fgetxattr),
    Sys.LISTXATTR: (VFS, files.sys_listxattr),
    Sys.LLISTXATTR: (VFS, files.sys_llistxattr),
    Sys.FLISTXATTR: (VFS, files.sys_flistxattr),
    Sys.SETXATTR: (VFS, files.sys_setxattr),
    Sys.LSETXATTR: (VFS, files.sys_lsetxattr),
    Sys.FSETXATTR: (VFS, files.sys_fsetxattr),
    Sys.FADVISE64: (VFS, files.sys_fadvise64),
    # host-run calls naming a task: the kernel maps XINIM ids to host ids (PM's table)
    Sys.SCHED_GETAFFINITY: (KERNEL, host_ids.sys_sched_getaffinity),
    Sys.SCHED_SETAFFINITY: (KERNEL, host_ids.sys_sched_setaffinity),
    Sys.SCHED_GETPARAM: (KERNEL, host_ids.sys_sched_getparam),
    Sys.SCHED_GETSCHEDULER: (KERNEL, host_ids.sys_sched_getscheduler),
    Sys.GETPRIORITY: (KERNEL, host_ids.sys_getpriority),
    Sys.SETPRIORITY: (KERNEL, host_ids.sys_setpriority),
    Sys.PRLIMIT64: (KERNEL, host_ids.sys_prlimit64),
    Sys.GET_ROBUST_LIST: (KERNEL, host_ids.sys_get_robust_list),
    Sys.CAPGET: (KERNEL, host_ids.sys_capget),
}

SYSCALLS: dict[int, SyscallEntry] = {
    int(nr): SyscallEntry(nr.name.lower(), owner, handler) for nr, (owner, handler) in _TABLE.items()
}


def register(nr: Sys, owner: str, handler: Callable[["Kernel", SyscallContext], SyscallGen]) -> None:
    """Add an extension number's entry (used by the modules that implement them)."""
    if int(nr) in SYSCALLS:
        raise ValueError(f"syscall {nr!r} already in the table")
    SYSCALLS[int(nr)] = SyscallEntry(nr.name.lower(), owner, handler)
