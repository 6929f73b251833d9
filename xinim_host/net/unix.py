"""AF_UNIX sockets, served by NET itself: stream, datagram and seqpacket.

Data waits in the receiver's queue as records (data, sender's address, SCM_RIGHTS
tokens, credentials).  A stream read joins records until one with ancillary data
(Linux does not merge those either); datagram and seqpacket reads take one record.
Path names are socket inodes the VFS makes in the ramfs (NET knows them by the
inode's key); abstract names (a leading NUL) live in NET, one table per system.
"""
from __future__ import annotations

import collections
import errno
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.limits import host_sysctl
from ..lib.readiness import (POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP, POLLRDNORM,
                             POLLWRBAND, POLLWRNORM)
from .parked import now_or_park
from .sockbase import (AF_UNIX, MSG_DONTWAIT, MSG_PEEK, MSG_TRUNC,
                       RCV_SHUTDOWN, SEND_SHUTDOWN, SO_ACCEPTCONN, SO_BROADCAST, SO_DEBUG,
                       SO_DOMAIN, SO_DONTROUTE, SO_ERROR, SO_KEEPALIVE, SO_LINGER,
                       SO_OOBINLINE, SO_PASSCRED, SO_PASSSEC, SO_PEERCRED, SO_PEEK_OFF,
                       SO_PROTOCOL, SO_RCVBUF, SO_RCVLOWAT, SO_RCVTIMEO, SO_REUSEADDR,
                       SO_REUSEPORT, SO_SNDBUF, SO_SNDLOWAT, SO_SNDTIMEO, SO_TYPE, SOCK_DGRAM,
                       SOCK_SEQPACKET, SOCK_STREAM, SOL_SOCKET, Sock, int_opt, timeval_bytes,
                       timeval_opt)

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import NetServer

_INT = struct.Struct("<i")
_UCRED = struct.Struct("<iII")
_FAMILY = struct.Struct("<H")
SUN_PATH_OFF = 2
SUN_PATH_MAX = 108


WMEM_MAX = host_sysctl("/proc/sys/net/core/wmem_max", 212992)
RMEM_MAX = host_sysctl("/proc/sys/net/core/rmem_max", 212992)
DEFAULT_BUF = 212992
SOCK_MIN_SNDBUF, SOCK_MIN_RCVBUF = 4608, 2304
MAX_DGRAM_QLEN = host_sysctl("/proc/sys/net/unix/max_dgram_qlen", 10)
NOBODY = (0, 65534, 65534)           # SO_PEERCRED of a socket with no peer: pid 0, overflow ids
ST_UNCONN, ST_LISTEN, ST_CONN = "unconnected", "listening", "connected"


@dataclass(slots=True, eq=False)
class Record:
    """One queued message of an AF_UNIX socket: data, sender, passed fds and credentials."""

    data: bytes
    addr: bytes = b""                       # the sender's sockaddr (datagrams)
    fds: tuple[int, ...] = ()               # SCM_RIGHTS: VFS tokens
    creds: tuple[int, int, int] | None = None


def family_only() -> bytes:
    return _FAMILY.pack(AF_UNIX)


def parse_addr(addr: bytes) -> tuple[str, bytes]:
    """("path" | "abstract" | "unnamed", the canonical sockaddr)."""
    if len(addr) < SUN_PATH_OFF or len(addr) > SUN_PATH_OFF + SUN_PATH_MAX:
        raise SysError(errno.EINVAL)
    if _FAMILY.unpack_from(addr)[0] != AF_UNIX:
        raise SysError(errno.EINVAL)
    name = addr[SUN_PATH_OFF:]
    if not name:
        return "unnamed", family_only()
    if name[0] == 0:
        return "abstract", addr
    path = name.split(b"\0", 1)[0]
    return "path", family_only() + path + b"\0"


