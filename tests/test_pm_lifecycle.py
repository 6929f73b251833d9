"""PM through its messages: fork, exit, wait4/waitid, orphans, pid reuse, threads,
and the kernel's host-task reports."""
from __future__ import annotations

import errno

import pytest
import trio
from support.pm import SIGCHLD, SIGCONT, SIGKILL, SIGTERM, running_pm

from xinim_host.lib import protocol as p
from xinim_host.pm.proctable import State

CLONE_THREAD_FLAGS = 0x10000 | 0x800 | 0x100 | 0x400   # THREAD|SIGHAND|VM|FILES


async def test_fork_makes_child_of_caller() -> None:
    async with running_pm() as h:
        child = await h.fork(p.INIT_PID, host=4242)
        assert child >= p.FIRST_USER_PID
        assert (await h.ok(p.ProcGetpid(caller=child))).result == child
        assert (await h.ok(p.ProcGetppid(caller=child))).result == p.INIT_PID
        grandchild = await h.fork(child)
        assert grandchild > child
        assert (await h.ok(p.ProcGetppid(caller=grandchild))).result == child
        assert h.pm.pid_of_host(4242) == child
        assert ("fork", p.INIT_PID, child) in h.servers.calls
        assert ("fork", child, grandchild) in h.servers.calls
        pcb = h.pcb(grandchild)
        assert pcb.state is State.RUNNING and pcb.pgid == h.pcb(child).pgid


async def test_fork_copies_ids_dispositions_and_mask_but_not_pending() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSigaction(caller=parent, sig=SIGTERM, handler=0x1234, flags=4))
        await h.ok(p.ProcSigprocmask(caller=parent, how=p.SIG_BLOCK, mask=1 << (SIGTERM - 1)))
        await h.ok(p.ProcKill(caller=parent, pid=parent, sig=SIGTERM))   # stays pending
        assert (await h.ok(p.ProcSigpending(caller=parent))).mask == 1 << (SIGTERM - 1)
        await h.ok(p.ProcSetresuid(caller=parent, ruid=1000, euid=1000, suid=1000))
        child = await h.fork(parent)
        assert (await h.ok(p.ProcSigaction(caller=child, sig=SIGTERM, set=0))).handler == 0x1234
        assert (await h.ok(p.ProcSigprocmask(caller=child, how=0, set=0))).mask == \
            1 << (SIGTERM - 1)
        assert (await h.ok(p.ProcSigpending(caller=child))).mask == 0
        assert (await h.ok(p.ProcGetresuid(caller=child))).real == 1000


async def test_fork_only_from_the_kernel() -> None:
    async with running_pm() as h:
        h.lattice.register(7)
        h.lattice.connect_local(7, p.PM_PID)
        assert await h.err(p.ProcFork(parent_pid=1), src=7) == errno.EPERM
        assert await h.err(p.ProcFork(parent_pid=999)) == errno.ESRCH


async def test_fork_error_from_vfs_leaves_no_child() -> None:
    async with running_pm() as h:
        h.servers.fork_error = errno.ENOMEM
        before = set(h.pm.table.procs)
        assert await h.err(p.ProcFork(parent_pid=1, child_host_pid=55)) == errno.ENOMEM
        assert set(h.pm.table.procs) == before and h.pm.pid_of_host(55) is None


async def test_fork_waits_for_vfs_without_blocking_pm() -> None:
    async with running_pm() as h:
        h.servers.gate = trio.Event()
        box: list[int] = []

        async def forker() -> None:
            box.append(await h.fork(p.INIT_PID))

        async with trio.open_nursery() as n:
            n.start_soon(forker)
            await trio.testing.wait_all_tasks_blocked()
            assert not box
            assert (await h.ok(p.ProcGetpid(caller=1))).result == 1   # PM still serves
            h.servers.gate.set()
        assert box and box[0] >= p.FIRST_USER_PID


