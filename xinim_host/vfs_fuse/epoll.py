"""epoll instances (Linux ``fs/eventpoll.c``) on the shared readiness model.

An :class:`Epoll` is an anonymous file with its own wait queue, so it is itself
pollable and nests.  Its interest list is keyed by (open file description, fd),
as Linux's (file, fd): it follows the description across fork and dup, and an
item goes away when the last reference to its description closes
(``VfsServer.drop`` calls :func:`forget_file`), not when one fd of it does.

Each item subscribes to the watched file's ``waitq``; a wake whose hint meets the
item's events puts it on the ready list and wakes the epoll's own queue.
``collect`` re-polls the ready items (a wake is a hint): level-triggered ones stay
on the list while ready, EPOLLET ones leave it until the next wake, EPOLLONESHOT
ones are disabled until EPOLL_CTL_MOD.
"""
from __future__ import annotations

import errno
import struct
from typing import Any, Callable

from ..lib.errors import SysError
from ..lib.readiness import POLLERR, POLLHUP, POLLIN, POLLRDNORM, WaitQueue, WatchedQueue
from .anon import AnonFile

EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLLEXCLUSIVE = 1 << 28
EPOLLWAKEUP = 1 << 29
EPOLLONESHOT = 1 << 30
EPOLLET = 1 << 31
EP_PRIVATE_BITS = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE
EPOLLEXCLUSIVE_OK_BITS = 0x1 | 0x4 | POLLERR | POLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE
EP_MAX_NESTS = 4
EPOLL_EVENT = struct.Struct("<IQ")          # struct epoll_event, packed on x86-64


class EpItem:
    """One watched (description, fd) of one epoll instance."""

    __slots__ = ("ep", "of", "fd", "events", "data", "q")

    def __init__(self, ep: "Epoll", of: Any, fd: int, events: int, data: int) -> None:
        self.ep, self.of, self.fd, self.events, self.data = ep, of, fd, events, data
        self.q: WaitQueue | None = None

    @property
    def exclusive(self) -> bool:
        return bool(self.events & EPOLLEXCLUSIVE)

    def __call__(self, mask: int) -> bool:
        """The watched file's wake: a hint, re-polled in ``collect``.  True when an
        EPOLLEXCLUSIVE item's epoll had a waiter to wake (ep_poll_callback's
        ewake: the wake is then that waiter's alone, WaitQueue.wake)."""
        if mask & (self.events & ~EP_PRIVATE_BITS | POLLERR | POLLHUP):
            waiting = bool(self.ep.q)
            self.ep.mark(self)
            return waiting
        return False

    def revents(self) -> int:
        listen = self.events & ~EP_PRIVATE_BITS
        if not listen:
            return 0                          # a fired EPOLLONESHOT item
        of = self.of
        return of.io.poll(of, listen) & (listen | POLLERR | POLLHUP)


