"""Node routes over Unix sockets: another OS process, and a hostile peer."""
from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from typing import AsyncIterator, Iterator

import pytest
import trio
import trio.testing

from xinim_host.lib import protocol as p
from xinim_host.lib import chankey, transport
from xinim_host.lib.ipc import IpcError, Lattice
from xinim_host.lib.server import Request, Server
from xinim_host.lib.transport import dial, serve_socket

SERVER_NODE = 1

# The other OS process: a node with a small echo server on VFS's pid.
CHILD = r"""
import sys, trio
from xinim_host.lib import protocol as p
from xinim_host.lib.ipc import Lattice
from xinim_host.lib.server import Server
from xinim_host.lib.transport import serve_socket

class Echo(Server):
    pid = p.VFS_PID
    reply_type = p.VFS_REPLY

Echo.handlers = {
    p.VFS_CLOSE: lambda s, r: r.body.fd,
    p.VFS_IOCTL: lambda s, r: p.VfsIoctlReply(result=r.caller, data=r.body.data),
    p.VFS_PIPE: lambda s, r: None,            # never answered
}

async def main(path):
    lattice = Lattice(node_id=int(sys.argv[2]))
    Echo(lattice)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_socket, lattice, path)
        print("ready", flush=True)
        # until the parent closes our stdin (or kills us)
        while await trio.lowlevel.FdStream(0).receive_some(1):
            pass
        nursery.cancel_scope.cancel()

trio.run(main, sys.argv[1])
"""


@pytest.fixture
def sock_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="xt-", dir="/tmp")   # short: AF_UNIX paths are < 108 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def child_node(sock_dir: str) -> Iterator[tuple[subprocess.Popen, str]]:
    path = os.path.join(sock_dir, "node.sock")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, path, str(SERVER_NODE)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == b"ready\n", line
        yield proc, path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


async def test_two_processes_exchange_messages(child_node: tuple[subprocess.Popen, str],
                                               nursery: trio.Nursery) -> None:
    proc, path = child_node
    lattice = Lattice(node_id=0)
    with trio.fail_after(10):
        assert await dial(lattice, path, nursery) == SERVER_NODE
        CLIENT = transport.node_client_pid(lattice.node_id)   # our node is the server's choice
        lattice.register(CLIENT)
        await lattice.connect(CLIENT, p.VFS_PID, node=SERVER_NODE)
        reply = await lattice.sendrec(CLIENT, p.VFS_PID, p.VfsClose(caller=1, fd=5))
        assert reply.m_source == p.VFS_PID and reply.body == p.VfsReply(call=p.VFS_CLOSE, result=5)
        for size in (0, 64, 4096):
            data = os.urandom(size)
            reply = await lattice.sendrec(CLIENT, p.VFS_PID, p.VfsIoctl(
                caller=p.INIT_PID, fd=0, request=0, arg=0, data=data))
            assert reply.body.data == data
            assert reply.body.result == CLIENT   # the server saw who sent it, not the claim

        results: dict[int, int] = {}

        async def one(fd: int) -> None:
            results[fd] = (await lattice.sendrec(CLIENT, p.VFS_PID,
                                                 p.VfsClose(caller=1, fd=fd))).body.result

        async with trio.open_nursery() as many:
            for fd in range(50):
                many.start_soon(one, fd)
        assert results == {fd: fd for fd in range(50)}
    assert lattice.stats.tampered == lattice.stats.replayed == 0
    proc.stdin.close()
    with trio.fail_after(10):
        while proc.poll() is None:
            await trio.sleep(0.01)
    assert proc.returncode == 0
    assert not os.path.exists(path)          # the node removed its socket


