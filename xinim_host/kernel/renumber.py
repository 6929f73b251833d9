"""The one renumbering table: Linux x86-64 syscall -> what XINIM does with it.

Every Linux syscall a program makes is one of

* ``delegate(XINIM number)`` -- trapped, renumbered and run by the dispatcher;
  the host kernel skips it and the dispatcher's result is the return value;
* ``delegate_then_host(XINIM number)`` -- the dispatcher decides first (PM
  checks an exec path, PM records an exit), then the host kernel runs the call,
  with arguments rewritten from the answer where the dispatcher says so;
* ``host(reason)`` -- not trapped at all (the seccomp filter lets it through, so
  it costs nothing): process-local host state with nothing XINIM owns;
* anything not listed -- trapped and answered ENOSYS, with a log line.

Each row also says how well it is served (:class:`Support`): ``full``,
``partial`` (with a note saying what is missing), ``host`` (with the reason the
host kernel runs it) or ``ENOSYS``.  Like gVisor's ``linux64.go``, the table is
data: ``python -m xinim_host.kernel.renumber`` prints it as a compatibility
matrix with counts; ``--markdown`` prints ``docs/syscalls.md`` (a test checks the
committed file is current).
"""
from __future__ import annotations

import argparse
import enum
import sys
from dataclasses import dataclass

from ..lib.syscalls import Sys


def _ptrace_names() -> dict[int, str]:
    """python-ptrace's x86-64 name table (``ptrace/syscall/linux/x86_64.py``, a
    dict literal), read without importing the ``ptrace`` package, whose
    ``__init__`` and ``syscall`` package cost a plain run ~10 ms of start-up."""
    import importlib.util
    spec = importlib.util.find_spec("ptrace")
    if spec is not None and spec.submodule_search_locations:
        import os
        path = os.path.join(list(spec.submodule_search_locations)[0], "syscall", "linux",
                            "x86_64.py")
        one = importlib.util.spec_from_file_location("_xinim_ptrace_x86_64", path)
        if one is not None and one.loader is not None:
            module = importlib.util.module_from_spec(one)
            try:
                one.loader.exec_module(module)
                return dict(module.SYSCALL_NAMES)
            except (OSError, AttributeError):
                pass
    from ptrace.syscall.linux.x86_64 import SYSCALL_NAMES
    return dict(SYSCALL_NAMES)


SYSCALL_NAMES = _ptrace_names()

# python-ptrace's name table stops at clone3 (435); newer calls programs make:
_NEWER_THAN_PTRACE = {439: "faccessat2", 441: "epoll_pwait2", 452: "fchmodat2",
                      283: "timerfd_create"}     # (python-ptrace calls 283 "timerfd")
# x32 entries (512 and up) repeat names with other numbers; x86-64 has only these.
X32_FIRST = 512
LINUX_NAMES: dict[int, str] = {nr: name for nr, name in {**SYSCALL_NAMES, **_NEWER_THAN_PTRACE}.items()
                               if nr < X32_FIRST}
LINUX_NUMBERS: dict[str, int] = {name: nr for nr, name in LINUX_NAMES.items()}


class Action(enum.Enum):
    DELEGATE = "delegate"
    DELEGATE_THEN_HOST = "delegate, then host"
    HOST = "host"
    ENOSYS = "ENOSYS"


class Support(enum.Enum):
    """How well XINIM serves a Linux syscall (the compatibility matrix's column)."""
    FULL = "full"            # XINIM serves it (alone, or deciding before the host runs it)
    PARTIAL = "partial"      # XINIM serves it, with a gap the row's note names
    HOST = "host"            # the host kernel runs it untrapped; the reason says why
    ENOSYS = "ENOSYS"        # not served: the program gets ENOSYS


@dataclass(frozen=True, slots=True)
class Route:
    """What the kernel does with one Linux syscall: its action, XINIM number, reason and
    what it leaves out."""

    linux_name: str
    action: Action
    xinim: Sys | None = None
    reason: str = ""
    partial: str = ""        # what a partially served call leaves out ("" = all of it)

    @property
    def support(self) -> Support:
        if self.action is Action.ENOSYS:
            return Support.ENOSYS
        if self.action is Action.HOST:
            return Support.HOST
        return Support.PARTIAL if self.partial else Support.FULL


