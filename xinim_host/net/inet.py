"""AF_INET / AF_INET6 sockets: a real host socket each (gVisor's hostinet model).

NET holds the host socket non-blocking.  A call that would block parks (see
``parked.py``); a watcher task waits for the host fd (``trio.lowlevel``) and
marks the socket changed, which retries parked calls and tells the VFS the new
readiness.  A watcher runs only for a direction the socket is not ready in, so an
idle readable socket costs nothing.
"""
from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios
from typing import TYPE_CHECKING, Any

import trio

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.readiness import POLLERR, POLLHUP, POLLIN, POLLOUT
from . import hostcalls as h
from .parked import park
from .sockbase import (MSG_DONTWAIT, MSG_TRUNC, SO_ERROR,
                       SO_RCVTIMEO, SO_SNDTIMEO, SOCK_DGRAM, SOCK_STREAM, SOL_SOCKET, Sock,
                       timeval_opt)

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import NetServer

_INT = struct.Struct("<i")
IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IP, IPPROTO_IPV6 = 6, 17, 0, 41
SOCK_TYPES = (SOCK_STREAM, SOCK_DGRAM)
# what programs may pass to the host in send/recv flags
_SEND_FLAGS = 0x1 | 0x4 | 0x80 | 0x8000 | 0x800     # OOB DONTROUTE EOR MORE CONFIRM
_RECV_FLAGS = 0x1 | 0x2 | 0x20 | 0x100 | 0x2000    # OOB PEEK TRUNC WAITALL ERRQUEUE
MSG_ERRQUEUE = 0x2000
UDP_MAX = 65507


def _port(sockaddr: bytes) -> int:
    return struct.unpack_from(">H", sockaddr, 2)[0] if len(sockaddr) >= 4 else 0


def check_proto(family: int, type_: int, proto: int) -> None:
    """What the host socket may be: TCP, UDP, ICMP datagrams (ping) and raw IP (as
    the host allows the user: EPERM, EPROTONOSUPPORT come from the host)."""
    if type_ not in (SOCK_STREAM, SOCK_DGRAM, 3):
        raise SysError(errno.ESOCKTNOSUPPORT if type_ in (4, 5, 10) else errno.EINVAL)
    if type_ == SOCK_STREAM and proto not in (0, IPPROTO_TCP):
        raise SysError(errno.EPROTONOSUPPORT)


