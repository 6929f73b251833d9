"""VFS messages: the plan's 100-121 and reply 150; new file calls take 122-139, PM->VFS notifications 140-149."""
from __future__ import annotations

from .wire import *  # noqa: F403 -- numbers, field kinds (i32, path, data...)
from .wire import Payload, ReplyBase, reply, request

# --- the plan's VFS numbers (100-121; the reply is wire.VFS_REPLY, 150) -------------
VFS_OPEN, VFS_CLOSE, VFS_READ, VFS_WRITE, VFS_LSEEK = 100, 101, 102, 103, 104
VFS_STAT, VFS_FSTAT, VFS_ACCESS, VFS_DUP, VFS_DUP2 = 105, 106, 107, 108, 109
VFS_PIPE, VFS_IOCTL, VFS_FCNTL, VFS_MKDIR, VFS_RMDIR = 110, 111, 112, 113, 114
VFS_CHDIR, VFS_GETCWD, VFS_LINK, VFS_UNLINK, VFS_RENAME = 115, 116, 117, 118, 119
VFS_CHMOD, VFS_CHOWN = 120, 121

# --- new VFS numbers (ours: docs/protocol.md: the ABI lets a server take free numbers in its range)
# File calls beyond the plan: 122-139.
VFS_GETDENTS = 122     # getdents64
VFS_READLINK = 123     # readlinkat
VFS_SYMLINK = 124      # symlinkat
VFS_TRUNCATE = 125     # truncate
VFS_FTRUNCATE = 126    # ftruncate
VFS_UTIMENS = 127      # utimensat / futimens
VFS_FSYNC = 128        # fsync / fdatasync
VFS_FCHDIR = 129
VFS_FCHMOD = 130
VFS_FCHOWN = 131
VFS_UMASK = 132
VFS_STATFS = 133
VFS_FSTATFS = 134
VFS_POLL = 135         # poll (select is converted to poll by the kernel)
VFS_EXEC_OPEN = 136    # resolve + check a path for execve
VFS_MKNOD = 137        # mknodat
VFS_FLOCK = 138        # flock (vfs_fuse/locks.py; LOCK_EX/LOCK_SH may wait)
VFS_FDINFO = 139       # what an fd is (host path for mmap of host files, size, flags)
# Notifications from PM (or the kernel) about processes: 140-149.
VFS_FORK = 140
VFS_EXIT = 141
VFS_EXEC = 142
VFS_SETIDS = 143
VFS_SETGROUPS = 144
VFS_CANCEL = 145       # answer the pid's blocked calls (pipe/poll/console) with ``err`` (EINTR)
VFS_NODE_STDIO = 146   # kernel only: pid's fds 0-2 become the terminal a joined node passed in
# The bulk data path (lib/grants.py): the data moves through a grant for the
# caller's buffer, not in the message.  190-199, above the reply type.
VFS_READ_GRANT = 190      # read/pread/readv/preadv
VFS_WRITE_GRANT = 191     # write/pwrite/writev/pwritev
VFS_GETDENTS_GRANT = 192  # getdents64
# Event fds and waiting on many (issue 14): 170-184.
VFS_EVENTFD = 170      # eventfd2
VFS_EPOLL_CREATE = 171
VFS_EPOLL_CTL = 172
VFS_EPOLL_WAIT = 173   # epoll_wait / epoll_pwait / epoll_pwait2
VFS_TIMERFD_CREATE = 174
VFS_TIMERFD_SETTIME = 175
VFS_TIMERFD_GETTIME = 176
VFS_SIGNALFD = 177     # signalfd4: a new signalfd, or a new mask for one
VFS_SIG_PENDING = 178  # PM only: a process's pending signals changed (signalfd readiness)
VFS_INOTIFY_INIT = 179
VFS_INOTIFY_ADD = 180
VFS_INOTIFY_RM = 181
VFS_POLL_GRANT = 182   # poll of more pollfds than a message holds: the array through a grant
VFS_EPOLL_WAIT_GRANT = 183   # epoll_wait whose events go straight to the caller's buffer
# The rest of the file ABI (issue 15): 185-189, and 147-148 among the notices.
VFS_CLOSE_RANGE = 185   # close_range: one message for the whole range
VFS_FALLOCATE = 186
VFS_COPY = 187          # copy_file_range, sendfile, splice, tee: the data stays in the VFS
VFS_MEMFD = 188         # memfd_create
VFS_CHROOT = 189
VFS_SET_LIMIT = 147     # kernel only: a process's RLIMIT_NOFILE or RLIMIT_FSIZE changed
VFS_OPENAT2 = 148       # openat2: an open with RESOLVE_* rules

