"""Harness for the PM tests: a lattice with the kernel's endpoint (0) and PM, a
recorder for host signals and a fake VFS/MM behind PM's notifier seam.
(No tests here; the test_pm_* modules import it.)"""
from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from xinim_host.lib import protocol as p
from xinim_host.lib.ipc import Lattice
from xinim_host.pm.notify import ExecTarget
from xinim_host.pm.server import PmServer

SIGCHLD, SIGKILL, SIGTERM, SIGUSR1, SIGSTOP, SIGCONT, SIGINT = 17, 9, 15, 10, 19, 18, 2


class HostSignals:
    """Stands in for ``os.kill``: remembers what PM asked the host to deliver."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int]] = []

    def __call__(self, host_pid: int, sig: int) -> None:
        self.sent.append((host_pid, sig))


@dataclass
class FakeServers:
    """The VFS and MM as PM's notifier sees them: records every notification;
    ``files`` answers exec checks; ``gate`` (when set) holds fork notifications
    until it is set, to exercise the asynchronous path."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    files: dict[bytes, ExecTarget | int] = field(default_factory=dict)
    fork_error: int = 0
    gate: trio.Event | None = None

    def fork(self, parent: int, child: int, share_vm: bool = False) -> Any:
        self.calls.append(("fork", parent, child))
        if self.gate is None:
            return self.fork_error

        async def later() -> int:
            assert self.gate is not None
            await self.gate.wait()
            return self.fork_error
        return later()

    def exec(self, pid: int, vfs: bool = True, mm: bool = True) -> Any:
        if vfs or mm:
            self.calls.append(("exec", pid))
        return 0

    def exit(self, pid: int) -> Any:
        self.calls.append(("exit", pid))
        return 0

    def setids(self, pid: int, uid: int, euid: int, gid: int, egid: int) -> Any:
        self.calls.append(("setids", pid, uid, euid, gid, egid))
        return 0

    def setgroups(self, pid: int, groups: tuple[int, ...]) -> Any:
        self.calls.append(("setgroups", pid, groups))
        return 0

    def interrupt(self, pid: int, err: int) -> Any:
        self.calls.append(("interrupt", pid, err))
        return 0

    def exec_check(self, pid: int, path: bytes, commit: bool = False) -> Any:
        self.calls.append(("exec_check", pid, path))

        async def later() -> ExecTarget | int:   # VFS answers asynchronously
            await trio.lowlevel.checkpoint()
            return self.files.get(path, errno.ENOENT)
        return later()


class Harness:
    def __init__(self, lattice: Lattice, pm: PmServer, host: HostSignals,
                 servers: FakeServers) -> None:
        self.lattice, self.pm, self.host, self.servers = lattice, pm, host, servers
        self._next_host = 40000

    async def ask(self, body: p.Payload, src: int = p.KERNEL_PID) -> Any:
        """Send as the kernel (or ``src``) and return the reply's payload."""
        return (await self.lattice.sendrec(src, p.PM_PID, body)).body

    async def ok(self, body: p.Payload, src: int = p.KERNEL_PID) -> Any:
        reply = await self.ask(body, src)
        assert reply.error == 0, f"{body} failed with errno {reply.error}"
        return reply

    async def err(self, body: p.Payload, src: int = p.KERNEL_PID) -> int:
        reply = await self.ask(body, src)
        assert reply.error != 0, f"{body} succeeded: {reply}"
        return reply.error

    def new_host(self) -> int:
        self._next_host += 1
        return self._next_host

    async def fork(self, parent: int, *, flags: int = 0, host: int | None = None) -> int:
        host = self.new_host() if host is None else host
        reply = await self.ok(p.ProcFork(parent_pid=parent, child_host_pid=host, flags=flags))
        return reply.result

    async def exit(self, pid: int, code: int = 0) -> None:
        await self.ok(p.ProcExitGroup(caller=pid, status=(code & 0xFF) << 8))

    async def wait4(self, caller: int, pid: int = -1, options: int = 0) -> Any:
        return await self.ask(p.ProcWait4(caller=caller, pid=pid, options=options))

    async def kill(self, caller: int, pid: int, sig: int) -> Any:
        return await self.ask(p.ProcKill(caller=caller, pid=pid, sig=sig))

    async def getpgid(self, caller: int, pid: int = 0) -> int:
        return (await self.ok(p.ProcGetpgid(caller=caller, pid=pid))).result

    def pcb(self, pid: int) -> Any:
        return self.pm.table.procs.get(pid)


@asynccontextmanager
async def running_pm(**kwargs: Any) -> AsyncIterator[Harness]:
    lattice = Lattice()
    lattice.register(p.KERNEL_PID)
    host = HostSignals()
    servers = FakeServers()
    pm = PmServer(lattice, signal_host=host, notify=servers, **kwargs)
    lattice.connect_local(p.KERNEL_PID, p.PM_PID)
    async with trio.open_nursery() as nursery:
        await nursery.start(pm.serve)
        yield Harness(lattice, pm, host, servers)
        nursery.cancel_scope.cancel()
