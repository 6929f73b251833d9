"""Linux x86-64 struct layouts the dispatcher copies in and out of user memory."""
from __future__ import annotations

import struct

# struct stat (144 bytes)
STAT = struct.Struct("<QQQIIIIQqqqqqqqqqqqq")
# struct timespec / timeval
TIMESPEC = struct.Struct("<qq")
TIMEVAL = struct.Struct("<qq")
# the kernel's struct sigaction for rt_sigaction: handler, flags, restorer, mask
SIGACTION = struct.Struct("<QQQQ")
INT = struct.Struct("<i")
TWO_INTS = struct.Struct("<ii")
POINTER = struct.Struct("<Q")
# struct rusage: two timevals and 14 longs
RUSAGE_SIZE = 144

AT_FDCWD = -100

# ioctl request -> (bytes read from *arg, bytes written back to *arg); requests
# not listed pass ``arg`` by value.
IOCTL_ARG_SIZES: dict[int, tuple[int, int]] = {
    0x5401: (0, 36),   # TCGETS: struct termios
    0x5402: (36, 0),   # TCSETS
    0x5403: (36, 0),   # TCSETSW
    0x5404: (36, 0),   # TCSETSF
    0x540F: (0, 4),    # TIOCGPGRP
    0x5410: (4, 0),    # TIOCSPGRP
    0x5411: (0, 4),    # TIOCOUTQ
    0x5413: (0, 8),    # TIOCGWINSZ: struct winsize
    0x5414: (8, 0),    # TIOCSWINSZ
    0x541B: (0, 4),    # FIONREAD
    0x5421: (4, 0),    # FIONBIO
    0x5424: (0, 4),    # TIOCGETD: the line discipline
    0x5429: (0, 4),    # TIOCGSID
    0x80045430: (0, 4),  # TIOCGPTN
    0x40045431: (4, 0),  # TIOCSPTLCK
}


def pack_stat(r) -> bytes:
    """A ``VfsStatReply`` as struct stat."""
    return STAT.pack(
        r.dev, r.ino, r.nlink, r.mode, r.uid, r.gid, 0, r.rdev, r.size, r.blksize, r.blocks,
        r.atime_ns // 10**9, r.atime_ns % 10**9, r.mtime_ns // 10**9, r.mtime_ns % 10**9,
        r.ctime_ns // 10**9, r.ctime_ns % 10**9, 0, 0, 0)

# struct statx (256 bytes): mask, blksize, attributes, nlink, uid, gid, mode, pad,
# ino, size, blocks, attributes_mask, 4 timestamps (sec, nsec, pad), rdev and dev
# major/minor, mnt_id; the rest is spare.
STATX = struct.Struct("<IIQIIIHHQQQQ" + "qIi" * 4 + "IIIIQ")
STATX_SIZE = 256
STATX_BASIC_STATS = 0x7FF
STATX_BTIME = 0x800
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200            # faccessat's meaning of the same bit
AT_SYMLINK_FOLLOW = 0x400
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
AT_STATX_SYNC_TYPE = 0x6000
IOVEC = struct.Struct("<QQ")
IOV_MAX = 1024
UTSNAME_FIELD = 65


def _ts(ns: int) -> tuple[int, int, int]:
    return ns // 10**9, ns % 10**9, 0


def pack_statx(r) -> bytes:
    """A ``VfsStatReply`` as struct statx."""
    import os
    body = STATX.pack(
        STATX_BASIC_STATS | STATX_BTIME, r.blksize, 0, r.nlink, r.uid, r.gid, r.mode, 0,
        r.ino, r.size, r.blocks, 0,
        *_ts(r.atime_ns), *_ts(r.btime_ns or r.ctime_ns), *_ts(r.ctime_ns), *_ts(r.mtime_ns),
        os.major(r.rdev), os.minor(r.rdev), os.major(r.dev), os.minor(r.dev), 0)
    return body.ljust(STATX_SIZE, b"\0")

WALL = 0x40000000
# siginfo_t (128 bytes) as waitid fills it for SIGCHLD: signo, errno, code, pad, pid, uid, status
SIGINFO_SIZE = 128
SIGINFO_CHLD = struct.Struct("<iii4xiIi")

# struct statfs (120 bytes)
STATFS = struct.Struct("<qqQQQQQQqqq32x")
# struct linux_dirent64 header: d_ino, d_off, d_reclen, d_type
DIRENT64 = struct.Struct("<QqHB")
# struct linux_dirent (getdents): d_ino, d_off, d_reclen; then name, NUL, pad, d_type last
DIRENT = struct.Struct("<QqH")
POLLFD = struct.Struct("<ihh")
EPOLL_EVENT = struct.Struct("<IQ")     # struct epoll_event: packed on x86-64 (12 bytes)
U64 = struct.Struct("<Q")
UTIMBUF = struct.Struct("<qq")
FD_SETSIZE = 1024
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
CLOSE_RANGE_CLOEXEC = 4


def pack_statfs(r) -> bytes:
    return STATFS.pack(r.type, r.bsize, r.blocks, r.bfree, r.bavail, r.files, r.ffree, r.fsid,
                       r.namelen, r.frsize, r.flags)

# capget/capset: struct __user_cap_header_struct {version, pid}, __user_cap_data_struct
CAP_HEADER = struct.Struct("<Ii")
CAP_DATA = struct.Struct("<III")
