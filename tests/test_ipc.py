"""Lattice IPC in one process: sealing, delivery paths, blocking, errors, a Server."""
from __future__ import annotations

import errno
import struct
from typing import Any, Callable

import pytest
import trio
import trio.testing
from nacl import bindings as sodium

from xinim_host.lib import ipc
from xinim_host.lib import protocol as p
from xinim_host.lib.errors import SysError
from xinim_host.lib.ipc import IpcError, IpcFlags, Lattice, Pending
from xinim_host.lib.server import Request, Server

KERNEL, SERVER, USER, OTHER = p.KERNEL_PID, p.VFS_PID, 7, 8
AD = ipc.FRAME_AD.size
HEAD = AD + ipc.NONCE_SIZE


class EchoServer(Server):
    """A small VFS-numbered server: one handler per way a handler can answer."""

    pid = SERVER
    reply_type = p.VFS_REPLY

    def __init__(self, lattice: Lattice) -> None:
        super().__init__(lattice)
        self.parked: list[Request] = []
        self.seen: list[p.Message] = []


def h_close(srv: EchoServer, req: Request) -> int:          # result: the fd asked about
    srv.seen.append(req.msg)
    return req.body.fd


def h_ioctl(srv: EchoServer, req: Request) -> p.Payload:    # a reply class of its own
    return p.VfsIoctlReply(result=len(req.body.data), data=req.body.data)


def h_fstat(srv: EchoServer, req: Request) -> int:
    raise SysError(errno.EBADF)


def h_lseek(srv: EchoServer, req: Request) -> int:
    raise RuntimeError("handler bug")


async def h_dup(srv: EchoServer, req: Request) -> int:      # runs in the server's nursery
    await trio.sleep(0)
    return req.body.fd + 1000


def h_pipe(srv: EchoServer, req: Request) -> None:          # "don't reply yet"
    srv.parked.append(req)


def h_getcwd(srv: EchoServer, req: Request) -> p.Payload:   # an answer that cannot be encoded
    return p.VfsDataReply(data=b"x" * (p.DATA_MAX + 1))


def h_access(srv: EchoServer, req: Request) -> int:         # whom the server believes
    return req.caller


def h_dup2(srv: EchoServer, req: Request) -> Any:           # nonsense
    return "not an answer"


EchoServer.handlers = {
    p.VFS_CLOSE: h_close, p.VFS_IOCTL: h_ioctl, p.VFS_FSTAT: h_fstat, p.VFS_LSEEK: h_lseek,
    p.VFS_DUP: h_dup, p.VFS_PIPE: h_pipe, p.VFS_GETCWD: h_getcwd, p.VFS_ACCESS: h_access,
    p.VFS_DUP2: h_dup2,
}


async def make_system(lattice: Lattice, nursery: trio.Nursery, mode: str) -> EchoServer:
    server = EchoServer(lattice)
    for pid in (KERNEL, USER, p.PM_PID):
        lattice.register(pid)
        lattice.connect_local(pid, SERVER)
    await nursery.start(server.serve)
    if mode == "queued":
        server.endpoint.handler = None   # every request goes through the receive loop
    return server


@pytest.fixture(params=["direct", "queued"])
async def server(request: Any, lattice: Lattice, nursery: trio.Nursery) -> EchoServer:
    return await make_system(lattice, nursery, request.param)


async def ask(lattice: Lattice, body: p.Payload, src: int = KERNEL, dst: int = SERVER) -> p.Message:
    with trio.fail_after(5):
        return await lattice.sendrec(src, dst, body)


async def still_serving(lattice: Lattice) -> None:
    reply = await ask(lattice, p.VfsClose(caller=1, fd=42))
    assert (reply.body.error, reply.body.result) == (0, 42)


def spy_frames(lattice: Lattice, monkeypatch: pytest.MonkeyPatch, *, forward: bool = True
               ) -> list[bytes]:
    """Record every frame the lattice delivers locally (and deliver it, if ``forward``)."""
    frames: list[bytes] = []
    real = lattice.deliver_frame

    def spy(frame: bytes, *args: Any) -> None:
        frames.append(bytes(frame))
        if forward:
            real(frame, *args)

    monkeypatch.setattr(lattice, "deliver_frame", spy)
    return frames


