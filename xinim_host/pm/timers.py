"""POSIX timers and ITIMER_REAL: PM owns them and sends their signals.

``timer_create``/``timer_settime``/``timer_gettime``/``timer_getoverrun``/
``timer_delete`` and ``setitimer``/``getitimer``/``alarm`` for ITIMER_REAL all
land here.  Each process keeps its timers in ``Process.timers`` (id ->
:class:`Timer`; ITIMER_REAL under ``TIMER_REAL``).  One task per PM
(:class:`TimerQueue`) sleeps until the earliest armed deadline -- a trio cancel
scope whose deadline moves whenever a timer is armed or disarmed, so nothing
polls -- and sends each expired timer's signal with ``signals.send``, the path a
``kill`` takes: PM's bookkeeping, host delivery, and the parked calls the signal
interrupts (a nanosleep answers EINTR).  A POSIX timer's signal carries the
siginfo Linux gives it (SI_TIMER, the timer id, the overrun and sigev_value),
which glibc's SIGEV_THREAD helper thread needs.

Deadlines are kept on CLOCK_MONOTONIC; an absolute CLOCK_REALTIME/TAI time is
converted when it is set (a later change of the wall clock does not move it).
Timers are not inherited by fork; exec deletes the POSIX timers and keeps
ITIMER_REAL; exit deletes all (Linux).
"""
from __future__ import annotations

import errno
import logging
import math
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from ..lib import protocol as p
from ..lib.errors import SysError
from . import signals
from .proctable import Process
from .signals import SI_TIMER

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import PmServer

log = logging.getLogger(__name__)

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI = 0, 1, 7, 11
CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM = 8, 9
# the clocks a timer may run on (CPU-time clocks are not served: EINVAL)
TIMER_CLOCKS = frozenset({CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI,
                          CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM})
_WALL_CLOCKS = {CLOCK_REALTIME: CLOCK_REALTIME, CLOCK_REALTIME_ALARM: CLOCK_REALTIME,
                CLOCK_TAI: CLOCK_TAI}
TIMER_MAX = 1 << 14           # per process (Linux bounds them by RLIMIT_SIGPENDING)
DELAYTIMER_MAX = (1 << 31) - 1
MIN_PERIOD = 100_000          # ns: the shortest period PM signals at (10,000/s a timer)
SIGALRM = 14
# siginfo_t of a POSIX timer (x86-64): signo, errno, code, pad, si_tid, si_overrun,
# si_value; 128 bytes in all
SIGINFO_TIMER = struct.Struct("<iiiiiiQ")
SIGINFO_SIZE = 128


@dataclass(slots=True, eq=False)
class Timer:
    """A POSIX timer (or ITIMER_REAL/alarm): its clock, signal and next expiry."""

    id: int
    proc: Process
    clock: int
    notify: int
    signo: int
    tid: int = 0              # SIGEV_THREAD_ID: the target thread
    value: int = 0            # sigev_value
    deadline: int = 0         # CLOCK_MONOTONIC ns of the next expiry; 0: disarmed
    interval: int = 0         # ns
    overrun: int = 0          # expiries missed before the last signal

    def left(self, now: int) -> int:
        return max(1, self.deadline - now) if self.deadline else 0


def siginfo(t: Timer) -> bytes:
    return SIGINFO_TIMER.pack(t.signo, 0, SI_TIMER, 0, t.id, t.overrun,
                              t.value).ljust(SIGINFO_SIZE, b"\0")


