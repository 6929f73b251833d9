"""PM in a booted system: the real VFS hears about forks and exits, and init's own
wait loop (a kernel task calling wait4 through the dispatcher) reaps orphans."""
from __future__ import annotations

from typing import Any

import trio

from xinim_host.lib import protocol as p
from xinim_host.system.boot import BootConfig, booted
from xinim_host.pm.proctable import State


async def test_init_reaps_orphans_in_a_booted_system(console: Any) -> None:
    with trio.fail_after(30):
        async with booted(BootConfig(console=console, quiet=True)) as system:
            lattice, pm = system.lattice, system.pm

            async def ask(body: p.Payload) -> Any:
                reply = (await lattice.sendrec(p.KERNEL_PID, p.PM_PID, body)).body
                assert reply.error == 0, (body, reply)
                return reply

            await trio.testing.wait_all_tasks_blocked()
            assert pm.table.procs[p.INIT_PID].state is State.SLEEPING   # init parked in wait4
            parent = (await ask(p.ProcFork(parent_pid=p.INIT_PID, child_host_pid=10))).result
            kids = [(await ask(p.ProcFork(parent_pid=parent, child_host_pid=11 + i))).result
                    for i in range(3)]
            # the VFS made fd tables for them: a dup of stdin-less fd fails per process
            # (EBADF), not for an unknown caller (ESRCH)
            for pid in (parent, *kids):
                r = (await lattice.sendrec(p.KERNEL_PID, p.VFS_PID,
                                           p.VfsClose(caller=pid, fd=999))).body
                assert r.error == 9, r        # EBADF
            await ask(p.ProcExitGroup(caller=parent, status=0))
            for kid in kids:
                assert pm.table.procs[kid].ppid == p.INIT_PID
                await ask(p.ProcExitGroup(caller=kid, status=1 << 8))
            await trio.testing.wait_all_tasks_blocked()
            assert set(pm.table.procs) == {1, 2, 3, 4}
            assert pm.table.procs[p.INIT_PID].state is State.SLEEPING
