"""kill -9 at any point of a fork, an exec or an exit leaves no server holding
anything of the dead process (the fork+exec path's shortcuts: the exec check
that commits the VFS side, MM's record replaced only at the kernel's fresh
layout, an exit PM hears of only from the death, write-back marks, parked-call
checks)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import trio

from xinim_host.cli.launch import run_program
from xinim_host.cli.options import mounts_from
from xinim_host.kernel.calls import memory
from xinim_host.lib import protocol as p
from xinim_host.system.boot import BootConfig, booted

# Children killed as soon as they exist: some in their fork, some in the middle
# of an exec (of a binary, of a #! script), some in their exit -- or in ld.so's
# maps, which run as the trapped call itself; the survivors' ordinary
# fork+exec+wait runs between them.  Then one child that maps a file MAP_SHARED
# (a write-back mark) and forks is killed too, and one whose threads map and
# unmap at once.
SCRIPT = r"""
printf '#!/bin/sh\nexit 0\n' > /tmp/s.sh; chmod +x /tmp/s.sh
i=0
while [ $i -lt 40 ]; do
    /bin/true & kill -9 $! 2>/dev/null
    /tmp/s.sh & kill -9 $! 2>/dev/null
    /bin/true
    i=$((i+1))
done
python3 -c '
import mmap, os
fd = os.open("/tmp/m", os.O_RDWR | os.O_CREAT, 0o644); os.ftruncate(fd, 4096)
m = mmap.mmap(fd, 4096); m[:2] = b"ok"
if os.fork() == 0:
    os.execv("/bin/sleep", ["sleep", "60"])
os.kill(os.getpid(), 9)
' &
python3 -c '
import mmap, os, threading
def work():
    while True:
        m = mmap.mmap(-1, 65536); m[0] = 1; m.close()
for _ in range(3):
    threading.Thread(target=work, daemon=True).start()
os.kill(os.getpid(), 9)
' &
python3 -c '
import os
b = bytearray(1 << 20)
for _ in range(50):
    b += bytes(1 << 18)
os.kill(os.getpid(), 9)
' &
sleep 0.5
pkill -9 sleep 2>/dev/null
wait
/t/mm_vfork > /tmp/vfork.out || echo "mm_vfork failed"
sed 's/^/vfork: /' /tmp/vfork.out
echo done
"""
C_DIR = Path(__file__).resolve().parent / "c"


async def test_kill_9_mid_fork_exec_or_exit_leaks_nothing(console: object,
                                                          tmp_path: Path) -> None:
    # mm_vfork: vfork children that map and unmap in the parent's memory, one
    # of them killed (-9) before it execs; the parent's record must stay whole
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(tmp_path / "mm_vfork"),
                    str(C_DIR / "mm_vfork.c")], check=True, timeout=120)
    native = subprocess.run([str(tmp_path / "mm_vfork")], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    config = BootConfig(console=console, quiet=True,
                        mounts=mounts_from([(str(tmp_path), "/t", "ro")]))
    async with booted(config) as system:
        code = await run_program(system, ["/bin/sh", "-c", SCRIPT], {"PATH": "/usr/bin:/bin"})
        assert code == 0, console.text   # type: ignore[attr-defined]
        text = console.text   # type: ignore[attr-defined]
        assert "done" in text and "mm_vfork failed" not in text, text
        got = [ln[7:] for ln in text.splitlines() if ln.startswith("vfork: ")]
        assert got == native.splitlines(), text
        with trio.fail_after(20):        # init reaps the orphans and the program itself
            while set(system.pm.table.procs) != {1, 2, 3, 4}:
                await trio.sleep(0.02)
        live = set(system.pm.table.procs)
        assert set(system.kernel.creds) <= live | {p.INIT_PID}
        assert system.kernel.write_backs <= live
        assert set(system.vfs.procs) <= live
        assert set(system.mm.procs) <= live
        assert not system.pm.table.by_host       # no host task left named
        # the kernel's counts for one-stop memory calls went with their processes
        assert all(os.path.exists(f"/proc/{tgid}") for tgid in memory._vma_room)
        # and the tracer's /proc/TGID/maps fds of growing mremaps (PROCMAP_QUERY)
        assert all(os.path.exists(f"/proc/{tgid}") for tgid in memory._maps_fds)
        assert all(os.path.exists(f"/proc/{tgid}") for tgid in memory._ipc_lock)
        for table in (memory._checked_fds, memory._fresh_image, memory._shared_files):
            assert all(os.path.exists(f"/proc/{tgid}") for tgid in table)
        system.mm.acct.frames.check_invariants()
