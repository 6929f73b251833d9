"""NET's handlers: one per request type; each finds the socket and lets it act."""
from __future__ import annotations

import errno
import os
import struct
from typing import TYPE_CHECKING, Any

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.grants import GRANT_READ, GRANT_WRITE
from ..lib.limits import host_sysctl
from . import hostcalls, inet, procnet, unix
from .sockbase import AF_INET, AF_INET6, AF_UNIX, SOCK_STREAM

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import NetServer

_INT = struct.Struct("<i")
FIONREAD, SIOCOUTQ = 0x541B, 0x5411


UNPRIVILEGED_PORT_START = host_sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start", 1024)
# who may ask NET anything: kernels, PM, the VFS (a process's own requests are refused,
# since socket ids are capabilities the VFS hands out)
_SERVERS = frozenset((p.KERNEL_PID, p.PM_PID, p.VFS_PID))


def _trusted(req: "Request") -> None:
    src = req.msg.m_source
    if src not in _SERVERS and not p.is_kernel(src):
        raise SysError(errno.EPERM)


def _creds(req: "Request", b: Any) -> tuple[int, int, int]:
    return (req.caller, b.uid, b.gid)


def _sock(srv: "NetServer", req: "Request", sid: int) -> Any:
    _trusted(req)
    return srv.get(sid)


def do_socket(srv: "NetServer", req: "Request") -> int:
    _trusted(req)
    b = req.msg.body
    if b.domain == AF_UNIX:
        sock = unix.UnixSock(srv, unix.check_type(b.type, b.protocol), b.protocol, _creds(req, b))
    elif b.domain in (AF_INET, AF_INET6):
        inet.check_proto(b.domain, b.type, b.protocol)
        sock = inet.InetSock(srv, b.domain, b.type, b.protocol, _creds(req, b))
    else:
        raise SysError(errno.EAFNOSUPPORT)
    srv.add(sock)
    return sock.id


def do_socketpair(srv: "NetServer", req: "Request") -> p.NetPairReply:
    _trusted(req)
    b = req.msg.body
    if b.domain != AF_UNIX:
        if b.domain in (AF_INET, AF_INET6):      # the socket first (its errno), as Linux
            inet.check_proto(b.domain, b.type, b.protocol)
            os.close(hostcalls.socket(b.domain, b.type, b.protocol))
            raise SysError(errno.EOPNOTSUPP)
        raise SysError(errno.EAFNOSUPPORT)
    a, c = unix.socketpair(srv, unix.check_type(b.type, b.protocol), b.protocol, _creds(req, b))
    srv.add(a)
    srv.add(c)
    return p.NetPairReply(result=a.id, peer=c.id)


def do_bind(srv: "NetServer", req: "Request") -> int:
    b = req.msg.body
    sock = _sock(srv, req, b.sock)
    if len(b.addr) < 2:
        raise SysError(errno.EINVAL)
    family = struct.unpack_from("<H", b.addr)[0]
    if family != sock.family:
        raise SysError(errno.EINVAL if sock.family == AF_UNIX else errno.EAFNOSUPPORT)
    if sock.family != AF_UNIX and b.uid != 0 and len(b.addr) >= 4:
        port = struct.unpack_from(">H", b.addr, 2)[0]
        if 0 < port < UNPRIVILEGED_PORT_START:   # the host socket is NET's: check here
            raise SysError(errno.EACCES)
    return sock.bind(b.key, b.addr)


def do_listen(srv: "NetServer", req: "Request") -> int:
    b = req.msg.body
    return _sock(srv, req, b.sock).listen(b.backlog, _creds(req, b))


def do_accept(srv: "NetServer", req: "Request") -> Any:
    b = req.msg.body
    return _sock(srv, req, b.sock).accept(req, bool(b.nonblock))


def do_connect(srv: "NetServer", req: "Request") -> Any:
    b = req.msg.body
    sock = _sock(srv, req, b.sock)
    if len(b.addr) < 2:
        raise SysError(errno.EINVAL)
    family = struct.unpack_from("<H", b.addr)[0]
    if family != sock.family and not (family == 0 and sock.family != AF_UNIX) \
            and not (family == 0 and sock.type != SOCK_STREAM):
        raise SysError(errno.EINVAL if sock.family == AF_UNIX else errno.EAFNOSUPPORT)
    return sock.connect(req, b.key, b.addr, bool(b.nonblock), _creds(req, b))


def do_name(srv: "NetServer", req: "Request") -> p.NetAddrReply:
    b = req.msg.body
    sock = _sock(srv, req, b.sock)
    return p.NetAddrReply(result=0, addr=sock.peername() if b.peer else sock.sockname())


# the most one request moves through a grant (the kernel asks again for the rest)
GRANT_MAX = 1 << 20