# VfsDup.min_fd at or above this: a reference for the kernel (a shared map's
# write-back file), kept outside the process's fd table (not counted against
# RLIMIT_NOFILE, not listed, dropped at exec)
HIDDEN_FD_BASE = 1 << 30

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2

# --- VFS messages (100-121; new types take 122-149) ---------------------------
# ``caller`` is the XINIM pid the kernel asks on behalf of; servers only believe it
# from the kernel's or PM's channel (see ``effective_caller``).


@request(VFS_OPEN)
class VfsOpen(Payload):
    caller: i32
    dirfd: i32
    flags: i32
    mode: u32
    path: path


@request(VFS_CLOSE)
class VfsClose(Payload):
    caller: i32
    fd: i32


# VfsRead.offset for the kernel's second and later messages of one read(): at the
# file position like -1, but only what is there now -- a read that has data never
# waits for more (a pipe holding exactly DATA_MAX bytes).  Files that cannot block
# read as with -1.
READ_MORE = -2


@request(VFS_READ)
class VfsRead(Payload):
    caller: i32
    fd: i32
    count: u32
    offset: i64 = -1   # -1: at (and advancing) the file position; else pread; or READ_MORE


@request(VFS_WRITE)
class VfsWrite(Payload):
    caller: i32
    fd: i32
    offset: i64 = -1   # -1: at (and advancing) the file position; else pwrite
    data: data


@request(VFS_READ_GRANT)
class VfsReadGrant(Payload):
    """VfsRead into the caller's memory through grant ``grant`` (GRANT_WRITE, its
    size is the count): the VFS copies the data itself.  Reply: VfsDataReply,
    ``result`` = bytes copied with ``data`` empty; or, when the read had to wait
    (a pipe), the data in ``data`` as VfsRead's reply, for the kernel to copy."""

    caller: i32
    fd: i32
    grant: u32
    offset: i64 = -1   # as VfsRead's: -1, a pread offset, or READ_MORE


@request(VFS_WRITE_GRANT)
class VfsWriteGrant(Payload):
    """VfsWrite of the caller's buffer named by grant ``grant`` (GRANT_READ); a
    file takes it all in one request, a stream (pipe, tty) at most DATA_MAX (so
    a pipe write of up to PIPE_BUF stays atomic).  Reply: result = bytes written."""

    caller: i32
    fd: i32
    grant: u32
    offset: i64 = -1


@request(VFS_LSEEK)
class VfsLseek(Payload):
    caller: i32
    fd: i32
    offset: i64
    whence: i32


@request(VFS_STAT)
class VfsStat(Payload):
    caller: i32
    dirfd: i32
    flags: i32         # AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH
    path: path


@request(VFS_FSTAT)
class VfsFstat(Payload):
    caller: i32
    fd: i32


@request(VFS_ACCESS)
class VfsAccess(Payload):
    caller: i32
    dirfd: i32
    mode: i32
    flags: i32         # AT_EACCESS, AT_SYMLINK_NOFOLLOW
    path: path


@request(VFS_DUP)
class VfsDup(Payload):
    caller: i32
    fd: i32
    min_fd: i32 = 0    # F_DUPFD: the lowest acceptable new fd
    cloexec: i32 = 0   # F_DUPFD_CLOEXEC


@request(VFS_DUP2)
class VfsDup2(Payload):
    caller: i32
    oldfd: i32
    newfd: i32
    flags: i32 = 0     # dup3's O_CLOEXEC; dup3 also refuses oldfd == newfd


