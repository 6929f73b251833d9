"""Sockets as VFS fds: a proxy io per NET socket, socket inodes, SCM_RIGHTS.

A socket fd is an ordinary entry of the fd table (dup, fork, close-on-exec,
/proc/PID/fd ``socket:[ino]`` and poll work as for any fd).  Its io is a
:class:`SocketIO` naming NET's socket id:

* ``poll`` answers from the readiness mask NET sends whenever the socket's state
  changes (``VfsSockReady``), and that notice wakes the proxy's WaitQueue
  (lib/readiness.py) -- no polling of NET;
* ``read``/``write`` are forwarded to NET (NetRecv/NetSend) and answered when
  NET answers; socket calls proper (sendmsg, accept, ...) do not come here: the
  kernel asks ``VfsSockOf`` for the socket id and talks to NET itself;
* the last close tells NET (NetClose).

SCM_RIGHTS: ``VfsFdsHold`` takes a reference to each passed description under a
token; NET queues the tokens with the message; ``VfsFdsInstall`` puts them in
the receiver's table; ``VfsFdsDrop`` forgets tokens never received.
"""
from __future__ import annotations

import errno
import os
import stat
import struct
import time
from typing import TYPE_CHECKING, Any, Callable

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.grants import GRANT_READ, GRANT_WRITE
from ..lib.ipc import Pending
from ..lib.readiness import POLL_ALWAYS, WaitQueue
from .handlers_common import caller_proc
from .namei import permission
from .pseudofs import PseudoFs

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

SOCKFS_MAGIC = 0x534F434B
SOCKFS_DEV = os.makedev(0, 0x08)
O_CLOEXEC = os.O_CLOEXEC
INSTALL_KEEP = 1          # VfsFdsInstall.flags: MSG_PEEK -- the tokens stay held
W_OK = 2
_FD = struct.Struct("<i")
_TOKEN = struct.Struct("<Q")
FIONREAD, SIOCOUTQ = 0x541B, 0x5411


class SockNode:
    """The inode of a socket (sockfs): what fstat and /proc/PID/fd show."""

    __slots__ = ("ino", "mode", "uid", "gid", "time_ns", "family", "type")

    def __init__(self, ino: int, uid: int, gid: int, family: int = 1, type_: int = 1) -> None:
        self.ino, self.uid, self.gid = ino, uid, gid
        self.family, self.type = family, type_
        self.mode = stat.S_IFSOCK | 0o777
        self.time_ns = time.time_ns()


class SockFs(PseudoFs):
    """The pseudo filesystem socket descriptions live on."""

    kind = "sockfs"
    magic = SOCKFS_MAGIC
    dev = SOCKFS_DEV

    def stat_reply(self, node: SockNode, fresh: bool = True, who: Any = None) -> p.VfsStatReply:
        return p.VfsStatReply(dev=SOCKFS_DEV, ino=node.ino, mode=node.mode, nlink=1,
                              uid=node.uid, gid=node.gid, size=0, blksize=4096,
                              atime_ns=node.time_ns, mtime_ns=node.time_ns,
                              ctime_ns=node.time_ns)

    @staticmethod
    def setattr(node: SockNode, **kw: Any) -> None:
        if kw.get("size") is not None:
            raise SysError(errno.EINVAL)
        if kw.get("mode") is not None:
            node.mode = stat.S_IFSOCK | (kw["mode"] & 0o7777)
        if kw.get("uid") is not None:
            node.uid = kw["uid"]
        if kw.get("gid") is not None:
            node.gid = kw["gid"]


SOCKFS = SockFs()


def _net_call(srv: "VfsServer", req: "Request", body: p.Payload,
              convert: Callable[[Any], Any], sub: Any = None) -> Any:
    """Forward ``body`` to NET; answer ``req`` with ``convert(reply)`` now or later
    (``sub``: the grant made for NET, revoked once NET answered)."""
    try:
        answer = srv.lattice.call(srv.pid, p.NET_PID, body)
    except SysError as exc:
        if sub is not None:
            srv.lattice.grants.revoke(sub)
        srv.log.info("VFS -> NET %s: %s", type(body).__name__, exc)
        raise SysError(errno.ECONNRESET) from None
    if isinstance(answer, Pending):
        answer.add_done_callback(lambda msg: _finish(req, msg, convert, srv, sub))
        return None
    if sub is not None:
        srv.lattice.grants.revoke(sub)
    reply = answer.body
    if reply.error:
        raise SysError(reply.error)
    return convert(reply)


