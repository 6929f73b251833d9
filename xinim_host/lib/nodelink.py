"""The node socket's record format and handshake proof, without trio: shared by
the link itself (``transport.py``) and the thin client (``cli/thin.py``), which
must start in milliseconds.

Stream records: ``u32 length`` (of kind + body), ``u8 kind``, the body.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import struct

RECORD = struct.Struct("<IB")           # length (of kind + body), kind
HELLO, FRAME, KEY_REQUEST, KEY_REPLY, STDIO, AUTH, WELCOME = 1, 2, 3, 4, 5, 6, 7
# The thin client (cli/thin.py): after the handshake, SPAWN asks the booted system
# to run a program for us (its terminal passed with it, as STDIO's); EXIT answers
# with its exit code, or an errno when the system will not (then the client joins
# the full way).  SPAWN body: u32 argc, u32 envc, then cwd, argv, env, each NUL-ended.
SPAWN, EXIT = 8, 9
SPAWN_HEAD = struct.Struct("<II")
EXIT_BODY = struct.Struct("<ii")        # exit code, errno (0: it ran)
NONCE_SIZE = MAC_SIZE = 32
HELLO_BODY = struct.Struct("<HH32s")    # the boot's node id, the node assigned to you, nonce
SECRET_SIZE = 32
JOIN_PERSON = b"xinim-node-join-v1"
WELCOME_PERSON = b"xinim-node-welcome-v1"
BINDING_PERSON = b"xinim-node-binding-v1"


def secret_path(socket_path: str) -> str:
    return socket_path + ".key"


def mac(secret: bytes, person: bytes, nonce: bytes, boot_node: int, node: int) -> bytes:
    """The handshake's HMAC-SHA256 proofs (and the link's binding)."""
    return hmac.new(secret, person + nonce + struct.pack("<HH", boot_node, node),
                    hashlib.sha256).digest()


def runtime_dir() -> str:
    """``$XDG_RUNTIME_DIR/xinim``; else ``/run/xinim`` for root, ``$TMPDIR/xinim-UID`` otherwise."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return os.path.join(base, "xinim")
    if os.geteuid() == 0 and os.path.isdir("/run") and os.access("/run", os.W_OK):
        return "/run/xinim"
    import tempfile            # only here: the thin client starts without it
    return os.path.join(tempfile.gettempdir(), f"xinim-{os.geteuid()}")


def default_socket_path() -> str:
    return os.environ.get("XINIM_SOCKET") or os.path.join(runtime_dir(), "node.sock")
