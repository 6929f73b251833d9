"""VFS messages: the plan's 100-121 and reply 150; new file calls take 122-139, PM->VFS notifications 140-149."""
from __future__ import annotations

from .wire import *  # noqa: F403 -- numbers, field kinds (i32, path, data...)
from .wire import Payload, ReplyBase, reply, request

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


@request(VFS_READ)
class VfsRead(Payload):
    caller: i32
    fd: i32
    count: u32
    offset: i64 = -1   # -1: at (and advancing) the file position; else pread


@request(VFS_WRITE)
class VfsWrite(Payload):
    caller: i32
    fd: i32
    offset: i64 = -1   # -1: at (and advancing) the file position; else pwrite
    data: data


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


@reply(VFS_REPLY)
class VfsReply(ReplyBase):
    """Generic VFS reply: ``result`` is the call's return value (an fd, 0, ...)."""


@reply(VFS_REPLY, VFS_READ, VFS_GETCWD)
class VfsDataReply(ReplyBase):
    """A reply carrying bytes: read data, or the cwd (NUL-terminated)."""

    data: data = b""


@reply(VFS_REPLY, VFS_IOCTL)
class VfsIoctlReply(ReplyBase):
    data: data = b""   # the argument struct the ioctl fills in


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


