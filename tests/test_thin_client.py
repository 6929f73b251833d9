"""xinim-run's thin client (cli/thin.py): a joined run that the booted system
carries out for it (SPAWN/EXIT on the node socket), and the way back to a full
join whenever the thin way does not apply."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

XINIM_RUN = str(Path(sys.executable).with_name("xinim-run"))

SERVER = """
import sys, trio
from xinim_host.cli.launch import spawn_for_client
from xinim_host.system.boot import booted, BootConfig
from xinim_host.uart.terminal import FdConsole
async def main():
    spawn = spawn_for_client if sys.argv[2] == "spawn" else None
    async with booted(BootConfig(socket_path=sys.argv[1], quiet=True, console=FdConsole(1, 0),
                                 on_spawn=spawn)):
        print("up", flush=True)
        await trio.sleep_forever()
trio.run(main)
"""

# run_thin itself: prints THIN-REFUSED when it gave the run back to the full way
THIN = """
import sys
from xinim_host.cli.thin import run_thin
code = run_thin(sys.argv[1], sys.argv[2:])
if code is None:
    print("THIN-REFUSED", file=sys.stderr)
    code = 99
sys.exit(code)
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="thin clients: root of a root boot")


def _system(tmp_path: Path, mode: str):
    sock = str(tmp_path / "node.sock")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, sock, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        assert time.monotonic() < deadline, "node socket never appeared"
        time.sleep(0.05)
    return sock, proc


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)


@pytest.fixture
def spawning_system(tmp_path: Path):
    sock, proc = _system(tmp_path, "spawn")
    yield sock, proc
    _stop(proc)


def thin(sock: str, *argv: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", THIN, sock, *argv], capture_output=True,
                          text=True, timeout=60, **kw)


def test_the_system_runs_the_program_for_a_thin_client(spawning_system) -> None:
    sock, server = spawning_system
    first = thin(sock, "/bin/sh", "-c", "echo kept > /thin.txt; echo out; echo err >&2; exit 3")
    assert (first.returncode, first.stdout, first.stderr) == (3, "out\n", "err\n")
    second = thin(sock, "/bin/sh", "-c", "read line; echo got $line; cat /thin.txt",
                  input="typed\n")
    assert (second.returncode, second.stdout) == (0, "got typed\nkept\n")   # our stdin
    # xinim-run itself takes the thin way with --join or XINIM_SOCKET, and a full
    # join (any other option) sees the same system
    env = {**os.environ, "XINIM_SOCKET": sock}
    plain = subprocess.run([XINIM_RUN, "/bin/cat", "/thin.txt"], env=env, capture_output=True,
                           text=True, timeout=60)
    full = subprocess.run([XINIM_RUN, "-w", "/", "/bin/cat", "/thin.txt"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert (plain.returncode, plain.stdout) == (full.returncode, full.stdout) == (0, "kept\n")
    assert server.poll() is None


def test_a_program_that_cannot_start_says_why(spawning_system) -> None:
    sock, _ = spawning_system
    result = thin(sock, "/no/such/program")
    assert result.returncode == 127
    assert result.stderr.startswith("xinim-run: ") and "No such file" in result.stderr


def test_the_program_dies_with_its_client(spawning_system) -> None:
    sock, _ = spawning_system
    marker = "4242.5"                     # a sleep nobody else runs
    client = subprocess.Popen([sys.executable, "-c", THIN, sock, "/bin/sleep", marker],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not _host_sleeps(marker):
        assert client.poll() is None and time.monotonic() < deadline, "the program never ran"
        time.sleep(0.05)
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=20) == 128 + signal.SIGTERM
    while _host_sleeps(marker):          # the link closed: the system kills the program
        assert time.monotonic() < deadline + 20, "the program outlived its client"
        time.sleep(0.05)


def test_a_system_that_does_not_spawn_sends_the_client_the_full_way(tmp_path: Path) -> None:
    sock, proc = _system(tmp_path, "none")
    try:
        refused = thin(sock, "/bin/true")
        assert refused.returncode == 99 and "THIN-REFUSED" in refused.stderr
        env = {**os.environ, "XINIM_SOCKET": sock}
        full = subprocess.run([XINIM_RUN, "/bin/sh", "-c", "echo $$"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert full.returncode == 0 and int(full.stdout) >= 5     # joined the full way
    finally:
        _stop(proc)


def test_only_join_options_take_the_thin_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from xinim_host.cli.thin import thin_plan
    monkeypatch.delenv("XINIM_SOCKET", raising=False)
    assert thin_plan(["/bin/true"]) is None                          # not joining
    assert thin_plan(["--join=/s", "/bin/ls", "-l"]) == ("/s", ["/bin/ls", "-l"])
    assert thin_plan(["--join", "--socket", "/s", "ls"]) == ("/s", ["ls"])
    assert thin_plan(["--join", "--trace", "ls"]) is None            # another option
    assert thin_plan(["--join", "-w", "/", "ls"]) is None
    assert thin_plan(["--join"]) is None                             # no program
    monkeypatch.setenv("XINIM_SOCKET", "/e")
    assert thin_plan(["--", "-prog"]) == ("/e", ["-prog"])


def _host_sleeps(marker: str) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[:2] == [b"/bin/sleep", marker.encode()]:
                        return True
            except OSError:
                pass
    return False
