"""xinim-run joining a running system over its node socket (another node)."""
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
from xinim_host.system.boot import booted, BootConfig
from xinim_host.uart.terminal import FdConsole
async def main():
    async with booted(BootConfig(socket_path=sys.argv[1], quiet=True, console=FdConsole(1, 0))):
        print("up", flush=True)
        await trio.sleep_forever()
trio.run(main)
"""


@pytest.fixture
def running_system(tmp_path: Path):
    sock = str(tmp_path / "node.sock")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, sock], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert time.monotonic() < deadline, "node socket never appeared"
            time.sleep(0.05)
        yield sock, proc
    finally:
        proc.send_signal(signal.SIGINT)   # trio turns it into a cancel: a clean shutdown
        proc.wait(timeout=20)
    assert not os.path.exists(sock), "the node socket outlived its system"


def join(sock: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XINIM_SOCKET": sock}
    return subprocess.run([XINIM_RUN, *argv], env=env, capture_output=True, text=True,
                          timeout=60)


def test_joined_runs_share_the_system_and_use_their_own_terminal(running_system) -> None:
    sock, server = running_system
    first = join(sock, "/bin/sh", "-c", "echo kept > /joined.txt; echo pid $$; cat /nope")
    assert first.returncode == 1
    pid = int(first.stdout.split()[1])
    assert pid >= 5                                     # a XINIM pid from the shared PM
    assert "/nope: No such file or directory" in first.stderr   # our stderr, not the server's
    second = join(sock, "/bin/cat", "/joined.txt")
    assert (second.returncode, second.stdout) == (0, "kept\n")  # the same ramfs
    third = join(sock, "/bin/sh", "-c", "echo $$")
    assert int(third.stdout) > pid                      # PM numbers processes system-wide
    assert server.poll() is None                        # the system survives its clients


def test_joining_nothing_fails_clearly(tmp_path: Path) -> None:
    result = join(str(tmp_path / "absent.sock"), "/bin/true")
    assert result.returncode == 1
    assert result.stderr.startswith("xinim-run: cannot join ")
    assert "absent.sock" in result.stderr and "Traceback" not in result.stderr


def test_signals_reach_processes_of_a_joined_node(running_system) -> None:
    sock, _ = running_system
    # 143 = 128+SIGTERM: the kill ended the sleep (had it run out, wait would say 0;
    # it is long enough that join()'s timeout would stop the test first)
    result = join(sock, "/bin/sh", "-c",
                  'sleep 100 & kill $!; wait $!; echo $?; trap "echo caught" USR1; kill -USR1 $$')
    assert result.stdout.split() == ["143", "caught"]


JOINED_SOCKETS = r"""
import os, socket
a, b = socket.socketpair()
a.sendall(b"x" * 10000); print(len(b.recv(20000)))
s = socket.socket(socket.AF_UNIX); s.bind("\0joined-net"); s.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect("\0joined-net"); d, _ = s.accept()
c.send(b"over the link"); print(d.recv(100))
t = socket.socket(); t.bind(("127.0.0.1", 0)); t.listen(1)
u = socket.create_connection(t.getsockname()); v, _ = t.accept()
u.sendall(b"y" * 70000); got = 0
while got < 70000: got += len(v.recv(100000))
print(got)
"""


def test_joined_node_uses_the_systems_net(running_system) -> None:
    """A joined kernel reaches NET over the link: no grants there, the data travels
    in sealed 4 KiB messages (a datagram in parts); the same NET as everyone's."""
    sock, server = running_system
    res = join(sock, "/usr/bin/python3", "-c", JOINED_SOCKETS)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "10000\nb'over the link'\n70000\n"
