"""The wire format: every request and reply round-trips; bad input is a ProtocolError."""
from __future__ import annotations

import dataclasses
import errno
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xinim_host.lib import protocol as p
from xinim_host.lib.protocol import wire

INT_RANGES = {
    "i": (-(1 << 31), (1 << 31) - 1),
    "I": (0, (1 << 32) - 1),
    "q": (-(1 << 63), (1 << 63) - 1),
    "Q": (0, (1 << 64) - 1),
}


def layout(cls: type) -> tuple[dict[str, str], dict[str, wire._Var]]:
    """Field name -> struct char for fixed fields, name -> kind for variable ones."""
    fixed = dict(zip(cls._FIXED_NAMES, cls._FIXED.format.lstrip("<")))
    return fixed, dict(cls._VAR)


def reply_calls(m_type: int, cls: type) -> st.SearchStrategy[int]:
    """Values of ``call`` that make the decoder pick ``cls`` again."""
    mine = sorted(c for (t, c), k in p.REPLIES.items() if t == m_type and k is cls and c)
    if p.REPLIES.get((m_type, 0)) is cls:   # the generic reply: any call without its own class
        taken = {c for (t, c) in p.REPLIES if t == m_type}
        lo, hi = INT_RANGES["i"]
        return st.integers(lo, hi).filter(lambda c: c not in taken or c == 0)
    return st.sampled_from(mine)


def payloads(cls: type, m_type: int | None = None) -> st.SearchStrategy[p.Payload]:
    fixed, var = layout(cls)
    fields: dict[str, st.SearchStrategy] = {}
    for name, char in fixed.items():
        fields[name] = st.integers(*INT_RANGES[char])
    for name, kind in var.items():
        # random lengths, and the maximum and empty ones every time hypothesis likes
        fields[name] = st.one_of(st.binary(max_size=kind.limit),
                                 st.just(b"\xff" * kind.limit), st.just(b""))
    if m_type is not None and "call" in fields:
        fields["call"] = reply_calls(m_type, cls)
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


REQUEST_CLASSES = sorted(p.REQUESTS.items())
REPLY_CLASSES = sorted({(t, cls.__name__): (t, cls) for (t, _), cls in p.REPLIES.items()}.values(),
                       key=lambda tc: (tc[0], tc[1].__name__))
ALL_CLASSES = [cls for _, cls in REQUEST_CLASSES] + [cls for _, cls in REPLY_CLASSES]
headers = st.tuples(st.integers(*INT_RANGES["i"]), st.integers(*INT_RANGES["Q"]))
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_every_plan_type_is_declared() -> None:
    assert set(range(100, 122)) <= set(p.REQUESTS)
    assert set(range(200, 209)) <= set(p.REQUESTS)
    assert set(range(300, 304)) <= set(p.REQUESTS)
    for reply_type in (p.VFS_REPLY, p.PROC_REPLY, p.MM_REPLY):
        assert (reply_type, 0) in p.REPLIES       # each server has a generic reply
    for m_type, cls in p.REQUESTS.items():
        assert cls.M_TYPE == m_type
        assert p.owner_of(m_type) is not None, f"type {m_type} has no owning server"


def _roundtrip(body: p.Payload, m_source: int, req_id: int) -> None:
    buf = p.encode(body, m_source, req_id)
    assert isinstance(buf, bytes)
    assert buf[:p.HEADER.size] == p.HEADER.pack(m_source, body.M_TYPE, req_id)
    assert buf[p.HEADER.size:] == body.encode_payload()
    msg = p.decode(buf)
    assert msg == p.Message(m_source, req_id, body)
    assert type(msg.body) is type(body) and msg.m_type == body.M_TYPE
    assert p.decode(memoryview(buf)) == msg and p.decode(bytearray(buf)) == msg
    assert type(body).decode_payload(buf, p.HEADER.size) == body
    assert type(body).decode_payload(memoryview(body.encode_payload())) == body
    for name in (f.name for f in dataclasses.fields(body)):   # bytes stay bytes
        assert type(getattr(msg.body, name)) is type(getattr(body, name))


