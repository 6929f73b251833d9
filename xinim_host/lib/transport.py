"""Routing between nodes: sealed lattice frames over a Unix socket.

A node (a booted system) serves a socket; another OS process -- a client such as
``xinim-run`` joining it -- dials in with its own node id.  Each side then has a
route to the other in ``Lattice.routes``, keyed by node id, and ``connect(src,
dst, node)`` runs the channel handshake over it (``chankey``: hybrid ML-KEM-768 +
X25519, bound to this link's authentication through ``binding``).  The frames
themselves are exactly the sealed ones of in-node delivery, so the receiving
lattice checks them the same way (tampering, replay, ``m_source`` stamping).

Who may join (``serve_socket``): the socket is mode 0600; a peer must be the
socket's owner or a uid in ``allow_uids`` (SO_PEERCRED), and must prove it holds
the per-boot secret -- 32 random bytes in ``PATH.key`` (0600, the booting user's)
-- by answering a fresh challenge with an HMAC-SHA256 of it (the secret never
crosses the socket; the boot proves it knows it too).  A refused peer is logged
and disconnected.  The boot then *assigns* the peer its node id (ids are never
reused within one boot) and records it in ``Lattice.peers`` with its host uid.

What a peer may do: speak for its own endpoints only -- its node kernel
(``node_kernel_pid``) and its client pid (``node_client_pid``); a frame from any
other source is dropped, a key request for another pid or node refused (EPERM).
The servers believe its kernel only for processes PM made for its node
(``Lattice.may_speak_for``), with at most its host uid's credentials.

Bounds per peer: a record is at most ``MAX_RECORD`` bytes (so is a partial one),
at most ``MAX_PASSED_FDS`` fds may wait for their STDIO record, and at most
``MAX_IN_FLIGHT`` requests may be unanswered.  A peer over a bound is cut off and
everything it held goes: fds closed, buffers dropped, channels forgotten, and
``on_leave`` lets PM reap its processes as dead.  A malformed record ends that
link, never the listener; a lost link fails the calls still waiting for an
answer from its node (ECONNRESET).

Stream records: ``u32 length`` then ``u8 kind`` and the body.
"""
from __future__ import annotations

import array
import errno
import hmac
import logging
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import trio

from .ipc import AD_SIZE, FRAME_AD, LOCAL_NODE, ChannelRefused, IpcError, Lattice, NodePeer
from .protocol import node_kernel_pid
from .protocol.wire import _REPLY_TYPES

log = logging.getLogger(__name__)

from .nodelink import (AUTH, BINDING_PERSON as _BINDING_PERSON, EXIT, EXIT_BODY, FRAME, HELLO,
                       HELLO_BODY, JOIN_PERSON as _JOIN_PERSON, KEY_REPLY, KEY_REQUEST, MAC_SIZE,
                       NONCE_SIZE, RECORD, SECRET_SIZE, SPAWN, SPAWN_HEAD, STDIO, WELCOME,
                       WELCOME_PERSON as _WELCOME_PERSON, mac as _mac, secret_path)

MAX_PASSED_FDS = 3   # a STDIO record carries a terminal: stdin, stdout, stderr
KEY_REQ_HEAD = struct.Struct("<IHI")   # src, src node, dst; then the handshake offer
KEY_REP_HEAD = struct.Struct("<IIi")   # src, dst, errno (0 ok); then the answer if ok
MAX_HANDSHAKES = 1024         # channel handshakes one link may ask for (each costs us ~0.2 ms)
MAX_RECORD = 1 << 16          # > any sealed frame (16 KiB data + head); a partial one too
MAX_HANDSHAKE_RECORD = 256    # before a peer proved itself
MAX_IN_FLIGHT = 512           # unanswered requests per peer
MAX_PEERS = 128               # links (proved or not) a boot serves at once
OUT_QUEUE = 1024              # records queued for one peer's writer
NODE_CLIENT_PID_BASE = 1 << 20   # a node's one non-kernel endpoint (xinim-ps): base + node
_M_TYPE = struct.Struct("<i")    # a frame's m_type, in its associated data
_M_TYPE_OFFSET = 12


