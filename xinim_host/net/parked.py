"""Calls waiting on a socket (MINIX SUSPEND): retried whenever the socket changes.

A parked call keeps a re-runnable ``attempt``: it answers the call (a result or
a reply payload), raises SysError, or returns None for "not yet".  Whatever
changes a socket marks it dirty; the server retries its parked calls then.  A
signal (NET_CANCEL), the caller's exit (NET_EXIT), the socket's close or an
SO_RCVTIMEO/SO_SNDTIMEO deadline take a call back.
"""
from __future__ import annotations

import errno
import math
from typing import TYPE_CHECKING, Any, Callable

import trio

from ..lib.errors import SysError

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import NetServer

Attempt = Callable[[], Any]


class Parked:
    __slots__ = ("req", "queue", "attempt", "scope", "srv")

    def __init__(self, srv: "NetServer", req: "Request", queue: list, attempt: Attempt) -> None:
        self.srv, self.req, self.queue, self.attempt = srv, req, queue, attempt
        self.scope: trio.CancelScope | None = None

    def _done(self) -> None:
        try:
            self.queue.remove(self)
        except ValueError:
            pass
        self.srv.unblock(self.req.caller, self)
        if self.scope is not None:
            self.scope.cancel()

    def retry(self) -> bool:
        """Try again; True when the call got its answer."""
        try:
            answer = self.attempt()
        except SysError as exc:
            self._done()
            self.req.fail(exc.errno)
            return True
        except Exception:
            self.srv.log.exception("parked socket call failed")
            self._done()
            self.req.fail(errno.EIO)
            return True
        if answer is None:
            return False
        self._done()
        self.req.reply(answer)
        return True

    def cancel(self, err: int) -> None:
        if self.req.replied:
            return
        self._done()
        self.req.fail(err)


def park(srv: "NetServer", req: "Request", queue: list, attempt: Attempt,
         timeout: float = 0.0, timeout_err: int = errno.EAGAIN) -> None:
    """Park ``req`` on ``queue``; returns None (the handler's "don't reply yet")."""
    p = Parked(srv, req, queue, attempt)
    queue.append(p)
    srv.block(req.caller, p)
    if timeout > 0 and srv.nursery is not None:
        srv.nursery.start_soon(_deadline, p, timeout, timeout_err)
    return None


def now_or_park(srv: "NetServer", req: "Request", queue: list, attempt: Attempt,
                nonblock: bool, timeout: float = 0.0) -> Any:
    """``attempt()``'s answer if it has one now; else EAGAIN for a non-blocking call,
    or the call parks on ``queue`` (None, the handler's "don't reply yet")."""
    answer = attempt()
    if answer is not None:
        return answer
    if nonblock:
        raise SysError(errno.EAGAIN)
    return park(srv, req, queue, attempt, timeout)


async def _deadline(p: Parked, timeout: float, err: int) -> None:
    with trio.CancelScope() as scope:
        p.scope = scope
        if p.req.replied:
            return
        await trio.sleep(timeout if math.isfinite(timeout) else math.inf)
        p.cancel(err)


def retry_all(queue: list) -> bool:
    """Retry every call parked on ``queue`` in order; True if any finished."""
    done = False
    for p in list(queue):
        if p.retry():
            done = True
    return done
