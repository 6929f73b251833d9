"""PM's timers without real processes: expiry sends the signal through PM's
signal path (the fake host records it), ids, old values, exit and exec."""
from __future__ import annotations

import errno

import trio
import trio.testing

from support.pm import running_pm
from xinim_host.lib import protocol as p

SIGALRM, SIGUSR1 = 14, 10
MS = 1_000_000


async def _until_sent(h, entry: tuple[int, int]) -> None:
    with trio.fail_after(10):
        while entry not in h.host.sent:
            await trio.sleep(0.005)


async def test_a_timer_fires_its_signal_and_a_periodic_one_keeps_firing() -> None:
    async with running_pm() as h:
        pid = await h.fork(p.INIT_PID, host=7300)
        one = (await h.ok(p.ProcTimerCreate(caller=pid, clock=1, signo=SIGUSR1))).result
        two = (await h.ok(p.ProcTimerCreate(caller=pid, clock=1, signo=SIGALRM))).result
        assert (one, two) == (0, 1)
        h.host.sent.clear()
        old = await h.ok(p.ProcTimerSet(caller=pid, timer=one, value_ns=10 * MS))
        assert (old.value_ns, old.interval_ns) == (0, 0)
        await _until_sent(h, (7300, SIGUSR1))
        assert (await h.ok(p.ProcTimerGet(caller=pid, timer=one))).value_ns == 0  # one-shot
        await h.ok(p.ProcTimerSet(caller=pid, timer=two, value_ns=5 * MS, interval_ns=5 * MS))
        with trio.fail_after(10):
            while h.host.sent.count((7300, SIGALRM)) < 3:
                await trio.sleep(0.005)
        got = await h.ok(p.ProcTimerSet(caller=pid, timer=two))         # disarm
        assert got.interval_ns == 5 * MS and 0 < got.value_ns <= 5 * MS
        assert await h.err(p.ProcTimerDelete(caller=pid, timer=7)) == errno.EINVAL
        assert (await h.ok(p.ProcTimerDelete(caller=pid, timer=one))).result == 0
        # ids count on: a deleted id is not handed out again at once
        assert (await h.ok(p.ProcTimerCreate(caller=pid, clock=1))).result == 2


async def test_bad_timers_and_what_exit_and_exec_keep() -> None:
    async with running_pm() as h:
        pid = await h.fork(p.INIT_PID, host=7301)
        assert await h.err(p.ProcTimerCreate(caller=pid, clock=2)) == errno.EINVAL   # CPU clock
        assert await h.err(p.ProcTimerCreate(caller=pid, clock=1, signo=99)) == errno.EINVAL
        assert await h.err(p.ProcTimerCreate(caller=pid, clock=1, notify=p.SIGEV_THREAD_ID,
                                             tid=9999)) == errno.EINVAL
        await h.ok(p.ProcTimerSet(caller=pid, timer=p.TIMER_REAL, value_ns=3600 * 10**9))
        await h.ok(p.ProcTimerCreate(caller=pid, clock=1))
        pcb = h.pcb(pid)
        assert set(pcb.timers) == {p.TIMER_REAL, 0}
        h.pm.timers.drop(pcb, keep_real=True)                 # what exec does
        assert set(pcb.timers) == {p.TIMER_REAL}
        left = (await h.ok(p.ProcTimerGet(caller=pid, timer=p.TIMER_REAL))).value_ns
        assert 0 < left <= 3600 * 10**9
        await h.exit(pid)
        assert not h.pm.timers.armed                          # exit disarms everything
