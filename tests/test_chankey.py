"""Channel keys: the hybrid ML-KEM-768 + X25519 handshake, rekeying, refusals.

In-node channels (``connect_local``) and node links (``connect`` over a route) run
the same handshake (``chankey``, ``Lattice.respond``/``finish``); here both, the
remote one over an in-memory route that can record, tamper with and replay what
crosses it (the socket transport is tested in test_transport.py)."""
from __future__ import annotations

import errno
import logging
import os
import struct
from typing import Callable

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from nacl import bindings as sodium

from xinim_host.lib import chankey, ipc
from xinim_host.lib import protocol as p
from xinim_host.lib.chankey import Ends
from xinim_host.lib.ipc import IpcError, Lattice
from xinim_host.lib.server import Server

KERNEL, SERVER, USER = p.KERNEL_PID, p.VFS_PID, 7
AD = ipc.FRAME_AD.size
HEAD = AD + ipc.NONCE_SIZE
A_NODE, B_NODE = 5, 1
BINDING = b"\x07" * 32


class Echo(Server):
    pid = SERVER
    reply_type = p.VFS_REPLY


Echo.handlers = {p.VFS_CLOSE: lambda srv, req: req.body.fd}


def keys_of(lattice: Lattice, src: int, dst: int) -> tuple[bytes, bytes]:
    """(src -> dst key, dst -> src key) of an in-node channel, as bytes."""
    return (bytes(lattice.send_channels[(src, dst)].key),
            bytes(lattice.send_channels[(dst, src)].key))


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "refused" in r.getMessage()]


def assert_refused_once(caplog: pytest.LogCaptureFixture, reason: str) -> None:
    found = refusals(caplog)
    assert len(found) == 1 and reason in found[0].getMessage(), [r.getMessage() for r in found]
    assert all(r.exc_info is None for r in caplog.records)   # a log line, no traceback


# --- the KDF ---------------------------------------------------------------------------------


def _material() -> tuple[Ends, bytes, bytes, bytes]:
    return (Ends(KERNEL, 1, SERVER, 1), os.urandom(chankey.OFFER_SIZE),
            os.urandom(chankey.X25519_SIZE), os.urandom(chankey.CT_SIZE))


def test_the_key_depends_on_both_shared_secrets_and_the_transcript() -> None:
    ends, offer, x_r, ct = _material()
    ss_kem, ss_x = os.urandom(32), os.urandom(32)

    def derive(kem: bytes = ss_kem, x: bytes = ss_x, **change: object) -> tuple[bytes, ...]:
        args = {"ends": ends, "offer": offer, "x_r": x_r, "ct": ct, **change}
        keys, tag = chankey.combine(args["ends"], args["offer"], args["x_r"], args["ct"],
                                    bytearray(kem + x))
        return bytes(keys.forward), bytes(keys.backward), tag

    base = derive()
    assert derive() == base                                  # deterministic
    assert len(set(base)) == 3                               # two directions, one tag
    variants = {
        "ML-KEM secret": derive(kem=os.urandom(32)),
        "X25519 secret": derive(x=os.urandom(32)),
        "one bit of the ML-KEM secret": derive(kem=bytes([ss_kem[0] ^ 1]) + ss_kem[1:]),
        "one bit of the X25519 secret": derive(x=ss_x[:-1] + bytes([ss_x[-1] ^ 0x80])),
        "ciphertext": derive(ct=ct[:-1] + bytes([ct[-1] ^ 1])),
        "offer (initiator's keys)": derive(offer=bytes([offer[0] ^ 1]) + offer[1:]),
        "responder's X25519 key": derive(x_r=bytes(32)),
        "endpoints": derive(ends=Ends(KERNEL, 1, p.PM_PID, 1)),
        "nodes": derive(ends=Ends(KERNEL, 2, SERVER, 1)),
        "link binding": derive(ends=Ends(KERNEL, 1, SERVER, 1, BINDING)),
    }
    for what, keys in variants.items():
        assert keys[0] != base[0] and keys[1] != base[1] and keys[2] != base[2], what


def test_kdf_input_is_wiped() -> None:
    ends, offer, x_r, ct = _material()
    ikm = bytearray(os.urandom(64))
    chankey.combine(ends, offer, x_r, ct, ikm)
    assert ikm == bytearray(64)


# --- ML-KEM-768 from the library: known answer and round trip -----------------------------


