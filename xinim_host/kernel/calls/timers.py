"""POSIX timers, setitimer/getitimer and alarm: PM owns the timers and sends their
signals (``pm/timers.py``); these handlers copy the structures in and out.

ITIMER_VIRTUAL and ITIMER_PROF count the host task's CPU time, which only the
host kernel knows: those run on the host (the "delegate, then host" route).
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any, Generator

from ...lib import linux_abi as abi
from ...lib import protocol as p
from ...lib.errors import SysError
from .base import HostCall, Op, SyscallContext, SyscallGen, ask, c_int
from .procs import xinim_tid

if TYPE_CHECKING:
    from ..kernel import Kernel

ITIMER_REAL = 0
ITIMERSPEC = struct.Struct("<qqqq")      # it_interval, it_value (timespecs)
ITIMERVAL = struct.Struct("<qqqq")       # it_interval, it_value (timevals)
# struct sigevent (x86-64, 64 bytes): sigev_value, sigev_signo, sigev_notify,
# then the union whose first int is _tid (SIGEV_THREAD_ID)
SIGEVENT = struct.Struct("<Qiii")
NS = 10**9
TIME_MAX = (1 << 63) - 1


def _pm(body: p.Payload) -> Generator[Op, Any, Any]:
    return (yield from ask(p.PM_PID, body))


def _ns(sec: int, frac: int, unit: int) -> int:
    """A timespec/timeval as ns; EINVAL for a negative or out-of-range part."""
    if sec < 0 or not 0 <= frac < NS // unit:
        raise SysError(errno.EINVAL)
    return min(sec * NS + frac * unit, TIME_MAX)


def _split(ns: int, unit: int) -> tuple[int, int]:
    return ns // NS, (ns % NS) // unit


def sys_timer_create(k: "Kernel", c: SyscallContext) -> SyscallGen:
    clock, sevp, out = c_int(c.args[0]), c.args[1], c.args[2]
    if sevp:
        value, signo, notify, tid = SIGEVENT.unpack(c.mem.read(sevp, SIGEVENT.size))
        if notify == p.SIGEV_THREAD:
            notify = p.SIGEV_SIGNAL          # the kernel signals; glibc runs the thread
        elif notify == p.SIGEV_THREAD_ID:
            tid = yield from xinim_tid(c, tid)   # glibc's helper thread: its host tid
        body = p.ProcTimerCreate(caller=c.tid, clock=clock, notify=notify, signo=signo,
                                 tid=tid, value=value)
    else:                                    # SIGALRM, with the timer's id as si_value
        body = p.ProcTimerCreate(caller=c.tid, clock=clock, value_is_id=1)
    timer_id = (yield from _pm(body)).result
    try:
        c.mem.write(out, abi.INT.pack(timer_id))
    except SysError:
        yield from _pm(p.ProcTimerDelete(caller=c.tid, timer=timer_id))
        raise
    return 0


def _timer_id(c: SyscallContext) -> int:
    timer_id = c_int(c.args[0])
    if timer_id < 0:
        raise SysError(errno.EINVAL)
    return timer_id


def _write_spec(c: SyscallContext, addr: int, reply: Any) -> None:
    isec, insec = _split(reply.interval_ns, 1)
    vsec, vnsec = _split(reply.value_ns, 1)
    c.mem.write(addr, ITIMERSPEC.pack(isec, insec, vsec, vnsec))


def sys_timer_settime(k: "Kernel", c: SyscallContext) -> SyscallGen:
    timer_id, flags, new, old = _timer_id(c), c_int(c.args[1]), c.args[2], c.args[3]
    isec, insec, vsec, vnsec = ITIMERSPEC.unpack(c.mem.read(new, ITIMERSPEC.size))
    interval, value = _ns(isec, insec, 1), _ns(vsec, vnsec, 1)
    reply = yield from _pm(p.ProcTimerSet(caller=c.tid, timer=timer_id,
                                          flags=flags & p.TIMER_ABSTIME, value_ns=value,
                                          interval_ns=interval))
    if old:
        _write_spec(c, old, reply)
    return 0


def sys_timer_gettime(k: "Kernel", c: SyscallContext) -> SyscallGen:
    reply = yield from _pm(p.ProcTimerGet(caller=c.tid, timer=_timer_id(c)))
    _write_spec(c, c.args[1], reply)
    return 0


def sys_timer_getoverrun(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _pm(p.ProcTimerGet(caller=c.tid, timer=_timer_id(c)))).overrun


def sys_timer_delete(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _pm(p.ProcTimerDelete(caller=c.tid, timer=_timer_id(c)))).result


# --- setitimer / getitimer / alarm: ITIMER_REAL is PM's -------------------------------


def _write_itimerval(c: SyscallContext, addr: int, reply: Any) -> None:
    isec, iusec = _split(reply.interval_ns, 1000)
    vsec, vusec = _split(reply.value_ns, 1000)
    if reply.value_ns and not (vsec or vusec):
        vusec = 1                    # still armed: never reads as 0 (Linux rounds up)
    c.mem.write(addr, ITIMERVAL.pack(isec, iusec, vsec, vusec))


def sys_setitimer(k: "Kernel", c: SyscallContext) -> SyscallGen:
    which, new, old = c_int(c.args[0]), c.args[1], c.args[2]
    if which != ITIMER_REAL:
        return (yield HostCall(None))    # CPU-time timers: the host task's
    if new:
        isec, iusec, vsec, vusec = ITIMERVAL.unpack(c.mem.read(new, ITIMERVAL.size))
        interval, value = _ns(isec, iusec, 1000), _ns(vsec, vusec, 1000)
    else:
        interval = value = 0             # Linux: a NULL new value disarms
    reply = yield from _pm(p.ProcTimerSet(caller=c.tid, timer=p.TIMER_REAL, value_ns=value,
                                          interval_ns=interval))
    if old:
        _write_itimerval(c, old, reply)
    return 0


def sys_getitimer(k: "Kernel", c: SyscallContext) -> SyscallGen:
    which = c_int(c.args[0])
    if which != ITIMER_REAL:
        return (yield HostCall(None))
    reply = yield from _pm(p.ProcTimerGet(caller=c.tid, timer=p.TIMER_REAL))
    _write_itimerval(c, c.args[1], reply)
    return 0


def sys_alarm(k: "Kernel", c: SyscallContext) -> SyscallGen:
    seconds = c.args[0] & 0xFFFFFFFF
    reply = yield from _pm(p.ProcTimerSet(caller=c.tid, timer=p.TIMER_REAL,
                                          value_ns=seconds * NS))
    sec, usec = _split(reply.value_ns, 1000)
    # Linux alarm_setitimer: the old time in seconds, rounded to nearest, never 0 if armed
    if (not sec and usec) or usec >= 500000:
        sec += 1
    return sec