async def test_exit_makes_zombie_and_wait4_reaps_it() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID)
        child = await h.fork(parent)
        await h.exit(child, 3)
        assert h.pcb(child).state is State.ZOMBIE
        assert ("exit", child) in h.servers.calls
        assert await h.err(p.ProcGetpid(caller=child)) == errno.ESRCH
        reply = await h.wait4(parent)
        assert (reply.error, reply.result, reply.status) == (0, child, 3 << 8)
        assert reply.host_pid != 0          # the kernel asked: it gets the host pid to reap
        assert h.pcb(child) is None and child not in h.pcb(parent).children


async def test_wnohang_and_echild() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID)
        assert (await h.wait4(parent)).error == errno.ECHILD
        assert (await h.wait4(parent, options=p.WNOHANG)).error == errno.ECHILD
        child = await h.fork(parent)
        reply = await h.wait4(parent, options=p.WNOHANG)
        assert (reply.error, reply.result) == (0, 0)
        assert (await h.wait4(parent, pid=child + 100)).error == errno.ECHILD
        assert (await h.wait4(parent, options=0x4)).error == errno.EINVAL   # WEXITED: waitid's


async def test_blocking_wait4_is_answered_later_while_pm_serves_others() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID)
        child = await h.fork(parent)
        other = await h.fork(p.INIT_PID)
        got: list = []

        async def waiter() -> None:
            got.append(await h.wait4(parent))

        async with trio.open_nursery() as n:
            n.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert not got
            assert h.pcb(parent).state is State.SLEEPING
            # PM keeps serving everyone meanwhile
            assert (await h.ok(p.ProcGetppid(caller=other))).result == 1
            grandchild = await h.fork(other)
            await h.exit(grandchild)
            assert (await h.wait4(other)).result == grandchild
            assert not got
            await h.exit(child, 7)
        assert (got[0].error, got[0].result, got[0].status) == (0, child, 7 << 8)
        assert h.pcb(parent).state is State.RUNNING


async def test_wait_selects_by_pid_and_group() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSetpgid(caller=parent, pid=0, pgid=0))     # parent leads its group
        a = await h.fork(parent)
        b = await h.fork(parent)
        c = await h.fork(parent)
        await h.ok(p.ProcSetpgid(caller=parent, pid=c, pgid=c))      # c in a group of its own
        for kid in (a, b, c):
            await h.exit(kid, kid)
        # pid > 0: exactly that child
        assert (await h.wait4(parent, pid=b)).result == b
        # pid < -1: the group -pid
        assert (await h.wait4(parent, pid=-c)).result == c
        assert (await h.wait4(parent, pid=-c)).error == errno.ECHILD
        # pid 0: the caller's group -- a is in it
        assert (await h.wait4(parent, pid=0)).result == a
        d = await h.fork(parent)
        await h.exit(d)
        assert (await h.wait4(parent, pid=-1)).result == d
        assert (await h.wait4(parent)).error == errno.ECHILD


async def test_wait_for_group_parks_until_a_member_changes() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID)
        a = await h.fork(parent)
        b = await h.fork(parent)
        await h.ok(p.ProcSetpgid(caller=parent, pid=b, pgid=b))
        got: list = []

        async def waiter() -> None:
            got.append(await h.wait4(parent, pid=-b))

        async with trio.open_nursery() as n:
            n.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await h.exit(a)                      # not in group b: the waiter sleeps on
            await trio.testing.wait_all_tasks_blocked()
            assert not got
            await h.exit(b, 1)
        assert got[0].result == b and got[0].status == 1 << 8