def test_mlkem768_known_answer_and_round_trip() -> None:
    """pyca/cryptography ships no FIPS 203 vectors in the package, so: a key pair from
    a fixed seed is the same key pair every time (same encapsulation key, same
    decapsulation), a ciphertext made by the library decapsulates to the secret
    it encapsulated, a changed ciphertext to another (implicit rejection), and
    malformed keys and ciphertexts are ValueErrors we turn into refusals."""
    seed = bytes(range(64))
    key = MLKEM768PrivateKey.from_seed_bytes(seed)
    again = MLKEM768PrivateKey.from_seed_bytes(seed)
    ek = key.public_key().public_bytes_raw()
    assert len(ek) == chankey.EK_SIZE and again.public_key().public_bytes_raw() == ek
    assert key.private_bytes_raw() == seed
    secret, ct = MLKEM768PublicKey.from_public_bytes(ek).encapsulate()
    assert len(ct) == chankey.CT_SIZE and len(secret) == 32
    assert key.decapsulate(ct) == secret == again.decapsulate(ct)
    bent = bytearray(ct)
    bent[100] ^= 1
    assert key.decapsulate(bytes(bent)) != secret
    assert key.decapsulate(bytes(bent)) == again.decapsulate(bytes(bent))   # deterministic
    with pytest.raises(ValueError):
        MLKEM768PublicKey.from_public_bytes(b"\xff" * chankey.EK_SIZE)  # not reduced mod q
    with pytest.raises(ValueError):
        key.decapsulate(ct[:-1])
    # what our handshake makes is the library's own kind of key
    initiator = chankey.Initiator(Ends(1, 1, 2, 1))
    assert isinstance(initiator._kem, MLKEM768PrivateKey)
    ours = MLKEM768PublicKey.from_public_bytes(initiator.offer[chankey.X25519_SIZE:])
    assert ours.public_bytes_raw() == initiator.offer[chankey.X25519_SIZE:]


def test_handshake_round_trip_gives_both_sides_the_same_keys() -> None:
    ends = Ends(KERNEL, A_NODE, SERVER, B_NODE, BINDING)
    initiator = chankey.Initiator(ends)
    assert len(initiator.offer) == chankey.OFFER_SIZE
    theirs, answer = chankey.respond(ends, initiator.offer)
    assert len(answer) == chankey.ANSWER_SIZE
    ours = initiator.finish(answer)
    assert (ours.forward, ours.backward) == (theirs.forward, theirs.backward)
    assert ours.forward != ours.backward
    assert initiator._x_secret == bytearray(32) and initiator._kem is None   # wiped
    with pytest.raises(chankey.HandshakeRefused):   # an initiator finishes once
        initiator.finish(answer)


# --- in-node channels ------------------------------------------------------------------------


def test_two_channels_with_the_same_endpoints_get_different_keys() -> None:
    lattice = Lattice()
    lattice.register(KERNEL)
    Echo(lattice)
    lattice.connect_local(KERNEL, SERVER)
    first = keys_of(lattice, KERNEL, SERVER)
    old = lattice.send_channels[(KERNEL, SERVER)].key
    lattice.connect_local(KERNEL, SERVER)
    second = keys_of(lattice, KERNEL, SERVER)
    other = Lattice()             # another boot, same pids
    other.register(KERNEL)
    Echo(other)
    other.connect_local(KERNEL, SERVER)
    third = keys_of(other, KERNEL, SERVER)
    assert len({*first, *second, *third}) == 6
    assert old == bytearray(32)   # the replaced channel's key was wiped
    assert lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=4)).body.result == 4


def _tamper_answer(lattice: Lattice, monkeypatch: pytest.MonkeyPatch,
                   edit: Callable[[bytearray], bytes | bytearray]) -> None:
    real = lattice.respond

    def respond(ends: Ends, offer: bytes) -> bytes:
        return bytes(edit(bytearray(real(ends, offer))))

    monkeypatch.setattr(lattice, "respond", respond)


def _tamper_offer(monkeypatch: pytest.MonkeyPatch,
                  edit: Callable[[bytearray], bytes | bytearray]) -> None:
    real = chankey.Initiator.__init__

    def init(self: chankey.Initiator, ends: Ends) -> None:
        real(self, ends)
        self.offer = bytes(edit(bytearray(self.offer)))

    monkeypatch.setattr(chankey.Initiator, "__init__", init)


