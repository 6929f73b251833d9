"""Socket calls: the kernel resolves the fd at the VFS, then talks to NET.

Why the kernel and not the VFS: a socket call carries addresses, ancillary data
and several buffers the kernel copies in and out anyway; asking the VFS once for
the socket id (``VfsSockOf``: ENOTSOCK/EBADF come from there) and then NET
directly costs one hop less per message than forwarding every call through the
VFS, and keeps SCM_RIGHTS a kernel-orchestrated pair of VFS requests around the
NET one.  Plain read/write on a socket fd still go to the VFS, which forwards
them to NET (docs/net.md).

Data moves in messages of at most DATA_MAX: a stream send is several NET sends;
a datagram bigger than one message is sent in parts (``MORE_FOLLOWS``) and
received with ``NetRecvMore``.
"""
from __future__ import annotations

import errno
import os
import struct
import time
from typing import TYPE_CHECKING, Any, Generator

from ...lib import protocol as p
from ...lib.errors import SysError
from ...lib.grants import GRANT_READ, GRANT_WRITE, GrantTable, Segment, skip
from ...lib.limits import host_sysctl
from ...lib.usermem import FlatMemory, UserMemory
from .base import Op, Sendrec, SyscallContext, SyscallGen, ask, ask_granted, c_int

if TYPE_CHECKING:
    from ..kernel import Kernel

AF_UNIX, AF_INET, AF_INET6, AF_MAX = 1, 2, 10, 46
SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET = 1, 2, 5
SOCK_NONBLOCK, SOCK_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
SOCK_TYPE_MASK, SOCK_MAX = 0xF, 11
MSG_PEEK, MSG_CTRUNC, MSG_TRUNC, MSG_DONTWAIT = 0x2, 0x8, 0x20, 0x40
MSG_WAITALL, MSG_WAITFORONE, MSG_CMSG_CLOEXEC = 0x100, 0x10000, 0x40000000
SOL_SOCKET, SCM_RIGHTS, SCM_CREDENTIALS = 1, 1, 2
SCM_MAX_FD = 253
UIO_MAXIOV = 1024


OPTMEM_MAX = host_sysctl("/proc/sys/net/core/optmem_max", 20480)
TASK_SIZE_MAX = (1 << 47) - 4096
ADDR_MAX = 128                          # sizeof(struct sockaddr_storage)
COPY_BLOCK = 1 << 20
# a send this small goes inside the (sealed) request: cheaper than making, checking
# and revoking a grant for it; bigger ones go through a grant (README: What is encrypted)
INLINE_SEND = 1024
INSTALL_KEEP = 1
_INT = struct.Struct("<i")
_U32 = struct.Struct("<I")
_MSGHDR = struct.Struct("<QI4xQQQQi4x")   # name, namelen, iov, iovlen, control, controllen, flags
_IOVEC = struct.Struct("<QQ")
_CMSG = struct.Struct("<Qii")
_UCRED = struct.Struct("<iII")
_TOKEN = struct.Struct("<Q")
MMSG_SIZE = _MSGHDR.size + 8


def _align(n: int) -> int:
    return (n + 7) & ~7


# --- helpers ------------------------------------------------------------------------

class _SockRef:
    __slots__ = ("sid", "flags", "family", "type")

    def __init__(self, reply: Any) -> None:
        self.sid, self.flags, self.family, self.type = (reply.result, reply.flags,
                                                        reply.family, reply.type)

    @property
    def nonblock(self) -> int:
        return int(bool(self.flags & os.O_NONBLOCK))


def net_grants(k: "Kernel") -> GrantTable | None:
    """The node's grant table if NET is on this node (the bulk path), else None:
    a NET across a node link gets the data in DATA_MAX messages."""
    lattice = k.lattice
    channel = lattice.send_channels.get((k.pid, p.NET_PID))
    if channel is None or channel.node != lattice.node_id:
        return None
    return getattr(lattice, "grants", None)


def _sock_of(c: SyscallContext, fd: int) -> Generator[Op, Any, _SockRef]:
    return _SockRef((yield from ask(p.VFS_PID, p.VfsSockOf(caller=c.pid, fd=fd))))


def _sock_ref(k: "Kernel", c: SyscallContext, fd: int) -> Generator[Op, Any, _SockRef]:
    """``_sock_of`` for the calls in ``kernel.KEEPS_SOCKS``: the kernel's copy of the
    VFS's answer while it holds (``Kernel.socks``), else the VFS asked and its
    answer kept.  Only with the VFS on this node and no node ever joined: a
    kernel elsewhere could change a shared description's flags unseen."""
    key = (c.pid, fd)
    ref = k.socks.get(key)
    if ref is not None:
        return ref
    ref = yield from _sock_of(c, fd)
    lattice = k.lattice
    channel = lattice.send_channels.get((k.pid, p.VFS_PID))
    if channel is not None and channel.node == lattice.node_id and not lattice.joined:
        k.socks[key] = ref
    return ref