async def test_a_lost_node_fails_waiting_calls(child_node: tuple[subprocess.Popen, str],
                                               nursery: trio.Nursery) -> None:
    proc, path = child_node
    lattice = Lattice(node_id=0)
    with trio.fail_after(10):
        await dial(lattice, path, nursery)
        CLIENT = transport.node_client_pid(lattice.node_id)
        lattice.register(CLIENT)
        await lattice.connect(CLIENT, p.VFS_PID, node=SERVER_NODE)
    replies: list[p.Message] = []

    async def waiter() -> None:
        replies.append(await lattice.sendrec(CLIENT, p.VFS_PID, p.VfsPipe(caller=1, flags=0)))

    nursery.start_soon(waiter)
    await trio.sleep(0.2)
    assert replies == []
    proc.send_signal(signal.SIGKILL)
    with trio.fail_after(10):
        while not replies:
            await trio.sleep(0.01)
    assert replies[0].body.error == errno.ECONNRESET
    assert SERVER_NODE not in lattice.routes
    with pytest.raises(IpcError) as info:
        await lattice.sendrec(CLIENT, p.VFS_PID, p.VfsClose(caller=1, fd=1))
    assert info.value.errno == errno.EHOSTUNREACH


# --- two nodes in this process, over a real socket: what a hostile peer may try ----------


class Echo(Server):
    pid = p.VFS_PID
    reply_type = p.VFS_REPLY


def _close(srv: Server, req: Request) -> int:
    return req.body.fd


Echo.handlers = {p.VFS_CLOSE: _close}


@pytest.fixture
async def node(sock_dir: str, nursery: trio.Nursery) -> AsyncIterator[tuple[Lattice, str]]:
    lattice = Lattice(node_id=SERVER_NODE)
    Echo(lattice)
    lattice.register(p.KERNEL_PID)
    lattice.connect_local(p.KERNEL_PID, p.VFS_PID)
    path = os.path.join(sock_dir, "n.sock")
    await nursery.start(serve_socket, lattice, path)
    yield lattice, path


async def joined(path: str, nursery: trio.Nursery, pid: int | None = None) -> Lattice:
    """A node joined to ``path``; its one endpoint is its client pid (or ``pid``)."""
    lattice = Lattice(node_id=0)
    with trio.fail_after(5):
        await dial(lattice, path, nursery)
    lattice.register(transport.node_client_pid(lattice.node_id) if pid is None else pid)
    return lattice


def client_pid(lattice: Lattice) -> int:
    return transport.node_client_pid(lattice.node_id)


async def test_remote_peer_cannot_take_a_local_pid(node: tuple[Lattice, str],
                                                   nursery: trio.Nursery) -> None:
    server, path = node
    client = await joined(path, nursery, pid=p.KERNEL_PID)
    with trio.fail_after(5), pytest.raises(IpcError) as info:
        await client.connect(p.KERNEL_PID, p.VFS_PID, node=SERVER_NODE)
    assert info.value.errno == errno.EPERM     # not one of its own endpoints
    # the kernel's own channel is untouched
    assert server.call(p.KERNEL_PID, p.VFS_PID, p.VfsClose(caller=1, fd=3)).body.result == 3


async def test_remote_peer_cannot_speak_for_another_node(node: tuple[Lattice, str],
                                                         nursery: trio.Nursery) -> None:
    server, path = node
    client = await joined(path, nursery)
    CLIENT = client_pid(client)
    route = client.routes[SERVER_NODE]
    offer = chankey.Initiator(chankey.Ends(CLIENT, 3, p.VFS_PID, SERVER_NODE)).offer
    with trio.fail_after(5), pytest.raises(IpcError) as info:
        await route.handshake(CLIENT, 3, p.VFS_PID, offer)   # claims to be node 3
    assert info.value.errno == errno.EPERM
    assert (3, CLIENT, p.VFS_PID) not in server.recv_channels