class UnixSock(Sock):
    family = AF_UNIX

    def __init__(self, srv: "NetServer", type_: int, proto: int,
                 creds: tuple[int, int, int]) -> None:
        super().__init__(srv, type_, proto, creds)
        self.state = ST_UNCONN
        self.name = b""                      # canonical sockaddr once bound
        self.key = 0                         # the socket inode of a path name
        self.peer: UnixSock | None = None
        self.rq: collections.deque[Record] = collections.deque()
        self.head = 0                        # bytes of rq[0] a stream read already took
        self.rbytes = 0
        self.backlog: collections.deque[UnixSock] = collections.deque()
        self.max_backlog = 0
        self.listener: UnixSock | None = None    # an embryo's listening socket
        self.shutdown = 0
        self.error = 0
        self.passcred = False
        self.peercred: tuple[int, int, int] | None = None
        self.sndbuf = DEFAULT_BUF
        self.rcvbuf = DEFAULT_BUF
        self.opts: dict[int, int] = {}       # options kept and answered, no effect here
        self.connected_dgram = False

    @property
    def connection_based(self) -> bool:
        return self.type != SOCK_DGRAM

    # --- readiness (Linux unix_poll / unix_dgram_poll) ----------------------------------
    def _peer_full(self, peer: "UnixSock") -> bool:
        if self.type == SOCK_DGRAM:
            return len(peer.rq) >= max(MAX_DGRAM_QLEN, 1) and peer.peer is not self \
                or peer.rbytes >= peer.rcvbuf
        return peer.rbytes >= peer.rcvbuf

    def mask(self) -> int:
        m = 0
        if self.error:
            m |= POLLERR
        if self.shutdown == RCV_SHUTDOWN | SEND_SHUTDOWN:
            m |= POLLHUP
        if self.shutdown & RCV_SHUTDOWN:
            m |= POLLRDHUP | POLLIN | POLLRDNORM
        if self.rq or self.backlog:
            m |= POLLIN | POLLRDNORM
        if self.connection_based and self.state == ST_UNCONN:
            m |= POLLHUP
        if self.state == ST_LISTEN:
            return m
        peer = self.peer
        if peer is None or peer.closed or not self._peer_full(peer):
            m |= POLLOUT | POLLWRNORM | POLLWRBAND
        return m

    # --- names -------------------------------------------------------------------
    def bind(self, key: int, addr: bytes) -> int:
        kind, canon = parse_addr(addr)
        if self.name:
            raise SysError(errno.EINVAL)
        srv = self.srv
        if kind == "unnamed":
            canon = srv.autobind_name()
            kind = "abstract"
        if kind == "abstract":
            if canon in srv.abstract:
                raise SysError(errno.EADDRINUSE)
            srv.abstract[canon] = self
        elif kind == "path":
            if not key:
                return 0                     # checked: the VFS makes the inode next
            if key in srv.paths:
                raise SysError(errno.EADDRINUSE)
            srv.paths[key] = self
            self.key = key
        self.name = canon
        srv.touch(self)
        return 0

    def _find(self, key: int, addr: bytes) -> "UnixSock":
        kind, canon = parse_addr(addr)
        srv = self.srv
        if kind == "abstract":
            other = srv.abstract.get(canon)
        elif kind == "path":
            other = srv.paths.get(key)
        else:
            raise SysError(errno.EINVAL)
        if other is None or other.closed:
            raise SysError(errno.ECONNREFUSED)
        if other.type != self.type:
            raise SysError(errno.EPROTOTYPE)
        return other

    def sockname(self) -> bytes:
        return self.name or family_only()

    def peername(self) -> bytes:
        peer = self.peer
        if peer is None or (self.connection_based and self.state != ST_CONN):
            raise SysError(errno.ENOTCONN)
        return peer.name or family_only()

    # --- connections ---------------------------------------------------------------
    def listen(self, backlog: int, creds: tuple[int, int, int]) -> int:
        if not self.connection_based:
            raise SysError(errno.EOPNOTSUPP)
        if self.state == ST_CONN or not self.name:
            raise SysError(errno.EINVAL)
        self.max_backlog = max(0, min(backlog if backlog >= 0 else 4096, 4096))
        if self.state != ST_LISTEN:
            self.state = ST_LISTEN
            self.peercred = creds
        self.srv.touch(self)
        return 0

    def connect(self, req: "Request", key: int, addr: bytes, nonblock: bool,
                creds: tuple[int, int, int]) -> Any:
        if len(addr) >= 2 and _FAMILY.unpack_from(addr)[0] == 0 and not self.connection_based:
            if self.peer is not None:                # AF_UNSPEC: dissolve the association
                self.peer = None
                self.srv.touch(self)
            return 0
        kind, canon = parse_addr(addr)
        if kind == "unnamed":
            raise SysError(errno.EINVAL)
        if not self.connection_based:
            other = self._find(key, addr)
            if other.peer is not None and other.peer is not self and not other.peer.closed:
                raise SysError(errno.EPERM)
            self.peer = other
            self.srv.touch(self)
            return 0
        if self.state == ST_CONN:
            raise SysError(errno.EISCONN)
        if self.state == ST_LISTEN:
            raise SysError(errno.EINVAL)
        listener = self._find(key, addr)
        if listener.state != ST_LISTEN:
            raise SysError(errno.ECONNREFUSED)

        def attempt() -> Any:
            if self.closed or self.state == ST_CONN:
                raise SysError(errno.EISCONN if self.state == ST_CONN else errno.EBADF)
            if listener.closed or listener.state != ST_LISTEN:
                raise SysError(errno.ECONNREFUSED)
            if len(listener.backlog) > listener.max_backlog:
                return None
            self._join(listener, creds)
            return 0

        return now_or_park(self.srv, req, listener.writers, attempt, nonblock, self.sndtimeo)

    def _join(self, listener: "UnixSock", creds: tuple[int, int, int]) -> None:
        embryo = UnixSock(self.srv, self.type, self.proto, listener.creds)
        self.srv.add(embryo)
        embryo.state = self.state = ST_CONN
        embryo.name = listener.name
        embryo.peer, self.peer = self, embryo
        embryo.peercred = creds
        embryo.passcred = listener.passcred
        embryo.listener = listener
        self.peercred = listener.peercred
        listener.backlog.append(embryo)
        self.srv.touch(self, listener, embryo)

    def accept(self, req: "Request", nonblock: bool) -> Any:
        if not self.connection_based:
            raise SysError(errno.EOPNOTSUPP)
        if self.state != ST_LISTEN:
            raise SysError(errno.EINVAL)

        def attempt() -> Any:
            if self.closed:
                raise SysError(errno.EBADF)
            if self.state != ST_LISTEN:
                raise SysError(errno.EINVAL)
            if not self.backlog:
                return None
            embryo = self.backlog.popleft()
            embryo.listener = None
            self.srv.touch(self)
            peer = embryo.peer
            return p.NetAddrReply(result=embryo.id,
                                  addr=peer.name if peer is not None and peer.name
                                  else family_only())

        return now_or_park(self.srv, req, self.readers, attempt, nonblock, self.rcvtimeo)

    def shut(self, how: int) -> int:
        if how not in (0, 1, 2):
            raise SysError(errno.EINVAL)
        mode = (RCV_SHUTDOWN, SEND_SHUTDOWN, RCV_SHUTDOWN | SEND_SHUTDOWN)[how]
        if self.connection_based and self.state != ST_CONN:
            raise SysError(errno.ENOTCONN)
        self.shutdown |= mode
        peer = self.peer
        if peer is not None and self.connection_based:
            peer_mode = (SEND_SHUTDOWN if mode & RCV_SHUTDOWN else 0) | \
                (RCV_SHUTDOWN if mode & SEND_SHUTDOWN else 0)
            peer.shutdown |= peer_mode
            self.srv.touch(peer)
        self.srv.touch(self)
        return 0

    # --- data ----------------------------------------------------------------------
    def send_cap(self) -> int:
        # a stream send takes up to 1 MiB at once when the receiver has any room (the
        # buffer limit is a bound on waiting, as Linux's is on memory); a record all
        return 1 << 20 if self.type == SOCK_STREAM else max(self.sndbuf, 65536)

    def send(self, req: "Request", b: Any, data: bytes, creds: tuple[int, int, int],
             explicit: tuple[int, int, int] | None) -> Any:
        srv = self.srv
        if b.more == p.MORE_FOLLOWS:               # one part of a bigger record
            part = self.sendparts.setdefault(req.caller, bytearray())
            part += data
            if len(part) > max(self.sndbuf - 32, 4096) and self.type != SOCK_STREAM:
                del self.sendparts[req.caller]
                raise SysError(errno.EMSGSIZE)
            return len(data)
        if req.caller in self.sendparts:
            data = bytes(self.sendparts.pop(req.caller)) + data
        nonblock = bool(b.nonblock or b.flags & MSG_DONTWAIT)
        if self.type == SOCK_DGRAM:
            return self._send_dgram(req, b, data, creds, explicit, nonblock)
        if self.type == SOCK_STREAM and b.addr:      # Linux unix_stream_sendmsg
            raise SysError(errno.EISCONN if self.state == ST_CONN else errno.EOPNOTSUPP)
        if self.state != ST_CONN or self.peer is None:
            if self.shutdown & SEND_SHUTDOWN:
                raise SysError(errno.EPIPE)
            raise SysError(errno.ENOTCONN)
        if self.type == SOCK_SEQPACKET and len(data) > self.sndbuf - 32:
            raise SysError(errno.EMSGSIZE)
        fds = srv.tokens_of(b.fds)

        def attempt() -> Any:
            peer = self.peer
            if self.closed:
                raise SysError(errno.EBADF)
            if self.shutdown & SEND_SHUTDOWN or peer is None or peer.closed \
                    or peer.shutdown & RCV_SHUTDOWN:
                raise SysError(errno.EPIPE)
            if not data and self.type == SOCK_STREAM:
                if fds:                        # nothing queued, its fds with it (Linux)
                    srv.drop_tokens(fds)
                return 0
            room = peer.rcvbuf - peer.rbytes
            if room <= 0 and (peer.rq or len(data) > 0):
                return None
            peer._queue(Record(data, b"", fds, self._creds_for(peer, creds, explicit)))
            return len(data)

        return now_or_park(srv, req, self.writers, attempt, nonblock, self.sndtimeo)

    def _creds_for(self, peer: "UnixSock", creds: tuple[int, int, int],
                   explicit: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if explicit is not None:
            return explicit
        if peer.passcred or self.passcred:
            return creds
        return None

    def _send_dgram(self, req: "Request", b: Any, data: bytes, creds: tuple[int, int, int],
                    explicit: tuple[int, int, int] | None, nonblock: bool) -> Any:
        srv = self.srv
        if b.addr:
            target = self._find(b.key, b.addr)
        else:
            target = self.peer
            if target is None:
                raise SysError(errno.ENOTCONN)
        if len(data) > self.sndbuf - 32:
            raise SysError(errno.EMSGSIZE)
        if self.shutdown & SEND_SHUTDOWN:
            raise SysError(errno.EPIPE)
        if self.passcred and not self.name:
            self.bind(0, family_only())           # Linux autobinds a passcred sender
        fds = srv.tokens_of(b.fds)

        def attempt() -> Any:
            if target.closed:
                if target is self.peer:
                    self.peer = None
                raise SysError(errno.ECONNREFUSED)
            if target.peer is not None and target.peer is not self and not target.peer.closed:
                raise SysError(errno.EPERM)
            if target.shutdown & RCV_SHUTDOWN:
                raise SysError(errno.EPIPE)
            if target.rq and (len(target.rq) >= max(MAX_DGRAM_QLEN, 1) or
                              target.rbytes + len(data) > target.rcvbuf):
                return None
            target._queue(Record(data, self.name, fds,
                                 self._creds_for(target, creds, explicit)))
            return len(data)

        return now_or_park(srv, req, target.writers, attempt, nonblock, self.sndtimeo)

    def _queue(self, rec: Record) -> None:
        self.rq.append(rec)
        self.rbytes += len(rec.data)
        self.srv.touch(self)

    def recv(self, req: "Request", b: Any, count: int, out: Any) -> Any:
        srv = self.srv
        if self.state == ST_LISTEN:
            raise SysError(errno.EINVAL)
        if self.type == SOCK_STREAM and self.state != ST_CONN:
            raise SysError(errno.EINVAL)
        flags = b.flags
        nowait = b.more == p.MORE_NOWAIT
        limit = count if b.grant else p.DATA_MAX      # one message, or all the grant takes

        def attempt() -> Any:
            if self.closed:
                raise SysError(errno.EBADF)
            if self.rq:
                if self.type == SOCK_STREAM:
                    front = self.rq[0]
                    fds, creds = (front.fds if self.head == 0 else ()), front.creds
                    taken = self._take_stream(count, flags, nowait)
                    try:
                        answer = out(taken)
                    except SysError:
                        # nothing reached the caller's buffer: a stream keeps it queued
                        # (Linux copies before it consumes); a datagram is gone, as there
                        if not flags & MSG_PEEK:
                            self._unread(taken.data, fds if taken.fds else (), creds)
                        raise
                    return answer
                return out(self._take_record(req.caller, min(b.count, count) if b.grant
                                             else b.count, flags, limit))
            if nowait:
                return p.NetRecvReply(result=0)
            if self.error:
                err, self.error = self.error, 0
                srv.touch(self)
                raise SysError(err)
            if self.shutdown & RCV_SHUTDOWN:
                return p.NetRecvReply(result=0)
            if self.type == SOCK_SEQPACKET and self.state != ST_CONN:
                raise SysError(errno.ENOTCONN)
            return None

        return now_or_park(srv, req, self.readers, attempt,
                           bool(b.nonblock or flags & MSG_DONTWAIT), self.rcvtimeo)

    def _take_stream(self, count: int, flags: int, nowait: bool) -> p.NetRecvReply:
        peek = flags & MSG_PEEK
        out: list[bytes] = []
        got = 0
        first = self.rq[0]
        if nowait and (first.fds or first.creds is not None) and self.head == 0:
            return p.NetRecvReply(result=0)        # its own read gets the ancillary data
        head = self.head
        for i, rec in enumerate(self.rq):
            if i and (rec.fds or rec.creds != first.creds or first.fds):
                break
            avail = len(rec.data) - (head if i == 0 else 0)
            start = head if i == 0 else 0
            n = min(avail, count - got)
            out.append(rec.data[start:start + n])
            got += n
            if got >= count:
                break
        data = b"".join(out)
        fds = first.fds if self.head == 0 else ()
        creds = first.creds
        if not peek:
            left = len(data)
            if fds:
                first.fds = ()
            while left:
                rec = self.rq[0]
                avail = len(rec.data) - self.head
                if left >= avail:
                    self.rq.popleft()
                    self.head = 0
                    left -= avail
                else:
                    self.head += left
                    left = 0
            if self.rq and not self.rq[0].data and not self.rq[0].fds:
                self.rq.popleft()                    # an empty record that carried nothing
            self.rbytes -= len(data)
            self._touch_writers()
        return self._reply(data, len(data), 0, b"", fds, creds)

    def _unread(self, data: bytes, fds: tuple[int, ...],
                creds: tuple[int, int, int] | None) -> None:
        """Put back the front of the stream a receive took but could not deliver."""
        if not data and not fds:
            return
        if self.head:                                  # the rest of a half-read record
            rec = self.rq[0]
            self.rq[0] = Record(rec.data[self.head:], rec.addr, rec.fds, rec.creds)
            self.head = 0
        self.rq.appendleft(Record(data, b"", fds, creds))
        self.rbytes += len(data)
        self.srv.touch(self)

    def _take_record(self, caller: int, count: int, flags: int,
                     limit: int = p.DATA_MAX) -> p.NetRecvReply:
        rec = self.rq[0]
        if not flags & MSG_PEEK:
            self.rq.popleft()
            self.rbytes -= len(rec.data)
            self._touch_writers()
        data = rec.data
        total = len(data)
        out_flags = 0
        if count < total:
            out_flags |= MSG_TRUNC
            data = data[:count]
        first = data[:limit]
        rest = data[limit:]
        if rest:
            self.recvleft[caller] = rest
        fds = rec.fds
        if flags & MSG_PEEK and fds:
            fds = self.srv.dup_tokens(fds)
        return self._reply(first, total, out_flags, rec.addr, fds, rec.creds, len(rest))

    def _reply(self, data: bytes, total: int, flags: int, addr: bytes, fds: tuple[int, ...],
               creds: tuple[int, int, int] | None, left: int = 0) -> p.NetRecvReply:
        cp = cu = cg = 0
        if creds is None and self.passcred:
            creds = (0, 65534, 65534)             # Linux: no creds sent -> nobody
        if creds is not None:
            flags |= p.RECV_HAS_CREDS
            cp, cu, cg = creds
        return p.NetRecvReply(result=len(data), total=total, flags=flags, left=left,
                              cpid=cp, cuid=cu, cgid=cg, addr=addr,
                              fds=b"".join(struct.pack("<Q", t) for t in fds), data=data)

    def recv_more(self, caller: int, count: int) -> p.NetRecvReply:
        rest = self.recvleft.pop(caller, b"")
        chunk, rest = rest[:min(count, p.DATA_MAX)], rest[min(count, p.DATA_MAX):]
        if rest:
            self.recvleft[caller] = rest
        return p.NetRecvReply(result=len(chunk), total=len(chunk), left=len(rest), data=chunk)

    def _touch_writers(self) -> None:
        srv = self.srv
        srv.touch(self)
        if self.peer is not None:             # a stream writer parks on its own socket
            srv.touch(self.peer)
        # datagram senders park on the receiver's writers queue: retried by touch(self)

    def outq(self) -> int:
        """SIOCOUTQ: what this end sent that its peer has not read yet."""
        peer = self.peer
        return peer.rbytes if peer is not None and not peer.closed and self.connection_based \
            else 0

    def fionread(self) -> int:
        if self.type == SOCK_STREAM:
            return self.rbytes                  # unread bytes (what a read took is out)
        return len(self.rq[0].data) if self.rq else 0

    # --- options ---------------------------------------------------------------------
    def setopt(self, level: int, name: int, data: bytes) -> int:
        if level != SOL_SOCKET:
            raise SysError(errno.EOPNOTSUPP)
        if name in (SO_RCVTIMEO, SO_SNDTIMEO):
            value = timeval_opt(data)
            if name == SO_RCVTIMEO:
                self.rcvtimeo = value
            else:
                self.sndtimeo = value
            return 0
        if name == SO_LINGER:
            if len(data) < 8:
                raise SysError(errno.EINVAL)
            self.opts[name] = int.from_bytes(data[:8], "little")
            return 0
        value = int_opt(data)
        if name == SO_SNDBUF:
            self.sndbuf = max(min(max(value, 0), WMEM_MAX) * 2, SOCK_MIN_SNDBUF)
        elif name == SO_RCVBUF:
            self.rcvbuf = max(min(max(value, 0), RMEM_MAX) * 2, SOCK_MIN_RCVBUF)
        elif name == SO_PASSCRED:
            self.passcred = bool(value)
        elif name in (SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_BROADCAST, SO_DEBUG,
                      SO_DONTROUTE, SO_OOBINLINE, SO_PASSSEC, SO_RCVLOWAT, SO_SNDLOWAT,
                      SO_PEEK_OFF):
            self.opts[name] = value if name in (SO_RCVLOWAT, SO_PEEK_OFF) else int(bool(value))
        elif name in (SO_TYPE, SO_ERROR, SO_PEERCRED, SO_ACCEPTCONN, SO_DOMAIN, SO_PROTOCOL):
            raise SysError(errno.ENOPROTOOPT)
        else:
            raise SysError(errno.ENOPROTOOPT)
        self.srv.touch(self)
        return 0

    def getopt(self, level: int, name: int) -> bytes:
        if level != SOL_SOCKET:
            raise SysError(errno.EOPNOTSUPP)
        if name == SO_PEERCRED:
            return _UCRED.pack(*(self.peercred or NOBODY))
        if name in (SO_RCVTIMEO, SO_SNDTIMEO):
            return timeval_bytes(self.rcvtimeo if name == SO_RCVTIMEO else self.sndtimeo)
        if name == SO_LINGER:
            return self.opts.get(name, 0).to_bytes(8, "little")
        if name == SO_ERROR:
            err, self.error = self.error, 0
            return _INT.pack(err)
        values = {SO_TYPE: self.type, SO_SNDBUF: self.sndbuf, SO_RCVBUF: self.rcvbuf,
                  SO_PASSCRED: int(self.passcred), SO_DOMAIN: AF_UNIX, SO_PROTOCOL: 0,
                  SO_ACCEPTCONN: int(self.state == ST_LISTEN), SO_RCVLOWAT: 1}
        if name in values:
            return _INT.pack(values[name])
        if name in (SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_BROADCAST, SO_DEBUG,
                    SO_DONTROUTE, SO_OOBINLINE, SO_PASSSEC, SO_SNDLOWAT):
            return _INT.pack(self.opts.get(name, 1 if name == SO_SNDLOWAT else 0))
        if name == SO_PEEK_OFF:
            return _INT.pack(self.opts.get(name, -1))
        raise SysError(errno.ENOPROTOOPT)

    # --- the end -----------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        srv = self.srv
        if self.name and srv.abstract.get(self.name) is self:
            del srv.abstract[self.name]
        if self.key and srv.paths.get(self.key) is self:
            del srv.paths[self.key]
        for embryo in list(self.backlog):        # connections never accepted
            srv.close_sock(embryo)
        self.backlog.clear()
        if self.listener is not None:
            try:
                self.listener.backlog.remove(self)
            except ValueError:
                pass
        peer = self.peer
        if peer is not None and self.connection_based and not peer.closed:
            peer.shutdown = RCV_SHUTDOWN | SEND_SHUTDOWN
            if self.rq or self.listener is not None:
                peer.error = errno.ECONNRESET
            srv.touch(peer)
        tokens = [t for rec in self.rq for t in rec.fds]
        self.rq.clear()
        self.rbytes = 0
        if tokens:
            srv.drop_tokens(tokens)
        srv.touch(self)

    def describe(self) -> tuple[int, int, int, bytes]:
        """(flags, type, st, path) for /proc/net/unix."""
        st = {ST_UNCONN: 1, ST_LISTEN: 1, ST_CONN: 3}[self.state]
        flags = 0x10000 if self.state == ST_LISTEN else 0
        name = self.name[SUN_PATH_OFF:]
        if name.endswith(b"\0") and name[:1] != b"\0":
            name = name[:-1]
        if name[:1] == b"\0":
            name = b"@" + name[1:]
        return flags, self.type, st, name


def socketpair(srv: "NetServer", type_: int, proto: int,
               creds: tuple[int, int, int]) -> tuple[UnixSock, UnixSock]:
    a = UnixSock(srv, type_, proto, creds)
    b = UnixSock(srv, type_, proto, creds)
    a.peer, b.peer = b, a
    a.state = b.state = ST_CONN
    a.peercred = b.peercred = creds
    return a, b


def check_type(type_: int, proto: int) -> int:
    """The type a new AF_UNIX socket gets (Linux unix_create: SOCK_RAW is SOCK_DGRAM)."""
    if proto not in (0, AF_UNIX):
        raise SysError(errno.EPROTONOSUPPORT)
    if type_ == 3:
        return SOCK_DGRAM
    if type_ not in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET):
        raise SysError(errno.ESOCKTNOSUPPORT)
    return type_
