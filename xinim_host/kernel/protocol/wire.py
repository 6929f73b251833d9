"""The wire format of every lattice IPC message; one module used by both sides.

A message is a fixed header -- ``m_source``, ``m_type``, request id -- followed by
the typed payload of that message type (``xinim-abi.md``: the plan's casts onto
MINIX ``mess_N`` unions do not fit 256-byte paths, so the format is explicit).

Each payload is a frozen dataclass declared with the ``@request`` / ``@reply``
decorators; its field annotations say how each field is packed:

* ``i32 u32 i64 u64`` -- fixed-size integers, packed together with one ``struct``;
* ``path`` -- bytes, at most ``PATH_MAX_WIRE`` (255) long;
* ``data`` -- bytes, at most ``DATA_MAX`` (4096) long.

Variable fields follow the fixed ones, each with a length prefix.  Every reply
starts with ``call`` (the request type it answers), ``error`` (a positive errno,
0 on success) and ``result``; a request type with no reply class of its own is
answered with its server's generic reply.

Decoding never raises anything but :class:`ProtocolError`, which carries the
errno the receiving server answers with, and whatever of the header could be read.
"""
from __future__ import annotations

import dataclasses
import errno
import struct
import typing
from dataclasses import dataclass
from typing import Annotated, ClassVar

# --- numbers (xinim-abi.md) ---------------------------------------------------

KERNEL_PID = 0
INIT_PID = 1
VFS_PID = 2
PM_PID = 3
MM_PID = 4
FIRST_USER_PID = 5

PATH_MAX_WIRE = 255
DATA_MAX = 4096

# VFS 100-149 (requests), 150 (reply)
VFS_OPEN, VFS_CLOSE, VFS_READ, VFS_WRITE, VFS_LSEEK = 100, 101, 102, 103, 104
VFS_STAT, VFS_FSTAT, VFS_ACCESS, VFS_DUP, VFS_DUP2 = 105, 106, 107, 108, 109
VFS_PIPE, VFS_IOCTL, VFS_FCNTL, VFS_MKDIR, VFS_RMDIR = 110, 111, 112, 113, 114
VFS_CHDIR, VFS_GETCWD, VFS_LINK, VFS_UNLINK, VFS_RENAME = 115, 116, 117, 118, 119
VFS_CHMOD, VFS_CHOWN = 120, 121
VFS_REPLY = 150
# PM 200-249, 250
PROC_FORK, PROC_EXEC, PROC_EXIT, PROC_WAIT4, PROC_KILL = 200, 201, 202, 203, 204
PROC_GETPID, PROC_GETPPID, PROC_SIGNAL, PROC_SIGACTION = 205, 206, 207, 208
PROC_REPLY = 250
# MM 300-349, 350
MM_BRK, MM_MMAP, MM_MUNMAP, MM_MPROTECT = 300, 301, 302, 303
MM_REPLY = 350

# Which server owns a range of message types, and the reply type it answers with.
SERVER_RANGES: tuple[tuple[range, int, int], ...] = (
    (range(100, 200), VFS_PID, VFS_REPLY),
    (range(200, 300), PM_PID, PROC_REPLY),
    (range(300, 400), MM_PID, MM_REPLY),
)


def owner_of(m_type: int) -> tuple[int, int] | None:
    """(server pid, reply type) of the server that owns message type ``m_type``."""
    for types, pid, reply_type in SERVER_RANGES:
        if m_type in types:
            return pid, reply_type
    return None


# --- field kinds --------------------------------------------------------------


class _Var:
    """A length-prefixed bytes field with an upper bound."""

    def __init__(self, name: str, limit: int, prefix: str, too_long: int) -> None:
        self.name, self.limit, self.too_long = name, limit, too_long
        self.prefix = struct.Struct("<" + prefix)

    def __repr__(self) -> str:
        return self.name


PATH = _Var("path", PATH_MAX_WIRE, "H", errno.ENAMETOOLONG)
DATA = _Var("data", DATA_MAX, "I", errno.EMSGSIZE)

