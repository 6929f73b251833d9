"""inotify, served by the VFS, from the ramfs's change points.

The ramfs calls its listeners after every change (``ramfs.py``: create, remove,
data, attr, free) whoever made it -- a XINIM program through the VFS or a host
program through the FUSE export, which share the one tree -- so one listener,
:class:`InotifyHub`, turns those into inotify events for every watch on the
inode and on its directory.  A rename is the pair remove+create of the same inode
while ``Ramfs.renaming`` names it: IN_MOVED_FROM/IN_MOVED_TO with one cookie.
Opens, reads and closes (IN_OPEN, IN_ACCESS, IN_CLOSE_WRITE, IN_CLOSE_NOWRITE)
come from the VFS's open file descriptions and the FUSE export's handles,
through ``Ramfs.accessed``.  Watches on host mounts are accepted and stay
silent (the host's changes are not seen).

An :class:`Inotify` instance is an anonymous file (``anon_inode:inotify``) whose
queue of packed ``struct inotify_event`` wakes its wait queue.
"""
from __future__ import annotations

import collections
import errno
import struct
from typing import Any

from ..lib.errors import SysError
from ..lib.readiness import POLLIN, POLLRDNORM
from .anon import AnonFile
from .eventfds import read_or_park

IN_ACCESS, IN_MODIFY, IN_ATTRIB = 0x1, 0x2, 0x4
IN_CLOSE_WRITE, IN_CLOSE_NOWRITE, IN_OPEN = 0x8, 0x10, 0x20
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_ALL_EVENTS = 0xFFF
IN_UNMOUNT, IN_Q_OVERFLOW, IN_IGNORED = 0x2000, 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_EXCL_UNLINK = 0x01000000, 0x02000000, 0x04000000
IN_MASK_CREATE, IN_MASK_ADD = 0x10000000, 0x20000000
IN_ISDIR, IN_ONESHOT = 0x40000000, 0x80000000
ALL_INOTIFY_BITS = (IN_ALL_EVENTS | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK
                    | IN_MASK_CREATE | IN_MASK_ADD | IN_ISDIR | IN_ONESHOT)
MAX_QUEUED_EVENTS = 16384                      # /proc/sys/fs/inotify/max_queued_events
EVENT = struct.Struct("<iIII")                 # wd, mask, cookie, len; then the name
S_IFMT, S_IFDIR = 0o170000, 0o040000


def _packed(wd: int, mask: int, cookie: int, name: bytes) -> bytes:
    if not name:
        return EVENT.pack(wd, mask, cookie, 0)
    size = (len(name) + 1 + EVENT.size - 1) // EVENT.size * EVENT.size   # NUL, padded
    return EVENT.pack(wd, mask, cookie, size) + name + bytes(size - len(name))


class Watch:
    __slots__ = ("inst", "wd", "inode", "mask")

    def __init__(self, inst: "Inotify", wd: int, inode: Any, mask: int) -> None:
        self.inst, self.wd, self.inode, self.mask = inst, wd, inode, mask


