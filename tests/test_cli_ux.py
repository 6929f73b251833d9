"""Issue 17: the commands behave like the tools users know.

Quiet by default (the program's stderr is the program's), one-line errors with
a shell's exit statuses, ``--join``/``--listen``/``xinim-ps`` finding each other,
and the caller's identity and place (PRoot-style).  Every test runs the real
console scripts in subprocesses.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from support.run import XINIM_RUN, native, run_env, xinim_run

from xinim_host.kernel import renumber

XINIM_PS = str(Path(XINIM_RUN).with_name("xinim-ps"))
XINIM_BOOT = str(Path(XINIM_RUN).with_name("xinim-boot"))


def assert_one_line_error(res: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """What a user's mistake gives: at most two lines on stderr, no traceback,
    the program never started, the exit status a shell/getopt tool gives."""
    assert res.returncode == code, (res.returncode, res.stderr)
    lines = res.stderr.splitlines()
    assert 1 <= len(lines) <= 2, res.stderr
    assert "Traceback" not in res.stderr
    # ours, and at most one line a C library printed itself (libfuse's "fuse: ...")
    assert any(line.startswith("xinim-") for line in lines), res.stderr
    ours = next(line for line in lines if line.startswith("xinim-"))
    for word in words:
        assert word in ours, res.stderr


# --- quiet by default --------------------------------------------------------------------

COMPOUND = ('ls -l / >/dev/null; python3 -c "import subprocess; subprocess.run([\\"true\\"])"; '
            'cp /etc/hostname /tmp/h; tar cf /tmp/t.tar /tmp/h')


def test_compound_command_stderr_is_the_programs_own(tmp_path: Path) -> None:
    here = native("/bin/sh", "-c", COMPOUND.replace("/tmp/", f"{tmp_path}/"))
    there = xinim_run("/bin/sh", "-c", COMPOUND)
    assert here.returncode == there.returncode == 0, there.stderr
    # tar's own remark about the leading / names the path: that is the only difference
    assert there.stderr == here.stderr.replace(f"{tmp_path}/", "/tmp/")


def _enosys_call() -> tuple[int, str]:
    """A Linux call the table answers ENOSYS for (taken from the table itself)."""
    for nr in range(0, 450):
        try:
            route = renumber.route(nr)
        except (KeyError, ValueError):
            continue
        if route.action is renumber.Action.ENOSYS and route.linux_name:
            return nr, route.linux_name
    pytest.skip("every Linux call is supported")


def _call_it(nr: int) -> list[str]:
    return ["/usr/bin/python3", "-c",
            f"import ctypes; ctypes.CDLL(None).syscall({nr}); print('done')"]


def test_unsupported_calls_go_to_the_log_not_to_stderr(tmp_path: Path) -> None:
    nr, name = _enosys_call()
    log = tmp_path / "xinim.log"
    res = xinim_run("--log", str(log), *_call_it(nr))
    assert res.returncode == 0 and res.stdout == "done\n"
    assert res.stderr == ""
    text = log.read_text()
    summary = [line for line in text.splitlines() if "unsupported syscalls" in line]
    assert len(summary) == 1 and name in summary[0], text
    # XINIM_LOG does the same
    env_log = tmp_path / "env.log"
    res = xinim_run(*_call_it(nr), env=run_env(XINIM_LOG=str(env_log)))
    assert res.stderr == "" and name in env_log.read_text()


def test_verbose_shows_the_unsupported_calls_once(tmp_path: Path) -> None:
    nr, name = _enosys_call()
    res = xinim_run("-v", "/bin/sh", "-c", " ; ".join([" ".join(_call_it(nr)[:2])
                                                       + f' "{_call_it(nr)[2]}"'] * 2))
    assert res.returncode == 0 and res.stdout == "done\ndone\n"
    summary = [line for line in res.stderr.splitlines() if "unsupported syscalls" in line]
    assert len(summary) == 1 and name in summary[0], res.stderr


# --- one-line errors ---------------------------------------------------------------------

def test_mountpoint_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    assert_one_line_error(xinim_run("--mount", str(tmp_path / "x"), "/bin/true"), 2,
                          "mountpoint is a file")


def test_mountpoint_not_empty(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("")
    assert_one_line_error(xinim_run("--mount", str(tmp_path / "d"), "/bin/true"), 2,
                          "not empty")


def test_mountpoint_is_a_live_mount(tmp_path: Path) -> None:
    where = tmp_path / "mnt"
    where.mkdir()
    keep = subprocess.Popen([XINIM_RUN, "--mount", str(where), "--keep", "/bin/true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=run_env(), cwd="/")
    try:
        assert keep.stderr is not None
        line = keep.stderr.readline()           # "... kept up ..." once mounted
        assert "kept up" in line, line
        assert_one_line_error(xinim_run("--mount", str(where), "/bin/true"), 2,
                              "live mount")
    finally:
        keep.send_signal(signal.SIGINT)
        keep.communicate(timeout=30)


@pytest.mark.parametrize("option", ["--mount", "--image"])
def test_missing_parents_are_not_made(tmp_path: Path, option: str) -> None:
    target = tmp_path / "no" / "such" / "thing"
    assert_one_line_error(xinim_run(option, str(target), "/bin/true"), 2,
                          "does not exist", "create it first")
    assert not (tmp_path / "no").exists()


def test_bad_image(tmp_path: Path) -> None:
    image = tmp_path / "img"
    image.write_bytes(b"this is no image" * 100)
    assert_one_line_error(xinim_run("--image", str(image), "/bin/true"), 1, str(image))


def test_image_that_is_a_directory(tmp_path: Path) -> None:
    assert_one_line_error(xinim_run("--image", str(tmp_path), "/bin/true"), 2,
                          "is a directory")


def _unshare_ok() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None and \
        shutil.which("setpriv") is not None


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A scratch directory other users can reach (pytest's tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="xinim-ux-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not _unshare_ok(), reason="needs root, unshare and setpriv")
def test_no_access_to_dev_fuse(open_dir: Path) -> None:
    """A user without /dev/fuse (here: an inaccessible file bound over it in a
    mount namespace of the test's own)."""
    blocker = open_dir / "nofuse"
    blocker.write_text("")
    blocker.chmod(0)
    mnt = open_dir / "mnt"
    mnt.mkdir(mode=0o777)
    script = (f"mount --bind {blocker} /dev/fuse && exec setpriv --reuid=nobody --regid=nogroup "
              f"--clear-groups {XINIM_RUN} --mount {mnt} /bin/true")
    res = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=60, env=run_env(), cwd="/")
    assert_one_line_error(res, 1, "/dev/fuse")


