"""The wire format of every lattice IPC message; one module used by both sides.

A message is a fixed header -- ``m_source``, ``m_type``, request id -- followed by
the typed payload of that message type (``docs/protocol.md``: the plan's casts onto
MINIX ``mess_N`` unions do not fit 256-byte paths, so the format is explicit).

Each payload is a frozen dataclass declared with the ``@request`` / ``@reply``
decorators; its field annotations say how each field is packed:

* ``i32 u32 i64 u64`` -- fixed-size integers, packed together with one ``struct``;
* ``path`` -- bytes, at most ``PATH_MAX_WIRE`` (4095: Linux's PATH_MAX less the NUL) long;
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
import hashlib
import struct
import types
import typing
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Callable, ClassVar

from .. import codecache

# --- numbers (docs/protocol.md) ---------------------------------------------------

KERNEL_PID = 0
INIT_PID = 1
VFS_PID = 2
PM_PID = 3
MM_PID = 4
FIRST_USER_PID = 5
# NET (sockets; MINIX 3's INET/LWIP role): a well-known pid above PM's pid_max, so
# it never collides with a process PM numbers and user pids stay from 5 up.
NET_PID = 1 << 19

PATH_MAX = 4096                  # Linux's, with the terminating NUL
PATH_MAX_WIRE = PATH_MAX - 1    # the longest path a message carries
DATA_MAX = 4096

# Each server's reply type; its request numbers are in its own module (vfs, pm, mm).
VFS_REPLY = 150        # VFS requests 100-149
PROC_REPLY = 250       # PM requests 200-249
MM_REPLY = 350         # MM requests 300-349
NET_REPLY = 550        # NET requests 500-549

# Which server owns a range of message types, and the reply type it answers with.
SERVER_RANGES: tuple[tuple[range, int, int], ...] = (
    (range(100, 200), VFS_PID, VFS_REPLY),
    (range(200, 300), PM_PID, PROC_REPLY),
    (range(300, 400), MM_PID, MM_REPLY),
    (range(500, 600), NET_PID, NET_REPLY),
)


def owner_of(m_type: int) -> tuple[int, int] | None:
    """(server pid, reply type) of the server that owns message type ``m_type``."""
    for m_types, pid, reply_type in SERVER_RANGES:
        if m_type in m_types:
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
#
# Every class declared with ``@request``/``@reply`` gets codec functions generated
# for its exact layout when it is declared (``_gen_codec``): one ``struct`` call
# packs the header, the fixed fields and the first length prefix together; decoding
# unpacks them in one call and builds the frozen instance without going through
# the keyword-only ``__init__`` (a frozen dataclass's ``__init__`` costs a
# ``object.__setattr__`` per field).  The bytes on the wire are exactly those of
# the generic description above; ``__post_init__`` still runs if a class has one.

_new = object.__new__


def _as_bytes(value: object, cls: type, name: str) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise ProtocolError(errno.EINVAL, f"{cls.__name__}.{name}: bytes expected, not "
                        f"{type(value).__name__}", cls.M_TYPE)  # type: ignore[attr-defined]


def _too_long(cls: type, name: str, value: bytes, kind: _Var) -> ProtocolError:
    return ProtocolError(kind.too_long, f"{cls.__name__}.{name}: {len(value)} bytes > {kind.limit}",
                         cls.M_TYPE)  # type: ignore[attr-defined]


def _bad_field(cls: type, exc: Exception) -> ProtocolError:
    return ProtocolError(errno.EINVAL, f"{cls.__name__}: {exc}", cls.M_TYPE)  # type: ignore[attr-defined]


def _truncated(cls: type, available: int, first_var: str | None) -> ProtocolError:
    if available < cls._FIXED.size or first_var is None:  # type: ignore[attr-defined]
        reason = f"{cls.__name__}: truncated payload"
    else:
        reason = f"{cls.__name__}.{first_var}: truncated length"
    return ProtocolError(errno.EBADMSG, reason, cls.M_TYPE)  # type: ignore[attr-defined]


def _bad_var(cls: type, name: str, reason: str) -> ProtocolError:
    return ProtocolError(errno.EBADMSG, f"{cls.__name__}.{name}: {reason}", cls.M_TYPE)  # type: ignore[attr-defined]


def _trailing(cls: type, extra: int) -> ProtocolError:
    return ProtocolError(errno.EBADMSG, f"{cls.__name__}: {extra} trailing bytes", cls.M_TYPE)  # type: ignore[attr-defined]


class _PayloadType(type):
    """Payload classes' type.  It builds each payload class as it is declared (a
    frozen, keyword-only, slotted dataclass: ``_payload_namespace``), in one class
    creation rather than a class and then its slotted copy; and the layout
    (``_FIXED``, ``_FIXED_NAMES``, ``_VAR``) of a class whose codec is not
    generated yet is generated when first asked for."""

    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict, **kwargs: object):
        # Payload itself, and the slotted copy ``dataclasses`` makes of a class
        # whose fields are not all wire kinds (``_build``), are plain classes
        if bases and "__slots__" not in ns and _all_wire(ns.get("__annotations__", {})):
            cls = super().__new__(mcs, name, bases, _payload_namespace(bases, ns), **kwargs)
            if {"call", "error", "result"} <= cls.__dataclass_fields__.keys():
                # plain callables in the class's own dict (lib/server.py looks there)
                cls._quick_reply = staticmethod(partial(_lazy_quick_reply, cls))
                cls._with_call = staticmethod(partial(_lazy_with_call, cls))
            return cls
        return super().__new__(mcs, name, bases, ns, **kwargs)

    def __getattr__(cls, name: str):
        if name in ("_FIXED", "_FIXED_NAMES", "_VAR") and "M_TYPE" in cls.__dict__ \
                and "_FIXED" not in cls.__dict__:
            _materialize(cls)
            return cls.__dict__[name]
        raise AttributeError(name)


class Payload(metaclass=_PayloadType):
    """Base of every message payload; the decorators fill in the class variables."""

    __slots__ = ()

    M_TYPE: ClassVar[int]
    _FIXED: ClassVar[struct.Struct]
    _FIXED_NAMES: ClassVar[tuple[str, ...]]
    _VAR: ClassVar[tuple[tuple[str, _Var], ...]]

    def encode_payload(self) -> bytes:
        return self._encode_payload()  # type: ignore[attr-defined]

    @classmethod
    def decode_payload(cls, buf: bytes | memoryview, offset: int = 0) -> "Payload":
        if type(buf) is not bytes:
            buf = bytes(buf)
        return cls._decode_at(buf, offset)  # type: ignore[attr-defined]


REQUESTS: dict[int, type[Payload]] = {}
REPLIES: dict[tuple[int, int], type[Payload]] = {}
# reply class -> its generated ``with_call`` (exactly that class: a subclass has its own)
WITH_CALL: dict[type, Callable[[Payload, int], Payload]] = {}


# A field's wire kind by the name its annotation uses (annotations are strings here).
_KIND_NAMES: dict[str, object] = {"i32": "i", "u32": "I", "i64": "q", "u64": "Q",
                                  "path": PATH, "data": DATA}


def _wire_kind(cls: type, f: dataclasses.Field, hints: dict | None) -> object:
    kind = _KIND_NAMES.get(f.type) if isinstance(f.type, str) else None
    if kind is not None:
        return kind
    if hints is None:
        hints = typing.get_type_hints(cls, include_extras=True)
    return getattr(hints[f.name], "__metadata__", (None,))[0]


def _layout(cls: type) -> None:
    hints = None
    fixed_fmt, fixed_names, var = "<", [], []
    for f in dataclasses.fields(cls):
        meta = _wire_kind(cls, f, hints)
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
    _gen_codec(cls)


def _setter(cls: type, name: str) -> Callable[[object, object], None]:
    """A fast way to set field ``name`` on a frozen instance: its slot's ``__set__``."""
    desc = getattr(cls, name, None)
    if type(desc).__name__ == "member_descriptor":
        return desc.__set__  # type: ignore[union-attr]
    return lambda obj, value: object.__setattr__(obj, name, value)