async def test_frames_over_the_socket_are_checked(node: tuple[Lattice, str],
                                                  nursery: trio.Nursery) -> None:
    server, path = node
    client = await joined(path, nursery)
    CLIENT = client_pid(client)
    await client.connect(CLIENT, p.VFS_PID, node=SERVER_NODE)
    route = client.routes[SERVER_NODE]
    sent: list[bytes] = []
    real_send = route.send_frame

    def spy(frame: bytes) -> None:
        sent.append(bytes(frame))
        real_send(frame)

    route.send_frame = spy  # type: ignore[method-assign]
    with trio.fail_after(5):
        reply = await client.sendrec(CLIENT, p.VFS_PID, p.VfsClose(caller=1, fd=8))
    assert reply.body.result == 8
    frame = sent[0]
    tampered = bytearray(frame)
    tampered[-1] ^= 1
    other_node = bytearray(frame)
    other_node[8] ^= 2                 # src node in the associated data
    for bad in (frame, bytes(tampered), bytes(other_node)):
        real_send(bad)
    with trio.fail_after(5):
        while server.stats.replayed + server.stats.tampered < 3:
            await trio.sleep(0.01)
    assert server.stats.replayed == 1 and server.stats.tampered == 2
    with trio.fail_after(5):
        reply = await client.sendrec(CLIENT, p.VFS_PID, p.VfsClose(caller=1, fd=9))
    assert reply.body.result == 9


async def _raw_link(path: str, secret: bytes | None = None) -> tuple[trio.SocketStream, int]:
    """A hand-made link: the handshake, then whatever the test sends; (stream, our node)."""
    stream = await trio.open_unix_socket(path)
    route = transport.SocketRoute(Lattice(0), stream)
    with trio.fail_after(5):
        _boot, node = await route.answer(secret or transport.read_secret(path))
    return stream, node


async def _closed_by_peer(stream: trio.SocketStream) -> bool:
    with trio.fail_after(5):
        while True:
            try:
                chunk = await stream.receive_some(4096)
            except trio.BrokenResourceError:
                return True
            if not chunk:
                return True


@pytest.mark.parametrize("garbage", [
    transport.RECORD.pack(0, transport.FRAME),                        # zero length
    transport.RECORD.pack(transport.MAX_RECORD + 1, transport.FRAME),  # too long
])
async def test_a_garbage_record_closes_only_that_link(node: tuple[Lattice, str],
                                                      nursery: trio.Nursery,
                                                      garbage: bytes) -> None:
    server, path = node
    good = await joined(path, nursery)
    await good.connect(client_pid(good), p.VFS_PID, node=SERVER_NODE)
    bad, _ = await _raw_link(path)
    await bad.send_all(garbage)
    assert await _closed_by_peer(bad)
    await bad.aclose()
    with trio.fail_after(5):
        reply = await good.sendrec(client_pid(good), p.VFS_PID, p.VfsClose(caller=1, fd=1))
    assert reply.body.result == 1
    late = await joined(path, nursery)            # still accepting
    assert SERVER_NODE in late.routes


async def test_unknown_records_and_frames_are_ignored(node: tuple[Lattice, str],
                                                      nursery: trio.Nursery) -> None:
    server, path = node
    bad, node = await _raw_link(path)
    await bad.send_all(transport.RECORD.pack(4, 99) + b"abc"            # unknown kind
                       + transport.RECORD.pack(3, transport.FRAME) + b"xy"   # short frame
                       + transport.RECORD.pack(3, transport.KEY_REQUEST) + b"xy")
    with trio.fail_after(5):
        while server.stats.tampered < 1:
            await trio.sleep(0.01)
    assert node in server.routes
    await bad.aclose()


async def test_a_peer_without_the_key_is_refused(node: tuple[Lattice, str]) -> None:
    server, path = node
    with pytest.raises(IpcError):
        await _raw_link(path, secret=bytes(32))
    assert server.routes == {} and server.peers == {}


async def test_each_link_gets_a_node_of_its_own(node: tuple[Lattice, str],
                                                nursery: trio.Nursery) -> None:
    server, path = node
    ids = {(await joined(path, nursery)).node_id for _ in range(3)}
    assert len(ids) == 3 and SERVER_NODE not in ids and 0 not in ids


