"""Calls the kernel serves itself: the console, clocks, sleeps, credentials, lattice IPC."""
from __future__ import annotations

import errno
import os
import time
from typing import TYPE_CHECKING, Callable

from ...lib import linux_abi as abi
from ...lib import protocol as p
from ...lib.errors import SysError
from .base import Await, SyscallContext, SyscallGen, c_int

if TYPE_CHECKING:
    from ..kernel import Kernel

# --- served in the kernel ---------------------------------------------------------

def sys_debug_write(k: "Kernel", c: SyscallContext) -> SyscallGen:
    buf, count = c.args[0], c.args[1]
    data = c.mem.read(buf, min(count, 1 << 20))
    return k.console.write(data)
    yield  # noqa: unreachable -- makes this a generator like every handler


def sys_monotonic_ns(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return time.monotonic_ns()
    yield


def sys_time(k: "Kernel", c: SyscallContext) -> SyscallGen:
    now = time.time_ns() // 10**9
    if c.args[0]:
        c.mem.write(c.args[0], abi.POINTER.pack(now))
    return now
    yield


def sys_gettimeofday(k: "Kernel", c: SyscallContext) -> SyscallGen:
    if c.args[0]:
        now = time.time_ns()
        c.mem.write(c.args[0], abi.TIMEVAL.pack(now // 10**9, now % 10**9 // 1000))
    if c.args[1]:
        c.mem.write(c.args[1], bytes(8))  # struct timezone: UTC
    return 0
    yield


# clocks Linux cannot sleep on (no nsleep): THREAD_CPUTIME, MONOTONIC_RAW, the COARSE ones
_NO_NSLEEP = {3, 4, 5, 6}
_CLOCKS = {0, 1, 2, 3, 4, 5, 6, 7}  # REALTIME .. BOOTTIME (host clocks; CPU clocks are per task)


def sys_clock_gettime(k: "Kernel", c: SyscallContext) -> SyscallGen:
    clock = c_int(c.args[0])
    if clock not in _CLOCKS:
        raise SysError(errno.EINVAL)
    now = time.clock_gettime_ns(clock)
    c.mem.write(c.args[1], abi.TIMESPEC.pack(now // 10**9, now % 10**9))
    return 0
    yield


def sys_nanosleep(k: "Kernel", c: SyscallContext) -> SyscallGen:
    sec, nsec = abi.TIMESPEC.unpack(c.mem.read(c.args[0], abi.TIMESPEC.size))
    if sec < 0 or not 0 <= nsec < 10**9:
        raise SysError(errno.EINVAL)
    yield Await(lambda: k.sleep(sec + nsec / 1e9))
    return 0


def cred_getter(field: str) -> Callable[["Kernel", SyscallContext], SyscallGen]:
    def handler(k: "Kernel", c: SyscallContext) -> SyscallGen:
        return getattr(c, field)
        yield
    handler.__name__ = f"sys_get{field}"
    return handler


def sys_lattice_connect(k: "Kernel", c: SyscallContext) -> SyscallGen:
    k.process_endpoint(c.pid)
    k.lattice.connect_local(c.pid, c_int(c.args[0]))
    return 0
    yield


def sys_lattice_send(k: "Kernel", c: SyscallContext) -> SyscallGen:
    data = c.mem.read(c.args[1], min(c.args[2], p.HEADER.size + 2 * p.DATA_MAX))
    _, m_type, _ = p.decode_header(data)
    k.lattice.send_bytes(c.pid, c_int(c.args[0]), m_type, data)
    return 0
    yield


def sys_lattice_recv(k: "Kernel", c: SyscallContext) -> SyscallGen:
    from ...lib.ipc import IpcFlags
    flags = IpcFlags(c.args[2] & 1)
    k.process_endpoint(c.pid)
    delivery = yield Await(lambda: k.lattice.recv(c.pid, flags))
    if isinstance(delivery, p.ProtocolError):
        raise SysError(delivery.errno)
    data = p.encode(delivery.body, delivery.m_source, delivery.req_id)
    if len(data) > c.args[1]:
        raise SysError(errno.EMSGSIZE)
    c.mem.write(c.args[0], data)
    return len(data)


def sys_lattice_close(k: "Kernel", c: SyscallContext) -> SyscallGen:
    dst = c_int(c.args[0])
    if k.lattice.send_channels.pop((c.pid, dst), None) is None:
        raise SysError(errno.ENOTCONN)
    return 0
    yield




def sys_clock_getres(k: "Kernel", c: SyscallContext) -> SyscallGen:
    clock = c_int(c.args[0])
    if clock not in _CLOCKS:
        raise SysError(errno.EINVAL)
    if c.args[1]:
        res = round(time.clock_getres(clock) * 10**9)
        c.mem.write(c.args[1], abi.TIMESPEC.pack(res // 10**9, res % 10**9))
    return 0
    yield


TIMER_ABSTIME = 1


def sys_clock_nanosleep(k: "Kernel", c: SyscallContext) -> SyscallGen:
    clock, flags = c_int(c.args[0]), c_int(c.args[1])
    if clock not in _CLOCKS:
        raise SysError(errno.EINVAL)
    if clock in _NO_NSLEEP:
        raise SysError(errno.EOPNOTSUPP)
    sec, nsec = abi.TIMESPEC.unpack(c.mem.read(c.args[2], abi.TIMESPEC.size))
    if sec < 0 or not 0 <= nsec < 10**9:
        raise SysError(errno.EINVAL)
    wait = sec + nsec / 1e9
    if flags & TIMER_ABSTIME:
        wait = max(0.0, wait - time.clock_gettime(clock))
    yield Await(lambda: k.sleep(wait))
    return 0


def sys_uname(k: "Kernel", c: SyscallContext) -> SyscallGen:
    host = os.uname()
    # programs (and LTP) check for "Linux": the system's name is in the version
    fields = (b"Linux", k.hostname, host.release.encode(),
              f"#1 XINIM hosted on Linux {host.version}".encode(), host.machine.encode(),
              b"(none)")
    c.mem.write(c.args[0], b"".join(f[:abi.UTSNAME_FIELD - 1].ljust(abi.UTSNAME_FIELD, b"\0")
                                    for f in fields))
    return 0
    yield
