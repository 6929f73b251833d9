"""Channel keys: hybrid ML-KEM-768 + X25519 key establishment (plan §1.1).

One handshake for every lattice channel, in-node and across a node link, shaped
like TLS 1.3's X25519MLKEM768:

    initiator -> responder   offer  = X25519 public (32) | ML-KEM-768 encapsulation key (1184)
    responder -> initiator   answer = X25519 public (32) | ML-KEM-768 ciphertext (1088)
                                      | key confirmation (32)

Both key pairs are ephemeral (fresh per channel), so two channels between the same
endpoints never share a key.  The keys come from one KDF over both shared secrets
and the whole transcript::

    th   = BLAKE2b-512(person "xinim-hs-v2", ends | link binding | offer | x_r | ct)
    ikm  = ss_mlkem | ss_x25519                                      (64 bytes)
    K_fw = BLAKE2b-256(key ikm, th, salt "src->dst")    initiator -> responder
    K_bw = BLAKE2b-256(key ikm, th, salt "dst->src")    responder -> initiator
    K_c  = BLAKE2b-256(key ikm, th, salt "confirm")     -> tag = BLAKE2b(key K_c, th)

``ends`` are the channel's source and destination pids and nodes; the link binding
is a MAC of the node link's authentication (``transport``), empty in-node.  The
combiner is keyed BLAKE2b over *both* secrets, so the keys stay secret while either
primitive holds (the X-Wing argument, with BLAKE2b as the random oracle); the
ciphertext and both public keys are in the transcript.  The responder's tag
proves it derived the same keys: a tampered public key, encapsulation key or
ciphertext makes the initiator refuse the channel (``HandshakeRefused``), as does
a malformed one (wrong size, an encapsulation key that fails FIPS 203's modulus
check, an X25519 point of low order) -- never an exception of the libraries.

Key lifetime (``ratchet``): each direction's key is replaced every ``span``
messages by a one-way step, ``K' = BLAKE2b(key K, epoch)``, and the old key is
zeroed; see ``ipc.SendChannel``.

What Python lets us wipe: every secret this module makes (X25519 secret keys, the
shared X25519 secret, the KDF input, the derived keys) lives in a ``bytearray``
that is zeroed (``sodium_memzero``) as soon as it is no longer needed; libsodium
writes into those buffers directly.  Two values cannot be wiped from here: the
ML-KEM shared secret (``cryptography`` returns immutable ``bytes``; we drop it
at once) and the ML-KEM decapsulation key (held inside OpenSSL, which cleanses
it when the key object is freed -- we drop our reference right after use).
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from nacl._sodium import ffi as _ffi, lib as _lib

from .errors import SysError

# libsodium picks its implementations and seeds its generator once, before any use:
# what importing ``nacl.bindings`` does, which we (and lib/ipc.py) do not need.
if _lib.sodium_init() == -1:
    raise RuntimeError("libsodium could not be initialised")

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.mlkem import (MLKEM768PrivateKey,
                                                                 MLKEM768PublicKey)

X25519_SIZE = 32
EK_SIZE = 1184            # ML-KEM-768 encapsulation key (FIPS 203)
CT_SIZE = 1088            # ML-KEM-768 ciphertext
TAG_SIZE = 32
KEY_SIZE = 32
OFFER_SIZE = X25519_SIZE + EK_SIZE
ANSWER_SIZE = X25519_SIZE + CT_SIZE + TAG_SIZE

_ENDS = struct.Struct("<IIHHH")     # src, dst, src node, dst node, binding length
_EPOCH = struct.Struct("<Q")
_TH_PERSON = b"xinim-hs-v2"
_KEY_PERSON = b"xinim-chan-v2"
_CONFIRM_PERSON = b"xinim-confirm-v2"
_REKEY_PERSON = b"xinim-rekey-v2"
_SALT_FORWARD = b"src->dst".ljust(16, b"\0")
_SALT_BACKWARD = b"dst->src".ljust(16, b"\0")
_SALT_CONFIRM = b"confirm".ljust(16, b"\0")


# ML-KEM-768 is pyca/cryptography's (>= 47, FIPS 203, OpenSSL >= 3.5 or AWS-LC),
# loaded at the first handshake.  The public classmethods ``MLKEM768PrivateKey.
# generate`` / ``MLKEM768PublicKey.from_public_bytes`` first ask the OpenSSL backend
# whether ML-KEM is there, and importing that backend costs ~6 ms of every
# start-up (plus ~2 ms for the public module's own imports); so we ask the binding
# those classmethods call once and call it directly.  The objects are the same
# (registered subclasses of the public ABCs).  Any other build goes through the
# public API, which says why it cannot.
_kem_generate: Callable[[], "MLKEM768PrivateKey"] | None = None
_kem_public: Callable[[bytes], "MLKEM768PublicKey"] | None = None


def _load_kem() -> None:
    global _kem_generate, _kem_public
    try:
        from cryptography.hazmat.bindings._rust import openssl as ossl

        if not (getattr(ossl, "CRYPTOGRAPHY_OPENSSL_350_OR_GREATER", False)
                or getattr(ossl, "CRYPTOGRAPHY_IS_AWSLC", False)
                or getattr(ossl, "CRYPTOGRAPHY_IS_BORINGSSL", False)):
            raise ImportError("no ML-KEM in this build")
        generate, public = ossl.mlkem.generate_mlkem768_key, ossl.mlkem.from_mlkem768_public_bytes
    except (ImportError, AttributeError):  # pragma: no cover
        from cryptography.hazmat.primitives.asymmetric.mlkem import (MLKEM768PrivateKey,
                                                                     MLKEM768PublicKey)

        generate, public = MLKEM768PrivateKey.generate, MLKEM768PublicKey.from_public_bytes
    _kem_generate, _kem_public = generate, public


class HandshakeRefused(SysError):
    """A handshake that must not give a channel: malformed, tampered or replayed.
    ``errno`` EPROTO; ``reason`` says which, for the one log line."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EPROTO, reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Ends:
    """Who a channel joins: part of every handshake's transcript."""

    src: int
    src_node: int
    dst: int
    dst_node: int
    binding: bytes = b""     # the node link's authentication (empty in-node)

    def pack(self) -> bytes:
        return _ENDS.pack(self.src, self.dst, self.src_node, self.dst_node,
                          len(self.binding)) + self.binding