def _gen_codec(cls: type) -> None:
    """Generate ``cls``'s encoders, decoder and fast constructors for its layout.

    The functions' code depends only on the layout, so it is kept across runs
    (lib/codecache.py) under a key naming all of it: a start that finds it makes
    no source at all (making it, five to seven functions per message type, was
    most of a short run's codec cost; compiling it once was most of its start-up).
    """
    fixed_fmt = cls._FIXED.format.lstrip("<")  # type: ignore[attr-defined]
    fixed_names: tuple[str, ...] = cls._FIXED_NAMES  # type: ignore[attr-defined]
    var: tuple[tuple[str, _Var], ...] = cls._VAR  # type: ignore[attr-defined]
    dfields = dataclasses.fields(cls)
    fields = [f.name for f in dfields]
    first_prefix = var[0][1].prefix.format.lstrip("<") if var else ""
    ns: dict[str, object] = {
        "cls": cls, "M_TYPE": cls.M_TYPE, "struct_error": struct.error,  # type: ignore[attr-defined]
        "bytes": bytes, "len": len, "_new": _new, "_as_bytes": _as_bytes,
        "_too_long": _too_long, "_bad_field": _bad_field, "_truncated": _truncated,
        "_bad_var": _bad_var, "_trailing": _trailing,
        "_MSG_FIRST": struct.Struct("<" + HEADER.format.lstrip("<") + fixed_fmt + first_prefix).pack,
        "_PAY_FIRST": struct.Struct("<" + fixed_fmt + first_prefix).pack,
        "_DEC_FIRST": struct.Struct("<" + fixed_fmt + first_prefix).unpack_from,
        "_DEC_MSG": struct.Struct("<" + HEADER.format.lstrip("<") + fixed_fmt
                                  + first_prefix).unpack_from,
        "_Message": Message, "_msg_source": _set_m_source, "_msg_req_id": _set_req_id,
        "_msg_body": _set_body,
    }
    for i, (name, kind) in enumerate(var):
        ns[f"_K{i}"] = kind
        ns[f"_P{i}"] = kind.prefix.pack
        ns[f"_U{i}"] = kind.prefix.unpack_from
    for name in fields:
        ns[f"_set_{name}"] = _setter(cls, name)
    for f in dfields:                 # defaults of __init__ and of _quick_reply
        if f.default is not dataclasses.MISSING:
            ns[f"_I_{f.name}"] = ns[f"_D_{f.name}"] = f.default
    post_init = hasattr(cls, "__post_init__")
    # __init__: the dataclass's signature (keyword-only, same defaults), but each
    # field set through its slot (a frozen dataclass's own ``__init__`` pays an
    # ``object.__setattr__`` per field, twice the cost)
    init = tuple((f.name, f.default is not dataclasses.MISSING) for f in dfields) \
        if all(f.init and f.kw_only and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
               for f in dfields) else None
    # replies: a fresh reply from (call, error, result), and a copy with ``call`` set
    reply = {"call", "error", "result"} <= set(fields)
    others = [f for f in dfields if f.name not in ("call", "error", "result")]
    plain = reply and all(f.default is not dataclasses.MISSING for f in others)

    key = repr((_generator_tag(), HEADER.format, fixed_fmt, fixed_names,
                tuple((n, k.limit, k.prefix.format) for n, k in var), tuple(fields),
                post_init, init, reply, plain))
    codes = codecache.get(key)
    if type(codes) is not tuple or not all(type(c) is types.CodeType for c in codes):
        codes = tuple(codecache.code(source, "<xinim-codec>") for source in _codec_sources(
            fixed_names, var, fields, post_init, init, reply, plain,
            [f.name for f in others], first_size=struct.calcsize("<" + fixed_fmt + first_prefix)))
        codecache.put(key, codes)
    for code in codes:
        exec(code, ns)  # noqa: S102 -- generated from the class's own field names

    if init is not None:
        fast_init = ns["__init__"]
        original = cls.__init__
        fast_init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
        fast_init.__doc__ = original.__doc__
        fast_init.__annotations__ = getattr(original, "__annotations__", {})
        cls.__init__ = fast_init  # type: ignore[misc]
    cls._encode_msg = ns["_encode_msg"]  # type: ignore[attr-defined]
    cls._encode_payload = ns["_encode_payload"]  # type: ignore[attr-defined]
    cls._decode_at = staticmethod(ns["_decode_at"])  # type: ignore[attr-defined]
    cls._decode_msg = staticmethod(ns["_decode_msg"])  # type: ignore[attr-defined]
    if reply:
        if plain:
            cls._quick_reply = staticmethod(ns["_quick_reply"])  # type: ignore[attr-defined]
        else:
            cls._quick_reply = staticmethod(  # type: ignore[attr-defined]
                lambda call, error, result: cls(call=call, error=error, result=result))
        cls._with_call = staticmethod(ns["_with_call"])  # type: ignore[attr-defined]
        WITH_CALL[cls] = ns["_with_call"]  # type: ignore[assignment]