def _flip(at: int) -> Callable[[bytearray], bytearray]:
    def edit(b: bytearray) -> bytearray:
        b[at] ^= 0x10
        return b
    return edit


X, CT = 0, chankey.X25519_SIZE     # where the X25519 key and the ciphertext/ek start

TAMPERINGS = {
    # (where, edit): the reason logged
    "answer: ML-KEM ciphertext": ("answer", _flip(CT + 500), "key confirmation failed"),
    "answer: X25519 key": ("answer", _flip(X + 3), "key confirmation failed"),
    "answer: confirmation tag": ("answer", _flip(-1), "key confirmation failed"),
    "answer: X25519 key of low order": ("answer", lambda b: bytes(32) + b[32:], "low order"),
    "answer: truncated ciphertext": ("answer", lambda b: b[:-40], "answer of"),
    "offer: X25519 key": ("offer", _flip(X + 7), "key confirmation failed"),
    "offer: encapsulation key": ("offer", _flip(CT + 900), "key confirmation failed"),
    "offer: encapsulation key not mod q": (
        "offer", lambda b: b[:CT] + b"\xff" * chankey.EK_SIZE, "malformed ML-KEM-768 encapsulation"),
    "offer: X25519 key of low order": ("offer", lambda b: bytes(32) + b[32:], "low order"),
    "offer: short": ("offer", lambda b: b[:100], "offer of 100 bytes"),
}


@pytest.mark.parametrize("case", list(TAMPERINGS))
def test_a_tampered_or_malformed_handshake_opens_no_channel(
        case: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    where, edit, reason = TAMPERINGS[case]
    lattice = Lattice()
    lattice.register(KERNEL)
    server = Echo(lattice)
    seen: list[p.Message] = []
    server.endpoint.handler = seen.append
    if where == "answer":
        _tamper_answer(lattice, monkeypatch, edit)
    else:
        _tamper_offer(monkeypatch, edit)
    caplog.set_level(logging.WARNING)
    with pytest.raises(IpcError) as info:
        lattice.connect_local(KERNEL, SERVER)
    assert info.value.errno == errno.EPROTO
    assert_refused_once(caplog, reason)
    assert lattice.stats.handshakes_refused == 1
    assert (KERNEL, SERVER) not in lattice.send_channels      # the asking side has no channel
    with pytest.raises(IpcError) as info:
        lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=1))
    assert info.value.errno == errno.ENOTCONN
    assert seen == [] and lattice.stats.delivered == 0


# --- across nodes: an in-memory route that records, tampers, replays ------------------------


class Wire:
    """Route from ``near`` to ``far``: the handshake goes to ``far.accept_remote``,
    frames to ``far.deliver_frame``; both are recorded."""

    def __init__(self, near: Lattice, far: Lattice) -> None:
        self.near, self.far = near, far
        self.binding = BINDING
        self.offers: list[bytes] = []
        self.answers: list[bytes] = []
        self.frames: list[bytes] = []
        near.routes[far.node_id] = self

    def send_frame(self, frame: bytes) -> None:
        self.frames.append(bytes(frame))
        self.far.deliver_frame(frame, self.near.node_id)

    async def handshake(self, src: int, src_node: int, dst: int, offer: bytes) -> bytes:
        self.offers.append(offer)
        answer = self.far.accept_remote(src, src_node, dst, offer, self.binding)
        self.answers.append(answer)
        return answer


def two_nodes(rekey_after: int = ipc.REKEY_AFTER) -> tuple[Lattice, Lattice, Wire, Echo]:
    a, b = Lattice(A_NODE, rekey_after=rekey_after), Lattice(B_NODE, rekey_after=rekey_after)
    a.register(USER)
    server = Echo(b)
    wire = Wire(a, b)
    Wire(b, a)
    return a, b, wire, server