@dataclass(slots=True)
class ChannelKeys:
    """A channel's two direction keys, as a handshake gives them."""

    forward: bytearray       # src -> dst (the initiator sends with it)
    backward: bytearray      # dst -> src

    def wipe(self) -> None:
        wipe(self.forward)
        wipe(self.backward)


# --- secrets in wipeable buffers ---------------------------------------------------------


def view(buf: bytearray) -> Any:
    """A C pointer into ``buf`` (libsodium reads and writes it in place)."""
    return _ffi.from_buffer("unsigned char[]", buf)


def wipe(buf: bytearray | None) -> None:
    if buf:
        _lib.sodium_memzero(view(buf), len(buf))


def _x25519_keypair() -> tuple[bytes, bytearray]:
    public, secret = bytearray(X25519_SIZE), bytearray(X25519_SIZE)
    _lib.crypto_box_keypair(view(public), view(secret))
    return bytes(public), secret


def _x25519(secret: bytearray, peer_public: bytes, into: bytearray, at: int) -> None:
    """The X25519 shared secret, written into ``into[at:at+32]``; refuses a peer key
    of low order (libsodium's all-zero check)."""
    out = bytearray(X25519_SIZE)
    try:
        if _lib.crypto_scalarmult(view(out), view(secret), peer_public) != 0:
            raise HandshakeRefused("X25519 public key of low order")
        into[at:at + X25519_SIZE] = out
    finally:
        wipe(out)


def _blake2b(out: bytearray, data: bytes, key: bytearray, salt: bytes, person: bytes) -> None:
    _lib.crypto_generichash_blake2b_salt_personal(
        view(out), len(out), data, len(data), view(key), len(key), salt,
        person.ljust(16, b"\0"))


def _transcript(ends: Ends, offer: bytes, x_r: bytes, ct: bytes) -> bytes:
    return hashlib.blake2b(ends.pack() + offer + x_r + ct, digest_size=64,
                           person=_TH_PERSON).digest()