_GENERATOR_TAG: str | None = None


def _generator_tag() -> str:
    """Names the code generator itself in the codec cache's keys: another
    ``_codec_sources`` never gets this one's code."""
    global _GENERATOR_TAG
    if _GENERATOR_TAG is None:
        digest = hashlib.blake2b(digest_size=8)
        _code_digest(_codec_sources.__code__, digest)
        _GENERATOR_TAG = digest.hexdigest()
    return _GENERATOR_TAG


def _code_digest(co: types.CodeType, digest: Any) -> None:
    """What ``co`` does -- its bytecode, names and constants, nested code too --
    not where it sits in the file."""
    digest.update(co.co_code)
    digest.update(repr((co.co_names, co.co_varnames, co.co_freevars, co.co_cellvars)).encode())
    for const in co.co_consts:
        if type(const) is types.CodeType:
            _code_digest(const, digest)
        else:
            digest.update(repr(const).encode())


def _codec_sources(fixed_names: tuple[str, ...], var: tuple[tuple[str, _Var], ...],
                   fields: list[str], post_init_call: bool,
                   init: tuple[tuple[str, bool], ...] | None, reply: bool, plain: bool,
                   others: list[str], *, first_size: int) -> list[str]:
    """The source of a layout's functions (their globals: ``_gen_codec``'s ``ns``)."""
    sources = []
    post_init = "    o.__post_init__()\n" if post_init_call else ""

    # -- encoders: the whole message (header included) and the bare payload
    check = ""
    for i, (name, kind) in enumerate(var):
        check += (f"    v{i} = self.{name}\n"
                  f"    if v{i}.__class__ is not bytes:\n"
                  f"        v{i} = _as_bytes(v{i}, cls, {name!r})\n"
                  f"    n{i} = len(v{i})\n"
                  f"    if n{i} > {kind.limit}:\n"
                  f"        raise _too_long(cls, {name!r}, v{i}, _K{i})\n")
    rest = "".join((" + v0" if i == 0 else f" + _P{i}(n{i}) + v{i}") for i in range(len(var)))
    values = [f"self.{n}" for n in fixed_names] + (["n0"] if var else [])
    for fn, packer, head in (("_encode_msg", "_MSG_FIRST", ["m_source", "M_TYPE", "req_id"]),
                             ("_encode_payload", "_PAY_FIRST", [])):
        args = "self, m_source, req_id" if head else "self"
        sources.append(f"def {fn}({args}):\n{check}"
                       f"    try:\n"
                       f"        head = {packer}({', '.join(head + values)})\n"
                       f"    except struct_error as exc:\n"
                       f"        raise _bad_field(cls, exc) from None\n"
                       f"    return head{rest}\n")

    # -- decoders: ``_decode_at`` reads the payload at ``off`` of ``buf`` (bytes) up to
    # its end; ``_decode_msg`` reads a whole message (header too, in the same unpack)
    # and returns the Message, its ``m_source`` stamped with ``src`` unless None.  Field
    # values are locals ``f_<name>``, so no field name can shadow the decoder's own.
    targets = [f"f_{n}" for n in fixed_names] + (["_l0"] if var else [])
    for fn, args, unpack, head, size in (
            ("_decode_at", "_buf, _off", "_DEC_FIRST(_buf, _off)", [], first_size),
            ("_decode_msg", "_buf, _src", "_DEC_MSG(_buf, 0)", ["_claimed", "_t", "_req"],
             first_size + HEADER.size)):
        dec = f"def {fn}({args}):\n    _n = len(_buf)\n"
        dec += (f"    _end = _off + {size}\n" if fn == "_decode_at" else f"    _end = {size}\n")
        dec += ("    if _n < _end:\n"
                f"        raise _truncated(cls, _n - {'_off' if fn == '_decode_at' else HEADER.size}, "
                f"{var[0][0] if var else None!r})\n")
        if head or targets:
            dec += f"    ({', '.join(head + targets)},) = {unpack}\n"
        for i, (name, kind) in enumerate(var):
            if i:
                dec += (f"    _pos = _end\n    _end = _pos + {kind.prefix.size}\n"
                        f"    if _n < _end:\n        raise _bad_var(cls, {name!r}, 'truncated length')\n"
                        f"    (_l{i},) = _U{i}(_buf, _pos)\n")
            dec += (f"    if _l{i} > {kind.limit}:\n"
                    f"        raise _bad_var(cls, {name!r}, f'{{_l{i}}} bytes > {kind.limit}')\n"
                    f"    _pos = _end\n    _end = _pos + _l{i}\n"
                    f"    if _n < _end:\n        raise _bad_var(cls, {name!r}, 'truncated')\n"
                    f"    f_{name} = _buf[_pos:_end]\n")
        dec += ("    if _end != _n:\n        raise _trailing(cls, _n - _end)\n"
                "    o = _new(cls)\n")
        dec += "".join(f"    _set_{name}(o, f_{name})\n" for name in fields)
        dec += post_init
        if fn == "_decode_at":
            dec += "    return o\n"
        else:
            dec += ("    m = _new(_Message)\n"
                    "    _msg_source(m, _claimed if _src is None else _src)\n"
                    "    _msg_req_id(m, _req)\n    _msg_body(m, o)\n    return m\n")
        sources.append(dec)

    if init is not None:
        params = [name if not has_default else f"{name}=_I_{name}" for name, has_default in init]
        sources.append(f"def __init__(self{', *, ' + ', '.join(params) if params else ''}):\n"
                       + "".join(f"    _set_{name}(self, {name})\n" for name, _ in init)
                       + ("    self.__post_init__()\n" if post_init else "")
                       + ("    pass\n" if not init else ""))

    if reply:
        if plain:
            sources.append(
                "def _quick_reply(call, error, result):\n    o = _new(cls)\n"
                "    _set_call(o, call)\n    _set_error(o, error)\n    _set_result(o, result)\n"
                + "".join(f"    _set_{name}(o, _D_{name})\n" for name in others)
                + post_init + "    return o\n")
        sources.append("def _with_call(src, call):\n    o = _new(cls)\n"
                       + "".join("    _set_call(o, call)\n" if n == "call" else
                                 f"    _set_{n}(o, src.{n})\n" for n in fields)
                       + post_init + "    return o\n")
    return sources


