"""splice between pipes and a socket (the bytes through NET), natively and under
xinim-run: same bytes, same errors, a splice from an empty pipe waits (LTP splice05)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("splice_socket")
    subprocess.run(["gcc", "-O2", "-Wall", "-Wno-unused-result", "-o",
                    str(out / "splice_socket"), str(C_DIR / "splice_socket.c")],
                   check=True, timeout=120)
    return out


def test_splice_with_a_socket_as_natively(prog: Path) -> None:
    here = native(str(prog / "splice_socket"))
    assert here.returncode == 0, here.stdout + here.stderr
    there = xinim_run("--bind", f"{prog}:/t", "/t/splice_socket", timeout=120)
    assert there.returncode == 0, there.stdout + there.stderr
    assert there.stdout == here.stdout
    assert "round trip: same bytes\n" in there.stdout
    assert "waited for the pipe: 4 late\n" in there.stdout
