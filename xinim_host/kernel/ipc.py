"""Lattice IPC: typed messages on per-channel encrypted links (plan §1.1).

Endpoints are XINIM pids.  ``connect`` gives a pair of endpoints a channel whose
key comes from X25519 agreement between their key pairs; every message on it is
sealed with XChaCha20-Poly1305 under a fresh random nonce, the associated data
binding source, destination, nodes, message type and a per-direction sequence
number.  The receiving side opens the frame and *then* stamps ``m_source`` from
the channel, so a sender cannot speak for another pid; a frame that fails to open
is counted as tampered, one whose sequence number does not advance as replayed,
and neither is ever delivered.

Delivery to a local endpoint takes one of three paths:

* a reply whose request id a ``sendrec``/``call`` is waiting for completes that
  waiter (:class:`Pending`);
* a request to an endpoint with a direct handler that is not already busy is
  handled inline, in the sender's context -- the plan's "direct yield to
  receiver": no task switch, which is what makes a syscall round trip cheap;
* anything else is queued for ``recv`` (bounded: a full queue blocks the sender,
  or fails with EAGAIN under ``NONBLOCK``).

Other nodes (a client process such as ``xinim-run`` joining a booted system) are
reached through :mod:`xinim_host.kernel.transport`, which carries the very same
sealed frames over a Unix socket; ``connect(src, dst, node)`` picks the route.
"""
from __future__ import annotations

import collections
import enum
import errno
import logging
import os
import struct
from dataclasses import dataclass, field
from typing import Callable, Protocol

import trio
from nacl import bindings as sodium

from .errors import SysError
from .protocol import Message, Payload, ProtocolError, decode, encode, is_reply_type

log = logging.getLogger(__name__)

LOCAL_NODE = 0          # ``connect(..., node=0)`` means "this node", as in the plan's API
DEFAULT_NODE_ID = 1     # the node id of a booted system
INBOX_CAPACITY = 256

# src pid, dst pid, src node, dst node, m_type, seq -- all of it is associated data
FRAME_AD = struct.Struct("<IIHHiQ")
NONCE_SIZE = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
TAG_SIZE = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES
_PERSON = b"xinim-lattice-v1"


class IpcFlags(enum.IntFlag):
    NONE = 0
    NONBLOCK = 1


class IpcError(SysError):
    """An IPC call failed: EAGAIN (would block), ENOTCONN (no channel), ESRCH (no such
    endpoint), EPIPE (endpoint closed), EHOSTUNREACH (no route to the node)."""


@dataclass
class IpcStats:
    sealed: int = 0
    delivered: int = 0
    handled_direct: int = 0
    tampered: int = 0
    replayed: int = 0
    unroutable: int = 0


@dataclass
class SendChannel:
    node: int                # the destination's node
    key: bytes | None        # None: a plaintext channel (benchmarks only)
    seq: int = 0


@dataclass
class RecvChannel:
    key: bytes | None
    last_seq: int = 0        # frames must carry a larger one: replay protection


class Pending:
    """A reply that has not arrived yet: completed by delivery, observed by a
    callback (the interceptor, on the trio thread) or awaited (``sendrec``)."""

    __slots__ = ("message", "_callbacks", "_event")

    def __init__(self) -> None:
        self.message: Message | None = None
        self._callbacks: list[Callable[[Message], None]] = []
        self._event: trio.Event | None = None

    def done(self) -> bool:
        return self.message is not None

    def add_done_callback(self, callback: Callable[[Message], None]) -> None:
        if self.message is not None:
            callback(self.message)
        else:
            self._callbacks.append(callback)

    def set(self, message: Message) -> None:
        self.message = message
        if self._event is not None:
            self._event.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(message)

    async def wait(self) -> Message:
        if self.message is None:
            if self._event is None:
                self._event = trio.Event()
            await self._event.wait()
        assert self.message is not None
        return self.message


# What a direct handler or ``recv`` gets: a message, or the protocol error a
# malformed frame decoded to (with ``m_source`` stamped), to be answered.
Delivery = Message | ProtocolError