# --- the server answers everything, and keeps serving ----------------------------------


async def test_round_trip(server: EchoServer, lattice: Lattice) -> None:
    reply = await ask(lattice, p.VfsClose(caller=1, fd=3))
    assert reply.m_source == SERVER and reply.m_type == p.VFS_REPLY
    assert reply.body == p.VfsReply(call=p.VFS_CLOSE, result=3)
    reply = await ask(lattice, p.VfsIoctl(caller=1, fd=0, request=1, arg=2, data=b"z" * 4096))
    assert reply.body == p.VfsIoctlReply(call=p.VFS_IOCTL, result=4096, data=b"z" * 4096)
    assert server.seen[0].m_source == KERNEL


@pytest.mark.parametrize("body,err", [
    (p.VfsFstat(caller=1, fd=3), errno.EBADF),        # SysError
    (p.VfsLseek(caller=1, fd=3, offset=0, whence=0), errno.EIO),   # a handler's bug
    (p.VfsGetcwd(caller=1, size=10), errno.EMSGSIZE),   # an answer that does not encode
    (p.VfsDup2(caller=1, oldfd=1, newfd=2), errno.EIO),   # an answer that is no answer
    (p.VfsOpen(caller=1, dirfd=-100, flags=0, mode=0, path=b"/x"), errno.ENOSYS),  # not served
    (p.ProcKill(caller=1, pid=1, sig=9), errno.ENOSYS),  # another server's type
])
async def test_failing_calls_get_error_replies(server: EchoServer, lattice: Lattice,
                                               body: p.Payload, err: int) -> None:
    reply = await ask(lattice, body)
    assert reply.body.error == err and reply.body.call == body.M_TYPE
    expected = p.owner_of(body.M_TYPE)
    assert expected is not None and reply.m_type == expected[1]
    await still_serving(lattice)


async def test_async_handler(server: EchoServer, lattice: Lattice) -> None:
    reply = await ask(lattice, p.VfsDup(caller=1, fd=5))
    assert reply.body.result == 1005


async def test_async_handler_without_receive_loop(lattice: Lattice) -> None:
    server = EchoServer(lattice)   # direct dispatch only, ``serve`` never started
    lattice.register(KERNEL)
    lattice.connect_local(KERNEL, SERVER)
    reply = await ask(lattice, p.VfsDup(caller=1, fd=5))
    assert reply.body.error == errno.EAGAIN
    assert (await ask(lattice, p.VfsClose(caller=1, fd=1))).body.result == 1
    assert server.endpoint.handler is not None


def _raw(m_type: int, payload: bytes, req_id: int = 99, m_source: int = 0) -> bytes:
    return p.HEADER.pack(m_source, m_type, req_id) + payload


