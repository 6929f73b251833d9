"""PM's signal calls: kill/tkill/tgkill rules, dispositions, masks, sigsuspend."""
from __future__ import annotations

import errno

import pytest
import trio
from support.pm import (
    SIGCHLD,
    SIGCONT,
    SIGINT,
    SIGKILL,
    SIGSTOP,
    SIGTERM,
    SIGUSR1,
    running_pm,
)

from xinim_host.lib import protocol as p
from xinim_host.pm import signals
from xinim_host.pm.signals import DEFAULT_ACTIONS, Act


def bit(sig: int) -> int:
    return 1 << (sig - 1)


def test_default_actions_table() -> None:
    assert len(DEFAULT_ACTIONS) == 64
    assert DEFAULT_ACTIONS[SIGKILL] is Act.TERM and DEFAULT_ACTIONS[11] is Act.CORE
    assert DEFAULT_ACTIONS[SIGCHLD] is Act.IGN and DEFAULT_ACTIONS[28] is Act.IGN
    assert DEFAULT_ACTIONS[SIGCONT] is Act.CONT
    assert {s for s, a in DEFAULT_ACTIONS.items() if a is Act.STOP} == {19, 20, 21, 22}
    assert all(DEFAULT_ACTIONS[s] is Act.TERM for s in range(32, 65))


async def test_kill_missing_pid_is_esrch_and_servers_are_eperm() -> None:
    async with running_pm() as h:
        user = await h.fork(p.INIT_PID)
        assert (await h.kill(user, 4321, SIGTERM)).error == errno.ESRCH
        for server in (p.INIT_PID, p.VFS_PID, p.PM_PID, p.MM_PID):
            assert (await h.kill(user, server, SIGTERM)).error == errno.EPERM
            assert (await h.kill(user, server, 0)).error == errno.EPERM
        assert (await h.kill(user, user, 65)).error == errno.EINVAL
        assert (await h.kill(user, user, -1)).error == errno.EINVAL
        assert (await h.ask(p.ProcTkill(caller=user, tid=0, sig=1))).error == errno.EINVAL


async def test_kill_delivers_through_the_host() -> None:
    async with running_pm() as h:
        a = await h.fork(p.INIT_PID, host=1001)
        b = await h.fork(p.INIT_PID, host=1002)
        assert (await h.kill(a, b, 0)).error == 0            # existence check only
        assert h.host.sent == []
        assert (await h.kill(a, b, SIGUSR1)).error == 0
        assert h.host.sent == [(1002, SIGUSR1)]
        # a zombie can still be "signalled" (nothing happens)
        await h.exit(b)
        assert (await h.kill(a, b, SIGUSR1)).error == 0
        assert h.host.sent == [(1002, SIGUSR1)]
        # ignored signals are discarded, the host is not bothered
        assert (await h.kill(a, a, SIGCHLD)).error == 0
        assert h.host.sent == [(1002, SIGUSR1)]


async def test_uid_rules() -> None:
    async with running_pm() as h:
        alice = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSetresuid(caller=alice, ruid=1000, euid=1000, suid=1000))
        bob = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSetresuid(caller=bob, ruid=1001, euid=1001, suid=1001))
        alice2 = await h.fork(alice)
        root = await h.fork(p.INIT_PID)
        assert (await h.kill(alice, bob, SIGTERM)).error == errno.EPERM
        assert (await h.kill(alice, bob, 0)).error == errno.EPERM
        assert (await h.kill(alice, alice2, SIGTERM)).error == 0
        assert (await h.kill(root, bob, SIGTERM)).error == 0
        assert (await h.kill(0, bob, SIGTERM)).error == 0        # the kernel may
        # SIGCONT is allowed within a session whatever the uids
        assert (await h.kill(alice, bob, SIGCONT)).error == 0