@pytest.mark.parametrize("m_type,cls", REQUEST_CLASSES, ids=lambda x: getattr(x, "__name__", x))
def test_request_roundtrip(m_type: int, cls: type) -> None:
    @SETTINGS
    @given(body=payloads(cls), header=headers)
    def check(body: p.Payload, header: tuple[int, int]) -> None:
        _roundtrip(body, *header)

    check()


@pytest.mark.parametrize("m_type,cls", REPLY_CLASSES, ids=lambda x: getattr(x, "__name__", x))
def test_reply_roundtrip(m_type: int, cls: type) -> None:
    @SETTINGS
    @given(body=payloads(cls, m_type), header=headers)
    def check(body: p.Payload, header: tuple[int, int]) -> None:
        _roundtrip(body, *header)

    check()


def _extreme(cls: type, *, maximum: bool, m_type: int | None = None) -> p.Payload:
    fixed, var = layout(cls)
    kw: dict[str, object] = {n: INT_RANGES[c][1 if maximum else 0] for n, c in fixed.items()}
    kw.update({n: (b"/" * kind.limit if maximum else b"") for n, kind in var.items()})
    if m_type is not None:
        calls = [c for (t, c), k in p.REPLIES.items() if t == m_type and k is cls]
        kw["call"] = max(calls)
    return cls(**kw)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("maximum", [True, False], ids=["max", "min"])
def test_extreme_values_roundtrip(cls: type, maximum: bool) -> None:
    """Every field at its bounds at once: paths of 4095 bytes, data of 4096."""
    m_type = cls.M_TYPE if p.is_reply_type(cls.M_TYPE) else None
    body = _extreme(cls, maximum=maximum, m_type=m_type)
    _roundtrip(body, INT_RANGES["i"][1 if maximum else 0], INT_RANGES["Q"][1 if maximum else 0])


def test_sizes() -> None:
    """The layouts are what the wire format says (the MINIX size assertions)."""
    assert p.HEADER.size == 16
    assert p.VfsOpen._FIXED.size == 16 and [n for n, _ in p.VfsOpen._VAR] == ["path"]
    assert len(p.encode(p.VfsOpen(caller=1, dirfd=2, flags=3, mode=4, path=b"/x"))) == 16 + 16 + 2 + 2
    assert len(p.encode(p.VfsWrite(caller=1, fd=2, data=b"abc"))) == 16 + 16 + 4 + 3
    assert len(p.encode(p.VfsReply(call=101))) == 16 + 16
    assert len(p.encode(p.ProcGetpid(caller=1))) == 20
    for cls in ALL_CLASSES:
        fixed, var = layout(cls)
        assert cls._FIXED.size == sum(struct.calcsize("<" + c) for c in fixed.values())
        assert set(fixed) | set(var) == {f.name for f in dataclasses.fields(cls)}


PATH_CLASSES = [c for c in ALL_CLASSES if any(k is wire.PATH for _, k in c._VAR)]
DATA_CLASSES = [c for c in ALL_CLASSES if any(k is wire.DATA for _, k in c._VAR)]


@pytest.mark.parametrize("cls", PATH_CLASSES, ids=lambda c: c.__name__)
def test_overlong_path_is_enametoolong(cls: type) -> None:
    for name, kind in cls._VAR:
        if kind is not wire.PATH:
            continue
        body = dataclasses.replace(_extreme(cls, maximum=False), **{name: b"a" * (p.PATH_MAX_WIRE + 1)})
        with pytest.raises(p.ProtocolError) as info:
            p.encode(body)
        assert info.value.errno == errno.ENAMETOOLONG and info.value.m_type == cls.M_TYPE
        with pytest.raises(p.ProtocolError) as info:
            body.encode_payload()
        assert info.value.errno == errno.ENAMETOOLONG