MALFORMED = {
    # name: (frame m_type, plaintext, expected errno, expected call, expected req_id)
    "truncated-header": (p.VFS_CLOSE, b"\1\2\3\4\5", errno.EBADMSG, 0, 0),
    "empty": (p.VFS_CLOSE, b"", errno.EBADMSG, 0, 0),
    "truncated-payload": (p.VFS_CLOSE, _raw(p.VFS_CLOSE, b"\1\0\0\0"), errno.EBADMSG,
                          p.VFS_CLOSE, 99),
    "trailing-bytes": (p.VFS_CLOSE, _raw(p.VFS_CLOSE, bytes(9)), errno.EBADMSG, p.VFS_CLOSE, 99),
    "path-over-4095": (p.VFS_CHDIR, _raw(p.VFS_CHDIR, struct.pack("<iH", 1, 4096) + b"a" * 4096),
                      errno.EBADMSG, p.VFS_CHDIR, 99),
    "data-over-4096": (p.VFS_WRITE, _raw(p.VFS_WRITE, struct.pack("<iiqI", 1, 1, -1, 5000)
                                         + b"d" * 5000), errno.EBADMSG, p.VFS_WRITE, 99),
    "oversized-64k": (p.VFS_CLOSE, _raw(p.VFS_CLOSE, bytes(8 + 65536)), errno.EBADMSG,
                      p.VFS_CLOSE, 99),
    "unknown-type": (777, _raw(777, bytes(8)), errno.EINVAL, 777, 99),
    "type-differs-from-frame": (p.VFS_DUP, _raw(p.VFS_CLOSE, bytes(8)), errno.EBADMSG,
                                p.VFS_DUP, 99),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_messages_get_error_replies(server: EchoServer, lattice: Lattice,
                                                    case: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    m_type, plaintext, err, call, req_id = MALFORMED[case]
    lattice.send_bytes(KERNEL, SERVER, m_type, plaintext)
    with trio.fail_after(5):
        answer = await lattice.recv(KERNEL)   # no call waits for it: it queues for recv
    assert isinstance(answer, p.Message) and answer.m_source == SERVER
    assert answer.body.error == err and answer.body.call == call and answer.req_id == req_id
    assert answer.body.result == -1
    assert any("malformed" in r.getMessage() for r in caplog.records)
    await still_serving(lattice)
    assert not server.endpoint.closed


async def test_many_malformed_in_a_row(server: EchoServer, lattice: Lattice) -> None:
    for case in sorted(MALFORMED) * 3:
        m_type, plaintext, *_ = MALFORMED[case]
        lattice.send_bytes(USER, SERVER, m_type, plaintext)
    with trio.fail_after(5):
        for _ in range(len(MALFORMED) * 3):
            answer = await lattice.recv(USER)
            assert answer.body.error in (errno.EBADMSG, errno.EINVAL)
    await still_serving(lattice)


async def test_malformed_reply_fails_the_waiting_call(lattice: Lattice) -> None:
    """A reply that does not decode completes the call with EBADMSG: it does not hang."""
    server = EchoServer(lattice)
    lattice.register(KERNEL)
    lattice.connect_local(KERNEL, SERVER)
    pending = lattice.call(KERNEL, SERVER, p.VfsPipe(caller=1, flags=0))
    assert isinstance(pending, Pending) and not pending.done()
    req = server.parked.pop()
    lattice.send_bytes(SERVER, KERNEL, p.VFS_REPLY, _raw(p.VFS_REPLY, b"\0", req.msg.req_id))
    assert pending.done()
    assert pending.message.body.error == errno.EBADMSG and pending.message.m_source == SERVER


# --- the call vector's view of the caller -------------------------------------------------


async def test_m_source_is_stamped_from_the_channel(lattice: Lattice) -> None:
    for pid in (USER, OTHER):
        lattice.register(pid)
    lattice.connect_local(USER, OTHER)
    claim = p.encode(p.VfsClose(caller=1, fd=1), m_source=p.KERNEL_PID, req_id=5)
    lattice.send_bytes(USER, OTHER, p.VFS_CLOSE, claim)
    msg = lattice.recv_nowait(OTHER)
    assert msg.m_source == USER and msg.req_id == 5


@pytest.mark.parametrize("src,believed", [(KERNEL, True), (p.PM_PID, True), (USER, False)])
async def test_caller_believed_only_from_kernel_and_pm(server: EchoServer, lattice: Lattice,
                                                       src: int, believed: bool) -> None:
    body = p.VfsAccess(caller=1, dirfd=-100, mode=0, flags=0, path=b"/")
    reply = await ask(lattice, body, src=src)
    assert reply.body.result == (1 if believed else src)
    # a payload that claims to come from the kernel changes nothing
    lattice.send_bytes(src, SERVER, p.VFS_ACCESS, p.encode(body, m_source=KERNEL, req_id=1))
    with trio.fail_after(5):
        answer = await lattice.recv(src)
    assert answer.body.result == (1 if believed else src)


# --- blocking and non-blocking ---------------------------------------------------------


async def test_blocking_recv_is_woken_by_send(lattice: Lattice, nursery: trio.Nursery) -> None:
    lattice.register(USER)
    lattice.register(OTHER)
    lattice.connect_local(USER, OTHER)
    got: list[Any] = []

    async def receiver() -> None:
        got.append(await lattice.recv(OTHER))

    nursery.start_soon(receiver)
    await trio.testing.wait_all_tasks_blocked()
    assert got == []
    await lattice.send(USER, OTHER, p.VfsClose(caller=1, fd=9))
    with trio.fail_after(5):
        while not got:
            await trio.sleep(0)
    assert got[0].m_source == USER and got[0].body.fd == 9


async def test_nonblocking_recv_on_empty_is_eagain(lattice: Lattice) -> None:
    lattice.register(USER)
    with pytest.raises(IpcError) as info:
        await lattice.recv(USER, IpcFlags.NONBLOCK)
    assert info.value.errno == errno.EAGAIN
    with pytest.raises(IpcError) as info:
        lattice.recv_nowait(USER)
    assert info.value.errno == errno.EAGAIN


async def test_full_inbox(lattice: Lattice, nursery: trio.Nursery) -> None:
    lattice.register(USER)
    lattice.register(OTHER, capacity=2)
    lattice.connect_local(USER, OTHER)
    for fd in (1, 2):
        await lattice.send(USER, OTHER, p.VfsClose(caller=1, fd=fd), IpcFlags.NONBLOCK)
    with pytest.raises(IpcError) as info:
        await lattice.send(USER, OTHER, p.VfsClose(caller=1, fd=3), IpcFlags.NONBLOCK)
    assert info.value.errno == errno.EAGAIN
    with pytest.raises(IpcError):
        lattice.send_nowait(USER, OTHER, p.VfsClose(caller=1, fd=3))
    sent = trio.Event()

    async def blocking_sender() -> None:
        await lattice.send(USER, OTHER, p.VfsClose(caller=1, fd=3))
        sent.set()

    nursery.start_soon(blocking_sender)
    await trio.testing.wait_all_tasks_blocked()
    assert not sent.is_set()                     # waits for room...
    assert lattice.recv_nowait(OTHER).body.fd == 1
    with trio.fail_after(5):
        await sent.wait()                        # ...and gets it when recv makes some
    assert [lattice.recv_nowait(OTHER).body.fd for _ in range(2)] == [2, 3]


async def test_raw_frames_do_not_overfill_an_inbox(lattice: Lattice) -> None:
    lattice.register(USER)
    lattice.register(OTHER, capacity=2)
    lattice.connect_local(USER, OTHER)
    for fd in range(5):
        lattice.send_bytes(USER, OTHER, p.VFS_CLOSE,
                           p.encode(p.VfsClose(caller=1, fd=fd), req_id=fd + 1))
    assert len(lattice.endpoints[OTHER].inbox) == 2 and lattice.stats.dropped == 3
    # the requests that found no room were answered EAGAIN, in the name of OTHER
    answers = [lattice.recv_nowait(USER) for _ in range(3)]
    assert [(a.m_source, a.req_id, a.body.error) for a in answers] == [
        (OTHER, 3, errno.EAGAIN), (OTHER, 4, errno.EAGAIN), (OTHER, 5, errno.EAGAIN)]


async def test_errors_instead_of_hangs(lattice: Lattice, nursery: trio.Nursery) -> None:
    body = p.VfsClose(caller=1, fd=1)
    lattice.register(USER)
    lattice.register(OTHER)

    async def expect(err: int, make: Callable[[], Any]) -> None:
        with trio.fail_after(2):
            with pytest.raises(IpcError) as info:
                result = make()
                if hasattr(result, "__await__"):
                    await result
        assert info.value.errno == err, info.value

    # an unknown pid
    await expect(errno.ESRCH, lambda: lattice.send(USER, 99, body))
    await expect(errno.ESRCH, lambda: lattice.sendrec(USER, 99, body))
    await expect(errno.ESRCH, lambda: lattice.call(USER, 99, body))
    await expect(errno.ESRCH, lambda: lattice.call(99, USER, body))
    await expect(errno.ESRCH, lambda: lattice.recv(99))
    await expect(errno.ESRCH, lambda: lattice.connect_local(USER, 99))
    # no channel
    await expect(errno.ENOTCONN, lambda: lattice.send(USER, OTHER, body))
    await expect(errno.ENOTCONN, lambda: lattice.sendrec(USER, OTHER, body))
    await expect(errno.ENOTCONN, lambda: lattice.send_bytes(USER, OTHER, p.VFS_CLOSE, b""))
    # no route to a node
    await expect(errno.EHOSTUNREACH, lambda: lattice.connect(USER, OTHER, node=5))
    # a closed endpoint
    lattice.connect_local(USER, OTHER)
    lattice.close(OTHER)
    await expect(errno.EPIPE, lambda: lattice.send(USER, OTHER, body))
    await expect(errno.EPIPE, lambda: lattice.send(USER, OTHER, body, IpcFlags.NONBLOCK))
    await expect(errno.EPIPE, lambda: lattice.sendrec(USER, OTHER, body))
    await expect(errno.EPIPE, lambda: lattice.recv(OTHER))
    # registering twice
    await expect(errno.EADDRINUSE, lambda: lattice.register(USER))
    lattice.register(OTHER)   # a closed endpoint's pid can be taken again


async def test_close_wakes_blocked_receivers_and_senders(lattice: Lattice,
                                                         nursery: trio.Nursery) -> None:
    lattice.register(USER)
    lattice.register(OTHER, capacity=1)
    lattice.connect_local(USER, OTHER)
    lattice.send_nowait(USER, OTHER, p.VfsClose(caller=1, fd=1))
    errors: list[int] = []

    async def run(fn: Callable[[], Any]) -> None:
        try:
            await fn()
        except IpcError as exc:
            errors.append(exc.errno)

    lattice.register(30)
    nursery.start_soon(run, lambda: lattice.send(USER, OTHER, p.VfsClose(caller=1, fd=2)))
    nursery.start_soon(run, lambda: lattice.recv(30))
    await trio.testing.wait_all_tasks_blocked()
    assert errors == []
    with trio.fail_after(2):
        lattice.close(OTHER)
        lattice.close(30)
        while len(errors) < 2:
            await trio.sleep(0)
    assert errors == [errno.EPIPE, errno.EPIPE]


async def test_closing_the_server_fails_waiting_calls(lattice: Lattice,
                                                      nursery: trio.Nursery) -> None:
    server = await make_system(lattice, nursery, "direct")
    results: list[p.Message] = []

    async def waiter() -> None:
        results.append(await ask(lattice, p.VfsPipe(caller=1, flags=0)))

    nursery.start_soon(waiter)
    await trio.testing.wait_all_tasks_blocked()
    assert len(server.parked) == 1 and results == []
    lattice.close(SERVER)
    with trio.fail_after(2):
        while not results:
            await trio.sleep(0)
    assert results[0].body.error == errno.EPIPE and results[0].body.call == p.VFS_PIPE


async def test_close_survives_a_failing_callback(lattice: Lattice,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    server = EchoServer(lattice)
    lattice.register(KERNEL)
    lattice.connect_local(KERNEL, SERVER)
    first = lattice.call(KERNEL, SERVER, p.VfsPipe(caller=1, flags=0))
    second = lattice.call(KERNEL, SERVER, p.VfsPipe(caller=1, flags=1))

    def broken(msg: p.Message) -> None:
        raise RuntimeError("callback bug")

    first.add_done_callback(broken)
    lattice.close(SERVER)
    assert first.done() and second.done()
    assert second.message.body.error == errno.EPIPE
    assert any("callback" in r.getMessage() for r in caplog.records)
    assert len(server.parked) == 2


# --- sendrec and call ------------------------------------------------------------------


async def test_concurrent_sendrecs_match_by_request_id(server: EchoServer, lattice: Lattice,
                                                       nursery: trio.Nursery) -> None:
    results: dict[int, p.Message] = {}

    async def one(flags: int) -> None:
        results[flags] = await ask(lattice, p.VfsPipe(caller=1, flags=flags))

    for flags in range(10):
        nursery.start_soon(one, flags)
    with trio.fail_after(5):
        while len(server.parked) < 10:
            await trio.sleep(0)
    for req in reversed(server.parked):       # answered out of order
        req.reply(req.body.flags * 11)
    with trio.fail_after(5):
        while len(results) < 10:
            await trio.sleep(0)
    assert {flags: m.body.result for flags, m in results.items()} == {f: f * 11 for f in range(10)}
    assert len({m.req_id for m in results.values()}) == 10
    assert all(type(m.body) is p.VfsPipeReply for m in results.values())
    assert lattice.endpoints[KERNEL].pending == {}


async def test_call_returns_at_once_or_pending(lattice: Lattice) -> None:
    server = EchoServer(lattice)
    lattice.register(KERNEL)
    lattice.connect_local(KERNEL, SERVER)
    now = lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=4))
    assert isinstance(now, p.Message) and now.body.result == 4   # direct dispatch: no task switch
    later = lattice.call(KERNEL, SERVER, p.VfsPipe(caller=1, flags=0))
    assert isinstance(later, Pending) and not later.done()
    seen: list[p.Message] = []
    later.add_done_callback(seen.append)
    server.parked.pop().reply(17)
    assert later.done() and seen and seen[0].body.result == 17
    late: list[p.Message] = []
    later.add_done_callback(late.append)     # after completion: called at once
    assert late == seen
    with pytest.raises(RuntimeError):
        Request(server, seen[0], 0, replied=True).reply(1)


async def test_a_reply_from_the_wrong_endpoint_completes_nothing(lattice: Lattice) -> None:
    server = EchoServer(lattice)
    lattice.register(KERNEL)
    lattice.register(USER)
    lattice.connect_local(KERNEL, SERVER)
    lattice.connect_local(USER, KERNEL)
    pending = lattice.call(KERNEL, SERVER, p.VfsPipe(caller=1, flags=0))
    req_id = server.parked[0].msg.req_id
    forged = p.encode(p.VfsPipeReply(call=p.VFS_PIPE, result=666), SERVER, req_id)
    lattice.send_bytes(USER, KERNEL, p.VFS_REPLY, forged)     # guessing the request id
    assert not pending.done()
    server.parked.pop().reply(1)
    assert pending.done() and pending.message.body.result == 1
    assert pending.message.m_source == SERVER


async def test_direct_dispatch_does_not_overtake_queued(lattice: Lattice,
                                                        nursery: trio.Nursery) -> None:
    server = EchoServer(lattice)
    lattice.register(KERNEL)
    lattice.connect_local(KERNEL, SERVER)
    server.endpoint.handler = None
    first = [lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=fd)) for fd in (1, 2)]
    server.endpoint.handler = server.handle
    third = lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=3))
    assert isinstance(third, Pending)      # queued behind the first two, not handled first
    await nursery.start(server.serve)
    with trio.fail_after(5):
        for pending in (*first, third):
            await pending.wait()
    assert [m.body.fd for m in server.seen] == [1, 2, 3]


