"""Advisory file locks, enforced by the VFS: flock, POSIX record locks, OFD locks, leases.

Linux's fs/locks.c in small.  Locks hang off the file (the ramfs inode; a host
file by its device and inode number) in :class:`LockTable`:

* **flock** locks belong to the open file description: ``dup``/``fork`` share
  them, they go when its last reference goes (``released``).  A conversion drops
  the old lock first, as Linux does (not atomic).
* **POSIX record locks** (``F_SETLK``/``F_SETLKW``/``F_GETLK``) belong to the
  process: byte ranges, merged with the owner's touching ranges of the same type
  and split by a different one; any close of the file by the process drops them
  all (``closed``); ``l_pid`` is the holder's XINIM pid.
* **OFD locks** (``F_OFD_*``) are record locks owned by the open file description;
  they conflict with POSIX ones (one list), go at its last close, and show
  ``l_pid`` -1.
* **leases** (``F_SETLEASE``): one per description; an open that conflicts sends
  the holder its lease-break signal (SIGIO, or ``F_SETSIG``'s) through PM and
  fails ``EWOULDBLOCK`` when non-blocking, else parks until the lease is dropped
  or downgraded or ``lease-break-time`` passes, then the lease is taken away.

A blocking request (``F_SETLKW``, ``flock`` without ``LOCK_NB``) parks its Request
like a pipe read, registered with the server so a signal (``VFS_CANCEL``) or the
caller's exit answers it; any change to a file's locks retries its waiters in
order.  ``F_SETLKW`` fails ``EDEADLK`` when the holder it would wait for is itself
(transitively) waiting for the caller -- process-owned locks only, as Linux.
"""
from __future__ import annotations

import errno
import logging
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..lib.errors import SysError

if TYPE_CHECKING:
    from ..lib.server import Request
    from .fdtable import OpenFile

log = logging.getLogger(__name__)

F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8
OFFSET_MAX = (1 << 63) - 1
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
# struct flock (x86-64): l_type, l_whence (short), l_start, l_len (off_t), l_pid (int)
FLOCK = struct.Struct("<hh4xqqi4x")
SIGIO = 29
O_ASYNC = 0o20000
POLL_ASYNC = 0x1 | 0x4 | 0x8 | 0x10          # POLLIN POLLOUT POLLERR POLLHUP
LEASE_BREAK_TIME = 45             # seconds, /proc/sys/fs/lease-break-time
_DEADLOCK_DEPTH = 1024            # Linux's MAX_DEADLK_ITERATIONS is 10; a chain is short

Owner = tuple[str, int]           # ("p", pid) for POSIX locks, ("o", id(of)) for OFD locks


@dataclass(slots=True)
class RangeLock:
    """One record lock: its owner, type and byte range."""

    owner: Owner
    type: int
    start: int
    end: int                      # inclusive; OFFSET_MAX for "to the end"
    pid: int                      # l_pid as F_GETLK shows it (-1 for OFD locks)
    of: Any = None                # the description of an OFD lock

    def overlaps(self, start: int, end: int) -> bool:
        return self.start <= end and start <= self.end


@dataclass(slots=True, eq=False)
class _Waiter:
    """A parked F_SETLKW/F_OFD_SETLKW or blocking flock."""

    locks: "LockTable"
    key: Any
    req: Any
    attempt: Callable[[], Any]    # -> answer, or None while it still conflicts
    owner: Owner | None = None    # POSIX waiters: for the deadlock walk
    blocker: Owner | None = None

    def cancel(self, err: int) -> None:
        if self.locks._drop_waiter(self):
            self.req.fail(err)


