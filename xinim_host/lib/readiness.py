"""One readiness model for every XINIM fd: Linux's wait queues, MINIX's select.

Every object behind an fd (a pipe end, a tty, an eventfd, a socket proxy, an
epoll instance, ...) answers two questions:

* ``io.poll(of, events) -> revents`` -- what is true *now*; never blocks.
* ``io.waitq(of) -> WaitQueue | None`` -- whom to tell when that may change.
  ``None`` means it never changes (regular files: always ready, as Linux says).

Whatever changes an object's state calls ``waitq.wake(mask)`` with the events
that may have become true (``POLLIN`` when data arrived, ``POLLOUT`` when room
appeared, ``POLLHUP`` when the last writer went).  A wake is a hint: a waiter
re-asks ``poll`` and never trusts the mask alone, so a spurious wake costs one
poll and a missed one is impossible as long as every state change wakes.

Waiters -- a parked ``poll``/``select`` (:func:`wait_ready`), an epoll
instance, a parked read -- subscribe a callback.  Callbacks run in the waker's
stack, so they must not block or raise: they mark and set an event, nothing more.

Across servers (a socket NET owns, a signalfd over the pending set PM holds)
the owning server sends the VFS a readiness notice with the new mask; the
VFS-side proxy keeps that mask for ``poll`` and wakes its queue.  Nothing polls
on a timer.
"""
from __future__ import annotations

import logging
import math
from typing import Awaitable, Callable, Iterable, Mapping

import trio

log = logging.getLogger(__name__)

# Linux's poll bits (include/uapi/asm-generic/poll.h); epoll's EPOLL* are the same values
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND = 0x40, 0x80, 0x100, 0x200
POLLMSG, POLLRDHUP = 0x400, 0x2000
# what poll reports whatever was asked (Linux adds these to every request)
POLL_ALWAYS = POLLERR | POLLHUP | POLLNVAL
# a file that cannot wait is ready for everything (fs/select.c DEFAULT_POLLMASK)
DEFAULT_POLLMASK = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM

Callback = Callable[[int], None]


class WaitQueue:
    """Who waits on one object (Linux ``wait_queue_head_t``)."""

    __slots__ = ("_subs",)

    def __init__(self) -> None:
        self._subs: list[Callback] = []

    def subscribe(self, cb: Callback) -> None:
        self._subs.append(cb)

    def unsubscribe(self, cb: Callback) -> None:
        try:
            self._subs.remove(cb)
        except ValueError:
            pass

    def __bool__(self) -> bool:
        return bool(self._subs)

    def __len__(self) -> int:
        return len(self._subs)

    def wake(self, mask: int = -1) -> None:
        """Tell every subscriber that the events in ``mask`` may now hold.  A
        subscriber whose ``exclusive`` attribute is true (an EPOLLEXCLUSIVE epoll
        item) and that returns True woke a waiter: the other exclusive ones are
        skipped, as Linux's exclusive wait entries (nr_exclusive 1)."""
        if not self._subs:
            return
        taken = False
        for cb in list(self._subs):            # a callback may unsubscribe itself
            if taken and getattr(cb, "exclusive", False):
                continue
            try:
                if cb(mask) is True and getattr(cb, "exclusive", False):
                    taken = True
            except Exception:                  # one broken waiter never stops the others
                log.exception("readiness callback failed")


class Wakeup:
    """A callback that sets a trio event: what a parked call subscribes with."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = trio.Event()

    def __call__(self, mask: int) -> None:
        self.event.set()

    def rearm(self) -> None:
        if self.event.is_set():
            self.event = trio.Event()


async def wait_ready(queues: Iterable[WaitQueue], check: Callable[[], bool],
                     deadline: float = math.inf) -> bool:
    """Park until ``check()`` holds or ``deadline`` (trio time) passes.

    Subscribes to every queue first, then checks, so a wake between the check and
    the sleep is never lost.  Returns the last ``check()``.
    """
    wakeup = Wakeup()
    subscribed = list(queues)
    for q in subscribed:
        q.subscribe(wakeup)
    try:
        while True:
            wakeup.rearm()
            if check():
                return True
            if trio.current_time() >= deadline:
                return False
            with trio.move_on_at(deadline):
                await wakeup.event.wait()
    finally:
        for q in subscribed:
            q.unsubscribe(wakeup)


class WatchedQueue(WaitQueue):
    """A wait queue for state something outside the servers changes: a host fd's
    input (a pty, the console's line discipline), a console's typed-in bytes.

    ``waits`` maps an event bit (POLLIN, POLLOUT) to an async callable that returns
    once that event may hold (``trio.lowlevel.wait_readable(fd)``).  Nobody polls:
    ``poll`` calls :meth:`arm` with the bits it found *not* ready, and only while
    someone is subscribed does one watcher task per bit await its callable, wake
    the queue once and stop.  The last subscriber leaving cancels the watchers.  So
    a permanently readable fd costs nothing until a waiter has seen it not ready
    (level-triggered waiters re-poll, and re-arm, after each wake).
    """

    __slots__ = ("_waits", "_scopes")

    def __init__(self, waits: Mapping[int, Callable[[], Awaitable[object]]]) -> None:
        super().__init__()
        self._waits = dict(waits)
        self._scopes: dict[int, trio.CancelScope] = {}

    def arm(self, mask: int) -> None:
        """The bits of ``mask`` were found not ready: watch them while someone waits."""
        if not self._subs:
            return
        for bit, wait in self._waits.items():
            if mask & bit and bit not in self._scopes:
                scope = trio.CancelScope()
                self._scopes[bit] = scope
                try:
                    trio.lowlevel.spawn_system_task(self._watch, bit, wait, scope)
                except RuntimeError:              # not inside trio: nobody can wait
                    del self._scopes[bit]

    async def _watch(self, bit: int, wait: Callable[[], Awaitable[object]],
                     scope: trio.CancelScope) -> None:
        woke = 0
        with scope:
            try:
                await wait()
                woke = bit
            except (trio.ClosedResourceError, OSError):
                woke = -1                         # the fd went: every waiter re-polls
            except trio.BusyResourceError:
                log.warning("watched fd already awaited elsewhere: waiters re-poll")
                woke = -1
            except Exception:                     # a system task must never raise
                log.exception("readiness watcher failed")
                woke = -1
        if self._scopes.get(bit) is scope:
            del self._scopes[bit]
        if woke:
            self.wake(woke)

    def unsubscribe(self, cb: Callback) -> None:
        super().unsubscribe(cb)
        if not self._subs:
            self.disarm()

    def disarm(self) -> None:
        scopes, self._scopes = self._scopes, {}
        for scope in scopes.values():
            scope.cancel()


def host_fd_queue(fd: int, *, readable: bool = True, writable: bool = False) -> WatchedQueue:
    """A :class:`WatchedQueue` on a host fd's readability (and writability)."""
    waits: dict[int, Callable[[], Awaitable[object]]] = {}
    if readable:
        waits[POLLIN] = lambda: trio.lowlevel.wait_readable(fd)
    if writable:
        waits[POLLOUT] = lambda: trio.lowlevel.wait_writable(fd)
    return WatchedQueue(waits)
