"""Process groups, sessions, credentials, the listing and /proc information."""
from __future__ import annotations

import errno
import struct

from support.pm import running_pm

from xinim_host.lib import protocol as p


async def test_boot_table() -> None:
    async with running_pm() as h:
        assert set(h.pm.table.procs) == {1, 2, 3, 4}
        assert (await h.ok(p.ProcGetpid(caller=1))).result == 1
        assert (await h.ok(p.ProcGetppid(caller=1))).result == 0
        assert (await h.ok(p.ProcGetsid(caller=1, pid=0))).result == 1
        assert await h.err(p.ProcGetpid(caller=77)) == errno.ESRCH


async def test_setsid_rules() -> None:
    async with running_pm() as h:
        a = await h.fork(p.INIT_PID)
        assert (await h.ok(p.ProcSetsid(caller=a))).result == a
        assert await h.getpgid(a) == a
        assert (await h.ok(p.ProcGetsid(caller=a, pid=0))).result == a
        assert (await h.ok(p.ProcGetpgrp(caller=a))).result == a
        # a group leader may not start a session
        assert await h.err(p.ProcSetsid(caller=a)) == errno.EPERM
        b = await h.fork(a)
        assert (await h.ok(p.ProcGetsid(caller=b, pid=b))).result == a
        assert (await h.ok(p.ProcSetsid(caller=b))).result == b
        assert (await h.ok(p.ProcGetsid(caller=a, pid=b))).result == b
        assert await h.err(p.ProcGetsid(caller=a, pid=999)) == errno.ESRCH


async def test_setsid_refused_while_a_group_has_the_callers_number() -> None:
    async with running_pm() as h:
        a = await h.fork(p.INIT_PID)
        b = await h.fork(a)
        await h.ok(p.ProcSetpgid(caller=a, pid=a, pgid=a))       # a leads group a ...
        await h.ok(p.ProcSetpgid(caller=a, pid=b, pgid=a))       # ... with b in it
        await h.ok(p.ProcSetpgid(caller=a, pid=a, pgid=1))       # a leaves; group a lives on
        assert await h.err(p.ProcSetsid(caller=a)) == errno.EPERM


async def test_setpgid_rules() -> None:
    async with running_pm() as h:
        shell = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSetsid(caller=shell))
        child = await h.fork(shell)
        stranger = await h.fork(p.INIT_PID)
        # a child into a new group of its own, then another child into that group
        await h.ok(p.ProcSetpgid(caller=shell, pid=child, pgid=0))
        assert await h.getpgid(child) == child
        child2 = await h.fork(shell)
        await h.ok(p.ProcSetpgid(caller=child2, pid=0, pgid=child))
        assert await h.getpgid(child2) == child
        # not the caller nor its child: ESRCH
        assert await h.err(p.ProcSetpgid(caller=shell, pid=stranger, pgid=0)) == errno.ESRCH
        # a negative group: EINVAL
        assert await h.err(p.ProcSetpgid(caller=shell, pid=child, pgid=-2)) == errno.EINVAL
        # a session leader cannot move
        assert await h.err(p.ProcSetpgid(caller=shell, pid=0, pgid=child)) == errno.EPERM
        # a group that does not exist (in this session): EPERM
        assert await h.err(p.ProcSetpgid(caller=shell, pid=child, pgid=4444)) == errno.EPERM
        assert await h.err(p.ProcSetpgid(caller=child2, pid=0, pgid=stranger)) == errno.EPERM
        # a child in another session: EPERM
        grand = await h.fork(child)
        await h.ok(p.ProcSetsid(caller=grand))
        assert await h.err(p.ProcSetpgid(caller=child, pid=grand, pgid=0)) == errno.EPERM
        # a child that exec'd: EACCES
        h.pcb(child2).did_exec = True
        assert await h.err(p.ProcSetpgid(caller=shell, pid=child2, pgid=0)) == errno.EACCES


