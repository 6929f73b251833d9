"""Helpers for the xinim-run acceptance tests (``test_run_*.py``, ``test_sandbox.py``): the real
``xinim-run`` console script in a subprocess, and the C programs of tests/c/
compiled once per session.  No tests here."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

C_DIR = Path(__file__).resolve().parent.parent / "c"
# the console script next to the interpreter running the tests (the venv's)
XINIM_RUN = str(Path(sys.executable).with_name("xinim-run"))
if not os.path.exists(XINIM_RUN):                     # pragma: no cover
    XINIM_RUN = shutil.which("xinim-run") or XINIM_RUN
TIMEOUT = 60
# the root directories XINIM's default host mounts add to the ramfs's own
MOUNTED = {"bin", "etc", "lib", "lib64", "usr"}
# the ramfs's own top level, made at boot
RAMFS_TOP = {"dev", "tmp", "root", "home"}
# programs under tests/c/ built for these tests
C_PROGRAMS = ("mvp", "file_io", "badptr", "robuf")


def run_env(**extra: str) -> dict[str, str]:
    """The environment for xinim-run and for the native runs it is compared with:
    C locale and UTC so listings and dates compare, no XINIM_SOCKET (boot our own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XINIM_SOCKET")}
    env.update(LC_ALL="C", LANG="C", TZ="UTC")
    env.pop("LANGUAGE", None)
    env.update(extra)
    return env


def xinim_run(*argv: str, timeout: float = TIMEOUT, input: bytes | None = None,
              env: dict[str, str] | None = None,
              cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """``xinim-run ARGV...``; stdout/stderr captured as text, stdin a pipe with
    ``input`` (empty: EOF at once, whatever the test runner's own stdin is)."""
    return subprocess.run([XINIM_RUN, *argv], input=input.decode() if input else "",
                          capture_output=True, text=True, timeout=timeout,
                          env=env or run_env(), cwd=cwd or "/")


def native(*argv: str, timeout: float = TIMEOUT, cwd: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          env=env or run_env(), cwd=cwd or "/")


def root_listing(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def assert_xinim_root(names: list[str] | set[str]) -> None:
    """``names`` is XINIM's /: the ramfs entries plus the host mounts, and not the
    host's own root."""
    names = set(names)
    assert MOUNTED <= names, f"missing mounts: {MOUNTED - names}"
    assert RAMFS_TOP <= names, f"missing ramfs entries: {RAMFS_TOP - names}"
    host_only = {n for n in os.listdir("/") if n not in names}
    # the host has more at its top level (work, opt, srv, ...) that XINIM must not see
    assert host_only, "listing looks like the host's root"
    assert "work" not in names


@pytest.fixture(scope="session")
def cprogs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/c/{C_PROGRAMS}.c compiled with gcc into a tmp dir (bind it into XINIM)."""
    out = tmp_path_factory.mktemp("cprogs")
    for name in C_PROGRAMS:
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out / name),
                        str(C_DIR / f"{name}.c")], check=True, timeout=120)
    return out