def combine(ends: Ends, offer: bytes, x_r: bytes, ct: bytes,
            ikm: bytearray) -> tuple[ChannelKeys, bytes]:
    """The KDF: the two direction keys and the responder's confirmation tag from
    ``ikm`` = ML-KEM shared secret | X25519 shared secret and the transcript.
    Wipes ``ikm``."""
    th = _transcript(ends, offer, x_r, ct)
    forward, backward, confirm, tag = (bytearray(KEY_SIZE) for _ in range(4))
    try:
        _blake2b(forward, th, ikm, _SALT_FORWARD, _KEY_PERSON)
        _blake2b(backward, th, ikm, _SALT_BACKWARD, _KEY_PERSON)
        _blake2b(confirm, th, ikm, _SALT_CONFIRM, _KEY_PERSON)
        _blake2b(tag, th, confirm, bytes(16), _CONFIRM_PERSON)
    finally:
        wipe(ikm)
        wipe(confirm)
    return ChannelKeys(forward, backward), bytes(tag)


def ratchet(key: bytearray, epoch: int) -> bytearray:
    """The key of ``epoch`` from the key of the epoch before (one way: an old key
    cannot be had from a newer one)."""
    new = bytearray(KEY_SIZE)
    _blake2b(new, _EPOCH.pack(epoch), key, bytes(16), _REKEY_PERSON)
    return new


# --- the two sides --------------------------------------------------------------------------


class Initiator:
    """The side that asks for a channel: makes the offer, checks the answer."""

    __slots__ = ("ends", "offer", "_x_secret", "_kem")

    def __init__(self, ends: Ends) -> None:
        self.ends = ends
        x_public, self._x_secret = _x25519_keypair()
        if _kem_generate is None:
            _load_kem()
        assert _kem_generate is not None
        self._kem: MLKEM768PrivateKey | None = _kem_generate()
        self.offer = x_public + self._kem.public_key().public_bytes_raw()

    def abandon(self) -> None:
        """No answer will come (the link went, the caller was cancelled): forget the
        ephemeral secrets."""
        self._kem = None
        wipe(self._x_secret)

    def finish(self, answer: bytes) -> ChannelKeys:
        """The channel's keys, or ``HandshakeRefused``; the ephemeral secrets are
        gone either way (an initiator finishes once)."""
        kem, self._kem = self._kem, None
        try:
            if kem is None:
                raise HandshakeRefused("handshake already finished")
            if len(answer) != ANSWER_SIZE:
                raise HandshakeRefused(f"answer of {len(answer)} bytes, not {ANSWER_SIZE}")
            x_r = answer[:X25519_SIZE]
            ct = answer[X25519_SIZE:X25519_SIZE + CT_SIZE]
            tag = answer[X25519_SIZE + CT_SIZE:]
            ikm = bytearray(2 * KEY_SIZE)
            try:
                try:
                    ikm[:KEY_SIZE] = kem.decapsulate(ct)
                except ValueError:
                    raise HandshakeRefused("malformed ML-KEM-768 ciphertext") from None
                _x25519(self._x_secret, x_r, ikm, KEY_SIZE)
            except BaseException:
                wipe(ikm)
                raise
            keys, expected = combine(self.ends, self.offer, x_r, ct, ikm)
            if not hmac.compare_digest(tag, expected):
                keys.wipe()
                raise HandshakeRefused("key confirmation failed (tampered or replayed handshake)")
            return keys
        finally:
            del kem
            wipe(self._x_secret)


def respond(ends: Ends, offer: bytes) -> tuple[ChannelKeys, bytes]:
    """The asked side: (the channel's keys, the answer), or ``HandshakeRefused``."""
    if len(offer) != OFFER_SIZE:
        raise HandshakeRefused(f"offer of {len(offer)} bytes, not {OFFER_SIZE}")
    x_i, ek = offer[:X25519_SIZE], offer[X25519_SIZE:]
    if _kem_public is None:
        _load_kem()
    assert _kem_public is not None
    try:
        peer_kem = _kem_public(ek)
    except ValueError:   # wrong size, or a coefficient not reduced mod q (FIPS 203 check)
        raise HandshakeRefused("malformed ML-KEM-768 encapsulation key") from None
    x_r, x_secret = _x25519_keypair()
    ikm = bytearray(2 * KEY_SIZE)
    try:
        ss, ct = peer_kem.encapsulate()
        ikm[:KEY_SIZE] = ss
        del ss
        _x25519(x_secret, x_i, ikm, KEY_SIZE)
    except BaseException:
        wipe(ikm)
        raise
    finally:
        wipe(x_secret)
    keys, tag = combine(ends, offer, x_r, ct, ikm)
    return keys, x_r + ct + tag
