"""Job control on the xinim-run console (a tmux pane): in bash, dash, mksh and
busybox sh, ^Z stops the foreground job and gives the prompt back, ``jobs`` shows it
Stopped, ``fg`` resumes it in the foreground (^C then ends it), ``bg`` runs it on."""
from __future__ import annotations

import re
import shutil
import time

import pytest

from support.hostproc import wait_for_host_process
from test_console_tmux import RUN, Pane, pane_factory  # noqa: F401 - the fixture

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

    pane.keys("sleep 100", "Enter")
    wait_for_host_process(b"sleep\x00100\x00")
    pane.keys("C-z")
    pane.wait_for(r"Stopped.*sleep 100")
    pane.keys("jobs; echo jobs.done", "Enter")
    text = pane.wait_for(r"^jobs\.done$")
    assert re.search(r"^\[1\].*Stopped.*sleep 100", text.rsplit("jobs; echo", 1)[1], re.M), text

    pane.keys("fg", "Enter")
    pane.wait_for(r"fg\n\\?sleep 100\n")
    time.sleep(0.5)     # (the shell prints the job before it hands it the terminal)
    pane.keys("C-c")
    pane.keys("echo fg.status=$?", "Enter")
    pane.wait_for(r"^fg\.status=130$")             # the ^C ended the resumed sleep

    pane.keys("sleep 100", "Enter")
    wait_for_host_process(b"sleep\x00100\x00")
    pane.keys("C-z")
    pane.wait_for(r"(?s)fg\.status=130.*Stopped.*sleep 100")
    pane.keys("bg; jobs; echo bg.done", "Enter")   # one line: nothing typed ahead
    text = pane.wait_for(r"^bg\.done$")
    assert re.search(r"^\[1\].*Running.*sleep 100", text.rsplit("bg; jobs; echo", 1)[1], re.M), text
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