# --- declaring payloads ----------------------------------------------------------
#
# A payload class is a frozen, keyword-only, slotted dataclass -- but built here,
# not by ``dataclasses.dataclass``, whose code generation (plus the codec's) for
# some 130 classes was most of xinim-run's start-up.  The class gets real
# ``dataclasses.Field``s (``dataclasses.fields``/``replace`` work), shared
# ``__eq__``/``__hash__``/``__repr__`` and a frozen ``__setattr__``; its codec and
# fast ``__init__`` are generated on first use (``_materialize``), so a run pays
# only for the message types it sends.

def _p_eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    return all(getattr(self, n) == getattr(other, n) for n in self._FIELD_NAMES)


def _p_hash(self):
    return hash(tuple(getattr(self, n) for n in self._FIELD_NAMES))


def _p_repr(self):
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._FIELD_NAMES)
    return f"{self.__class__.__qualname__}({inner})"


def _p_setattr(self, name, value):
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _p_delattr(self, name):
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _all_wire(annotations: dict) -> bool:
    return all(isinstance(a, str) and a in _KIND_NAMES for a in annotations.values())


def _payload_namespace(bases: tuple[type, ...], ns: dict) -> dict:
    """A payload class's namespace as ``dataclass(frozen=True, kw_only=True,
    slots=True)`` would make it, cheaply: real ``dataclasses.Field``s
    (``dataclasses.fields``/``replace`` work), shared ``__eq__``/``__hash__``/
    ``__repr__``, a frozen ``__setattr__``, and stand-ins that generate the codec
    and the fast ``__init__`` on first use."""
    own = ns.get("__annotations__", {})
    fields: dict[str, dataclasses.Field] = {}
    for b in reversed(bases):
        for base in reversed(b.__mro__):
            fields.update(base.__dict__.get("__dataclass_fields__", {}))
    ns = dict(ns)
    for name, ann in own.items():
        default = ns.pop(name, dataclasses.MISSING)
        f = dataclasses.field(default=default, kw_only=True)
        f.name, f.type = name, ann
        f._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
        fields[name] = f
    ns["__slots__"] = tuple(own)
    ns["__dataclass_fields__"] = fields
    ns["_FIELD_NAMES"] = tuple(fields)
    ns["__match_args__"] = ()
    ns.update(__eq__=_p_eq, __hash__=_p_hash, __repr__=_p_repr, __setattr__=_p_setattr,
              __delattr__=_p_delattr, __init__=_lazy_init, _encode_msg=_lazy_encode_msg,
              _encode_payload=_lazy_encode_payload, _decode_at=classmethod(_lazy_decode_at),
              _decode_msg=classmethod(_lazy_decode_msg))
    return ns


