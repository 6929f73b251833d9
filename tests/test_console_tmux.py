"""xinim-run on a real terminal (a tmux pane): its terminal is the far end of the
UART console -- the window size, isatty, ^C to the foreground group, and the
terminal given back as it was."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from support.hostproc import wait_for_host_process

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")

RUN = f"{shlex.quote(sys.executable)} -m xinim_host.cli.run"
CWD = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Pane:
    def __init__(self, command: str, width: int = 100, height: int = 30) -> None:
        self.server = f"xinim-test-{os.getpid()}-{time.monotonic_ns()}"
        self._tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-c", CWD,
                   f"{command}; echo rc=$?; stty -g; sleep 60")

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.server, "-f", "/dev/null", *args],
                              capture_output=True, text=True, check=True, timeout=30).stdout

    def text(self) -> str:
        return self._tmux("capture-pane", "-p")

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if re.search(pattern, text, re.M):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the pane:\n{text}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True)


@pytest.fixture
def pane_factory() -> Iterator:
    panes: list[Pane] = []

    def make(command: str, **kw: int) -> Pane:
        pane = Pane(command, **kw)
        panes.append(pane)
        return pane

    yield make
    for pane in panes:
        pane.close()


def plain_stty() -> str:
    """``stty -g`` of a fresh tmux pane (what the terminal must be given back as)."""
    pane = Pane("true")
    try:
        text = pane.wait_for(r"^rc=0$")
        return text.split("rc=0\n", 1)[1].split()[0]
    finally:
        pane.close()


def test_stty_size_reports_the_window_size(pane_factory) -> None:
    pane = pane_factory(f"{RUN} /bin/sh -c 'stty size; test -t 1 && echo isatty'")
    text = pane.wait_for(r"^rc=\d+$")
    assert re.search(r"^30 100$", text, re.M), text
    assert re.search(r"^isatty$", text, re.M), text
    assert re.search(r"^rc=0$", text, re.M), text


def test_interactive_shell_ctrl_c_and_terminal_restored(pane_factory) -> None:
    pane = pane_factory(f"{RUN} /bin/sh -i", width=90, height=25)
    pane.wait_for(r"^[#$]\s*$")
    pane.keys("echo $((6*7))", "Enter")
    pane.wait_for(r"^42$")
    pane.keys("sleep 100", "Enter")
    wait_for_host_process(b"sleep\x00100\x00")
    pane.keys("C-c")
    pane.wait_for(r"^\^C\s*$")
    pane.wait_for(r"^[#$]\s*$")
    pane.keys("echo status=$?", "Enter")
    pane.wait_for(r"^status=130$")                  # 128+SIGINT: the ^C ended sleep
    pane.keys("exit 4", "Enter")
    text = pane.wait_for(r"^rc=\d+$")
    assert re.search(r"^rc=4$", text, re.M), text
    after = text.split("rc=4\n", 1)[1].split()[0]
    assert after == plain_stty()                    # raw mode undone
