"""PM's default notifier: real lattice messages to a fake VFS (pid 2), and the
PM wire types themselves."""
from __future__ import annotations

import dataclasses
import errno
import os
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from xinim_host.lib import protocol as p
from xinim_host.lib.errors import SysError
from xinim_host.lib.ipc import Lattice
from xinim_host.lib.server import Server
from xinim_host.lib.vm_abi import PAGE_SIZE, PROT_WRITE
from xinim_host.mm.server import MmServer
from xinim_host.pm.server import PmServer


class FakeVfs(Server):
    """Answers PM's notifications and exec checks; ``slow`` answers them later."""

    pid = p.VFS_PID
    reply_type = p.VFS_REPLY

    def __init__(self, lattice: Lattice) -> None:
        super().__init__(lattice)
        self.seen: list[Any] = []
        self.slow = False
        self.files: dict[bytes, p.VfsNodeReply] = {}
        self.handlers = {t: FakeVfs.note for t in range(140, 146)} | {
            p.VFS_EXEC_OPEN: FakeVfs.exec_open}

    def note(self, req: Any) -> Any:
        self.seen.append(req.body)
        return self._answer(0)

    def exec_open(self, req: Any) -> Any:
        self.seen.append(req.body)
        node = self.files.get(req.body.path)
        if node is None:
            raise SysError(errno.ENOENT)
        return self._answer(node)

    def _answer(self, value: Any) -> Any:
        if not self.slow:
            return value

        async def later() -> Any:
            await trio.sleep(0.01)
            return value
        return later()


async def _system(nursery: trio.Nursery) -> tuple[Lattice, PmServer, FakeVfs]:
    lattice = Lattice()
    lattice.register(p.KERNEL_PID)
    vfs = FakeVfs(lattice)
    pm = PmServer(lattice, signal_host=lambda pid, sig: None)
    lattice.connect_local(p.KERNEL_PID, p.PM_PID)
    lattice.connect_local(p.PM_PID, p.VFS_PID)
    await nursery.start(vfs.serve)
    await nursery.start(pm.serve)
    return lattice, pm, vfs


@pytest.mark.parametrize("slow", [False, True])
async def test_lattice_notifier_tells_vfs(slow: bool) -> None:
    async with trio.open_nursery() as n:
        lattice, _pm, vfs = await _system(n)
        vfs.slow = slow
        vfs.files[b"/bin/sh"] = p.VfsNodeReply(host_path=b"/usr/bin/dash", dev=3, ino=9,
                                              mode=0o100755)

        async def ask(body: p.Payload) -> Any:
            return (await lattice.sendrec(p.KERNEL_PID, p.PM_PID, body)).body

        child = (await ask(p.ProcFork(parent_pid=1, child_host_pid=99))).result
        assert vfs.seen[-1] == p.VfsFork(parent=1, child=child)
        r = await ask(p.ProcExec(caller=child, path=b"/bin/sh", argv=b"sh"))
        assert (r.error, r.host_path, r.dev, r.ino) == (0, b"/usr/bin/dash", 3, 9)
        # PM's last check commits: the VFS closes the close-on-exec fds with it, and
        # no VfsExec follows
        assert vfs.seen[-1] == p.VfsExecOpen(caller=child, dirfd=-100, flags=p.EXEC_COMMIT,
                                             path=b"/bin/sh")
        vfs.files[b"/s"] = p.VfsNodeReply(script=1, interp=b"/bin/sh", mode=0o100755)
        seen = len(vfs.seen)
        r = await ask(p.ProcExec(caller=child, path=b"/s", argv=b"s"))
        assert (r.error, r.path, r.argv) == (0, b"/bin/sh", b"/bin/sh\0/s")
        assert vfs.seen[seen:] == [      # a script's check commits nothing; its interpreter's does
            p.VfsExecOpen(caller=child, dirfd=-100, flags=p.EXEC_COMMIT, path=b"/s"),
            p.VfsExecOpen(caller=child, dirfd=-100, flags=p.EXEC_COMMIT, path=b"/bin/sh")]
        assert (await ask(p.ProcExec(caller=child, path=b"/x", argv=b"x"))).error == errno.ENOENT
        await ask(p.ProcSetresgid(caller=child, rgid=5, egid=6, sgid=6))
        assert vfs.seen[-1] == p.VfsSetids(pid=child, uid=0, euid=0, gid=5, egid=6)
        await ask(p.ProcSetgroups(caller=child, data=(7).to_bytes(4, "little")))
        assert vfs.seen[-1] == p.VfsSetgroups(pid=child, data=b"\x07\0\0\0")
        await ask(p.ProcKill(caller=0, pid=child, sig=15))
        await ask(p.ProcExitGroup(caller=child, status=0))
        await trio.sleep(0.05)
        assert p.VfsCancel(pid=child, err=errno.EINTR) in vfs.seen
        assert vfs.seen[-1] == p.VfsExit(pid=child)
        n.cancel_scope.cancel()