def _build(cls: type) -> type:
    """The payload class the decorators register: built as declared (``_PayloadType``)
    when its annotations are all wire kinds, else by ``dataclasses``."""
    if "_FIELD_NAMES" in cls.__dict__:
        if "_with_call" in cls.__dict__ and cls not in WITH_CALL:
            WITH_CALL[cls] = cls.__dict__["_with_call"]
        return cls
    return dataclass(frozen=True, kw_only=True, slots=True)(cls)


def _materialize(cls: type) -> None:
    """Generate ``cls``'s layout, codec and fast constructors (once)."""
    if "_FIXED" not in cls.__dict__:
        _layout(cls)


# Stand-ins, shared by every payload class, that generate the class's codec on first
# use and then call the real function (which replaces them in the class).

def _lazy_encode_msg(self, m_source, req_id):
    cls = self.__class__
    _materialize(cls)
    return cls._encode_msg(self, m_source, req_id)


def _lazy_encode_payload(self):
    cls = self.__class__
    _materialize(cls)
    return cls._encode_payload(self)


def _lazy_decode_at(cls, buf, off):
    _materialize(cls)
    return cls._decode_at(buf, off)


def _lazy_decode_msg(cls, buf, src):
    _materialize(cls)
    return cls._decode_msg(buf, src)


