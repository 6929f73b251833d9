"""eventfd and timerfd: counters that wake their wait queue (``lib/readiness``).

A read that must wait parks on the object's queue (``parking.park``): the wake
that brings data answers it, a signal fails it.  A timerfd's
expiry is a trio deadline in a task of the VFS's nursery: it adds the ticks and
wakes the queue; nothing polls.
"""
from __future__ import annotations

import errno
import os
import struct
import time
from typing import Any, Callable

import trio

from ..lib.errors import SysError
from ..lib.protocol import VfsDataReply
from ..lib.readiness import POLLERR, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM
from .anon import AnonFile
from .parking import park

_U64 = struct.Struct("<Q")
ULLONG_MAX = (1 << 64) - 1
EFD_SEMAPHORE = 1


def read_or_park(req: Any, of: Any, obj: AnonFile, take: Callable[[], bytes | None]) -> Any:
    """A read of ``obj``: what ``take()`` has now; else EAGAIN on a non-blocking fd,
    or the read waits (on ``obj``'s queue) until ``take()`` has data."""
    got = take()
    if got is not None:
        return got
    if of.flags & os.O_NONBLOCK:
        raise SysError(errno.EAGAIN)

    def attempt() -> VfsDataReply | None:
        data = take()
        return None if data is None else VfsDataReply(result=len(data), data=data)
    return park(req, [obj.q], attempt)


class _U64Fd(AnonFile):
    """An fd read as one 64-bit count (eventfd, timerfd): ``_take`` gives it, or None."""

    def _take(self) -> bytes | None:
        raise NotImplementedError

    def read(self, req: Any, of: Any, count: int, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        if count < 8:
            raise SysError(errno.EINVAL)
        return read_or_park(req, of, self, self._take)


class EventFd(_U64Fd):
    """eventfd(2): a 64-bit counter; EFD_SEMAPHORE reads take one at a time."""

    name = b"[eventfd]"
    _ids = 0

    def __init__(self, count: int, semaphore: bool) -> None:
        super().__init__()
        self.count = count
        self.semaphore = semaphore
        EventFd._ids += 1
        self.id = EventFd._ids

    def _take(self) -> bytes | None:
        if not self.count:
            return None
        value = 1 if self.semaphore else self.count
        self.count -= value
        self.q.wake(POLLOUT | POLLWRNORM)
        return _U64.pack(value)

    def _add(self, value: int) -> int | None:
        if ULLONG_MAX - 1 - self.count < value:
            return None
        self.count += value
        if value:
            self.q.wake(POLLIN | POLLRDNORM)
        return 8

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        if len(data) < 8:
            raise SysError(errno.EINVAL)
        (value,) = _U64.unpack_from(data)
        if value == ULLONG_MAX:
            raise SysError(errno.EINVAL)
        done = self._add(value)
        if done is not None:
            return done
        if of.flags & os.O_NONBLOCK:
            raise SysError(errno.EAGAIN)
        return park(req, [self.q], lambda: self._add(value))

    def poll(self, of: Any, events: int) -> int:
        r = 0
        if self.count:
            r |= POLLIN | POLLRDNORM
        if self.count == ULLONG_MAX:
            r |= POLLERR
        if self.count < ULLONG_MAX - 1:
            r |= POLLOUT | POLLWRNORM
        return r & (events | POLLERR)

    def fdinfo(self, of: Any) -> bytes:
        return (b"eventfd-count: %16x\neventfd-id: %d\neventfd-semaphore: %d\n"
                % (self.count, self.id, int(self.semaphore)))


# --- timerfd ----------------------------------------------------------------------------

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 0, 1, 7
CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM = 8, 9
TIMER_CLOCKS = {CLOCK_REALTIME: CLOCK_REALTIME, CLOCK_MONOTONIC: CLOCK_MONOTONIC,
                CLOCK_BOOTTIME: CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM: CLOCK_REALTIME,
                CLOCK_BOOTTIME_ALARM: CLOCK_BOOTTIME}
TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2


class TimerFd(_U64Fd):
    """timerfd_create(2): expirations counted on a clock; ``read`` takes the count."""

    name = b"[timerfd]"

    def __init__(self, srv: Any, clockid: int) -> None:
        super().__init__()
        self.srv = srv
        self.clockid = clockid
        self.host_clock = TIMER_CLOCKS[clockid]
        self.ticks = 0
        self.deadline = 0              # next expiry in ns on the clock; 0: disarmed
        self.interval = 0
        self.flags = 0
        self._scope: trio.CancelScope | None = None

    def now(self) -> int:
        return time.clock_gettime_ns(self.host_clock)

    def gettime(self) -> tuple[int, int]:
        if not self.deadline:
            return 0, self.interval
        return max(self.deadline - self.now(), 1), self.interval

    def settime(self, flags: int, value: int, interval: int) -> tuple[int, int]:
        old = self.gettime()
        self._disarm()
        self.ticks = 0
        self.flags = flags
        self.interval = interval if value else 0
        if value:
            self.deadline = value if flags & TFD_TIMER_ABSTIME else self.now() + value
            if self.deadline <= 0:
                self.deadline = 1
            self._arm()
        return old

    def _disarm(self) -> None:
        self.deadline = 0
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    def _arm(self) -> None:
        scope = self._scope = trio.CancelScope()
        nursery = self.srv.nursery
        if nursery is not None:
            nursery.start_soon(self._run, scope)
        else:
            trio.lowlevel.spawn_system_task(self._run, scope)

    async def _run(self, scope: trio.CancelScope) -> None:
        """Sleep to each expiry (a trio deadline), count it, wake the queue."""
        with scope:
            while self.deadline:
                left = self.deadline - self.now()
                if left > 0:
                    await trio.sleep_until(trio.current_time() + left / 1e9)
                    continue                     # the clock may have moved: look again
                if self.interval:
                    missed = -left // self.interval
                    self.ticks += 1 + missed
                    self.deadline += (1 + missed) * self.interval
                else:
                    self.ticks += 1
                    self.deadline = 0
                self.q.wake(POLLIN | POLLRDNORM)
        if self._scope is scope:
            self._scope = None

    def _take(self) -> bytes | None:
        if not self.ticks:
            return None
        ticks, self.ticks = self.ticks, 0
        return _U64.pack(ticks)

    def poll(self, of: Any, events: int) -> int:
        return (POLLIN | POLLRDNORM) & events if self.ticks else 0

    def close(self, of: Any) -> None:
        self._disarm()

    def fdinfo(self, of: Any) -> bytes:
        value, interval = self.gettime()
        return (b"clockid: %d\nticks: %d\nsettime flags: 0%o\nit_value: (%d, %d)\n"
                b"it_interval: (%d, %d)\n"
                % (self.clockid, self.ticks, self.flags, value // 10**9, value % 10**9,
                   interval // 10**9, interval % 10**9))
