"""Issue 17: the README is true.  Every command line of README.md's ``sh`` blocks
is run here, as written (from the repository's root, after its own ``export
PATH``), and does what its comment says.  Only places are swapped: scratch
directories for /tmp and /srv paths, and this test's own system's socket for the
default one.  A README example without a check here fails the test, and so does
a check whose example left the README."""
from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
import tty
from pathlib import Path
from typing import Callable

import pytest

from support.run import XINIM_RUN, native, run_env

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TIMEOUT = 120


def readme_commands() -> list[str]:
    """The command of every line of the README's ``sh`` blocks (comments cut)."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.S | re.M):
        for line in block.splitlines():
            command = re.split(r"\s{2,}#\s|^#\s", line.strip(), maxsplit=1)[0].rstrip()
            if command:
                commands.append(command)
    return commands


class Scene:
    """Where the examples run: a scratch place for each path they name, and the
    environment after the README's ``export PATH``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        runtime = tmp / "run"
        runtime.mkdir(mode=0o700)
        data = tmp / "data"
        data.mkdir()
        (data / "from-the-host").write_text("x\n")
        self.socket = str(runtime / "xinim" / "node.sock")     # the default, below
        self.places = {"/tmp/xinim.log": tmp / "xinim.log", "/tmp/state.img": tmp / "state.img",
                       "/tmp/console.log": tmp / "console.log", "/tmp/xin": tmp / "xin",
                       "/srv/data": data, "/run/xinim/node.sock": Path(self.socket),
                       "/tmp/t": tmp / "t"}
        bin_dir = str(Path(XINIM_RUN).parent)
        self.env = run_env(XDG_RUNTIME_DIR=str(runtime),
                           PATH=f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")

    def place(self, name: str) -> Path:
        return self.places[name]

    def command(self, command: str) -> str:
        for name in sorted(self.places, key=len, reverse=True):   # /tmp/xinim.log first
            command = re.sub(re.escape(name) + r"(?![\w.])", str(self.places[name]), command)
        return command

    def run(self, command: str, input: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", self.command(command)], cwd=ROOT, env=self.env,
                              input=input, capture_output=True, text=True, timeout=TIMEOUT)

    def start(self, command: str, **kwargs: object) -> subprocess.Popen[str]:
        """``command`` in the background, in a session of its own (``finish`` ends it)."""
        return subprocess.Popen(["bash", "-c", self.command(command)], cwd=ROOT, env=self.env,
                                text=True, start_new_session=True,
                                **kwargs)  # type: ignore[call-overload]


def finish(proc: subprocess.Popen[str]) -> None:
    """Whatever is left of a started example: killed (its whole session), reaped."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, (res.args, res.returncode, res.stderr[-3000:])
    return res.stdout


# --- the checks, one per group of README lines ---------------------------------------------

def check_setup(scene: Scene, lines: list[str]) -> None:
    run, test, export = lines
    listing = ok(scene.run(run)).split()
    assert {"bin", "dev", "tmp", "usr"} <= set(listing) and "work" not in listing
    # the whole suite would run this test again: the script is run, on one file
    assert "test_layers.py" in ok(scene.run(f"{test} --collect-only -q tests/test_layers.py"))
    found = ok(scene.run(f"{export}; command -v xinim-run")).strip()
    assert found == str(ROOT / ".venv" / "bin" / "xinim-run")


def check_programs(scene: Scene, lines: list[str]) -> None:
    ls, pwd, id_un, id_0, trace, log = lines
    assert ok(scene.run(ls)) == native("/bin/ls", "-la", "/usr/bin").stdout
    assert ok(scene.run(pwd)) == "/usr/share\n"
    assert ok(scene.run(id_un)) == native("id", "-un").stdout
    assert ok(scene.run(id_0)) == "0\n"
    traced = scene.run(trace)
    assert ok(traced) == Path("/etc/hostname").read_text()
    assert "openat" in traced.stderr
    logged = scene.run(log)
    assert ok(logged) == "" and logged.stderr == ""
    assert "init: started on PID 1" in scene.place("/tmp/xinim.log").read_text()


def check_shell(scene: Scene, lines: list[str]) -> None:
    shell, = lines
    res = scene.run(shell, input="echo hello from $0; exit 3\n")
    assert (res.returncode, res.stdout) == (3, "hello from /bin/sh\n"), res.stderr


def check_mount(scene: Scene, lines: list[str]) -> None:
    keep, = lines
    where = scene.place("/tmp/xin")
    proc = scene.start(keep, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        assert "kept up" in proc.stderr.readline()
        assert (where / "tmp" / "hello").read_text() == "hi\n"   # on the host, through FUSE
        subprocess.run(["fusermount3", "-u", str(where)], check=True, timeout=30)
        assert proc.wait(timeout=30) == 0                        # ...until fusermount3 -u
    finally:
        finish(proc)
    assert os.listdir(where) == []


def check_image(scene: Scene, lines: list[str]) -> None:
    write, read = lines
    ok(scene.run(write))
    assert scene.place("/tmp/state.img").exists()
    assert ok(scene.run(read)) == "kept\n"


def check_bind(scene: Scene, lines: list[str]) -> None:
    bind, = lines
    assert ok(scene.run(bind)) == "from-the-host\n"


def _read_until(fd: int, seen: bytearray, pattern: bytes, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, bytes(seen)):
        left = deadline - time.monotonic()
        assert left > 0, f"no {pattern!r} on the console; got {bytes(seen)!r}"
        if select.select([fd], [], [], left)[0]:
            seen += os.read(fd, 4096)


def check_boot(scene: Scene, lines: list[str]) -> None:
    boot, = lines
    proc = scene.start(boot, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()        # not a terminal here: the console is a new pty
        match = re.fullmatch(r"serial0: (/dev/pts/\d+)\n", first)
        assert match, first
        fd = os.open(match.group(1), os.O_RDWR | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            seen = bytearray()
            _read_until(fd, seen, rb"[#$] $")
            assert b"] VFS: started on PID 2" in seen       # a kernel log, with times
            with open("/proc/mounts") as mounts:
                assert any(m.split()[1] == str(scene.place("/tmp/xin")) for m in mounts)
            os.write(fd, b"exit 7\r")
            assert proc.wait(timeout=30) == 7                 # the system ends with it
        finally:
            os.close(fd)
    finally:
        finish(proc)
    copy = scene.place("/tmp/console.log").read_bytes()
    assert b"] init: started on PID 1" in copy and b"exit 7" in copy


def check_join(scene: Scene, lines: list[str]) -> None:
    listen, join, join_named, join_env, ps = lines
    proc = scene.start(listen, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None and proc.stdin is not None
        line = proc.stderr.readline()
        assert line.split("node socket", 1)[-1].strip() == scene.socket, line
        ok(scene.run("xinim-run --join /bin/sh -c 'echo > /made-by-a-join'"))
        listings = [ok(scene.run(command)) for command in (join, join_named, join_env)]
        assert listings[0] == listings[1] == listings[2]
        assert {"made-by-a-join", "bin", "tmp"} <= set(listings[0].split())   # one ramfs
        table = ok(scene.run(ps)).splitlines()
        assert table[0].split()[0] == "PID" and any(row.split()[-1] == "sh" for row in table)
        proc.stdin.write("exit 0\n")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        finish(proc)


def check_trace(scene: Scene, lines: list[str]) -> None:
    only, failed, per_process, summary, stamps = lines
    out = scene.place("/tmp/t")
    assert ok(scene.run(only)) == Path("/etc/hostname").read_text()
    written = out.read_text().splitlines()
    assert written[-1] == "+++ exited with 0 +++" and len(written) > 1
    assert all(line.startswith("openat(") for line in written[:-1]), written
    res = scene.run(failed)
    assert res.returncode == 2 and "No such file or directory" in res.stderr
    calls = [line for line in res.stderr.splitlines() if "(" in line and " = " in line]
    assert calls and all(" = -1 E" in line for line in calls), calls
    assert any('"/nope"' in line for line in calls)
    xinim_root = ok(scene.run("xinim-run /bin/ls /")).split()
    assert ok(scene.run(per_process)).strip() == str(len(xinim_root))
    files = sorted(out.parent.glob("t.*"))
    assert len(files) >= 3                                  # sh, ls and wc
    assert all(f.read_text().splitlines()[-1].startswith("+++ ") for f in files)
    res = scene.run(summary)
    assert ok(res) == native("/bin/ls", "/usr/bin").stdout
    assert "usecs/call" in res.stderr and "getdents64" in res.stderr and " VFS" in res.stderr
    res = scene.run(stamps)
    stamped = [line for line in res.stderr.splitlines() if "(" in line]
    assert stamped and all(re.match(r"\d\d:\d\d:\d\d\.\d{6} \w+\(.*> *<XINIM", line)
                           or re.match(r"\d\d:\d\d:\d\d\.\d{6} (execve|\+\+\+)", line)
                           for line in stamped), stamped[:5]


GROUPS: dict[str, tuple[Callable[[Scene, list[str]], None], tuple[str, ...]]] = {
    "setup": (check_setup, ("./scripts/run /bin/ls /", "./scripts/test",
                            'export PATH="$PWD/.venv/bin:$PATH"')),
    "programs": (check_programs, (
        "xinim-run /bin/ls -la /usr/bin", "cd /usr/share && xinim-run /bin/pwd",
        "xinim-run /usr/bin/id -un", "xinim-run -0 /usr/bin/id -u",
        "xinim-run --trace /bin/cat /etc/hostname", "xinim-run --log /tmp/xinim.log /bin/true")),
    "trace": (check_trace, (
        "xinim-run -e trace=openat -o /tmp/t /bin/cat /etc/hostname",
        "xinim-run -e trace=%file -e status=failed /bin/ls /nope",
        "xinim-run -ff -o /tmp/t /bin/sh -c 'ls / | wc -l'",
        "xinim-run -c /bin/ls /usr/bin",
        "xinim-run --trace -tt -T -s 64 /bin/true")),
    "shell": (check_shell, ("xinim-run /bin/sh",)),
    "mount": (check_mount, ("mkdir -p /tmp/xin && xinim-run --mount /tmp/xin --keep /bin/sh -c "
                            "'echo hi > /tmp/hello'",)),
    "image": (check_image, ("xinim-run --image /tmp/state.img /bin/sh -c 'echo kept > /tmp/note'",
                            "xinim-run --image /tmp/state.img /bin/cat /tmp/note")),
    "bind": (check_bind, ("xinim-run --bind /srv/data:/data:rw /bin/ls /data",)),
    "boot": (check_boot, ("xinim-boot --mount /tmp/xin --console-log /tmp/console.log "
                          "--init /bin/sh",)),
    "join": (check_join, ("xinim-run --listen /bin/sh", "xinim-run --join /bin/ls /",
                          "xinim-run --join=/run/xinim/node.sock /bin/ls /",
                          "XINIM_SOCKET=/run/xinim/node.sock xinim-run /bin/ls /",
                          "xinim-ps")),
}


def test_every_readme_example_has_a_check() -> None:
    in_readme = readme_commands()
    checked = [c for _, commands in GROUPS.values() for c in commands]
    assert len(in_readme) == len(set(in_readme))
    assert sorted(in_readme) == sorted(checked), (
        f"README only: {sorted(set(in_readme) - set(checked))}; "
        f"checks only: {sorted(set(checked) - set(in_readme))}")


@pytest.mark.parametrize("group", list(GROUPS))
def test_readme_examples(group: str, tmp_path: Path) -> None:
    check, commands = GROUPS[group]
    in_readme = readme_commands()
    assert all(c in in_readme for c in commands)
    check(Scene(tmp_path), list(commands))