async def test_a_replayed_handshake_gives_no_working_channel(
        caplog: pytest.LogCaptureFixture) -> None:
    a, b, wire, server = two_nodes()
    await a.connect(USER, SERVER, node=B_NODE)
    assert a.call(USER, SERVER, p.VfsClose(caller=1, fd=1)).body.result == 1
    offer, answer, frames = wire.offers[0], wire.answers[0], list(wire.frames)
    recv_key = bytes(b.recv_channels[(A_NODE, USER, SERVER)].key)

    # 1. played back to the same system: refused, logged once, the channel untouched
    caplog.set_level(logging.WARNING)
    with pytest.raises(IpcError) as info:
        b.accept_remote(USER, A_NODE, SERVER, offer, BINDING)
    assert info.value.errno == errno.EPROTO
    assert_refused_once(caplog, "replayed handshake offer")
    assert bytes(b.recv_channels[(A_NODE, USER, SERVER)].key) == recv_key
    assert a.call(USER, SERVER, p.VfsClose(caller=1, fd=2)).body.result == 2

    # 2. played back to a restarted system (which has not seen it): it answers with
    # fresh keys of its own, so neither the recorded answer nor the recorded
    # frames fit -- the replaying peer, without the initiator's secrets, has
    # nothing that opens on the new channel
    b2 = Lattice(B_NODE)
    server2 = Echo(b2)
    got: list[p.Message] = []
    server2.endpoint.handler = got.append
    fresh = b2.accept_remote(USER, A_NODE, SERVER, offer, BINDING)
    assert fresh != answer and fresh[:32] != answer[:32]
    assert bytes(b2.recv_channels[(A_NODE, USER, SERVER)].key) != recv_key
    for frame in frames:
        if ipc.FRAME_AD.unpack_from(frame)[1] == SERVER:
            b2.deliver_frame(frame, A_NODE)
    assert got == [] and b2.stats.delivered == 0 and b2.stats.tampered >= 1
    # nor does the recorded offer on another link (another binding) give the old key
    b3 = Lattice(B_NODE)
    Echo(b3)
    b3.accept_remote(USER, A_NODE, SERVER, offer, b"\x08" * 32)
    assert bytes(b3.recv_channels[(A_NODE, USER, SERVER)].key) != recv_key
    assert b.stats.delivered == 2 and b.stats.tampered == 0


