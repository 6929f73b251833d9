"""/proc/net/unix, tcp, tcp6, udp, udp6: NET's sockets in Linux's formats
(net/unix/af_unix.c unix_seq_show, net/ipv4/tcp_ipv4.c get_tcp4_sock, ...)."""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .inet import InetSock
from .sockbase import AF_INET, AF_INET6, SOCK_DGRAM, SOCK_STREAM
from .unix import UnixSock

if TYPE_CHECKING:
    from .server import NetServer

_UNIX_HEAD = b"Num       RefCount Protocol Flags    Type St Inode Path\n"
_TCP_HEAD = (b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
             b"   uid  timeout inode\n")
_UDP_HEAD = (b"   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
             b"   uid  timeout inode ref pointer drops\n")


def _addr(sa: bytes, family: int) -> bytes:
    if family == AF_INET:
        if len(sa) < 8:
            return b"00000000:0000"
        port = struct.unpack_from(">H", sa, 2)[0]
        (ip,) = struct.unpack_from("<I", sa, 4)
        return b"%08X:%04X" % (ip, port)
    if len(sa) < 24:
        return b"0" * 32 + b":0000"
    port = struct.unpack_from(">H", sa, 2)[0]
    words = struct.unpack_from("<4I", sa, 8)
    return b"".join(b"%08X" % w for w in words) + b":%04X" % port


def table(srv: "NetServer", what: bytes) -> bytes:
    socks = sorted((s for s in srv.socks.values() if not s.closed), key=lambda s: s.id)
    if what == b"unix":
        lines = [_UNIX_HEAD]
        for s in socks:
            if isinstance(s, UnixSock):
                flags, type_, st, name = s.describe()
                line = b"0000000000000000: %08X %08X %08X %04X %02X %5d" % (
                    2, 0, flags, type_, st, s.ino)
                lines.append(line + (b" " + name if name else b"") + b"\n")
        return b"".join(lines)
    family = AF_INET6 if what.endswith(b"6") else AF_INET
    kind = SOCK_STREAM if what.startswith(b"tcp") else SOCK_DGRAM
    lines = [_TCP_HEAD if kind == SOCK_STREAM else _UDP_HEAD]
    n = 0
    for s in socks:
        if not isinstance(s, InetSock) or s.family != family or s.type != kind:
            continue
        try:
            local, remote, st = s.describe_inet()
        except Exception:
            continue
        uid = s.creds[1]
        if kind == SOCK_STREAM:
            lines.append(b"%4d: %s %s %02X %08X:%08X %02X:%08X %08X %5d %8d %d 1 "
                         b"0000000000000000 100 0 0 10 0\n" % (
                             n, _addr(local, family), _addr(remote, family), st, 0, 0, 0, 0, 0,
                             uid, 0, s.ino))
        else:
            lines.append(b"%5d: %s %s %02X %08X:%08X %02X:%08X %08X %5d %8d %d 2 "
                         b"0000000000000000 0\n" % (
                             n, _addr(local, family), _addr(remote, family), st, 0, 0, 0, 0, 0,
                             uid, 0, s.ino))
        n += 1
    return b"".join(lines)