def _finish(req: "Request", msg: p.Message, convert: Callable[[Any], Any],
            srv: Any = None, sub: Any = None) -> None:
    if sub is not None:
        srv.lattice.grants.revoke(sub)
    if req.replied:
        return
    reply = msg.body
    if reply.error:
        req.fail(reply.error)
        return
    try:
        req.reply(convert(reply))
    except SysError as exc:
        req.fail(exc.errno)


def _data(reply: Any) -> p.VfsDataReply:
    return p.VfsDataReply(result=len(reply.data), data=reply.data)


def _count(reply: Any) -> int:
    return reply.result


def _copied(reply: Any) -> p.VfsDataReply:
    """NET copied into the caller's buffer: the count, no data (the kernel's grant
    read takes an empty ``data`` as "done")."""
    if reply.data:                               # a NET that could not use the grant
        return p.VfsDataReply(result=len(reply.data), data=reply.data)
    return p.VfsDataReply(result=reply.result, data=b"")


class SocketIO:
    """The io of a socket's open file description: a proxy for NET's socket."""

    __slots__ = ("srv", "sid", "mask", "wq", "node", "armed")
    seekable = False

    def __init__(self, srv: "VfsServer", sid: int, node: SockNode) -> None:
        self.srv, self.sid, self.node = srv, sid, node
        self.mask = 0
        self.wq = WaitQueue()
        self.armed = False          # NET tells us the mask only once somebody polled

    def read(self, req: "Request", of: Any, count: int, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        more = p.MORE_NOWAIT if req.msg.body.offset == p.READ_MORE else p.MORE_NONE
        body = p.NetRecv(caller=req.caller, sock=self.sid, flags=0,
                         nonblock=int(bool(of.flags & os.O_NONBLOCK)), count=count, more=more)
        return _net_call(self.srv, req, body, _data)

    def write(self, req: "Request", of: Any, data: bytes, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        fp = self.srv.procs.get(req.caller)
        uid, gid = (fp.euid, fp.egid) if fp is not None else (0, 0)
        body = p.NetSend(caller=req.caller, uid=uid, gid=gid, sock=self.sid, flags=0,
                         nonblock=int(bool(of.flags & os.O_NONBLOCK)), more=0, data=data)
        return _net_call(self.srv, req, body, _count)

    # read/write with a grant (the bulk path): the VFS grants NET the same buffer
    # (an indirect grant, as MINIX's), NET copies, the VFS revokes it when NET answered
    def read_grant(self, req: "Request", of: Any, g: Any, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        srv = self.srv
        sub = srv.lattice.grants.grant(srv.pid, req.caller, p.NET_PID, g.mem, g.segs,
                                       GRANT_WRITE)
        more = p.MORE_NOWAIT if req.msg.body.offset == p.READ_MORE else p.MORE_NONE
        body = p.NetRecv(caller=req.caller, sock=self.sid, flags=0,
                         nonblock=int(bool(of.flags & os.O_NONBLOCK)), count=g.size,
                         more=more, grant=sub.gid)
        return _net_call(srv, req, body, _copied, sub)

    def write_grant(self, req: "Request", of: Any, g: Any, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        srv = self.srv
        sub = srv.lattice.grants.grant(srv.pid, req.caller, p.NET_PID, g.mem, g.segs,
                                       GRANT_READ)
        fp = srv.procs.get(req.caller)
        uid, gid = (fp.euid, fp.egid) if fp is not None else (0, 0)
        body = p.NetSend(caller=req.caller, uid=uid, gid=gid, sock=self.sid, flags=0,
                         nonblock=int(bool(of.flags & os.O_NONBLOCK)), more=0,
                         grant=sub.gid)
        return _net_call(srv, req, body, _count, sub)

    # splice between a pipe and this socket: the bytes go through NET as a send or
    # a receive would (result: a VfsCopyReply now, or None when NET answers later)
    def splice_from_pipe(self, req: "Request", of: Any, pipe: Any, count: int,
                         nonblock: bool) -> Any:
        """What ``pipe`` holds (it has some) sent on the socket; only what NET took
        leaves the pipe."""
        data = b"".join(pipe.chunks)[pipe.head:pipe.head + min(count, pipe.size, p.DATA_MAX)]
        fp = self.srv.procs.get(req.caller)
        uid, gid = (fp.euid, fp.egid) if fp is not None else (0, 0)
        body = p.NetSend(caller=req.caller, uid=uid, gid=gid, sock=self.sid, flags=0,
                         nonblock=int(nonblock or bool(of.flags & os.O_NONBLOCK)), more=0,
                         data=data)

        def sent(reply: Any) -> p.VfsCopyReply:
            n = min(reply.result, pipe.size)
            if n > 0:
                pipe._take(n)
                pipe.pump()
            return p.VfsCopyReply(result=max(reply.result, 0), in_off=-1, out_off=-1)
        return _net_call(self.srv, req, body, sent)

    def splice_to_pipe(self, req: "Request", of: Any, pipe: Any, count: int,
                       nonblock: bool) -> Any:
        """At most the room ``pipe`` has (it has some) received from the socket."""
        room = pipe.capacity - pipe.size
        body = p.NetRecv(caller=req.caller, sock=self.sid, flags=0,
                         nonblock=int(nonblock or bool(of.flags & os.O_NONBLOCK)),
                         count=min(count, room, p.DATA_MAX), more=p.MORE_NONE)

        def received(reply: Any) -> p.VfsCopyReply:
            if reply.data:
                pipe._put(reply.data)             # a writer that came meanwhile: still one piece
                pipe.pump()
            return p.VfsCopyReply(result=len(reply.data), in_off=-1, out_off=-1)
        return _net_call(self.srv, req, body, received)

    def seek(self, of: Any, offset: int, whence: int) -> int:
        raise SysError(errno.ESPIPE)

    def poll(self, of: Any, events: int) -> int:
        if not self.armed:
            self._arm()
        return self.mask & (events | POLL_ALWAYS)

    def _arm(self) -> None:
        """The first poll: ask NET for the mask now and every change from now on
        (NET spends nothing on the readiness of sockets nobody polls)."""
        self.armed = True
        srv = self.srv
        if (srv.pid, p.NET_PID) not in srv.lattice.send_channels:
            return
        try:
            answer = srv.lattice.call(srv.pid, p.NET_PID, p.NetWatch(sock=self.sid))
        except SysError as exc:
            srv.log.info("VFS -> NET watch of socket %d: %s", self.sid, exc)
            return
        if isinstance(answer, Pending):            # NET busy: the answer wakes the waiters
            answer.add_done_callback(self._armed)
        else:
            self._armed(answer)

    def _armed(self, msg: p.Message) -> None:
        reply = msg.body
        if not reply.error:
            self.ready(reply.result)

    def waitq(self, of: Any) -> WaitQueue:
        return self.wq

    def ready(self, mask: int) -> None:
        """NET's notice: the socket's readiness is now ``mask``."""
        self.mask = mask
        self.wq.wake(mask)

    def ioctl(self, req: "Request", of: Any, request: int, data: bytes) -> tuple[int, bytes]:
        """FIONREAD / SIOCOUTQ: NET knows (asked as procfs asks PM: a busy NET makes
        the handler run again with the answer)."""
        if request not in (FIONREAD, SIOCOUTQ):
            raise SysError(errno.ENOTTY)
        reply = self.srv.peers.ask(p.NET_PID, p.NetIoctl(caller=req.caller, sock=self.sid,
                                                         request=request))
        if reply is None:
            raise SysError(errno.ENOTTY)
        if reply.error:
            raise SysError(reply.error)
        return 0, reply.data

    def open(self, req: Any, of: Any) -> None:
        pass

    def close(self, of: Any) -> None:
        srv = self.srv
        if srv.sockets.get(self.sid) is self:
            del srv.sockets[self.sid]
        self.wq.wake(POLL_ALWAYS)
        if (srv.pid, p.NET_PID) not in srv.lattice.send_channels:
            return
        try:
            srv.lattice.call(srv.pid, p.NET_PID, p.NetClose(sock=self.sid))
        except SysError as exc:
            srv.log.info("VFS -> NET close of socket %d: %s", self.sid, exc)


def _socket_of(of: Any) -> SocketIO:
    if not isinstance(of.io, SocketIO):
        raise SysError(errno.ENOTSOCK)
    return of.io


def new_socket_file(srv: "VfsServer", sid: int, flags: int, uid: int, gid: int,
                    family: int = 1, type_: int = 1) -> Any:
    node = SockNode(sid, uid, gid, family, type_)
    io = SocketIO(srv, sid, node)
    srv.sockets[sid] = io
    return srv.open_file(SOCKFS, node, io, os.O_RDWR | (flags & os.O_NONBLOCK))


# --- handlers ------------------------------------------------------------------------

def _from_kernel(req: "Request") -> None:
    if not p.is_kernel(req.msg.m_source):
        raise SysError(errno.EPERM)


def do_sock_fd(srv: "VfsServer", req: "Request") -> int:
    _from_kernel(req)
    b = req.msg.body
    fp = caller_proc(srv, req)
    fd = fp.lowest_free()
    of = new_socket_file(srv, b.sock, b.flags, fp.euid, fp.egid, b.family, b.type)
    return fp.install(of, fd, bool(b.flags & O_CLOEXEC))


def do_sock_of(srv: "VfsServer", req: "Request") -> p.VfsSockReply:
    b = req.msg.body
    fp = caller_proc(srv, req)
    of = fp.io_file(b.fd)
    io = _socket_of(of)
    return p.VfsSockReply(result=io.sid, flags=of.flags, family=io.node.family,
                          type=io.node.type)


def socket_key(fs: Any, node: Any) -> int:
    st = fs.stat_reply(node)
    return ((st.dev & 0xFFFFFF) << 40 | (st.ino & ((1 << 40) - 1))) + 1


def do_sock_bind(srv: "VfsServer", req: "Request") -> int:
    from .handlers_path import _may_create, _new_name
    b = req.msg.body
    fp = caller_proc(srv, req)
    try:
        nd = _new_name(srv, fp, -100, b.path)
    except SysError as exc:
        raise SysError(errno.EADDRINUSE if exc.errno == errno.EEXIST else exc.errno) from None
    fs, dnode = _may_create(fp, nd)
    node = fs.mknod(dnode, nd.last, stat.S_IFSOCK | (0o777 & ~fp.umask), fp.euid, fp.egid, 0)
    if node is None:                      # a filesystem whose mknod answers nothing
        node = srv.namei.lookup(fp, -100, b.path, follow=False).loc.node
    return socket_key(fs, node)


def do_sock_lookup(srv: "VfsServer", req: "Request") -> int:
    b = req.msg.body
    fp = caller_proc(srv, req)
    loc = srv.namei.lookup(fp, -100, b.path, follow=True).loc
    fs, node = loc
    if fs.mode(node) & 0o170000 != stat.S_IFSOCK:
        raise SysError(errno.ECONNREFUSED)
    permission(fp, fs, node, W_OK)
    return socket_key(fs, node)


def do_sock_ready(srv: "VfsServer", req: "Request") -> None:
    """NET's one-way notice (sent with ``send_nowait``): not answered.  Anyone else
    is refused (EPERM, answered: such a sender may be waiting)."""
    if req.msg.m_source != p.NET_PID:
        raise SysError(errno.EPERM)
    b = req.msg.body
    io = srv.sockets.get(b.sock)
    if io is not None:            # NET tells only proxies that asked (NetWatch)
        io.ready(b.mask)
    return None


def do_fds_hold(srv: "VfsServer", req: "Request") -> p.VfsFdsReply:
    _from_kernel(req)
    b = req.msg.body
    fp = caller_proc(srv, req)
    if len(b.data) % 4:
        raise SysError(errno.EINVAL)
    ofs = [fp.get(fd) for (fd,) in _FD.iter_unpack(b.data)]     # EBADF before any is held
    out = bytearray()
    for of in ofs:
        of.refs += 1
        srv.next_token += 1
        srv.inflight[srv.next_token] = of
        out += _TOKEN.pack(srv.next_token)
    return p.VfsFdsReply(result=len(ofs), data=bytes(out))


def do_fds_install(srv: "VfsServer", req: "Request") -> p.VfsFdsReply:
    _from_kernel(req)
    b = req.msg.body
    fp = caller_proc(srv, req)
    if len(b.data) % 8:
        raise SysError(errno.EINVAL)
    keep = bool(b.flags & INSTALL_KEEP)
    out = bytearray()
    for (token,) in _TOKEN.iter_unpack(b.data):
        of = srv.inflight.get(token)
        if of is None:
            continue
        try:
            fd = fp.lowest_free()
        except SysError:
            if not keep:                    # EMFILE: Linux drops the rest (MSG_CTRUNC)
                srv.drop(srv.inflight.pop(token))
            continue
        if keep:
            of.refs += 1
        else:
            del srv.inflight[token]
        fp.install(of, fd, bool(b.flags & O_CLOEXEC))
        out += _FD.pack(fd)
    return p.VfsFdsReply(result=len(out) // 4, data=bytes(out))


def do_fds_drop(srv: "VfsServer", req: "Request") -> int:
    src = req.msg.m_source
    if src != p.NET_PID and not p.is_kernel(src):
        raise SysError(errno.EPERM)
    b = req.msg.body
    if len(b.data) % 8:
        raise SysError(errno.EINVAL)
    n = 0
    for (token,) in _TOKEN.iter_unpack(b.data):
        of = srv.inflight.pop(token, None)
        if of is not None:
            srv.drop(of)
            n += 1
    return n
