"""Issue 6's acceptance, end to end: real C programs (tests/c/mm_*.c) and python3
under ``xinim-run``, with the Memory Manager deciding every brk/mmap/munmap/
mprotect and the host applying it.

The C sources are compiled once per session into a host directory that the
programs reach as ``/t`` (``xinim-run --bind DIR:/t``).  Most tests run the
``xinim-run`` console script in a subprocess; the maps comparison boots the
system in-process so it can ask MM for its record (``MmMaps``) while the
program is alive and read the host's ``/proc/PID/maps`` at the same moment.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from xinim_host.cli.launch import run_program
from xinim_host.cli.options import mounts_from
from xinim_host.lib import protocol as p
from xinim_host.system.boot import BootConfig, booted
from xinim_host.mm.regions import parse_maps

C_DIR = Path(__file__).parent / "c"
XINIM_RUN = str(Path(sys.executable).with_name("xinim-run"))
TIMEOUT = 60
PAGE = 4096


# --- building and running ------------------------------------------------------------


@pytest.fixture(scope="session")
def progs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled programs and libmmtest.so, in a host dir bound at /t."""
    out = tmp_path_factory.mktemp("mm_e2e")
    for name in ("mm_sbrk", "mm_many", "mm_shared", "mm_filemap", "mm_enomem", "mm_more",
                 "mm_unmap", "mm_onestop", "mm_special", "mm_mdwe", "mm_remap", "mm_vfork", "mm_devzero", "mm_madvise", "mm_mlock2"):
        subprocess.run(["gcc", "-O2", "-Wall", "-pthread", "-o", str(out / name), str(C_DIR / f"{name}.c"),
                        "-ldl", "-lm"], check=True)
    subprocess.run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(out / "libmmtest.so"),
                    str(C_DIR / "mm_libtest.c")], check=True)
    return out


@dataclass
class Ran:
    code: int
    out: str
    err: str


def xrun(progs: Path, *argv: str, env: dict[str, str] | None = None,
         options: tuple[str, ...] = ()) -> Ran:
    """``xinim-run --bind PROGS:/t [options] argv...`` with a timeout."""
    full_env = {**os.environ, **(env or {})}
    r = subprocess.run([XINIM_RUN, "--bind", f"{progs}:/t", *options, *argv],
                       capture_output=True, text=True, timeout=TIMEOUT, env=full_env,
                       stdin=subprocess.DEVNULL)
    return Ran(r.returncode, r.stdout, r.stderr)


# --- §8.2 test 3 ----------------------------------------------------------------------


def test_sbrk_and_anonymous_mmap(progs: Path) -> None:
    r = xrun(progs, "/t/mm_sbrk")
    assert r.code == 0, (r.out, r.err)
    assert "sbrk ok" in r.out


def test_munmap_whole_and_split_as_natively(progs: Path) -> None:
    """munmaps of whole mappings (the one-stop path: the trapped call itself)
    and splits leave the same free ranges and data as natively."""
    native = subprocess.run([str(progs / "mm_unmap")], capture_output=True, text=True,
                            timeout=TIMEOUT)
    r = xrun(progs, "/t/mm_unmap")
    assert r.code == native.returncode == 0, (r.out, r.err)
    assert r.out == native.stdout
    assert "whole 300" in r.out and "edges 50 across 50" in r.out


def test_special_mappings_are_never_split_as_natively(progs: Path) -> None:
    """MAP_FIXED, munmap, mprotect and mremap of a part of [vvar] or [vdso] fail
    with EINVAL as on Linux and leave MM's record whole: MAP_FIXED_NOREPLACE
    still finds every page in use, /proc/self/maps still shows the whole
    mapping, and no mmap lands inside (the one-stop paths never see a host
    refusal MM did not foresee)."""
    native = subprocess.run([str(progs / "mm_special")], capture_output=True, text=True,
                            timeout=TIMEOUT)
    r = xrun(progs, "/t/mm_special")
    assert r.code == native.returncode == 0, (r.out, r.err)
    assert r.out == native.stdout
    assert "vdso whole: 1" in r.out and "inside 0" in r.out