def _lazy_quick_reply(cls, call, error, result):
    _materialize(cls)
    return cls._quick_reply(call, error, result)


def _lazy_with_call(cls, src, call):
    _materialize(cls)
    return cls._with_call(src, call)


def _lazy_init(self, **kwargs):
    cls = self.__class__
    if "M_TYPE" in cls.__dict__:
        _materialize(cls)
        cls.__init__(self, **kwargs)
        return
    # a base that is no message (ReplyBase): the plain keyword-only constructor
    for name, f in cls.__dataclass_fields__.items():
        value = kwargs.pop(name, f.default)
        if value is dataclasses.MISSING:
            raise TypeError(f"{cls.__qualname__}.__init__() missing keyword argument {name!r}")
        object.__setattr__(self, name, value)
    if kwargs:
        raise TypeError(f"{cls.__qualname__}.__init__() got an unexpected keyword argument "
                        f"{next(iter(kwargs))!r}")


def request(m_type: int):
    """Declare a request payload with message type ``m_type``."""

    def wrap(cls):
        cls = _build(cls)
        if m_type in REQUESTS:
            raise TypeError(f"message type {m_type} declared twice")
        cls.M_TYPE = m_type
        if "_encode_msg" not in cls.__dict__:     # built by dataclasses: no lazy codec
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
        cls = _build(cls)
        cls.M_TYPE = m_type
        if "_encode_msg" not in cls.__dict__:     # built by dataclasses: no lazy codec
            _layout(cls)
        for call in calls or (0,):
            if (m_type, call) in REPLIES:
                raise TypeError(f"reply ({m_type}, {call}) declared twice")
            REPLIES[(m_type, call)] = cls
        return cls

    return wrap