@request(VFS_PIPE)
class VfsPipe(Payload):
    caller: i32
    flags: i32         # pipe2's O_CLOEXEC | O_NONBLOCK


@request(VFS_IOCTL)
class VfsIoctl(Payload):
    caller: i32
    fd: i32
    request: u64
    arg: u64
    data: data = b""   # the argument struct, for requests that read one


@request(VFS_FCNTL)
class VfsFcntl(Payload):
    caller: i32
    fd: i32
    cmd: i32
    arg: i64
    data: data = b""   # struct flock for F_GETLK/F_SETLK(W)/F_OFD_*; reply data: F_GETLK's answer


@request(VFS_MKDIR)
class VfsMkdir(Payload):
    caller: i32
    dirfd: i32
    mode: u32
    path: path


@request(VFS_RMDIR)
class VfsRmdir(Payload):
    caller: i32
    dirfd: i32
    path: path


@request(VFS_CHDIR)
class VfsChdir(Payload):
    caller: i32
    path: path


@request(VFS_GETCWD)
class VfsGetcwd(Payload):
    caller: i32
    size: u32


@request(VFS_LINK)
class VfsLink(Payload):
    caller: i32
    olddirfd: i32
    newdirfd: i32
    flags: i32         # AT_SYMLINK_FOLLOW, AT_EMPTY_PATH
    oldpath: path
    newpath: path


@request(VFS_UNLINK)
class VfsUnlink(Payload):
    caller: i32
    dirfd: i32
    flags: i32         # AT_REMOVEDIR
    path: path


@request(VFS_RENAME)
class VfsRename(Payload):
    caller: i32
    olddirfd: i32
    newdirfd: i32
    flags: u32         # RENAME_NOREPLACE, RENAME_EXCHANGE
    oldpath: path
    newpath: path


@request(VFS_CHMOD)
class VfsChmod(Payload):
    caller: i32
    dirfd: i32
    mode: u32
    flags: i32
    path: path


@request(VFS_CHOWN)
class VfsChown(Payload):
    caller: i32
    dirfd: i32
    uid: i32           # -1: leave unchanged
    gid: i32
    flags: i32
    path: path


# --- new file calls (122-139) ---------------------------------------------------


@request(VFS_GETDENTS)
class VfsGetdents(Payload):
    """getdents64: reply data = linux_dirent64 records (at most ``count`` and 4096
    bytes), continuing at the fd's position; '.' and '..' included; result = bytes."""

    caller: i32
    fd: i32
    count: u32


@request(VFS_GETDENTS_GRANT)
class VfsGetdentsGrant(Payload):
    """VfsGetdents into the caller's buffer through grant ``grant`` (GRANT_WRITE, as
    many records as fit in its size).  Reply: VfsDataReply, result = bytes copied."""

    caller: i32
    fd: i32
    grant: u32


@request(VFS_READLINK)
class VfsReadlink(Payload):
    """readlinkat: reply data = the target cut to ``size`` (no NUL); result = its length.
    Empty path with AT_EMPTY_PATH semantics: the symlink ``dirfd`` was opened on (O_PATH)."""

    caller: i32
    dirfd: i32
    size: u32
    path: path


@request(VFS_SYMLINK)
class VfsSymlink(Payload):
    caller: i32
    dirfd: i32
    target: data       # up to PATH_MAX - 1 bytes
    path: path         # the new link


@request(VFS_TRUNCATE)
class VfsTruncate(Payload):
    caller: i32
    dirfd: i32
    length: i64
    path: path


@request(VFS_FTRUNCATE)
class VfsFtruncate(Payload):
    caller: i32
    fd: i32
    length: i64


@request(VFS_UTIMENS)
class VfsUtimens(Payload):
    """utimensat.  ``*_nsec`` may be UTIME_NOW / UTIME_OMIT.  futimens and a NULL
    path: empty ``path`` with AT_EMPTY_PATH in ``flags`` (``dirfd`` is the fd)."""

    caller: i32
    dirfd: i32
    flags: i32         # AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH
    atime_sec: i64 = 0
    atime_nsec: i64 = UTIME_NOW
    mtime_sec: i64 = 0
    mtime_nsec: i64 = UTIME_NOW
    path: path = b""


