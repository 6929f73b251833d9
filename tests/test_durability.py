"""Durability under --image: snapshot + write-ahead log (vfs_fuse/journal.py).

Unit tests drive a Journal in-process and "crash" by simply not closing it;
the end-to-end test kills xinim-run / xinim-boot with SIGKILL at random moments
while tests/c/durability.c writes and syncs, and checks what the next start sees.
"""
from __future__ import annotations

import os
import pty
import random
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from xinim_host.vfs_fuse import journal as jmod
from xinim_host.vfs_fuse.image import ImageError, save_image, temp_pattern
from xinim_host.vfs_fuse.journal import Journal, open_image, wal_path
from xinim_host.vfs_fuse.ramfs import PAGE, RENAME_EXCHANGE, Inode, Ramfs

C_DIR = Path(__file__).parent / "c"


def lookup(fs: Ramfs, path: bytes) -> Inode:
    node = fs.root
    for name in path.strip(b"/").split(b"/"):
        node = fs.lookup(node, name)
    return node


def content(fs: Ramfs, node: Inode) -> bytes:
    return bytes(b"".join(bytes(node.pages.get(i, bytes(PAGE)))
                          for i in range(-(-node.size // PAGE))))[:node.size]


def snapshot(fs: Ramfs) -> dict[bytes, tuple]:
    """Everything that must survive, independent of directory order: per path its
    attributes, contents and the paths sharing its inode."""
    names: dict[int, list[bytes]] = {}
    rows: dict[bytes, tuple] = {}
    stack = [(b"", fs.root)]
    while stack:
        path, d = stack.pop()
        for name, node in d.entries.items():
            p = path + b"/" + name
            names.setdefault(node.ino, []).append(p)
            body = content(fs, node) if stat.S_ISREG(node.mode) else node.target
            rows[p] = (node.ino, node.mode, node.uid, node.gid, node.nlink, node.rdev, node.size,
                       node.blocks, node.atime_ns, node.mtime_ns, node.ctime_ns, body)
            if stat.S_ISDIR(node.mode):
                stack.append((p, node))
    r = fs.root
    out = {p: row[1:] + (tuple(sorted(names[row[0]])),) for p, row in rows.items()}
    out[b"/"] = (r.mode, r.uid, r.gid, r.nlink, r.atime_ns, r.mtime_ns, r.ctime_ns)
    return out


def temps(image: Path) -> list[str]:
    return sorted(p.name for p in image.parent.glob(temp_pattern(image)))


# ------------------------------------------------------------------ unit: the journal
async def started(fs: Ramfs, image: Path, nursery: trio.Nursery, **kw: float) -> Journal:
    j = Journal(fs, image, interval=kw.get("interval", 3600.0),
                checkpoint_min=int(kw.get("checkpoint_min", 64 << 20)))
    await j.start(nursery)
    return j


def crash(j: Journal) -> None:
    """What kill -9 leaves: nothing more reaches the disk."""
    j.closed = True
    j.tracker.detach()
    if j.tracker.wake is not None:
        j.tracker.wake.set()
    os.close(j.fd)
    j.fd = -1


def busy_changes(fs: Ramfs, step: int) -> None:
    """Every kind of change the ramfs has, a little different per step."""
    r = fs.root
    d = fs.mkdir(r, b"d%d" % step, 0o750, 1000, 100)
    f = fs.mknod(d, b"file", stat.S_IFREG | 0o644, 7, 8)
    fs.write(f, 0, b"step %d\n" % step * 500)              # several pages
    fs.write(f, 3 * PAGE + 5, b"patched")
    fs.link(f, r, b"hard%d" % step)
    fs.symlink(d, b"sym", b"file", 0, 0)
    fs.mknod(d, b"fifo", stat.S_IFIFO | 0o600, 0, 0)
    g = fs.mknod(r, b"shrink%d" % step, stat.S_IFREG | 0o600, 0, 0)
    fs.write(g, 0, b"x" * (3 * PAGE))
    fs.truncate(g, 10)                                      # cut...
    fs.truncate(g, 2 * PAGE)                                # ...then grown: zeros, not old x
    if step:
        fs.rename(r, b"d%d" % (step - 1), d, b"moved")      # a directory moves
        fs.unlink(r, b"hard%d" % (step - 1))
        fs.rename(r, b"shrink%d" % (step - 1), r, b"hard%d" % step)   # replaces a name
    tmp = fs.mknod(r, b"gone", stat.S_IFREG | 0o600, 0, 0)
    fs.write(tmp, 0, b"never seen")
    fs.hold(tmp)
    fs.unlink(r, b"gone")                                   # unlinked while open...
    fs.write(tmp, PAGE, b"still written")
    fs.release(tmp)
    e = fs.mkdir(r, b"empty", 0o700, 0, 0)
    fs.mknod(e, b"x", stat.S_IFREG, 0, 0)
    fs.unlink(e, b"x")
    fs.rmdir(r, b"empty")
    if step == 0:
        fs.write(fs.mknod(r, b"swap-a", stat.S_IFREG | 0o644, 0, 0), 0, b"a")
        fs.mkdir(r, b"swap-b", 0o700, 0, 0)
    fs.rename(r, b"swap-a", r, b"swap-b", RENAME_EXCHANGE)  # names trade places
    fs.setattr(f, mode=0o4711, uid=5, gid=6, atime_ns=11, mtime_ns=22)


async def test_replay_rebuilds_every_kind_of_change(tmp_path: Path) -> None:
    img = tmp_path / "s.img"
    fs = Ramfs()
    async with trio.open_nursery() as nursery:
        j = await started(fs, img, nursery)
        for step in range(4):
            busy_changes(fs, step)
            await j.sync()
        want = snapshot(fs)
        assert jmod.wal_path(img).stat().st_size > 1000       # it went to the log
        crash(j)
        nursery.cancel_scope.cancel()
    back = open_image(img)
    assert back is not None
    assert snapshot(back) == want
    shrink = lookup(back, b"/hard3")
    assert content(back, shrink) == b"x" * 10 + bytes(2 * PAGE - 10)
    assert b"gone" not in back.root.entries
    assert not [i for i in back.inodes.values() if i.nlink == 0]   # nothing unreachable kept


async def test_torn_tail_and_bad_record_stop_replay(tmp_path: Path) -> None:
    img = tmp_path / "s.img"
    fs = Ramfs()
    states = []
    ends = []
    async with trio.open_nursery() as nursery:
        j = await started(fs, img, nursery)
        for step in range(3):
            busy_changes(fs, step)
            await j.sync()
            states.append(snapshot(fs))
            ends.append(j.wal_size)
        crash(j)
        nursery.cancel_scope.cancel()
    wal = wal_path(img)
    good = wal.read_bytes()
    assert len(good) == ends[-1]
    # a torn tail: every cut inside the last record gives the state after the second
    for cut in (ends[1] + 1, ends[1] + 12, (ends[1] + ends[2]) // 2, ends[2] - 1):
        wal.write_bytes(good[:cut])
        assert snapshot(open_image(img)) == states[1], cut
    # a tail of garbage after whole records is ignored too
    wal.write_bytes(good + os.urandom(100))
    assert snapshot(open_image(img)) == states[2]
    # a flipped byte in the second record: only the first one counts
    bad = bytearray(good)
    bad[(ends[0] + ends[1]) // 2] ^= 0x40
    wal.write_bytes(bytes(bad))
    assert snapshot(open_image(img)) == states[0]
    # records swapped around (sequence numbers) are refused from there on
    first = good[jmod._WAL_HEADER.size:ends[0]]
    wal.write_bytes(good[:ends[0]] + first)
    assert snapshot(open_image(img)) == states[0]
    # the image itself is never the log's victim
    assert snapshot(open_image(img)) == states[0]


async def test_log_of_an_older_snapshot_is_ignored(tmp_path: Path) -> None:
    """A crash between a checkpoint's rename of the image and that of its new log
    leaves the old log next to the new image: the new image already holds it."""
    img = tmp_path / "s.img"
    fs = Ramfs()
    async with trio.open_nursery() as nursery:
        j = await started(fs, img, nursery)
        busy_changes(fs, 0)
        await j.sync()
        old_log = wal_path(img).read_bytes()
        fs.unlink(fs.root, b"hard0")                        # a change the old log undoes
        await j.checkpoint()
        want = snapshot(fs)
        crash(j)
        nursery.cancel_scope.cancel()
    wal_path(img).write_bytes(old_log)
    assert snapshot(open_image(img)) == want


async def test_checkpoint_when_the_log_is_full_and_at_close(tmp_path: Path) -> None:
    img = tmp_path / "s.img"
    fs = Ramfs()
    async with trio.open_nursery() as nursery:
        j = await started(fs, img, nursery, checkpoint_min=1)
        f = fs.mknod(fs.root, b"f", stat.S_IFREG | 0o644, 0, 0)
        for i in range(5):
            fs.write(f, i * PAGE, bytes([i]) * PAGE)
            await j.sync()
            # the log never grows much past the image: it is folded in
            assert j.wal_size <= max(j.image_size, 1) + PAGE + 200
        assert j.image_size > 3 * PAGE                      # a checkpoint, not the start's
        await j.close()
        nursery.cancel_scope.cancel()
    assert wal_path(img).stat().st_size == jmod._WAL_HEADER.size
    back = open_image(img)
    assert content(back, lookup(back, b"/f")) == b"".join(bytes([i]) * PAGE for i in range(5))


async def test_background_flush_without_fsync(tmp_path: Path) -> None:
    img = tmp_path / "s.img"
    fs = Ramfs()
    async with trio.open_nursery() as nursery:
        j = await started(fs, img, nursery, interval=0.05)
        fs.write(fs.mknod(fs.root, b"lazy", stat.S_IFREG | 0o644, 0, 0), 0, b"soon")
        while j.seq == 0:                                   # no timing assertion: wait for it
            await trio.sleep(0.01)
        crash(j)
        nursery.cancel_scope.cancel()
    back = open_image(img)
    assert content(back, lookup(back, b"/lazy")) == b"soon"


def test_start_removes_temps_of_an_interrupted_save(tmp_path: Path) -> None:
    img = tmp_path / "s.img"
    save_image(Ramfs(), img)
    stale = [tmp_path / ".s.img.abc123.tmp", tmp_path / ".s.img.wal.xyz.tmp"]
    for t in stale:
        t.write_bytes(b"half an image")
    other = tmp_path / ".other.img.abc.tmp"
    other.write_bytes(b"not ours")
    assert open_image(img) is not None
    assert temps(img) == []
    assert other.exists()


def test_bad_snapshot_still_refused(tmp_path: Path) -> None:
    img = tmp_path / "s.img"
    save_image(Ramfs(), img)
    data = bytearray(img.read_bytes())
    data[20] ^= 1
    img.write_bytes(bytes(data))
    with pytest.raises(ImageError):
        open_image(img)


async def test_failed_append_says_eio_then_recovers(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from xinim_host.lib.errors import SysError
    img = tmp_path / "s.img"
    fs = Ramfs()
    async with trio.open_nursery() as nursery:
        j = await started(fs, img, nursery)
        f = fs.mknod(fs.root, b"f", stat.S_IFREG | 0o644, 0, 0)
        fs.write(f, 0, b"one")

        def full(data: bytes) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(j, "_append", full)
        with pytest.raises(SysError) as err:
            await j.sync()
        assert err.value.errno == 5
        monkeypatch.undo()
        fs.write(f, 3, b" two")
        await j.sync()                                      # a whole new image: both there
        crash(j)
        nursery.cancel_scope.cancel()
    back = open_image(img)
    assert content(back, lookup(back, b"/f")) == b"one two"


# ------------------------------------------------------------------ end to end: kill -9
XINIM_RUN = Path(sys.executable).parent / "xinim-run"
BASE = bytes((j * 7 + (j >> 8)) & 0xFF for j in range(20000))
pytestmark_e2e = pytest.mark.skipif(shutil.which("gcc") is None or not XINIM_RUN.exists(),
                                    reason="needs gcc and the xinim-run script")


def pattern(i: int, n: int) -> bytes:
    shift = (i * 31) & 0xFF
    return BASE[:n].translate(bytes((k + shift) & 0xFF for k in range(256)))


def fsize(i: int) -> int:
    return (i * 1237) % 20000 + 1


class Victim:
    """xinim-run or xinim-boot running the durability program; reads its 'ok N'."""

    def __init__(self, kind: str, img: Path, bindir: Path, first: int, tmp: Path) -> None:
        prog = ["/t/durability", "/root/dur", str(first)]
        self.master = -1
        if kind == "run":
            cmd = [str(XINIM_RUN), "--image", str(img), "--bind", f"{bindir}:/t", *prog]
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
            self.fd = self.proc.stdout.fileno()             # type: ignore[union-attr]
        else:
            master, slave = pty.openpty()
            cmd = [sys.executable, "-m", "xinim_host.cli.boot", "--serial", "stdio",
                   "--socket", str(tmp / "node.sock"), "--image", str(img),
                   "--bind", f"{bindir}:/t", "--init", *prog]
            self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave,
                                         stderr=subprocess.PIPE, start_new_session=True)
            os.close(slave)
            self.fd = self.master = master
        self.out = bytearray()
        self.oks: list[int] = []

    def pump(self, until: float, first_ok: bool = False) -> None:
        while (left := until - time.monotonic()) > 0:
            if first_ok and re.search(rb"ok \d+\r?\n", bytes(self.out)):
                break
            if not select.select([self.fd], [], [], left)[0]:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            self.out += chunk
        self.oks = [int(m) for m in re.findall(rb"ok (\d+)\r?\n", bytes(self.out))]

    def kill(self) -> None:
        self.proc.kill()                                    # SIGKILL, the system only
        self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)        # stragglers of the session
        except ProcessLookupError:
            pass
        self.pump(time.monotonic() + 0.2)                   # what was printed before
        self.err = self.proc.stderr.read().decode(errors="replace")   # type: ignore[union-attr]
        self.proc.stderr.close()                            # type: ignore[union-attr]
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.master >= 0:
            os.close(self.master)


def check_image(img: Path, synced: list[int], msynced: int | None) -> Ramfs:
    fs = open_image(img, clean_temps=False)                 # readable, every time
    assert fs is not None
    for i in synced:
        node = lookup(fs, b"/root/dur/f%d" % i)
        assert content(fs, node) == pattern(i, fsize(i)), f"f{i} lost or damaged"
    if not synced:
        return fs
    dur = lookup(fs, b"/root/dur")
    lines = content(fs, lookup(fs, b"/root/dur/log")).split(b"\n")
    assert lines[-1] == b"" and all(re.fullmatch(rb"line \d+", x) for x in lines[:-1]), lines[-3:]
    assert set(synced) <= {int(x[5:]) for x in lines[:-1]}
    present = sorted(int(n[1:]) for n in dur.entries if re.fullmatch(rb"f\d+", n))
    cur = content(fs, lookup(fs, b"/root/dur/cur"))         # atomic rename: some whole round
    assert any(cur == pattern(g, fsize(g)) for g in present if g >= max(synced)), len(cur)
    if msynced is not None:
        m = content(fs, lookup(fs, b"/root/dur/m"))
        for half in (slice(0, 4096), slice(4096, 8192)):
            assert any(m[half] == pattern(g, 4096) for g in present
                       if g % 4 == 0 and g >= msynced), "msync'd page lost"
    return fs


@pytestmark_e2e
def test_kill_9_at_random_moments_loses_nothing_synced(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(bindir / "durability"),
                    str(C_DIR / "durability.c")], check=True, timeout=120)
    img = tmp_path / "state.img"
    rng = random.Random(20240611)
    synced: list[int] = []
    msynced: int | None = None
    left_temps: list[str] = []
    kills = 0
    deadline = time.monotonic() + 40                        # bounded, whatever the machine
    for round_no in range(16):
        if time.monotonic() > deadline and round_no >= 6:
            break
        kind = "boot" if round_no % 4 == 3 else "run"
        planted = tmp_path / f".state.img.planted{round_no}.tmp"   # as a kill mid-save leaves
        planted.write_bytes(b"half an image")
        left_temps.append(planted.name)
        v = Victim(kind, img, bindir, (round_no + 1) * 100000, tmp_path)
        start = time.monotonic()
        if round_no % 3 == 2:                               # while it starts (replay, checkpoint)
            v.pump(start + rng.uniform(0.05, 1.5))
        else:                                               # while it writes and syncs
            v.pump(start + 15, first_ok=True)
            v.pump(time.monotonic() + rng.uniform(0.0, 1.0))
        if left_temps and v.oks:                            # the start removed them
            assert not set(left_temps) & set(temps(img)), left_temps
        v.kill()
        kills += 1
        synced += v.oks
        done = [i for i in v.oks if i % 4 == 0]
        if done:
            msynced = max(done)
        assert "Traceback" not in v.err, v.err[-3000:]
        check_image(img, synced, msynced)
        left_temps = temps(img)
    assert kills >= 6 and synced, "the program never got going"
    # a clean run at the end: starts from it all, removes temps, exits 0
    out = subprocess.run([str(XINIM_RUN), "--image", str(img), "--bind", f"{bindir}:/t",
                          "/t/durability", "/root/dur", "9000000", "3"],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert temps(img) == []
    check_image(img, synced + [9000000, 9000001, 9000002], 9000000)