class ReplyBase(Payload):   # built as a payload class (_PayloadType), not a message
    """Fields every reply starts with."""

    call: i32 = 0      # the request type this answers
    error: i32 = 0     # positive errno, 0 on success
    result: i64 = 0    # the call's return value on success


def reply_class(reply_type: int, call: int) -> type[Payload]:
    return REPLIES.get((reply_type, call)) or REPLIES[(reply_type, 0)]


_REPLY_TYPES = frozenset((VFS_REPLY, PROC_REPLY, MM_REPLY, NET_REPLY))


def is_reply_type(m_type: int) -> bool:
    return m_type in _REPLY_TYPES


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message: the header and its typed payload."""

    m_source: int
    req_id: int
    body: Payload

    @property
    def m_type(self) -> int:
        return self.body.M_TYPE


_set_m_source = _setter(Message, "m_source")
_set_req_id = _setter(Message, "req_id")
_set_body = _setter(Message, "body")


def make_message(m_source: int, req_id: int, body: Payload) -> Message:
    """``Message(m_source, req_id, body)`` without the frozen ``__init__``'s cost."""
    msg = _new(Message)
    _set_m_source(msg, m_source)
    _set_req_id(msg, req_id)
    _set_body(msg, body)
    return msg


def encode(body: Payload, m_source: int = 0, req_id: int = 0) -> bytes:
    """The wire bytes of ``body`` behind a header; raises only :class:`ProtocolError`
    for a value that does not fit its field (EINVAL) or an over-long path or data
    (ENAMETOOLONG, EMSGSIZE)."""
    return body._encode_msg(m_source, req_id)  # type: ignore[attr-defined]


_HEADER_SIZE = HEADER.size
_unpack_header = HEADER.unpack_from
_unpack_call = _REPLY_CALL.unpack_from
_unpack_type = struct.Struct("<i").unpack_from
_REPLY_MIN = HEADER.size + _REPLY_CALL.size


def decode_header(buf: bytes | memoryview) -> tuple[int, int, int]:
    if len(buf) < HEADER.size:
        raise ProtocolError(errno.EBADMSG, f"truncated header ({len(buf)} bytes)")
    return HEADER.unpack_from(buf, 0)