# VfsFsync.datasync: which call (fsync is 0)
FSYNC_DATA = 1         # fdatasync(fd)
FSYNC_FS = 2           # syncfs(fd): the filesystem fd is on
FSYNC_ALL = 3          # sync(), msync(MS_SYNC): everything (fd unused)


@request(VFS_FSYNC)
class VfsFsync(Payload):
    caller: i32
    fd: i32
    datasync: i32 = 0


@request(VFS_FCHDIR)
class VfsFchdir(Payload):
    caller: i32
    fd: i32


@request(VFS_FCHMOD)
class VfsFchmod(Payload):
    caller: i32
    fd: i32
    mode: u32


@request(VFS_FCHOWN)
class VfsFchown(Payload):
    caller: i32
    fd: i32
    uid: i32           # -1: leave unchanged
    gid: i32


@request(VFS_UMASK)
class VfsUmask(Payload):
    """result = the previous mask."""

    caller: i32
    mask: u32


@request(VFS_STATFS)
class VfsStatfs(Payload):
    caller: i32
    dirfd: i32
    path: path


@request(VFS_FSTATFS)
class VfsFstatfs(Payload):
    caller: i32
    fd: i32


@request(VFS_POLL)
class VfsPoll(Payload):
    """poll: ``data`` = struct pollfd array (i32 fd, i16 events, i16 revents; 8 bytes
    each, at most 512); reply data = the same array with revents filled in, result =
    how many have revents != 0.  ``timeout_ms`` < 0 waits forever."""

    caller: i32
    timeout_ms: i32
    data: data


@request(VFS_EXEC_OPEN)
class VfsExecOpen(Payload):
    """Resolve and check a path for execve (X permission, regular file, not open
    for writing).  Reply: :class:`VfsNodeReply`."""

    caller: i32
    dirfd: i32
    flags: i32         # AT_EMPTY_PATH (fexecve / execveat), AT_SYMLINK_NOFOLLOW, EXEC_COMMIT
    path: path


# VfsExecOpen flag, PM only: the exec is past its last check if this is an ELF
# file -- the VFS then does VFS_EXEC's work too (one message, not two).  Not an
# AT_* bit.
EXEC_COMMIT = 0x40000000


@request(VFS_MKNOD)
class VfsMknod(Payload):
    caller: i32
    dirfd: i32
    mode: u32          # file type bits + permissions (umask applied by VFS)
    dev: u64
    path: path


@request(VFS_FLOCK)
class VfsFlock(Payload):
    caller: i32
    fd: i32
    op: i32


@request(VFS_FDINFO)
class VfsFdinfo(Payload):
    """What ``fd`` is: reply :class:`VfsNodeReply` (host_path for host files, so a
    file mapping can map the host file; size; open flags in ``flags``; offset)."""

    caller: i32
    fd: i32


# --- notifications from PM or the kernel (140-149); anyone else gets EPERM -------


@request(VFS_FORK)
class VfsFork(Payload):
    """``child`` gets a copy of ``parent``'s fd table (descriptions shared), cwd,
    umask and credentials."""

    parent: i32
    child: i32


@request(VFS_EXIT)
class VfsExit(Payload):
    pid: i32


@request(VFS_EXEC)
class VfsExec(Payload):
    """``pid`` executed a new image: its FD_CLOEXEC fds are closed."""

    pid: i32


@request(VFS_SETIDS)
class VfsSetids(Payload):
    """New credentials of ``pid``; -1 leaves a field unchanged."""

    pid: i32
    uid: i32 = -1
    euid: i32 = -1
    gid: i32 = -1
    egid: i32 = -1


@request(VFS_SETGROUPS)
class VfsSetgroups(Payload):
    pid: i32
    data: data         # u32 gids, little-endian