_Row = tuple[Action, "Sys | None", str, str]


def delegate(xinim: Sys, *, partial: str = "") -> _Row:
    return Action.DELEGATE, xinim, "", partial


def delegate_then_host(xinim: Sys, reason: str, *, partial: str = "") -> _Row:
    return Action.DELEGATE_THEN_HOST, xinim, reason, partial


def host(reason: str) -> _Row:
    return Action.HOST, None, reason, ""


# partial notes shared by several rows
_POLL = ("every fd on one readiness model (lib/readiness); from a joined node (one "
         "message) poll and select ask about at most 512 fds")
_EPOLL = "at most 341 events per call (one message)"
_SIGNALFD = ("a blocked signal a signalfd was made for stays with PM until a read takes it "
             "or a mask opens, so rt_sigpending and sigtimedwait (the host's) do not see it; "
             "readiness is the creator's pending set")
_LOCKS = ("enforced among XINIM processes by the VFS; host programs locking through the "
          "FUSE export do not see them (README, File locks)")

_SHM = ("permissions check the effective uid/gid, not supplementary groups; no "
        "shm_rss/swap accounting beyond the memfd's blocks")
_SHMAT = ("the segment's pages are a host memfd MM holds for this XINIM system; the tracee "
          "maps it MAP_SHARED|MAP_FIXED through an injected openat(/proc/<MM>/fd/N) + mmap "
          "+ close, so every attaching process shares real pages; " + _SHM)

