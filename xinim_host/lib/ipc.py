"""Lattice IPC: typed messages on per-channel encrypted links (plan §1.1).

Endpoints are XINIM pids.  ``connect`` gives a pair of endpoints a channel whose
key comes from X25519 agreement between their key pairs; every message on it is
sealed with XChaCha20-Poly1305 under a fresh nonce (see ``SendChannel``), the
associated data binding source, destination, nodes, message type and a
per-direction sequence number.  The receiving side opens the frame and *then*
stamps ``m_source`` from the channel, so a sender cannot speak for another pid; a
frame that fails to open is counted as tampered, one whose sequence number does
not advance as replayed, and neither is ever delivered.

Delivery to a local endpoint takes one of three paths:

* a reply whose request id a ``sendrec``/``call`` is waiting for -- and that comes
  from the endpoint the request went to -- completes that waiter (:class:`Pending`);
* a request to an endpoint with a direct handler that is idle (not inside its
  handler, nothing queued) is handled inline, in the sender's context -- the
  plan's "direct yield to receiver": no task switch, which is what makes a
  syscall round trip cheap;
* anything else is queued for ``recv`` (bounded: a full queue blocks the sender,
  or fails with EAGAIN under ``NONBLOCK``; a raw frame that finds it full is
  dropped and counted).

A call whose answer can no longer come -- its destination or its caller closed,
the route to the destination's node lost -- is completed with an error reply
(EPIPE, ECONNRESET) instead of waiting forever; so is one whose reply arrived
malformed (EBADMSG).

Other nodes (a client process such as ``xinim-run`` joining a booted system) are
reached through :mod:`xinim_host.lib.transport`, which carries the very same
sealed frames over a Unix socket; ``connect(src, dst, node)`` picks the route.
"""
from __future__ import annotations

import collections
import enum
import errno
import logging
import os
import struct
import types
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import trio

from . import chankey
from .chankey import ChannelKeys, Ends, HandshakeRefused
from .errors import SysError
from .grants import GrantTable
from .protocol import (Message, Payload, ProtocolError, encode, error_reply_for, is_kernel,
                       node_kernel_pid)
from .protocol.wire import _REPLY_TYPES, decode_from, make_message

log = logging.getLogger(__name__)

LOCAL_NODE = 0          # ``connect(..., node=0)`` means "this node", as in the plan's API
DEFAULT_NODE_ID = 1     # the node id of a booted system
INBOX_CAPACITY = 256

# src pid, dst pid, src node, dst node, m_type, seq -- all of it is associated data
FRAME_AD = struct.Struct("<IIHHiQ")

# libsodium's XChaCha20-Poly1305 through PyNaCl's own cffi binding (the library
# PyNaCl ships): the same primitive as ``nacl.bindings``, without that wrapper's
# per-call argument checks (~2.5 us of a ~3.2 us call) -- every length passed here
# is fixed by the frame layout or checked before the call -- nor its import (~15
# modules, ~2 ms of every start; chankey initialises the library).  Falls back to
# the public wrapper if PyNaCl ever stops exposing it.
try:
    from nacl._sodium import ffi as _ffi, lib as _lib

    _aead_encrypt = _lib.crypto_aead_xchacha20poly1305_ietf_encrypt
    _aead_decrypt = _lib.crypto_aead_xchacha20poly1305_ietf_decrypt
    _cbuffer = _ffi.buffer
    _unpack_bytes = _ffi.unpack
    _NULL = _ffi.NULL
    NONCE_SIZE = _lib.crypto_aead_xchacha20poly1305_ietf_npubbytes()
    TAG_SIZE = _lib.crypto_aead_xchacha20poly1305_ietf_abytes()
    KEY_SIZE = _lib.crypto_aead_xchacha20poly1305_ietf_keybytes()
except ImportError:  # pragma: no cover
    _ffi = None
    from nacl import bindings as sodium

    NONCE_SIZE = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
    TAG_SIZE = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES
    KEY_SIZE = sodium.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
# Each direction of a channel moves to a new key (``chankey.ratchet``) every
# REKEY_AFTER messages: see ``SendChannel``.
REKEY_AFTER = 1 << 16
MAX_EPOCH_SKIP = 4      # epochs a received frame may be ahead (frames lost on the way)
_NEVER = 1 << 64        # a plaintext channel's rekey point
_SEEN_OFFERS = 1 << 14  # handshake offers remembered, to refuse a replayed one

# A frame is ``FRAME_AD | nonce | ciphertext+tag``.  The nonce is the sending
# channel's random 16-byte prefix followed by its sequence number (see
# ``SendChannel``), so AD and nonce are packed together in one call.
NONCE_PREFIX_SIZE = 16
_FRAME_HEAD = struct.Struct("<IIHHiQ16sQ")
AD_SIZE = FRAME_AD.size
HEAD_SIZE = _FRAME_HEAD.size
assert HEAD_SIZE == AD_SIZE + NONCE_SIZE
_pack_head = _FRAME_HEAD.pack
_pack_head_into = _FRAME_HEAD.pack_into
_unpack_ad = FRAME_AD.unpack_from
_ZERO_NONCE = bytes(NONCE_SIZE)
_SCRATCH_SIZE = 1 << 14  # > the largest message (header, fixed fields, two 4 KiB data fields)
_FRAME_BUF_SIZE = HEAD_SIZE + _SCRATCH_SIZE + 16   # a whole sealed frame of such a message
_BoundMethod = types.MethodType