async def test_silent_peer_is_dropped_after_hello_timeout(node: tuple[Lattice, str],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    server, path = node
    monkeypatch.setattr(transport, "HELLO_TIMEOUT", 0.1)
    stream = await trio.open_unix_socket(path)
    assert await _closed_by_peer(stream)
    await stream.aclose()


async def test_serve_socket_cleans_up(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "x.sock")
    with open(path, "w"):
        pass                            # a stale file in the way
    lattice = Lattice()
    async with trio.open_nursery() as nursery:
        assert await nursery.start(serve_socket, lattice, path) == path
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert os.stat(transport.secret_path(path)).st_mode & 0o777 == 0o600
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        client.close()
        nursery.cancel_scope.cancel()
    assert not os.path.exists(path) and not os.path.exists(transport.secret_path(path))
    assert lattice.routes == {}


async def test_link_closed_by_the_client(node: tuple[Lattice, str]) -> None:
    server, path = node
    async with trio.open_nursery() as nursery:
        client = await joined(path, nursery)
        await client.connect(client_pid(client), p.VFS_PID, node=SERVER_NODE)
        with trio.fail_after(5):
            while client.node_id not in server.routes:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    with trio.fail_after(5):
        while client.node_id in server.routes:
            await trio.sleep(0.01)
    assert client.node_id not in server.peers
    # the server accepts the next one (under a new node id: ids are not reused)
    async with trio.open_nursery() as nursery:
        again = await joined(path, nursery)
        assert SERVER_NODE in again.routes
        nursery.cancel_scope.cancel()



# --- channel handshakes over the link (hybrid ML-KEM-768 + X25519, lib/chankey.py) -------


async def server_route(server: Lattice, node: int) -> transport.SocketRoute:
    """The boot's side of a link (it is registered once the boot's task gets to it,
    which may be after the joining side's ``dial`` returned)."""
    with trio.fail_after(5):
        while node not in server.routes:
            await trio.sleep(0.001)
    route = server.routes[node]
    assert isinstance(route, transport.SocketRoute)
    return route


async def test_both_ends_of_a_link_share_its_binding(node: tuple[Lattice, str],
                                                     nursery: trio.Nursery) -> None:
    server, path = node
    a, b = await joined(path, nursery), await joined(path, nursery)
    bindings = [a.routes[SERVER_NODE].binding, b.routes[SERVER_NODE].binding]
    assert (await server_route(server, a.node_id)).binding == bindings[0]
    assert len(set(bindings)) == 2 and all(len(x) == 32 for x in bindings)


async def test_a_replayed_handshake_on_the_link_is_refused(
        node: tuple[Lattice, str], nursery: trio.Nursery,
        caplog: pytest.LogCaptureFixture) -> None:
    server, path = node
    client = await joined(path, nursery)
    CLIENT = client_pid(client)
    route = client.routes[SERVER_NODE]
    sent: list[tuple[int, bytes]] = []
    real_queue = route._queue

    def spy(kind: int, body: bytes) -> None:
        sent.append((kind, body))
        real_queue(kind, body)

    route._queue = spy  # type: ignore[method-assign]
    with trio.fail_after(5):
        await client.connect(CLIENT, p.VFS_PID, node=SERVER_NODE)
    request = [body for kind, body in sent if kind == transport.KEY_REQUEST]
    assert len(request) == 1
    key = bytes(server.recv_channels[(client.node_id, CLIENT, p.VFS_PID)].key)
    caplog.set_level(logging.WARNING)
    real_queue(transport.KEY_REQUEST, request[0])          # the recorded offer, again
    with trio.fail_after(5):
        while server.stats.handshakes_refused < 1:
            await trio.sleep(0.01)
    assert [r.getMessage() for r in caplog.records if "refused" in r.getMessage()] == [
        f"channel {CLIENT}@{client.node_id} -> {p.VFS_PID}@{SERVER_NODE} refused: "
        "replayed handshake offer"]
    assert all(r.exc_info is None for r in caplog.records)
    assert bytes(server.recv_channels[(client.node_id, CLIENT, p.VFS_PID)].key) == key
    with trio.fail_after(5):
        reply = await client.sendrec(CLIENT, p.VFS_PID, p.VfsClose(caller=1, fd=3))
    assert reply.body.result == 3


async def test_a_tampered_answer_on_the_link_opens_no_channel(
        node: tuple[Lattice, str], nursery: trio.Nursery,
        caplog: pytest.LogCaptureFixture) -> None:
    server, path = node
    client = await joined(path, nursery)
    CLIENT = client_pid(client)
    link = await server_route(server, client.node_id)
    real_queue = link._queue

    def tamper(kind: int, body: bytes) -> None:
        if kind == transport.KEY_REPLY:                  # flip a bit of the ML-KEM ciphertext
            edited = bytearray(body)
            edited[transport.KEY_REP_HEAD.size + chankey.X25519_SIZE + 99] ^= 1
            body = bytes(edited)
        real_queue(kind, body)

    link._queue = tamper  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING)
    with trio.fail_after(5), pytest.raises(IpcError) as info:
        await client.connect(CLIENT, p.VFS_PID, node=SERVER_NODE)
    assert info.value.errno == errno.EPROTO
    found = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(found) == 1 and "key confirmation failed" in found[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
    assert (CLIENT, p.VFS_PID) not in client.send_channels
    with pytest.raises(IpcError):
        await client.sendrec(CLIENT, p.VFS_PID, p.VfsClose(caller=1, fd=3))
    assert server.stats.delivered == 0


async def test_a_malformed_offer_on_the_link_is_refused(node: tuple[Lattice, str],
                                                        nursery: trio.Nursery) -> None:
    server, path = node
    client = await joined(path, nursery)
    CLIENT = client_pid(client)
    route = client.routes[SERVER_NODE]
    for offer in (b"", b"\x01" * 33, bytes(32) + b"\xff" * chankey.EK_SIZE):
        with trio.fail_after(5), pytest.raises(IpcError) as info:
            await route.handshake(CLIENT, client.node_id, p.VFS_PID, offer)
        assert info.value.errno == errno.EPROTO
    assert server.stats.handshakes_refused == 3
    with trio.fail_after(5):                  # the link and the server carry on
        await client.connect(CLIENT, p.VFS_PID, node=SERVER_NODE)
        reply = await client.sendrec(CLIENT, p.VFS_PID, p.VfsClose(caller=1, fd=4))
    assert reply.body.result == 4


async def test_rekeying_over_the_link_keeps_a_long_stream_working(
        node: tuple[Lattice, str], nursery: trio.Nursery) -> None:
    server, path = node
    client = await joined(path, nursery)
    CLIENT = client_pid(client)
    server.rekey_after = client.rekey_after = 16     # both ends count the same span
    with trio.fail_after(5):
        await client.connect(CLIENT, p.VFS_PID, node=SERVER_NODE)
    route = client.routes[SERVER_NODE]
    sent: list[bytes] = []
    real_send = route.send_frame

    def spy(frame: bytes) -> None:
        sent.append(bytes(frame))
        real_send(frame)

    route.send_frame = spy  # type: ignore[method-assign]
    keys = set()
    with trio.fail_after(30):
        for fd in range(400):
            reply = await client.sendrec(CLIENT, p.VFS_PID, p.VfsClose(caller=1, fd=fd))
            assert reply.body.result == fd
            keys.add(bytes(client.send_channels[(CLIENT, p.VFS_PID)].key))
    assert len(keys) == 400 // 16
    nonces = [f[transport.AD_SIZE:transport.AD_SIZE + 24] for f in sent]
    assert len(set(nonces)) == len(nonces) == 400
    assert server.stats.tampered == server.stats.replayed == 0
    assert client.stats.tampered == client.stats.replayed == 0
