"""Issue 14 acceptance: event fds and epoll under xinim-run, differential.

tests/c/events.c puts a pipe, an eventfd, a timerfd, a signalfd and an inotify fd
in one epoll set and checks Linux's answers for bad input, EPOLLET, EPOLLONESHOT,
nesting, fork and dup; it prints only what must be the same natively and inside
XINIM, so the two outputs are compared line by line.
"""
from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run


@pytest.fixture(scope="module")
def events_prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("events")
    subprocess.run(["gcc", "-O2", "-Wall", "-Wno-stringop-overflow", "-o", str(out / "events"),
                    str(C_DIR / "events.c")], check=True, timeout=120)
    return out


def _same(expected: str, got: str) -> None:
    assert got == expected, "\n".join(difflib.unified_diff(
        expected.splitlines(), got.splitlines(), "native", "xinim-run", lineterm=""))


@pytest.mark.parametrize("parts", ["pets"])
def test_one_epoll_set_of_every_kind_matches_linux(events_prog: Path, tmp_path: Path,
                                                   parts: str) -> None:
    ref = native(str(events_prog / "events"), str(tmp_path), parts)
    assert ref.returncode == 0, ref.stderr
    assert "wait 0:" in ref.stdout and ref.stdout.endswith("done\n")
    res = xinim_run("--bind", f"{events_prog}:/t", "/t/events", "/tmp", parts)
    assert res.returncode == 0, res.stderr
    _same(ref.stdout, res.stdout)
