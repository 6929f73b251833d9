"""xinim-boot, driven as a user would: a shell on the serial console's pty."""
from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.hostproc import wait_for_host_process

PROMPT = re.compile(rb"[#$] $")


class Boot:
    """A running ``xinim-boot --serial pty``, and a terminal on its serial line."""

    def __init__(self, tmp: Path, *args: str, init: list[str] | None = None) -> None:
        self.socket = str(tmp / "node.sock")
        cmd = [sys.executable, "-m", "xinim_host.cli.boot", "--serial", "pty",
               "--socket", self.socket, *args]
        if init is not None:
            cmd += ["--init", *init]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        first = self.proc.stdout.readline().decode()       # type: ignore[union-attr]
        match = re.fullmatch(r"serial0: (/dev/pts/\d+)\n", first)
        assert match, (first, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.pty = match.group(1)
        self.fd = os.open(self.pty, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.seen = bytearray()

    def type(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_until(self, pattern: bytes | re.Pattern[bytes], timeout: float = 10.0) -> bytes:
        """Output up to the end of the first match (consumed)."""
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            match = rx.search(self.seen)
            if match:
                out = bytes(self.seen[:match.end()])
                del self.seen[:match.end()]
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {rx.pattern!r} within {timeout}s; got "
                                     f"{bytes(self.seen)!r}{self._stderr_if_dead()}")
            if select.select([self.fd], [], [], left)[0]:
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:            # the line went away (the system ended)
                    raise AssertionError(f"line closed; got {bytes(self.seen)!r}") from None

    def _stderr_if_dead(self) -> str:
        if self.proc.poll() is None:
            return ""
        err = self.proc.stderr.read().decode(errors="replace")   # type: ignore[union-attr]
        return f"; xinim-boot exited {self.proc.returncode}: {err[-2000:]}"

    def ps(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "xinim_host.cli.ps", "--socket", self.socket,
                               *args], capture_output=True, text=True, timeout=30)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.fd)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()                 # type: ignore[union-attr]


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="xinim-boot-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def host_pids(boot: Boot) -> dict[int, int]:
    """XINIM pid -> host pid of the running processes (xinim-ps --host)."""
    out = boot.ps("--host")
    assert out.returncode == 0, out.stderr
    pids = {}
    for row in out.stdout.splitlines()[1:]:
        cols = row.split()
        if cols[4] != "-":
            pids[int(cols[0])] = int(cols[4])
    return pids


def alive(host_pid: int) -> bool:
    try:
        with open(f"/proc/{host_pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def mounted(path: Path) -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


def test_shell_on_the_serial_console(tmp: Path) -> None:
    mnt = tmp / "mnt"
    boot = Boot(tmp, "--mount", str(mnt), init=["/bin/sh"])
    try:
        log = boot.read_until(PROMPT)
        assert b"] kernel: XINIM hosted kernel" in log and b"] init: started on PID 1" in log
        assert b"\r\n" in log                                  # a terminal's line ends
        assert mounted(mnt)

        boot.type(b"echo $((6*7))\r")
        out = boot.read_until(PROMPT)
        assert re.search(rb"\r\n42\r\n", out), out

        boot.type(b"test -t 0 && test -t 1 && stty size\r")
        assert re.search(rb"\r\n24 80\r\n", boot.read_until(PROMPT))

        boot.type(b"sleep 100\r")
        boot.read_until(b"sleep 100\r\n")
        wait_for_host_process(b"sleep\x00100\x00")           # sleep runs now
        pids = host_pids(boot)
        assert len(pids) >= 2                                 # the shell and sleep
        boot.type(b"\x03")
        out = boot.read_until(PROMPT, timeout=30)
        assert out.startswith(b"^C")

        boot.type(b"echo back $?\r")                        # 128+SIGINT: the ^C ended sleep
        assert b"back 130\r\n" in boot.read_until(PROMPT)
        boot.type(b"\x04")                                    # ^D: the shell ends...
        boot.read_until(b"/bin/sh exited 0; shutting down\r\n")
        assert boot.wait() == 0                               # ...and so does the system
        assert not mounted(mnt)
        assert not os.path.exists(boot.socket)
        assert not [pid for pid in pids.values() if alive(pid)]
    finally:
        boot.close()


def test_init_program_status_is_the_exit_status(tmp: Path) -> None:
    boot = Boot(tmp, init=["/bin/sh", "-c", "echo from init; exit 3"])
    try:
        out = boot.read_until(b"exited 3")
        assert boot.wait() == 3
        assert b"from init\r\n" in out, out
        # the program's last words come before the kernel's
        assert out.index(b"from init") < out.index(b"exited 3")
    finally:
        boot.close()


def test_missing_init_program(tmp: Path) -> None:
    boot = Boot(tmp, init=["no-such-program"])
    try:
        assert b"command not found" in boot.read_until(b"exited 127")
        assert boot.wait() == 127
    finally:
        boot.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_system_cleanly(tmp: Path, sig: signal.Signals) -> None:
    mnt = tmp / "mnt"
    boot = Boot(tmp, "--mount", str(mnt), init=["/bin/sh"])
    try:
        boot.read_until(PROMPT)
        pids = host_pids(boot)
        assert pids and all(alive(pid) for pid in pids.values())
        boot.proc.send_signal(sig)
        assert boot.wait() == 0
        assert not mounted(mnt)
        assert not os.path.exists(boot.socket)
        assert not [pid for pid in pids.values() if alive(pid)]
    finally:
        boot.close()


def test_without_init_the_system_idles_until_sigterm(tmp: Path) -> None:
    boot = Boot(tmp)
    try:
        assert b"no program on the console" in boot.read_until(b"(xinim-boot --init PROGRAM)")
        time.sleep(0.3)
        assert boot.proc.poll() is None
        out = boot.ps()
        assert out.returncode == 0 and re.search(r"^\s+1\s+0\s+1\s+1\s.*init$", out.stdout, re.M)
        boot.proc.terminate()
        assert boot.wait() == 0
    finally:
        boot.close()


def test_window_size_of_the_serial_line_reaches_programs(tmp: Path) -> None:
    boot = Boot(tmp, init=["/bin/sh"])
    try:
        boot.read_until(PROMPT)
        subprocess.run(["stty", "-F", boot.pty, "rows", "30", "cols", "100"], check=True)
        time.sleep(0.6)                                       # the line is polled
        boot.type(b"stty size\r")
        assert re.search(rb"\r\n30 100\r\n", boot.read_until(PROMPT))
        boot.type(b"exit 5\r")
        assert boot.wait() == 5
    finally:
        boot.close()


def test_ctrl_c_reaches_a_program_without_job_control(tmp: Path) -> None:
    """No shell took the terminal: the foreground is init's group, whose members
    (not every process) get SIGINT."""
    boot = Boot(tmp, init=["/bin/sh", "-c", "echo ready; sleep 100; echo not reached"])
    try:
        boot.read_until(b"ready\r\n")
        time.sleep(0.3)
        boot.type(b"\x03")
        out = boot.read_until(b"exited 130", timeout=5)
        assert b"not reached" not in out
        assert boot.wait() == 130
    finally:
        boot.close()
