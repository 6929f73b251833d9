"""Issue 14: POSIX timers, setitimer/getitimer and alarm are PM's, differential.

tests/c/timers.c arms timers of every notify kind (SIGEV_SIGNAL with a value, a
NULL sigevent, SIGEV_NONE, SIGEV_THREAD_ID, glibc's SIGEV_THREAD), checks that a
timer's SIGALRM interrupts nanosleep with EINTR and carries SI_TIMER, that
setitimer's interrupts pause, alarm's bookkeeping and Linux's errors; it prints
only what must be the same natively and inside XINIM.
"""
from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, XINIM_RUN, native, run_env, xinim_run
from test_join import running_system  # noqa: F401 - the fixture


@pytest.fixture(scope="module")
def timers_prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("timers")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out / "timers"), str(C_DIR / "timers.c")],
                   check=True, timeout=120)
    return out


def test_posix_timers_and_itimers_match_linux(timers_prog: Path) -> None:
    ref = native(str(timers_prog / "timers"))
    assert ref.returncode == 0, ref.stderr
    assert "nanosleep: -1 Interrupted system call" in ref.stdout
    res = xinim_run("--bind", f"{timers_prog}:/t", "/t/timers")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ref.stdout, "\n".join(difflib.unified_diff(
        ref.stdout.splitlines(), res.stdout.splitlines(), "native", "xinim-run", lineterm=""))


def test_timeout_kills_its_command_and_says_124() -> None:
    """coreutils timeout arms its deadline with timer_create: no warning about it,
    and the command is ended with SIGTERM (status 124)."""
    script = "timeout 1 sleep 5; echo $?"
    ref = native("/bin/sh", "-c", script)
    res = xinim_run("/bin/sh", "-c", script)
    assert (res.stdout, res.stderr, res.returncode) == (ref.stdout, ref.stderr, 0)
    assert res.stdout == "124\n"


def test_itimer_real_survives_exec_and_is_not_inherited() -> None:
    """ITIMER_REAL is kept across exec and not given to a fork child (Linux): the
    alarm set before exec ends the exec'd sleep; the child's getitimer reads 0."""
    script = ("python3 -c 'import signal,os; signal.setitimer(signal.ITIMER_REAL, 0.3); "
              "pid = os.fork()\nif pid == 0:\n print(signal.getitimer(signal.ITIMER_REAL)); "
              "os._exit(0)\nos.waitpid(pid, 0); os.execv(\"/bin/sleep\", [\"sleep\", \"5\"])'"
              "; echo status=$?")
    ref = native("/bin/sh", "-c", script)
    res = xinim_run("/bin/sh", "-c", script)
    assert ref.stdout == "(0.0, 0.0)\nstatus=142\n", ref
    assert (res.stdout, res.returncode) == (ref.stdout, 0), res.stderr


def test_timers_in_a_joined_program_match_linux(timers_prog: Path, running_system) -> None:  # noqa: F811
    """A joined node's program: PM (on the booted node) fires its timers and the
    joined kernel ends its parked nanosleep, with the timer's siginfo intact."""
    sock, _ = running_system
    ref = native(str(timers_prog / "timers"))
    prog = (timers_prog / "timers").read_bytes()
    res = subprocess.run([XINIM_RUN, "/bin/sh", "-c", "cat > /tmp/timers; chmod +x /tmp/timers; "
                          "exec /tmp/timers"], input=prog, capture_output=True, timeout=60,
                         env={**run_env(), "XINIM_SOCKET": sock})
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode() == ref.stdout