def node_client_pid(node: int) -> int:
    return NODE_CLIENT_PID_BASE + node


def node_owns_endpoint(node: int, pid: int) -> bool:
    """The endpoints a node may have: its kernel and its one client pid."""
    return pid == node_kernel_pid(node) or pid == node_client_pid(node)


def read_secret(socket_path: str) -> bytes:
    """The per-boot secret of the system serving ``socket_path`` (EACCES: not ours)."""
    try:
        with open(secret_path(socket_path), "rb") as f:
            secret = f.read(SECRET_SIZE + 1)
    except OSError as exc:
        raise IpcError(exc.errno or errno.EACCES,
                       f"cannot read the node key {secret_path(socket_path)}") from None
    if len(secret) != SECRET_SIZE:
        raise IpcError(errno.EPROTO, f"{secret_path(socket_path)} is not a node key")
    return secret


class PeerOverLimit(IpcError):
    """A peer went over one of its bounds: its link ends."""


# on_stdio(node, [stdin, stdout, stderr]) -> release(): called when the link ends
StdioHook = Callable[[int, list[int]], Callable[[], None]]
# on_spawn(peer, argv, env, cwd, done) -> cancel(): run a program for the thin
# client ``peer`` (its terminal is the node's console by then); ``done(code, err,
# why=b"")`` when it ended (``why``: the launcher's complaint, for the client to
# print); ``cancel()`` when the link ends first
SpawnDone = Callable[..., None]
SpawnHook = Callable[["NodePeer", list[bytes], list[bytes], bytes, SpawnDone], Callable[[], None]]
# on_join(peer) once it proved itself; on_leave(peer) when its link ended
PeerHook = Callable[[NodePeer], None]
FD_ARRAY = array.array("i")

