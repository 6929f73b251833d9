"""Boot: every server comes up, answers every message type, and goes away cleanly."""
from __future__ import annotations

import dataclasses
import errno
import os
import re
import shutil
import tempfile
from typing import Any, Callable

import pytest
import trio

from xinim_host.lib import protocol as p
from xinim_host.system.boot import BootConfig, booted
from xinim_host.kernel.dispatch import SyscallContext
from xinim_host.lib.errors import SysError
from xinim_host.lib.ipc import Lattice
from xinim_host.lib.syscalls import Sys
from xinim_host.lib.transport import dial, node_client_pid
from xinim_host.lib.usermem import FlatMemory
from xinim_host.lib.protocol import wire

NOBODY = 4242                   # a pid no process has: every call fails harmlessly
MISSING = b"/xinim-boot-test/no/such/dir"


def harmless(cls: type) -> p.Payload:
    """A request of ``cls`` whose answer cannot block or change anything that lasts:
    an unknown caller, fds that are not open, paths whose parent does not exist,
    no waiting (WNOHANG, zero timeouts)."""
    values: dict[str, Any] = {}
    for name in cls._FIXED_NAMES:
        if name in ("caller", "parent", "child", "pid", "tgid", "tid", "id", "parent_pid",
                    "pgid"):
            values[name] = NOBODY
        elif "host" in name:
            values[name] = 999_999
        elif "fd" in name:
            values[name] = 999
        elif name == "options":
            values[name] = 1            # WNOHANG
        elif name in ("count", "size", "length"):
            values[name] = 16
        else:
            values[name] = 0
    for name, kind in cls._VAR:
        values[name] = MISSING if kind is wire.PATH else b""
    return cls(**values)


def boot_log_lists(text: str, name: str, pid: int) -> bool:
    return any(re.search(rf"\b{re.escape(name)}\b", line, re.I) and re.search(rf"\b{pid}\b", line)
               for line in text.splitlines())


async def test_boot_brings_every_server_up_and_down(console: Any,
                                                    all_tasks: Callable[[], set]) -> None:
    before = all_tasks()
    with trio.fail_after(30):
        async with booted(BootConfig(console=console, quiet=False)) as system:
            text = console.text
            for name, pid in (("VFS", p.VFS_PID), ("PM", p.PM_PID), ("MM", p.MM_PID),
                              ("init", p.INIT_PID)):
                assert boot_log_lists(text, name, pid), (name, text)
            for server, pid in ((system.vfs, p.VFS_PID), (system.pm, p.PM_PID),
                                (system.mm, p.MM_PID)):
                assert server.pid == pid and not system.lattice.endpoints[pid].closed
            assert len(all_tasks() - before) > 0
            lattice = system.lattice
    assert all_tasks() - before == set(), "tasks left running after boot's context"
    assert all(endpoint.closed for endpoint in lattice.endpoints.values())


async def test_quiet_boot_prints_nothing(console: Any) -> None:
    with trio.fail_after(30):
        async with booted(BootConfig(console=console, quiet=True)):
            pass
    assert console.out == b""


async def test_kernel_to_server_round_trip_for_every_request_type(console: Any) -> None:
    problems: list[str] = []
    with trio.fail_after(60):
        async with booted(BootConfig(console=console, quiet=True)) as system:
            for m_type, cls in sorted(p.REQUESTS.items()):
                owner = p.owner_of(m_type)
                assert owner is not None, m_type
                server_pid, reply_type = owner
                body = harmless(cls)
                try:
                    with trio.fail_after(5):
                        reply = await system.lattice.sendrec(p.KERNEL_PID, server_pid, body)
                except trio.TooSlowError:
                    problems.append(f"{cls.__name__} ({m_type}): no reply")
                    continue
                if reply.m_source != server_pid or reply.m_type != reply_type:
                    problems.append(f"{cls.__name__}: reply {reply} from {reply.m_source}")
                elif reply.body.call != m_type:
                    problems.append(f"{cls.__name__}: reply answers {reply.body.call}")
                elif reply.body.error < 0:
                    problems.append(f"{cls.__name__}: negative errno {reply.body.error}")
            assert system.lattice.stats.tampered == system.lattice.stats.replayed == 0
    assert problems == []


async def test_syscalls_through_the_booted_kernel(console: Any) -> None:
    with trio.fail_after(30):
        async with booted(BootConfig(console=console, quiet=True)) as system:
            mem = FlatMemory(4096, base=0x10000)
            init = SyscallContext(pid=p.INIT_PID, args=(0,) * 6, mem=mem)
            assert await system.kernel.syscall(Sys.GETPID, init) == p.INIT_PID
            assert await system.kernel.syscall(9999, init) == -errno.ENOSYS
            mem.write(0x10000, b"boot ok\n")
            write = dataclasses.replace(init, args=(0x10000, 8, 0, 0, 0, 0))
            assert await system.kernel.syscall(Sys.DEBUG_WRITE, write) == 8
    assert b"boot ok\n" in console.out