def test_write_exec_map_refused_under_mdwe_as_natively(progs: Path) -> None:
    """Under prctl(PR_SET_MDWE) -- host-run, unseen by MM -- the host refuses a
    writable+executable mmap (EACCES); such a map never takes the one-stop path,
    so MM hears of the refusal and the range is free again, as natively."""
    native = subprocess.run([str(progs / "mm_mdwe")], capture_output=True, text=True,
                            timeout=TIMEOUT)
    r = xrun(progs, "/t/mm_mdwe")
    assert r.code == native.returncode == 0, (r.out, r.err)
    assert r.out == native.stdout


def test_dev_zero_maps_check_the_fds_mode_as_natively(progs: Path) -> None:
    """/dev/zero maps as anonymous memory, but Linux checks its fd's mode as a
    file's: a shared writable map needs O_RDWR, any map needs read, and a shared
    map of a fd not open for writing never becomes writable (mprotect EACCES;
    LTP mprotect01).  MM knew none of it and allowed all (the host's own map is
    anonymous: it cannot refuse)."""
    native = subprocess.run([str(progs / "mm_devzero")], capture_output=True, text=True,
                            timeout=TIMEOUT)
    r = xrun(progs, "/t/mm_devzero")
    assert r.code == native.returncode == 0, (r.out, r.err)
    assert "mprotect rw Permission denied" in native.stdout
    assert r.out == native.stdout


def test_madvise_advice_xinim_judges_as_natively(progs: Path, tmp_path: Path) -> None:
    """MADV_WIPEONFORK of a private file map is EINVAL as natively, though the
    host's map of a ramfs file is anonymous (LTP madvise02); of anonymous memory
    it works (the child sees zeros).  XINIM shows no /sys/kernel/mm/ksm, so
    MADV_(UN)MERGEABLE say EINVAL as Linux without CONFIG_KSM does."""
    native = subprocess.run([str(progs / "mm_madvise"), str(tmp_path / "f")],
                            capture_output=True, text=True, timeout=TIMEOUT)
    r = xrun(progs, "/t/mm_madvise", "/tmp/f")
    assert r.code == native.returncode == 0, (r.out, r.err)
    ksm = ("mergeable", "unmergeable")
    assert ([ln for ln in r.out.splitlines() if not ln.startswith(ksm)]
            == [ln for ln in native.stdout.splitlines() if not ln.startswith(ksm)])
    assert "wipeonfork private file: Invalid argument" in native.stdout
    for ln in r.out.splitlines():
        if ln.startswith(ksm):
            assert ln.endswith(("ksm", "Invalid argument")), ln


def test_mlock2_is_host_run_as_mlock(progs: Path) -> None:
    """mlock2 was no row of the renumbering table (ENOSYS; LTP mlock201/203
    TCONF): it is host-run as mlock is, with Linux's answers."""
    native = subprocess.run([str(progs / "mm_mlock2")], capture_output=True, text=True,
                            timeout=TIMEOUT)
    r = xrun(progs, "/t/mm_mlock2")
    assert r.code == native.returncode == 0, (r.out, r.err)
    assert "mlock2 0: ok" in native.stdout
    assert r.out == native.stdout


def test_munmap_inside_a_mapping_takes_one_stop(progs: Path) -> None:
    """A munmap splitting a mapping in two fails on Linux only at max_map_count;
    with the host's VMAs counted it too is the trapped call itself.  100 more
    rounds of ``mm_unmap middle`` are 400 more calls -- 2 rwx maps (never one
    stop: two each), a split and a whole munmap -- so at most 600 more stops,
    where waiting for the split would be 700."""
    def stats(rounds: int) -> tuple[int, int]:
        r = xrun(progs, "/t/mm_unmap", "middle", str(rounds), env={"XINIM_STATS": "1"})
        assert r.code == 0 and f"middle only {rounds}" in r.out, (r.out, r.err)
        m = re.search(r"xinim-stats: syscalls (\d+) stops (\d+)", r.err)
        assert m, r.err
        return int(m.group(1)), int(m.group(2))
    calls1, stops1 = stats(20)
    calls2, stops2 = stats(120)
    assert calls2 - calls1 == 400
    assert stops2 - stops1 <= 600, (stops2 - stops1)