@pytest.mark.parametrize("cls", DATA_CLASSES, ids=lambda c: c.__name__)
def test_overlong_data_is_emsgsize(cls: type) -> None:
    for name, kind in cls._VAR:
        if kind is wire.DATA:
            body = dataclasses.replace(_extreme(cls, maximum=False), **{name: b"d" * 4097})
            with pytest.raises(p.ProtocolError) as info:
                p.encode(body)
            assert info.value.errno == errno.EMSGSIZE


def test_bad_field_values_are_einval() -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.encode(p.VfsClose(caller=1 << 31, fd=0))
    assert info.value.errno == errno.EINVAL and info.value.m_type == p.VFS_CLOSE
    with pytest.raises(p.ProtocolError) as info:
        p.encode(p.VfsOpen(caller=1, dirfd=0, flags=0, mode=-1, path=b"/"))   # u32
    assert info.value.errno == errno.EINVAL
    with pytest.raises(p.ProtocolError) as info:
        p.encode(p.VfsOpen(caller=1, dirfd=0, flags=0, mode=0, path="/str"))   # type: ignore[arg-type]
    assert info.value.errno == errno.EINVAL
    with pytest.raises(p.ProtocolError):
        p.encode(p.VfsClose(caller=1, fd=2), m_source=1 << 40)
    # bytes-like values are accepted and decode as bytes
    msg = p.decode(p.encode(p.VfsWrite(caller=1, fd=2, data=bytearray(b"xy"))))
    assert msg.body.data == b"xy" and type(msg.body.data) is bytes


# --- decoding what a buggy or hostile peer sends ------------------------------------


def _decode_error(buf: bytes) -> p.ProtocolError:
    with pytest.raises(p.ProtocolError) as info:
        p.decode(buf)
    return info.value


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_every_truncation_is_ebadmsg(cls: type) -> None:
    m_type = cls.M_TYPE if p.is_reply_type(cls.M_TYPE) else None
    for maximum in (False, True):
        buf = p.encode(_extreme(cls, maximum=maximum, m_type=m_type), 5, 77)
        cuts = range(len(buf)) if len(buf) < 400 else [*range(300), len(buf) - 1, len(buf) // 2]
        for cut in cuts:
            exc = _decode_error(buf[:cut])
            assert exc.errno == errno.EBADMSG, (cut, exc)
            if cut >= p.HEADER.size:   # the header was readable: the error reply finds its way
                assert exc.m_type == cls.M_TYPE and exc.req_id == 77
        exc = _decode_error(buf + b"\0")
        assert exc.errno == errno.EBADMSG and "trailing" in exc.reason


def test_length_prefix_over_the_bound_is_ebadmsg() -> None:
    head = p.HEADER.pack(0, p.VFS_CHDIR, 9) + struct.pack("<i", 1)
    exc = _decode_error(head + struct.pack("<H", 4096) + b"a" * 4096)
    assert exc.errno == errno.EBADMSG and exc.req_id == 9 and exc.m_type == p.VFS_CHDIR
    head = p.HEADER.pack(0, p.VFS_WRITE, 9) + struct.pack("<iiq", 1, 1, -1)
    exc = _decode_error(head + struct.pack("<I", 4097) + b"a" * 4097)
    assert exc.errno == errno.EBADMSG
    exc = _decode_error(head + struct.pack("<I", 0xFFFFFFFF))
    assert exc.errno == errno.EBADMSG


def test_unknown_type_is_einval() -> None:
    exc = _decode_error(p.HEADER.pack(3, 777, 12) + b"\0" * 8)
    assert exc.errno == errno.EINVAL and exc.m_type == 777 and exc.req_id == 12
    exc = _decode_error(p.HEADER.pack(3, -1, 12))
    assert exc.errno == errno.EINVAL


def test_truncated_reply_header() -> None:
    exc = _decode_error(p.HEADER.pack(3, p.VFS_REPLY, 12) + b"\0\0")
    assert exc.errno == errno.EBADMSG and exc.m_type == p.VFS_REPLY and exc.req_id == 12


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_protocol_error(buf: bytes) -> None:
    try:
        msg = p.decode(buf)
    except p.ProtocolError as exc:
        assert exc.errno in (errno.EBADMSG, errno.EINVAL)
    else:
        assert p.encode(msg.body, msg.m_source, msg.req_id) == buf


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(p.REQUESTS)), st.binary(max_size=300))
def test_random_payloads_of_known_types(m_type: int, payload: bytes) -> None:
    buf = p.HEADER.pack(1, m_type, 2) + payload
    try:
        msg = p.decode(buf)
    except p.ProtocolError as exc:
        assert exc.errno == errno.EBADMSG and exc.m_type == m_type and exc.req_id == 2
    else:
        assert p.encode(msg.body, 1, 2) == buf