def _grant(srv: "NetServer", req: "Request", access: int) -> Any:
    """The request's grant: made by the kernel that sent it, for this caller and NET."""
    return srv.lattice.grants.check(req.msg.body.grant, req.msg.m_source, req.caller,
                                    srv.pid, access)


def do_send(srv: "NetServer", req: "Request") -> Any:
    b = req.msg.body
    sock = _sock(srv, req, b.sock)
    explicit = (b.cpid, b.cuid, b.cgid) if b.cpid != -1 else None
    data = b.data
    if b.grant:
        g = _grant(srv, req, GRANT_READ)
        want = min(g.size, sock.send_cap())
        data = g.copy_from(0, want)
        # a buffer not all there: EFAULT, nothing sent (Linux copies a unix message,
        # or a stream's first skb, whole before it queues it); TCP sends what came
        if not data and want or len(data) < want and isinstance(sock, unix.UnixSock):
            raise SysError(errno.EFAULT)
    return sock.send(req, b, data, _creds(req, b), explicit)


def do_recv(srv: "NetServer", req: "Request") -> Any:
    b = req.msg.body
    sock = _sock(srv, req, b.sock)
    if not b.grant:
        return sock.recv(req, b, min(b.count, p.DATA_MAX), _as_is)
    g = _grant(srv, req, GRANT_WRITE)
    local = isinstance(sock, unix.UnixSock)

    def into_grant(reply: p.NetRecvReply) -> p.NetRecvReply:
        data = reply.data
        if not data:
            return reply
        n = g.copy_to(0, data)
        # Linux: a copy that faults is EFAULT, not a short read, and an AF_UNIX stream
        # keeps what it could not deliver (unix.py); a host socket's bytes are taken
        # already, so there the part that arrived is the answer
        if not n or n < len(data) and local:
            raise SysError(errno.EFAULT)
        return p.NetRecvReply(result=n, total=reply.total, flags=reply.flags,
                              left=reply.left, cpid=reply.cpid, cuid=reply.cuid,
                              cgid=reply.cgid, addr=reply.addr, fds=reply.fds)

    return sock.recv(req, b, min(g.size, GRANT_MAX), into_grant)


def _as_is(reply: p.NetRecvReply) -> p.NetRecvReply:
    return reply


def do_recv_more(srv: "NetServer", req: "Request") -> Any:
    b = req.msg.body
    return _sock(srv, req, b.sock).recv_more(req.caller, b.count)


def do_shutdown(srv: "NetServer", req: "Request") -> int:
    b = req.msg.body
    return _sock(srv, req, b.sock).shut(b.how)


def do_setopt(srv: "NetServer", req: "Request") -> int:
    b = req.msg.body
    return _sock(srv, req, b.sock).setopt(b.level, b.name, b.data)


def do_getopt(srv: "NetServer", req: "Request") -> p.NetDataReply:
    b = req.msg.body
    sock = _sock(srv, req, b.sock)
    if isinstance(sock, inet.InetSock):
        data = sock.getopt(b.level, b.name, b.size)
    else:
        data = sock.getopt(b.level, b.name)
    return p.NetDataReply(result=len(data), data=data)


def do_ioctl(srv: "NetServer", req: "Request") -> p.NetDataReply:
    b = req.msg.body
    sock = _sock(srv, req, b.sock)
    if b.request == FIONREAD:
        return p.NetDataReply(result=0, data=_INT.pack(sock.fionread()))
    if b.request == SIOCOUTQ:
        return p.NetDataReply(result=0, data=_INT.pack(sock.outq()))
    raise SysError(errno.ENOTTY)


def do_close(srv: "NetServer", req: "Request") -> int:
    _trusted(req)

    sock = srv.socks.get(req.msg.body.sock)
    if sock is not None:
        srv.close_sock(sock)
    return 0


def do_cancel(srv: "NetServer", req: "Request") -> int:
    _trusted(req)
    b = req.msg.body
    return srv.cancel_blocked(b.pid, b.err)


def do_exit(srv: "NetServer", req: "Request") -> int:
    _trusted(req)
    b = req.msg.body
    for sock in srv.socks.values():
        sock.sendparts.pop(b.pid, None)
        sock.recvleft.pop(b.pid, None)
    return srv.cancel_blocked(b.pid, errno.EINTR)


def do_list(srv: "NetServer", req: "Request") -> p.NetDataReply:
    b = req.msg.body
    text = procnet.table(srv, b.what)
    chunk = text[b.offset:b.offset + p.DATA_MAX]
    return p.NetDataReply(result=len(text), data=chunk)


def do_watch(srv: "NetServer", req: "Request") -> int:
    """The VFS's proxy was polled: from now on NET tells it every change of mask."""
    _trusted(req)
    sock = srv.get(req.msg.body.sock)
    sock.watched = True
    mask = sock.mask()
    sock.pushed = mask
    after = getattr(sock, "after_push", None)
    if after is not None:
        after(mask)
    return mask