@request(VFS_CANCEL)
class VfsCancel(Payload):
    """Answer every blocked call of ``pid`` with ``err`` (a signal interrupts it)."""

    pid: i32
    err: i32 = 4       # EINTR


@request(VFS_NODE_STDIO)
class VfsNodeStdio(Payload):
    """``pid``'s fds 0, 1, 2 become the console of the terminal node ``node`` handed
    over when it joined (``xinim-run`` joining a running ``xinim-boot``)."""

    pid: i32
    node: i32


@request(VFS_EVENTFD)
class VfsEventfd(Payload):
    caller: i32
    initval: u32
    flags: i32         # EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC


@request(VFS_EPOLL_CREATE)
class VfsEpollCreate(Payload):
    caller: i32
    flags: i32         # EPOLL_CLOEXEC


@request(VFS_EPOLL_CTL)
class VfsEpollCtl(Payload):
    caller: i32
    epfd: i32
    op: i32            # EPOLL_CTL_ADD / DEL / MOD
    fd: i32
    events: u32
    data: u64          # epoll_data, handed back as it is


@request(VFS_EPOLL_WAIT)
class VfsEpollWait(Payload):
    """Answered with ``VfsDataReply``: ``result`` packed ``struct epoll_event``s
    (u32 events, u64 data: 12 bytes each, at most DATA_MAX // 12 per message)."""

    caller: i32
    epfd: i32
    maxevents: i32
    timeout_ns: i64    # -1: no timeout; 0: do not wait


@request(VFS_TIMERFD_CREATE)
class VfsTimerfdCreate(Payload):
    caller: i32
    clockid: i32
    flags: i32         # TFD_NONBLOCK | TFD_CLOEXEC


@request(VFS_TIMERFD_SETTIME)
class VfsTimerfdSettime(Payload):
    """Answered with ``VfsTimerReply``: the timer's old setting."""

    caller: i32
    fd: i32
    flags: i32         # TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
    value_ns: i64      # 0: disarm; else the first expiry (absolute on the clock, or from now)
    interval_ns: i64


@request(VFS_TIMERFD_GETTIME)
class VfsTimerfdGettime(Payload):
    caller: i32
    fd: i32


@request(VFS_SIGNALFD)
class VfsSignalfd(Payload):
    caller: i32
    fd: i32            # -1: a new signalfd; else one whose mask changes
    mask: u64          # bit n-1 for signal n (SIGKILL and SIGSTOP never in it)
    flags: i32         # SFD_NONBLOCK | SFD_CLOEXEC


@request(VFS_SIG_PENDING)
class VfsSigPending(Payload):
    """PM to VFS: ``pid``'s pending signals (its own and its process's, bit n-1 for
    signal n) are now ``pending``.  Sent for processes that hold a signalfd (PM was
    told with ``ProcSigWatch``), whenever the set changes; a signalfd's readiness."""

    pid: i32
    pending: u64


@request(VFS_POLL_GRANT)
class VfsPollGrant(Payload):
    """VfsPoll of ``nfds`` pollfds read from and answered into the caller's array
    through grant ``grant`` (GRANT_READ | GRANT_WRITE, ``nfds`` * 8 bytes); the
    reply's ``result`` is the number ready (VfsReply)."""

    caller: i32
    grant: u32
    nfds: u32
    timeout_ms: i32


@request(VFS_EPOLL_WAIT_GRANT)
class VfsEpollWaitGrant(Payload):
    """VfsEpollWait with the events copied by the VFS into the caller's buffer
    through grant ``grant`` (GRANT_WRITE, ``maxevents`` * 12 bytes); the reply's
    ``result`` is their number (VfsReply).  Events that could not be copied stay
    ready (EFAULT when none could)."""

    caller: i32
    epfd: i32
    grant: u32
    maxevents: i32
    timeout_ns: i64


@request(VFS_INOTIFY_INIT)
class VfsInotifyInit(Payload):
    caller: i32
    flags: i32         # IN_NONBLOCK | IN_CLOEXEC