def decode_from(buf: bytes, m_source: int | None = None) -> Message:
    """Decode one message from ``bytes``; with ``m_source`` given, the message says
    that source whatever its header claims (the IPC layer stamps the channel's).
    Raises only :class:`ProtocolError`."""
    n = len(buf)
    if n < _HEADER_SIZE:
        raise ProtocolError(errno.EBADMSG, f"truncated header ({n} bytes)")
    (m_type,) = _unpack_type(buf, 4)
    try:
        if m_type in _REPLY_TYPES:
            if n < _REPLY_MIN:
                raise ProtocolError(errno.EBADMSG, "truncated reply")
            (call,) = _unpack_call(buf, _HEADER_SIZE)
            cls = REPLIES.get((m_type, call)) or REPLIES[(m_type, 0)]
        else:
            cls = REQUESTS.get(m_type)
            if cls is None:
                raise ProtocolError(errno.EINVAL, f"unknown message type {m_type}")
        return cls._decode_msg(buf, m_source)  # type: ignore[attr-defined]
    except ProtocolError as exc:
        exc.m_type, exc.req_id = m_type, _unpack_header(buf, 0)[2]
        raise
    except (TypeError, ValueError) as exc:  # e.g. a field the class rejects
        raise ProtocolError(errno.EBADMSG, str(exc), m_type, _unpack_header(buf, 0)[2]) from None


def decode(buf: bytes | memoryview) -> Message:
    """Decode one message; raises only :class:`ProtocolError`."""
    return decode_from(buf if type(buf) is bytes else bytes(buf))


def error_reply_for(m_type: int | None, err: int) -> Payload:
    """The generic reply a server sends when a request of ``m_type`` failed with ``err``."""
    # The class the receiver will decode it as: the one declared for (reply type, call)
    # -- a generic reply to a call with a reply class of its own would not decode.
    owner = owner_of(m_type or 0)
    reply_type = owner[1] if owner else VFS_REPLY
    call = m_type or 0
    cls = REPLIES.get((reply_type, call)) or REPLIES[(reply_type, 0)]
    return cls._quick_reply(call, err, -1)  # type: ignore[attr-defined]


def with_call(body: Payload, call: int) -> Payload:
    """A copy of reply ``body`` with its ``call`` set (``dataclasses.replace``, faster)."""
    fast = WITH_CALL.get(type(body))
    if fast is not None:
        return fast(body, call)
    return dataclasses.replace(body, call=call)  # type: ignore[type-var]


# Who may speak for another process (see ``effective_caller``).
TRUSTED_SOURCES = frozenset((KERNEL_PID, PM_PID))


# The kernel of a node that joined this system (a ``xinim-run`` with its own
# interceptor) has a pid of its own, derived from its node id: pids are global,
# so it cannot be 0, and the IPC layer lets only that node claim it.
NODE_KERNEL_BASE = 1 << 30
NODE_KERNEL_LAST = NODE_KERNEL_BASE + 0xFFFF


def node_kernel_pid(node: int) -> int:
    return NODE_KERNEL_BASE + node


def is_kernel(pid: int) -> bool:
    """This node's kernel, or the kernel of a joined node."""
    return pid == KERNEL_PID or NODE_KERNEL_BASE <= pid <= NODE_KERNEL_LAST


def trusted_sender(pid: int) -> bool:
    """Senders that act for processes: kernels and PM."""
    return pid in TRUSTED_SOURCES or NODE_KERNEL_BASE <= pid <= NODE_KERNEL_LAST


def effective_caller(msg: Message, claimed: int) -> int:
    """The pid a request speaks for: the payload's ``caller`` only when a kernel
    or PM sent it (they act for processes); anyone else speaks only for itself."""
    return claimed if trusted_sender(msg.m_source) else msg.m_source