# --- sealing: tampering, replay, nonces -------------------------------------------------


async def test_tampered_frames_are_dropped_and_counted(lattice: Lattice,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lattice.register(USER)
    lattice.register(OTHER)
    lattice.connect_local(USER, OTHER)
    real = lattice.deliver_frame
    frames = spy_frames(lattice, monkeypatch, forward=False)
    lattice.send_nowait(USER, OTHER, p.VfsClose(caller=1, fd=5))
    (frame,) = frames

    def flipped(index: int, bit: int = 1) -> bytes:
        out = bytearray(frame)
        out[index] ^= bit
        return bytes(out)

    variants = [
        flipped(HEAD),               # first ciphertext byte
        flipped(len(frame) - 1),     # the tag
        flipped(HEAD + 10, 0x80),    # inside the payload
        flipped(AD + 3),             # the nonce
        flipped(16),                 # m_type in the associated data
        flipped(20),                 # the sequence number in the associated data
        frame[:-1],                  # truncated
        frame[:HEAD - 1],            # not even a header
        frame[:HEAD] + frame[HEAD + 16:],   # a slice of ciphertext cut out
    ]
    for bad in variants:
        real(bad)
    assert lattice.stats.tampered == len(variants)
    assert not lattice.endpoints[OTHER].inbox
    real(frame)                      # the genuine frame still opens: nothing was consumed
    assert lattice.recv_nowait(OTHER).body.fd == 5
    assert lattice.stats.replayed == 0


async def test_int_answers_reuse_their_frozen_reply(lattice: Lattice) -> None:
    """A handler's small int answer is sent in a reply made once per (call, answer);
    every caller still gets its own answer, big ones are made each time."""
    server = EchoServer(lattice)
    lattice.register(KERNEL)
    lattice.connect_local(KERNEL, SERVER)
    fds = [3, 4, 3, 1 << 20, 1 << 20, 0, 3]
    got = [lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=fd)) for fd in fds]
    assert [m.body.result for m in got] == fds
    assert all(m.body == p.VfsReply(call=p.VFS_CLOSE, result=fd) for m, fd in zip(got, fds))
    kept = server._int_bodies[p.VFS_CLOSE]
    assert sorted(kept) == [0, 3, 4] and kept[3] == p.VfsReply(call=p.VFS_CLOSE, result=3)
    # an error is not an answer: it goes its own way
    assert lattice.call(KERNEL, SERVER, p.VfsFstat(caller=1, fd=1)).body.error == errno.EBADF