@request(VFS_INOTIFY_ADD)
class VfsInotifyAdd(Payload):
    caller: i32
    fd: i32
    mask: u32
    path: path


@request(VFS_INOTIFY_RM)
class VfsInotifyRm(Payload):
    caller: i32
    fd: i32
    wd: i32


@reply(VFS_REPLY)
class VfsReply(ReplyBase):
    """Generic VFS reply: ``result`` is the call's return value (an fd, 0, ...)."""


@reply(VFS_REPLY, VFS_READ, VFS_GETCWD, VFS_GETDENTS, VFS_READLINK, VFS_POLL,
       VFS_READ_GRANT, VFS_GETDENTS_GRANT, VFS_EPOLL_WAIT)
class VfsDataReply(ReplyBase):
    """A reply carrying bytes: read data, the cwd (NUL-terminated, ``result`` = its
    length with the NUL), linux_dirent64 records, a link target, pollfd array."""

    data: data = b""


@reply(VFS_REPLY, VFS_IOCTL, VFS_FCNTL)
class VfsIoctlReply(ReplyBase):
    data: data = b""   # the argument struct the ioctl fills in


@reply(VFS_REPLY, VFS_TIMERFD_SETTIME, VFS_TIMERFD_GETTIME)
class VfsTimerReply(ReplyBase):
    """A timerfd's setting: time to the next expiry (0: disarmed) and the interval."""

    value_ns: i64 = 0
    interval_ns: i64 = 0


@reply(VFS_REPLY, VFS_PIPE)
class VfsPipeReply(ReplyBase):
    read_fd: i32 = -1
    write_fd: i32 = -1


@reply(VFS_REPLY, VFS_STAT, VFS_FSTAT)
class VfsStatReply(ReplyBase):
    """stat(2)/statx(2) fields; times in nanoseconds since the epoch."""

    dev: u64 = 0
    ino: u64 = 0
    mode: u32 = 0
    nlink: u64 = 0
    uid: u32 = 0
    gid: u32 = 0
    rdev: u64 = 0
    size: i64 = 0
    blksize: i64 = 4096
    blocks: i64 = 0
    atime_ns: i64 = 0
    mtime_ns: i64 = 0
    ctime_ns: i64 = 0
    btime_ns: i64 = 0




@reply(VFS_REPLY, VFS_STATFS, VFS_FSTATFS)
class VfsStatfsReply(ReplyBase):
    """struct statfs fields."""

    type: i64 = 0
    bsize: i64 = 4096
    blocks: u64 = 0
    bfree: u64 = 0
    bavail: u64 = 0
    files: u64 = 0
    ffree: u64 = 0
    fsid: u64 = 0
    namelen: i64 = 255
    frsize: i64 = 4096
    flags: i64 = 0


@reply(VFS_REPLY, VFS_EXEC_OPEN, VFS_FDINFO)
class VfsNodeReply(ReplyBase):
    """A file, as the kernel needs it for execve or a file mapping.

    ``host_path`` is set for files on host mounts (exec / map that host file);
    empty for ramfs files, which ``dev``/``ino`` name (read them through VFS_READ
    with an offset, or through the FUSE export).  Exec: ``script`` = 1 when the
    file starts with ``#!``, with ``interp`` (the interpreter path) and
    ``interp_arg`` (the one optional argument, may be empty) parsed as Linux does
    from the first line (at most 256 bytes).  Fdinfo: ``flags`` = the open flags,
    ``offset`` = the file position."""

    dev: u64 = 0
    ino: u64 = 0
    mode: u32 = 0
    uid: u32 = 0
    gid: u32 = 0
    size: i64 = 0
    flags: i32 = 0
    offset: i64 = 0
    script: i32 = 0
    host_path: data = b""
    interp: data = b""
    interp_arg: data = b""