async def test_mm_layout_follows_an_exec() -> None:
    """PM tells MM of the exec (MmExec): the old image's record and frames go at
    once, and the kernel's layout import after the host exec is the new image --
    even one shaped page for page like the old (which an import alone would keep)."""
    async with trio.open_nursery() as n:
        lattice, _pm, vfs = await _system(n)
        mm = MmServer(lattice, phys_size=64 << 20)
        lattice.connect_local(p.KERNEL_PID, p.MM_PID)
        lattice.connect_local(p.PM_PID, p.MM_PID)
        await n.start(mm.serve)
        vfs.files[b"/bin/sh"] = p.VfsNodeReply(host_path=b"/usr/bin/dash", dev=3, ino=9,
                                              mode=0o100755)

        async def ask(dst: int, body: p.Payload) -> Any:
            reply = (await lattice.sendrec(p.KERNEL_PID, dst, body)).body
            assert reply.error == 0, body
            return reply

        child = (await ask(p.PM_PID, p.ProcFork(parent_pid=1))).result
        assert child in mm.procs                       # PM's MmFork made its record
        await ask(p.MM_PID, p.MmExecLayout(pid=child, host_pid=os.getpid()))
        writable = next(r for r in mm.acct.space(child) if r.prot & PROT_WRITE and not r.shared)
        await ask(p.MM_PID, p.MmCharge(caller=child, addr=writable.start, length=PAGE_SIZE))
        assert mm.acct.usage(child).used == 1          # the old image's page
        free = mm.acct.frames.free_pages

        await ask(p.PM_PID, p.ProcExec(caller=child, path=b"/bin/sh", argv=b"sh"))
        assert list(mm.acct.space(child)) == []        # the old image is gone ...
        assert mm.acct.frames.free_pages == free + 1   # ... and its frame with it
        await ask(p.MM_PID, p.MmExecLayout(pid=child, host_pid=os.getpid()))
        assert any(r.name == "[stack]" for r in mm.acct.space(child))   # the new image
        assert mm.acct.usage(child).used == 0
        mm.acct.frames.check_invariants()
        n.cancel_scope.cancel()


class _Host:
    """A host half with no tasks (PM then leaves exec notices to the kernel)."""

    def signal_task(self, host_tgid: int, host_tid: int, sig: int, info: bytes = b"") -> bool:
        return False

    def interrupt(self, pid: int, err: int) -> None:
        pass

    def calls_parked(self, pid: int) -> bool | None:
        return None