def test_mremap_grow_as_natively(progs: Path) -> None:
    """mremap growing anonymous memory, moved or in place, keeps the data; a
    source MM merged from two host VMAs (the host keeps separately faulted
    memory apart) gets Linux's EFAULT and stays where it was: the one-stop
    mremap asks the host for the VMA at the old address first."""
    native = subprocess.run([str(progs / "mm_remap")], capture_output=True, text=True,
                            timeout=TIMEOUT)
    r = xrun(progs, "/t/mm_remap")
    assert r.code == native.returncode == 0, (r.out, r.err)
    assert r.out == native.stdout
    assert "kept 200" in r.out and "grow across both: Bad address" in r.out
    assert "shrinks: 1 1 end free mid free kept taken h k" in r.out


def test_mremap_grow_takes_one_stop(progs: Path) -> None:
    """A growing mremap of private anonymous memory the host holds in one VMA,
    and a shrink in place (the munmap of its tail), are the trapped call itself:
    100 more rounds of ``mm_remap grow`` (a grow and a shrink) are 200 more
    calls and 200 more stops, where waiting for either would be 300 or more."""
    def stats(rounds: int) -> tuple[int, int]:
        r = xrun(progs, "/t/mm_remap", "grow", str(rounds), env={"XINIM_STATS": "1"})
        assert r.code == 0 and f"grow only {rounds}" in r.out, (r.out, r.err)
        m = re.search(r"xinim-stats: syscalls (\d+) stops (\d+)", r.err)
        assert m, r.err
        return int(m.group(1)), int(m.group(2))
    calls1, stops1 = stats(20)
    calls2, stops2 = stats(120)
    assert calls2 - calls1 == 200
    assert stops2 - stops1 <= 200, (stops2 - stops1)


def test_munmap_at_an_edge_takes_one_stop(progs: Path) -> None:
    """A munmap of a mapping's head or tail (or of a whole mapping) is the
    trapped call itself with no exit stop.  100 more rounds of ``mm_unmap
    edges`` are 600 more calls -- 3 mmaps (two stops each), a head, a tail and
    a whole munmap -- so 900 more stops, where waiting for the result of the
    two edge cuts would be 1,100."""
    def stats(rounds: int) -> tuple[int, int]:
        r = xrun(progs, "/t/mm_unmap", "edges", str(rounds), env={"XINIM_STATS": "1"})
        assert r.code == 0 and f"edges only {rounds}" in r.out, (r.out, r.err)
        m = re.search(r"xinim-stats: syscalls (\d+) stops (\d+)", r.err)
        assert m, r.err
        return int(m.group(1)), int(m.group(2))
    calls1, stops1 = stats(20)
    calls2, stops2 = stats(120)
    assert calls2 - calls1 == 600
    assert stops2 - stops1 <= 900, (stops2 - stops1)


def test_one_stop_maps_and_mprotects_as_natively(progs: Path) -> None:
    """Anonymous maps and mprotects to read-only/none the host cannot refuse run
    as the trapped call itself (no exit stop), and match Linux; a map the host
    refuses (RLIMIT_AS set) is still waited for and leaves no region in MM."""
    native = subprocess.run([str(progs / "mm_onestop")], capture_output=True, text=True,
                            timeout=TIMEOUT)
    r = xrun(progs, "/t/mm_onestop", env={"XINIM_STATS": "1"})
    assert r.code == native.returncode == 0, (r.out, r.err)
    assert r.out == native.stdout
    assert "maps 200" in r.out and "over the limit 1" in r.out
    m = re.search(r"xinim-stats: syscalls (\d+) stops (\d+)", r.err)
    assert m, r.err
    calls, stops = int(m[1]), int(m[2])
    # 800 of its calls are memory calls: two stops each would be over 1.7 per call
    assert calls > 800 and stops < 1.3 * calls, (calls, stops)


def test_vfork_child_memory_calls_are_the_parents(progs: Path) -> None:
    """A vfork child's map, unmap, mprotect before its _exit, exec or kill -9
    change its parent's memory (one address space): the parent's later memory
    calls and its /proc/self/maps (MM's record) agree with Linux."""
    native = subprocess.run([str(progs / "mm_vfork")], capture_output=True, text=True,
                            timeout=TIMEOUT)
    r = xrun(progs, "/t/mm_vfork")
    assert r.code == native.returncode == 0, (r.out, r.err)
    assert r.out == native.stdout
    assert "child signal 9" in r.out and "maps absent" in r.out

# --- 1000 regions, PROT_NONE, SIGSEGV ------------------------------------------------------