def test_unreachable_parent_is_said_so(open_dir: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to become another user (setpriv)")
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    res = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                          XINIM_RUN, "--mount", str(private / "mnt"), "/bin/true"],
                         capture_output=True, text=True, timeout=60, env=run_env(), cwd="/")
    assert_one_line_error(res, 2, "Permission denied")


@pytest.mark.skipif(not _unshare_ok(), reason="needs root and unshare")
def test_fuse_mount_that_fails(tmp_path: Path) -> None:
    """/dev/fuse opens but is no FUSE device: the mount itself fails (libfuse's
    ``fuse_session_mount failed``), still as one line."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = f"mount --bind /dev/null /dev/fuse && exec {XINIM_RUN} --mount {mnt} /bin/true"
    res = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=60, env=run_env(), cwd="/")
    assert_one_line_error(res, 1, str(mnt))


def test_directory_as_program() -> None:
    assert_one_line_error(xinim_run("/usr"), 126, "Is a directory")


def test_missing_program() -> None:
    assert_one_line_error(xinim_run("/no/such/program"), 127, "No such file")
    assert_one_line_error(xinim_run("no-such-program-xinim"), 127, "command not found")


def test_program_not_executable(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a program\n")
    (tmp_path / "data").chmod(0o644)
    assert_one_line_error(xinim_run("--bind", f"{tmp_path}:/t", "/t/data"), 126,
                          "Permission denied")


def test_bind_over_root(tmp_path: Path) -> None:
    assert_one_line_error(xinim_run("--bind", f"{tmp_path}:/", "/bin/true"), 2, "ramfs")


@pytest.mark.parametrize("argv", [["--no-such-option", "/bin/true"], [], ["-o", "ro", "/bin/true"],
                                  ["--socket", "/tmp/s", "/bin/true"],
                                  ["--join", "--listen", "/bin/true"]])
def test_usage_errors(argv: list[str]) -> None:
    assert_one_line_error(xinim_run(*argv), 2)


def test_options_end_at_the_program() -> None:
    """What follows PROGRAM is the program's, even when it looks like ours."""
    res = xinim_run("/bin/echo", "-v", "--join", "-0")
    assert res.returncode == 0 and res.stdout == "-v --join -0\n", res.stderr


# --- --join, --listen, xinim-ps ----------------------------------------------------------

