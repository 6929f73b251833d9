"""The NET server: sockets by id, names, parked calls, readiness notices to the VFS.

State is explicit: ``socks`` (id -> socket), the abstract and path name tables,
``blocked`` (pid -> parked calls).  A handler that changes a socket marks it
(``touch``); after each request ``flush`` retries the parked calls of every
marked socket and sends the VFS the readiness mask of each one whose mask
changed (``VfsSockReady``, a one-way notice: the VFS does not answer it).  The VFS's proxy keeps that mask for poll and wakes
its wait queue (lib/readiness.py).
"""
from __future__ import annotations

import errno
import logging
import struct
from typing import Any, Iterable

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.ipc import Lattice, Pending
from ..lib.server import Server
from .sockbase import Sock
from .table import CALL_VECTOR

log = logging.getLogger(__name__)
_TOKEN = struct.Struct("<Q")


class NetServer(Server):
    pid = p.NET_PID
    reply_type = p.NET_REPLY
    handlers = CALL_VECTOR
    trusted = p.TRUSTED_SOURCES | {p.VFS_PID}     # the VFS forwards read/write on socket fds

    def __init__(self, lattice: Lattice) -> None:
        super().__init__(lattice)
        self.socks: dict[int, Sock] = {}
        self.abstract: dict[bytes, Any] = {}    # canonical abstract sockaddr -> socket
        self.paths: dict[int, Any] = {}         # socket inode key -> bound socket
        # host sockets: connected TCP ends by local sockaddr, listeners by (family, port)
        # -- the loopback shortcut (inet.py)
        self.inet_ends: dict[bytes, Any] = {}
        self.inet_listeners: dict[tuple[int, int], set[Any]] = {}
        self._next_id = 1
        self._autobind = 0
        self.dirty: dict[int, Sock] = {}
        self._flushing = False

    # --- sockets -------------------------------------------------------------------
    def new_id(self) -> int:
        sid = self._next_id
        self._next_id = sid + 1
        return sid

    def add(self, sock: Sock) -> Sock:
        self.socks[sock.id] = sock
        self.touch(sock)
        return sock

    def get(self, sid: int) -> Sock:
        sock = self.socks.get(sid)
        if sock is None or sock.closed:
            raise SysError(errno.EBADF)
        return sock

    def close_sock(self, sock: Sock) -> None:
        self.socks.pop(sock.id, None)
        for parked in list(sock.readers) + list(sock.writers):
            parked.cancel(errno.EBADF)
        sock.close()
        self.touch(sock)

    def autobind_name(self) -> bytes:
        while True:
            self._autobind = (self._autobind + 1) & 0xFFFFF
            name = struct.pack("<H", 1) + b"\0" + b"%05x" % self._autobind
            if name not in self.abstract:
                return name

    # --- readiness ---------------------------------------------------------------------
    def touch(self, *socks: Sock) -> None:
        for s in socks:
            if s is not None:
                self.dirty[s.id] = s

    def flush(self) -> None:
        """Retry parked calls of changed sockets; tell the VFS their new masks."""
        if self._flushing:
            return
        self._flushing = True
        try:
            rounds = 0
            while self.dirty and rounds < 10000:
                rounds += 1
                _sid, sock = self.dirty.popitem()
                if not sock.closed:
                    sock.kick()
                if sock.id in self.dirty:       # the kick changed it again
                    continue
                if sock.closed:
                    continue
                after = getattr(sock, "after_push", None)
                # the mask is worked out only for a socket somebody polls (the VFS
                # asked: NetWatch) or, on the host, one with calls waiting
                if not sock.watched and not (after is not None and
                                             (sock.readers or sock.writers)):
                    continue
                mask = sock.mask()
                if sock.watched and mask != sock.pushed:
                    sock.pushed = mask
                    self._tell(p.VfsSockReady(sock=sock.id, mask=mask))
                if after is not None:
                    after(mask)
        finally:
            self._flushing = False

    def _tell(self, body: p.Payload) -> None:
        """A one-way notice to the VFS (MINIX's notify): sealed like any message, but
        not answered -- a readiness notice has nothing to say back, and its reply was
        a third of a socket call's messages."""
        if (self.pid, p.VFS_PID) not in self.lattice.send_channels:
            return
        try:
            self.lattice.send_nowait(self.pid, p.VFS_PID, body)
        except SysError as exc:
            log.info("NET -> VFS %s: %s", type(body).__name__, exc)

    def _notify(self, body: p.Payload) -> None:
        """A message to the VFS whose answer only gets logged when it is an error."""
        if (self.pid, p.VFS_PID) not in self.lattice.send_channels:
            return
        try:
            answer = self.lattice.call(self.pid, p.VFS_PID, body)
        except SysError as exc:
            log.info("NET -> VFS %s: %s", type(body).__name__, exc)
            return
        if isinstance(answer, Pending):
            answer.add_done_callback(lambda msg: _log_error(body, msg))
        else:
            _log_error(body, answer)

    # --- SCM_RIGHTS tokens (VFS holds the descriptions) ----------------------------
    @staticmethod
    def tokens_of(blob: bytes) -> tuple[int, ...]:
        if len(blob) % 8:
            raise SysError(errno.EINVAL)
        return tuple(t for (t,) in _TOKEN.iter_unpack(blob))

    def drop_tokens(self, tokens: Iterable[int]) -> None:
        blob = b"".join(_TOKEN.pack(t) for t in tokens)
        for i in range(0, len(blob), p.DATA_MAX):
            self._notify(p.VfsFdsDrop(caller=self.pid, data=blob[i:i + p.DATA_MAX]))

    def dup_tokens(self, tokens: tuple[int, ...]) -> tuple[int, ...]:
        # MSG_PEEK of a record with fds: Linux passes the fds on and leaves them queued;
        # the VFS's install takes new references, so the same tokens serve both.
        return tokens

    def stop(self) -> None:
        for sock in list(self.socks.values()):
            self.close_sock(sock)
        self.dirty.clear()


def _log_error(body: p.Payload, msg: p.Message) -> None:
    err = getattr(msg.body, "error", 0)
    if err:
        log.info("NET -> VFS %s answered errno %d", type(body).__name__, err)
