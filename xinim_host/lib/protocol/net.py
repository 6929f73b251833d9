"""NET messages (requests 500-549, reply 550): sockets, MINIX 3's INET/LWIP server.

``sock`` is NET's socket id; the kernel learns it from the VFS (``VfsSockOf``),
which holds a proxy per socket in the caller's fd table.  ``caller`` is believed
from kernels and PM only, as for every server.  Data fields carry at most
DATA_MAX bytes: bigger sends and receives are several messages (``more``).
"""
from __future__ import annotations

from .wire import *  # noqa: F403 -- numbers, field kinds (i32, path, data...)
from .wire import Payload, ReplyBase, reply, request

NET_SOCKET = 500
NET_SOCKETPAIR = 501
NET_BIND = 502         # key 0: check only (AF_UNIX path: VFS makes the inode between)
NET_LISTEN = 503
NET_ACCEPT = 504
NET_CONNECT = 505
NET_NAME = 506         # getsockname (peer 0) / getpeername (peer 1)
NET_SEND = 507
NET_RECV = 508
NET_RECV_MORE = 509    # the rest of a datagram bigger than one message
NET_SHUTDOWN = 510
NET_SETOPT = 511
NET_GETOPT = 512
NET_CLOSE = 513        # VFS: the last reference to the socket's description went
NET_CANCEL = 514       # PM: a signal interrupts ``pid``'s blocked calls
NET_EXIT = 515         # PM: ``pid`` is gone: its blocked calls go
NET_LIST = 516         # /proc/net/<what>: the table as Linux prints it
NET_IOCTL = 517        # FIONREAD / SIOCOUTQ
NET_WATCH = 518        # VFS: tell me this socket's readiness from now on (result: the mask)

# NetSend.more / NetRecv.more
MORE_NONE = 0
MORE_FOLLOWS = 1       # send: part of one record; more parts follow
MORE_NOWAIT = 2        # recv: a later message of one call: only what is there now
# NetRecvReply.flags bits beyond Linux's MSG_*: creds present
RECV_HAS_CREDS = 1 << 30


@request(NET_SOCKET)
class NetSocket(Payload):
    caller: i32
    uid: i32
    gid: i32
    domain: i32
    type: i32
    protocol: i32


@request(NET_SOCKETPAIR)
class NetSocketpair(Payload):
    caller: i32
    uid: i32
    gid: i32
    domain: i32
    type: i32
    protocol: i32


@request(NET_BIND)
class NetBind(Payload):
    caller: i32
    sock: i64
    key: u64           # the socket inode VFS made (AF_UNIX path); 0: only check
    uid: i32 = 0       # the caller's euid (a privileged port needs 0)
    addr: path = b""   # the sockaddr as the program gave it


@request(NET_LISTEN)
class NetListen(Payload):
    caller: i32
    uid: i32
    gid: i32
    sock: i64
    backlog: i32


@request(NET_ACCEPT)
class NetAccept(Payload):
    caller: i32
    sock: i64
    nonblock: i32


@request(NET_CONNECT)
class NetConnect(Payload):
    caller: i32
    uid: i32
    gid: i32
    sock: i64
    nonblock: i32
    key: u64           # AF_UNIX path: the socket inode VFS found
    addr: path


@request(NET_NAME)
class NetName(Payload):
    caller: i32
    sock: i64
    peer: i32


@request(NET_SEND)
class NetSend(Payload):
    caller: i32
    uid: i32
    gid: i32
    sock: i64
    flags: i32         # MSG_*
    nonblock: i32
    more: i32          # MORE_FOLLOWS: a part of one record
    cpid: i32 = -1     # SCM_CREDENTIALS given by the program (-1: none)
    cuid: i32 = -1
    cgid: i32 = -1
    grant: u32 = 0     # the bulk path (lib/grants.py): NET copies the data from the
                       # caller's buffer through this grant; ``data`` is then empty
    key: u64 = 0       # sendto an AF_UNIX path: the socket inode
    addr: path = b""
    fds: data = b""    # SCM_RIGHTS: VFS tokens, u64 each
    data: data = b""


@request(NET_RECV)
class NetRecv(Payload):
    caller: i32
    sock: i64
    flags: i32
    nonblock: i32
    count: u32
    more: i32 = 0      # MORE_NOWAIT: never wait, stop at a record with ancillary data
    grant: u32 = 0     # the bulk path: NET copies into the caller's buffer (reply
                       # ``data`` empty, ``result`` = bytes copied, up to the grant's size)


@request(NET_RECV_MORE)
class NetRecvMore(Payload):
    caller: i32
    sock: i64
    count: u32


@request(NET_SHUTDOWN)
class NetShutdown(Payload):
    caller: i32
    sock: i64
    how: i32


@request(NET_SETOPT)
class NetSetopt(Payload):
    caller: i32
    sock: i64
    level: i32
    name: i32
    data: data


@request(NET_GETOPT)
class NetGetopt(Payload):
    caller: i32
    sock: i64
    level: i32
    name: i32
    size: u32


@request(NET_CLOSE)
class NetClose(Payload):
    sock: i64


@request(NET_CANCEL)
class NetCancel(Payload):
    pid: i32
    err: i32 = 4       # EINTR


@request(NET_EXIT)
class NetExit(Payload):
    pid: i32


@request(NET_LIST)
class NetList(Payload):
    what: path         # b"unix", b"tcp", b"tcp6", b"udp", b"udp6"
    offset: u64 = 0


@request(NET_IOCTL)
class NetIoctl(Payload):
    caller: i32
    sock: i64
    request: u32


@request(NET_WATCH)
class NetWatch(Payload):
    sock: i64


@reply(NET_REPLY)
class NetReply(ReplyBase):
    """Generic NET reply: ``result`` is the call's value (a socket id, a count, 0)."""


@reply(NET_REPLY, NET_SOCKETPAIR)
class NetPairReply(ReplyBase):
    """``result`` and ``peer``: the two sockets."""

    peer: i64 = 0


@reply(NET_REPLY, NET_ACCEPT, NET_NAME)
class NetAddrReply(ReplyBase):
    """accept: ``result`` = the new socket; ``addr`` = the (peer's) sockaddr."""

    addr: path = b""


@reply(NET_REPLY, NET_RECV, NET_RECV_MORE)
class NetRecvReply(ReplyBase):
    """``result`` = bytes in ``data``; ``total`` = the record's length (MSG_TRUNC);
    ``flags`` = MSG_* out (MSG_TRUNC, MSG_CTRUNC, MSG_EOR) | RECV_HAS_CREDS;
    ``left`` = bytes of this datagram NetRecvMore still hands out."""

    total: i64 = 0
    flags: i32 = 0
    left: i64 = 0
    cpid: i32 = 0
    cuid: i32 = 0
    cgid: i32 = 0
    addr: path = b""
    fds: data = b""
    data: data = b""


@reply(NET_REPLY, NET_GETOPT, NET_LIST, NET_IOCTL)
class NetDataReply(ReplyBase):
    data: data = b""
