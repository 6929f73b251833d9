"""The FUSE export caches in the host kernel (1 s entry/attribute timeouts,
keep_cache) and stays coherent with what XINIM programs do: each step below
first makes the host kernel cache the old state (stat, ls, cat through the
mount), then a shell inside ``xinim-run --mount`` changes it and says so, and
the host looks again at once -- well inside the timeout, so only the
invalidation the VFS's reply waited for can make it see the change.  The other
way, a host write through the mount is read inside XINIM at once.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.run import XINIM_RUN, run_env

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or os.geteuid() != 0 or shutil.which("fusermount3") is None,
    reason="needs /dev/fuse, fuse3 and root")

# Inside XINIM: each step prints one line, then waits for the host's go.
SCRIPT = r"""
cd /tmp && mkdir co && printf one > co/f && chmod 644 co/f && echo ready; read go
printf three33 > co/f; chmod 600 co/f; touch -m -d @1000000000 co/f; echo changed; read go
mv co/f co/g; echo moved; read go
ln co/g co/h; echo linked; read go
rm co/g co/h; mkdir co/sub; echo removed; read go
cat co/host; echo; stat -c '%s %a' co/host
"""


def _snap(d: Path) -> tuple[list[str], dict[str, tuple[int, int, int, int]]]:
    names = sorted(os.listdir(d))
    attrs = {}
    for n in names:
        st = os.lstat(d / n)
        attrs[n] = (st.st_size, st.st_mode & 0o7777, st.st_mtime_ns // 10**9, st.st_nlink)
    return names, attrs


def test_xinim_changes_seen_through_the_mount_at_once(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen([XINIM_RUN, "--mount", str(mnt), "/bin/sh", "-c", SCRIPT],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=run_env(), cwd="/")
    assert proc.stdin is not None and proc.stdout is not None
    co = mnt / "tmp" / "co"

    def step(expect: str) -> None:
        line = proc.stdout.readline()
        assert line == expect + "\n", (line, proc.stderr.read() if not line else "")

    def go() -> None:
        proc.stdin.write("go\n")
        proc.stdin.flush()

    try:
        step("ready")
        assert _snap(co) == (["f"], {"f": (3, 0o644, _snap(co)[1]["f"][2], 1)})
        assert (co / "f").read_bytes() == b"one"           # pages cached too
        assert not (co / "g").exists() and not (co / "h").exists()   # cached absent
        go()
        step("changed")
        assert _snap(co) == (["f"], {"f": (7, 0o600, 1000000000, 1)})
        assert (co / "f").read_bytes() == b"three33"
        go()
        step("moved")
        assert not (co / "f").exists()
        assert _snap(co) == (["g"], {"g": (7, 0o600, 1000000000, 1)})
        go()
        step("linked")
        assert _snap(co) == (["g", "h"], {"g": (7, 0o600, 1000000000, 2),
                                          "h": (7, 0o600, 1000000000, 2)})
        assert os.stat(co).st_nlink == 2
        go()
        step("removed")
        assert not (co / "g").exists() and not (co / "h").exists()
        assert sorted(os.listdir(co)) == ["sub"]
        assert os.stat(co).st_nlink == 3                   # the parent's attributes too
        # the other way: written through the mount, read inside XINIM at once
        fd = os.open(co / "host", os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            os.write(fd, b"from the host")
        finally:
            os.close(fd)
        go()
        out, err = proc.communicate(timeout=60)
        assert out == "from the host\n13 640\n", err
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        with open("/proc/self/mountinfo") as f:
            if any(line.split()[4] == str(mnt) for line in f):   # killed: a dead mount
                subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)