# --- helpers ---------------------------------------------------------------------------


def test_error_reply_for_uses_the_owners_reply_type() -> None:
    assert p.error_reply_for(p.VFS_OPEN, errno.ENOENT) == p.VfsReply(call=p.VFS_OPEN,
                                                                      error=errno.ENOENT, result=-1)
    assert type(p.error_reply_for(p.PROC_KILL, errno.EPERM)) is p.ProcReply
    assert type(p.error_reply_for(p.MM_BRK, errno.ENOMEM)) is p.MmReply
    assert type(p.error_reply_for(None, errno.EBADMSG)) is p.VfsReply
    assert type(p.error_reply_for(777, errno.EINVAL)) is p.VfsReply


@pytest.mark.parametrize("m_type", sorted(p.REQUESTS))
def test_error_replies_decode_for_every_request_type(m_type: int) -> None:
    """The error reply to any request decodes as a reply to it, errno intact (a call
    with a reply class of its own gets that class, or the decoder would refuse it)."""
    body = p.error_reply_for(m_type, errno.EPERM)
    msg = p.decode(p.encode(body, 2, 3))
    assert (msg.body.call, msg.body.error, msg.body.result) == (m_type, errno.EPERM, -1)
    owner = p.owner_of(m_type)
    assert owner is not None and msg.m_type == owner[1]


def test_owner_of() -> None:
    assert p.owner_of(p.VFS_OPEN) == (p.VFS_PID, p.VFS_REPLY)
    assert p.owner_of(p.PROC_FORK) == (p.PM_PID, p.PROC_REPLY)
    assert p.owner_of(p.MM_MMAP) == (p.MM_PID, p.MM_REPLY)
    assert p.owner_of(5) is None and p.owner_of(400) is None


def test_with_call_copies() -> None:
    body = p.VfsStatReply(size=10, mode=0o644)
    copy = wire.with_call(body, p.VFS_STAT)
    assert copy == dataclasses.replace(body, call=p.VFS_STAT) and body.call == 0


def test_payloads_are_frozen() -> None:
    body = p.decode(p.encode(p.VfsClose(caller=1, fd=2))).body
    with pytest.raises(dataclasses.FrozenInstanceError):
        body.fd = 3  # type: ignore[misc]
    msg = p.decode(p.encode(p.VfsClose(caller=1, fd=2), 4, 5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.m_source = 0  # type: ignore[misc]


def test_effective_caller() -> None:
    def msg(src: int) -> p.Message:
        return p.Message(src, 1, p.VfsClose(caller=1, fd=0))

    assert p.effective_caller(msg(p.KERNEL_PID), 1) == 1      # the kernel acts for processes
    assert p.effective_caller(msg(p.PM_PID), 1) == 1          # so does PM
    assert p.effective_caller(msg(7), 1) == 7                 # anyone else only for itself
    assert p.effective_caller(msg(p.MM_PID), 1) == p.MM_PID