async def test_kill_zero_and_negative_signal_a_group() -> None:
    async with running_pm() as h:
        shell = await h.fork(p.INIT_PID, host=2000)
        await h.ok(p.ProcSetsid(caller=shell))
        job = await h.fork(shell, host=2001)
        await h.ok(p.ProcSetpgid(caller=shell, pid=job, pgid=job))
        await h.fork(job, host=2002)                         # inherits group job
        outsider = await h.fork(shell, host=2003)            # in the shell's group
        h.host.sent.clear()
        assert (await h.kill(job, 0, SIGINT)).error == 0     # job's own group
        assert sorted(h.host.sent) == [(2001, SIGINT), (2002, SIGINT)]
        h.host.sent.clear()
        assert (await h.kill(shell, -job, SIGTERM)).error == 0
        assert sorted(h.host.sent) == [(2001, SIGTERM), (2002, SIGTERM)]
        h.host.sent.clear()
        assert (await h.kill(shell, 0, SIGUSR1)).error == 0  # shell's group: shell + outsider
        assert sorted(h.host.sent) == [(2000, SIGUSR1), (2003, SIGUSR1)]
        assert (await h.kill(shell, -9999, SIGTERM)).error == errno.ESRCH
        # a group whose every member refuses: EPERM
        await h.ok(p.ProcSetresuid(caller=outsider, ruid=5, euid=5, suid=5))
        assert (await h.kill(outsider, -job, SIGTERM)).error == errno.EPERM
        # the kernel signals a console's foreground group (Ctrl-C)
        h.host.sent.clear()
        assert (await h.kill(0, -job, SIGINT)).error == 0
        assert sorted(h.host.sent) == [(2001, SIGINT), (2002, SIGINT)]


async def test_kill_minus_one_spares_init_servers_and_caller() -> None:
    async with running_pm() as h:
        a = await h.fork(p.INIT_PID, host=3001)
        b = await h.fork(p.INIT_PID, host=3002)
        c = await h.fork(b, host=3003)
        assert (await h.kill(a, -1, SIGTERM)).error == 0
        assert sorted(h.host.sent) == [(3002, SIGTERM), (3003, SIGTERM)]
        # only others it may not signal: EPERM is not an error, nobody at all is ESRCH
        await h.ok(p.ProcSetresuid(caller=c, ruid=7, euid=7, suid=7))
        await h.ok(p.ProcSetresuid(caller=a, ruid=8, euid=8, suid=8))
        h.host.sent.clear()
        assert (await h.kill(c, -1, SIGTERM)).error == 0
        assert h.host.sent == []
        only = await h.fork(p.INIT_PID)
        for pid in (a, b, c):
            await h.exit(pid)
            await h.wait4(p.INIT_PID, pid=pid)
        assert (await h.kill(only, -1, SIGTERM)).error == errno.ESRCH


async def test_tkill_and_tgkill_target_one_thread() -> None:
    async with running_pm() as h:
        sent3: list[tuple[int, int, int]] = []
        h.pm.signal_host_thread = lambda tgid, tid, sig: sent3.append((tgid, tid, sig))
        proc = await h.fork(p.INIT_PID, host=4000)
        tid = await h.fork(proc, flags=0x10000 | 0x800 | 0x100, host=4001)
        assert (await h.ask(p.ProcTkill(caller=proc, tid=tid, sig=SIGUSR1))).error == 0
        assert (await h.ask(p.ProcTgkill(caller=proc, tgid=proc, tid=tid, sig=SIGUSR1))).error == 0
        assert sent3 == [(4000, 4001, SIGUSR1)] * 2
        assert (await h.ask(p.ProcTgkill(caller=proc, tgid=proc + 50, tid=tid,
                                         sig=SIGUSR1))).error == errno.ESRCH
        assert (await h.ask(p.ProcTgkill(caller=proc, tgid=0, tid=tid,
                                         sig=SIGUSR1))).error == errno.EINVAL
        assert (await h.ask(p.ProcTkill(caller=proc, tid=p.VFS_PID, sig=1))).error == errno.EPERM
        # a thread-directed signal it blocks stays pending on that thread only
        await h.ok(p.ProcSigprocmask(caller=tid, how=p.SIG_BLOCK, mask=bit(SIGUSR1)))
        await h.ok(p.ProcTkill(caller=proc, tid=tid, sig=SIGUSR1))
        assert (await h.ok(p.ProcSigpending(caller=tid))).mask == bit(SIGUSR1)
        assert (await h.ok(p.ProcSigpending(caller=proc))).mask == 0


