"""Routing between nodes: sealed lattice frames over a Unix socket.

A node (a booted system) serves a socket; another OS process -- a client such as
``xinim-run`` joining it -- dials in with its own node id.  Each side then has a
route to the other in ``Lattice.routes``, keyed by node id, and ``connect(src,
dst, node)`` exchanges the two endpoints' X25519 public keys over it.  The frames
themselves are exactly the sealed ones of in-node delivery, so the receiving
lattice checks them the same way (tampering, replay, ``m_source`` stamping).

Stream records: ``u32 length`` then ``u8 kind`` and the body.
"""
from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from typing import Any

import trio

from .ipc import IpcError, Lattice

log = logging.getLogger(__name__)

RECORD = struct.Struct("<IB")           # length (of kind + body), kind
HELLO, FRAME, KEY_REQUEST, KEY_REPLY = 1, 2, 3, 4
HELLO_BODY = struct.Struct("<H")        # node id
KEY_REQ_BODY = struct.Struct("<IHI32s")  # src, src node, dst, src public key
KEY_REP_BODY = struct.Struct("<IIi32s")  # src, dst, errno (0 ok), dst public key
MAX_RECORD = 1 << 20


class SocketRoute:
    """One connection to another node; implements ``ipc.Route``."""

    def __init__(self, lattice: Lattice, stream: trio.SocketStream) -> None:
        self.lattice = lattice
        self.stream = stream
        self.peer_node = 0
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](4096)
        self._key_waiters: dict[tuple[int, int], trio.Event] = {}
        self._keys: dict[tuple[int, int], tuple[int, bytes]] = {}
        self._buffer = bytearray()

    # --- Route ---------------------------------------------------------------------

    def send_frame(self, frame: bytes) -> None:
        self._queue(FRAME, frame)

    async def request_key(self, src: int, src_node: int, dst: int, public_key: bytes) -> bytes:
        event = self._key_waiters[(src, dst)] = trio.Event()
        self._queue(KEY_REQUEST, KEY_REQ_BODY.pack(src, src_node, dst, public_key))
        await event.wait()
        err, key = self._keys.pop((src, dst))
        if err:
            raise IpcError(err, f"node {self.peer_node} refused channel {src} -> {dst}")
        return key

    # --- plumbing ----------------------------------------------------------------------

    def _queue(self, kind: int, body: bytes) -> None:
        try:
            self._out_send.send_nowait(RECORD.pack(len(body) + 1, kind) + body)
        except (trio.WouldBlock, trio.ClosedResourceError):
            raise IpcError(errno.EAGAIN, f"route to node {self.peer_node} congested") from None

    async def writer(self) -> None:
        async with self._out_recv:
            async for record in self._out_recv:
                batch = [record]
                while True:   # coalesce what is queued into one write
                    try:
                        batch.append(self._out_recv.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self.stream.send_all(b"".join(batch))

    async def read_record(self) -> tuple[int, bytes] | None:
        while True:
            if len(self._buffer) >= RECORD.size:
                length, kind = RECORD.unpack_from(self._buffer, 0)
                if not 1 <= length <= MAX_RECORD:
                    raise IpcError(errno.EBADMSG, f"bad record length {length}")
                end = 4 + length
                if len(self._buffer) >= end:
                    body = bytes(self._buffer[RECORD.size:end])
                    del self._buffer[:end]
                    return kind, body
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return None
            self._buffer += chunk

    async def reader(self) -> None:
        while (record := await self.read_record()) is not None:
            kind, body = record
            if kind == FRAME:
                self.lattice.deliver_frame(body)
            elif kind == KEY_REQUEST and len(body) == KEY_REQ_BODY.size:
                src, src_node, dst, public = KEY_REQ_BODY.unpack(body)
                try:
                    reply = KEY_REP_BODY.pack(src, dst, 0,
                                              self.lattice.accept_remote(src, src_node, dst, public))
                except IpcError as exc:
                    reply = KEY_REP_BODY.pack(src, dst, exc.errno, bytes(32))
                self._queue(KEY_REPLY, reply)
            elif kind == KEY_REPLY and len(body) == KEY_REP_BODY.size:
                src, dst, err, public = KEY_REP_BODY.unpack(body)
                event = self._key_waiters.pop((src, dst), None)
                if event is not None:
                    self._keys[(src, dst)] = (err, public)
                    event.set()
            else:
                log.warning("node %d sent an unknown record kind %d", self.peer_node, kind)

    async def hello(self, own_node: int) -> int:
        await self.stream.send_all(RECORD.pack(1 + HELLO_BODY.size, HELLO)
                                   + HELLO_BODY.pack(own_node))
        record = await self.read_record()
        if record is None or record[0] != HELLO or len(record[1]) != HELLO_BODY.size:
            raise IpcError(errno.EPROTO, "peer did not say hello")
        (self.peer_node,) = HELLO_BODY.unpack(record[1])
        return self.peer_node

    async def run(self) -> None:
        """Serve this connection until either side closes it; the route goes with it."""
        self.lattice.routes[self.peer_node] = self
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.writer)
                await self.reader()
                nursery.cancel_scope.cancel()
        finally:
            if self.lattice.routes.get(self.peer_node) is self:
                del self.lattice.routes[self.peer_node]
            for key, event in self._key_waiters.items():
                self._keys.setdefault(key, (errno.ECONNRESET, bytes(32)))
                event.set()
            await self.stream.aclose()


async def serve_socket(lattice: Lattice, path: str, *,
                       task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    """Accept other nodes on the Unix socket ``path`` until cancelled; removes it after."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)   # a socket left by a dead system: nobody can be listening on it
    await sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            while True:
                stream = await listener.accept()
                nursery.start_soon(_serve_connection, lattice, stream)
    finally:
        await listener.aclose()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


async def _serve_connection(lattice: Lattice, stream: trio.SocketStream) -> None:
    route = SocketRoute(lattice, stream)
    try:
        node = await route.hello(lattice.node_id)
        if node in lattice.routes or node == lattice.node_id:
            log.warning("node %d already connected; refusing a second link", node)
            await stream.aclose()
            return
        await route.run()
    except (IpcError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        log.info("node link closed: %s", exc)


async def dial(lattice: Lattice, path: str, nursery: trio.Nursery) -> int:
    """Join the node serving ``path``; returns its node id.  The link runs in ``nursery``."""
    stream = await trio.open_unix_socket(path)
    route = SocketRoute(lattice, stream)
    node = await route.hello(lattice.node_id)
    lattice.routes[node] = route
    nursery.start_soon(route.run)
    return node