class _AsyncWatch:
    """One O_ASYNC description's subscription to its readiness queue."""

    def __init__(self, table: "LockTable", of: Any, waitq: Any) -> None:
        self.table, self.of, self.waitq = table, of, waitq
        self.pending = False
        waitq.subscribe(self)

    def __call__(self, mask: int = -1) -> None:
        # at once, before the call that made it ready returns (as kill_fasync): a
        # signal the change causes later (the writer's SIGCHLD) must come after it.
        # Sending is a message to PM, which answers or queues it; nothing waits.
        if self.pending:
            return
        self.pending = True
        try:
            self.fire()
        finally:
            self.pending = False

    def fire(self) -> None:
        table, of = self.table, self.of
        if table.async_waits.get(of) is not self:
            return
        if of.io.poll(of, POLL_ASYNC) & POLL_ASYNC:
            owner = table.owners.get(of, 0)
            if owner:
                table.srv.send_signal(owner, table.sigs.get(of) or SIGIO)

    def stop(self) -> None:
        self.waitq.unsubscribe(self)


@dataclass(slots=True)
class FileLocks:
    """Every lock on one file."""

    ranges: list[RangeLock] = field(default_factory=list)
    flocks: dict[Any, int] = field(default_factory=dict)       # OpenFile -> LOCK_SH/LOCK_EX
    leases: dict[Any, int] = field(default_factory=dict)       # OpenFile -> F_RDLCK/F_WRLCK
    breaking: dict[Any, int] = field(default_factory=dict)     # OpenFile -> type it must go to
    waiters: list[_Waiter] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.ranges or self.flocks or self.leases or self.waiters)