def _addr_in(c: SyscallContext, addr: int, size: int) -> bytes:
    """move_addr_to_kernel: EINVAL for a bad length, EFAULT for a bad buffer."""
    size = c_int(size)
    if size < 0 or size > ADDR_MAX:
        raise SysError(errno.EINVAL)
    if size == 0:
        return b""
    return c.mem.read(addr, size)


def _addr_len_in(c: SyscallContext, lenp: int) -> int:
    (n,) = _INT.unpack(c.mem.read(lenp, 4))
    if n < 0:
        raise SysError(errno.EINVAL)
    return n


def _addr_out(c: SyscallContext, addr: int, lenp: int, value: bytes, room: int) -> None:
    """move_addr_to_user: as much of the address as fits, and its whole length."""
    if room:
        c.mem.write(addr, value[:room])
    c.mem.write(lenp, _INT.pack(len(value)))


def _unix_path(addr: bytes) -> bytes | None:
    """The path of an AF_UNIX path address, None for abstract/unnamed ones."""
    if len(addr) > 2 and struct.unpack_from("<H", addr)[0] == AF_UNIX and addr[2] != 0:
        path = addr[2:].split(b"\0", 1)[0]
        if len(addr) > 2 + 108:
            raise SysError(errno.EINVAL)
        return path
    return None


def _unix_key(c: SyscallContext, ref: _SockRef, addr: bytes) -> Generator[Op, Any, int]:
    """The socket inode a path address names (connect, sendto); 0 for other addresses."""
    if ref.family != AF_UNIX:
        return 0
    path = _unix_path(addr)
    if path is None:
        return 0
    return (yield from ask(p.VFS_PID, p.VfsSockLookup(caller=c.pid, path=path))).result


def _install(c: SyscallContext, sid: int, flags: int, family: int,
             type_: int) -> Generator[Op, Any, int]:
    try:
        return (yield from ask(p.VFS_PID, p.VfsSockFd(caller=c.pid, sock=sid, flags=flags,
                                                       family=family, type=type_))).result
    except SysError:
        yield Sendrec(p.NET_PID, p.NetClose(sock=sid))
        raise


def _type_flags(type_: int) -> tuple[int, int]:
    type_ = c_int(type_)
    flags = type_ & ~SOCK_TYPE_MASK
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise SysError(errno.EINVAL)
    base = type_ & SOCK_TYPE_MASK
    if base >= SOCK_MAX:
        raise SysError(errno.EINVAL)
    return base, flags


def _domain(domain: int) -> int:
    domain = c_int(domain)
    if domain < 0 or domain >= AF_MAX:
        raise SysError(errno.EAFNOSUPPORT)
    return domain


# --- socket, socketpair ------------------------------------------------------------

def sys_socket(k: "Kernel", c: SyscallContext) -> SyscallGen:
    type_, flags = _type_flags(c.args[1])
    domain = _domain(c.args[0])
    sid = (yield from ask(p.NET_PID, p.NetSocket(caller=c.pid, uid=c.euid, gid=c.egid,
                                                  domain=domain, type=type_,
                                                  protocol=c_int(c.args[2])))).result
    return (yield from _install(c, sid, flags, domain, type_))


def sys_socketpair(k: "Kernel", c: SyscallContext) -> SyscallGen:
    type_, flags = _type_flags(c.args[1])
    domain = _domain(c.args[0])
    reply = yield from ask(p.NET_PID, p.NetSocketpair(caller=c.pid, uid=c.euid, gid=c.egid,
                                                      domain=domain, type=type_,
                                                      protocol=c_int(c.args[2])))
    try:
        a = yield from _install(c, reply.result, flags, domain, type_)
    except SysError:
        yield Sendrec(p.NET_PID, p.NetClose(sock=reply.peer))
        raise
    try:
        b = yield from _install(c, reply.peer, flags, domain, type_)
    except SysError:
        yield Sendrec(p.VFS_PID, p.VfsClose(caller=c.pid, fd=a))
        raise
    try:
        c.mem.write(c.args[3], struct.pack("<ii", a, b))
    except SysError:
        yield Sendrec(p.VFS_PID, p.VfsClose(caller=c.pid, fd=a))
        yield Sendrec(p.VFS_PID, p.VfsClose(caller=c.pid, fd=b))
        raise
    return 0


