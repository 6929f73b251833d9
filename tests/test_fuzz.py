"""Issue 11, part 3: a program making thousands of random syscalls with random
and garbage arguments (tests/c/fuzz.c, fixed seeds) runs under xinim-run; the
tracer and the servers never raise on what it hands them, and the same boot
still runs the next program (the fuzzer execs /bin/echo when it is done)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, xinim_run

SEEDS, CALLS = 40, 100                # 4,000 calls, ~12 s on two shared cores


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out / "fuzz"), str(C_DIR / "fuzz.c")],
                   check=True, timeout=120)
    return out


def test_refuses_to_run_natively(fuzz: Path) -> None:
    """Natively (as root) random calls on random paths would garble the host."""
    res = subprocess.run([str(fuzz / "fuzz"), "1", "1"], capture_output=True, text=True,
                         timeout=30, cwd="/")
    assert res.returncode == 4 and "only under XINIM" in res.stderr


def test_random_syscalls_raise_nothing(fuzz: Path) -> None:
    res = xinim_run("--bind", f"{fuzz}:/t", "/t/fuzz", str(SEEDS), str(CALLS),
                    "/bin/echo", "still serving", timeout=120)
    err = res.stderr
    assert "Traceback" not in err, err[err.index("Traceback") - 200:][:4000]
    assert "does not encode" not in err and "failed" not in err, err[-4000:]
    assert f"fuzz: {SEEDS} seeds x {CALLS} calls:" in res.stdout
    assert res.stdout.rstrip().endswith("still serving")
    assert res.returncode == 0
