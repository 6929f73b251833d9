"""A call parked on wait queues, answered from the waker's stack (MINIX SUSPEND).

``park(req, queues, attempt, ...)`` is what poll, epoll_wait and the reads of
event fds do when nothing is ready: the handler returns None ("don't reply
yet"), the request waits subscribed to the queues, and the wake that makes
``attempt()`` succeed answers it inline -- as a pipe write answers a parked pipe
read -- with no task to schedule.  A finite timeout is a trio deadline in the
server's nursery; a signal (``VfsServer.cancel_blocked``) or the caller's exit
fails it.  ``attempt()`` returns the answer, or None for "not yet"; it runs in the
waker's stack, so it must be quick and must not block.
"""
from __future__ import annotations

import errno
import math
from typing import Any, Callable, Iterable

import trio

from ..lib.errors import SysError
from ..lib.readiness import WaitQueue

# ERESTARTSYS and friends: poll, select and epoll_wait are never restarted (signal(7))
ERESTART_FIRST = 512


class Parked:
    __slots__ = ("req", "queues", "attempt", "on_timeout", "no_restart", "scope", "done",
                 "trying")

    def __init__(self, req: Any, queues: list[WaitQueue], attempt: Callable[[], Any],
                 on_timeout: Callable[[], Any] | None, no_restart: bool) -> None:
        self.req, self.queues, self.attempt = req, queues, attempt
        self.on_timeout, self.no_restart = on_timeout, no_restart
        self.scope: trio.CancelScope | None = None
        self.done = False
        self.trying = False

    def __call__(self, mask: int) -> None:
        """A wake: try again; answer if it worked.  A wake from inside our own
        attempt (it changed the object and woke its queue -- a semop, a message
        sent) is not a second attempt: that would apply the call twice."""
        if self.done or self.trying:
            return
        self.trying = True
        try:
            answer = self.attempt()
        except SysError as exc:
            self._finish()
            self.req.fail(exc.errno)
            return
        finally:
            self.trying = False
        if answer is not None:
            self._finish()
            self.req.reply(answer)

    def cancel(self, err: int) -> None:
        if self.done:
            return
        self._finish()
        if self.no_restart and err >= ERESTART_FIRST:
            err = errno.EINTR
        self.req.fail(err)

    def timed_out(self) -> None:
        if self.done:
            return
        self._finish()
        assert self.on_timeout is not None
        try:
            answer = self.on_timeout()
        except SysError as exc:
            self.req.fail(exc.errno)
            return
        self.req.reply(answer)

    async def _timer(self, deadline: float) -> None:
        if self.done:
            return
        with trio.CancelScope() as scope:
            self.scope = scope
            await trio.sleep_until(deadline)
            self.timed_out()

    def _finish(self) -> None:
        self.done = True
        for q in self.queues:
            q.unsubscribe(self)
        self.req.server.unblock(self.req.caller, self)
        if self.scope is not None:
            self.scope.cancel()


def park(req: Any, queues: Iterable[WaitQueue], attempt: Callable[[], Any], *,
         deadline: float = math.inf, on_timeout: Callable[[], Any] | None = None,
         no_restart: bool = False) -> None:
    """Park ``req`` until ``attempt()`` answers, the deadline passes (answered
    ``on_timeout()``) or a signal comes; returns None for the handler to return.
    ``attempt`` is tried once more after subscribing, so no wake is lost."""
    waiter = Parked(req, list(dict.fromkeys(queues)), attempt, on_timeout, no_restart)
    for q in waiter.queues:
        q.subscribe(waiter)
    req.server.block(req.caller, waiter)
    waiter(0)                                       # a change just before we subscribed
    if waiter.done:
        return None
    if deadline < math.inf:
        nursery = req.server.nursery
        if nursery is None:
            waiter.cancel(errno.EAGAIN)
            return None
        nursery.start_soon(waiter._timer, deadline)
    return None