# --- names and connections ------------------------------------------------------------

def sys_bind(k: "Kernel", c: SyscallContext) -> SyscallGen:
    ref = yield from _sock_of(c, c_int(c.args[0]))
    addr = _addr_in(c, c.args[1], c.args[2])
    path = _unix_path(addr) if ref.family == AF_UNIX else None
    if path is None:
        yield from ask(p.NET_PID, p.NetBind(caller=c.pid, sock=ref.sid, key=0, uid=c.euid,
                                            addr=addr))
        return 0
    # as Linux unix_bind_bsd: the socket inode first (EADDRINUSE when the name is
    # taken), then the name on the socket (EINVAL when it has one: the inode goes again)
    key = (yield from ask(p.VFS_PID, p.VfsSockBind(caller=c.pid, path=path))).result
    try:
        yield from ask(p.NET_PID, p.NetBind(caller=c.pid, sock=ref.sid, key=key, addr=addr))
    except SysError:
        yield Sendrec(p.VFS_PID, p.VfsUnlink(caller=c.pid, dirfd=-100, flags=0, path=path))
        raise
    return 0


def sys_listen(k: "Kernel", c: SyscallContext) -> SyscallGen:
    ref = yield from _sock_of(c, c_int(c.args[0]))
    yield from ask(p.NET_PID, p.NetListen(caller=c.pid, uid=c.euid, gid=c.egid, sock=ref.sid,
                                          backlog=c_int(c.args[1])))
    return 0


def _accept(c: SyscallContext, flags: int) -> Generator[Op, Any, int]:
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise SysError(errno.EINVAL)
    ref = yield from _sock_of(c, c_int(c.args[0]))
    addr, lenp = c.args[1], c.args[2]
    room = _addr_len_in(c, lenp) if addr else 0
    reply = yield from ask(p.NET_PID, p.NetAccept(caller=c.pid, sock=ref.sid,
                                                  nonblock=ref.nonblock))
    fd = yield from _install(c, reply.result, flags, ref.family, ref.type)
    if addr:
        try:
            _addr_out(c, addr, lenp, reply.addr, room)
        except SysError:
            yield Sendrec(p.VFS_PID, p.VfsClose(caller=c.pid, fd=fd))
            raise
    return fd


def sys_accept(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _accept(c, 0))


def sys_accept4(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _accept(c, c_int(c.args[3])))


def sys_connect(k: "Kernel", c: SyscallContext) -> SyscallGen:
    ref = yield from _sock_of(c, c_int(c.args[0]))
    addr = _addr_in(c, c.args[1], c.args[2])
    key = yield from _unix_key(c, ref, addr)
    yield from ask(p.NET_PID, p.NetConnect(caller=c.pid, uid=c.euid, gid=c.egid, sock=ref.sid,
                                           nonblock=ref.nonblock, key=key, addr=addr))
    return 0


def _name(c: SyscallContext, peer: int) -> Generator[Op, Any, int]:
    ref = yield from _sock_of(c, c_int(c.args[0]))
    room = _addr_len_in(c, c.args[2])
    reply = yield from ask(p.NET_PID, p.NetName(caller=c.pid, sock=ref.sid, peer=peer))
    _addr_out(c, c.args[1], c.args[2], reply.addr, room)
    return 0


def sys_getsockname(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _name(c, 0))


def sys_getpeername(k: "Kernel", c: SyscallContext) -> SyscallGen:
    return (yield from _name(c, 1))


def sys_shutdown(k: "Kernel", c: SyscallContext) -> SyscallGen:
    ref = yield from _sock_of(c, c_int(c.args[0]))
    yield from ask(p.NET_PID, p.NetShutdown(caller=c.pid, sock=ref.sid, how=c_int(c.args[1])))
    return 0


# --- options ------------------------------------------------------------------------

def sys_setsockopt(k: "Kernel", c: SyscallContext) -> SyscallGen:
    ref = yield from _sock_of(c, c_int(c.args[0]))
    size = c_int(c.args[4])
    if size < 0:
        raise SysError(errno.EINVAL)
    data = c.mem.read(c.args[3], min(size, p.DATA_MAX)) if size else b""
    yield from ask(p.NET_PID, p.NetSetopt(caller=c.pid, sock=ref.sid, level=c_int(c.args[1]),
                                          name=c_int(c.args[2]), data=data))
    return 0