class Inotify(AnonFile):
    name = b"inotify"                          # Linux's link reads anon_inode:inotify

    def __init__(self, hub: "InotifyHub") -> None:
        super().__init__()
        self.hub = hub
        self.wds: dict[int, Watch] = {}
        self.by_inode: dict[Any, Watch] = {}
        self.events: collections.deque[bytes] = collections.deque()
        self.next_wd = 1

    # -- watches ---------------------------------------------------------------------------
    def add(self, inode: Any, mask: int, fs: Any) -> int:
        """inotify_add_watch: a new wd, or the inode's wd with its mask replaced (or
        added to with IN_MASK_ADD; EEXIST with IN_MASK_CREATE)."""
        keep = mask & ~(IN_MASK_ADD | IN_MASK_CREATE | IN_DONT_FOLLOW | IN_ONLYDIR)
        old = self.by_inode.get(inode)
        if old is not None:
            if mask & IN_MASK_CREATE:
                raise SysError(errno.EEXIST)
            old.mask = (old.mask | keep) if mask & IN_MASK_ADD else keep
            return old.wd
        mask = keep
        wd = self.next_wd
        self.next_wd += 1
        w = Watch(self, wd, inode, mask)
        self.wds[wd] = w
        self.by_inode[inode] = w
        if fs.kind == "ramfs":                     # host files: accepted, never heard of
            self.hub.watches.setdefault(inode, []).append(w)
        return wd

    def remove(self, wd: int) -> None:
        w = self.wds.get(wd)
        if w is None:
            raise SysError(errno.EINVAL)
        self.drop(w)

    def drop(self, w: Watch, ignored: bool = True) -> None:
        """The watch ends (rm_watch, its inode deleted, IN_ONESHOT): IN_IGNORED."""
        if self.wds.pop(w.wd, None) is None:
            return
        self.by_inode.pop(w.inode, None)
        self.hub.unwatch(w)
        if ignored:
            self.queue(w.wd, IN_IGNORED, 0, b"")

    # -- events ----------------------------------------------------------------------------
    def queue(self, wd: int, mask: int, cookie: int, name: bytes) -> None:
        ev = _packed(wd, mask, cookie, name)
        events = self.events
        if events and events[-1] == ev:
            return                                  # Linux merges an identical last event
        if len(events) >= MAX_QUEUED_EVENTS:
            overflow = _packed(-1, IN_Q_OVERFLOW, 0, b"")
            if events[-1] != overflow:
                events.append(overflow)
            return
        events.append(ev)
        self.q.wake(POLLIN | POLLRDNORM)

    def _take(self, count: int) -> bytes | None:
        if not self.events:
            return None
        if len(self.events[0]) > count:
            raise SysError(errno.EINVAL)            # not even the first event fits
        out = bytearray()
        while self.events and len(out) + len(self.events[0]) <= count:
            out += self.events.popleft()
        return bytes(out)

    def read(self, req: Any, of: Any, count: int, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        return read_or_park(req, of, self, lambda: self._take(count))

    def poll(self, of: Any, events: int) -> int:
        return (POLLIN | POLLRDNORM) & events if self.events else 0

    def ioctl(self, req: Any, of: Any, request: int, data: bytes) -> tuple[int, bytes]:
        if request == 0x541B:                       # FIONREAD: bytes queued
            return 0, struct.pack("<i", sum(len(e) for e in self.events))
        raise SysError(errno.ENOTTY)

    def close(self, of: Any) -> None:
        for w in list(self.wds.values()):
            self.drop(w, ignored=False)

    def fdinfo(self, of: Any) -> bytes:
        return b"".join(b"inotify wd:%x ino:%x sdev:%x mask:%x ignored_mask:0\n"
                        % (w.wd, getattr(w.inode, "ino", 0) or 0, 0, w.mask & 0xFFFFFFFF)
                        for w in self.wds.values())


class InotifyHub:
    """The one ramfs listener that feeds every inotify instance."""

    def __init__(self, ramfs: Any) -> None:
        self.ramfs = ramfs
        self.watches: dict[Any, list[Watch]] = {}   # ramfs inode -> its watches
        self.cookie = 0
        self._move_cookie = 0
        ramfs.add_listener(self.changed)
        ramfs.add_access_listener(self.accessed)

    def unwatch(self, w: Watch) -> None:
        ws = self.watches.get(w.inode)
        if ws is not None and w in ws:
            ws.remove(w)
            if not ws:
                del self.watches[w.inode]

    def _tell(self, inode: Any, mask: int, cookie: int = 0, name: bytes = b"") -> None:
        for w in list(self.watches.get(inode, ())):
            if w.mask & mask & IN_ALL_EVENTS or mask & (IN_IGNORED | IN_UNMOUNT):
                w.inst.queue(w.wd, mask, cookie, name)
                if w.mask & IN_ONESHOT:
                    w.inst.drop(w)

    def _names(self, inode: Any) -> list[tuple[Any, bytes]]:
        """(watched directory, name) pairs that name ``inode`` (file events go to the
        directory's watches too)."""
        out = []
        for d in list(self.watches):
            entries = getattr(d, "entries", None)
            if entries:
                for name, child in entries.items():
                    if child is inode:
                        out.append((d, name))
        return out

    def _about(self, inode: Any, mask: int) -> None:
        """An event on ``inode`` itself and, with its name, on watched directories."""
        if not self.watches:
            return
        isdir = IN_ISDIR if inode.mode & S_IFMT == S_IFDIR else 0
        for d, name in self._names(inode):         # the parent first, as fsnotify_parent
            self._tell(d, mask | isdir, 0, name)
        self._tell(inode, mask | isdir)

    def changed(self, event: str, inode: Any, parent: Any, name: bytes | None) -> None:
        if not self.watches:
            return
        isdir = IN_ISDIR if inode.mode & S_IFMT == S_IFDIR else 0
        moving = getattr(self.ramfs, "renaming", None)
        if event == "create":
            if moving is inode:
                self._tell(parent, IN_MOVED_TO | isdir, self._move_cookie, name or b"")
                self._tell(inode, IN_MOVE_SELF)
            else:
                if inode.nlink > 1 and not isdir:
                    self._tell(inode, IN_ATTRIB)     # a hard link: its count changed
                self._tell(parent, IN_CREATE | isdir, 0, name or b"")
        elif event == "remove":
            if moving is inode:
                self.cookie += 1
                self._move_cookie = self.cookie
                self._tell(parent, IN_MOVED_FROM | isdir, self._move_cookie, name or b"")
                return
            # the inode's own events first (Linux: d_delete before fsnotify_unlink's)
            if not isdir:
                self._tell(inode, IN_ATTRIB)         # its link count changed
            if inode.nlink == 0:
                self._tell(inode, IN_DELETE_SELF)
                for w in list(self.watches.get(inode, ())):
                    w.inst.drop(w)
            if moving is None:
                self._tell(parent, IN_DELETE | isdir, 0, name or b"")
        elif event == "data":
            self._about(inode, IN_MODIFY)
        elif event == "attr":
            self._about(inode, IN_ATTRIB)
        elif event == "free":
            for w in list(self.watches.get(inode, ())):
                w.inst.drop(w)

    # -- opens and closes, by the VFS's descriptions or the FUSE export's handles ------------
    _ACCESS = {"open": IN_OPEN, "close-write": IN_CLOSE_WRITE, "close-nowrite": IN_CLOSE_NOWRITE,
               "access": IN_ACCESS}

    def accessed(self, what: str, inode: Any) -> None:
        if self.watches:
            self._about(inode, self._ACCESS[what])