_ROWS: dict[str, _Row] = {
    # --- files: the VFS server -------------------------------------------------
    "read": delegate(Sys.READ),
    "write": delegate(Sys.WRITE),
    "open": delegate(Sys.OPEN),
    "close": delegate(Sys.CLOSE),
    "stat": delegate(Sys.STAT),
    "fstat": delegate(Sys.FSTAT),
    "lstat": delegate(Sys.LSTAT),
    "poll": delegate(Sys.POLL, partial=_POLL),
    "lseek": delegate(Sys.LSEEK),
    "ioctl": delegate(Sys.IOCTL, partial="the requests each file type knows (terminal, "
                      "pipe and file ones); FIOASYNC as F_SETFL O_ASYNC"),
    "pread64": delegate(Sys.PREAD64),
    "pwrite64": delegate(Sys.PWRITE64),
    "readv": delegate(Sys.READV),
    "writev": delegate(Sys.WRITEV),
    "preadv": delegate(Sys.PREADV),
    "pwritev": delegate(Sys.PWRITEV),
    "access": delegate(Sys.ACCESS),
    "pipe": delegate(Sys.PIPE),
    "pipe2": delegate(Sys.PIPE2),
    "select": delegate(Sys.SELECT, partial=_POLL),
    "pselect6": delegate(Sys.PSELECT6, partial=_POLL),
    "ppoll": delegate(Sys.PPOLL, partial=_POLL),
    # --- event fds and epoll (the VFS; calls/events.py) -------------------------
    "eventfd": delegate(Sys.EVENTFD),
    "eventfd2": delegate(Sys.EVENTFD2),
    "epoll_create": delegate(Sys.EPOLL_CREATE),
    "epoll_create1": delegate(Sys.EPOLL_CREATE1),
    "epoll_ctl": delegate(Sys.EPOLL_CTL, partial="EPOLLEXCLUSIVE accepted, every waiter is "
                          "woken; EPOLLWAKEUP ignored"),
    "epoll_wait": delegate(Sys.EPOLL_WAIT, partial=_EPOLL),
    "epoll_pwait": delegate(Sys.EPOLL_PWAIT, partial=_EPOLL),
    "epoll_pwait2": delegate(Sys.EPOLL_PWAIT2, partial=_EPOLL),
    "timerfd_create": delegate(Sys.TIMERFD_CREATE, partial="the *_ALARM clocks are their "
                               "base clocks"),
    "timerfd_settime": delegate(Sys.TIMERFD_SETTIME, partial="TFD_TIMER_CANCEL_ON_SET accepted "
                                "(XINIM never sets the realtime clock)"),
    "timerfd_gettime": delegate(Sys.TIMERFD_GETTIME),
    "signalfd": delegate(Sys.SIGNALFD, partial=_SIGNALFD),
    "signalfd4": delegate(Sys.SIGNALFD4, partial=_SIGNALFD),
    "inotify_init": delegate(Sys.INOTIFY_INIT),
    "inotify_init1": delegate(Sys.INOTIFY_INIT1),
    "inotify_add_watch": delegate(Sys.INOTIFY_ADD_WATCH, partial="the ramfs's changes (by XINIM "
                                  "programs and through the FUSE export); watches on host "
                                  "mounts are accepted and report nothing"),
    "inotify_rm_watch": delegate(Sys.INOTIFY_RM_WATCH),
    "dup": delegate(Sys.DUP),
    "dup2": delegate(Sys.DUP2),
    "dup3": delegate(Sys.DUP3),
    "fcntl": delegate(Sys.FCNTL, partial="record, OFD locks and leases " + _LOCKS + "; "
                      "O_ASYNC with F_SETOWN(_EX)/F_SETSIG: SIGIO when a file that can wait becomes ready"),
    "flock": delegate(Sys.FLOCK, partial=_LOCKS),
    "fsync": delegate(Sys.FSYNC),
    "fdatasync": delegate(Sys.FDATASYNC),
    "sync": delegate(Sys.SYNC),
    "syncfs": delegate(Sys.SYNCFS),
    "truncate": delegate(Sys.TRUNCATE),
    "ftruncate": delegate(Sys.FTRUNCATE),
    "getdents": delegate(Sys.GETDENTS),
    "getdents64": delegate(Sys.GETDENTS64),
    "getcwd": delegate(Sys.GETCWD),
    "chdir": delegate(Sys.CHDIR),
    "fchdir": delegate(Sys.FCHDIR),
    "rename": delegate(Sys.RENAME),
    "renameat": delegate(Sys.RENAMEAT),
    "renameat2": delegate(Sys.RENAMEAT2, partial="RENAME_WHITEOUT is EINVAL, and so is any "
                          "flag on a host mount"),
    "mkdir": delegate(Sys.MKDIR),
    "mkdirat": delegate(Sys.MKDIRAT),
    "rmdir": delegate(Sys.RMDIR),
    "creat": delegate(Sys.CREAT),
    "link": delegate(Sys.LINK),
    "linkat": delegate(Sys.LINKAT),
    "unlink": delegate(Sys.UNLINK),
    "unlinkat": delegate(Sys.UNLINKAT),
    "symlink": delegate(Sys.SYMLINK),
    "symlinkat": delegate(Sys.SYMLINKAT),
    "readlink": delegate(Sys.READLINK),
    "readlinkat": delegate(Sys.READLINKAT),
    "chmod": delegate(Sys.CHMOD),
    "fchmod": delegate(Sys.FCHMOD),
    "fchmodat": delegate(Sys.FCHMODAT),
    "fchmodat2": delegate(Sys.FCHMODAT2),
    "chown": delegate(Sys.CHOWN),
    "fchown": delegate(Sys.FCHOWN),
    "lchown": delegate(Sys.LCHOWN),
    "fchownat": delegate(Sys.FCHOWNAT),
    "umask": delegate(Sys.UMASK),
    "statfs": delegate(Sys.STATFS),
    "fstatfs": delegate(Sys.FSTATFS),
    "mknod": delegate(Sys.MKNOD),
    "mknodat": delegate(Sys.MKNODAT),
    "openat": delegate(Sys.OPENAT),
    "newfstatat": delegate(Sys.NEWFSTATAT),
    "statx": delegate(Sys.STATX),
    "faccessat": delegate(Sys.FACCESSAT),
    "faccessat2": delegate(Sys.FACCESSAT2),
    "utimensat": delegate(Sys.UTIMENSAT),
    "utime": delegate(Sys.UTIME),
    "utimes": delegate(Sys.UTIMES),
    "futimesat": delegate(Sys.FUTIMESAT),
    "close_range": delegate(Sys.CLOSE_RANGE),
    "fadvise64": delegate(Sys.FADVISE64),
    "getxattr": delegate(Sys.GETXATTR),
    "lgetxattr": delegate(Sys.LGETXATTR),
    "fgetxattr": delegate(Sys.FGETXATTR),
    "listxattr": delegate(Sys.LISTXATTR),
    "llistxattr": delegate(Sys.LLISTXATTR),
    "flistxattr": delegate(Sys.FLISTXATTR),
    "setxattr": delegate(Sys.SETXATTR),
    "lsetxattr": delegate(Sys.LSETXATTR),
    "fsetxattr": delegate(Sys.FSETXATTR),
    "removexattr": delegate(Sys.REMOVEXATTR),
    "lremovexattr": delegate(Sys.LREMOVEXATTR),
    "fremovexattr": delegate(Sys.FREMOVEXATTR),
    "fallocate": delegate(Sys.FALLOCATE, partial="modes as tmpfs: 0, KEEP_SIZE, "
                          "PUNCH_HOLE|KEEP_SIZE; the others EOPNOTSUPP"),
    "copy_file_range": delegate(Sys.COPY_FILE_RANGE),
    "splice": delegate(Sys.SPLICE),
    "tee": delegate(Sys.TEE),
    "vmsplice": delegate(Sys.VMSPLICE, partial="copies (no page gifting)"),
    "preadv2": delegate(Sys.PREADV2),
    "pwritev2": delegate(Sys.PWRITEV2),
    "sync_file_range": delegate(Sys.SYNC_FILE_RANGE),
    "readahead": delegate(Sys.READAHEAD),
    "memfd_create": delegate(Sys.MEMFD_CREATE, partial="no MFD_HUGETLB (no hugetlbfs in "
                             "XINIM); MAP_SHARED maps share pages across processes"),
    "chroot": delegate(Sys.CHROOT),
    "openat2": delegate(Sys.OPENAT2, partial="RESOLVE_* judged by a walk before the open; "
                        "RESOLVE_CACHED opens that would create or truncate: EAGAIN"),
    # --- sockets: the NET server (AF_UNIX in XINIM, AF_INET/AF_INET6 on host sockets) ---
    "socket": delegate(Sys.SOCKET, partial="AF_UNIX, AF_INET, AF_INET6 (TCP, UDP); "
                       "other families EAFNOSUPPORT"),
    "socketpair": delegate(Sys.SOCKETPAIR),
    "bind": delegate(Sys.BIND),
    "listen": delegate(Sys.LISTEN),
    "accept": delegate(Sys.ACCEPT),
    "accept4": delegate(Sys.ACCEPT4),
    "connect": delegate(Sys.CONNECT),
    "getsockname": delegate(Sys.GETSOCKNAME),
    "getpeername": delegate(Sys.GETPEERNAME),
    "sendto": delegate(Sys.SENDTO),
    "recvfrom": delegate(Sys.RECVFROM),
    "sendmsg": delegate(Sys.SENDMSG, partial="SCM_RIGHTS and SCM_CREDENTIALS on AF_UNIX; "
                        "no ancillary data over IP"),
    "recvmsg": delegate(Sys.RECVMSG),
    "sendmmsg": delegate(Sys.SENDMMSG),
    "recvmmsg": delegate(Sys.RECVMMSG),
    "shutdown": delegate(Sys.SHUTDOWN),
    "setsockopt": delegate(Sys.SETSOCKOPT, partial="AF_UNIX: SOL_SOCKET options; IP "
                           "sockets: passed to the host socket"),
    "getsockopt": delegate(Sys.GETSOCKOPT),
    "sendfile": delegate(Sys.SENDFILE, partial="to a socket on a joined node ENOSYS "
                         "(programs fall back to read/write)"),
    # --- processes: the Process Manager ----------------------------------------------
    "getpid": delegate(Sys.GETPID),
    "getppid": delegate(Sys.GETPPID),
    "gettid": delegate(Sys.GETTID),
    "getpgrp": delegate(Sys.GETPGRP),
    "getpgid": delegate(Sys.GETPGID),
    "setpgid": delegate(Sys.SETPGID),
    "getsid": delegate(Sys.GETSID),
    "setsid": delegate(Sys.SETSID),
    "wait4": delegate(Sys.WAIT4, partial="the reaped child's rusage reads as zeros"),
    "waitid": delegate(Sys.WAITID),
    "kill": delegate(Sys.KILL),
    "tkill": delegate(Sys.TKILL),
    "tgkill": delegate(Sys.TGKILL),
    "timer_create": delegate(Sys.TIMER_CREATE, partial="CPU-time clocks answer EINVAL"),
    "timer_settime": delegate(Sys.TIMER_SETTIME),
    "timer_gettime": delegate(Sys.TIMER_GETTIME),
    "timer_getoverrun": delegate(Sys.TIMER_GETOVERRUN,
                                 partial="counts expiries PM missed, not ones the host "
                                 "merged while the signal was pending"),
    "timer_delete": delegate(Sys.TIMER_DELETE),
    "alarm": delegate(Sys.ALARM),
    "setitimer": delegate_then_host(Sys.SETITIMER, "ITIMER_REAL is PM's; ITIMER_VIRTUAL and "
                                    "ITIMER_PROF count the host task's CPU time"),
    "getitimer": delegate_then_host(Sys.GETITIMER, "ITIMER_REAL is PM's; ITIMER_VIRTUAL and "
                                    "ITIMER_PROF count the host task's CPU time"),
    "rt_sigaction": delegate_then_host(Sys.SIGACTION, "PM records the disposition; the host "
                                                    "kernel delivers signals, so it installs it"),
    "rt_sigprocmask": delegate_then_host(Sys.RT_SIGPROCMASK, "PM records the mask; the host "
                                                            "thread blocks for real"),
    "rt_sigpending": delegate_then_host(Sys.SIGPENDING, "pending signals wait in the host thread"),
    "setuid": delegate(Sys.SETUID),
    "setgid": delegate(Sys.SETGID),
    "setreuid": delegate(Sys.SETREUID),
    "setregid": delegate(Sys.SETREGID),
    "setresuid": delegate(Sys.SETRESUID),
    "getresuid": delegate(Sys.GETRESUID),
    "setresgid": delegate(Sys.SETRESGID),
    "getresgid": delegate(Sys.GETRESGID),
    "getgroups": delegate(Sys.GETGROUPS),
    "setgroups": delegate(Sys.SETGROUPS),
    "execve": delegate_then_host(Sys.EXECVE, "PM and VFS check and resolve the path; "
                                             "the host kernel loads the image"),
    "execveat": delegate_then_host(Sys.EXECVE, "as execve, relative to a directory fd"),
    "exit": delegate_then_host(Sys.EXIT, "PM records the exit; the host ends the thread"),
    "exit_group": delegate_then_host(Sys.EXIT_GROUP, "PM records the exit; the host ends "
                                                     "the process"),
    "fork": delegate_then_host(Sys.FORK, "the host copies the process; PM makes the PCB "
                                         "from the fork event"),
    "vfork": delegate_then_host(Sys.VFORK, "as fork, sharing memory until exec"),
    "clone": delegate_then_host(Sys.CLONE, "the host makes the task; PM records process "
                                           "or thread from the event"),
    "clone3": delegate_then_host(Sys.CLONE3, "as clone"),
    # --- memory: the Memory Manager ----------------------------------------------------
    "brk": delegate(Sys.BRK),        # MM decides; the handler injects brk() to move the host's
    "mmap": delegate(Sys.MMAP),
    "munmap": delegate(Sys.MUNMAP),
    "mprotect": delegate(Sys.MPROTECT),
    "remap_file_pages": delegate(Sys.REMAP_FILE_PAGES, partial=(
        "emulated as Linux does (mmap MAP_FIXED of the same object at pgoff); on a MAP_SHARED "
        "map of a host-mount file open for writing (an anonymous host map filled through "
        "the VFS and written back) it is EINVAL")),
    "mremap": delegate(Sys.MREMAP, partial="MREMAP_DONTUNMAP is EINVAL"),
    "madvise": delegate(Sys.MADVISE, partial="MADV_DONTNEED on a private file mapping keeps "
                        "its pages (Linux drops them and re-reads the file)"),
    "msync": delegate(Sys.MSYNC),
    # --- System V shared memory: MM's segments (mm/shm.py, calls/ipc.py) ---------------
    "shmget": delegate(Sys.SHMGET, partial=_SHM),
    "shmat": delegate(Sys.SHMAT, partial=_SHMAT),
    "shmdt": delegate(Sys.SHMDT),
    "shmctl": delegate(Sys.SHMCTL, partial=_SHM),
    # --- System V semaphores and message queues: the VFS (vfs_fuse/sysv.py) ---------------
    "semget": delegate(Sys.SEMGET),
    "semop": delegate(Sys.SEMOP),
    "semtimedop": delegate(Sys.SEMTIMEDOP),
    "semctl": delegate(Sys.SEMCTL),
    "msgget": delegate(Sys.MSGGET),
    "msgsnd": delegate(Sys.MSGSND),
    "msgrcv": delegate(Sys.MSGRCV),
    "msgctl": delegate(Sys.MSGCTL),
    # --- POSIX message queues: the VFS's mqueue filesystem at /dev/mqueue (vfs_fuse/mqueue.py)
    "mq_open": delegate(Sys.MQ_OPEN),
    "mq_unlink": delegate(Sys.MQ_UNLINK),
    "mq_timedsend": delegate(Sys.MQ_TIMEDSEND),
    "mq_timedreceive": delegate(Sys.MQ_TIMEDRECEIVE),
    "mq_notify": delegate(Sys.MQ_NOTIFY, partial="SIGEV_SIGNAL and SIGEV_NONE; the signal "
                          "carries no SI_MESGQ siginfo; SIGEV_THREAD is EINVAL"),
    "mq_getsetattr": delegate(Sys.MQ_GETSETATTR),
    # --- mount inside XINIM: the VFS's mount table (vfs_fuse/mount_calls.py) ---------------
    "mount": delegate(Sys.MOUNT, partial="tmpfs/ramfs (a new tree in the ramfs: its page pool "
                      "and st_dev), proc, devpts, mqueue, directory binds and read-only bind "
                      "remounts; block filesystems and other types ENODEV, MS_MOVE EINVAL; root only"),
    "umount2": delegate(Sys.UMOUNT2),
    # --- served in the kernel ------------------------------------------------------------
    "getuid": delegate(Sys.GETUID),
    "geteuid": delegate(Sys.GETEUID),
    "getgid": delegate(Sys.GETGID),
    "getegid": delegate(Sys.GETEGID),
    "time": delegate(Sys.TIME),
    "gettimeofday": delegate(Sys.GETTIMEOFDAY),
    "clock_gettime": delegate(Sys.CLOCK_GETTIME),
    "clock_getres": delegate(Sys.CLOCK_GETRES),
    "nanosleep": delegate(Sys.NANOSLEEP),
    "clock_nanosleep": delegate(Sys.CLOCK_NANOSLEEP),
    "uname": delegate(Sys.UNAME),
    # --- run by the host kernel, untrapped ------------------------------------------------
    "futex": host("wait queues on the process's own memory; no XINIM state"),
    "rt_sigreturn": host("restores the host signal frame the host kernel built"),
    "arch_prctl": host("per-thread FS/GS base; CPU state, no XINIM state"),
    "set_tid_address": host("the host thread's clear-on-exit futex word"),
    "set_robust_list": host("the host thread's robust futex list"),
    "get_robust_list": delegate_then_host(Sys.GET_ROBUST_LIST, "names a task: XINIM tid -> host tid"),
    "rseq": host("restartable sequences: per-thread CPU state"),
    "sigaltstack": host("the host thread's signal stack; signals are delivered by the host"),
    "restart_syscall": host("resumes a host syscall interrupted by a signal"),
    "sched_yield": host("scheduling is the host's"),
    "sched_getaffinity": delegate_then_host(Sys.SCHED_GETAFFINITY, "scheduling is the host's; "
                                            "names a task: XINIM tid -> host tid"),
    "sched_setaffinity": delegate_then_host(Sys.SCHED_SETAFFINITY, "scheduling is the host's; "
                                            "names a task: XINIM tid -> host tid, XINIM ids checked"),
    "sched_getparam": delegate_then_host(Sys.SCHED_GETPARAM, "scheduling is the host's; "
                                         "names a task: XINIM tid -> host tid"),
    "sched_getscheduler": delegate_then_host(Sys.SCHED_GETSCHEDULER, "scheduling is the host's; "
                                             "names a task: XINIM tid -> host tid"),
    "sched_get_priority_max": host("scheduling is the host's"),
    "sched_get_priority_min": host("scheduling is the host's"),
    "getpriority": delegate_then_host(Sys.GETPRIORITY, "nice values are the host's; names a "
                                      "task, group or user: XINIM ids -> host tasks"),
    "setpriority": delegate_then_host(Sys.SETPRIORITY, "nice values are the host's; names a "
                                      "task, group or user: XINIM ids -> host tasks, XINIM ids checked"),
    "getcpu": host("which host CPU runs the thread"),
    "membarrier": host("a CPU barrier across the process's threads"),
    "getrandom": host("entropy from the host kernel; no XINIM state"),
    "prlimit64": delegate_then_host(Sys.PRLIMIT64, "limits are enforced by the host kernel; "
                                    "names a task: XINIM tid -> host tid, XINIM ids checked; "
                                    "a new RLIMIT_NOFILE is told to the VFS (its fd table)"),
    "getrlimit": host("resource limits are enforced by the host kernel on the host task"),
    "setrlimit": delegate_then_host(Sys.SETRLIMIT, "limits are enforced by the host kernel; "
                                    "a new RLIMIT_NOFILE is told to the VFS (its fd table)"),
    "prctl": host("process-local attributes (name, no_new_privs, ...)"),
    "personality": host("the host execution domain"),
    "mlock": host("pins host pages; no layout change"),
    "munlock": host("pins host pages; no layout change"),
    "mlock2": host("pins host pages (MLOCK_ONFAULT: as they fault in); no layout change"),
    "mlockall": host("pins host pages; no layout change"),
    "munlockall": host("pins host pages; no layout change"),
    "mincore": host("asks the host which pages are resident"),
    "capget": delegate(Sys.CAPGET, partial="XINIM root has the host side's capabilities "
                       "(the servers check them too), other users none; no per-process "
                       "sets (capset is ENOSYS)"),
    "rt_sigsuspend": host("the host thread waits with the temporary mask; the host delivers"),
    "pause": host("the host thread waits for a signal the host delivers"),
    "rt_sigtimedwait": host("the host thread takes a signal pending in the host"),
    "getrusage": host("CPU-time accounting of the host task"),
    "times": host("CPU-time accounting of the host task"),
    "sysinfo": host("host memory and load figures (XINIM's own come with /proc)"),
}