# --- sockets: the VFS side of NET's sockets (160-167) -------------------------------
# A socket fd is an ordinary VFS fd whose io is a proxy naming NET's socket id; the
# kernel resolves fd -> socket id here, then talks to NET (docs/net.md).
VFS_SOCK_FD = 160      # kernel: install a new fd for NET socket ``sock``
VFS_SOCK_OF = 161      # kernel: which NET socket ``fd`` is (ENOTSOCK if none)
VFS_SOCK_BIND = 162    # kernel: make a socket inode at ``path`` (AF_UNIX bind)
VFS_SOCK_LOOKUP = 163  # kernel: the socket inode at ``path`` (AF_UNIX connect/sendto)
VFS_SOCK_READY = 164   # NET only, one-way (not answered): socket ``sock``'s mask is now ``mask``
VFS_FDS_HOLD = 165     # kernel: take references to fds for SCM_RIGHTS -> tokens
VFS_FDS_INSTALL = 166  # kernel: install held descriptions as fds of ``caller``
VFS_FDS_DROP = 167     # kernel or NET: forget held descriptions (unreceived SCM_RIGHTS)


@request(VFS_SOCK_FD)
class VfsSockFd(Payload):
    caller: i32
    sock: i64
    flags: i32          # O_CLOEXEC | O_NONBLOCK (SOCK_CLOEXEC / SOCK_NONBLOCK)
    family: i32 = 1
    type: i32 = 1


@request(VFS_SOCK_OF)
class VfsSockOf(Payload):
    caller: i32
    fd: i32


@request(VFS_SOCK_BIND)
class VfsSockBind(Payload):
    caller: i32
    path: path


@request(VFS_SOCK_LOOKUP)
class VfsSockLookup(Payload):
    caller: i32
    path: path


@request(VFS_SOCK_READY)
class VfsSockReady(Payload):
    sock: i64
    mask: i32


@request(VFS_FDS_HOLD)
class VfsFdsHold(Payload):
    caller: i32
    data: data          # i32 fds


@request(VFS_FDS_INSTALL)
class VfsFdsInstall(Payload):
    caller: i32
    flags: i32          # O_CLOEXEC (MSG_CMSG_CLOEXEC)
    data: data          # u64 tokens


@request(VFS_FDS_DROP)
class VfsFdsDrop(Payload):
    caller: i32
    data: data          # u64 tokens


@reply(VFS_REPLY, VFS_SOCK_OF)
class VfsSockReply(ReplyBase):
    """``result`` = NET's socket id; ``flags`` = the description's status flags;
    ``family``/``type`` as the socket was made."""

    flags: i32 = 0
    family: i32 = 0
    type: i32 = 0


@reply(VFS_REPLY, VFS_FDS_HOLD, VFS_FDS_INSTALL)
class VfsFdsReply(ReplyBase):
    """Held tokens (u64 each) or installed fds (i32 each)."""

    data: data = b""


# --- the rest of the file ABI (issue 15) ------------------------------------------

@request(VFS_CLOSE_RANGE)
class VfsCloseRange(Payload):
    caller: i32
    first: u32
    last: u32
    flags: i32          # CLOSE_RANGE_CLOEXEC: mark instead of closing


@request(VFS_FALLOCATE)
class VfsFallocate(Payload):
    caller: i32
    fd: i32
    mode: i32           # FALLOC_FL_*
    offset: i64
    length: i64


COPY_RANGE, COPY_SENDFILE, COPY_SPLICE, COPY_TEE = 0, 1, 2, 3


@request(VFS_COPY)
class VfsCopy(Payload):
    """Move up to ``count`` bytes from ``in_fd`` to ``out_fd`` inside the VFS.
    Offsets -1: at (and advancing) the file position.  Reply :class:`VfsCopyReply`."""

    caller: i32
    kind: i32           # COPY_RANGE, COPY_SENDFILE, COPY_SPLICE, COPY_TEE
    in_fd: i32
    out_fd: i32
    in_off: i64 = -1
    out_off: i64 = -1
    count: u64 = 0
    flags: u32 = 0


@reply(VFS_REPLY, VFS_COPY)
class VfsCopyReply(ReplyBase):
    """``result`` bytes moved; the offsets after them (for the caller's loff_t)."""

    in_off: i64 = -1
    out_off: i64 = -1