def test_many_regions_then_prot_none_touch_dies_by_sigsegv(progs: Path) -> None:
    r = xrun(progs, "/t/mm_many")
    assert r.code == 128 + signal.SIGSEGV, (r.code, r.out[-500:], r.err)
    assert "READY" in r.out and "touching" in r.out
    assert "still alive" not in r.out
    assert sum(ln.startswith("R ") for ln in r.out.splitlines()) == 500
    assert sum(ln.startswith("U ") for ln in r.out.splitlines()) == 500


Layout = list[tuple[int, int, str]]     # (start, end, "rwxp") with neighbours of one perm merged


def _normalise(entries: list[tuple[int, int, str]]) -> Layout:
    out: Layout = []
    for start, end, perms in sorted(entries):
        if out and out[-1][1] == start and out[-1][2] == perms:
            out[-1] = (out[-1][0], end, perms)
        else:
            out.append((start, end, perms))
    return out


def _perms_at(layout: Layout, lo: int, hi: int) -> Layout:
    """``layout`` clipped to [lo, hi)."""
    return [(max(s, lo), min(e, hi), pm) for s, e, pm in layout if s < hi and e > lo]


async def _mm_maps(system, pid: int) -> tuple[str, p.MmMapsReply]:
    text, offset = b"", 0
    while True:
        reply = (await system.lattice.sendrec(p.KERNEL_PID, p.MM_PID,
                                              p.MmMaps(pid=pid, offset=offset))).body
        assert not reply.error, reply.error
        text += reply.data
        offset += len(reply.data)
        if offset >= reply.result or not reply.data:
            return text.decode(), reply


async def test_mm_record_agrees_with_host_maps(progs: Path, console) -> None:
    """While mm_many waits, MM's record of it and the host's /proc/PID/maps give
    every page the program mapped, unmapped or protected the same permissions
    (and MM's whole record agrees with the host's outside the growing stack)."""
    config = BootConfig(console=console, quiet=True,
                        mounts=mounts_from([(str(progs), "/t", "ro")]))
    async with booted(config) as system:
        result: list[int] = []

        async def run() -> None:
            result.append(await run_program(system, ["/t/mm_many", "/tmp/go"],
                                            {"PATH": "/usr/bin:/bin"}))

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run)
                while "READY" not in console.text:
                    assert not result, console.text[-2000:]
                    await trio.sleep(0.02)
                lines = console.text.splitlines()
                ready = next(ln for ln in lines if ln.startswith("READY"))
                xpid = int(ready.split("pid=")[1].split()[0])
                host_tid = (await system.lattice.sendrec(
                    p.KERNEL_PID, p.PM_PID, p.ProcXinimToHost(caller=p.INIT_PID, pid=xpid))).body
                assert not host_tid.error
                with open(f"/proc/{host_tid.result}/maps") as f:
                    host_text = f.read()
                mm_text, usage = await _mm_maps(system, xpid)
                # release the program: it touches its PROT_NONE page and dies
                made = (await system.lattice.sendrec(p.KERNEL_PID, p.VFS_PID, p.VfsOpen(
                    caller=p.INIT_PID, dirfd=-100, flags=os.O_CREAT | os.O_WRONLY, mode=0o644,
                    path=b"/tmp/go"))).body
                assert not made.error
        assert result == [128 + signal.SIGSEGV], console.text[-1000:]

    host_entries = [e for e in parse_maps(host_text) if e.name != "[vsyscall]"]
    host = _normalise([(e.start, e.end, e.perms) for e in host_entries])
    mm = _normalise([(e.start, e.end, e.perms) for e in parse_maps(mm_text)])

    # 1. every mapping the program made, kept or unmapped: same pages, same perms,
    #    and what the program asked for
    kept = [(int(a, 16), int(n, 16), int(i)) for tag, a, n, i in
            (ln.split() for ln in lines if ln.startswith("R "))]
    assert len(kept) == 500
    for addr, length, i in kept:
        want_perm = "r--p" if i % 4 == 0 else "rw-p"
        if i == 500:
            want = [(addr, addr + length, "---p")]
        elif 400 <= i <= 600:
            want = [(addr, addr + PAGE, want_perm), (addr + PAGE, addr + 2 * PAGE, "---p"),
                    (addr + 2 * PAGE, addr + 3 * PAGE, want_perm)]
        else:
            want = [(addr, addr + length, want_perm)]
        assert _normalise(_perms_at(mm, addr, addr + length)) == want, f"MM, region {i}"
        assert _normalise(_perms_at(host, addr, addr + length)) == want, f"host, region {i}"
    # the unmapped odd ones are holes in both
    unmapped = [(int(a, 16), int(n, 16)) for tag, a, n, i in
                (ln.split() for ln in lines if ln.startswith("U "))]
    assert len(unmapped) == 500
    for addr, length in unmapped:
        assert _perms_at(mm, addr, addr + length) == [], hex(addr)
        assert _perms_at(host, addr, addr + length) == [], hex(addr)

    # 2. the whole record against the whole host layout, line for line (the
    #    [stack] may have grown on faults MM never sees; [vsyscall] is not user space)
    def lines_of(text: str) -> list[str]:
        return [ln.rstrip() if "[stack]" not in ln else ln.split("-")[1].rstrip()
                for ln in text.splitlines() if ln.strip() and "[vsyscall]" not in ln]

    assert lines_of(mm_text) == lines_of(host_text)
    # ld.so mapped libc from its host file (a direct map), and MM's record says so
    libc = [e for e in parse_maps(mm_text) if e.name.endswith("/libc.so.6")]
    assert libc and all(e.inode for e in libc)
    assert any("x" in e.perms for e in libc)
    # frames (policy in mm/accounting.py): the 16 MAP_POPULATE pages are charged;
    # pages the program stored to are invisible to MM, and the libraries ld.so
    # mapped straight from their host files are the host's page cache
    assert usage.mapped_pages > 500 * 3 + 16
    assert usage.used >= 16 and usage.used == usage.shared + usage.private
    assert usage.used < 16 + 64


