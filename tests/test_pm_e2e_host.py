"""PM with a host half attached (what ``xinim-run``'s router does), in isolation:
signals go through the host half, kernel waits are interrupted through it, and a
zombie becomes waitable only once its host task has died."""
from __future__ import annotations

import errno
import signal

import trio
import trio.testing
from support.pm import running_pm

from xinim_host.lib import protocol as p


class FakeHost:
    """The router's side of ``PmServer.attach_host``."""

    def __init__(self, own: set[int]) -> None:
        self.own = own
        self.signals: list[tuple[int, int, int]] = []
        self.interrupts: list[tuple[int, int]] = []

    def signal_task(self, host_tgid: int, host_tid: int, sig: int) -> bool:
        if (host_tid or host_tgid) not in self.own:
            return False
        self.signals.append((host_tgid, host_tid, sig))
        return True

    def interrupt(self, pid: int, err: int) -> None:
        self.interrupts.append((pid, err))


async def test_signals_reach_the_host_half_and_kernel_waits_are_interrupted() -> None:
    async with running_pm() as h:
        host = FakeHost({9001})
        h.pm.attach_host(host)
        assert h.pm.restart_errno == p.ERESTARTSYS
        pid = await h.fork(p.INIT_PID, host=9001)
        other = await h.fork(p.INIT_PID, host=9002)       # not the host half's task
        await h.ok(p.ProcKill(caller=0, pid=pid, sig=signal.SIGTERM))
        assert host.signals == [(9001, 0, signal.SIGTERM)]
        assert host.interrupts == [(pid, errno.EINTR)]    # fatal: its sleep ends EINTR
        await h.ok(p.ProcSigaction(caller=pid, sig=signal.SIGUSR1, handler=0x4000,
                                   flags=0x10000000))     # SA_RESTART
        await h.ok(p.ProcKill(caller=0, pid=pid, sig=signal.SIGUSR1))
        assert host.interrupts[-1] == (pid, p.ERESTARTSYS)
        await h.ok(p.ProcKill(caller=0, pid=other, sig=signal.SIGTERM))
        assert h.host.sent[-1] == (9002, signal.SIGTERM)  # fell back to signal_host


async def test_zombie_waitable_only_after_its_host_task_died() -> None:
    async with running_pm() as h:
        h.pm.attach_host(FakeHost(set()))
        parent = await h.fork(p.INIT_PID, host=9100)
        child = await h.fork(parent, host=9101)
        got: list = []

        async def waiter() -> None:
            got.append(await h.wait4(parent))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await h.exit(child, 7)                  # exit_group reached PM first
            await trio.testing.wait_all_tasks_blocked()
            assert got == [] and h.pcb(child).state.value == "Z"
            assert (await h.wait4(parent, options=p.WNOHANG)).result == 0
            await h.ok(p.ProcTaskExited(host_tid=9101, status=7 << 8))
        reply = got[0]
        assert (reply.result, reply.status, reply.host_pid) == (child, 7 << 8, 9101)
        assert h.pcb(child) is None


async def test_killed_process_is_waitable_at_once() -> None:
    """Death by a signal is reported by the host: nothing more to wait for."""
    async with running_pm() as h:
        h.pm.attach_host(FakeHost(set()))
        parent = await h.fork(p.INIT_PID, host=9200)
        child = await h.fork(parent, host=9201)
        await h.ok(p.ProcTaskExited(host_tid=9201, status=signal.SIGKILL))
        reply = await h.wait4(parent, options=p.WNOHANG)
        assert (reply.result, reply.status) == (child, signal.SIGKILL)


async def test_threaded_zombie_waits_for_its_leader_host_task() -> None:
    async with running_pm() as h:
        h.pm.attach_host(FakeHost(set()))
        parent = await h.fork(p.INIT_PID, host=9300)
        child = await h.fork(parent, host=9301)
        await h.fork(child, flags=0x10000, host=9302)     # CLONE_THREAD
        await h.exit(child, 0)
        # the exit forgot the thread: its death report is ESRCH (the router logs it only)
        assert (await h.ask(p.ProcTaskExited(host_tid=9302, status=0))).error == errno.ESRCH
        assert (await h.wait4(parent, options=p.WNOHANG)).result == 0
        await h.ok(p.ProcTaskExited(host_tid=9301, status=0))
        assert (await h.wait4(parent, options=p.WNOHANG)).result == child