class Epoll(AnonFile):
    name = b"[eventpoll]"

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[Any, int], EpItem] = {}
        self.ready: dict[EpItem, None] = {}    # an ordered set: the ready list

    # -- the interest list -------------------------------------------------------------
    def add(self, of: Any, fd: int, events: int, data: int, q: WaitQueue) -> None:
        if (of, fd) in self.items:
            raise SysError(errno.EEXIST)
        if isinstance(of.io, Epoll):
            self._check_loop(of.io)
        item = EpItem(self, of, fd, events | POLLERR | POLLHUP, data)
        self.items[(of, fd)] = item
        watchers = of.epitems
        if watchers is None:
            of.epitems = watchers = []
        watchers.append(item)
        item.q = q
        q.subscribe(item)
        if item.revents():                    # ready already: on the list at once
            self.mark(item)

    def modify(self, of: Any, fd: int, events: int, data: int) -> None:
        item = self.items.get((of, fd))
        if item is None:
            raise SysError(errno.ENOENT)
        if item.events & EPOLLEXCLUSIVE:
            raise SysError(errno.EINVAL)
        item.events = events | POLLERR | POLLHUP
        item.data = data
        self.ready.pop(item, None)
        if item.revents():
            self.mark(item)

    def delete(self, of: Any, fd: int) -> None:
        item = self.items.get((of, fd))
        if item is None:
            raise SysError(errno.ENOENT)
        self.remove(item)

    def remove(self, item: EpItem) -> None:
        self.items.pop((item.of, item.fd), None)
        self.ready.pop(item, None)
        if item.q is not None:
            item.q.unsubscribe(item)
            item.q = None
        watchers = item.of.epitems
        if watchers is not None and item in watchers:
            watchers.remove(item)

    def _check_loop(self, inner: "Epoll") -> None:
        """ELOOP when ``inner`` reaches this instance or nests too deep (ep_loop_check)."""
        def depth(ep: Epoll, level: int) -> int:
            if ep is self or level > EP_MAX_NESTS:
                raise SysError(errno.ELOOP)
            deepest = level
            for item in ep.items.values():
                if isinstance(item.of.io, Epoll):
                    deepest = max(deepest, depth(item.of.io, level + 1))
            return deepest
        depth(inner, 1)

    # -- readiness -----------------------------------------------------------------------
    def mark(self, item: EpItem) -> None:
        if item not in self.ready:
            self.ready[item] = None
        self.q.wake(POLLIN | POLLRDNORM)

    def collect(self, maxevents: int,
                deliver: Callable[[list[tuple[int, int]]], int] | None = None
                ) -> list[tuple[int, int]]:
        """Up to ``maxevents`` (events, data) pairs of ready items, as ep_send_events.
        ``deliver(pairs)`` (a copy to the caller) says how many arrived; the others
        stay ready, as they were (Linux puts back what it could not copy)."""
        picked: list[tuple[EpItem, int]] = []
        for item in list(self.ready):
            if len(picked) >= maxevents:
                break
            del self.ready[item]
            if item.q is None:
                continue                      # removed meanwhile
            revents = item.revents()
            if revents:
                picked.append((item, revents))
        out = [(revents, item.data) for item, revents in picked]
        sent = len(out) if deliver is None or not out else deliver(out)
        if sent < len(picked):
            back = {item: None for item, _ in picked[sent:]}
            back.update(self.ready)
            self.ready = back                 # first again next time
        for item, _ in picked[:sent]:
            if item.events & EPOLLONESHOT:
                item.events &= EP_PRIVATE_BITS
            elif not item.events & EPOLLET:
                self.ready[item] = None       # level-triggered: asked again next time
        return out[:sent]

    def arm_edges(self) -> None:
        """Before a wait: an edge-triggered item on a host fd (a pty) learns of its next
        edge only through the queue's watcher.  Polling it arms the watcher when it is
        drained; one left readable is armed anyway (its wake may then be spurious: the
        host fd cannot tell new input from old)."""
        for item in self.items.values():
            if item.events & EPOLLET and isinstance(item.q, WatchedQueue) \
                    and item not in self.ready and item.revents():
                item.q.arm(item.events)

    def poll(self, of: Any, events: int) -> int:
        for item in list(self.ready):
            if item.q is not None and item.revents():
                return (POLLIN | POLLRDNORM) & events
            del self.ready[item]
        self.arm_edges()                      # (nested in a poll or another epoll)
        return 0

    def close(self, of: Any) -> None:
        for item in list(self.items.values()):
            self.remove(item)

    def fdinfo(self, of: Any) -> bytes:
        out = bytearray()
        for item in self.items.values():
            try:
                st = item.of.fs.stat_reply(item.of.node)
                ino, dev = st.ino, st.dev
            except Exception:                 # a file that cannot say: the line stays
                ino = dev = 0
            out += b"tfd: %8d events: %8x data: %16x  pos:%d ino:%x sdev:%x\n" % (
                item.fd, item.events & 0xFFFFFFFF, item.data, item.of.offset, ino, dev)
        return bytes(out)


def forget_file(of: Any) -> None:
    """The last reference to ``of`` closed: every epoll stops watching it."""
    for item in list(of.epitems or ()):
        item.ep.remove(item)
    of.epitems = None