async def test_net_starts_on_first_use(console: Any) -> None:
    """NET is no part of the boot: the first socket call starts it (a real server
    behind its endpoint, its boot line in the log); an exit before that is no
    message to it."""
    with trio.fail_after(30):
        async with booted(BootConfig(console=console, quiet=False)) as system:
            lattice = system.lattice
            mem = FlatMemory(4096, base=0x10000)
            init = SyscallContext(pid=p.INIT_PID, args=(0,) * 6, mem=mem)
            assert await system.kernel.syscall(Sys.GETPID, init) == p.INIT_PID
            system.pm.notify.exit(NOBODY)                # PM tells NET of no exit yet
            assert p.NET_PID not in lattice.endpoints and system.net is None
            assert not boot_log_lists(console.text, "NET", p.NET_PID)
            sock = dataclasses.replace(init, args=(1, 1, 0, 0, 0, 0))   # AF_UNIX stream
            fd = await system.kernel.syscall(Sys.SOCKET, sock)
            assert fd >= 0
            assert system.net is not None and not lattice.endpoints[p.NET_PID].closed
            assert (p.PM_PID, p.NET_PID) in lattice.send_channels
            assert boot_log_lists(console.text, "NET", p.NET_PID)
            assert await system.kernel.syscall(Sys.CLOSE, dataclasses.replace(
                init, args=(fd, 0, 0, 0, 0, 0))) == 0


async def test_a_server_that_fails_to_start_is_absent(caplog: Any) -> None:
    lattice = Lattice()
    lattice.register(p.KERNEL_PID)
    tries = []

    def broken() -> None:
        tries.append(1)
        raise ImportError("no such server (test)")

    lattice.on_demand[p.NET_PID] = broken
    for _ in range(2):
        with pytest.raises(SysError) as info:
            lattice.call(p.KERNEL_PID, p.NET_PID, p.NetExit(pid=NOBODY))
        assert info.value.errno == errno.ESRCH
    assert tries == [1]                                  # tried once, logged
    assert "failed to start" in caplog.text


async def test_boot_serves_other_nodes_and_cleans_up(console: Any,
                                                     all_tasks: Callable[[], set]) -> None:
    sock_dir = tempfile.mkdtemp(prefix="xb-", dir="/tmp")
    path = os.path.join(sock_dir, "node.sock")
    before = all_tasks()
    try:
        with trio.fail_after(30):
            async with booted(BootConfig(console=console, quiet=False, socket_path=path)) as system:
                assert os.path.exists(path)
                client = Lattice(node_id=0)          # the system gives the node id
                async with trio.open_nursery() as nursery:
                    assert await dial(client, path, nursery) == system.config.node_id
                    me = node_client_pid(client.node_id)
                    client.register(me)
                    await client.connect(me, p.VFS_PID, node=system.config.node_id)
                    reply = await client.sendrec(me, p.VFS_PID, p.VfsClose(caller=me, fd=999))
                    assert reply.m_source == p.VFS_PID and reply.body.call == p.VFS_CLOSE
                    assert reply.body.error != 0         # fd 999 is not open
                    nursery.cancel_scope.cancel()
        assert not os.path.exists(path)
        assert all_tasks() - before == set()
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


async def test_cancelling_a_booted_system(console: Any, all_tasks: Callable[[], set]) -> None:
    before = all_tasks()
    with trio.move_on_after(0.2) as scope:
        async with booted(BootConfig(console=console, quiet=True)):
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert all_tasks() - before == set()


@pytest.mark.parametrize("m_type", [p.VFS_OPEN, p.PROC_GETPID, p.MM_BRK])
async def test_malformed_requests_to_booted_servers(console: Any, m_type: int) -> None:
    owner = p.owner_of(m_type)
    assert owner is not None
    with trio.fail_after(30):
        async with booted(BootConfig(console=console, quiet=True)) as system:
            system.lattice.send_bytes(p.KERNEL_PID, owner[0], m_type,
                                      p.HEADER.pack(0, m_type, 5) + b"\1")
            answer = await system.lattice.recv(p.KERNEL_PID)
            assert answer.body.error == errno.EBADMSG and answer.req_id == 5
            reply = await system.lattice.sendrec(p.KERNEL_PID, owner[0],
                                                 harmless(p.REQUESTS[m_type]))
            assert reply.body.call == m_type