@pytest.fixture
def listening(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A ``xinim-run --listen`` system with its default socket in a runtime dir of
    the test's own (``XDG_RUNTIME_DIR``)."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = run_env(XDG_RUNTIME_DIR=str(runtime))
    proc = subprocess.Popen([XINIM_RUN, "--listen", "/bin/sleep", "120"], env=env, cwd="/",
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "node socket" in line, line
        sock = line.split("node socket", 1)[1].strip()
        assert sock == str(runtime / "xinim" / "node.sock")
        yield sock, env
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert not os.path.exists(sock)


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd="/",
                          input="")


def test_join_forms_reach_a_listening_xinim_run(listening: tuple[str, dict[str, str]]) -> None:
    sock, env = listening
    first = _run([XINIM_RUN, "--join", "/bin/sh", "-c", "echo kept > /joined; echo ok"], env)
    assert first.returncode == 0 and first.stdout == "ok\n", first.stderr
    for argv in (["--join", "--socket", sock], [f"--join={sock}"]):
        res = _run([XINIM_RUN, *argv, "/bin/cat", "/joined"], {**env, "XDG_RUNTIME_DIR": "/"})
        assert res.returncode == 0 and res.stdout == "kept\n", (argv, res.stderr)
    # a joined program starts in our cwd too, found through the system's mount table
    here = subprocess.run([XINIM_RUN, "--join", "/bin/pwd"], capture_output=True, text=True,
                          timeout=60, env=env, cwd="/usr/share", input="")
    assert here.stdout == "/usr/share\n", here.stderr
    absent = _run([XINIM_RUN, "--join", "/bin/true"], run_env(XDG_RUNTIME_DIR=str(
        Path(sock).parent.parent.parent)))
    assert_one_line_error(absent, 1, "cannot join")


def test_xinim_ps_finds_every_running_system(listening: tuple[str, dict[str, str]],
                                             tmp_path: Path) -> None:
    sock, env = listening
    one = _run([XINIM_PS], env)
    assert one.returncode == 0, one.stderr
    assert "sleep" in one.stdout and "==" not in one.stdout
    second = subprocess.Popen([XINIM_RUN, "--listen", "/bin/sleep", "121"], env=env, cwd="/",
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert second.stderr is not None
        other = second.stderr.readline().split("node socket", 1)[1].strip()
        assert other != sock and Path(other).parent == Path(sock).parent
        both = _run([XINIM_PS], env)
        assert both.returncode == 0, both.stderr
        assert f"== {sock} ==" in both.stdout and f"== {other} ==" in both.stdout
        first, rest = both.stdout.split(f"== {other} ==")
        assert " sleep" in first and " sleep" in rest
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_killed_join_client_leaves_no_processes(listening: tuple[str, dict[str, str]],
                                                  sig: signal.Signals) -> None:
    sock, env = listening

    def sleepers() -> int:
        table = _run([XINIM_PS], env)
        assert table.returncode == 0, table.stderr
        return sum(row.split()[-1] == "sleep" for row in table.stdout.splitlines()[1:])

    client = subprocess.Popen([XINIM_RUN, "--join", "/bin/sleep", "300"], env=env, cwd="/",
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while sleepers() < 2:                       # the listener's and the client's
            assert time.monotonic() < deadline and client.poll() is None
            time.sleep(0.1)
        client.send_signal(sig)
        assert client.wait(timeout=30) == 128 + sig
        deadline = time.monotonic() + 30
        while sleepers() != 1:                      # the client's went with it
            assert time.monotonic() < deadline, "the killed client's process stayed"
            time.sleep(0.1)
    finally:
        if client.poll() is None:
            client.kill()
        _, err = client.communicate(timeout=30)
    assert "Traceback" not in err


# --- identity and place ------------------------------------------------------------------

def _as_nobody(*argv: str, cwd: str = "/") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           XINIM_RUN, *argv], capture_output=True, text=True, timeout=60,
                          env=run_env(), cwd=cwd, input="")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root to become another user (setpriv)")
def test_a_non_root_user_runs_as_itself() -> None:
    want = native("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                  "/usr/bin/id")
    res = _as_nobody("/usr/bin/id")
    assert res.returncode == 0, res.stderr
    assert res.stdout == want.stdout and want.stdout.startswith(f"uid={65534}")
    fake = _as_nobody("-0", "/bin/sh", "-c", "id -u; touch /made-as-root && echo made")
    assert fake.returncode == 0 and fake.stdout == "0\nmade\n", fake.stderr
    denied = _as_nobody("/bin/sh", "-c", "touch /x 2>/dev/null || echo denied; "
                        "touch /tmp/y && stat -c %u /tmp/y")
    assert denied.stdout == "denied\n65534\n", denied.stderr


def test_starts_in_the_host_cwd_when_xinim_sees_it(tmp_path: Path) -> None:
    assert xinim_run("/bin/pwd", cwd="/usr/share").stdout == "/usr/share\n"
    # through a bind: the host's tmp_path/sub is XINIM's /t/sub
    (tmp_path / "sub").mkdir()
    res = xinim_run("--bind", f"{tmp_path}:/t", "/bin/sh", "-c", 'pwd; echo "$PWD"',
                    cwd=str(tmp_path / "sub"))
    assert res.stdout == "/t/sub\n/t/sub\n", res.stderr
    # not visible inside XINIM: /
    assert xinim_run("/bin/pwd", cwd=str(tmp_path)).stdout == "/\n"


def test_cwd_option_and_relative_program(tmp_path: Path) -> None:
    assert xinim_run("-w", "/usr/bin", "./true", cwd=str(tmp_path)).returncode == 0
    assert xinim_run("-w", "/etc", "/bin/pwd").stdout == "/etc\n"
    assert_one_line_error(xinim_run("-w", "/no/such/dir", "/bin/pwd"), 2, "-w")


def test_nproc_is_the_hosts() -> None:
    here, there = native("nproc"), xinim_run("/usr/bin/nproc")
    assert there.returncode == 0, there.stderr
    assert there.stdout == here.stdout
    script = "import os; print(sorted(os.sched_getaffinity(0)))"
    assert xinim_run("/usr/bin/python3", "-c", script).stdout == \
        native(sys.executable, "-c", script).stdout


def test_hostname_is_the_hosts_unless_given() -> None:
    assert xinim_run("/bin/hostname").stdout == native("hostname").stdout
    assert xinim_run("--hostname", "box", "/usr/bin/python3", "-c",
                     "import os; print(os.uname().nodename)").stdout == "box\n"


# --- FUSE options and --keep -------------------------------------------------------------

def _keep(mnt: Path, *options: str) -> subprocess.Popen[str]:
    """``xinim-run --mount MNT OPTIONS --keep``, once it says the system is kept up."""
    proc = subprocess.Popen([XINIM_RUN, "--mount", str(mnt), *options, "--keep", "/bin/sh",
                             "-c", "echo hi > /hello; mkdir /d"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=run_env(), cwd="/")
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "kept up" in line, line + proc.stderr.read()
    return proc


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=30)[1]


def _nobody(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "/bin/sh", "-c", command], capture_output=True, text=True,
                          timeout=30, cwd="/")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root to become another user (setpriv)")
def test_allow_other_only_when_asked(open_dir: Path) -> None:
    mnt = open_dir / "mnt"
    mnt.mkdir()
    proc = _keep(mnt)
    try:
        denied = _nobody(f"cat {mnt}/hello")
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
    finally:
        _stop(proc)
    proc = _keep(mnt, "-o", "allow_other")
    try:
        allowed = _nobody(f"cat {mnt}/hello")
        assert allowed.returncode == 0 and allowed.stdout == "hi\n", allowed.stderr
    finally:
        _stop(proc)


def test_read_only_export_and_shown_owner(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = _keep(mnt, "-o", "ro,uid=4321", "-o", "gid=8765")
    try:
        assert (mnt / "hello").read_text() == "hi\n"
        with pytest.raises(OSError) as failed:
            (mnt / "new").write_text("x")
        assert failed.value.errno == errno.EROFS
        st = os.stat(mnt / "d")
        assert (st.st_uid, st.st_gid) == (4321, 8765)
        assert any(m.split()[3] == "ro" or m.split()[3].startswith("ro,")
                   for m in Path("/proc/self/mounts").read_text().splitlines()
                   if m.split()[1] == str(mnt))
    finally:
        _stop(proc)


def test_keep_ends_when_unmounted_from_outside(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = _keep(mnt)
    try:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=True, timeout=30)
        assert proc.wait(timeout=30) == 0
    finally:
        err = _stop(proc)
    assert "unmounted" in err and "Traceback" not in err


def test_xinim_boot_mistakes_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    for argv, code, word in (([ "--mount", str(tmp_path / "x")], 2, "mountpoint is a file"),
                             (["--image", str(tmp_path / "no" / "img")], 2, "create it first"),
                             (["--no-such-option"], 2, "unrecognized")):
        res = subprocess.run([XINIM_BOOT, "--serial", "pty", "--socket",
                              str(tmp_path / "node.sock"), *argv, "--init", "/bin/true"],
                             capture_output=True, text=True, timeout=60, env=run_env(),
                             stdin=subprocess.DEVNULL)
        assert_one_line_error(res, code, word)


@pytest.mark.parametrize("argv", [["/bin/ls", "-l", "/"], ["/usr/bin/id"], ["/usr/bin/whoami"],
                                  ["/bin/bash", "-c", "true"], ["/bin/ps", "-e"],
                                  ["/usr/bin/env", "true"]])
def test_stderr_is_byte_identical_to_native(argv: list[str]) -> None:
    """What these programs say on stderr natively (nothing) is all they say under
    xinim-run: XINIM adds nothing of its own."""
    here, there = native(*argv), xinim_run(*argv)
    assert there.returncode == here.returncode, there.stderr
    assert there.stderr == here.stderr
