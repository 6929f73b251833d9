"""What every NET socket has: id, type, creds, options, parked calls, readiness."""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from ..lib.errors import SysError
from ..lib.readiness import POLLIN, POLLOUT
from .parked import retry_all

if TYPE_CHECKING:
    from .server import NetServer

SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_RDM, SOCK_SEQPACKET = 1, 2, 3, 4, 5
AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 0, 1, 2, 10, 16
SOL_SOCKET = 1
SO_DEBUG, SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE, SO_BROADCAST = 1, 2, 3, 4, 5, 6
SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_OOBINLINE, SO_LINGER = 7, 8, 9, 10, 13
SO_REUSEPORT, SO_PASSCRED, SO_PEERCRED, SO_RCVLOWAT, SO_SNDLOWAT = 15, 16, 17, 18, 19
SO_RCVTIMEO, SO_SNDTIMEO, SO_ACCEPTCONN, SO_PROTOCOL, SO_DOMAIN = 20, 21, 30, 38, 39
SO_PASSSEC, SO_PEEK_OFF = 34, 42
MSG_OOB, MSG_PEEK, MSG_DONTROUTE, MSG_CTRUNC, MSG_TRUNC = 0x1, 0x2, 0x4, 0x8, 0x20
MSG_DONTWAIT, MSG_EOR, MSG_WAITALL, MSG_NOSIGNAL, MSG_MORE = 0x40, 0x80, 0x100, 0x4000, 0x8000
MSG_CMSG_CLOEXEC, MSG_ERRQUEUE = 0x40000000, 0x2000
RCV_SHUTDOWN, SEND_SHUTDOWN = 1, 2
_INT = struct.Struct("<i")
_TIMEVAL = struct.Struct("<qq")


def int_opt(data: bytes) -> int:
    if len(data) < 4:
        raise SysError(errno.EINVAL)
    return _INT.unpack_from(data)[0]


def timeval_opt(data: bytes) -> float:
    """SO_RCVTIMEO/SO_SNDTIMEO's struct timeval -> seconds (0: none)."""
    if len(data) < _TIMEVAL.size:
        raise SysError(errno.EINVAL)
    sec, usec = _TIMEVAL.unpack_from(data)
    if usec < 0 or usec >= 1_000_000:
        raise SysError(errno.EDOM)
    if sec < 0:
        return 0.0
    return sec + usec / 1e6


def timeval_bytes(seconds: float) -> bytes:
    sec = int(seconds)
    return _TIMEVAL.pack(sec, int(round((seconds - sec) * 1e6)))


class Sock:
    """Base of a NET socket."""

    family = AF_UNSPEC

    def __init__(self, srv: "NetServer", type_: int, proto: int, creds: tuple[int, int, int]) -> None:
        self.srv = srv
        self.id = srv.new_id()
        self.type = type_
        self.proto = proto
        self.creds = creds                  # (pid, uid, gid) of the creator
        self.ino = self.id                  # socket:[ino] in /proc
        self.readers: list[Any] = []        # parked recv/accept
        self.writers: list[Any] = []        # parked send/connect
        self.pushed = -1                    # the mask VFS was last told
        self.watched = False                # VFS asked for readiness (someone polled)
        self.closed = False
        self.rcvtimeo = 0.0
        self.sndtimeo = 0.0
        self.sendparts: dict[int, bytearray] = {}   # pid -> a record being sent in parts
        self.recvleft: dict[int, bytes] = {}        # pid -> the rest of a big datagram

    # what each kind provides
    def send_cap(self) -> int:
        """The most one send request takes in (the kernel sends the rest next)."""
        return 1 << 20

    def mask(self) -> int:
        return POLLIN | POLLOUT

    def fionread(self) -> int:
        return 0

    def outq(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def kick(self) -> None:
        """Retry parked calls (something changed)."""
        retry_all(self.readers)
        retry_all(self.writers)