async def test_fresh_layout_replaces_the_record() -> None:
    """With a host half attached, every host exec is reported by the kernel's fresh
    MmExecLayout: PM sends MM nothing, the old record lasts until then (a failed
    host exec keeps it), and the fresh import replaces it -- even one shaped page
    for page like the old (which a plain import would keep)."""
    async with trio.open_nursery() as n:
        lattice, pm, vfs = await _system(n)
        host = _Host()
        pm.attach_host(host)
        mm = MmServer(lattice, phys_size=64 << 20)
        lattice.connect_local(p.KERNEL_PID, p.MM_PID)
        lattice.connect_local(p.PM_PID, p.MM_PID)
        await n.start(mm.serve)
        vfs.files[b"/bin/sh"] = p.VfsNodeReply(host_path=b"/usr/bin/dash", dev=3, ino=9,
                                              mode=0o100755)

        async def ask(dst: int, body: p.Payload) -> Any:
            reply = (await lattice.sendrec(p.KERNEL_PID, dst, body)).body
            assert reply.error == 0, body
            return reply

        child = (await ask(p.PM_PID, p.ProcFork(parent_pid=1))).result
        await ask(p.MM_PID, p.MmExecLayout(pid=child, host_pid=os.getpid()))
        writable = next(r for r in mm.acct.space(child) if r.prot & PROT_WRITE and not r.shared)
        await ask(p.MM_PID, p.MmCharge(caller=child, addr=writable.start, length=PAGE_SIZE))
        free = mm.acct.frames.free_pages
        await ask(p.PM_PID, p.ProcExec(caller=child, path=b"/bin/sh", argv=b"sh"))
        assert mm.acct.usage(child).used == 1          # the old image runs until the host execs
        await ask(p.MM_PID, p.MmExecLayout(pid=child, host_pid=os.getpid(), fresh=1))
        assert any(r.name == "[stack]" for r in mm.acct.space(child))
        assert mm.acct.usage(child).used == 0          # the old image's page went
        assert mm.acct.frames.free_pages == free + 1
        mm.acct.frames.check_invariants()
        del host
        n.cancel_scope.cancel()


async def test_pm_without_vfs_channel_still_forks() -> None:
    lattice = Lattice()
    lattice.register(p.KERNEL_PID)
    PmServer(lattice)
    lattice.connect_local(p.KERNEL_PID, p.PM_PID)
    r = (await lattice.sendrec(p.KERNEL_PID, p.PM_PID, p.ProcFork(parent_pid=1))).body
    assert r.error == 0 and r.result == p.FIRST_USER_PID


# --- the wire types -------------------------------------------------------------------------

PM_REQUESTS = [cls for t, cls in p.REQUESTS.items() if 200 <= t < 250]
# reply class -> a request type it answers (decode picks the class by ``call``)
PM_REPLIES = {cls: call for (t, call), cls in sorted(p.REPLIES.items()) if t == p.PROC_REPLY}


def test_pm_numbers_stay_in_range() -> None:
    types = sorted(cls.M_TYPE for cls in PM_REQUESTS)
    assert types == list(range(200, 200 + len(types)))     # dense, none shared
    assert types[-1] < p.PROC_REPLY                        # all in PM's block, below its reply
    assert all(cls.M_TYPE == p.PROC_REPLY for cls in PM_REPLIES)


def _sample(cls: type, draw: Any) -> Any:
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in cls._FIXED_NAMES:
            code = cls._FIXED.format[1 + cls._FIXED_NAMES.index(f.name)]
            lo, hi = {"i": (-2**31, 2**31 - 1), "I": (0, 2**32 - 1), "q": (-2**63, 2**63 - 1),
                      "Q": (0, 2**64 - 1)}[code]
            values[f.name] = draw(st.integers(lo, hi))
        else:
            limit = dict(cls._VAR)[f.name].limit
            values[f.name] = draw(st.binary(max_size=min(limit, 300)))
    return cls(**values)


@pytest.mark.parametrize("cls", PM_REQUESTS + list(PM_REPLIES), ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_pm_message_round_trips(cls: type, data: Any) -> None:
    body = _sample(cls, data.draw)
    if cls in PM_REPLIES:
        body = dataclasses.replace(body, call=PM_REPLIES[cls])
    msg = p.decode(p.encode(body, 0, 5))
    assert msg.body == body and msg.req_id == 5