def _build() -> dict[int, Route]:
    table: dict[int, Route] = {}
    for name, (action, xinim, reason, partial) in _ROWS.items():
        nr = LINUX_NUMBERS.get(name)
        if nr is None:
            raise KeyError(f"renumber table names an unknown Linux syscall {name!r}")
        table[nr] = Route(name, action, xinim, reason, partial)
    return table


LINUX_TO_XINIM: dict[int, Route] = _build()
# The trap adapter's hot path: Linux number -> XINIM number (a plain int) of every
# call the kernel serves, derived from the table above (one lookup, no Route).
DISPATCHED: dict[int, int] = {nr: int(r.xinim) for nr, r in LINUX_TO_XINIM.items()
                              if r.action in (Action.DELEGATE, Action.DELEGATE_THEN_HOST)
                              and r.xinim is not None}


def route(linux_nr: int) -> Route:
    """The route of a Linux syscall; unlisted ones answer ENOSYS."""
    found = LINUX_TO_XINIM.get(linux_nr)
    if found is None:
        return Route(LINUX_NAMES.get(linux_nr, f"syscall_{linux_nr}"), Action.ENOSYS)
    return found


def host_run_numbers() -> set[int]:
    """Linux numbers the seccomp filter lets through without a stop."""
    return {nr for nr, r in LINUX_TO_XINIM.items() if r.action is Action.HOST}