class InetSock(Sock):
    def __init__(self, srv: "NetServer", family: int, type_: int, proto: int,
                 creds: tuple[int, int, int], fd: int = -1) -> None:
        super().__init__(srv, type_, proto, creds)
        self.family = family
        self.fd = fd if fd >= 0 else h.socket(family, type_, proto)
        self.watch: dict[int, trio.CancelScope] = {}     # POLLIN/POLLOUT -> its watcher
        self.listening = False
        self.local = b""            # connected: both ends' sockaddrs (the loopback shortcut)
        self.remote = b""

    # --- the loopback shortcut ------------------------------------------------------
    # Both ends of a loopback connection are NET's: what one end does is what wakes
    # the other (data, room, a connection for a listener, the end), so NET marks the
    # other end changed at once instead of waiting for the host fd's readiness to
    # come round through the event loop.
    def _connected(self) -> None:
        try:
            self.local = h.sockname(self.fd)
            self.remote = h.sockname(self.fd, peer=True)
        except SysError:
            return
        self.srv.inet_ends[self.local] = self
        port = _port(self.remote)
        for lsn in self.srv.inet_listeners.get((self.family, port), ()):
            self.srv.touch(lsn)
        self._touch_peer()

    def _touch_peer(self) -> None:
        if self.remote:
            peer = self.srv.inet_ends.get(self.remote)
            if peer is not None and peer is not self:
                self.srv.touch(peer)

    # --- readiness -------------------------------------------------------------------
    def mask(self) -> int:
        if self.closed:
            return POLLHUP
        return h.revents(self.fd)

    def after_push(self, mask: int) -> None:
        """Watch the host fd for what is not ready now (and parked calls wait for)."""
        if self.closed:
            return
        want_in = not mask & (POLLIN | POLLERR | POLLHUP)
        want_out = not mask & (POLLOUT | POLLERR | POLLHUP)
        if want_in and (self.watched or self.readers):
            self.start_watch(POLLIN)
        if want_out and (self.watched or self.writers):
            self.start_watch(POLLOUT)

    def start_watch(self, what: int) -> None:
        if what in self.watch or self.srv.nursery is None or self.closed:
            return
        scope = trio.CancelScope()
        self.watch[what] = scope
        self.srv.nursery.start_soon(self._watcher, what, scope)

    async def _watcher(self, what: int, scope: trio.CancelScope) -> None:
        with scope:
            if self.closed or self.fd < 0:
                return
            try:
                if what == POLLIN:
                    await trio.lowlevel.wait_readable(self.fd)
                else:
                    await trio.lowlevel.wait_writable(self.fd)
            except (trio.ClosedResourceError, trio.BusyResourceError, OSError, ValueError):
                return
        if self.watch.get(what) is scope:
            del self.watch[what]
        if not self.closed and not scope.cancelled_caught:
            self.srv.touch(self)
            self.srv.flush()

    # --- calls -------------------------------------------------------------------------
    def _park(self, req: "Request", queue: list, attempt: Any, what: int,
              timeout: float) -> None:
        park(self.srv, req, queue, attempt, timeout)
        self.start_watch(what)
        return None

    def bind(self, key: int, addr: bytes) -> int:
        h.bind(self.fd, addr)
        self.srv.touch(self)
        return 0

    def listen(self, backlog: int, creds: tuple[int, int, int]) -> int:
        if self.type != SOCK_STREAM:
            raise SysError(errno.EOPNOTSUPP)
        h.listen(self.fd, min(max(backlog, 0), 4096))
        if not self.listening:
            self.listening = True
            key = (self.family, _port(h.sockname(self.fd)))
            self.srv.inet_listeners.setdefault(key, set()).add(self)
        self.srv.touch(self)
        return 0

    def accept(self, req: "Request", nonblock: bool) -> Any:
        if self.type != SOCK_STREAM:
            raise SysError(errno.EOPNOTSUPP)
        if not self.listening:
            raise SysError(errno.EINVAL)

        def attempt() -> Any:
            if self.closed:
                raise SysError(errno.EBADF)
            try:
                fd, addr = h.accept(self.fd)
            except SysError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return None
                raise
            new = InetSock(self.srv, self.family, self.type, self.proto, self.creds, fd)
            self.srv.add(new)
            self.srv.touch(self, new)
            new._connected()
            return p.NetAddrReply(result=new.id, addr=addr)

        answer = attempt()
        if answer is not None:
            return answer
        if nonblock:
            raise SysError(errno.EAGAIN)
        return self._park(req, self.readers, attempt, POLLIN, self.rcvtimeo)

    def connect(self, req: "Request", key: int, addr: bytes, nonblock: bool,
                creds: tuple[int, int, int]) -> Any:
        try:
            h.connect(self.fd, addr)
            self.srv.touch(self)
            if self.type == SOCK_STREAM:
                self._connected()
            return 0
        except SysError as exc:
            if exc.errno != errno.EINPROGRESS:
                raise
        self.srv.touch(self)
        if self.type == SOCK_STREAM:
            for lsn in self.srv.inet_listeners.get((self.family, _port(addr)), ()):
                self.srv.touch(lsn)       # the listener's accept may go now
        if nonblock:
            raise SysError(errno.EINPROGRESS)

        def attempt() -> Any:
            if self.closed:
                raise SysError(errno.EBADF)
            if not h.revents(self.fd) & (POLLOUT | POLLERR | POLLHUP):
                return None
            err = _INT.unpack(h.getsockopt(self.fd, SOL_SOCKET, SO_ERROR, 4))[0]
            if err:
                raise SysError(err)
            try:          # the host socket leaves "connecting" as a blocking connect would
                h.connect(self.fd, addr)
            except SysError:
                pass
            self._connected()
            return 0

        return self._park(req, self.writers, attempt, POLLOUT, self.sndtimeo or 0.0)

    def sockname(self) -> bytes:
        return h.sockname(self.fd)

    def peername(self) -> bytes:
        return h.sockname(self.fd, peer=True)

    def shut(self, how: int) -> int:
        h.shutdown(self.fd, how)
        self.srv.touch(self)
        self._touch_peer()
        return 0

    def send(self, req: "Request", b: Any, data: bytes, creds: tuple[int, int, int],
             explicit: tuple[int, int, int] | None) -> Any:
        if b.fds or explicit is not None:
            raise SysError(errno.EINVAL)         # no SCM_RIGHTS over IP
        if b.more == p.MORE_FOLLOWS and self.type != SOCK_STREAM:
            part = self.sendparts.setdefault(req.caller, bytearray())
            part += data
            if len(part) > UDP_MAX:
                del self.sendparts[req.caller]
                raise SysError(errno.EMSGSIZE)
            return len(data)
        if req.caller in self.sendparts:
            data = bytes(self.sendparts.pop(req.caller)) + data
        flags = b.flags & _SEND_FLAGS
        addr = b.addr

        def attempt() -> Any:
            if self.closed:
                raise SysError(errno.EBADF)
            try:
                n = h.sendto(self.fd, data, flags, addr)
            except SysError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return None
                raise
            self.srv.touch(self)
            self._touch_peer()
            return n

        answer = attempt()
        if answer is not None:
            return answer
        if b.nonblock or b.flags & MSG_DONTWAIT:
            raise SysError(errno.EAGAIN)
        return self._park(req, self.writers, attempt, POLLOUT, self.sndtimeo)

    def recv(self, req: "Request", b: Any, count: int, out: Any) -> Any:
        flags = b.flags & _RECV_FLAGS
        limit = count if b.grant else p.DATA_MAX
        nowait = b.more == p.MORE_NOWAIT
        dgram = self.type != SOCK_STREAM          # UDP, ICMP, raw: whole datagrams
        caller = req.caller

        def attempt() -> Any:
            if self.closed:
                raise SysError(errno.EBADF)
            try:
                if dgram:
                    data, n, addr = h.recvfrom(self.fd, min(b.count, count, 65536) if b.grant
                                               else min(b.count, 65536), flags | MSG_TRUNC)
                else:
                    data, n, addr = h.recvfrom(self.fd, count, flags & ~MSG_TRUNC)
            except SysError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    if nowait:
                        return p.NetRecvReply(result=0)
                    return None
                raise
            self.srv.touch(self)
            self._touch_peer()                      # room for its sender
            oflags = 0
            if dgram:
                if n > len(data):
                    oflags |= MSG_TRUNC
                first, rest = data[:limit], data[limit:]
                if rest:
                    self.recvleft[caller] = rest
                return out(p.NetRecvReply(result=len(first), total=n, flags=oflags,
                                          left=len(rest), addr=addr, data=first))
            return out(p.NetRecvReply(result=len(data), total=len(data), data=data))

        answer = attempt()
        if answer is not None:
            return answer
        if b.nonblock or b.flags & (MSG_DONTWAIT | MSG_ERRQUEUE):
            raise SysError(errno.EAGAIN)          # an empty error queue never waits
        return self._park(req, self.readers, attempt, POLLIN, self.rcvtimeo)

    def recv_more(self, caller: int, count: int) -> p.NetRecvReply:
        rest = self.recvleft.pop(caller, b"")
        n = min(count, p.DATA_MAX)
        chunk, rest = rest[:n], rest[n:]
        if rest:
            self.recvleft[caller] = rest
        return p.NetRecvReply(result=len(chunk), total=len(chunk), left=len(rest), data=chunk)

    def setopt(self, level: int, name: int, data: bytes) -> int:
        if level == SOL_SOCKET and name in (SO_RCVTIMEO, SO_SNDTIMEO):
            value = timeval_opt(data)
            if name == SO_RCVTIMEO:
                self.rcvtimeo = value
            else:
                self.sndtimeo = value
        h.setsockopt(self.fd, level, name, data)
        self.srv.touch(self)
        return 0

    def getopt(self, level: int, name: int, size: int = 256) -> bytes:
        return h.getsockopt(self.fd, level, name, size)

    def fionread(self) -> int:
        return self._ioctl_int(termios.FIONREAD)

    def outq(self) -> int:
        return self._ioctl_int(termios.TIOCOUTQ)     # SIOCOUTQ

    def _ioctl_int(self, request: int) -> int:
        try:
            return _INT.unpack(fcntl.ioctl(self.fd, request, b"\0\0\0\0"))[0]
        except OSError as exc:
            raise SysError(exc.errno or errno.EINVAL) from None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        srv = self.srv
        if self.local and srv.inet_ends.get(self.local) is self:
            del srv.inet_ends[self.local]
        if self.listening:
            for group in srv.inet_listeners.values():
                group.discard(self)
        for scope in self.watch.values():
            scope.cancel()
        self.watch.clear()
        try:
            trio.lowlevel.notify_closing(self.fd)
        except RuntimeError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.fd = -1
        self._touch_peer()                          # its end: EOF for the other

    def describe_inet(self) -> tuple[bytes, bytes, int]:
        """(local sockaddr, remote sockaddr, TCP state number) for /proc/net/tcp."""
        if self.closed:
            return b"", b"", 7
        local = h.sockname(self.fd)
        try:
            remote = h.sockname(self.fd, peer=True)
        except SysError:
            remote = b""
        if self.type == SOCK_STREAM:
            if self.listening:
                st = 10
            elif remote:
                info = h.getsockopt(self.fd, IPPROTO_TCP, 11, 1)    # TCP_INFO: tcpi_state
                st = info[0] if info else 1
            else:
                st = 7
        else:
            st = 1 if remote else 7
        return local, remote, st