class TimerQueue:
    """The PM-wide set of armed timers and the one task that fires them."""

    def __init__(self, pm: "PmServer") -> None:
        self.pm = pm
        self.armed: set[Timer] = set()
        self._scope: trio.CancelScope | None = None
        self._running = False

    def arm(self, t: Timer) -> None:
        self.armed.add(t)
        self._reschedule()

    def disarm(self, t: Timer) -> None:
        t.deadline = 0
        if t in self.armed:
            self.armed.discard(t)
            self._reschedule()

    def drop(self, proc: Process, keep_real: bool = False) -> None:
        """``proc``'s timers go (exit; exec keeps ITIMER_REAL)."""
        for tid, t in list(proc.timers.items()):
            if keep_real and tid == p.TIMER_REAL:
                continue
            del proc.timers[tid]
            self.disarm(t)

    def _deadline(self) -> float:
        if not self.armed:
            return math.inf
        first = min(t.deadline for t in self.armed)
        return trio.current_time() + (first - time.monotonic_ns()) / 1e9

    def _reschedule(self) -> None:
        if self._scope is not None:
            self._scope.deadline = self._deadline()
        elif not self._running and self.armed:
            nursery = self.pm.nursery
            if nursery is None:
                log.error("timers armed without a running PM: they will not fire")
                return
            self._running = True
            nursery.start_soon(self._run)

    async def _run(self) -> None:
        try:
            while True:
                with trio.CancelScope(deadline=self._deadline()) as scope:
                    self._scope = scope
                    await trio.sleep_forever()
                self._scope = None
                self.fire_due()
        finally:
            self._scope = None
            self._running = False

    def fire_due(self) -> None:
        now = time.monotonic_ns()
        for t in sorted((t for t in self.armed if t.deadline <= now), key=lambda t: t.deadline):
            if t.interval:
                # at most one signal per MIN_PERIOD: Linux re-arms a periodic timer
                # only once its signal was taken, so a tiny interval cannot flood;
                # the expiries skipped count as overruns
                step = max(t.interval, MIN_PERIOD)
                missed = (now - t.deadline) // step
                t.deadline += (missed + 1) * step
                t.overrun = min((missed + 1) * step // t.interval - 1, DELAYTIMER_MAX)
            else:
                t.overrun = 0
                t.deadline = 0
                self.armed.discard(t)
            self._expire(t)

    def _expire(self, t: Timer) -> None:
        proc = t.proc
        if t.notify == p.SIGEV_NONE or proc.tasks.get(proc.pid) is None:
            return
        task = None
        if t.notify == p.SIGEV_THREAD_ID:
            task = self.pm.table.tasks.get(t.tid)
            if task is None or not task.alive or task.proc is not proc:
                task = None        # the thread is gone: to the process
        if t.id == p.TIMER_REAL:
            signals.send(self.pm, proc, t.signo, task)
        else:
            signals.send(self.pm, proc, t.signo, task, (SI_TIMER, 0, 0), siginfo(t))


# --- the handlers -------------------------------------------------------------------


def _clock_now(clock: int) -> int:
    return time.clock_gettime_ns(_WALL_CLOCKS.get(clock, CLOCK_MONOTONIC))


def do_timer_create(pm: "PmServer", req: "Request") -> int:
    body = req.body
    task = pm.table.live_task(req.caller)
    proc = task.proc
    if body.clock not in TIMER_CLOCKS:
        raise SysError(errno.EINVAL)
    notify = body.notify
    if notify not in (p.SIGEV_SIGNAL, p.SIGEV_NONE, p.SIGEV_THREAD_ID):
        raise SysError(errno.EINVAL)
    if notify != p.SIGEV_NONE and not signals.valid(body.signo):
        raise SysError(errno.EINVAL)
    tid = 0
    if notify == p.SIGEV_THREAD_ID:
        target = pm.table.tasks.get(body.tid)
        if target is None or not target.alive or target.proc is not proc:
            raise SysError(errno.EINVAL)
        tid = body.tid
    if len(proc.timers) >= TIMER_MAX:
        raise SysError(errno.EAGAIN)
    # ids count up per process and wrap (Linux's next_posix_timer_id): a deleted
    # timer's id is not handed out again at once
    timer_id = proc.next_timer
    while timer_id in proc.timers:
        timer_id = (timer_id + 1) & 0x7FFFFFFF
    proc.next_timer = (timer_id + 1) & 0x7FFFFFFF
    proc.timers[timer_id] = Timer(timer_id, proc, body.clock, notify,
                                  body.signo if notify != p.SIGEV_NONE else 0, tid,
                                  timer_id if body.value_is_id else body.value)
    return timer_id


def _timer(pm: "PmServer", req: "Request", create_real: bool = False) -> Timer:
    proc = pm.table.live_task(req.caller).proc
    timer_id = req.body.timer
    t = proc.timers.get(timer_id)
    if t is None:
        if timer_id != p.TIMER_REAL:
            raise SysError(errno.EINVAL)
        t = Timer(p.TIMER_REAL, proc, CLOCK_MONOTONIC, p.SIGEV_SIGNAL, SIGALRM)
        if create_real:
            proc.timers[p.TIMER_REAL] = t
    return t


def _reply(t: Timer, now: int) -> p.ProcTimerReply:
    return p.ProcTimerReply(value_ns=t.left(now), interval_ns=t.interval, overrun=t.overrun)


def do_timer_set(pm: "PmServer", req: "Request") -> p.Payload:
    body = req.body
    if body.value_ns < 0 or body.interval_ns < 0:
        raise SysError(errno.EINVAL)
    t = _timer(pm, req, create_real=True)
    now = time.monotonic_ns()
    old = _reply(t, now)
    queue = pm.timers
    queue.disarm(t)
    t.interval = body.interval_ns if body.value_ns else 0
    t.overrun = 0
    if body.value_ns:
        if body.flags & p.TIMER_ABSTIME:
            t.deadline = now + (body.value_ns - _clock_now(t.clock))
        else:
            t.deadline = now + body.value_ns
        t.deadline = max(t.deadline, 1)
        queue.arm(t)
        if t.deadline <= now:
            queue.fire_due()       # already past: it fires now, as Linux does
    return old


def do_timer_get(pm: "PmServer", req: "Request") -> p.Payload:
    return _reply(_timer(pm, req), time.monotonic_ns())


def do_timer_delete(pm: "PmServer", req: "Request") -> int:
    t = _timer(pm, req)
    if t.proc.timers.pop(t.id, None) is None:
        raise SysError(errno.EINVAL)
    pm.timers.disarm(t)
    return 0