class Unencodable(ProtocolError, SysError):
    """A request holding a value that does not fit its field (a program's
    integer): a ProtocolError to whoever speaks the protocol, and to the kernel's
    syscall driver a SysError -- the call fails with EINVAL, nothing raises."""

    def __init__(self, exc: ProtocolError) -> None:
        Exception.__init__(self, str(exc))
        self.errno, self.reason = exc.errno, exc.reason
        self.m_type, self.req_id, self.call = exc.m_type, exc.req_id, exc.call


class IpcFlags(enum.IntFlag):
    NONE = 0
    NONBLOCK = 1


class IpcError(SysError):
    """An IPC call failed: EAGAIN (would block), ENOTCONN (no channel), ESRCH (no such
    endpoint), EPIPE (endpoint closed), EHOSTUNREACH (no route to the node)."""


class ChannelRefused(IpcError):
    """A channel handshake that was malformed, tampered with or replayed (EPROTO);
    already logged where it was found."""


@dataclass
class IpcStats:
    """Counters of what this node's lattice sealed, delivered and dropped."""

    sealed: int = 0
    delivered: int = 0
    handled_direct: int = 0
    tampered: int = 0
    replayed: int = 0
    unroutable: int = 0
    dropped: int = 0         # well-formed frames no one could take (a full queue)
    handshakes_refused: int = 0   # malformed, tampered or replayed channel handshakes


def _check_key(key: bytes | bytearray | None) -> tuple[bytearray | None, Any]:
    """The channel's own copy of ``key`` (a bytearray, so it can be wiped) and the C
    pointer to it that the AEAD calls take."""
    if key is None:
        return None, None
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
        raise ValueError(f"a channel key is {KEY_SIZE} bytes")
    own = key if isinstance(key, bytearray) else bytearray(key)
    return own, (chankey.view(own) if _ffi is not None else bytes(own))


