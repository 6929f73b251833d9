"""XINIM syscall numbers (upstream ``include/xinim/sys/syscalls.h``; docs/differences.md).

1-49 are the plan's kernel; 50 and up are upstream's extension, which keeps 1-49
unchanged.  This is the one place that names the numbers.
"""
from __future__ import annotations

import enum


def _int_enum(cls: type) -> type[enum.IntEnum]:
    """``class Sys(enum.IntEnum)``, built the way the standard library builds its
    own large enums (``enum._simple_enum``): the same IntEnum, in half the time of
    ``EnumType`` with its checks per member (~1.9 ms of every start for ~250 of them).
    A Python without that helper builds it the ordinary way."""
    simple = getattr(enum, "_simple_enum", None)
    if simple is not None:
        return simple(enum.IntEnum)(cls)
    members = [(k, v) for k, v in vars(cls).items() if not k.startswith("_")]
    return enum.IntEnum(cls.__name__, members, module=cls.__module__,
                        qualname=cls.__qualname__)


@_int_enum
class Sys:
    DEBUG_WRITE = 1
    MONOTONIC_NS = 2
    OPEN = 3
    CLOSE = 4
    READ = 5
    WRITE = 6
    LSEEK = 7
    STAT = 8
    FSTAT = 9
    ACCESS = 10
    DUP = 11
    DUP2 = 12
    PIPE = 13
    IOCTL = 14
    FCNTL = 15
    MKDIR = 16
    RMDIR = 17
    CHDIR = 18
    GETCWD = 19
    LINK = 20
    UNLINK = 21
    RENAME = 22
    CHMOD = 23
    CHOWN = 24
    EXIT = 25
    FORK = 26
    EXECVE = 27
    WAIT4 = 28
    GETPID = 29
    GETPPID = 30
    KILL = 31
    SIGNAL = 32
    SIGACTION = 33
    BRK = 34
    MMAP = 35
    MUNMAP = 36
    MPROTECT = 37
    LATTICE_CONNECT = 38
    LATTICE_SEND = 39
    LATTICE_RECV = 40
    LATTICE_CLOSE = 41
    TIME = 42
    GETTIMEOFDAY = 43
    CLOCK_GETTIME = 44
    NANOSLEEP = 45
    GETUID = 46
    GETEUID = 47
    GETGID = 48
    GETEGID = 49
    # upstream extension
    SETUID = 50
    SETGID = 51
    ALARM = 52
    GETRLIMIT = 53
    SETRLIMIT = 54
    GETRUSAGE = 55
    SETSID = 56
    UMASK = 57
    NICE = 58
    SETREUID = 59
    SETREGID = 60
    RT_SIGPROCMASK = 61
    GETPGID = 62
    GETDENTS = 63
    MREMAP = 64
    SETPGID = 65
    GETPGRP = 66
    GETSID = 67
    UNAME = 68
    SYMLINK = 69
    READLINK = 70
    FCHDIR = 71
    FCHMOD = 72
    FCHOWN = 73
    TRUNCATE = 74
    FTRUNCATE = 75
    READV = 76
    WRITEV = 77
    SELECT = 78
    POLL = 79
    RT_SIGRETURN = 80
    SOCKET = 81
    BIND = 82
    LISTEN = 83
    ACCEPT = 84
    CONNECT = 85
    SENDTO = 86
    RECVFROM = 87
    SHUTDOWN = 88
    SETSOCKOPT = 89
    GETSOCKOPT = 90
    GETSOCKNAME = 91
    GETPEERNAME = 92
    SENDMSG = 93
    RECVMSG = 94
    SOCKETPAIR = 95
    SIGPENDING = 96
    SIGSUSPEND = 97
    GETDENTS64 = 98
    DUP3 = 99
    PROCINFO = 100
    FLOCK = 101
    FSYNC = 102
    FDATASYNC = 103
    PIPE2 = 104
    SCHED_YIELD = 105
    GETTID = 106
    STATFS = 107
    LSTAT = 108
    OPENAT = 109
    MKDIRAT = 110
    UNLINKAT = 111
    SET_TID_ADDRESS = 112
    SETITIMER = 113
    GETITIMER = 114
    GETGROUPS = 126
    SETGROUPS = 127
    SETRESUID = 128
    GETRESUID = 129
    SETRESGID = 130
    GETRESGID = 131
    GETPRIORITY = 132
    SETPRIORITY = 133
    # Hosted extension (xinim-host's own, from 200): Linux calls real programs make
    # for which upstream has no number.  Same semantics as the Linux call.
    CREAT = 200
    PREAD64 = 201
    PWRITE64 = 202
    LCHOWN = 203
    MKNOD = 204
    FSTATFS = 205
    MKNODAT = 206
    FCHOWNAT = 207
    NEWFSTATAT = 208
    RENAMEAT = 209
    LINKAT = 210
    SYMLINKAT = 211
    READLINKAT = 212
    FCHMODAT = 213
    FACCESSAT = 214
    PSELECT6 = 215
    PPOLL = 216
    UTIMENSAT = 217
    PREADV = 218
    PWRITEV = 219
    RENAMEAT2 = 220
    STATX = 221
    FACCESSAT2 = 222
    CLOSE_RANGE = 223
    UTIME = 224
    UTIMES = 225
    FUTIMESAT = 226
    FCHMODAT2 = 227
    FADVISE64 = 228
    VFORK = 230
    CLONE = 231
    CLONE3 = 232
    EXIT_GROUP = 233
    WAITID = 234
    TKILL = 235
    TGKILL = 236
    PAUSE = 237
    RT_SIGTIMEDWAIT = 238
    RT_SIGQUEUEINFO = 239
    CLOCK_NANOSLEEP = 240
    TIMES = 241
    SYSINFO = 242
    MADVISE = 243
    MSYNC = 244
    CLOCK_GETRES = 245
    GETXATTR = 246
    LGETXATTR = 247
    FGETXATTR = 248
    LISTXATTR = 249
    LLISTXATTR = 250
    FLISTXATTR = 251
    SETXATTR = 252
    LSETXATTR = 253
    FSETXATTR = 254
    SYNC = 255
    SYNCFS = 256
    # space and copy calls, memfd, chroot (calls/copies.py; issue 15)
    FALLOCATE = 260
    COPY_FILE_RANGE = 261
    SPLICE = 263
    TEE = 264
    VMSPLICE = 265
    PREADV2 = 266
    PWRITEV2 = 267
    SYNC_FILE_RANGE = 268
    READAHEAD = 269
    MEMFD_CREATE = 270
    CHROOT = 271
    REMOVEXATTR = 272
    LREMOVEXATTR = 273
    FREMOVEXATTR = 274
    OPENAT2 = 275
    # event fds and epoll (calls/events.py; issue 14)
    EVENTFD = 280
    EVENTFD2 = 281
    EPOLL_CREATE = 282
    EPOLL_CREATE1 = 283
    EPOLL_CTL = 284
    EPOLL_WAIT = 285
    EPOLL_PWAIT = 286
    EPOLL_PWAIT2 = 287
    TIMERFD_CREATE = 288
    TIMERFD_SETTIME = 289
    TIMERFD_GETTIME = 290
    SIGNALFD = 291
    SIGNALFD4 = 292
    INOTIFY_INIT = 293
    INOTIFY_INIT1 = 294
    INOTIFY_ADD_WATCH = 295
    INOTIFY_RM_WATCH = 296
    # POSIX timers: PM owns them (calls/timers.py; issue 14)
    TIMER_CREATE = 310
    TIMER_SETTIME = 311
    TIMER_GETTIME = 312
    TIMER_GETOVERRUN = 313
    TIMER_DELETE = 314
    # host-run calls that name a task, group or user: XINIM ids -> host ids (calls/host_ids.py)
    SCHED_GETAFFINITY = 300
    SCHED_SETAFFINITY = 301
    SCHED_GETPARAM = 302
    SCHED_GETSCHEDULER = 303
    PRLIMIT64 = 306
    GET_ROBUST_LIST = 307
    CAPGET = 308
    # sockets beyond upstream's 81-95: the NET server (kernel/calls/net.py)
    ACCEPT4 = 400
    SENDMMSG = 401
    RECVMMSG = 402
    SENDFILE = 403
    # System V IPC, POSIX message queues, mount (calls/ipc.py, calls/sysv.py; issue 15)
    SHMGET = 420
    SHMAT = 421
    SHMDT = 422
    SHMCTL = 423
    SEMGET = 424
    SEMOP = 425
    SEMTIMEDOP = 426
    SEMCTL = 427
    MSGGET = 428
    MSGSND = 429
    MSGRCV = 430
    MSGCTL = 431
    MQ_OPEN = 432
    MQ_UNLINK = 433
    MQ_TIMEDSEND = 434
    MQ_TIMEDRECEIVE = 435
    MQ_NOTIFY = 436
    MQ_GETSETATTR = 437
    MOUNT = 438
    UMOUNT2 = 439
    REMAP_FILE_PAGES = 449       # calls/memory.py: MM decides, the host remaps