@request(VFS_MEMFD)
class VfsMemfd(Payload):
    caller: i32
    flags: u32          # MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_NOEXEC_SEAL, MFD_EXEC
    path: path          # the name ("memfd:" is added by the VFS)


@request(VFS_CHROOT)
class VfsChroot(Payload):
    caller: i32
    path: path


@request(VFS_OPENAT2)
class VfsOpenat2(Payload):
    caller: i32
    dirfd: i32
    flags: i32
    mode: u32
    resolve: u32        # RESOLVE_* (vfs_fuse/resolve.py)
    path: path


@request(VFS_SET_LIMIT)
class VfsSetLimit(Payload):
    pid: i32
    resource: i32       # RLIMIT_NOFILE (7) or RLIMIT_FSIZE (1)
    value: u64          # the soft limit


# --- System V semaphores and message queues, POSIX message queues, mount -------------
# (vfs_fuse/sysv.py, mqueue.py, mount_calls.py).  One multiplexed type each, like
# Linux's own ipc(2): ``op`` says which call.
VFS_SYSV = 196
VFS_MQ = 197
VFS_MOUNT = 198
VFS_UMOUNT = 199
VFS_MAP_CACHE = 195     # kernel: the memfd a MAP_SHARED map of a ramfs file maps (mapcache.py)

# VfsSysv.op
SV_SEMGET, SV_SEMOP, SV_SEMCTL = 1, 2, 3
SV_MSGGET, SV_MSGSND, SV_MSGRCV, SV_MSGCTL = 4, 5, 6, 7
SV_STAGE = 8            # append ``data`` to the caller's staging buffer (a message > 4 KiB)
SV_FETCH = 9            # the rest of the caller's last received message, from ``a1``
SV_NSEMS = 10           # how many semaphores set ``ident`` has (semctl SETALL's copy-in)
# VfsMq.op
MQ_OPEN, MQ_UNLINK, MQ_SEND, MQ_RECEIVE, MQ_NOTIFY, MQ_GETSETATTR = 1, 2, 3, 4, 5, 6


@request(VFS_SYSV)
class VfsSysv(Payload):
    """A semaphore or message-queue call (``op``: SV_*).  ``ident``: the key (get)
    or the id; ``a1..a3``: the call's other arguments; ``data``: sembufs, a
    message, a SETALL array, IPC_SET's perm (after SV_STAGE pieces, if any).
    ``timeout_ns`` < 0: no timeout.  Reply :class:`VfsSysvReply`."""

    caller: i32
    op: i32
    ident: i32 = 0
    a1: i64 = 0
    a2: i64 = 0
    a3: i64 = 0
    timeout_ns: i64 = -1
    data: data = b""


@request(VFS_MQ)
class VfsMq(Payload):
    """A POSIX message-queue call (``op``: MQ_*) on ``fd`` or the queue ``path``
    (mq_open's name, without the leading slash).  Reply :class:`VfsSysvReply`."""

    caller: i32
    op: i32
    fd: i32 = -1
    a1: i64 = 0
    a2: i64 = 0
    timeout_ns: i64 = -1
    path: path = b""
    data: data = b""


@request(VFS_MOUNT)
class VfsMount(Payload):
    """mount(2): ``data`` = source NUL fstype NUL options (the target is ``path``)."""

    caller: i32
    flags: u64
    path: path
    data: data = b""


@request(VFS_UMOUNT)
class VfsUmount(Payload):
    caller: i32
    flags: i32
    path: path


@request(VFS_MAP_CACHE)
class VfsMapCache(Payload):
    """Reply :class:`VfsSysvReply`: ``data`` = the host path the tracee maps."""

    caller: i32
    fd: i32


@reply(VFS_REPLY, VFS_SYSV, VFS_MQ, VFS_MAP_CACHE)
class VfsSysvReply(ReplyBase):
    """``result``: the call's value; ``data``: what it copies out (msgrcv: the
    8-byte mtype then the text; mq_receive: the 4-byte priority then the
    message; *_STAT structures, GETALL's array, mq attributes)."""

    data: data = b""
