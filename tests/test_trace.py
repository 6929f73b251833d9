"""xinim-run's strace options: strace's format, filters, files, summary, signal and
exit lines -- checked against strace itself where both can run the program."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from support.run import native, xinim_run

XINIM_COLUMN = re.compile(r"  <XINIM [^>]*>$")
LINE = re.compile(r'^(?P<name>\w+)\((?P<args>.*)\) += (?P<result>-?\w+)(?: (?P<err>E\w+) \(.*\))?'
                  r"(?P<xinim>  <XINIM (?P<nr>\d+) (?P<xname>\w+) \u2192 (?P<server>\w+), "
                  r"\d+ \u00b5s>|  <XINIM: not in the table>)?$")


def parsed(text: str) -> list[re.Match[str]]:
    return [m for m in (LINE.match(line) for line in text.splitlines()) if m]


def test_o_and_e_write_only_the_chosen_calls_in_strace_format(tmp_path: Path) -> None:
    out = tmp_path / "trace"
    res = xinim_run("-o", str(out), "-e", "trace=openat", "/bin/cat", "/etc/hostname")
    assert (res.returncode, res.stdout) == (0, Path("/etc/hostname").read_text()), res.stderr
    assert "openat" not in res.stderr
    lines = out.read_text().splitlines()
    assert lines[-1] == "+++ exited with 0 +++"          # strace writes it whatever -e says
    calls = lines[:-1]
    assert calls and all(LINE.match(line) for line in calls), calls
    assert {LINE.match(line)["name"] for line in calls} == {"openat"}
    hostname = [line for line in calls if '"/etc/hostname"' in line]
    assert hostname and hostname[0].startswith('openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3')
    m = LINE.match(hostname[0])
    assert (m["nr"], m["xname"], m["server"]) == ("109", "openat", "VFS")


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_file_class_matches_strace_on_the_same_program() -> None:
    """strace -f -e trace=%file and ours list the same calls, arguments and results,
    addresses, struct contents and the XINIM column aside."""
    def normal(text: str) -> list[str]:
        out = []
        for line in text.splitlines():
            line = XINIM_COLUMN.sub("", line)
            line = re.sub(r"0x[0-9a-f]+", "ADDR", line)
            line = re.sub(r"\{st_mode=[^}]*\}", "{...}", line)
            out.append(re.sub(r"\s+= ", " = ", line))
        return out

    prog = ("/bin/cat", "/etc/hostname")
    ours = xinim_run("-e", "trace=%file", *prog)
    theirs = native("strace", "-f", "-e", "trace=%file", *prog)
    assert ours.returncode == theirs.returncode == 0
    mine, strace = normal(ours.stderr), normal(theirs.stderr)
    assert mine == strace, "\n".join(f"{a!r}\n{b!r}" for a, b in zip(mine, strace) if a != b)


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_strings_are_escaped_and_cut_as_strace_does() -> None:
    prog = ("/usr/bin/printf", "a\\tb\\001\\n\\\"q")
    opts = ("-e", "trace=execve,write", "-s", "6")
    ours = xinim_run(*opts, *prog)
    theirs = native("strace", *opts, *prog)
    strip = [re.sub(r"0x[0-9a-f]+", "ADDR", XINIM_COLUMN.sub("", line))
             for line in ours.stderr.splitlines()]
    assert strip == [re.sub(r"0x[0-9a-f]+", "ADDR", line) for line in theirs.stderr.splitlines()]
    assert any(line.startswith('write(1, "a\\tb\\1\\n\\""..., 7)') for line in strip), strip


def test_unsupported_calls_show_as_enosys() -> None:
    res = xinim_run("-e", "trace=io_uring_setup", "/usr/bin/python3", "-c",
                    "import ctypes; ctypes.CDLL(None).syscall(425, 1, 0)")
    assert res.returncode == 0, res.stderr[-2000:]
    calls = parsed(res.stderr)
    assert [(m["name"], m["result"], m["err"]) for m in calls] == \
        [("io_uring_setup", "-1", "ENOSYS")], res.stderr[-2000:]
    assert re.search(r"^io_uring_setup\(1, NULL\) += -1 ENOSYS \(Function not implemented\)",
                     res.stderr, re.M)


def test_status_failed_keeps_only_failures() -> None:
    res = xinim_run("-e", "trace=%file", "-e", "status=failed", "/bin/ls", "/nonexistent")
    calls = parsed(res.stderr)
    assert calls and all(m["result"] == "-1" and m["err"] for m in calls), res.stderr
    assert any('"/nonexistent"' in m["args"] and m["err"] == "ENOENT" for m in calls)


def test_ff_writes_a_file_per_process_with_signal_and_exit_lines(tmp_path: Path) -> None:
    base = tmp_path / "t"
    res = xinim_run("-ff", "-o", str(base), "-e", "trace=%file,kill", "/bin/sh", "-c",
                    "cat /etc/hostname >/dev/null; kill -USR1 $$")
    assert res.returncode == 128 + 10, res.stderr
    files = {int(p.suffix[1:]): p.read_text() for p in tmp_path.glob("t.*")}
    assert len(files) == 2, files.keys()
    shell, cat = (files[pid] for pid in sorted(files))
    assert "[pid" not in shell + cat                    # -ff: no prefixes
    assert cat.splitlines()[-1] == "+++ exited with 0 +++"
    assert 'openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3' in cat
    lines = shell.splitlines()
    assert any(line.startswith("--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED")
               for line in lines), lines
    kill = next(i for i, line in enumerate(lines) if line.startswith("kill("))
    assert lines[kill].startswith(f"kill({min(files)}, SIGUSR1)")
    assert lines[kill + 1].startswith("--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER")
    assert lines[-1] == "+++ killed by SIGUSR1 +++"


def test_c_prints_a_summary_with_the_serving_server() -> None:
    res = xinim_run("-c", "/bin/cat", "/etc/hostname")
    assert res.returncode == 0
    assert res.stdout == Path("/etc/hostname").read_text()
    text = res.stderr
    assert "% time     seconds  usecs/call     calls    errors syscall" in text
    rows = {cols[-2]: cols for cols in (line.split() for line in text.splitlines())
            if len(cols) >= 6 and re.match(r"\d+\.\d\d$", cols[0]) and "total" not in cols}
    assert rows["openat"][-1] == "VFS" and int(rows["openat"][3]) >= 3
    assert rows["mmap"][-1] == "MM"
    total = next(line for line in text.splitlines() if line.rstrip().endswith(" total"))
    assert int(total.split()[3]) == sum(int(c[3]) for c in rows.values())
    assert "XINIM: time by the server that answered" in text
    assert "openat(" not in text                         # -c replaces the trace


@pytest.mark.parametrize("argv, message", [
    (("-e", "trace=%nonsense"), "invalid system call class"),
    (("-e", "bogus=1"), "invalid -e qualifier"),
    (("-ff",), "-ff needs -o FILE"),
])
def test_bad_trace_options_are_usage_errors(argv: tuple[str, ...], message: str) -> None:
    res = xinim_run(*argv, "/bin/true")
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr


def test_fcntl_commands_by_this_hosts_numbers() -> None:
    """x86-64's fcntl numbers (python-ptrace's table is another architecture's)."""
    from xinim_host.kernel.trap.trace_format import CallFormat

    class NoMemory:
        def read(self, addr: int, n: int) -> bytes:
            raise OSError(14, "no memory here")

        def read_cstring(self, addr: int, limit: int = 4096) -> bytes:
            raise OSError(14, "no memory here")

    fmt = CallFormat()
    assert fmt.call("fcntl", [3, 8, 100], 0, NoMemory()) == "fcntl(3, F_SETOWN, 100)"
    assert fmt.call("fcntl", [3, 5, 0], 0, NoMemory()).startswith("fcntl(3, F_GETLK, ")
    assert fmt.call("fcntl", [3, 1030, 10], 0, NoMemory()) == "fcntl(3, F_DUPFD_CLOEXEC, 10)"


def test_ipc_shows_the_messages_each_call_exchanged() -> None:
    res = xinim_run("--ipc", "-e", "trace=openat", "/bin/cat", "/etc/hostname")
    assert (res.returncode, res.stdout) == (0, Path("/etc/hostname").read_text()), res.stderr
    lines = res.stderr.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith('openat(AT_FDCWD, "/etc/hostname"'))
    request, reply = lines[at - 2], lines[at - 1]
    assert re.fullmatch(r"  ipc kernel \u2192 VFS VfsOpen \d+ B", request), lines[at - 3:at + 1]
    assert re.fullmatch(r"  ipc VFS \u2192 kernel VFS reply \d+ B", reply), lines[at - 3:at + 1]
    assert any(re.fullmatch(r"  ipc kernel \u2192 MM Mm\w+ \d+ B", line) for line in lines)
    without = xinim_run("-e", "trace=openat", "/bin/cat", "/etc/hostname")
    assert "  ipc " not in without.stderr
