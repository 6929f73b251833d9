"""Per-process file state (MINIX ``fproc``) and open file descriptions.

An :class:`OpenFile` is what ``open`` creates and ``dup``/``fork`` share: the vnode,
the position, the status flags, a reference count.  Its ``io`` is the object that
does the I/O: the filesystem for regular files and directories, a pipe end, or a
character device.  It has (see ``handlers_io``)::

    read(req, of, count, offset)  -> bytes | None (parked) | coroutine -> reply
    write(req, of, data, offset)  -> int   | None (parked) | coroutine -> reply
    poll(of, events) -> revents;  ioctl(of, request, data) -> (result, bytes)
    close(of)                     # the last reference went away
    seekable: bool

``offset`` is -1 for "at the file position" (advancing it), else pread/pwrite.
"""
from __future__ import annotations

import errno
import os
import resource
from dataclasses import dataclass, field
from typing import Any

from ..lib.errors import SysError
from ..lib.protocol import HIDDEN_FD_BASE
from .mounts import Loc

NR_OPEN = 1 << 20                 # /proc/sys/fs/nr_open: no fd table grows beyond it
# RLIMIT_NOFILE: a process's table stops there (EMFILE); XINIM's processes start with
# the soft limit xinim-run itself has, as the host task they run in does
NOFILE = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], NR_OPEN)
_fsize = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
FSIZE = (1 << 64) - 1 if _fsize == resource.RLIM_INFINITY else _fsize
O_PATH = getattr(os, "O_PATH", 0o10000000)
# the status flags F_SETFL may change (Linux SETFL_MASK, minus O_DIRECT/O_NOATIME)
SETFL_MASK = os.O_APPEND | os.O_NONBLOCK | getattr(os, "O_ASYNC", 0o20000)


@dataclass(slots=True, eq=False)
class OpenFile:
    """An open file description."""

    fs: Any                   # the filesystem of ``node`` (or the pipe fs)
    node: Any                 # Inode | HostNode | Pipe
    io: Any                   # who does read/write/ioctl/poll (see module doc)
    flags: int                # access mode + status flags (O_APPEND, O_NONBLOCK, O_PATH...)
    offset: int = 0
    refs: int = 1
    hfd: int = -1             # host fd behind a host file, else -1
    dirlist: tuple[bytes, list[int]] | None = None   # host dirs: the listing (records, ends)
    path: bytes = b""         # the XINIM path it was opened with (diagnostics, fdinfo)
    created: bool = False     # the open that made it created the file (F_CREATED_QUERY)
    epitems: list[Any] | None = None   # the epoll items watching it (dropped at last close)

    @property
    def readable(self) -> bool:
        return self.flags & O_PATH == 0 and self.flags & os.O_ACCMODE in (os.O_RDONLY, os.O_RDWR)

    @property
    def writable(self) -> bool:
        return self.flags & O_PATH == 0 and self.flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)


@dataclass(slots=True, eq=False)
class Fproc:
    """One process as VFS sees it."""

    pid: int
    cwd: Loc
    fds: list[OpenFile | None] = field(default_factory=list)
    cloexec: list[bool] = field(default_factory=list)
    umask: int = 0o022
    uid: int = 0
    euid: int = 0
    gid: int = 0
    egid: int = 0
    groups: frozenset[int] = frozenset()
    nofile: int = NOFILE                 # RLIMIT_NOFILE
    hidden: dict[int, OpenFile] = field(default_factory=dict)   # HIDDEN_FD_BASE + n
    root: Loc | None = None              # chroot(2); None: the system's root
    free_hint: int = 0                   # no free fd below it (opening 20,000 fds is linear)
    fsize: int = FSIZE                   # RLIMIT_FSIZE: writes and truncates beyond it: EFBIG

    def get(self, fd: int) -> OpenFile:
        """The description behind ``fd``; EBADF if there is none."""
        if 0 <= fd < len(self.fds):
            of = self.fds[fd]
            if of is not None:
                return of
        elif fd >= HIDDEN_FD_BASE and fd in self.hidden:
            return self.hidden[fd]
        raise SysError(errno.EBADF)

    def is_cloexec(self, fd: int) -> bool:
        return self.cloexec[fd] if fd < len(self.cloexec) else True

    def io_file(self, fd: int) -> OpenFile:
        """Like :meth:`get`, but O_PATH descriptors do not count (EBADF, as Linux)."""
        of = self.get(fd)
        if of.flags & O_PATH:
            raise SysError(errno.EBADF)
        return of

    def lowest_free(self, start: int = 0) -> int:
        fds = self.fds
        from_hint = start <= self.free_hint
        if from_hint:                        # every fd below the hint is taken
            start = self.free_hint
        for fd in range(start, len(fds)):
            if fds[fd] is None:
                if from_hint:
                    self.free_hint = fd
                return fd
        if from_hint:
            self.free_hint = len(fds)
        fd = max(start, len(fds))
        if fd >= self.nofile:
            raise SysError(errno.EMFILE)
        return fd

    def install(self, of: OpenFile, fd: int, cloexec: bool) -> int:
        """Put ``of`` at ``fd`` (which must be free); takes over one reference."""
        fds = self.fds
        if fd >= len(fds):
            grow = fd + 1 - len(fds)
            fds.extend([None] * grow)
            self.cloexec.extend([False] * grow)
        fds[fd] = of
        self.cloexec[fd] = cloexec
        if fd == self.free_hint:
            hint = fd + 1
            while hint < len(fds) and fds[hint] is not None:
                hint += 1
            self.free_hint = hint
        return fd

    def add(self, of: OpenFile, cloexec: bool = False, start: int = 0) -> int:
        if start >= HIDDEN_FD_BASE:
            fd = start
            while fd in self.hidden:
                fd += 1
            self.hidden[fd] = of
            return fd
        if start >= self.nofile:
            raise SysError(errno.EINVAL)
        return self.install(of, self.lowest_free(start), cloexec)

    def take(self, fd: int) -> OpenFile:
        """Remove ``fd`` from the table (the caller drops the reference)."""
        of = self.get(fd)
        if fd >= HIDDEN_FD_BASE:
            del self.hidden[fd]
            return of
        self.fds[fd] = None
        self.cloexec[fd] = False
        if fd < self.free_hint:
            self.free_hint = fd
        fds = self.fds
        while fds and fds[-1] is None:       # keep the list short for lowest_free
            fds.pop()
            self.cloexec.pop()
        return of

    def in_group(self, gid: int) -> bool:
        return gid == self.egid or gid in self.groups