def sys_getsockopt(k: "Kernel", c: SyscallContext) -> SyscallGen:
    ref = yield from _sock_of(c, c_int(c.args[0]))
    room = _addr_len_in(c, c.args[4])
    reply = yield from ask(p.NET_PID, p.NetGetopt(caller=c.pid, sock=ref.sid,
                                                  level=c_int(c.args[1]), name=c_int(c.args[2]),
                                                  size=min(room, p.DATA_MAX)))
    value = reply.data[:room]
    if value:
        c.mem.write(c.args[3], value)
    c.mem.write(c.args[4], _INT.pack(len(value)))
    return 0


# --- sending ------------------------------------------------------------------------

def _read_iov(c: SyscallContext, iov: int, iovlen: int) -> list[tuple[int, int]]:
    if iovlen > UIO_MAXIOV:
        raise SysError(errno.EMSGSIZE)
    if not iovlen:
        return []
    raw = c.mem.read(iov, iovlen * _IOVEC.size)
    out = []
    total = 0
    for base, size in _IOVEC.iter_unpack(raw):
        if size > 0x7FFFFFFFFFFFFFFF:
            raise SysError(errno.EINVAL)
        total += size
        if total > 0x7FFFFFFF:
            raise SysError(errno.EINVAL)
        out.append((base, size))
    return out


def _gather(mem: UserMemory, iovs: Any) -> bytes:
    return b"".join(mem.read(base, size) for base, size in iovs if size)


def _creds_check(c: SyscallContext, pid: int, uid: int, gid: int) -> None:
    """scm_check_creds: only one's own pid and ids, unless root."""
    if c.euid == 0:
        return
    if pid != c.pid or uid not in (c.uid, c.euid) or gid not in (c.gid, c.egid):
        raise SysError(errno.EPERM)


def _parse_control(c: SyscallContext, control: int, size: int
                   ) -> tuple[list[int], tuple[int, int, int] | None, int]:
    """SCM_RIGHTS fds and SCM_CREDENTIALS of a control buffer, in order, and the
    errno of the first bad header after them (Linux acts on each message as it
    reads it: a bad fd before a bad header is EBADF, not EINVAL)."""
    if not size:
        return [], None, 0
    if size > OPTMEM_MAX:                 # sock_kmalloc's bound on a control buffer
        raise SysError(errno.ENOBUFS)
    raw = c.mem.read(control, size)
    fds: list[int] = []
    creds = None
    off = 0
    while off + _CMSG.size <= len(raw):
        clen, level, ctype = _CMSG.unpack_from(raw, off)
        if clen < _CMSG.size or off + clen > len(raw):
            return fds, creds, errno.EINVAL
        body = raw[off + _CMSG.size:off + clen]
        if level == SOL_SOCKET and ctype == SCM_RIGHTS:
            n = len(body) // 4
            if n == 0 or len(fds) + n > SCM_MAX_FD:
                return fds, creds, errno.EINVAL
            fds.extend(x for (x,) in _INT.iter_unpack(body[:n * 4]))
        elif level == SOL_SOCKET and ctype == SCM_CREDENTIALS:
            if len(body) != _UCRED.size:
                return fds, creds, errno.EINVAL
            creds = _UCRED.unpack(body)
            try:
                _creds_check(c, *creds)
            except SysError as exc:
                return fds, creds, exc.errno
        elif level == SOL_SOCKET:
            return fds, creds, errno.EINVAL
        off += _align(clen)
    return fds, creds, 0