async def test_in_node_frames_are_opened_with_the_receivers_key(lattice: Lattice) -> None:
    """An in-node send seals into the lattice's buffer and opens it there
    (``_send_local``): still with the *receiving* half's key and the replay check.
    A receiving key that differs from the sender's drops the frame as tampered; a
    sequence number the receiver has seen drops it as replayed; neither reaches the
    server, and the call then fails instead of being answered."""
    server = EchoServer(lattice)
    lattice.register(KERNEL)
    lattice.connect_local(KERNEL, SERVER)
    assert lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=1)).body.result == 1
    recv = lattice.recv_channels[(lattice.node_id, KERNEL, SERVER)]
    good = bytes(recv.key)
    recv.key[0] ^= 1                               # the halves no longer agree
    pending = lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=2))
    assert isinstance(pending, Pending) and not pending.done()
    assert lattice.stats.tampered == 1 and len(server.seen) == 1
    recv.key[:] = good
    # the receiver has "seen" up to seq 6: the sender's next four (3..6) are replays
    recv.last_seq = 6
    for fd in range(3, 7):
        assert isinstance(lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=fd)), Pending)
    assert lattice.stats.replayed == 4 and len(server.seen) == 1
    reply = lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=9))   # in step again
    assert reply.body.result == 9 and [m.body.fd for m in server.seen] == [1, 9]
    assert lattice.stats.tampered == 1


