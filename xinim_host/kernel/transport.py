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

import array
import errno
import logging
import os
import socket
import struct
from typing import Any, Callable, Sequence

import trio

from .ipc import LOCAL_NODE, IpcError, Lattice

log = logging.getLogger(__name__)

RECORD = struct.Struct("<IB")           # length (of kind + body), kind
HELLO, FRAME, KEY_REQUEST, KEY_REPLY, STDIO = 1, 2, 3, 4, 5
MAX_PASSED_FDS = 3   # a STDIO record carries a terminal: stdin, stdout, stderr
HELLO_BODY = struct.Struct("<H")        # node id
KEY_REQ_BODY = struct.Struct("<IHI32s")  # src, src node, dst, src public key
KEY_REP_BODY = struct.Struct("<IIi32s")  # src, dst, errno (0 ok), dst public key
MAX_RECORD = 1 << 20


# on_stdio(node, [stdin, stdout, stderr]) -> release(): called when the link ends
StdioHook = Callable[[int, list[int]], Callable[[], None]]
FD_ARRAY = array.array("i")

HELLO_TIMEOUT = 10.0                    # seconds a new link has to say hello
_LINK_ERRORS = (IpcError, trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class SocketRoute:
    """One connection to another node; implements ``ipc.Route``."""

    def __init__(self, lattice: Lattice, stream: trio.SocketStream,
                 on_stdio: StdioHook | None = None) -> None:
        self.lattice = lattice
        self.stream = stream
        self.peer_node = 0
        self.on_stdio = on_stdio          # a joined node's terminal fds: who keeps them
        self._passed_fds: list[int] = []  # fds that came with the bytes read so far
        self._release_stdio: Callable[[], None] | None = None
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
            chunk = await self._receive()
            if not chunk:
                return None
            buf += chunk

    async def _receive(self) -> bytes:
        """Bytes from the link, keeping any fds that came with them (SCM_RIGHTS)."""
        data, ancdata, _flags, _addr = await self.stream.socket.recvmsg(
            65536, socket.CMSG_SPACE(MAX_PASSED_FDS * FD_ARRAY.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                self._passed_fds.extend(fds)
        return data

    def _take_stdio(self) -> None:
        fds, self._passed_fds = self._passed_fds, []
        if self.on_stdio is None or self._release_stdio is not None:
            for fd in fds:
                os.close(fd)
            log.warning("node %d passed a terminal nobody takes; closed", self.peer_node)
            return
        try:
            self._release_stdio = self.on_stdio(self.peer_node, fds)
        except Exception as exc:
            log.warning("node %d: its terminal was refused: %s", self.peer_node, exc)

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
            elif kind == STDIO:
                self._take_stdio()
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
            for fd in self._passed_fds:
                os.close(fd)
            self._passed_fds = []
            if self._release_stdio is not None:
                self._release_stdio()
                self._release_stdio = None
            with trio.CancelScope(shield=True):
                await self.stream.aclose()


async def serve_socket(lattice: Lattice, path: str, *, on_stdio: StdioHook | None = None,
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
                nursery.start_soon(_serve_connection, lattice, stream, on_stdio)
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


async def _serve_connection(lattice: Lattice, stream: trio.SocketStream,
                            on_stdio: StdioHook | None = None) -> None:
    route = SocketRoute(lattice, stream, on_stdio)
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


async def dial(lattice: Lattice, path: str, nursery: trio.Nursery, *,
               stdio: Sequence[int] = ()) -> int:
    """Join the node serving ``path``; returns its node id.  The link runs in ``nursery``.

    ``stdio``: this process's terminal (stdin, stdout, stderr fds), handed to the
    other node so programs started there for us talk to it."""
    stream = await trio.open_unix_socket(path)
    route = SocketRoute(lattice, stream)
    try:
        node = await route.hello(lattice.node_id)
        if node in lattice.routes or node in (LOCAL_NODE, lattice.node_id):
            raise IpcError(errno.EADDRINUSE, f"already linked to node {node} (or it is ours)")
        if stdio:
            await stream.socket.sendmsg(
                [RECORD.pack(1, STDIO)],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", stdio).tobytes())])
    except BaseException:
        await stream.aclose()
        raise
    lattice.routes[node] = route
    nursery.start_soon(route.run)
    return node