def _send(k: "Kernel", c: SyscallContext, ref: _SockRef, segs: tuple[Segment, ...],
          total: int, flags: int, addr: bytes, fds: list[int],
          creds: tuple[int, int, int] | None,
          mem: UserMemory | None = None, control_err: int = 0) -> Generator[Op, Any, int]:
    """One send: through a grant (NET copies from the caller's buffers) when NET is
    here and it is more than INLINE_SEND bytes, else in DATA_MAX messages.  A blocking stream send goes on until all is
    sent (each request may park); anything else answers with what went."""
    tokens = b""
    if fds:
        tokens = (yield from ask(p.VFS_PID, p.VfsFdsHold(
            caller=c.pid, data=b"".join(_INT.pack(fd) for fd in fds)))).data
    if control_err:
        if tokens:
            yield Sendrec(p.VFS_PID, p.VfsFdsDrop(caller=c.pid, data=tokens))
        raise SysError(control_err)
    cp, cu, cg = creds if creds is not None else (-1, -1, -1)
    stream = ref.type == SOCK_STREAM
    blocking = not (ref.nonblock or flags & MSG_DONTWAIT)
    grants = net_grants(k)
    done = 0
    try:
        # a name matters to datagrams only (a stream says EISCONN/EOPNOTSUPP, a
        # seqpacket ignores it): no lookup, and no lookup's errors, for the others
        key = (yield from _unix_key(c, ref, addr)) if addr and ref.type == SOCK_DGRAM else 0
        if grants is not None and total > INLINE_SEND:
            while True:
                try:
                    reply = yield from ask_granted(
                        k, c, grants, p.NET_PID, mem or c.mem,
                        skip(segs, done) if done else segs, GRANT_READ,
                        lambda gid: p.NetSend(
                            caller=c.pid, uid=c.euid, gid=c.egid, sock=ref.sid, flags=flags,
                            nonblock=ref.nonblock, more=0, cpid=cp, cuid=cu, cgid=cg,
                            grant=gid, key=key, addr=addr, fds=tokens))
                except SysError:
                    if done:
                        return done
                    raise
                tokens = b""
                done += reply.result
                if not stream or done >= total or reply.result <= 0 or not blocking:
                    return done
        data = _gather(mem or c.mem, segs)
        if not stream and len(data) > p.DATA_MAX:       # one record in parts
            for i in range(0, len(data) - p.DATA_MAX, p.DATA_MAX):
                yield from ask(p.NET_PID, p.NetSend(
                    caller=c.pid, uid=c.euid, gid=c.egid, sock=ref.sid, flags=flags,
                    nonblock=ref.nonblock, more=p.MORE_FOLLOWS, data=data[i:i + p.DATA_MAX]))
            last = data[(len(data) - 1) // p.DATA_MAX * p.DATA_MAX:]
            reply = yield from ask(p.NET_PID, p.NetSend(
                caller=c.pid, uid=c.euid, gid=c.egid, sock=ref.sid, flags=flags,
                nonblock=ref.nonblock, more=0, cpid=cp, cuid=cu, cgid=cg, key=key, addr=addr,
                fds=tokens, data=last))
            tokens = b""
            return len(data) if reply.result == len(last) else reply.result
        pos = 0
        while True:
            chunk = data[pos:pos + p.DATA_MAX]
            try:
                reply = yield from ask(p.NET_PID, p.NetSend(
                    caller=c.pid, uid=c.euid, gid=c.egid, sock=ref.sid, flags=flags,
                    nonblock=ref.nonblock, more=0, cpid=cp, cuid=cu, cgid=cg, key=key,
                    addr=addr, fds=tokens, data=chunk))
            except SysError:
                if done:
                    return done
                raise
            tokens = b""
            done += reply.result
            pos += reply.result
            if pos >= len(data) or not stream or reply.result <= 0 \
                    or (reply.result < len(chunk) and not blocking):
                return done
    finally:
        if tokens:                       # never queued: the VFS forgets them
            yield Sendrec(p.VFS_PID, p.VfsFdsDrop(caller=c.pid, data=tokens))


def _check_buffer(segs: tuple[Segment, ...]) -> None:
    """A user range beyond the address space is EFAULT before anything moves."""
    for addr, size in segs:
        if size and (size > TASK_SIZE_MAX or addr > TASK_SIZE_MAX - size):
            raise SysError(errno.EFAULT)


def sys_sendto(k: "Kernel", c: SyscallContext) -> SyscallGen:
    ref = yield from _sock_ref(k, c, c_int(c.args[0]))
    count = min(c.args[2], 0x7FFFF000)
    addr = _addr_in(c, c.args[4], c.args[5]) if c.args[4] else b""
    segs = ((c.args[1], count),) if count else ()
    _check_buffer(segs)
    return (yield from _send(k, c, ref, segs, count, c_int(c.args[3]), addr, [], None))


def _sendmsg(k: "Kernel", c: SyscallContext, ref: _SockRef, msg: int,
             flags: int) -> Generator[Op, Any, int]:
    name, namelen, iov, iovlen, control, controllen, _ = _MSGHDR.unpack(
        c.mem.read(msg, _MSGHDR.size))
    addr = _addr_in(c, name, namelen) if name else b""
    segs = tuple((base, size) for base, size in _read_iov(c, iov, iovlen) if size)
    _check_buffer(segs)
    fds, creds, err = _parse_control(c, control, controllen) if control else ([], None, 0)
    if ref.family != AF_UNIX:
        # TCP never looks at control data; UDP refuses SOL_SOCKET rights and
        # credentials (__sock_cmsg_send); IP-level ones are not passed on
        if ref.type != SOCK_STREAM and (fds or creds is not None or err):
            raise SysError(errno.EINVAL)
        fds, creds, err = [], None, 0
    return (yield from _send(k, c, ref, segs, sum(n for _, n in segs), flags, addr, fds,
                             creds, control_err=err))


def sys_sendmsg(k: "Kernel", c: SyscallContext) -> SyscallGen:
    ref = yield from _sock_ref(k, c, c_int(c.args[0]))
    return (yield from _sendmsg(k, c, ref, c.args[1], c_int(c.args[2])))


def sys_sendmmsg(k: "Kernel", c: SyscallContext) -> SyscallGen:
    ref = yield from _sock_of(c, c_int(c.args[0]))
    vec, vlen, flags = c.args[1], min(c.args[2] & 0xFFFFFFFF, UIO_MAXIOV), c_int(c.args[3])
    sent = 0
    for i in range(vlen):
        entry = vec + i * MMSG_SIZE
        try:
            n = yield from _sendmsg(k, c, ref, entry, flags)
            c.mem.write(entry + _MSGHDR.size, _U32.pack(n))
        except SysError:
            if sent:
                return sent
            raise
        sent += 1
    return sent


# --- receiving ------------------------------------------------------------------------

class _Got:
    __slots__ = ("n", "total", "flags", "addr", "fds", "creds")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0
        self.flags = 0
        self.addr = b""
        self.fds = b""
        self.creds: tuple[int, int, int] | None = None


def _recv(k: "Kernel", c: SyscallContext, ref: _SockRef, segs: tuple[Segment, ...],
          count: int, flags: int) -> Generator[Op, Any, _Got]:
    """One receive into ``segs`` (``count`` bytes in all): through a grant when NET is
    here (NET copies), else in DATA_MAX messages copied out here."""
    got = _Got()
    grants = net_grants(k)
    if grants is not None and count:
        done = 0
        while True:
            try:
                reply = yield from ask_granted(
                    k, c, grants, p.NET_PID, c.mem, skip(segs, done) if done else segs,
                    GRANT_WRITE, lambda gid: p.NetRecv(
                        caller=c.pid, sock=ref.sid, flags=flags, nonblock=ref.nonblock,
                        count=count - done, grant=gid,
                        more=p.MORE_NOWAIT if done and not flags & MSG_WAITALL else 0))
            except SysError:
                if done:
                    break
                raise
            if not done:
                got.total, got.flags, got.addr, got.fds = (reply.total, reply.flags,
                                                           reply.addr, reply.fds)
                if reply.flags & p.RECV_HAS_CREDS:
                    got.creds = (reply.cpid, reply.cuid, reply.cgid)
            done += reply.result
            # a stream with MSG_WAITALL goes on until all came (or EOF, or a signal)
            if ref.type != SOCK_STREAM or not flags & MSG_WAITALL or flags & MSG_PEEK \
                    or reply.result <= 0 or done >= count or reply.fds:
                break
        got.n = done
        got.flags &= ~p.RECV_HAS_CREDS
        if ref.type == SOCK_STREAM:
            got.total = done
        return got
    reply = yield from ask(p.NET_PID, p.NetRecv(caller=c.pid, sock=ref.sid, flags=flags,
                                                nonblock=ref.nonblock, count=count))
    parts = [reply.data]
    n = len(reply.data)
    got.total, got.flags, got.addr, got.fds = reply.total, reply.flags, reply.addr, reply.fds
    if reply.flags & p.RECV_HAS_CREDS:
        got.creds = (reply.cpid, reply.cuid, reply.cgid)
    got.flags &= ~p.RECV_HAS_CREDS
    if ref.type == SOCK_STREAM:
        # more of the stream: what is there now (all of it with MSG_WAITALL), not past
        # a record with ancillary data; MSG_PEEK sees one message's worth
        while n < count and len(reply.data) == p.DATA_MAX and not flags & MSG_PEEK \
                and not reply.fds:
            try:
                reply = yield from ask(p.NET_PID, p.NetRecv(
                    caller=c.pid, sock=ref.sid, flags=flags, nonblock=ref.nonblock,
                    count=min(count - n, p.DATA_MAX),
                    more=0 if flags & MSG_WAITALL else p.MORE_NOWAIT))
            except SysError:
                break
            if not reply.data:
                break
            parts.append(reply.data)
            n += len(reply.data)
    else:
        left = reply.left
        while left > 0 and n < count:
            reply = yield from ask(p.NET_PID, p.NetRecvMore(caller=c.pid, sock=ref.sid,
                                                            count=min(count - n, p.DATA_MAX)))
            if not reply.data:
                break
            parts.append(reply.data)
            n += len(reply.data)
            left = reply.left
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    _scatter(c, segs, data)
    got.n = len(data)
    if ref.type == SOCK_STREAM:
        got.total = got.n
    return got


def _result(ref: _SockRef, got: _Got, flags: int) -> int:
    if flags & MSG_TRUNC and ref.type != SOCK_STREAM:
        return got.total
    return got.n


def sys_recvfrom(k: "Kernel", c: SyscallContext) -> SyscallGen:
    ref = yield from _sock_ref(k, c, c_int(c.args[0]))
    buf, count, flags = c.args[1], min(c.args[2], 0x7FFFF000), c_int(c.args[3])
    addr, lenp = c.args[4], c.args[5]
    room = _addr_len_in(c, lenp) if addr else 0
    segs = ((buf, count),) if count else ()
    _check_buffer(segs)
    got = yield from _recv(k, c, ref, segs, count, flags)
    if got.fds:                                   # recv() cannot take them: closed
        yield Sendrec(p.VFS_PID, p.VfsFdsDrop(caller=c.pid, data=got.fds))
    if addr:
        _addr_out(c, addr, lenp, got.addr, room)
    return _result(ref, got, flags)


def _scatter(c: SyscallContext, iovs: tuple[Segment, ...] | list[Segment], data: bytes) -> None:
    pos = 0
    for base, size in iovs:
        if pos >= len(data):
            break
        piece = data[pos:pos + size]
        if piece:
            c.mem.write(base, piece)
        pos += len(piece)


def _put_cmsg(cmsgs: bytearray, room: int, ctype: int, body: bytes) -> bool:
    """put_cmsg: the header and body if they fit, padded as far as room allows."""
    clen = _CMSG.size + len(body)
    if room - len(cmsgs) < clen:
        return False
    cmsgs += _CMSG.pack(clen, SOL_SOCKET, ctype) + body
    cmsgs += bytes(min(_align(clen) - clen, room - len(cmsgs)))
    return True


def _recvmsg(k: "Kernel", c: SyscallContext, ref: _SockRef, msg: int,
             flags: int) -> Generator[Op, Any, int]:
    name, namelen, iov, iovlen, control, controllen, _ = _MSGHDR.unpack(
        c.mem.read(msg, _MSGHDR.size))
    if name and c_int(namelen) < 0:           # copy_msghdr_from_user
        raise SysError(errno.EINVAL)
    segs = tuple((base, size) for base, size in _read_iov(c, iov, iovlen) if size)
    _check_buffer(segs)
    got = yield from _recv(k, c, ref, segs, sum(n for _, n in segs), flags)
    out_flags = got.flags
    cmsgs = bytearray()
    room = controllen if control else 0
    if got.creds is not None and not _put_cmsg(cmsgs, room, SCM_CREDENTIALS,
                                               _UCRED.pack(*got.creds)):
        out_flags |= MSG_CTRUNC
    if got.fds:
        tokens = [t for (t,) in _TOKEN.iter_unpack(got.fds)]
        fit = max(0, (room - len(cmsgs) - _CMSG.size) // 4)
        take, drop = tokens[:fit], tokens[fit:]
        if drop:
            out_flags |= MSG_CTRUNC
            if not flags & MSG_PEEK:
                yield Sendrec(p.VFS_PID, p.VfsFdsDrop(
                    caller=c.pid, data=b"".join(_TOKEN.pack(t) for t in drop)))
        if take:
            inst = yield from ask(p.VFS_PID, p.VfsFdsInstall(
                caller=c.pid,
                flags=(os.O_CLOEXEC if flags & MSG_CMSG_CLOEXEC else 0)
                | (INSTALL_KEEP if flags & MSG_PEEK else 0),
                data=b"".join(_TOKEN.pack(t) for t in take)))
            fds = inst.data
            if fds:
                _put_cmsg(cmsgs, room, SCM_RIGHTS, fds)
            if len(fds) // 4 < len(take):
                out_flags |= MSG_CTRUNC
    if cmsgs:
        c.mem.write(control, bytes(cmsgs))
    # msg_namelen, msg_controllen, msg_flags
    if name:
        c.mem.write(name, got.addr[:max(0, c_int(namelen))])
    c.mem.write(msg + 8, _U32.pack(len(got.addr) if name else 0))
    c.mem.write(msg + 40, struct.pack("<Q", len(cmsgs)))
    if got.n < got.total and ref.type != SOCK_STREAM:
        out_flags |= MSG_TRUNC
    c.mem.write(msg + 48, _INT.pack(out_flags))
    return _result(ref, got, flags)


def sys_recvmsg(k: "Kernel", c: SyscallContext) -> SyscallGen:
    ref = yield from _sock_of(c, c_int(c.args[0]))
    return (yield from _recvmsg(k, c, ref, c.args[1], c_int(c.args[2])))


def sys_recvmmsg(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """recvmmsg: the timeout is checked after each datagram, as Linux does (it does
    not cut a wait short)."""
    ref = yield from _sock_of(c, c_int(c.args[0]))
    vec, vlen, flags = c.args[1], min(c.args[2] & 0xFFFFFFFF, UIO_MAXIOV), c_int(c.args[3])
    deadline = None
    if c.args[4]:
        sec, nsec = struct.unpack("<qq", c.mem.read(c.args[4], 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise SysError(errno.EINVAL)
        deadline = time.monotonic() + sec + nsec / 1e9
    got = 0
    for i in range(vlen):
        entry = vec + i * MMSG_SIZE
        try:
            n = yield from _recvmsg(k, c, ref, entry, flags & ~MSG_WAITFORONE)
            c.mem.write(entry + _MSGHDR.size, _U32.pack(n))
        except SysError:
            if got:
                break                     # what came is the answer; the timeout still goes back
            raise
        got += 1
        if flags & MSG_WAITFORONE:
            flags |= MSG_DONTWAIT
        if deadline is not None and time.monotonic() >= deadline:
            break
    if deadline is not None:              # the time left, as Linux writes it back
        left = max(0.0, deadline - time.monotonic())
        c.mem.write(c.args[4], struct.pack("<qq", int(left), int(left % 1 * 1e9)))
    return got


# --- sendfile ----------------------------------------------------------------------

SENDFILE_BLOCK = 1 << 20
BOUNCE_BASE = 0x10000
MAX_RW_COUNT = 0x7FFFF000


def sys_sendfile(k: "Kernel", c: SyscallContext) -> SyscallGen:
    """sendfile(out, in, offset*, count) to a socket: the file is read through a
    grant on a kernel-side bounce buffer (the VFS copies into it) and sent from it
    through a grant to NET, one MiB a round; a short send ends the call (the in
    file's position covers only what went).  To anything else: the VFS copies
    (VfsCopy, calls/copies.py)."""
    out_fd, in_fd, offp = c_int(c.args[0]), c_int(c.args[1]), c.args[2]
    count = min(c.args[3], MAX_RW_COUNT)
    offset = -1
    if offp:
        (offset,) = struct.unpack("<q", c.mem.read(offp, 8))
        if offset < 0:
            raise SysError(errno.EINVAL)
    try:
        ref: _SockRef | None = yield from _sock_of(c, out_fd)
    except SysError as exc:
        if exc.errno != errno.ENOTSOCK:
            raise
        ref = None
    if ref is None:                           # file to file (or pipe): inside the VFS
        reply = yield from ask(p.VFS_PID, p.VfsCopy(
            caller=c.pid, kind=p.COPY_SENDFILE, in_fd=in_fd, out_fd=out_fd, in_off=offset,
            out_off=-1, count=count, flags=0))
        if offp:                              # always written back, even after 0 bytes
            c.mem.write(offp, struct.pack("<q", reply.in_off if reply.result else offset))
        return reply.result
    grants = net_grants(k)
    if grants is None:
        raise SysError(errno.ENOSYS)          # a joined node: the program falls back
    buf = FlatMemory(min(max(count, 1), SENDFILE_BLOCK), BOUNCE_BASE)
    done = 0
    while done < count:
        want = min(count - done, SENDFILE_BLOCK)
        seg = ((BOUNCE_BASE, want),)
        try:
            reply = yield from ask_granted(
                k, c, grants, p.VFS_PID, buf, seg, GRANT_WRITE, lambda gid: p.VfsReadGrant(
                    caller=c.pid, fd=in_fd, grant=gid,
                    offset=offset + done if offset >= 0 else -1))
        except SysError:
            if done:
                break
            raise
        n = reply.result
        if reply.data:                        # a read that waited: its data came here
            buf.write(BOUNCE_BASE, reply.data)
            n = len(reply.data)
        if n <= 0:
            break
        try:
            sent = yield from _send(k, c, ref, ((BOUNCE_BASE, n),), n, 0, b"", [], None,
                                    mem=buf)
        except SysError:
            sent = -1
            if not done:
                if offset < 0:                # the in file gives back what did not go
                    yield Sendrec(p.VFS_PID, p.VfsLseek(caller=c.pid, fd=in_fd, offset=-n,
                                                        whence=os.SEEK_CUR))
                raise
        if sent < n:
            if offset < 0:
                yield Sendrec(p.VFS_PID, p.VfsLseek(caller=c.pid, fd=in_fd,
                                                    offset=-(n - max(sent, 0)),
                                                    whence=os.SEEK_CUR))
            done += max(sent, 0)
            break
        done += sent
        if n < want:
            break
    if offp:
        c.mem.write(offp, struct.pack("<q", offset + done))
    return done