# Delegated calls whose query form (this argument 0: no new action, no new set)
# only reads what the host holds -- the kernel's handlers host-run it without
# asking PM (kernel/calls/procs.py) -- so the filter lets it run with no stop.
# Not while tracing (the trace prints every call).  Python asks for all 64
# dispositions at start.
HOST_RUN_QUERIES: dict[str, int] = {"rt_sigaction": 1, "rt_sigprocmask": 1}


def host_run_queries() -> dict[int, int]:
    """Linux number -> the argument that makes it a query the host runs alone."""
    return {LINUX_NUMBERS[name]: arg for name, arg in HOST_RUN_QUERIES.items()}


# XINIM calls no Linux syscall is renumbered to: upstream XINIM's own ABI, which a
# XINIM-built program makes directly (the dispatcher serves them all the same).
XINIM_ONLY: dict[Sys, str] = {
    Sys.DEBUG_WRITE: "upstream's kernel debug console write",
    Sys.MONOTONIC_NS: "upstream's monotonic clock in one register",
    Sys.SIGNAL: "upstream's signal(); Linux programs use rt_sigaction",
    Sys.LATTICE_CONNECT: "lattice IPC: open a channel to a server",
    Sys.LATTICE_SEND: "lattice IPC: send a message",
    Sys.LATTICE_RECV: "lattice IPC: receive a message",
    Sys.LATTICE_CLOSE: "lattice IPC: close a channel",
}