# --- MAP_SHARED of a ramfs file -------------------------------------------------------------


def _check_shared_file(data: bytes) -> None:
    assert len(data) == 6000
    assert data[:8] == b"CHANGED!"
    assert data[100:108] == b"unmapped"           # written back by munmap
    assert data[200:207] == b"at-exit"            # written back at exit
    assert data[5000:5011] == b"second-page"
    assert data[5999:6000] == b"."


def test_shared_map_msync_reads_back_through_the_vfs(progs: Path) -> None:
    r = xrun(progs, "/bin/sh", "-c",
             "/t/mm_shared /tmp/s.txt && od -An -c -w6000 /tmp/s.txt | tr -d ' '")
    assert r.code == 0, (r.out, r.err)
    assert "shared ok" in r.out
    dumped = r.out.split("shared ok\n", 1)[1].strip()
    assert dumped.startswith("CHANGED!"), dumped[:80]
    assert "unmapped" in dumped and "at-exit" in dumped and "second-page" in dumped


def test_shared_map_reads_back_through_cat_in_a_later_command(progs: Path) -> None:
    r = xrun(progs, "/bin/sh", "-c", "/t/mm_shared /tmp/s.txt; cat /tmp/s.txt")
    assert r.code == 0, (r.out, r.err)
    body = r.out.split("shared ok\n", 1)[1].encode()
    _check_shared_file(body)