HELLO_TIMEOUT = 10.0                    # seconds a new link has to prove itself
_LINK_ERRORS = (IpcError, trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class SocketRoute:
    """One connection to another node; implements ``ipc.Route``.

    ``confined``: the far end is a joined peer (the boot's side of a link): its
    frames must come from its own endpoints, and it is held to its bounds."""

    def __init__(self, lattice: Lattice, stream: trio.SocketStream,
                 on_stdio: StdioHook | None = None, *, confined: bool = False) -> None:
        self.lattice = lattice
        self.stream = stream
        self.peer_node = 0
        self.confined = confined
        self.on_stdio = on_stdio          # a joined node's terminal fds: who keeps them
        self._passed_fds: list[int] = []  # fds that came with the bytes read so far
        self._release_stdio: Callable[[], None] | None = None
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](OUT_QUEUE)
        self._key_waiters: dict[tuple[int, int], trio.Event] = {}
        self._keys: dict[tuple[int, int], tuple[int, bytes]] = {}
        self.binding = b""               # set by the handshake (``challenge``/``answer``)
        self.handshakes = 0              # channel handshakes the peer asked for
        self._buffer = bytearray()
        self._pos = 0                    # where the next record starts in ``_buffer``
        self.max_record = MAX_HANDSHAKE_RECORD if confined else MAX_RECORD
        self.in_flight = 0               # the peer's requests we have not answered yet
        self.peer: NodePeer | None = None    # the boot's side: who is at the other end
        self.on_spawn: SpawnHook | None = None
        self._cancel_spawn: Callable[[], None] | None = None

    # --- Route ---------------------------------------------------------------------

    def send_frame(self, frame: bytes) -> None:
        if self.confined and self.in_flight and len(frame) >= AD_SIZE \
                and _M_TYPE.unpack_from(frame, _M_TYPE_OFFSET)[0] in _REPLY_TYPES:
            self.in_flight -= 1
        self._queue(FRAME, frame)

    async def handshake(self, src: int, src_node: int, dst: int, offer: bytes) -> bytes:
        """Send a channel handshake's offer; the peer's answer."""
        if (src, dst) in self._key_waiters:
            raise IpcError(errno.EALREADY, f"channel {src} -> {dst} is being made")
        event = self._key_waiters[(src, dst)] = trio.Event()
        self._queue(KEY_REQUEST, KEY_REQ_HEAD.pack(src, src_node, dst) + offer)
        await event.wait()
        err, answer = self._keys.pop((src, dst))
        if err:
            raise IpcError(err, f"node {self.peer_node} refused channel {src} -> {dst}")
        return answer

    # --- plumbing ----------------------------------------------------------------------

    def _queue(self, kind: int, body: bytes) -> None:
        try:
            self._out_send.send_nowait(RECORD.pack(len(body) + 1, kind) + body)
        except trio.WouldBlock:
            raise IpcError(errno.EAGAIN, f"route to node {self.peer_node} congested") from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):   # the link ended
            raise IpcError(errno.ECONNRESET, f"route to node {self.peer_node} closed") from None

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
                if not 1 <= length <= self.max_record:
                    raise PeerOverLimit(errno.EBADMSG, f"bad record length {length}")
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
        data, ancdata, flags, _addr = await self.stream.socket.recvmsg(
            65536, socket.CMSG_SPACE(MAX_PASSED_FDS * FD_ARRAY.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                self._passed_fds.extend(fds)
        # (fds that did not fit were closed by the host kernel: MSG_CTRUNC)
        if len(self._passed_fds) > MAX_PASSED_FDS or flags & socket.MSG_CTRUNC:
            raise PeerOverLimit(errno.EMFILE, f"node {self.peer_node} passed too many fds")
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

    def _frame_in(self, body: bytes) -> None:
        lattice = self.lattice
        if self.confined and len(body) >= AD_SIZE:
            src, _dst, _src_node, dst_node, m_type, _seq = FRAME_AD.unpack_from(body)
            if not node_owns_endpoint(self.peer_node, src):
                # a peer speaks for its own endpoints only
                lattice.stats.tampered += 1
                log.debug("node %d: frame from foreign pid %d dropped", self.peer_node, src)
                return
            if m_type not in _REPLY_TYPES and dst_node == lattice.node_id:
                self.in_flight += 1
                if self.in_flight > MAX_IN_FLIGHT:
                    raise PeerOverLimit(errno.EAGAIN, f"node {self.peer_node}: over "
                                        f"{MAX_IN_FLIGHT} requests in flight")
        # A frame on this link comes from the peer node, whatever it claims.
        lattice.deliver_frame(body, self.peer_node)

    def _key_request(self, body: bytes) -> None:
        """The peer asks for a channel: answer its handshake, or refuse (errno)."""
        src, src_node, dst = KEY_REQ_HEAD.unpack_from(body)
        self.handshakes += 1
        if self.confined and self.handshakes > MAX_HANDSHAKES:
            raise PeerOverLimit(errno.EAGAIN, f"node {self.peer_node}: over {MAX_HANDSHAKES} "
                                "channel handshakes")
        try:
            if src_node != self.peer_node:
                raise IpcError(errno.EPERM, f"node {self.peer_node} spoke for {src_node}")
            if self.confined and not node_owns_endpoint(src_node, src):
                raise IpcError(errno.EPERM, f"node {src_node} may not claim pid {src}")
            answer = self.lattice.accept_remote(src, src_node, dst, body[KEY_REQ_HEAD.size:],
                                                self.binding)
            reply = KEY_REP_HEAD.pack(src, dst, 0) + answer
        except IpcError as exc:
            if not isinstance(exc, ChannelRefused):   # (that one is logged already)
                log.info("node %d: channel %d -> %d refused: %s", self.peer_node, src, dst, exc)
            reply = KEY_REP_HEAD.pack(src, dst, exc.errno)
        self._queue(KEY_REPLY, reply)

    async def reader(self) -> None:
        while (record := await self.read_record()) is not None:
            kind, body = record
            if kind == FRAME:
                self._frame_in(body)
            elif kind == KEY_REQUEST and len(body) >= KEY_REQ_HEAD.size:
                self._key_request(body)
            elif kind == KEY_REPLY and len(body) >= KEY_REP_HEAD.size:
                src, dst, err = KEY_REP_HEAD.unpack_from(body)
                event = self._key_waiters.pop((src, dst), None)
                if event is not None:
                    self._keys[(src, dst)] = (err, body[KEY_REP_HEAD.size:])
                    event.set()
            elif kind == STDIO:
                self._take_stdio()
            elif kind == SPAWN:
                self._spawn(body)
            else:
                log.info("node %d sent an unknown record kind %d", self.peer_node, kind)

    def _spawn(self, body: bytes) -> None:
        """A thin client's program: its terminal came with it (taken as STDIO's)."""
        def refuse(err: int, why: str) -> None:
            log.info("node %d: spawn refused: %s", self.peer_node, why)
            self._queue(EXIT, EXIT_BODY.pack(0, err))

        if self._passed_fds:
            self._take_stdio()
        peer = self.peer
        if self.on_spawn is None or peer is None:
            return refuse(errno.ENOSYS, "this system does not spawn for clients")
        if self._cancel_spawn is not None:
            return refuse(errno.EBUSY, "one program per link")
        if self._release_stdio is None:
            return refuse(errno.EINVAL, "no terminal came with it")
        if len(body) < SPAWN_HEAD.size:
            return refuse(errno.EBADMSG, "short spawn record")
        argc, envc = SPAWN_HEAD.unpack_from(body)
        parts = body[SPAWN_HEAD.size:].split(b"\0")
        if not argc or len(parts) != 1 + argc + envc + 1 or parts[-1]:
            return refuse(errno.EBADMSG, "malformed spawn record")
        cwd, argv, env = parts[0], parts[1:1 + argc], parts[1 + argc:1 + argc + envc]

        def done(code: int, err: int, why: bytes = b"") -> None:
            try:
                self._queue(EXIT, EXIT_BODY.pack(code, err) + why[:1024])
            except IpcError:
                pass                     # the client is gone already

        try:
            self._cancel_spawn = self.on_spawn(peer, argv, env, cwd, done)
        except Exception as exc:
            refuse(errno.EPERM if isinstance(exc, PermissionError) else errno.EINVAL, str(exc))

    # --- the handshake ---------------------------------------------------------------

    async def _expect(self, kind: int, size: int) -> bytes:
        record = await self.read_record()
        if record is None or record[0] != kind or len(record[1]) != size:
            raise IpcError(errno.EPROTO, "the peer broke the handshake")
        return record[1]

    async def challenge(self, boot_node: int, node: int, secret: bytes) -> None:
        """The boot's side: the peer proves it holds ``secret``; it will be ``node``."""
        nonce = os.urandom(NONCE_SIZE)
        await self.stream.send_all(RECORD.pack(1 + HELLO_BODY.size, HELLO)
                                   + HELLO_BODY.pack(boot_node, node, nonce))
        answer = await self._expect(AUTH, MAC_SIZE)
        if not hmac.compare_digest(answer, _mac(secret, _JOIN_PERSON, nonce, boot_node, node)):
            raise IpcError(errno.EACCES, "wrong node key")
        await self.stream.send_all(RECORD.pack(1 + MAC_SIZE, WELCOME)
                                   + _mac(secret, _WELCOME_PERSON, nonce, boot_node, node))
        self.binding = _mac(secret, _BINDING_PERSON, nonce, boot_node, node)
        self.peer_node = node
        self.max_record = MAX_RECORD

    async def answer(self, secret: bytes) -> tuple[int, int]:
        """The joining side: (the boot's node id, the node id it gave us)."""
        boot_node, node, nonce = HELLO_BODY.unpack(await self._expect(HELLO, HELLO_BODY.size))
        await self.stream.send_all(RECORD.pack(1 + MAC_SIZE, AUTH)
                                   + _mac(secret, _JOIN_PERSON, nonce, boot_node, node))
        welcome = await self._expect(WELCOME, MAC_SIZE)
        if not hmac.compare_digest(welcome, _mac(secret, _WELCOME_PERSON, nonce, boot_node,
                                                 node)):
            raise IpcError(errno.EACCES, "the system does not hold the node key")
        self.binding = _mac(secret, _BINDING_PERSON, nonce, boot_node, node)
        self.peer_node = boot_node
        return boot_node, node

    async def _guarded(self, part: Any, scope: trio.CancelScope) -> None:
        """Run the reader or the writer; when it ends -- EOF, a broken link, a
        malformed record, a bound -- the whole link ends (and only the link)."""
        try:
            await part()
        except PeerOverLimit as exc:
            log.warning("node %d cut off: %s", self.peer_node, exc)
        except _LINK_ERRORS as exc:
            log.info("link to node %d closed: %s", self.peer_node, exc)
        finally:
            scope.cancel()

    def release(self) -> None:
        """Everything the link holds on this side: fds, buffers, its terminal."""
        for fd in self._passed_fds:
            os.close(fd)
        self._passed_fds = []
        self._buffer = bytearray()
        self._pos = 0
        if self._cancel_spawn is not None:     # the client went: so does its program
            cancel, self._cancel_spawn = self._cancel_spawn, None
            cancel()
        if self._release_stdio is not None:
            self._release_stdio()
            self._release_stdio = None

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
                self._keys.setdefault(key, (errno.ECONNRESET, b""))
                event.set()
            self._key_waiters.clear()
            self._out_send.close()
            self.release()
            with trio.CancelScope(shield=True):
                await self.stream.aclose()


def _peer_cred(stream: trio.SocketStream) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected (SO_PEERCRED)."""
    raw = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


def _write_secret(path: str) -> tuple[bytes, int]:
    """A fresh per-boot secret in ``path`` (0600, ours); returns it and the file's inode."""
    try:
        os.unlink(path)   # a key left by a dead system
    except FileNotFoundError:
        pass
    secret = os.urandom(SECRET_SIZE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, secret)
        return secret, os.fstat(fd).st_ino
    finally:
        os.close(fd)


def _unlink_if(path: str, ino: int) -> None:
    try:
        if os.stat(path).st_ino == ino:   # not a newer system's
            os.unlink(path)
    except FileNotFoundError:
        pass


@dataclass
class NodeSocket:
    """The boot's side of the node socket: who may join, and the joined."""

    lattice: Lattice
    secret: bytes
    on_stdio: StdioHook | None = None
    on_join: PeerHook | None = None
    on_leave: PeerHook | None = None
    allow_uids: frozenset[int] = frozenset()
    on_spawn: SpawnHook | None = None
    links: int = 0
    next_node: int = 2
    _refusals_logged: set[tuple[int, str]] = field(default_factory=set)

    def _refuse(self, uid: int, why: str) -> None:
        """One warning per (uid, reason); later ones at info level."""
        key = (uid, why)
        level = logging.INFO if key in self._refusals_logged else logging.WARNING
        self._refusals_logged.add(key)
        log.log(level, "node socket: refused a peer (uid %d): %s", uid, why)

    def _new_node(self) -> int | None:
        while self.next_node <= 0xFFFF:
            node = self.next_node
            self.next_node += 1
            if node not in (LOCAL_NODE, self.lattice.node_id) and node not in self.lattice.routes:
                return node
        return None

    async def serve(self, stream: trio.SocketStream) -> None:
        self.links += 1
        route = SocketRoute(self.lattice, stream, self.on_stdio, confined=True)
        peer: NodePeer | None = None
        uid = -1
        try:
            try:
                host_pid, uid, gid = _peer_cred(stream)
                if self.links > MAX_PEERS:
                    self._refuse(uid, f"over {MAX_PEERS} links")
                    return
                if uid != os.geteuid() and uid not in self.allow_uids:
                    self._refuse(uid, "not the system's user")
                    return
                node = self._new_node()
                if node is None:
                    self._refuse(uid, "no node ids left in this boot")
                    return
                with trio.fail_after(HELLO_TIMEOUT):
                    await route.challenge(self.lattice.node_id, node, self.secret)
            except (*_LINK_ERRORS, trio.TooSlowError) as exc:
                self._refuse(uid, f"{type(exc).__name__}: {exc}")
                return
            peer = NodePeer(node, uid, gid, host_pid)
            self.lattice.peers[node] = peer
            self.lattice.joined = True
            route.peer, route.on_spawn = peer, self.on_spawn
            if self.on_join is not None:
                try:
                    self.on_join(peer)
                except Exception as exc:   # e.g. the VFS could not take it
                    log.warning("node %d: refused at join: %s", node, exc)
                    return
            log.info("node %d joined (host pid %d, uid %d)", node, host_pid, uid)
            await route.run()
        finally:
            self.links -= 1
            route.release()
            if peer is not None:
                self._forget(peer)
            with trio.CancelScope(shield=True):
                await stream.aclose()

    def _forget(self, peer: NodePeer) -> None:
        """The peer is gone: its processes (``on_leave``), its channels, its record."""
        lattice = self.lattice
        node = peer.node
        if self.on_leave is not None:
            try:
                self.on_leave(peer)
            except Exception:
                log.exception("node %d: cleaning up after it failed", node)
        lattice.peers.pop(node, None)
        # its ids are never handed out again in this boot, so its channels can go
        lattice.forget_node(node)
        log.info("node %d left", node)


async def serve_socket(lattice: Lattice, path: str, *, on_stdio: StdioHook | None = None,
                       on_join: PeerHook | None = None, on_leave: PeerHook | None = None,
                       allow_uids: Sequence[int] = (), on_spawn: SpawnHook | None = None,
                       task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    """Accept other nodes on the Unix socket ``path`` until cancelled; removes it (and
    its key file, ``PATH.key``) after."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)   # a socket left by a dead system: nobody can be listening on it
    key_path = secret_path(path)
    secret, key_ino = _write_secret(key_path)
    try:
        await sock.bind(path)
        os.chmod(path, 0o600)
        ours = os.stat(path).st_ino
    except BaseException:
        _unlink_if(key_path, key_ino)
        sock.close()
        raise
    sock.listen(16)
    listener = trio.SocketListener(sock)
    server = NodeSocket(lattice, secret, on_stdio, on_join, on_leave, frozenset(allow_uids),
                        on_spawn, next_node=2)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            while True:
                stream = await listener.accept()
                nursery.start_soon(server.serve, stream)
    finally:
        # Remove the paths first: ``aclose`` checkpoints, which under cancellation (the
        # usual way out) raises before anything after it runs.
        _unlink_if(path, ours)
        _unlink_if(key_path, key_ino)
        with trio.CancelScope(shield=True):
            await listener.aclose()


async def dial(lattice: Lattice, path: str, nursery: trio.Nursery, *,
               stdio: Sequence[int] = (), secret: bytes | None = None) -> int:
    """Join the node serving ``path``; returns its node id.  The link runs in ``nursery``.

    The boot gives us our node id: ``lattice.node_id`` is set to it (so make the
    endpoints' channels after this).  ``secret``: the boot's key (default: read
    from ``PATH.key``, which only the booting user can).  ``stdio``: this process's
    terminal (stdin, stdout, stderr fds), handed to the other node so programs
    started there for us talk to it."""
    stream = await trio.open_unix_socket(path)
    route = SocketRoute(lattice, stream)
    try:
        if secret is None:
            secret = read_secret(path)
        with trio.fail_after(HELLO_TIMEOUT):
            node, own = await route.answer(secret)
        if node in lattice.routes or node == own or own == LOCAL_NODE:
            raise IpcError(errno.EADDRINUSE, f"already linked to node {node} (or it is ours)")
        lattice.node_id = own
        if stdio:
            await stream.socket.sendmsg(
                [RECORD.pack(1, STDIO)],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", stdio).tobytes())])
    except trio.TooSlowError:
        await stream.aclose()
        raise IpcError(errno.ETIMEDOUT, "the system did not answer the handshake") from None
    except BaseException:
        await stream.aclose()
        raise
    lattice.routes[node] = route
    nursery.start_soon(route.run)
    return node