async def test_setuid_family_rules() -> None:
    async with running_pm() as h:
        pid = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSetresgid(caller=pid, rgid=100, egid=100, sgid=100))
        await h.ok(p.ProcSetreuid(caller=pid, ruid=1000, euid=2000))
        r = await h.ok(p.ProcGetresuid(caller=pid))
        assert (r.real, r.effective, r.saved) == (1000, 2000, 2000)   # saved follows euid
        assert ("setids", pid, 1000, 2000, 100, 100) in h.servers.calls
        # unprivileged now: only ids it holds
        assert await h.err(p.ProcSetuid(caller=pid, uid=0)) == errno.EPERM
        await h.ok(p.ProcSetuid(caller=pid, uid=1000))
        r = await h.ok(p.ProcGetresuid(caller=pid))
        assert (r.real, r.effective, r.saved) == (1000, 1000, 2000)
        await h.ok(p.ProcSetresuid(caller=pid, ruid=-1, euid=2000, suid=-1))
        assert await h.err(p.ProcSetresuid(caller=pid, ruid=3000)) == errno.EPERM
        assert await h.err(p.ProcSetreuid(caller=pid, ruid=2000 + 1)) == errno.EPERM
        assert await h.err(p.ProcSetgid(caller=pid, gid=0)) == errno.EPERM
        assert await h.err(p.ProcSetresuid(caller=pid, ruid=-5)) == errno.EINVAL
        assert await h.err(p.ProcSetuid(caller=pid, uid=-1)) == errno.EINVAL
        g = await h.ok(p.ProcGetresgid(caller=pid))
        assert (g.real, g.effective, g.saved) == (100, 100, 100)
        # root sets all three with setuid
        root = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSetuid(caller=root, uid=33))
        r = await h.ok(p.ProcGetresuid(caller=root))
        assert (r.real, r.effective, r.saved) == (33, 33, 33)


async def test_groups() -> None:
    async with running_pm() as h:
        pid = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSetgroups(caller=pid, data=struct.pack("<3I", 4, 24, 27)))
        assert ("setgroups", pid, (4, 24, 27)) in h.servers.calls
        assert (await h.ok(p.ProcGetgroups(caller=pid, size=0))).result == 3
        r = await h.ok(p.ProcGetgroups(caller=pid, size=10))
        assert r.result == 3 and struct.unpack("<3I", r.data) == (4, 24, 27)
        assert await h.err(p.ProcGetgroups(caller=pid, size=2)) == errno.EINVAL
        assert await h.err(p.ProcSetgroups(caller=pid, data=b"\0\0\0")) == errno.EINVAL
        child = await h.fork(pid)
        assert (await h.ok(p.ProcGetgroups(caller=child, size=0))).result == 3
        await h.ok(p.ProcSetuid(caller=child, uid=1000))
        assert await h.err(p.ProcSetgroups(caller=child, data=b"")) == errno.EPERM


async def test_listing_for_xinim_ps() -> None:
    async with running_pm() as h:
        sh = await h.fork(p.INIT_PID, host=8000)
        h.pcb(sh).command = "sh"
        kid = await h.fork(sh, host=8001)
        await h.ok(p.ProcSetresuid(caller=kid, ruid=1000, euid=1000, suid=1000))
        await h.exit(kid)
        r = await h.ok(p.ProcList(caller=0))
        rows = {e.pid: e for e in p.decode_proc_list(r.data)}
        assert r.result == len(rows) == 6 and r.next == 0
        assert rows[1].command == "init" and rows[1].ppid == 0
        assert (rows[sh].ppid, rows[sh].state, rows[sh].command, rows[sh].host_pid) == \
            (1, "R", "sh", 8000)
        assert (rows[kid].state, rows[kid].uid, rows[kid].ppid) == ("Z", 1000, sh)
        # the host pid only for the kernel
        h.lattice.register(sh)
        h.lattice.connect_local(sh, p.PM_PID)
        r = await h.ok(p.ProcList(caller=sh), src=sh)
        assert all(e.host_pid == 0 for e in p.decode_proc_list(r.data))


async def test_listing_pages_through_many_processes() -> None:
    async with running_pm() as h:
        kids = [await h.fork(p.INIT_PID) for _ in range(150)]
        seen: list[int] = []
        start = 0
        while True:
            r = await h.ok(p.ProcList(caller=0, start=start))
            seen += [e.pid for e in p.decode_proc_list(r.data)]
            if not r.next:
                break
            start = r.next
        assert seen == [1, 2, 3, 4, *kids]


async def test_info_for_proc() -> None:
    async with running_pm() as h:
        pid = await h.fork(p.INIT_PID)
        h.pcb(pid).argv = (b"python3", b"-c", b"pass")
        h.pcb(pid).command = "python3"
        await h.fork(pid, flags=0x10000 | 0x800 | 0x100)
        await h.ok(p.ProcSigaction(caller=pid, sig=2, handler=0x4000))
        await h.ok(p.ProcSigaction(caller=pid, sig=13, handler=1))
        await h.ok(p.ProcSigprocmask(caller=pid, how=p.SIG_BLOCK, mask=1 << 9))
        r = await h.ok(p.ProcInfo(caller=pid, pid=0))
        assert (r.pid, r.ppid, r.threads, chr(r.state)) == (pid, 1, 2, "R")
        assert (r.caught, r.ignored, r.blocked) == (1 << 1, 1 << 12, 1 << 9)
        assert r.comm == b"python3" and r.data == b"python3\0-c\0pass\0"
        assert await h.err(p.ProcInfo(caller=pid, pid=999)) == errno.ESRCH