async def test_orphans_go_to_init_which_reaps_them() -> None:
    async with running_pm() as h:
        reaped: list[int] = []

        async def init_loop() -> None:
            # init's wait loop: it parks even with no children at all
            while True:
                reply = await h.wait4(p.INIT_PID)
                assert reply.error == 0, reply
                reaped.append(reply.result)

        async with trio.open_nursery() as n:
            n.start_soon(init_loop)
            await trio.testing.wait_all_tasks_blocked()
            assert h.pcb(p.INIT_PID).state is State.SLEEPING
            parent = await h.fork(p.INIT_PID)
            kids = [await h.fork(parent) for _ in range(3)]
            await h.exit(kids[0], 1)             # a zombie not yet reaped by parent
            await h.exit(parent)                 # init gets parent, and the orphans
            await trio.testing.wait_all_tasks_blocked()
            assert {parent, kids[0]} <= set(reaped)
            for kid in kids[1:]:
                assert h.pcb(kid).ppid == p.INIT_PID
                assert (await h.ok(p.ProcGetppid(caller=kid))).result == p.INIT_PID
                await h.exit(kid)
            await trio.testing.wait_all_tasks_blocked()
            assert set(reaped) == {parent, *kids}
            n.cancel_scope.cancel()
        assert set(h.pm.table.procs) == {1, 2, 3, 4}


async def test_init_without_children_gets_echild_only_with_wnohang() -> None:
    async with running_pm() as h:
        assert (await h.wait4(p.INIT_PID, options=p.WNOHANG)).error == errno.ECHILD


async def test_200_forks_exits_and_reaps_leave_no_pcb() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID)
        kids = [await h.fork(parent) for _ in range(200)]
        assert len(set(kids)) == 200
        for i, kid in enumerate(kids):
            await h.exit(kid, i)
        statuses = {}
        for _ in kids:
            reply = await h.wait4(parent)
            statuses[reply.result] = reply.status >> 8
        assert statuses == {kid: i & 0xFF for i, kid in enumerate(kids)}
        assert set(h.pm.table.procs) == {1, 2, 3, 4, parent}
        assert set(h.pm.table.tasks) == {1, 2, 3, 4, parent}
        assert len(h.pm.table.by_host) == 1      # only the parent's host task is known
        assert h.pcb(parent).children == {}


async def test_pid_reuse_only_after_reaping_and_not_while_a_group_uses_it() -> None:
    async with running_pm(pid_max=12) as h:     # pids 5..11
        parent = await h.fork(p.INIT_PID)       # 5
        assert parent == 5
        leader = await h.fork(parent)           # 6
        await h.ok(p.ProcSetpgid(caller=parent, pid=leader, pgid=leader))
        member = await h.fork(leader)           # 7, in group 6
        assert await h.getpgid(member) == leader
        await h.exit(leader)
        assert (await h.wait4(parent)).result == leader   # 6 reaped, but group 6 lives on
        others = [await h.fork(parent) for _ in range(4)]  # 8, 9, 10, 11
        assert others == [8, 9, 10, 11]
        # the table wraps: 5 and 7 are alive, 6 names a live group: nothing is free
        assert await h.err(p.ProcFork(parent_pid=parent)) == errno.EAGAIN
        await h.exit(others[0])
        assert await h.err(p.ProcFork(parent_pid=parent)) == errno.EAGAIN  # zombie 8 holds
        await h.wait4(parent, pid=others[0])
        assert await h.fork(parent) == 8
        # once the group's last member is gone, 6 is free again
        await h.exit(member)
        await h.wait4(p.INIT_PID, options=p.WNOHANG)     # init reaps the orphan 7
        assert h.pcb(member) is None
        assert await h.fork(parent) == 6
        assert await h.fork(parent) == 7