async def test_sigaction_round_trip_and_sigkill_einval() -> None:
    async with running_pm() as h:
        pid = await h.fork(p.INIT_PID)
        r = await h.ok(p.ProcSigaction(caller=pid, sig=SIGUSR1, handler=0x401000,
                                       flags=signals.SA_RESTART | 0x04000000,
                                       restorer=0x402000, mask=bit(SIGINT) | bit(SIGKILL)))
        assert (r.handler, r.flags, r.restorer, r.mask) == (0, 0, 0, 0)
        r = await h.ok(p.ProcSigaction(caller=pid, sig=SIGUSR1, set=0))
        assert (r.handler, r.flags, r.restorer, r.mask) == \
            (0x401000, signals.SA_RESTART | 0x04000000, 0x402000, bit(SIGINT))
        r = await h.ok(p.ProcSigaction(caller=pid, sig=SIGUSR1, handler=1))
        assert r.handler == 0x401000
        for sig in (SIGKILL, SIGSTOP):
            assert await h.err(p.ProcSigaction(caller=pid, sig=sig, handler=1)) == errno.EINVAL
            assert (await h.ok(p.ProcSigaction(caller=pid, sig=sig, set=0))).handler == 0
        for sig in (0, 65, -3):
            assert await h.err(p.ProcSigaction(caller=pid, sig=sig, set=0)) == errno.EINVAL
        # signal(2) answers the old handler
        r = await h.ok(p.ProcSignal(caller=pid, sig=SIGINT, handler=0x5000))
        assert r.handler == 0
        assert (await h.ok(p.ProcSignal(caller=pid, sig=SIGINT, handler=0))).handler == 0x5000
        assert await h.err(p.ProcSignal(caller=pid, sig=SIGKILL, handler=1)) == errno.EINVAL


async def test_sigprocmask_and_sigpending() -> None:
    async with running_pm() as h:
        pid = await h.fork(p.INIT_PID, host=5000)
        r = await h.ok(p.ProcSigprocmask(caller=pid, how=p.SIG_BLOCK,
                                         mask=bit(SIGUSR1) | bit(SIGKILL) | bit(SIGSTOP)))
        assert r.mask == 0
        assert (await h.ok(p.ProcSigprocmask(caller=pid, how=0, set=0))).mask == bit(SIGUSR1)
        assert await h.err(p.ProcSigprocmask(caller=pid, how=7, mask=0)) == errno.EINVAL
        await h.ok(p.ProcKill(caller=pid, pid=pid, sig=SIGUSR1))
        assert h.host.sent == [(5000, SIGUSR1)]          # the host holds it pending too
        assert (await h.ok(p.ProcSigpending(caller=pid))).mask == bit(SIGUSR1)
        # ignoring a pending signal discards it
        await h.ok(p.ProcSigaction(caller=pid, sig=SIGUSR1, handler=1))
        assert (await h.ok(p.ProcSigpending(caller=pid))).mask == 0
        await h.ok(p.ProcSigaction(caller=pid, sig=SIGUSR1, handler=0))
        await h.ok(p.ProcKill(caller=pid, pid=pid, sig=SIGUSR1))
        r = await h.ok(p.ProcSigprocmask(caller=pid, how=p.SIG_UNBLOCK, mask=bit(SIGUSR1)))
        assert r.mask == bit(SIGUSR1)
        assert (await h.ok(p.ProcSigpending(caller=pid))).mask == 0   # delivered by the host
        # SIGCONT discards a pending stop signal
        await h.ok(p.ProcSigprocmask(caller=pid, how=p.SIG_SETMASK, mask=bit(20) | bit(SIGCONT)))
        await h.ok(p.ProcKill(caller=pid, pid=pid, sig=20))
        await h.ok(p.ProcKill(caller=pid, pid=pid, sig=SIGCONT))
        assert (await h.ok(p.ProcSigpending(caller=pid))).mask == bit(SIGCONT)