async def test_in_node_and_general_paths_agree(lattice: Lattice,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The same calls through ``_send_local`` and through a frame handed to
    ``deliver_frame`` (a spy takes the general path) give the same answers, and the
    spied frames open with the public binding: the same sealing either way."""
    server = EchoServer(lattice)
    lattice.register(KERNEL)
    lattice.connect_local(KERNEL, SERVER)
    bodies = [p.VfsClose(caller=1, fd=4), p.VfsIoctl(caller=1, fd=0, request=1, arg=2,
                                                      data=b"q" * 300)]
    direct = [lattice.call(KERNEL, SERVER, b).body for b in bodies]
    sealed_direct = lattice.stats.sealed
    frames = spy_frames(lattice, monkeypatch)
    spied = [lattice.call(KERNEL, SERVER, b).body for b in bodies]
    assert direct == spied and len(frames) == 4
    assert lattice.stats.sealed == 2 * sealed_direct
    key = bytes(lattice.send_channels[(KERNEL, SERVER)].key)
    plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
        frames[0][HEAD:], frames[0][:AD], frames[0][AD:HEAD], key)
    assert p.decode(plain).body == bodies[0]
    assert len(server.seen) == 2


async def test_replayed_frames_are_dropped_and_counted(server: EchoServer, lattice: Lattice,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    frames = spy_frames(lattice, monkeypatch)
    await ask(lattice, p.VfsClose(caller=1, fd=5))
    await ask(lattice, p.VfsClose(caller=1, fd=6))
    assert len(frames) == 4 and len(server.seen) == 2
    real = Lattice.deliver_frame.__get__(lattice)
    for frame in frames:
        real(frame)
    assert lattice.stats.replayed == 4 and lattice.stats.tampered == 0
    # re-connecting the pair makes new keys: an old frame does not even open
    lattice.connect_local(KERNEL, SERVER)
    real(frames[0])
    assert lattice.stats.replayed == 4 and lattice.stats.tampered == 1
    await still_serving(lattice)
    assert len(server.seen) == 3


async def test_reconnect_after_channel_removed(lattice: Lattice,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """lattice_close removes the sending half; connecting again must still work, and
    a frame of the earlier channel must not open on the new one (new keys)."""
    server = EchoServer(lattice)
    lattice.register(KERNEL)
    lattice.connect_local(KERNEL, SERVER)
    frames = spy_frames(lattice, monkeypatch)
    lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=1))
    del lattice.send_channels[(KERNEL, SERVER)]
    lattice.connect_local(KERNEL, SERVER)
    assert lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=2)).body.result == 2
    Lattice.deliver_frame(lattice, frames[0])
    assert lattice.stats.tampered == 1 and [m.body.fd for m in server.seen] == [1, 2]


async def test_frames_are_xchacha20poly1305_with_unique_nonces(
        lattice: Lattice, monkeypatch: pytest.MonkeyPatch) -> None:
    EchoServer(lattice)
    lattice.register(KERNEL)
    lattice.connect_local(KERNEL, SERVER)
    frames = spy_frames(lattice, monkeypatch)
    keys = []                                   # (request key, reply key) per channel

    def channel_keys() -> tuple[bytes, bytes]:
        return (bytes(lattice.send_channels[(KERNEL, SERVER)].key),
                bytes(lattice.send_channels[(SERVER, KERNEL)].key))

    for _ in range(2):
        keys.append(channel_keys())
        for fd in range(50):
            lattice.call(KERNEL, SERVER, p.VfsClose(caller=1, fd=fd))
        lattice.connect_local(KERNEL, SERVER)      # same pair, new keys, new channels
    assert len(frames) == 200
    nonces = [f[AD:HEAD] for f in frames]
    assert len(set(nonces)) == len(nonces)
    assert len({k for pair in keys for k in pair}) == 4   # per direction, per channel
    for i, frame in enumerate(frames):   # the public PyNaCl binding opens every frame
        key = keys[i // 100][i % 2]      # request, reply, request, ...
        plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            frame[HEAD:], frame[:AD], frame[AD:HEAD], key)
        _, _, _, _, m_type, seq = ipc.FRAME_AD.unpack_from(frame)
        assert frame[AD + 16:HEAD] == struct.pack("<Q", seq)   # prefix, then the counter
        assert p.decode(plain).m_type == m_type
    # what travels is not the plaintext
    plain0 = p.encode(p.VfsClose(caller=1, fd=0), KERNEL, 1)
    assert plain0 not in frames[0]


async def test_a_forked_child_gets_fresh_nonce_prefixes(lattice: Lattice) -> None:
    lattice.register(USER)
    lattice.register(OTHER)
    lattice.connect_local(USER, OTHER)
    before = lattice.send_channels[(USER, OTHER)].prefix
    ipc._refresh_after_fork()
    assert lattice.send_channels[(USER, OTHER)].prefix != before


async def test_plaintext_channel(lattice: Lattice, monkeypatch: pytest.MonkeyPatch) -> None:
    server = EchoServer(lattice)
    lattice.register(KERNEL)
    lattice.connect_local(KERNEL, SERVER, encrypted=False)
    frames = spy_frames(lattice, monkeypatch)
    reply = lattice.call(KERNEL, SERVER, p.VfsIoctl(caller=1, fd=0, request=0, arg=0,
                                                    data=b"visible"))
    assert reply.body.data == b"visible" and b"visible" in frames[0]
    Lattice.deliver_frame(lattice, frames[0])
    assert lattice.stats.replayed == 1       # sequence numbers are checked all the same
    assert server.endpoint.handler is not None


async def test_bad_channel_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        ipc.SendChannel(1, b"short")
    with pytest.raises(ValueError):
        ipc.RecvChannel(b"x" * 33)


async def test_messages_beyond_the_scratch_buffer(server: EchoServer, lattice: Lattice) -> None:
    """A plaintext larger than the preallocated buffers still seals and opens."""
    big = bytes(ipc._SCRATCH_SIZE * 2)
    lattice.send_bytes(KERNEL, SERVER, p.VFS_CLOSE, _raw(p.VFS_CLOSE, big))
    with trio.fail_after(5):
        answer = await lattice.recv(KERNEL)
    assert answer.body.error == errno.EBADMSG
    await still_serving(lattice)


async def test_stats(server: EchoServer, lattice: Lattice) -> None:
    before = dict(vars(lattice.stats))
    await still_serving(lattice)
    after = vars(lattice.stats)
    assert after["sealed"] - before["sealed"] == 2
    assert after["delivered"] - before["delivered"] == 2
    direct = server.endpoint.handler is not None
    assert after["handled_direct"] - before["handled_direct"] == (1 if direct else 0)
