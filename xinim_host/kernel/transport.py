"""Routing between nodes: sealed lattice frames over a Unix socket.

A node (a booted system) serves a socket; another OS process -- a client such as
``xinim-run`` joining it -- dials in with its own node id.  Each side then has a
route to the other in ``Lattice.routes``, keyed by node id, and ``connect(src,
dst, node)`` exchanges the two endpoints' X25519 public keys over it.  The frames
themselves are exactly the sealed ones of in-node delivery, so the receiving
lattice checks them the same way (tampering, replay, ``m_source`` stamping).

A link speaks for its peer node only: a frame whose associated data names another
source node is dropped as tampered, a key request for another node is refused
(EPERM), and so is one for a pid that lives on this node (``accept_remote``).  A
malformed record ends that link, never the listener; a lost link fails the calls
still waiting for an answer from its node (ECONNRESET).

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

from .ipc import LOCAL_NODE, IpcError, Lattice

log = logging.getLogger(__name__)

RECORD = struct.Struct("<IB")           # length (of kind + body), kind
HELLO, FRAME, KEY_REQUEST, KEY_REPLY = 1, 2, 3, 4
HELLO_BODY = struct.Struct("<H")        # node id
KEY_REQ_BODY = struct.Struct("<IHI32s")  # src, src node, dst, src public key
KEY_REP_BODY = struct.Struct("<IIi32s")  # src, dst, errno (0 ok), dst public key
MAX_RECORD = 1 << 20


HELLO_TIMEOUT = 10.0                    # seconds a new link has to say hello
_LINK_ERRORS = (IpcError, trio.BrokenResourceError, trio.ClosedResourceError, OSError)


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
        self._pos = 0                    # where the next record starts in ``_buffer``

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
                await self.stream.send_all(b"".join(batch) if len(batch) > 1 else record)

    async def read_record(self) -> tuple[int, bytes] | None:
        buf = self._buffer
        while True:
            pos = self._pos
            if len(buf) - pos >= RECORD.size:
                length, kind = RECORD.unpack_from(buf, pos)
                if not 1 <= length <= MAX_RECORD:
                    raise IpcError(errno.EBADMSG, f"bad record length {length}")
                end = pos + 4 + length
                if len(buf) >= end:
                    self._pos = end
                    return kind, bytes(buf[pos + RECORD.size:end])
            if pos:   # drop what was consumed once per read, not once per record
                del buf[:pos]
                self._pos = 0
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return None
            buf += chunk

    async def reader(self) -> None:
        lattice = self.lattice
        while (record := await self.read_record()) is not None:
            kind, body = record
            if kind == FRAME:
                # A frame on this link comes from the peer node, whatever it claims.
                lattice.deliver_frame(body, self.peer_node)
            elif kind == KEY_REQUEST and len(body) == KEY_REQ_BODY.size:
                src, src_node, dst, public = KEY_REQ_BODY.unpack(body)
                try:
                    if src_node != self.peer_node:
                        raise IpcError(errno.EPERM, f"node {self.peer_node} spoke for {src_node}")
                    reply = KEY_REP_BODY.pack(src, dst, 0,
                                              lattice.accept_remote(src, src_node, dst, public))
                except IpcError as exc:
                    log.warning("node %d: channel %d -> %d refused: %s", self.peer_node, src,
                                dst, exc)
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

    async def _guarded(self, part: Any, scope: trio.CancelScope) -> None:
        """Run the reader or the writer; when it ends -- EOF, a broken link, a
        malformed record -- the whole link ends (and only the link)."""
        try:
            await part()
        except _LINK_ERRORS as exc:
            log.info("link to node %d closed: %s", self.peer_node, exc)
        finally:
            scope.cancel()

    async def run(self) -> None:
        """Serve this connection until either side closes it; the route goes with it."""
        self.lattice.routes[self.peer_node] = self
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guarded, self.writer, nursery.cancel_scope)
                nursery.start_soon(self._guarded, self.reader, nursery.cancel_scope)
        finally:
            if self.lattice.routes.get(self.peer_node) is self:
                del self.lattice.routes[self.peer_node]
                # Calls waiting for an answer from that node will not get one.
                self.lattice.fail_pending(errno.ECONNRESET, node=self.peer_node)
            for key, event in self._key_waiters.items():
                self._keys.setdefault(key, (errno.ECONNRESET, bytes(32)))
                event.set()
            self._key_waiters.clear()
            self._out_send.close()
            with trio.CancelScope(shield=True):
                await self.stream.aclose()


async def serve_socket(lattice: Lattice, path: str, *,
                       task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    """Accept other nodes on the Unix socket ``path`` until cancelled; removes it after."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)   # a socket left by a dead system: nobody can be listening on it
    await sock.bind(path)
    os.chmod(path, 0o600)
    ours = os.stat(path).st_ino
    sock.listen(16)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            while True:
                stream = await listener.accept()
                nursery.start_soon(_serve_connection, lattice, stream)
    finally:
        # Remove the path first: ``aclose`` checkpoints, which under cancellation (the
        # usual way out) raises before anything after it runs.
        try:
            if os.stat(path).st_ino == ours:   # not a newer system's socket
                os.unlink(path)
        except FileNotFoundError:
            pass
        with trio.CancelScope(shield=True):
            await listener.aclose()


async def _serve_connection(lattice: Lattice, stream: trio.SocketStream) -> None:
    route = SocketRoute(lattice, stream)
    try:
        with trio.fail_after(HELLO_TIMEOUT):
            node = await route.hello(lattice.node_id)
    except (*_LINK_ERRORS, trio.TooSlowError) as exc:
        log.info("node link refused before hello: %s", exc)
        await stream.aclose()
        return
    if node in lattice.routes or node in (LOCAL_NODE, lattice.node_id):
        log.warning("node %d already connected (or reserved); refusing a second link", node)
        await stream.aclose()
        return
    await route.run()


async def dial(lattice: Lattice, path: str, nursery: trio.Nursery) -> int:
    """Join the node serving ``path``; returns its node id.  The link runs in ``nursery``."""
    stream = await trio.open_unix_socket(path)
    route = SocketRoute(lattice, stream)
    try:
        node = await route.hello(lattice.node_id)
        if node in lattice.routes or node in (LOCAL_NODE, lattice.node_id):
            raise IpcError(errno.EADDRINUSE, f"already linked to node {node} (or it is ours)")
    except BaseException:
        await stream.aclose()
        raise
    lattice.routes[node] = route
    nursery.start_soon(route.run)
    return node