async def test_a_tampered_remote_handshake_opens_no_channel(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    a, b, wire, server = two_nodes()
    real = wire.handshake

    async def tampering(src: int, src_node: int, dst: int, offer: bytes) -> bytes:
        answer = bytearray(await real(src, src_node, dst, offer))
        answer[chankey.X25519_SIZE + 17] ^= 4          # the ML-KEM ciphertext
        return bytes(answer)

    monkeypatch.setattr(wire, "handshake", tampering)
    caplog.set_level(logging.WARNING)
    with pytest.raises(IpcError) as info:
        await a.connect(USER, SERVER, node=B_NODE)
    assert info.value.errno == errno.EPROTO
    assert_refused_once(caplog, "key confirmation failed")
    assert (USER, SERVER) not in a.send_channels
    # the far side made its half; nothing sealed by anyone else opens on it
    forged = ipc.SendChannel(B_NODE, os.urandom(32))
    frame = a._seal_on(forged, USER, SERVER, p.VFS_CLOSE,
                       p.encode(p.VfsClose(caller=1, fd=1), USER, 1))
    b.deliver_frame(frame, A_NODE)
    assert b.stats.delivered == 0 and b.stats.tampered == 1


# --- key lifetime -----------------------------------------------------------------------------


def _nonce_and_seq(frame: bytes) -> tuple[bytes, int]:
    return frame[AD:HEAD], ipc.FRAME_AD.unpack_from(frame)[5]


async def test_rekeying_keeps_a_long_sendrec_stream_working(
        nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch) -> None:
    """A queued server (its receive loop), 8 messages per key: 600 round trips cross
    75 rekeys each way; every nonce differs, the old keys are zeroed."""
    span = 8
    lattice = Lattice(rekey_after=span)
    lattice.register(KERNEL)
    server = Echo(lattice)
    await nursery.start(server.serve)
    server.endpoint.handler = None
    lattice.connect_local(KERNEL, SERVER)
    frames: list[bytes] = []
    real = lattice.deliver_frame

    def spy(frame: bytes, *args: object) -> None:
        frames.append(bytes(frame))
        real(frame, *args)

    monkeypatch.setattr(lattice, "deliver_frame", spy)
    send = lattice.send_channels[(KERNEL, SERVER)]
    recv = lattice.recv_channels[(lattice.node_id, KERNEL, SERVER)]
    first_key, first_bytes = send.key, bytes(send.key)
    keys_seen = set()
    with trio.fail_after(20):
        for fd in range(600):
            reply = await lattice.sendrec(KERNEL, SERVER, p.VfsClose(caller=1, fd=fd))
            assert reply.body.result == fd
            keys_seen.add(bytes(send.key))
    assert len(frames) == 1200
    nonces = [_nonce_and_seq(f)[0] for f in frames]
    assert len(set(nonces)) == len(nonces)                  # no nonce twice, across rekeys
    assert len(keys_seen) == 600 // span                     # a new key every 8 messages
    assert first_key == bytearray(32)                        # the first key was wiped
    assert bytes(send.key) == bytes(recv.key) != first_bytes # the receiver kept up
    assert lattice.stats.tampered == lattice.stats.replayed == 0
    # a frame from an earlier epoch does not open any more (its key is gone)
    lattice.deliver_frame = real   # type: ignore[method-assign]
    real(frames[0])
    assert lattice.stats.tampered == 1


def test_rekey_across_nodes_and_frames_lost_on_the_way(caplog: pytest.LogCaptureFixture) -> None:
    """The receiver follows the sender's epochs from the sequence numbers: also over
    a gap (frames lost, e.g. a congested route), up to MAX_EPOCH_SKIP epochs."""
    span = 4
    a, b, wire, server = two_nodes(rekey_after=span)
    trio.run(a.connect, USER, SERVER, B_NODE)
    for fd in range(50):
        assert a.call(USER, SERVER, p.VfsClose(caller=1, fd=fd)).body.result == fd
    send = a.send_channels[(USER, SERVER)]
    # lose 2 epochs' worth of frames: sealed, never delivered
    for _ in range(2 * span):
        a._seal_on(send, USER, SERVER, p.VFS_CLOSE, p.encode(p.VfsClose(caller=1, fd=0), USER, 1))
    assert a.call(USER, SERVER, p.VfsClose(caller=1, fd=77)).body.result == 77
    # forged frames: one MAX_EPOCH_SKIP epochs ahead is tried with that epoch's key
    # (and does not open); one further ahead is not even tried
    last = b.recv_channels[(A_NODE, USER, SERVER)].rekey_at + ipc.MAX_EPOCH_SKIP * span
    caplog.set_level(logging.WARNING)
    for seq in (last, last + 1):
        ad = ipc.FRAME_AD.pack(USER, SERVER, A_NODE, B_NODE, p.VFS_CLOSE, seq)
        b.deliver_frame(ad + bytes(ipc.NONCE_SIZE + 40), A_NODE)
    assert b.stats.tampered == 2
    assert [("too far ahead" in r.getMessage()) for r in caplog.records] == [False, True]
    assert a.call(USER, SERVER, p.VfsClose(caller=1, fd=78)).body.result == 78
    nonces = [f[AD:HEAD] for f in wire.frames]
    assert len(set(nonces)) == len(nonces)


def test_channel_keys_are_wiped_when_a_node_goes() -> None:
    a, b, wire, server = two_nodes()
    trio.run(a.connect, USER, SERVER, B_NODE)
    held = [ch.key for ch in b.send_channels.values() if ch.node == A_NODE]
    held += [ch.key for k, ch in b.recv_channels.items() if k[0] == A_NODE]
    assert len(held) == 2 and all(any(k) for k in held)
    b.forget_node(A_NODE)
    assert all(k == bytearray(32) for k in held)
    assert not [k for k in b.recv_channels if k[0] == A_NODE]


def test_frames_under_each_key_open_with_the_public_binding() -> None:
    """Interop: what we seal is plain XChaCha20-Poly1305 (PyNaCl's public binding
    opens it) under the epoch's key, and the plaintext never travels."""
    lattice = Lattice(rekey_after=3)
    lattice.register(KERNEL)
    Echo(lattice)
    lattice.connect_local(KERNEL, SERVER)
    send = lattice.send_channels[(KERNEL, SERVER)]
    keys = set()
    for fd in range(10):
        body = p.encode(p.VfsClose(caller=1, fd=fd), KERNEL, fd + 1)
        frame = lattice._seal_on(send, KERNEL, SERVER, p.VFS_CLOSE, body)
        key = bytes(send.key)            # the key of this frame's epoch (rekeyed before sealing)
        keys.add(key)
        assert body not in frame
        assert sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            frame[HEAD:], frame[:AD], frame[AD:HEAD], key) == body
        assert frame[AD + 16:HEAD] == struct.pack("<Q", fd + 1)
    assert len(keys) == 4                # seqs 1-3, 4-6, 7-9, 10
