"""Issue 16: the socket data path.  Small sends travel inside the sealed request,
bigger ones through a grant, and NET's readiness notices to the VFS are one-way:
none of it may show.  Differential: tests/c/net_sizes.c natively and under
xinim-run, outputs compared line by line (sizes on both sides of the inline limit,
record boundaries and MSG_TRUNC, EFAULT for buffers not all there with nothing
consumed from a stream, bad fds and lengths, poll/epoll wakes across a fork)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run


@pytest.fixture(scope="module")
def net_sizes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("netsizes")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out / "net_sizes"),
                    str(C_DIR / "net_sizes.c")], check=True, timeout=120)
    return out


def test_sizes_faults_and_wakes_match_linux(net_sizes: Path) -> None:
    nat = native(str(net_sizes / "net_sizes"))
    assert nat.returncode == 0, nat.stderr
    xin = xinim_run("--bind", f"{net_sizes}:/t", "/t/net_sizes")
    assert xin.returncode == 0, xin.stderr
    assert "Traceback" not in xin.stderr
    diff = [f"{a!r} != {b!r}" for a, b in zip(nat.stdout.splitlines(), xin.stdout.splitlines())
            if a != b]
    assert diff == []
    assert len(xin.stdout.splitlines()) == len(nat.stdout.splitlines())
    # the cases ran (sizes each side of the inline limit, and the fault cases)
    assert "stream got 1025 sum-ok: 1" in xin.stdout
    assert "send half-mapped 1000: -1 EFAULT" in xin.stdout
    assert "recv rest: 1000" in xin.stdout