@dataclass(slots=True)
class SendChannel:
    """The sending half of a channel.

    Keys: each direction of each channel has its own key, fresh from the channel's
    handshake (``chankey``), so no two sending channels ever share one.  Every
    ``span`` messages the key moves on one way (``chankey.ratchet``: epoch ``e``
    covers sequence numbers ``e*span+1 .. (e+1)*span``) and the old key is zeroed;
    the receiver follows from the sequence number in the frame's associated data,
    so a rekey needs no message and no round trip.  Counted in messages, not bytes:
    a frame is at most ~8 KiB, so ``span`` messages bound the bytes under one key
    too (65,536 x 8 KiB = 512 MiB), and the sequence number both ends already
    agree on is the counter.

    Nonces: ``prefix`` (16 bytes from ``os.urandom``, drawn when the channel is
    made) followed by ``seq`` (8 bytes, +1 per frame, never reset -- not at a
    rekey either).  Under one key the counter never repeats, so neither does the
    nonce; across a rekey the key itself differs.  A forked child gets fresh
    prefixes (``_refresh_after_fork``), so a copy of the parent's state (same key,
    same counter) can never reuse the parent's nonces.  XChaCha20 derives a subkey
    from the key and the first 16 nonce bytes (HChaCha20), so each prefix even
    gets its own subkey; the counter saves an ``os.urandom`` per message.
    """

    node: int                # the destination's node
    key: bytearray | None    # None: a plaintext channel (benchmarks only)
    seq: int = 0
    prefix: bytes = field(default_factory=lambda: os.urandom(NONCE_PREFIX_SIZE))
    span: int = REKEY_AFTER
    ckey: Any = field(default=None, init=False)       # C pointer to ``key``
    rekey_at: int = field(default=_NEVER, init=False)  # the last seq of this key's epoch

    def __post_init__(self) -> None:
        self.key, self.ckey = _check_key(self.key)
        if self.key is not None:
            self.rekey_at = (self.seq // self.span + 1) * self.span

    def rekey(self, seq: int) -> None:
        """Move to the key of ``seq``'s epoch (the next one), wiping the old key."""
        assert self.key is not None
        epoch = (seq - 1) // self.span
        old = self.key
        self.key, self.ckey = _check_key(chankey.ratchet(old, epoch))
        chankey.wipe(old)
        self.rekey_at = (epoch + 1) * self.span

    def wipe(self) -> None:
        chankey.wipe(self.key)


@dataclass(slots=True)
class RecvChannel:
    """The receiving half of a channel: its key, the last sequence number seen, its rekey
    point."""

    key: bytearray | None
    last_seq: int = 0        # frames must carry a larger one: replay protection
    span: int = REKEY_AFTER
    ckey: Any = field(default=None, init=False)
    rekey_at: int = field(default=_NEVER, init=False)

    def __post_init__(self) -> None:
        self.key, self.ckey = _check_key(self.key)
        if self.key is not None:
            self.rekey_at = (self.last_seq // self.span + 1) * self.span

    def next_key(self, seq: int) -> tuple[bytearray, Any] | None:
        """The key of ``seq``'s (later) epoch, to try on its frame; None if it is
        too far ahead.  Nothing changes until ``adopt``."""
        assert self.key is not None
        epoch = (seq - 1) // self.span
        current = self.rekey_at // self.span   # the epoch after this key's
        if epoch - current >= MAX_EPOCH_SKIP:
            return None
        key = chankey.ratchet(self.key, current)
        while current < epoch:
            current += 1
            older, key = key, chankey.ratchet(key, current)
            chankey.wipe(older)
        return key, chankey.view(key)

    def adopt(self, key: bytearray, ckey: Any, seq: int) -> None:
        """A frame of a later epoch opened with ``key``: it is the key from now on."""
        chankey.wipe(self.key)
        self.key, self.ckey = key, ckey
        self.rekey_at = ((seq - 1) // self.span + 1) * self.span

    def wipe(self) -> None:
        chankey.wipe(self.key)


class Pending:
    """A reply that has not arrived yet: completed by delivery, observed by a
    callback (the interceptor, on the trio thread) or awaited (``sendrec``).

    ``dst``/``node`` say who must answer (a reply from anyone else does not
    complete it); ``m_type`` is the request's type, for an error reply when the
    answer cannot come."""

    __slots__ = ("message", "_callbacks", "_event", "dst", "node", "m_type", "req_id")

    def __init__(self, dst: int | None = None, node: int | None = None, m_type: int = 0,
                 req_id: int = 0) -> None:
        self.message: Message | None
        self._callbacks: list[Callable[[Message], None]] | None
        self._event: trio.Event | None
        self.message = self._callbacks = self._event = None
        self.dst = dst
        self.node = node
        self.m_type = m_type
        self.req_id = req_id

    def done(self) -> bool:
        return self.message is not None

    def add_done_callback(self, callback: Callable[[Message], None]) -> None:
        if self.message is not None:
            callback(self.message)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def set(self, message: Message) -> None:
        self.message = message
        if self._event is not None:
            self._event.set()
        callbacks = self._callbacks
        if callbacks:
            self._callbacks = None
            for callback in callbacks:
                callback(message)

    def fail(self, err: int) -> None:
        """Complete with the error reply ``err`` (the answer cannot come)."""
        if self.message is None:
            self.set(make_message(self.dst if self.dst is not None else 0, self.req_id,
                                  error_reply_for(self.m_type, err)))

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
    """A lattice endpoint: its queue, its handler (direct dispatch), its calls awaiting
    replies."""

    pid: int
    capacity: int = INBOX_CAPACITY
    inbox: collections.deque[Delivery] = field(default_factory=collections.deque)
    handler: Callable[[Delivery], None] | None = None
    busy: bool = False       # inside its handler: deliveries queue instead (no re-entry)
    closed: bool = False
    pending: dict[int, Pending] = field(default_factory=dict)
    receivers: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    senders: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)


@dataclass
class NodePeer:
    """A joined node as the boot knows it: who is behind its link (SO_PEERCRED).
    Its kernel may speak only for the XINIM processes PM made for it (``owners``),
    and those get at most its host user's credentials."""

    node: int
    uid: int
    gid: int
    host_pid: int

    @property
    def kernel_pid(self) -> int:
        return node_kernel_pid(self.node)


class Route(Protocol):
    """A way to another node (see ``transport.SocketRoute``).  ``binding``: what
    the link's authentication proved (a MAC only the two ends can make); it goes
    into every channel handshake on the link."""

    binding: bytes

    def send_frame(self, frame: bytes) -> None: ...
    async def handshake(self, src: int, src_node: int, dst: int, offer: bytes) -> bytes: ...


def _fail_all(pendings: list[Pending], err: int) -> None:
    """Fail each call; a waiter's callback that raises must not stop the others (this
    runs while endpoints close, e.g. at shutdown)."""
    for pending in pendings:
        try:
            pending.fail(err)
        except Exception:
            log.exception("a waiter's callback failed while its call was failed (errno %d)", err)


_LATTICES: "weakref.WeakSet[Lattice]" = weakref.WeakSet()


def _refresh_after_fork() -> None:
    for lattice in list(_LATTICES):
        for channel in lattice.send_channels.values():
            channel.prefix = os.urandom(NONCE_PREFIX_SIZE)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_refresh_after_fork)


class Lattice:
    """The IPC fabric of one node: its endpoints, channels and routes."""

    def __init__(self, node_id: int = DEFAULT_NODE_ID, *, rekey_after: int = REKEY_AFTER) -> None:
        self.node_id = node_id
        self.rekey_after = rekey_after   # messages per key, each direction (see SendChannel)
        self._seen_offers: dict[bytes, None] = {}   # recent handshake offers (insertion order)
        self.endpoints: dict[int, Endpoint] = {}
        self.send_channels: dict[tuple[int, int], SendChannel] = {}
        self.recv_channels: dict[tuple[int, int, int], RecvChannel] = {}  # (src node, src, dst)
        self.routes: dict[int, Route] = {}
        # Joined nodes (set by the transport once a peer proved itself), and which
        # node each XINIM pid/tid belongs to (set by PM as it names tasks).
        self.peers: dict[int, NodePeer] = {}
        self.joined = False   # a node ever joined (stays set: what it did may outlive it)
        self.owners: dict[int, int] = {}
        self.stats = IpcStats()
        # pid -> what starts that server when it is first needed (a message to it, a
        # channel asked of it); used once (system/boot.py: NET)
        self.on_demand: dict[int, Callable[[], None]] = {}
        # --ipc: told of every message this node seals (src, dst, dst node, type, bytes)
        self.tap: Callable[[int, int, int, int, int], None] | None = None
        # This node's memory grants (lib/grants.py): the kernel makes them, its
        # servers copy through them; they never leave the node.
        self.grants = GrantTable()
        self._next_req_id = 1
        # Decryption output; every use copies out of it before anything else runs.
        self._scratch = _ffi.new("unsigned char[]", _SCRATCH_SIZE) if _ffi is not None else None
        self._cscratch = _ffi.cast("char *", self._scratch) if _ffi is not None else None
        # Sealing output: a frame is built here (head, then ciphertext) and copied out
        # once; C pointers to its parts, made once.
        self._fbuf = bytearray(_FRAME_BUF_SIZE)
        # the frame last sealed into it (while it is this object, the buffer holds it)
        self._sealed: bytes | None = None
        if _ffi is not None:
            self._cf_head = _ffi.from_buffer("unsigned char[]", self._fbuf)
            self._cf_nonce = self._cf_head + AD_SIZE
            self._cf_body = self._cf_head + HEAD_SIZE
            self._cf_frame = _ffi.cast("char *", self._cf_head)
        _LATTICES.add(self)

    # --- joined nodes ------------------------------------------------------------

    def peer_of_kernel(self, pid: int) -> NodePeer | None:
        """The joined node whose kernel ``pid`` is (None: not a joined node's kernel)."""
        peer = self.peers.get(pid - (node_kernel_pid(0)))
        return peer if peer is not None and peer.kernel_pid == pid else None

    def may_speak_for(self, source: int, caller: int) -> bool:
        """May a joined node's kernel ``source`` act for ``caller``?  Only for itself
        and the processes of its own node; anyone else is not restricted here."""
        peer = self.peer_of_kernel(source)
        if peer is None:
            return True
        return caller == source or self.owners.get(caller) == peer.node

    # --- endpoints and channels ------------------------------------------------

    def register(self, pid: int, capacity: int = INBOX_CAPACITY) -> Endpoint:
        if pid in self.endpoints and not self.endpoints[pid].closed:
            raise IpcError(errno.EADDRINUSE, f"endpoint {pid} already registered")
        endpoint = Endpoint(pid, capacity)
        self.endpoints[pid] = endpoint
        return endpoint

    def close(self, pid: int) -> None:
        """Close an endpoint: its queued messages are dropped, waiters woken, and the
        calls it made or that wait for its answer fail with EPIPE."""
        endpoint = self.endpoints.get(pid)
        if endpoint is None:
            return
        endpoint.closed = True
        endpoint.inbox.clear()
        endpoint.receivers.unpark_all()
        endpoint.senders.unpark_all()
        own = list(endpoint.pending.values())
        endpoint.pending.clear()
        _fail_all(own, errno.EPIPE)
        self.fail_pending(errno.EPIPE, dst=pid, node=self.node_id)

    def fail_pending(self, err: int, *, dst: int | None = None, node: int | None = None) -> int:
        """Complete with ``err`` every call waiting for an answer from ``dst`` (any pid
        if None) on ``node`` (any node if None); returns how many there were."""
        failed = []
        for endpoint in self.endpoints.values():
            for req_id, pending in list(endpoint.pending.items()):
                if ((dst is None or pending.dst == dst)
                        and (node is None or pending.node == node)):
                    del endpoint.pending[req_id]
                    failed.append(pending)
        _fail_all(failed, err)
        return len(failed)

    def _set_send(self, src: int, dst: int, dst_node: int, key: bytearray | None) -> None:
        old = self.send_channels.get((src, dst))
        self.send_channels[(src, dst)] = SendChannel(dst_node, key, span=self.rekey_after)
        if old is not None:
            old.wipe()

    def _set_recv(self, src_node: int, src: int, dst: int, key: bytearray | None) -> None:
        old = self.recv_channels.get((src_node, src, dst))
        self.recv_channels[(src_node, src, dst)] = RecvChannel(key, span=self.rekey_after)
        if old is not None:
            old.wipe()

    def _install(self, ends: Ends, keys: ChannelKeys, *, initiator: bool) -> None:
        """One side's halves of a channel whose handshake is done: the initiator
        sends with ``forward`` and receives with ``backward``, the responder the
        other way round.  Every channel has keys of its own (a new handshake each
        time), so frames of an earlier channel of the same pair do not open on this
        one; the halves it replaces are wiped.  Each half owns its key buffer (the
        two sides of an in-node channel hold separate copies)."""
        if initiator:
            self._set_send(ends.src, ends.dst, ends.dst_node, keys.forward)
            self._set_recv(ends.dst_node, ends.dst, ends.src, keys.backward)
        else:
            self._set_recv(ends.src_node, ends.src, ends.dst, keys.forward)
            self._set_send(ends.dst, ends.src, ends.src_node, keys.backward)

    def _refused(self, ends: Ends, exc: HandshakeRefused) -> ChannelRefused:
        """One log line for a handshake that gives no channel; the caller's error."""
        self.stats.handshakes_refused += 1
        log.warning("channel %d@%d -> %d@%d refused: %s", ends.src, ends.src_node, ends.dst,
                    ends.dst_node, exc.reason)
        return ChannelRefused(exc.errno, f"channel {ends.src} -> {ends.dst}: {exc.reason}")

    def respond(self, ends: Ends, offer: bytes) -> bytes:
        """The asked side of a handshake, in-node or for another node: checks the
        offer, makes the channel's local halves, returns the answer.  A malformed
        or replayed offer is refused (IpcError EPROTO, logged once)."""
        try:
            x_i = offer[:chankey.X25519_SIZE]
            if x_i in self._seen_offers:
                raise HandshakeRefused("replayed handshake offer")
            keys, answer = chankey.respond(ends, offer)
        except HandshakeRefused as exc:
            raise self._refused(ends, exc) from None
        # X25519 keys are fresh per offer: one seen before is a recording played back
        self._seen_offers[x_i] = None
        if len(self._seen_offers) > _SEEN_OFFERS:
            del self._seen_offers[next(iter(self._seen_offers))]
        self._install(ends, keys, initiator=False)
        return answer

    def finish(self, ends: Ends, initiator: chankey.Initiator, answer: bytes) -> None:
        """The asking side's last step: check the answer, make the local halves."""
        try:
            keys = initiator.finish(answer)
        except HandshakeRefused as exc:
            raise self._refused(ends, exc) from None
        self._install(ends, keys, initiator=True)

    def connect_local(self, src: int, dst: int, *, encrypted: bool = True) -> None:
        """Channel between two endpoints of this node (both directions): the same
        handshake as across nodes, both sides of it here."""
        self._endpoint(src), self._endpoint(dst)
        node = self.node_id
        if not encrypted:
            for a, b in ((src, dst), (dst, src)):
                self._set_send(a, b, node, None)
                self._set_recv(node, a, b, None)
            return
        ends = Ends(src, node, dst, node)
        initiator = chankey.Initiator(ends)
        self.finish(ends, initiator, self.respond(ends, initiator.offer))

    async def connect(self, src: int, dst: int, node: int = LOCAL_NODE, *,
                      encrypted: bool = True) -> None:
        """The plan's ``lattice_connect``: a channel from local ``src`` to ``dst`` on ``node``."""
        if node in (LOCAL_NODE, self.node_id):
            self.connect_local(src, dst, encrypted=encrypted)
            return
        route = self.routes.get(node)
        if route is None:
            raise IpcError(errno.EHOSTUNREACH, f"no route to node {node}")
        self._endpoint(src)
        ends = Ends(src, self.node_id, dst, node, route.binding)
        initiator = chankey.Initiator(ends)
        try:
            answer = await route.handshake(src, self.node_id, dst, initiator.offer)
        except BaseException:
            initiator.abandon()
            raise
        self.finish(ends, initiator, answer)

    def accept_remote(self, src: int, src_node: int, dst: int, offer: bytes,
                      binding: bytes) -> bytes:
        """A remote ``connect`` reached local ``dst``: answer its handshake (``respond``).

        A pid lives on one node: a remote peer cannot take the pid of a local
        endpoint, nor of a pid this endpoint already talks to on another node
        (that would re-route, say, a server's replies to the kernel)."""
        self._endpoint(dst)
        if src_node in (LOCAL_NODE, self.node_id) or src in self.endpoints:
            raise IpcError(errno.EADDRINUSE, f"pid {src} is local to node {self.node_id}")
        if is_kernel(src) and src != node_kernel_pid(src_node):
            raise IpcError(errno.EPERM, f"node {src_node} may not claim kernel pid {src}")
        existing = self.send_channels.get((dst, src))
        if existing is not None and existing.node != src_node:
            raise IpcError(errno.EADDRINUSE, f"pid {src} is on node {existing.node}")
        return self.respond(Ends(src, src_node, dst, self.node_id, binding), offer)

    def forget_node(self, node: int) -> None:
        """Drop (and wipe) every channel to or from ``node``."""
        for key in [k for k, ch in self.send_channels.items() if ch.node == node]:
            self.send_channels.pop(key).wipe()
        for key in [k for k in self.recv_channels if k[0] == node]:
            self.recv_channels.pop(key).wipe()

    def _endpoint(self, pid: int) -> Endpoint:
        endpoint = self.endpoints.get(pid)
        if endpoint is None:
            if pid in self.on_demand and self._start_on_demand(pid):
                return self._endpoint(pid)
            raise IpcError(errno.ESRCH, f"no endpoint {pid}")
        if endpoint.closed:
            raise IpcError(errno.EPIPE, f"endpoint {pid} is closed")
        return endpoint

    # --- sending ------------------------------------------------------------------

    def new_req_id(self) -> int:
        req_id = self._next_req_id
        self._next_req_id += 1
        return req_id

    def _seal_on(self, channel: SendChannel, src: int, dst: int, m_type: int,
                 plaintext: bytes) -> bytes:
        seq = channel.seq = channel.seq + 1
        self.stats.sealed += 1
        if self.tap is not None:
            self.tap(src, dst, channel.node, m_type, len(plaintext))
        if seq > channel.rekey_at:   # this key's messages are used up: the next one
            channel.rekey(seq)
        key = channel.ckey
        if key is None:
            return FRAME_AD.pack(src, dst, self.node_id, channel.node, m_type, seq) \
                + _ZERO_NONCE + plaintext
        if _ffi is None:  # pragma: no cover
            head = _pack_head(src, dst, self.node_id, channel.node, m_type, seq, channel.prefix,
                              seq)
            return head + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
                plaintext, head[:AD_SIZE], head[AD_SIZE:], bytes(channel.key))
        n = len(plaintext)
        total = HEAD_SIZE + n + TAG_SIZE
        if total > _FRAME_BUF_SIZE:
            head = _pack_head(src, dst, self.node_id, channel.node, m_type, seq, channel.prefix,
                              seq)
            out = _ffi.new("unsigned char[]", n + TAG_SIZE)
            _aead_encrypt(out, _NULL, plaintext, n, head, AD_SIZE, _NULL, head[AD_SIZE:], key)
            return head + _cbuffer(out, n + TAG_SIZE)
        # head, then the ciphertext after it, in the one preallocated buffer: AD is
        # its first AD_SIZE bytes, the nonce the rest of the head; one copy out
        _pack_head_into(self._fbuf, 0, src, dst, self.node_id, channel.node, m_type, seq,
                        channel.prefix, seq)
        _aead_encrypt(self._cf_body, _NULL, plaintext, n, self._cf_head, AD_SIZE, _NULL,
                      self._cf_nonce, key)
        frame = self._sealed = _unpack_bytes(self._cf_frame, total)
        return frame

    def _send_local(self, channel: SendChannel, src: int, dst: int, m_type: int,
                    plaintext: bytes) -> None:
        """``deliver_frame(_seal_on(...))`` for a destination on this node, without
        making the frame: it is sealed into the sealing buffer and opened there with
        the receiving half's key -- associated data, nonce and tag checked as for any
        frame, then the replay check -- with no copy of the frame and no parse of the
        head this very call wrote.  Anything unusual (a plaintext channel, a rekey
        due on either half, a big message, ``tap``, a ``deliver_frame`` replaced on
        this lattice -- a test's spy, seen as a plain function where the bound method
        should be; not by looking in ``self.__dict__``, which would make CPython 3.11
        build the instance's dict and slow every attribute of the lattice after it,
        ~0.8 us a call) takes the general path."""
        node = self.node_id
        rchan = self.recv_channels.get((node, src, dst))
        seq = channel.seq + 1
        key = channel.ckey
        n = len(plaintext)
        if (key is None or rchan is None or seq > channel.rekey_at or seq > rchan.rekey_at
                or n > _SCRATCH_SIZE or _ffi is None or self.tap is not None
                or type(self.deliver_frame) is not _BoundMethod):
            self.deliver_frame(self._seal_on(channel, src, dst, m_type, plaintext))
            return
        channel.seq = seq
        self.stats.sealed += 1
        endpoint = self.endpoints.get(dst)
        if endpoint is None or endpoint.closed:   # as ``deliver_frame``: nobody to take it
            self.stats.unroutable += 1
            log.debug("dropped frame %d@%d -> %d: no channel or endpoint", src, node, dst)
            return
        _pack_head_into(self._fbuf, 0, src, dst, node, node, m_type, seq, channel.prefix, seq)
        self._sealed = None      # the buffer no longer holds the frame last copied out
        head, nonce, body = self._cf_head, self._cf_nonce, self._cf_body
        _aead_encrypt(body, _NULL, plaintext, n, head, AD_SIZE, _NULL, nonce, key)
        if _aead_decrypt(self._scratch, _NULL, _NULL, body, n + TAG_SIZE, head, AD_SIZE, nonce,
                         rchan.ckey) != 0:
            self.stats.tampered += 1
            log.warning("dropped tampered frame %d@%d -> %d", src, node, dst)
            return
        self._accept(endpoint, rchan, src, node, dst, m_type, seq,
                     _unpack_bytes(self._cscratch, n))

    def send_bytes(self, src: int, dst: int, m_type: int, plaintext: bytes) -> None:
        """Seal and deliver an already-encoded message without blocking.

        The primitive under every send; public so tests and fuzzers can send what a
        buggy or hostile peer would (malformed payloads on a valid channel).
        """
        channel = self.send_channels.get((src, dst))
        if channel is None:
            channel = self._channel_or_fail(src, dst)
        if channel.node == self.node_id:
            self._send_local(channel, src, dst, m_type, plaintext)
        else:
            frame = self._seal_on(channel, src, dst, m_type, plaintext)
            route = self.routes.get(channel.node)
            if route is None:
                raise IpcError(errno.EHOSTUNREACH, f"no route to node {channel.node}")
            route.send_frame(frame)

    def _start_on_demand(self, pid: int) -> bool:
        """Start server ``pid`` if it starts on first use; True if it is there now.
        A server that fails to start is logged and stays absent (ESRCH)."""
        start = self.on_demand.pop(pid, None)
        if start is None:
            return False
        try:
            start()
        except Exception:   # noqa: BLE001 -- its callers get ESRCH, the rest goes on
            log.exception("server %d failed to start", pid)
            return False
        return pid in self.endpoints

    def _channel_or_fail(self, src: int, dst: int) -> SendChannel:
        """The channel ``src -> dst`` once a server that starts on first use is up,
        else the reason there is none (raised)."""
        if dst in self.on_demand and self._start_on_demand(dst):
            channel = self.send_channels.get((src, dst))
            if channel is not None:
                return channel
        raise self._no_channel(src, dst)

    def _no_channel(self, src: int, dst: int) -> IpcError:
        """Why there is no channel ``src -> dst``: no such endpoint here (ESRCH), a closed
        one (EPIPE), or none made (ENOTCONN)."""
        try:
            self._endpoint(dst)
        except IpcError as exc:
            return exc
        return IpcError(errno.ENOTCONN, f"no channel {src} -> {dst}")

    def _check_room(self, dst: int, m_type: int) -> None:
        endpoint = self.endpoints.get(dst)
        if endpoint is None or endpoint.closed:
            self._endpoint(dst)  # raises ESRCH / EPIPE
        if (m_type not in _REPLY_TYPES
                and (endpoint.handler is None or endpoint.busy or endpoint.inbox)
                and len(endpoint.inbox) >= endpoint.capacity):
            raise IpcError(errno.EAGAIN, f"endpoint {dst} queue full")

    def send_nowait(self, src: int, dst: int, body: Payload, req_id: int = 0) -> None:
        """``send`` with NONBLOCK: EAGAIN when the destination's queue is full."""
        channel = self.send_channels.get((src, dst))
        if channel is None:
            channel = self._channel_or_fail(src, dst)
        if channel.node == self.node_id:
            self._check_room(dst, body.M_TYPE)
        self.send_bytes(src, dst, body.M_TYPE, encode(body, src, req_id))

    async def _wait_room(self, src: int, dst: int) -> None:
        channel = self.send_channels.get((src, dst))
        if channel is not None and channel.node != self.node_id:
            await trio.sleep(0)     # a congested route: let its writer drain
        else:
            await self._endpoint(dst).senders.park()

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
            await self._wait_room(src, dst)

    def reply(self, src: int, request: Message, body: Payload) -> None:
        """Answer ``request``; replies never block (they complete a waiter or queue)."""
        dst = request.m_source
        channel = self.send_channels.get((src, dst))
        if channel is None:
            channel = self._channel_or_fail(src, dst)
        plaintext = body._encode_msg(src, request.req_id)  # type: ignore[attr-defined]
        if channel.node == self.node_id:
            self._send_local(channel, src, dst, body.M_TYPE, plaintext)
        else:
            frame = self._seal_on(channel, src, dst, body.M_TYPE, plaintext)
            route = self.routes.get(channel.node)
            if route is None:
                raise IpcError(errno.EHOSTUNREACH, f"no route to node {channel.node}")
            route.send_frame(frame)

    def call(self, src: int, dst: int, body: Payload) -> Message | Pending:
        """Send a request and return its reply if it came at once, else a :class:`Pending`.

        The synchronous half of ``sendrec``, for the interceptor: a tracee whose reply
        is pending simply stays stopped until the callback fires.
        """
        endpoint = self.endpoints.get(src)
        if endpoint is None or endpoint.closed:
            endpoint = self._endpoint(src)  # raises
        channel = self.send_channels.get((src, dst))
        if channel is None:
            channel = self._channel_or_fail(src, dst)
        m_type = body.M_TYPE
        node = channel.node
        if node == self.node_id:
            target = self.endpoints.get(dst)
            if (target is None or target.closed or
                    ((target.handler is None or target.busy or target.inbox)
                     and len(target.inbox) >= target.capacity)):
                self._check_room(dst, m_type)   # raises the right error
        req_id = self._next_req_id
        self._next_req_id = req_id + 1
        try:
            plaintext = body._encode_msg(src, req_id)  # type: ignore[attr-defined]
        except ProtocolError as exc:   # a value that does not fit its field: the call fails
            raise Unencodable(exc) from None
        pending = Pending(dst, node, m_type, req_id)
        pendings = endpoint.pending
        pendings[req_id] = pending
        try:
            if node == self.node_id:
                self._send_local(channel, src, dst, m_type, plaintext)
            else:
                route = self.routes.get(node)
                if route is None:
                    raise IpcError(errno.EHOSTUNREACH, f"no route to node {node}")
                route.send_frame(self._seal_on(channel, src, dst, m_type, plaintext))
        except BaseException:
            pendings.pop(req_id, None)
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
            await self._wait_room(src, dst)
        if isinstance(result, Pending):
            try:
                return await result.wait()
            finally:
                if endpoint.pending.get(result.req_id) is result:
                    del endpoint.pending[result.req_id]
        return result

    # --- receiving ----------------------------------------------------------------

    def deliver_frame(self, frame: bytes | bytearray | memoryview,
                      from_node: int | None = None) -> None:
        """Open a frame addressed to this node and hand it to its endpoint.

        ``from_node``: the node whose link the frame came in on (the transport says);
        a frame claiming to come from another node is dropped as tampered."""
        if type(frame) is not bytes:
            frame = bytes(frame)
        flen = len(frame)
        if flen < HEAD_SIZE:
            self.stats.tampered += 1
            return
        src, dst, src_node, dst_node, m_type, seq = _unpack_ad(frame, 0)
        if from_node is not None and src_node != from_node:
            self.stats.tampered += 1
            log.warning("dropped frame claiming node %d on node %d's link", src_node, from_node)
            return
        if dst_node != self.node_id:
            route = self.routes.get(dst_node)
            if route is None:
                self.stats.unroutable += 1
                return
            route.send_frame(frame)
            return
        channel = self.recv_channels.get((src_node, src, dst))
        endpoint = self.endpoints.get(dst)
        if channel is None or endpoint is None or endpoint.closed:
            self.stats.unroutable += 1
            log.debug("dropped frame %d@%d -> %d: no channel or endpoint", src, src_node, dst)
            return
        key = channel.ckey
        if seq > channel.rekey_at:   # sealed under a later epoch's key
            plaintext = self._open_later_epoch(channel, frame, src, src_node, dst, seq)
            if plaintext is None:
                return
        elif key is None:
            plaintext = frame[HEAD_SIZE:]
        elif _ffi is not None:
            size = flen - HEAD_SIZE - TAG_SIZE
            if size <= _SCRATCH_SIZE:
                out, cout = self._scratch, self._cscratch
            else:
                out = _ffi.new("unsigned char[]", size)
                cout = _ffi.cast("char *", out)
            if frame is self._sealed:
                # the frame this lattice just sealed, still in its sealing buffer: read
                # it there (no copies of its parts); the tag is checked all the same
                ok = _aead_decrypt(out, _NULL, _NULL, self._cf_body, size + TAG_SIZE,
                                   self._cf_head, AD_SIZE, self._cf_nonce, key) == 0
            else:
                # AD: the frame's first AD_SIZE bytes (the call reads no further)
                ok = size >= 0 and _aead_decrypt(
                    out, _NULL, _NULL, frame[HEAD_SIZE:], size + TAG_SIZE, frame, AD_SIZE,
                    frame[AD_SIZE:HEAD_SIZE], key) == 0
            if not ok:
                self.stats.tampered += 1
                log.warning("dropped tampered frame %d@%d -> %d", src, src_node, dst)
                return
            plaintext = _unpack_bytes(cout, size)
        else:  # pragma: no cover
            try:
                plaintext = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                    frame[HEAD_SIZE:], frame[:AD_SIZE], frame[AD_SIZE:HEAD_SIZE], key)
            except Exception:  # nacl CryptoError: forged, corrupted or misrouted
                self.stats.tampered += 1
                log.warning("dropped tampered frame %d@%d -> %d", src, src_node, dst)
                return
        self._accept(endpoint, channel, src, src_node, dst, m_type, seq, plaintext)

    def _accept(self, endpoint: Endpoint, channel: RecvChannel, src: int, src_node: int,
                dst: int, m_type: int, seq: int, plaintext: bytes) -> None:
        """An opened frame: the replay check, then decode and hand it on (a waiting
        call, the endpoint's handler inline, or its queue)."""
        if seq <= channel.last_seq:
            self.stats.replayed += 1
            log.warning("dropped replayed frame %d@%d -> %d (seq %d)", src, src_node, dst, seq)
            return
        channel.last_seq = seq
        self.stats.delivered += 1
        try:
            # The channel, not the payload, says who sent it.
            message = decode_from(plaintext, src)
            if message.body.M_TYPE != m_type:
                raise ProtocolError(errno.EBADMSG, "type differs from the frame's", m_type,
                                    message.req_id)
        except ProtocolError as exc:
            exc.m_source = src  # type: ignore[attr-defined]
            if exc.m_type in _REPLY_TYPES and exc.req_id is not None:
                # A malformed answer to a waiting call: it fails rather than hangs.
                pending = endpoint.pending.get(exc.req_id)
                if pending is not None and pending.dst in (None, src) \
                        and pending.node in (None, src_node):
                    del endpoint.pending[exc.req_id]
                    pending.fail(exc.errno)
                    return
            self._enqueue_or_handle(endpoint, exc)
            return
        if m_type in _REPLY_TYPES:
            pending = endpoint.pending.get(message.req_id)
            if pending is not None and (pending.dst is None or pending.dst == src) \
                    and (pending.node is None or pending.node == src_node):
                del endpoint.pending[message.req_id]
                pending.set(message)
                return
            self._enqueue(endpoint, message)   # unsolicited: for ``recv``
            return
        # ``_enqueue_or_handle``, inline
        handler = endpoint.handler
        if handler is not None and not endpoint.busy and not endpoint.inbox:
            self.stats.handled_direct += 1
            endpoint.busy = True
            try:
                handler(message)
            finally:
                endpoint.busy = False
            return
        self._enqueue(endpoint, message)

    def _open_later_epoch(self, channel: RecvChannel, frame: bytes, src: int, src_node: int,
                          dst: int, seq: int) -> bytes | None:
        """Open a frame sealed under a later epoch's key (the sender rekeyed): with
        that key, which the channel adopts only if the frame opens with it."""
        later = channel.next_key(seq)
        if later is None:
            self.stats.tampered += 1
            log.warning("dropped frame %d@%d -> %d: seq %d too far ahead", src, src_node, dst,
                        seq)
            return None
        key, ckey = later
        size = len(frame) - HEAD_SIZE - TAG_SIZE
        if _ffi is not None:
            out = _ffi.new("unsigned char[]", max(size, 1))
            ok = size >= 0 and _aead_decrypt(out, _NULL, _NULL, frame[HEAD_SIZE:],
                                             size + TAG_SIZE, frame, AD_SIZE,
                                             frame[AD_SIZE:HEAD_SIZE], ckey) == 0
            plaintext = _unpack_bytes(_ffi.cast("char *", out), size) if ok else None
        else:  # pragma: no cover
            try:
                plaintext = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                    frame[HEAD_SIZE:], frame[:AD_SIZE], frame[AD_SIZE:HEAD_SIZE], ckey)
            except Exception:
                plaintext = None
        if plaintext is None:
            chankey.wipe(key)
            self.stats.tampered += 1
            log.warning("dropped tampered frame %d@%d -> %d", src, src_node, dst)
            return None
        channel.adopt(key, ckey, seq)   # authentic: that epoch's key from now on
        return plaintext

    def _enqueue_or_handle(self, endpoint: Endpoint, delivery: Delivery) -> None:
        handler = endpoint.handler
        if handler is not None and not endpoint.busy and not endpoint.inbox:
            self.stats.handled_direct += 1
            endpoint.busy = True
            try:
                handler(delivery)
            finally:
                endpoint.busy = False
            return
        self._enqueue(endpoint, delivery)

    def _enqueue(self, endpoint: Endpoint, delivery: Delivery) -> None:
        if len(endpoint.inbox) >= endpoint.capacity:
            # Senders that use ``send``/``call`` wait for room (EAGAIN); what arrives
            # anyway (a raw frame, a frame from another node, an unsolicited reply)
            # must not grow the queue.  A request is answered EAGAIN for its
            # destination, so a caller that waits for the reply does not wait forever.
            self.stats.dropped += 1
            log.debug("endpoint %d queue full: dropped a delivery", endpoint.pid)
            if type(delivery) is Message and delivery.body.M_TYPE not in _REPLY_TYPES:
                try:
                    self.reply(endpoint.pid, delivery,
                               error_reply_for(delivery.body.M_TYPE, errno.EAGAIN))
                except (IpcError, ProtocolError):
                    pass
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