async def test_threads_share_the_pid_and_have_their_own_tid() -> None:
    async with running_pm() as h:
        proc = await h.fork(p.INIT_PID, host=500)
        tid = await h.fork(proc, flags=CLONE_THREAD_FLAGS, host=501)
        assert tid != proc and tid >= p.FIRST_USER_PID
        assert (await h.ok(p.ProcGetpid(caller=tid))).result == proc
        assert (await h.ok(p.ProcGettid(caller=tid))).result == tid
        assert (await h.ok(p.ProcGettid(caller=proc))).result == proc
        assert (await h.ok(p.ProcGetppid(caller=tid))).result == p.INIT_PID
        assert h.pm.pid_of_host(501) == proc and h.pm.tid_of_host(501) == tid
        ids = await h.ok(p.ProcHostToXinim(host_tid=501))
        assert (ids.result, ids.pid) == (tid, proc)
        assert not any(c[0] == "fork" and c[2] == tid for c in h.servers.calls)
        # a thread forks: the child is the process's child
        child = await h.fork(tid)
        assert h.pcb(child).ppid == proc
        # the thread ends: its tid is free, the process lives on
        await h.ok(p.ProcExit(caller=tid, status=0))
        assert h.pm.table.tasks.get(tid) is None and h.pcb(proc).state is not State.ZOMBIE
        assert await h.err(p.ProcGettid(caller=tid)) == errno.ESRCH
        await h.ok(p.ProcExit(caller=proc, status=5 << 8))       # the last thread
        assert h.pcb(proc).state is State.ZOMBIE
        assert (await h.wait4(p.INIT_PID, pid=proc)).status == 5 << 8


async def test_exit_group_ends_every_thread() -> None:
    async with running_pm() as h:
        proc = await h.fork(p.INIT_PID)
        tids = [await h.fork(proc, flags=CLONE_THREAD_FLAGS) for _ in range(3)]
        await h.ok(p.ProcExitGroup(caller=tids[1], status=2 << 8))
        assert h.pcb(proc).state is State.ZOMBIE
        assert all(h.pm.table.tasks.get(t) is None for t in tids)
        assert (await h.wait4(p.INIT_PID)).status == 2 << 8
        assert set(h.pm.table.tasks) == {1, 2, 3, 4}


async def test_task_killed_by_signal_becomes_zombie_with_linux_status() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID)
        child = await h.fork(parent, host=777)
        await h.ok(p.ProcTaskExited(host_tid=777, status=SIGKILL))
        reply = await h.wait4(parent)
        assert (reply.result, reply.status, reply.host_pid) == (child, SIGKILL, 777)
        # a later report of a task PM no longer knows is harmless
        assert await h.err(p.ProcTaskExited(host_tid=777, status=0)) == errno.ESRCH
        # exit first, then the host report: the exit's status stands
        child = await h.fork(parent, host=778)
        await h.exit(child, 4)
        await h.ok(p.ProcTaskExited(host_tid=778, status=4 << 8))
        assert (await h.wait4(parent)).status == 4 << 8
        # core dumps keep the core bit
        child = await h.fork(parent, host=779)
        await h.ok(p.ProcTaskExited(host_tid=779, status=11 | 0x80))
        assert (await h.wait4(parent)).status == 11 | 0x80


async def test_host_reports_are_kernel_only() -> None:
    async with running_pm() as h:
        child = await h.fork(p.INIT_PID, host=900)
        h.lattice.register(child)
        h.lattice.connect_local(child, p.PM_PID)
        for body in (p.ProcTaskExited(host_tid=900, status=0), p.ProcHostToXinim(host_tid=900),
                     p.ProcXinimToHost(caller=child, pid=child),
                     p.ProcTaskStopped(host_tid=900, sig=19)):
            assert await h.err(body, src=child) == errno.EPERM
        assert (await h.ok(p.ProcXinimToHost(caller=0, pid=child))).result == 900
        # a user process's wait never carries host pids
        grandchild = await h.fork(child)
        await h.exit(grandchild)
        reply = (await h.lattice.sendrec(child, p.PM_PID,
                                         p.ProcWait4(caller=child, pid=-1, options=0))).body
        assert reply.result == grandchild and reply.host_pid == 0