@dataclass
class Endpoint:
    pid: int
    secret_key: bytes
    public_key: bytes
    capacity: int = INBOX_CAPACITY
    inbox: collections.deque[Delivery] = field(default_factory=collections.deque)
    handler: Callable[[Delivery], None] | None = None
    busy: bool = False       # inside its handler: deliveries queue instead (no re-entry)
    closed: bool = False
    pending: dict[int, Pending] = field(default_factory=dict)
    receivers: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    senders: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)


class Route(Protocol):
    """A way to another node (see ``transport.SocketRoute``)."""

    def send_frame(self, frame: bytes) -> None: ...
    async def request_key(self, src: int, src_node: int, dst: int, public_key: bytes) -> bytes: ...


def derive_key(secret_key: bytes, own_public: bytes, peer_public: bytes) -> bytes:
    """The channel key: X25519 agreement hashed with both public keys (BLAKE2b)."""
    shared = sodium.crypto_scalarmult(secret_key, peer_public)
    lo, hi = sorted((own_public, peer_public))
    return sodium.crypto_generichash_blake2b_salt_personal(
        shared + lo + hi, digest_size=32, person=_PERSON)


class Lattice:
    """The IPC fabric of one node: its endpoints, channels and routes."""

    def __init__(self, node_id: int = DEFAULT_NODE_ID) -> None:
        self.node_id = node_id
        self.endpoints: dict[int, Endpoint] = {}
        self.send_channels: dict[tuple[int, int], SendChannel] = {}
        self.recv_channels: dict[tuple[int, int, int], RecvChannel] = {}  # (src node, src, dst)
        self.routes: dict[int, Route] = {}
        self.stats = IpcStats()
        self._next_req_id = 1

    # --- endpoints and channels ------------------------------------------------

    def register(self, pid: int, capacity: int = INBOX_CAPACITY) -> Endpoint:
        if pid in self.endpoints and not self.endpoints[pid].closed:
            raise IpcError(errno.EADDRINUSE, f"endpoint {pid} already registered")
        public, secret = sodium.crypto_box_keypair()
        endpoint = Endpoint(pid, secret, public, capacity)
        self.endpoints[pid] = endpoint
        return endpoint

    def close(self, pid: int) -> None:
        """Close an endpoint: its queued messages are dropped, waiters woken."""
        endpoint = self.endpoints.get(pid)
        if endpoint is None:
            return
        endpoint.closed = True
        endpoint.inbox.clear()
        endpoint.receivers.unpark_all()
        endpoint.senders.unpark_all()

    def connect_local(self, src: int, dst: int, *, encrypted: bool = True) -> None:
        """Channel between two endpoints of this node (both directions)."""
        a, b = self._endpoint(src), self._endpoint(dst)
        key = derive_key(a.secret_key, a.public_key, b.public_key) if encrypted else None
        self.send_channels[(src, dst)] = SendChannel(self.node_id, key)
        self.send_channels[(dst, src)] = SendChannel(self.node_id, key)
        self.recv_channels[(self.node_id, src, dst)] = RecvChannel(key)
        self.recv_channels[(self.node_id, dst, src)] = RecvChannel(key)

    async def connect(self, src: int, dst: int, node: int = LOCAL_NODE, *,
                      encrypted: bool = True) -> None:
        """The plan's ``lattice_connect``: a channel from local ``src`` to ``dst`` on ``node``."""
        if node in (LOCAL_NODE, self.node_id):
            self.connect_local(src, dst, encrypted=encrypted)
            return
        route = self.routes.get(node)
        if route is None:
            raise IpcError(errno.EHOSTUNREACH, f"no route to node {node}")
        own = self._endpoint(src)
        peer_public = await route.request_key(src, self.node_id, dst, own.public_key)
        key = derive_key(own.secret_key, own.public_key, peer_public)
        self.send_channels[(src, dst)] = SendChannel(node, key)
        self.recv_channels[(node, dst, src)] = RecvChannel(key)

    def accept_remote(self, src: int, src_node: int, dst: int, peer_public: bytes) -> bytes:
        """A remote ``connect`` reached local ``dst``: make the channel, return dst's public key."""
        endpoint = self._endpoint(dst)
        key = derive_key(endpoint.secret_key, endpoint.public_key, peer_public)
        self.send_channels[(dst, src)] = SendChannel(src_node, key)
        self.recv_channels[(src_node, src, dst)] = RecvChannel(key)
        return endpoint.public_key

    def _endpoint(self, pid: int) -> Endpoint:
        endpoint = self.endpoints.get(pid)
        if endpoint is None:
            raise IpcError(errno.ESRCH, f"no endpoint {pid}")
        if endpoint.closed:
            raise IpcError(errno.EPIPE, f"endpoint {pid} is closed")
        return endpoint

    # --- sending ------------------------------------------------------------------

    def new_req_id(self) -> int:
        req_id = self._next_req_id
        self._next_req_id += 1
        return req_id

    def _seal(self, src: int, dst: int, m_type: int, plaintext: bytes) -> bytes:
        channel = self.send_channels.get((src, dst))
        if channel is None:
            raise IpcError(errno.ENOTCONN, f"no channel {src} -> {dst}")
        channel.seq += 1
        ad = FRAME_AD.pack(src, dst, self.node_id, channel.node, m_type, channel.seq)
        self.stats.sealed += 1
        if channel.key is None:
            return ad + bytes(NONCE_SIZE) + plaintext
        nonce = os.urandom(NONCE_SIZE)
        return ad + nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, ad, nonce, channel.key)

    def send_bytes(self, src: int, dst: int, m_type: int, plaintext: bytes) -> None:
        """Seal and deliver an already-encoded message without blocking.

        The primitive under every send; public so tests and fuzzers can send what a
        buggy or hostile peer would (malformed payloads on a valid channel).
        """
        frame = self._seal(src, dst, m_type, plaintext)
        channel = self.send_channels[(src, dst)]
        if channel.node == self.node_id:
            self.deliver_frame(frame)
        else:
            route = self.routes.get(channel.node)
            if route is None:
                raise IpcError(errno.EHOSTUNREACH, f"no route to node {channel.node}")
            route.send_frame(frame)

    def send_nowait(self, src: int, dst: int, body: Payload, req_id: int = 0) -> None:
        """``send`` with NONBLOCK: EAGAIN when the destination's queue is full."""
        channel = self.send_channels.get((src, dst))
        if channel is None:
            raise IpcError(errno.ENOTCONN, f"no channel {src} -> {dst}")
        if channel.node == self.node_id:
            endpoint = self._endpoint(dst)
            if (not is_reply_type(body.M_TYPE) and (endpoint.handler is None or endpoint.busy)
                    and len(endpoint.inbox) >= endpoint.capacity):
                raise IpcError(errno.EAGAIN, f"endpoint {dst} queue full")
        self.send_bytes(src, dst, body.M_TYPE, encode(body, src, req_id))

    async def send(self, src: int, dst: int, body: Payload,
                   flags: IpcFlags = IpcFlags.NONE, req_id: int = 0) -> None:
        """The plan's ``lattice_send``; blocks while the destination's queue is full."""
        while True:
            try:
                self.send_nowait(src, dst, body, req_id)
                return
            except IpcError as exc:
                if exc.errno != errno.EAGAIN or flags & IpcFlags.NONBLOCK:
                    raise
            await self._endpoint(dst).senders.park()

    def reply(self, src: int, request: Message, body: Payload) -> None:
        """Answer ``request``; replies never block (they complete a waiter or queue)."""
        self.send_bytes(src, request.m_source, body.M_TYPE, encode(body, src, request.req_id))

    def call(self, src: int, dst: int, body: Payload) -> Message | Pending:
        """Send a request and return its reply if it came at once, else a :class:`Pending`.

        The synchronous half of ``sendrec``, for the interceptor: a tracee whose reply
        is pending simply stays stopped until the callback fires.
        """
        endpoint = self._endpoint(src)
        req_id = self.new_req_id()
        pending = Pending()
        endpoint.pending[req_id] = pending
        try:
            self.send_nowait(src, dst, body, req_id)
        except BaseException:
            endpoint.pending.pop(req_id, None)
            raise
        if pending.message is not None:
            return pending.message
        return pending

    async def sendrec(self, src: int, dst: int, body: Payload) -> Message:
        """Send a request, wait for the reply with the same request id."""
        endpoint = self._endpoint(src)
        while True:
            try:
                result = self.call(src, dst, body)
                break
            except IpcError as exc:
                if exc.errno != errno.EAGAIN:
                    raise
            await self._endpoint(dst).senders.park()
        if isinstance(result, Pending):
            try:
                return await result.wait()
            finally:
                for req_id, pending in list(endpoint.pending.items()):
                    if pending is result:
                        del endpoint.pending[req_id]
        return result

    # --- receiving ----------------------------------------------------------------

    def deliver_frame(self, frame: bytes | memoryview) -> None:
        """Open a frame addressed to this node and hand it to its endpoint."""
        if len(frame) < FRAME_AD.size + NONCE_SIZE:
            self.stats.tampered += 1
            return
        src, dst, src_node, dst_node, m_type, seq = FRAME_AD.unpack_from(frame, 0)
        if dst_node != self.node_id:
            route = self.routes.get(dst_node)
            if route is None:
                self.stats.unroutable += 1
                return
            route.send_frame(bytes(frame))
            return
        channel = self.recv_channels.get((src_node, src, dst))
        endpoint = self.endpoints.get(dst)
        if channel is None or endpoint is None or endpoint.closed:
            self.stats.unroutable += 1
            log.debug("dropped frame %d@%d -> %d: no channel or endpoint", src, src_node, dst)
            return
        ad = bytes(frame[:FRAME_AD.size])
        body = frame[FRAME_AD.size + NONCE_SIZE:]
        if channel.key is None:
            plaintext = bytes(body)
        else:
            nonce = bytes(frame[FRAME_AD.size:FRAME_AD.size + NONCE_SIZE])
            try:
                plaintext = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                    bytes(body), ad, nonce, channel.key)
            except Exception:  # nacl CryptoError: forged, corrupted or misrouted
                self.stats.tampered += 1
                log.warning("dropped tampered frame %d@%d -> %d", src, src_node, dst)
                return
        if seq <= channel.last_seq:
            self.stats.replayed += 1
            log.warning("dropped replayed frame %d@%d -> %d (seq %d)", src, src_node, dst, seq)
            return
        channel.last_seq = seq
        try:
            message = decode(plaintext)
            if message.m_type != m_type:
                raise ProtocolError(errno.EBADMSG, "type differs from the frame's", m_type,
                                    message.req_id)
            # The channel, not the payload, says who sent it.
            message = Message(src, message.req_id, message.body)
            delivery: Delivery = message
        except ProtocolError as exc:
            exc.m_source = src  # type: ignore[attr-defined]
            delivery = exc
        self._hand_over(endpoint, delivery)

    def _hand_over(self, endpoint: Endpoint, delivery: Delivery) -> None:
        self.stats.delivered += 1
        if isinstance(delivery, Message) and is_reply_type(delivery.m_type):
            pending = endpoint.pending.pop(delivery.req_id, None)
            if pending is not None:
                pending.set(delivery)
                return
        elif endpoint.handler is not None and not endpoint.busy:
            self.stats.handled_direct += 1
            endpoint.busy = True
            try:
                endpoint.handler(delivery)
            finally:
                endpoint.busy = False
            return
        endpoint.inbox.append(delivery)
        endpoint.receivers.unpark()

    def recv_nowait(self, pid: int) -> Delivery:
        endpoint = self._endpoint(pid)
        if not endpoint.inbox:
            raise IpcError(errno.EAGAIN, f"nothing queued for {pid}")
        delivery = endpoint.inbox.popleft()
        endpoint.senders.unpark()
        return delivery

    async def recv(self, pid: int, flags: IpcFlags = IpcFlags.NONE) -> Delivery:
        """The plan's ``lattice_recv``: the next message (or protocol error) for ``pid``."""
        while True:
            try:
                return self.recv_nowait(pid)
            except IpcError as exc:
                if exc.errno != errno.EAGAIN or flags & IpcFlags.NONBLOCK:
                    raise
            await self._endpoint(pid).receivers.park()