async def test_sigsuspend_parks_until_a_signal_arrives() -> None:
    async with running_pm() as h:
        pid = await h.fork(p.INIT_PID)
        other = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSigaction(caller=pid, sig=SIGUSR1, handler=0x4000))
        await h.ok(p.ProcSigprocmask(caller=pid, how=p.SIG_BLOCK, mask=bit(SIGUSR1)))
        got: list = []

        async def suspender() -> None:
            got.append(await h.ask(p.ProcSigsuspend(caller=pid, mask=bit(SIGINT))))

        async with trio.open_nursery() as n:
            n.start_soon(suspender)
            await trio.testing.wait_all_tasks_blocked()
            assert not got and h.pcb(pid).state.value == "S"
            # during sigsuspend the mask is the temporary one
            assert (await h.ok(p.ProcSigprocmask(caller=pid, how=0, set=0))).mask == bit(SIGINT)
            await h.ok(p.ProcKill(caller=other, pid=pid, sig=SIGINT))      # blocked now
            await h.ok(p.ProcKill(caller=other, pid=pid, sig=SIGCHLD))     # ignored
            await trio.testing.wait_all_tasks_blocked()
            assert not got
            await h.ok(p.ProcKill(caller=other, pid=pid, sig=SIGUSR1))
        assert got[0].error == errno.EINTR
        assert (await h.ok(p.ProcSigprocmask(caller=pid, how=0, set=0))).mask == bit(SIGUSR1)
        # a signal already pending and unblocked by the new mask: EINTR at once
        await h.ok(p.ProcKill(caller=other, pid=pid, sig=SIGUSR1))
        assert await h.err(p.ProcSigsuspend(caller=pid, mask=0)) == errno.EINTR
        assert (await h.ok(p.ProcSigpending(caller=pid))).mask == 0


async def test_exit_while_suspended_answers_the_parked_call() -> None:
    async with running_pm() as h:
        pid = await h.fork(p.INIT_PID)
        tid = await h.fork(pid, flags=0x10000 | 0x800 | 0x100)
        got: list = []

        async def suspender() -> None:
            got.append(await h.ask(p.ProcSigsuspend(caller=tid, mask=0)))

        async with trio.open_nursery() as n:
            n.start_soon(suspender)
            await trio.testing.wait_all_tasks_blocked()
            await h.exit(pid, 0)
        assert got[0].error == errno.EINTR


@pytest.mark.parametrize("sig", [SIGKILL, SIGTERM])
async def test_fatal_signal_wakes_every_parked_thread(sig: int) -> None:
    async with running_pm() as h:
        pid = await h.fork(p.INIT_PID)
        await h.fork(pid)
        tid = await h.fork(pid, flags=0x10000 | 0x800 | 0x100)
        got: list = []

        async def ask(body: p.Payload) -> None:
            got.append(await h.ask(body))

        async with trio.open_nursery() as n:
            n.start_soon(ask, p.ProcSigsuspend(caller=tid, mask=0))
            n.start_soon(ask, p.ProcWait4(caller=pid, pid=-1, options=0))
            await trio.testing.wait_all_tasks_blocked()
            await h.ok(p.ProcKill(caller=0, pid=pid, sig=sig))
        assert [r.error for r in got] == [errno.EINTR, errno.EINTR]
        assert ("interrupt", pid, errno.EINTR) in h.servers.calls   # VFS lets go too


