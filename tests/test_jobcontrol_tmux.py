"""Job control on the xinim-run console and the xinim-boot serial console (tmux panes): in bash, dash, mksh and
busybox sh, ^Z stops the foreground job and gives the prompt back, ``jobs`` shows it
Stopped, ``fg`` resumes it in the foreground (^C then ends it), ``bg`` runs it on."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import time

import pytest

from support.hostproc import wait_for_host_process
from test_console_tmux import RUN, Pane, pane_factory  # noqa: F401 - the fixture

# a sleep no other test's pane runs (tests find it among the host's processes)
NAP = str(10000 + os.getpid() % 50000)

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")

SHELLS = {
    "bash": "/bin/bash --norc -i",
    "dash": "/bin/dash -i",
    "mksh": "/bin/mksh -i",
    "busybox": "/bin/busybox sh -i",
}
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_ctrl_z_stops_the_job_fg_and_bg_resume_it(pane_factory, shell) -> None:  # noqa: F811
    argv = SHELLS[shell].split()
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed")
    pane: Pane = pane_factory(f"{RUN} {SHELLS[shell]}", width=100, height=40)
    pane.wait_for(r"[#$] ?$")
    pane.keys("echo ready.$((6*7))", "Enter")
    pane.wait_for(r"^ready\.42$")

    pane.keys(f"sleep {NAP}", "Enter")
    wait_for_host_process(b"sleep\x00%s\x00" % NAP.encode())
    pane.keys("C-z")
    pane.wait_for(rf"Stopped.*sleep {NAP}")
    pane.keys("jobs; echo jobs.done", "Enter")
    text = pane.wait_for(r"^jobs\.done$")
    assert re.search(rf"^\[1\].*Stopped.*sleep {NAP}", text.rsplit("jobs; echo", 1)[1], re.M), text

    pane.keys("fg", "Enter")
    pane.wait_for(rf"fg\n\\?sleep {NAP}\n")
    time.sleep(0.5)     # (the shell prints the job before it hands it the terminal)
    pane.keys("C-c")
    pane.keys("echo fg.status=$?", "Enter")
    pane.wait_for(r"^fg\.status=130$")             # the ^C ended the resumed sleep

    pane.keys(f"sleep {NAP}", "Enter")
    wait_for_host_process(b"sleep\x00%s\x00" % NAP.encode())
    pane.keys("C-z")
    pane.wait_for(rf"(?s)fg\.status=130.*Stopped.*sleep {NAP}")
    pane.keys("bg; jobs; echo bg.done", "Enter")   # one line: nothing typed ahead
    text = pane.wait_for(r"^bg\.done$")
    assert re.search(rf"^\[1\].*Running.*sleep {NAP}", text.rsplit("bg; jobs; echo", 1)[1], re.M), text
    pane.keys("kill %1; wait; exit 3", "Enter")
    text = pane.wait_for(r"^rc=\d+$")
    assert re.search(r"^rc=3$", text, re.M), text


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_background_reads_and_tostop_writes_stop_the_job(pane_factory, shell) -> None:  # noqa: F811
    """A background job that reads the console stops (SIGTTIN); with ``stty tostop``
    one that writes it stops too (SIGTTOU); ``fg`` lets each go on."""
    argv = SHELLS[shell].split()
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed")
    pane: Pane = pane_factory(f"{RUN} {SHELLS[shell]}", width=100, height=40)
    pane.wait_for(r"[#$] ?$")
    pane.keys("cat & sleep 1; jobs; echo in.done", "Enter")
    text = pane.wait_for(r"^in\.done$")
    assert re.search(r"^\[1\].*Stopped.*cat", text, re.M), text
    pane.keys("fg", "Enter")
    pane.wait_for(r"fg\n\\?cat\n")
    time.sleep(0.5)     # (the shell prints the job before it hands it the terminal)
    pane.keys("typed.line", "Enter")
    pane.wait_for(r"^typed\.line\ntyped\.line$")   # the echo, then cat's copy
    pane.keys("C-d")
    pane.keys("stty tostop; echo out.put & sleep 1; jobs; echo out.done", "Enter")
    text = pane.wait_for(r"^out\.done$")
    assert re.search(r"^\[1\].*Stopped.*echo out\.put", text, re.M), text
    assert not re.search(r"^out\.put$", text, re.M), text
    pane.keys("stty -tostop; fg", "Enter")
    pane.wait_for(r"^out\.put$")
    pane.keys("exit 3", "Enter")
    text = pane.wait_for(r"^rc=\d+$")
    assert re.search(r"^rc=3$", text, re.M), text


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_ctrl_z_on_the_xinim_boot_serial_console(pane_factory, shell, tmp_path) -> None:  # noqa: F811
    """The same on a booted system's serial console (the UART on this terminal): ^Z
    stops init's shell's job, ``fg`` resumes it (^C ends it), ``bg`` runs it on."""
    boot = (f"{shlex.quote(sys.executable)} -m xinim_host.cli.boot --serial stdio "
            f"--socket {tmp_path}/node.sock --init {SHELLS[shell]}")
    pane: Pane = pane_factory(boot, width=100, height=40)
    pane.wait_for(r"[#$] ?$", timeout=60)
    pane.keys(f"sleep {NAP}", "Enter")
    wait_for_host_process(b"sleep\x00%s\x00" % NAP.encode())
    pane.keys("C-z")
    pane.wait_for(rf"Stopped.*sleep {NAP}")
    pane.keys("jobs; echo jobs.done", "Enter")
    text = pane.wait_for(r"^jobs\.done$")
    assert re.search(rf"^\[1\].*Stopped.*sleep {NAP}", text.rsplit("jobs; echo", 1)[1], re.M), text
    pane.keys("fg", "Enter")
    pane.wait_for(rf"fg\n\\?sleep {NAP}\n")
    time.sleep(0.5)     # (the shell prints the job before it hands it the terminal)
    pane.keys("C-c")
    pane.keys("echo fg.status=$?", "Enter")
    pane.wait_for(r"^fg\.status=130$")
    pane.keys(f"sleep {NAP}", "Enter")
    wait_for_host_process(b"sleep\x00%s\x00" % NAP.encode())
    pane.keys("C-z")
    pane.wait_for(rf"(?s)fg\.status=130.*Stopped.*sleep {NAP}")
    pane.keys("bg; jobs; echo bg.done", "Enter")
    text = pane.wait_for(r"^bg\.done$")
    assert re.search(rf"^\[1\].*Running.*sleep {NAP}", text.rsplit("bg; jobs; echo", 1)[1], re.M), text


def test_job_control_on_a_pty_made_through_xinim(pane_factory) -> None:  # noqa: F811
    """script(1) inside XINIM runs bash on a pty of XINIM's /dev/ptmx: ^Z typed into
    the master stops the job, a background read of the slave stops with SIGTTIN."""
    if shutil.which("script") is None:
        pytest.skip("script not installed")
    pane: Pane = pane_factory(f"{RUN} /usr/bin/script -qc '/bin/bash --norc -i' /dev/null",
                              width=100, height=40)
    pane.wait_for(r"[#$] ?$")
    pane.keys("echo ready.$((6*7))", "Enter")
    pane.wait_for(r"^ready\.42$")
    pane.keys("cat & sleep 1; jobs; echo in.done", "Enter")
    text = pane.wait_for(r"^in\.done$")
    assert re.search(r"^\[1\].*Stopped.*cat", text, re.M), text
    pane.keys(f"sleep {NAP}", "Enter")
    wait_for_host_process(b"sleep\x00%s\x00" % NAP.encode())
    pane.keys("C-z")
    pane.wait_for(rf"^\[2\].*Stopped.*sleep {NAP}")
    pane.keys("kill -9 %1 %2; echo killed.done", "Enter")
    pane.wait_for(r"^killed\.done$")
