"""xinim-ps: the process list of a running system over its node socket, and the
kernel's relay that alone shows host pids and other processes' maps."""
from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from xinim_host.cli import ps
from xinim_host.lib import protocol as p
from xinim_host.system.boot import BootConfig, booted
from xinim_host.lib.errors import SysError

from test_xinim_boot import PROMPT, Boot


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="xinim-ps-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- in process: the relay's rules --------------------------------------------------------

async def test_listing_from_pm_and_through_the_kernel(console: Any, tmp: Path) -> None:
    path = str(tmp / "node.sock")
    with trio.fail_after(30):
        async with booted(BootConfig(console=console, quiet=True, socket_path=path)) as system:
            await system.nursery.start(ps.serve_node_queries, system)
            client = ps.Client(path)
            async with trio.open_nursery() as nursery:
                await client.open(nursery)
                direct = await ps.list_processes(client, via_kernel=False)
                relayed = await ps.list_processes(client, via_kernel=True)
                assert [e.pid for e in direct] == [1, 2, 3, 4] == [e.pid for e in relayed]
                init = direct[0]
                assert (init.ppid, init.pgid, init.sid, init.command) == (0, 1, 1, "init")
                # a request the kernel does not relay
                with pytest.raises(SysError) as exc:
                    await client.ask(p.KERNEL_PID, p.ProcKill(caller=0, pid=1, sig=9))
                assert exc.value.errno == errno.EPERM
                # the relay speaks as the kernel, never for a caller the client names
                with pytest.raises(SysError):
                    await client.ask(p.KERNEL_PID, p.ProcInfo(caller=1, pid=0))
                nursery.cancel_scope.cancel()


async def test_the_kernel_relays_nothing_for_its_own_node(console: Any) -> None:
    with trio.fail_after(30):
        async with booted(BootConfig(console=console, quiet=True)) as system:
            await system.nursery.start(ps.serve_node_queries, system)
            lattice = system.lattice
            lattice.register(77)                 # a XINIM process's own endpoint
            lattice.connect_local(77, p.KERNEL_PID)
            reply = await lattice.sendrec(77, p.KERNEL_PID, p.ProcList(caller=77, start=0))
            assert reply.body.error == errno.EPERM   # host pids stay PM's secret
            reply = await lattice.sendrec(77, p.KERNEL_PID, p.MmMaps(pid=1))
            assert reply.body.error == errno.EPERM


# --- the command, against xinim-boot ----------------------------------------------------------

def run_ps(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xinim_host.cli.ps", *args],
                          capture_output=True, text=True, timeout=30)


def test_xinim_ps_lists_init_and_the_shell(tmp: Path) -> None:
    boot = Boot(tmp, init=["/bin/sh"])
    try:
        boot.read_until(PROMPT)
        boot.type(b"echo $$\r")
        shell = int(re.search(rb"\r\n(\d+)\r\n", boot.read_until(PROMPT)).group(1))
        assert shell >= 5

        out = run_ps("--socket", boot.socket)
        assert out.returncode == 0, out.stderr
        head, *rows = out.stdout.splitlines()
        assert head.split() == ["PID", "PPID", "PGID", "SID", "UID", "THR", "S", "COMMAND"]
        table = {int(r.split()[0]): r.split() for r in rows}
        assert table[1][1:4] == ["0", "1", "1"] and table[1][-1] == "init"
        assert table[shell][1] == "1"                          # init's child
        assert {2, 3, 4} <= set(table)

        out = run_ps("--host", "--socket", boot.socket)
        assert out.returncode == 0, out.stderr
        head, *rows = out.stdout.splitlines()
        assert "HOST" in head.split()
        table = {int(r.split()[0]): r.split() for r in rows}
        assert table[1][4] == "-"                              # init has no host task
        host = int(table[shell][4])
        assert host != os.getpid() and os.path.basename(os.readlink(f"/proc/{host}/exe")) in (
            "dash", "sh", "bash", "busybox")

        out = run_ps("--mem", str(shell), "--socket", boot.socket)
        assert out.returncode == 0, out.stderr
        assert "[stack]" in out.stdout
        frames = re.search(r"frames used (\d+) .*shared (\d+), private (\d+)", out.stdout)
        assert frames and int(frames[1]) == int(frames[2]) + int(frames[3])

        out = run_ps("--mem", "31999", "--socket", boot.socket)
        assert out.returncode == 1 and "xinim-ps" in out.stderr

        boot.type(b"exit\r")
        assert boot.wait() == 0
    finally:
        boot.close()


def test_xinim_ps_without_a_system(tmp: Path) -> None:
    out = run_ps("--socket", str(tmp / "nobody.sock"))
    assert out.returncode == 1
    assert "no system listens" in out.stderr