def counts() -> dict[Support, int]:
    """How many Linux syscalls have each support level."""
    found = {level: 0 for level in Support}
    for nr in LINUX_NAMES:
        found[route(nr).support] += 1
    return found


def summary() -> str:
    n = counts()
    return (f"of {len(LINUX_NAMES)} Linux x86-64 syscalls, {n[Support.FULL]} served by XINIM, "
            f"{n[Support.PARTIAL]} partial, {n[Support.HOST]} run by the host, "
            f"{n[Support.ENOSYS]} ENOSYS")


def _xinim(r: Route) -> str:
    return f"{int(r.xinim)} {r.xinim.name.lower()}" if r.xinim is not None else "-"


def _note(r: Route) -> str:
    return "; ".join(part for part in (r.partial, r.reason) if part)


def format_matrix() -> str:
    lines = [summary(), "",
             f"{'linux':>5} {'name':<24} {'support':<8} {'action':<20} {'xinim':<24} note"]
    for nr in sorted(LINUX_NAMES):
        r = route(nr)
        lines.append(f"{nr:>5} {r.linux_name:<24} {r.support.value:<8} {r.action.value:<20} "
                     f"{_xinim(r):<24} {_note(r)}".rstrip())
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown() -> str:
    """``docs/syscalls.md``: the matrix as a page (regenerate it with --markdown)."""
    n = counts()
    out = [
        "# Linux syscall compatibility",
        "",
        "<!-- generated by `python -m xinim_host.kernel.renumber --markdown > docs/syscalls.md`;"
        " do not edit: tests/test_renumber.py checks it is current -->",
        "",
        f"Of {len(LINUX_NAMES)} Linux x86-64 syscalls:",
        "",
        "| support | calls | meaning |",
        "|---|---:|---|",
        f"| full | {n[Support.FULL]} | trapped and served by XINIM (or decided by XINIM, then run "
        "by the host kernel) |",
        f"| partial | {n[Support.PARTIAL]} | served by XINIM with a gap the note names |",
        f"| host | {n[Support.HOST]} | run by the host kernel untrapped: process-local host "
        "state, nothing XINIM owns (the note says why) |",
        f"| ENOSYS | {n[Support.ENOSYS]} | trapped and answered ENOSYS, with a log line |",
        "",
        "Source: the renumbering table, `xinim_host/kernel/renumber.py`.  *action*: "
        "`delegate` = the dispatcher serves the call and the host kernel skips it; "
        "`delegate, then host` = the dispatcher decides first, then the host kernel runs it.",
        "",
        "| Linux | name | support | action | XINIM call | note |",
        "|---:|---|---|---|---|---|",
    ]
    for nr in sorted(LINUX_NAMES):
        r = route(nr)
        xinim = f"`{_xinim(r)}`" if r.xinim is not None else ""
        action = r.action.value if r.action is not Action.ENOSYS else ""
        out.append(f"| {nr} | `{r.linux_name}` | {r.support.value} | {action} | {xinim} | "
                   f"{_md(_note(r))} |")
    out += ["", "## XINIM calls no Linux syscall reaches", "",
            "Upstream XINIM's own ABI; the dispatcher serves them for XINIM-built programs.", "",
            "| XINIM call | what |", "|---:|---|"]
    for nr, what in sorted(XINIM_ONLY.items()):
        out.append(f"| `{int(nr)} {nr.name.lower()}` | {_md(what)} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xinim_host.kernel.renumber",
                                     description="The Linux syscall compatibility matrix.")
    parser.add_argument("--markdown", action="store_true",
                        help="print docs/syscalls.md instead of the text matrix")
    args = parser.parse_args(argv)
    print(format_markdown() if args.markdown else format_matrix(), end="" if args.markdown else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