i32 = Annotated[int, "i"]
u32 = Annotated[int, "I"]
i64 = Annotated[int, "q"]
u64 = Annotated[int, "Q"]
path = Annotated[bytes, PATH]
data = Annotated[bytes, DATA]

HEADER = struct.Struct("<iiQ")  # m_source, m_type, request id
_REPLY_CALL = struct.Struct("<i")


class ProtocolError(Exception):
    """A message that cannot be encoded or decoded.

    ``errno`` is what the receiver answers with; ``m_type``/``req_id`` are filled in
    when the header could be read, so the error reply finds its way back.
    """

    def __init__(self, err: int, reason: str, m_type: int | None = None,
                 req_id: int | None = None, call: int | None = None) -> None:
        super().__init__(f"{errno.errorcode.get(err, err)}: {reason}")
        self.errno, self.reason = err, reason
        self.m_type, self.req_id, self.call = m_type, req_id, call


# --- the codec ----------------------------------------------------------------


class Payload:
    """Base of every message payload; the decorators fill in the class variables."""

    M_TYPE: ClassVar[int]
    _FIXED: ClassVar[struct.Struct]
    _FIXED_NAMES: ClassVar[tuple[str, ...]]
    _VAR: ClassVar[tuple[tuple[str, _Var], ...]]

    def encode_payload(self) -> bytes:
        cls = type(self)
        try:
            out = [cls._FIXED.pack(*[getattr(self, n) for n in cls._FIXED_NAMES])]
        except struct.error as exc:
            raise ProtocolError(errno.EINVAL, f"{cls.__name__}: {exc}", cls.M_TYPE) from None
        for name, kind in cls._VAR:
            value = getattr(self, name)
            if len(value) > kind.limit:
                raise ProtocolError(kind.too_long,
                                    f"{cls.__name__}.{name}: {len(value)} bytes > {kind.limit}",
                                    cls.M_TYPE)
            out.append(kind.prefix.pack(len(value)))
            out.append(value)
        return b"".join(out)

    @classmethod
    def decode_payload(cls, buf: bytes | memoryview, offset: int = 0) -> "Payload":
        fixed = cls._FIXED
        if len(buf) - offset < fixed.size:
            raise ProtocolError(errno.EBADMSG, f"{cls.__name__}: truncated payload", cls.M_TYPE)
        values = dict(zip(cls._FIXED_NAMES, fixed.unpack_from(buf, offset)))
        pos = offset + fixed.size
        for name, kind in cls._VAR:
            if len(buf) - pos < kind.prefix.size:
                raise ProtocolError(errno.EBADMSG, f"{cls.__name__}.{name}: truncated length",
                                    cls.M_TYPE)
            (length,) = kind.prefix.unpack_from(buf, pos)
            pos += kind.prefix.size
            if length > kind.limit:
                raise ProtocolError(errno.EBADMSG,
                                    f"{cls.__name__}.{name}: {length} bytes > {kind.limit}",
                                    cls.M_TYPE)
            if len(buf) - pos < length:
                raise ProtocolError(errno.EBADMSG, f"{cls.__name__}.{name}: truncated", cls.M_TYPE)
            values[name] = bytes(buf[pos:pos + length])
            pos += length
        if pos != len(buf):
            raise ProtocolError(errno.EBADMSG, f"{cls.__name__}: {len(buf) - pos} trailing bytes",
                                cls.M_TYPE)
        return cls(**values)


REQUESTS: dict[int, type[Payload]] = {}
REPLIES: dict[tuple[int, int], type[Payload]] = {}


def _layout(cls: type) -> None:
    hints = typing.get_type_hints(cls, include_extras=True)
    fixed_fmt, fixed_names, var = "<", [], []
    for f in dataclasses.fields(cls):
        meta = getattr(hints[f.name], "__metadata__", (None,))[0]
        if isinstance(meta, str):
            fixed_fmt += meta
            fixed_names.append(f.name)
        elif isinstance(meta, _Var):
            var.append((f.name, meta))
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no wire kind in its annotation")
    cls._FIXED = struct.Struct(fixed_fmt)
    cls._FIXED_NAMES = tuple(fixed_names)
    cls._VAR = tuple(var)