def test_shared_map_reads_back_through_the_fuse_mount(progs: Path,
                                                      tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen([XINIM_RUN, "--bind", f"{progs}:/t", "--mount", str(mnt), "--keep",
                             "/t/mm_shared", "/tmp/s.txt"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        err = ""
        deadline = time.monotonic() + TIMEOUT
        assert proc.stderr is not None
        while "system kept up" not in err:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, err
            err += line
            assert time.monotonic() < deadline, err
        assert "exited 0" in err, err
        # read from another process: never from one that serves the mount
        data = subprocess.run(["cat", str(mnt / "tmp" / "s.txt")], capture_output=True,
                              timeout=TIMEOUT, check=True).stdout
        _check_shared_file(data)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert not os.path.ismount(mnt)


# --- frames: big allocations work, exhaustion is ENOMEM --------------------------------------


def test_python_bytearray_50mb(progs: Path) -> None:
    r = xrun(progs, "/usr/bin/python3", "-c", "b = bytearray(50_000_000); print(len(b))")
    assert r.code == 0, r.err
    assert r.out.strip() == "50000000"


def test_mmaps_beyond_the_frame_pool_get_enomem(progs: Path) -> None:
    pool = 64 << 20
    r = xrun(progs, "/t/mm_enomem", str(pool), env={"XINIM_MM_PHYS": "64M"})
    assert r.code == 0, (r.out, r.err)
    assert "ENOMEM after" in r.out
    maps = int(r.out.split("ENOMEM after ")[1].split()[0])
    # stopped by the pool: 4 MiB populated maps, all charged (libraries are not)
    assert pool // (4 << 20) - 2 <= maps <= pool // (4 << 20)
    assert "Traceback" not in r.err                # MM answered; it did not crash


def test_python_gets_memory_error_from_a_small_pool(progs: Path) -> None:
    script = ("try:\n    b = bytearray(100_000_000)\nexcept MemoryError:\n    print('ENOMEM')\n"
              "else:\n    print('got', len(b))\n"
              "c = bytearray(10_000_000); print(len(c))\n")
    r = xrun(progs, "/usr/bin/python3", "-c", script, env={"XINIM_MM_PHYS": "64M"})
    assert r.code == 0, r.err
    assert r.out.split() == ["ENOMEM", "10000000"]


# --- file-backed private maps: ramfs and host files, dlopen ----------------------------------


def test_private_file_maps_and_dlopen(progs: Path) -> None:
    r = xrun(progs, "/t/mm_filemap", "/t")
    assert r.code == 0, (r.out, r.err)
    assert "filemap ok" in r.out


def test_python_runs_with_mm_deciding_every_map(progs: Path) -> None:
    """python3 loads its libraries through ld.so's file maps and imports modules."""
    r = xrun(progs, "/usr/bin/python3", "-c",
             "import json, hashlib; print(json.dumps(hashlib.sha256(b'x').hexdigest()[:8]))")
    assert r.code == 0, r.err
    assert r.out.strip() == '"2d711642"'


# --- fork, threads, mremap, madvise, exec --------------------------------------------------


def test_fork_threads_mremap_madvise_brk(progs: Path) -> None:
    """Shared anonymous memory shared and private memory copied across fork; four
    threads mapping and unmapping at once (MM's decisions and the host's
    injected calls must not interleave between threads); mremap grow/move and
    shrink; MADV_DONTNEED; a fork child's MAP_SHARED file writes reach the file
    when it exits (MM keeps the forked record, write-back fds included)."""
    r = xrun(progs, "/t/mm_more")
    assert r.code == 0, (r.out, r.err)
    assert r.out.strip() == "more ok"
    assert "write-back" not in r.err


def test_shared_file_map_is_written_back_at_exec(progs: Path) -> None:
    r = xrun(progs, "/t/mm_more", "exec")
    assert r.code == 0, (r.out, r.err)
    assert r.out.split() == ["exec", "now", "before-exec"]


# --- the fill path for host files (the direct map refused) ----------------------------------


async def test_host_file_maps_fall_back_to_vfs_fill(progs: Path,
                                                    monkeypatch: pytest.MonkeyPatch, console) -> None:
    """When the direct host-file map cannot be made, the kernel fills an
    anonymous map through the VFS and MM charges the filled pages then: ld.so,
    dlopen and private maps of host files all still work."""
    from xinim_host.kernel.calls import memory

    refused: list[bytes] = []

    def refuse(c, info, *args):
        refused.append(info.host_path)
        return False
        yield  # a generator, like the real one

    monkeypatch.setattr(memory, "_map_host_file", refuse)
    from xinim_host.mm.accounting import MemoryAccounting
    charged: list[int] = []
    real_charge = MemoryAccounting.charge

    def charge(self, pid, addr, length, **kw):
        got = real_charge(self, pid, addr, length, **kw)
        charged.append(got)
        return got

    monkeypatch.setattr(MemoryAccounting, "charge", charge)
    config = BootConfig(console=console, quiet=True,
                        mounts=mounts_from([(str(progs), "/t", "ro")]))
    with trio.fail_after(TIMEOUT):
        async with booted(config) as system:
            code = await run_program(system, ["/t/mm_filemap", "/t"], {"PATH": "/usr/bin:/bin"})
            left = system.mm.acct.frames.used_pages
    assert code == 0, console.text
    assert "filemap ok" in console.text
    assert any(path.endswith(b"/libc.so.6") for path in refused)
    assert any(path.endswith(b"/libmmtest.so") for path in refused)
    # the filled pages were charged (libc alone is > 400 pages), and released at exit
    assert sum(charged) > 400
    assert left == 0