async def test_stopped_and_continued_children() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID, host=100)
        child = await h.fork(parent, host=101)
        got: list = []

        async def waiter() -> None:
            got.append(await h.wait4(parent, options=p.WUNTRACED | p.WCONTINUED))

        async with trio.open_nursery() as n:
            n.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await h.ok(p.ProcTaskStopped(host_tid=101, sig=19))
        assert (got[0].result, got[0].status) == (child, (19 << 8) | 0x7F)
        assert h.pcb(child).state is State.STOPPED
        # reported once; without WUNTRACED a stop is not a state change
        assert (await h.wait4(parent, options=p.WNOHANG | p.WUNTRACED)).result == 0
        await h.ok(p.ProcTaskContinued(host_tid=101))
        assert h.pcb(child).state is State.RUNNING
        reply = await h.wait4(parent, options=p.WNOHANG | p.WCONTINUED)
        assert (reply.result, reply.status) == (child, 0xFFFF)
        assert (await h.wait4(parent, options=p.WNOHANG | p.WCONTINUED)).result == 0
        # the parent's SIGCHLD is default-ignored: nothing reaches the host
        assert (100, SIGCHLD) not in h.host.sent


async def test_waitid_siginfo_and_wnowait() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID)
        child = await h.fork(parent)
        await h.ok(p.ProcSetresuid(caller=child, ruid=1000, euid=1000, suid=1000))
        r = await h.ok(p.ProcWaitid(caller=parent, idtype=p.P_ALL, id=0,
                                    options=p.WEXITED | p.WNOHANG))
        assert (r.result, r.pid) == (0, 0)
        await h.ok(p.ProcTaskExited(host_tid=h.pm.host_of(child), status=SIGTERM))
        r = await h.ok(p.ProcWaitid(caller=parent, idtype=p.P_PID, id=child,
                                    options=p.WEXITED | p.WNOWAIT))
        assert (r.pid, r.uid, r.signo, r.code, r.status) == \
            (child, 1000, SIGCHLD, p.CLD_KILLED, SIGTERM)
        assert h.pcb(child) is not None                 # WNOWAIT leaves the zombie
        other = await h.fork(parent)
        await h.exit(other, 9)
        r = await h.ok(p.ProcWaitid(caller=parent, idtype=p.P_PID, id=other,
                                    options=p.WEXITED))
        assert (r.code, r.status) == (p.CLD_EXITED, 9)
        assert await h.err(p.ProcWaitid(caller=parent, idtype=p.P_ALL, id=0,
                                        options=p.WNOHANG)) == errno.EINVAL
        assert await h.err(p.ProcWaitid(caller=parent, idtype=p.P_PID, id=0,
                                        options=p.WEXITED)) == errno.EINVAL


async def test_sigchld_ignored_means_no_zombies() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSigaction(caller=parent, sig=SIGCHLD, handler=1))   # SIG_IGN
        child = await h.fork(parent)
        got: list = []

        async def waiter() -> None:
            got.append(await h.wait4(parent))

        async with trio.open_nursery() as n:
            n.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await h.exit(child)
        assert h.pcb(child) is None
        assert got[0].error == errno.ECHILD     # Linux: the wait ends with ECHILD


async def test_sigchld_reaches_a_parent_that_catches_it() -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID, host=300)
        await h.ok(p.ProcSigaction(caller=parent, sig=SIGCHLD, handler=0x4000))
        child = await h.fork(parent, host=301)
        await h.exit(child)
        assert (300, SIGCHLD) in h.host.sent
        # init and the servers have no host process: bookkeeping only
        await h.exit(parent)
        assert all(pid != 0 for pid, _ in h.host.sent)


@pytest.mark.parametrize("caught", [True, False])
async def test_a_signal_interrupts_a_parked_wait(caught: bool) -> None:
    async with running_pm() as h:
        parent = await h.fork(p.INIT_PID)
        await h.fork(parent)
        if caught:
            await h.ok(p.ProcSigaction(caller=parent, sig=SIGTERM, handler=0x4000))
        got: list = []

        async def waiter() -> None:
            got.append(await h.wait4(parent))

        async with trio.open_nursery() as n:
            n.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await h.ok(p.ProcKill(caller=0, pid=parent, sig=SIGCONT))   # does not interrupt
            await trio.testing.wait_all_tasks_blocked()
            assert not got
            await h.ok(p.ProcKill(caller=0, pid=parent, sig=SIGTERM))
        assert got[0].error == errno.EINTR      # caught: the handler runs; else it dies