def request(m_type: int):
    """Declare a request payload with message type ``m_type``."""

    def wrap(cls):
        cls = dataclass(frozen=True, kw_only=True, slots=True)(cls)
        if m_type in REQUESTS:
            raise TypeError(f"message type {m_type} declared twice")
        cls.M_TYPE = m_type
        _layout(cls)
        REQUESTS[m_type] = cls
        return cls

    return wrap


def reply(m_type: int, *calls: int):
    """Declare a reply payload of type ``m_type`` answering the request types ``calls``.

    With no ``calls`` it is the server's generic reply, used for every request
    type that has no reply class of its own.
    """

    def wrap(cls):
        cls = dataclass(frozen=True, kw_only=True, slots=True)(cls)
        cls.M_TYPE = m_type
        _layout(cls)
        for call in calls or (0,):
            if (m_type, call) in REPLIES:
                raise TypeError(f"reply ({m_type}, {call}) declared twice")
            REPLIES[(m_type, call)] = cls
        return cls

    return wrap


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplyBase(Payload):
    """Fields every reply starts with."""

    call: i32 = 0      # the request type this answers
    error: i32 = 0     # positive errno, 0 on success
    result: i64 = 0    # the call's return value on success


def reply_class(reply_type: int, call: int) -> type[Payload]:
    return REPLIES.get((reply_type, call)) or REPLIES[(reply_type, 0)]


def is_reply_type(m_type: int) -> bool:
    return m_type in (VFS_REPLY, PROC_REPLY, MM_REPLY)


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message: the header and its typed payload."""

    m_source: int
    req_id: int
    body: Payload

    @property
    def m_type(self) -> int:
        return self.body.M_TYPE


def encode(body: Payload, m_source: int = 0, req_id: int = 0) -> bytes:
    return HEADER.pack(m_source, body.M_TYPE, req_id) + body.encode_payload()


def decode_header(buf: bytes | memoryview) -> tuple[int, int, int]:
    if len(buf) < HEADER.size:
        raise ProtocolError(errno.EBADMSG, f"truncated header ({len(buf)} bytes)")
    return HEADER.unpack_from(buf, 0)


def decode(buf: bytes | memoryview) -> Message:
    """Decode one message; raises only :class:`ProtocolError`."""
    m_source, m_type, req_id = decode_header(buf)
    try:
        if is_reply_type(m_type):
            if len(buf) < HEADER.size + _REPLY_CALL.size:
                raise ProtocolError(errno.EBADMSG, "truncated reply")
            (call,) = _REPLY_CALL.unpack_from(buf, HEADER.size)
            cls = reply_class(m_type, call)
        else:
            cls = REQUESTS.get(m_type)
            if cls is None:
                raise ProtocolError(errno.EINVAL, f"unknown message type {m_type}")
        return Message(m_source, req_id, cls.decode_payload(buf, HEADER.size))
    except ProtocolError as exc:
        exc.m_type, exc.req_id = m_type, req_id
        raise
    except (TypeError, ValueError) as exc:  # e.g. a field the class rejects
        raise ProtocolError(errno.EBADMSG, str(exc), m_type, req_id) from None


def error_reply_for(m_type: int | None, err: int) -> Payload:
    """The generic reply a server sends when a request of ``m_type`` failed with ``err``."""
    owner = owner_of(m_type or 0)
    reply_type = owner[1] if owner else VFS_REPLY
    return REPLIES[(reply_type, 0)](call=m_type or 0, error=err, result=-1)


def effective_caller(msg: Message, claimed: int) -> int:
    """The pid a request speaks for: the payload's ``caller`` only when the kernel
    or PM sent it (they act for processes); anyone else speaks only for itself."""
    return claimed if msg.m_source in (KERNEL_PID, PM_PID) else msg.m_source