class LockTable:
    """The VFS's locks (one per server)."""

    def __init__(self, srv: Any) -> None:
        self.srv = srv
        self.files: dict[Any, FileLocks] = {}
        self.waiting: dict[Owner, _Waiter] = {}    # POSIX owner -> its parked request
        self.sigs: dict[Any, int] = {}             # OpenFile -> F_SETSIG signal (0: SIGIO)
        self.owners: dict[Any, int] = {}           # OpenFile -> F_SETOWN pid, -pgrp (0: none)
        self.owner_kinds: dict[Any, int] = {}      # OpenFile -> F_SETOWN_EX's type
        self.async_waits: dict[Any, Any] = {}      # OpenFile -> its O_ASYNC readiness watch

    # -- which file ---------------------------------------------------------------------
    def key(self, of: OpenFile) -> Any:
        return self.key_of(of.fs, of.node)

    @staticmethod
    def key_of(fs: Any, node: Any) -> Any:
        if getattr(fs, "kind", "") == "ramfs":
            return node
        st = fs.stat_reply(node)
        return ("dev", st.dev, st.ino)

    def _file(self, key: Any) -> FileLocks:
        fl = self.files.get(key)
        if fl is None:
            fl = self.files[key] = FileLocks()
        return fl

    def _tidy(self, key: Any) -> None:
        fl = self.files.get(key)
        if fl is not None and fl.empty():
            del self.files[key]

    # -- record locks -------------------------------------------------------------------
    def range_of(self, of: OpenFile, whence: int, start: int, length: int) -> tuple[int, int]:
        """A struct flock's range as (start, end inclusive); EINVAL/EOVERFLOW as Linux."""
        if whence == SEEK_CUR:
            base = of.offset
        elif whence == SEEK_END:
            base = of.fs.stat_reply(of.node).size
        elif whence == SEEK_SET:
            base = 0
        else:
            raise SysError(errno.EINVAL)
        if start > OFFSET_MAX - base:
            raise SysError(errno.EOVERFLOW)
        start += base
        if start < 0:
            raise SysError(errno.EINVAL)
        if length > 0:
            if length - 1 > OFFSET_MAX - start:
                raise SysError(errno.EOVERFLOW)
            end = start + length - 1
        elif length < 0:
            end = start - 1
            start += length
            if start < 0:
                raise SysError(errno.EINVAL)
        else:
            end = OFFSET_MAX
        return start, end

    @staticmethod
    def _conflict(fl: FileLocks, owner: Owner, ltype: int, start: int,
                  end: int) -> RangeLock | None:
        for lk in fl.ranges:
            if lk.owner != owner and lk.overlaps(start, end) and (
                    ltype == F_WRLCK or lk.type == F_WRLCK):
                return lk
        return None

    def getlk(self, of: OpenFile, owner: Owner, ltype: int, start: int,
              end: int) -> RangeLock | None:
        fl = self.files.get(self.key(of))
        return None if fl is None else self._conflict(fl, owner, ltype, start, end)

    def setlk(self, req: Request | None, of: OpenFile, owner: Owner, ltype: int, start: int,
              end: int, pid: int, wait: bool) -> Any:
        """Set or clear a range; 0, or None when parked (``wait``)."""
        key = self.key(of)
        fl = self._file(key)
        if ltype == F_UNLCK:
            self._apply(fl, owner, ltype, start, end, pid, of)
            self._changed(key, fl)
            return 0
        lk = self._conflict(fl, owner, ltype, start, end)
        if lk is None:
            self._apply(fl, owner, ltype, start, end, pid, of)
            self._changed(key, fl)
            return 0
        if not wait or req is None:
            self._tidy(key)
            raise SysError(errno.EAGAIN)
        if owner[0] == "p" and self._deadlock(owner, lk.owner):
            self._tidy(key)
            raise SysError(errno.EDEADLK)

        def attempt() -> Any:
            got = self._conflict(fl, owner, ltype, start, end)
            if got is not None:
                waiter.blocker = got.owner
                # woken, still blocked -- maybe by a lock whose owner waits for us now
                if owner[0] == "p" and self._deadlock(owner, got.owner):
                    raise SysError(errno.EDEADLK)
                return None
            self._apply(fl, owner, ltype, start, end, pid, of)
            return 0

        waiter = _Waiter(self, key, req, attempt, owner if owner[0] == "p" else None, lk.owner)
        self._park(fl, waiter)
        return None

    def _deadlock(self, me: Owner, blocker: Owner) -> bool:
        seen = 0
        while blocker[0] == "p" and seen < _DEADLOCK_DEPTH:
            if blocker == me:
                return True
            w = self.waiting.get(blocker)
            if w is None or w.blocker is None:
                return False
            blocker = w.blocker
            seen += 1
        return False

    @staticmethod
    def _apply(fl: FileLocks, owner: Owner, ltype: int, start: int, end: int, pid: int,
               of: Any) -> None:
        """The owner's ranges after setting [start, end] to ``ltype`` (F_UNLCK clears):
        touching ranges of the same type merge, others are cut around it."""
        keep: list[RangeLock] = []
        for lk in fl.ranges:
            if lk.owner != owner:
                keep.append(lk)
                continue
            touches = lk.start <= (end + 1 if end < OFFSET_MAX else end) and \
                start <= (lk.end + 1 if lk.end < OFFSET_MAX else lk.end)
            if lk.type == ltype and touches:
                start, end = min(start, lk.start), max(end, lk.end)
                continue
            if not lk.overlaps(start, end):
                keep.append(lk)
                continue
            if lk.start < start:
                keep.append(RangeLock(owner, lk.type, lk.start, start - 1, lk.pid, lk.of))
            if lk.end > end:
                keep.append(RangeLock(owner, lk.type, end + 1, lk.end, lk.pid, lk.of))
        if ltype != F_UNLCK:
            keep.append(RangeLock(owner, ltype, start, end, pid, of))
        keep.sort(key=lambda lk: lk.start)
        fl.ranges[:] = keep

    # -- flock --------------------------------------------------------------------------
    def flock(self, req: Request, of: OpenFile, op: int) -> Any:
        key = self.key(of)
        fl = self._file(key)
        want = op & ~LOCK_NB
        held = fl.flocks.get(of)
        if want == LOCK_UN:
            if held is not None:
                del fl.flocks[of]
                self._changed(key, fl)
            else:
                self._tidy(key)
            return 0
        if held == want:
            return 0
        if held is not None:                # conversion: the old lock goes first
            del fl.flocks[of]
            self._changed(key, fl)
            fl = self._file(key)

        def conflicts() -> bool:
            return any(o is not of and (want == LOCK_EX or t == LOCK_EX)
                       for o, t in fl.flocks.items())

        if not conflicts():
            fl.flocks[of] = want
            return 0
        if op & LOCK_NB:
            self._tidy(key)
            raise SysError(errno.EWOULDBLOCK)

        def attempt() -> Any:
            if conflicts():
                return None
            fl.flocks[of] = want
            return 0

        self._park(fl, _Waiter(self, key, req, attempt))
        return None

    # -- waiting ------------------------------------------------------------------------
    def _park(self, fl: FileLocks, waiter: _Waiter) -> None:
        fl.waiters.append(waiter)
        if waiter.owner is not None:
            self.waiting[waiter.owner] = waiter
        self.srv.block(waiter.req.caller, waiter)

    def _drop_waiter(self, waiter: _Waiter) -> bool:
        fl = self.files.get(waiter.key)
        if fl is None or waiter not in fl.waiters:
            return False
        fl.waiters.remove(waiter)
        if waiter.owner is not None and self.waiting.get(waiter.owner) is waiter:
            del self.waiting[waiter.owner]
        self.srv.unblock(waiter.req.caller, waiter)
        self._tidy(waiter.key)
        return True

    def _changed(self, key: Any, fl: FileLocks) -> None:
        """Locks of ``key`` went or changed: let every waiter that now can go, in order."""
        progress = True
        while progress and fl.waiters:
            progress = False
            for waiter in list(fl.waiters):
                if waiter not in fl.waiters:
                    continue
                try:
                    answer = waiter.attempt()
                except SysError as exc:
                    self._drop_waiter(waiter)
                    waiter.req.fail(exc.errno)
                    progress = True
                    break
                if answer is None:
                    continue
                self._drop_waiter(waiter)
                waiter.req.reply(answer)
                progress = True
                break                       # its lock may block the ones after it
        self._tidy(key)

    # -- releases -----------------------------------------------------------------------
    def _locked_file(self, of: OpenFile) -> tuple[Any, FileLocks] | None:
        """``of``'s file key and locks, if anything is locked on it (a closing path
        never fails: a file with no key has no locks)."""
        if not self.files:
            return None
        try:
            key = self.key(of)
        except SysError:
            return None
        fl = self.files.get(key)
        return None if fl is None else (key, fl)

    @staticmethod
    def _drop_ranges(fl: FileLocks, owner: Any) -> bool:
        """Remove ``owner``'s record locks from ``fl``; whether it had any."""
        if not any(lk.owner == owner for lk in fl.ranges):
            return False
        fl.ranges[:] = [lk for lk in fl.ranges if lk.owner != owner]
        return True

    def closed(self, pid: int, of: OpenFile) -> None:
        """``pid`` closed an fd of ``of``'s file: its POSIX locks on the file go."""
        found = self._locked_file(of)
        if found is not None and self._drop_ranges(found[1], ("p", pid)):
            self._changed(*found)

    def released(self, of: OpenFile) -> None:
        """The last reference to ``of`` went: its flock, OFD locks and lease go."""
        if not (self.files or self.sigs or self.owners or self.owner_kinds
                or self.async_waits):
            return                            # nothing recorded for any file: most closes
        self.sigs.pop(of, None)
        self.owners.pop(of, None)
        self.owner_kinds.pop(of, None)
        watch = self.async_waits.pop(of, None)
        if watch is not None:
            watch.stop()
        found = self._locked_file(of)
        if found is None:
            return
        key, fl = found
        changed = fl.flocks.pop(of, None) is not None
        if fl.leases.pop(of, None) is not None:
            fl.breaking.pop(of, None)
            changed = True
        if self._drop_ranges(fl, ("o", id(of))):
            changed = True
        if changed:
            self._changed(key, fl)

    # -- O_ASYNC: a signal when the file becomes ready ----------------------------------
    def set_owner(self, of: OpenFile, owner: int, kind: int | None = None) -> None:
        if owner:
            self.owners[of] = owner
        else:
            self.owners.pop(of, None)
        if kind is None:
            self.owner_kinds.pop(of, None)
        else:
            self.owner_kinds[of] = kind
        self.async_io(of)

    def async_io(self, of: OpenFile) -> None:
        """Watch ``of``'s readiness while it has O_ASYNC and an owner: each wake that
        finds it ready sends the owner SIGIO, or F_SETSIG's signal (Linux's
        kill_fasync); files that are always ready have nothing to watch."""
        want = bool(of.flags & O_ASYNC and self.owners.get(of) and of.io is not None)
        watch = self.async_waits.get(of)
        if not want:
            if watch is not None:
                watch.stop()
                del self.async_waits[of]
            return
        if watch is not None:
            return
        waitq = of.io.waitq(of) if hasattr(of.io, "waitq") else None
        if waitq is None:
            return
        self.async_waits[of] = _AsyncWatch(self, of, waitq)

    # -- leases -------------------------------------------------------------------------
    def getlease(self, of: OpenFile) -> int:
        fl = self.files.get(self.key(of))
        if fl is None or of not in fl.leases:
            return F_UNLCK
        return fl.breaking.get(of, fl.leases[of])

    def setlease(self, of: OpenFile, ltype: int, opens: tuple[int, int]) -> int:
        """``opens`` = (descriptions open on the file, of them writable), ``of`` included."""
        key = self.key(of)
        fl = self._file(key)
        if ltype == F_UNLCK:
            if fl.leases.pop(of, None) is None:
                self._tidy(key)
                raise SysError(errno.EAGAIN)
            fl.breaking.pop(of, None)
            self._changed(key, fl)
            return 0
        target = fl.breaking.get(of)
        if target is not None:              # the holder gives way during a break
            if ltype == F_WRLCK or target == F_UNLCK:
                raise SysError(errno.EAGAIN)
            fl.leases[of] = ltype
            del fl.breaking[of]
            self._changed(key, fl)
            return 0
        total, writers = opens
        others = any(o is not of for o in fl.leases)
        if fl.breaking or (ltype == F_WRLCK and (total > 1 or others)) or \
                (ltype == F_RDLCK and (writers or of.writable)):
            self._tidy(key)
            raise SysError(errno.EAGAIN)
        fl.leases[of] = ltype
        return 0

    def break_lease(self, req: Request, key: Any, writing: bool, nonblock: bool,
                    proceed: Callable[[], Any], signal: Callable[[Any, int], None]) -> Any:
        """An open of ``key`` (for writing or not) meets the leases on it: None means
        nothing to break (go on); else the open's answer comes from ``proceed`` once
        the holders gave way (or the break time ran out)."""
        fl = self.files.get(key)
        if fl is None or not fl.leases:
            return None
        targets = {o: F_UNLCK if writing or t == F_WRLCK else t
                   for o, t in fl.leases.items() if writing or t == F_WRLCK}
        if not targets:
            return None
        for o, target in targets.items():
            if o not in fl.breaking:
                fl.breaking[o] = target
                signal(o, self.sigs.get(o) or SIGIO)
        if nonblock:
            raise SysError(errno.EWOULDBLOCK)

        def attempt() -> Any:
            for o, target in targets.items():
                held = fl.leases.get(o)
                if held is not None and (target == F_UNLCK or held == F_WRLCK):
                    return None
            return proceed()

        waiter = _Waiter(self, key, req, attempt)
        self._park(fl, waiter)
        return waiter

    def lease_timeout(self, waiter: _Waiter) -> None:
        """lease-break-time passed: the holders lose their leases, the open goes on."""
        fl = self.files.get(waiter.key)
        if fl is None or waiter not in fl.waiters:
            return
        for o, target in list(fl.breaking.items()):
            if target == F_UNLCK:
                fl.leases.pop(o, None)
            else:
                fl.leases[o] = target
            del fl.breaking[o]
        self._changed(waiter.key, fl)
