"""The host's socket calls on raw sockaddr bytes (libc through ctypes).

Python's ``socket`` turns addresses into tuples; NET passes the program's
sockaddr through unchanged, so it calls libc directly.  Every call is made on a
non-blocking host socket and raises SysError with the host's errno.
"""
from __future__ import annotations

import ctypes
import os
import select

from ..lib.errors import SysError

_libc = ctypes.CDLL(None, use_errno=True)
_c_int, _c_void_p, _c_size_t, _c_ssize_t = ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_ssize_t
_socklen_p = ctypes.POINTER(ctypes.c_uint32)


def _fn(name: str, restype: object, *argtypes: object) -> object:
    f = getattr(_libc, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_socket = _fn("socket", _c_int, _c_int, _c_int, _c_int)
_bind = _fn("bind", _c_int, _c_int, ctypes.c_char_p, ctypes.c_uint32)
_connect = _fn("connect", _c_int, _c_int, ctypes.c_char_p, ctypes.c_uint32)
_listen = _fn("listen", _c_int, _c_int, _c_int)
_accept4 = _fn("accept4", _c_int, _c_int, _c_void_p, _socklen_p, _c_int)
_getsockname = _fn("getsockname", _c_int, _c_int, _c_void_p, _socklen_p)
_getpeername = _fn("getpeername", _c_int, _c_int, _c_void_p, _socklen_p)
_sendto = _fn("sendto", _c_ssize_t, _c_int, ctypes.c_char_p, _c_size_t, _c_int, ctypes.c_char_p,
              ctypes.c_uint32)
_recvfrom = _fn("recvfrom", _c_ssize_t, _c_int, _c_void_p, _c_size_t, _c_int, _c_void_p, _socklen_p)
_setsockopt = _fn("setsockopt", _c_int, _c_int, _c_int, _c_int, ctypes.c_char_p, ctypes.c_uint32)
_getsockopt = _fn("getsockopt", _c_int, _c_int, _c_int, _c_int, _c_void_p, _socklen_p)
_shutdown = _fn("shutdown", _c_int, _c_int, _c_int)

SOCK_NONBLOCK, SOCK_CLOEXEC = os.O_NONBLOCK, 0o2000000
MSG_DONTWAIT, MSG_NOSIGNAL = 0x40, 0x4000
ADDR_MAX = 128


def _check(r: int) -> int:
    if r < 0:
        raise SysError(ctypes.get_errno() or 5)
    return r


def socket(domain: int, type_: int, proto: int) -> int:
    return _check(_socket(domain, type_ | SOCK_NONBLOCK | SOCK_CLOEXEC, proto))


def bind(fd: int, addr: bytes) -> None:
    _check(_bind(fd, addr, len(addr)))


def connect(fd: int, addr: bytes) -> None:
    _check(_connect(fd, addr, len(addr)))


def listen(fd: int, backlog: int) -> None:
    _check(_listen(fd, backlog))


def accept(fd: int) -> tuple[int, bytes]:
    buf = ctypes.create_string_buffer(ADDR_MAX)
    ln = ctypes.c_uint32(ADDR_MAX)
    new = _check(_accept4(fd, buf, ctypes.byref(ln), SOCK_NONBLOCK | SOCK_CLOEXEC))
    return new, buf.raw[:min(ln.value, ADDR_MAX)]


def sockname(fd: int, peer: bool = False) -> bytes:
    buf = ctypes.create_string_buffer(ADDR_MAX)
    ln = ctypes.c_uint32(ADDR_MAX)
    _check((_getpeername if peer else _getsockname)(fd, buf, ctypes.byref(ln)))
    return buf.raw[:min(ln.value, ADDR_MAX)]


def sendto(fd: int, data: bytes, flags: int, addr: bytes = b"") -> int:
    return _check(_sendto(fd, data, len(data), flags | MSG_DONTWAIT | MSG_NOSIGNAL,
                          addr or None, len(addr)))


_SCRATCH = bytearray(1 << 20)      # one receive buffer: NET runs on one thread
_SCRATCH_C = (ctypes.c_char * len(_SCRATCH)).from_buffer(_SCRATCH)
_ABUF = ctypes.create_string_buffer(ADDR_MAX)


def recvfrom(fd: int, count: int, flags: int) -> tuple[bytes, int, bytes]:
    """(data, the datagram's full length with MSG_TRUNC, the sender's address)."""
    if count <= len(_SCRATCH):
        buf = _SCRATCH_C
    else:
        buf = ctypes.create_string_buffer(count)
    ln = ctypes.c_uint32(ADDR_MAX)
    n = _check(_recvfrom(fd, buf, count, flags | MSG_DONTWAIT, _ABUF, ctypes.byref(ln)))
    got = min(n, count)
    data = bytes(memoryview(_SCRATCH)[:got]) if buf is _SCRATCH_C else buf.raw[:got]
    return data, n, _ABUF.raw[:min(ln.value, ADDR_MAX)]


def setsockopt(fd: int, level: int, name: int, value: bytes) -> None:
    _check(_setsockopt(fd, level, name, value, len(value)))


def getsockopt(fd: int, level: int, name: int, size: int) -> bytes:
    size = max(0, min(size, 4096))
    buf = ctypes.create_string_buffer(max(size, 1))
    ln = ctypes.c_uint32(size)
    _check(_getsockopt(fd, level, name, buf, ctypes.byref(ln)))
    return buf.raw[:min(ln.value, size)]


def shutdown(fd: int, how: int) -> None:
    _check(_shutdown(fd, how))


def revents(fd: int) -> int:
    """What the host says about ``fd`` now (poll with a zero timeout)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLOUT | select.POLLPRI | 0x2000)
    for _fd, ev in poller.poll(0):
        return ev
    return 0