async def test_signals_to_init_are_bookkeeping_only() -> None:
    async with running_pm() as h:
        got: list = []

        async def init_wait() -> None:
            got.append(await h.wait4(p.INIT_PID))

        async with trio.open_nursery() as n:
            n.start_soon(init_wait)
            await trio.testing.wait_all_tasks_blocked()
            assert (await h.kill(0, p.INIT_PID, SIGTERM)).error == 0    # the kernel may ask
            await trio.testing.wait_all_tasks_blocked()
            assert not got                                              # init is unkillable
            child = await h.fork(p.INIT_PID)
            await h.exit(child)
        assert got[0].result == child and h.host.sent == []


async def test_an_orphaned_group_with_a_stopped_job_gets_sighup_and_sigcont() -> None:
    async with running_pm() as h:
        shell = await h.fork(p.INIT_PID, host=7000)
        await h.ok(p.ProcSetsid(caller=shell))
        job = await h.fork(shell, host=7001)
        await h.ok(p.ProcSetpgid(caller=shell, pid=job, pgid=job))
        running = await h.fork(shell, host=7002)
        await h.ok(p.ProcSetpgid(caller=shell, pid=running, pgid=running))
        await h.ok(p.ProcTaskStopped(host_tid=7001, sig=20))
        h.host.sent.clear()
        await h.exit(shell)
        assert h.host.sent == [(7001, 1), (7001, SIGCONT)]   # not the group with none stopped


async def test_stop_signals_to_an_orphaned_group_are_discarded() -> None:
    """SIGTSTP/SIGTTIN/SIGTTOU with the default action do nothing to a member of an
    orphaned process group (Linux); SIGSTOP still stops, and reaches the host as
    itself; a stop by SIGTSTP reaches the host as SIGSTOP (the host's orphaned-group
    rule is for its own groups) and is reported to the parent as SIGTSTP."""
    async with running_pm() as h:
        orphan = await h.fork(p.INIT_PID, host=7100)       # init's group, parent init
        h.host.sent.clear()
        await h.ok(p.ProcKill(caller=0, pid=orphan, sig=20))
        assert h.host.sent == []
        await h.ok(p.ProcKill(caller=0, pid=orphan, sig=19))
        assert h.host.sent == [(7100, 19)]
        shell = await h.fork(p.INIT_PID, host=7101)
        await h.ok(p.ProcSetsid(caller=shell))
        job = await h.fork(shell, host=7102)
        await h.ok(p.ProcSetpgid(caller=shell, pid=job, pgid=job))
        h.host.sent.clear()
        await h.ok(p.ProcKill(caller=0, pid=-job, sig=20))
        assert h.host.sent == [(7102, 19)]
        await h.ok(p.ProcTaskStopped(host_tid=7102, sig=19))
        got = await h.wait4(shell, -1, p.WUNTRACED)
        assert (got.result, got.status) == (job, (20 << 8) | 0x7F)


async def test_restartable_interruptions_when_the_kernel_restarts_calls() -> None:
    async with running_pm() as h:
        h.pm.restart_errno = p.ERESTARTSYS
        shell = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSetsid(caller=shell))
        pid = await h.fork(shell)       # a job of its own: SIGTSTP is not for orphans
        await h.ok(p.ProcSetpgid(caller=shell, pid=pid, pgid=pid))
        await h.fork(pid)
        await h.ok(p.ProcSigaction(caller=pid, sig=SIGUSR1, handler=0x4000,
                                   flags=signals.SA_RESTART))
        await h.ok(p.ProcSigaction(caller=pid, sig=12, handler=0x4000))      # no SA_RESTART
        got: list = []

        async def waiter() -> None:
            got.append((await h.wait4(pid)).error)

        for sig in (SIGUSR1, 12, 20):         # SIGTSTP: must stop, then restart the call
            async with trio.open_nursery() as n:
                n.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                await h.ok(p.ProcKill(caller=0, pid=pid, sig=sig))
        assert got == [p.ERESTARTSYS, errno.EINTR, p.ERESTARTSYS]
