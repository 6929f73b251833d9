"""The ramfs exported through a real FUSE mount (tests run as root).

Blocking I/O on the mount happens in subprocesses (trio.run_process) or worker
threads (trio.to_thread.run_sync), never on the trio thread that serves it.
"""
from __future__ import annotations

import ctypes
import functools
import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import trio

from xinim_host.vfs_fuse.fuse_export import RamfsFuse, serve_fuse
from xinim_host.vfs_fuse.mountpoint import read_mountinfo
from xinim_host.vfs_fuse.ramfs import Ramfs

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or os.geteuid() != 0 or shutil.which("fusermount3") is None,
    reason="needs /dev/fuse, fuse3 and root")


class Mount:
    def __init__(self, fs: Ramfs, ops: RamfsFuse, path: Path) -> None:
        self.fs, self.ops, self.path = fs, ops, path


@pytest.fixture
async def mnt(nursery: trio.Nursery, tmp_path: Path) -> Mount:
    fs = Ramfs()
    ops = RamfsFuse(fs)
    # allow_other: test_permissions_for_other_users looks in as another user
    path = await nursery.start(functools.partial(serve_fuse, fs, tmp_path / "mnt", ops=ops,
                                                 options=["allow_other"]))
    return Mount(fs, ops, path)


async def sh(script: str, cwd: Path | str, check: bool = True) -> str:
    r = await trio.run_process(["bash", "-c", script], cwd=str(cwd), capture_stdout=True,
                               capture_stderr=True, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"{script!r} failed ({r.returncode}): {r.stderr.decode()}"
                             f"\nstdout: {r.stdout.decode()}")
    return r.stdout.decode() + r.stderr.decode()


async def differential(script: str, mnt: Mount) -> tuple[str, str]:
    """Run ``script`` in a fresh dir ``p/w`` on a kernel tmpfs and in the mount."""
    outs = []
    shm = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="xinim-diff-"))
    try:
        for base in (shm, mnt.path):
            p = base / "p"
            for d in (p, p / "w"):
                await trio.to_thread.run_sync(os.mkdir, d)
                await trio.to_thread.run_sync(os.chmod, d, 0o755)
            outs.append(await sh(script, p / "w"))
    finally:
        await trio.to_thread.run_sync(shutil.rmtree, shm)
    return outs[0], outs[1]


ACCEPTANCE = ("mkdir -p a/b && echo hi > a/b/f && cat a/b/f && cp -r a c && mv c d && "
              "ln -s d/b/f s && cat s && ln d/b/f h && stat -c %h h && rm -r a d s h && "
              "ls -la --time-style=+T")


async def test_acceptance_script_same_as_tmpfs(mnt: Mount) -> None:
    tmpfs, xinim = await differential(ACCEPTANCE, mnt)
    assert xinim == tmpfs
    assert xinim.startswith("hi\nhi\n2\n")


TOOLS = r"""
set -e
umask 022
mkdir -p x/y/z; echo hello > x/y/z/f; printf abc > x/g; ln -s y x/l; mkfifo x/p; mknod x/c c 1 3
find . | sort
find . -type f | sort
find . -type d -empty
find . -name 'f' -newer x/g -o -name g -print | sort
du -a . | sort -k2
du -a --apparent-size -b . | sort -k2
touch -d '2001-02-03 04:05:06.123456789' x/g
stat -c '%n %s %h %f %u %g %x %y' x/g
touch -m -d @1000000000 x/g; stat -c '%Y' x/g
touch -a -d @1100000000.5 x/g; stat -c '%X %x' x/g
chmod 4751 x/g; stat -c '%a %A' x/g
chown 1234:5678 x/g; stat -c '%u %g %a' x/g
chmod 6755 x/g; chown :99 x/g; stat -c '%u %g %a' x/g
chgrp 4321 x/y; chmod 2775 x/y; mkdir x/y/sub; touch x/y/sf; stat -c '%n %a %g' x/y x/y/sub x/y/sf
truncate -s 1G big; du -k big; stat -c '%s %b' big
truncate -s 2 x/g; cat x/g; echo
printf 'Z' | dd of=big bs=1 seek=$((1<<30)) conv=notrunc status=none; du -k big; stat -c %s big
stat -c '%F|%h|%s|%a|%t,%T' x x/l x/p x/c x/y/z/f x/y
readlink x/l; cat x/l/z/f
ls -la --time-style=+T x
stat -f -c '%l' .
mv x/y/z/f x/y/z/f2; ln x/y/z/f2 x/hard; stat -c '%h' x/hard; rm x/y/z/f2; stat -c '%h' x/hard
echo more >> x/hard; cat x/hard
rm -r x big; ls -a
"""


async def test_host_tools_same_as_tmpfs(mnt: Mount) -> None:
    tmpfs, xinim = await differential(TOOLS, mnt)
    assert xinim == tmpfs
    assert "1073741824 8\n" in xinim or "1073741824 0\n" in xinim   # sparse


async def test_ramfs_changes_visible_at_once(mnt: Mount) -> None:
    """The kernel caches names, attributes and pages (1 s timeouts, keep_cache);
    every change made behind its back is invalidated: once wait_invalidated
    returns (the VFS's replies wait the same way) the host sees it, although
    each check below comes well inside the timeout of what it cached."""
    fs, ops = mnt.fs, mnt.ops
    assert ops.entry_timeout > 0 and ops.attr_timeout > 0 and ops.keep_cache
    assert await sh("test -e new || echo absent", mnt.path) == "absent\n"   # cached too
    f = fs.mknod(fs.root, b"new", stat.S_IFREG | 0o644, 0, 0)
    fs.write(f, 0, b"one\n")
    await ops.wait_invalidated()
    assert await sh("cat new; ls", mnt.path) == "one\nnew\n"
    fs.write(f, 0, b"two\n")
    await ops.wait_invalidated()
    assert await sh("cat new", mnt.path) == "two\n"
    d = fs.mkdir(fs.root, b"dir", 0o755, 0, 0)
    fs.symlink(d, b"link", b"../new", 0, 0)
    await ops.wait_invalidated()
    assert await sh("ls dir; cat dir/link", mnt.path) == "link\ntwo\n"
    fs.unlink(d, b"link")
    fs.rename(fs.root, b"new", d, b"moved")
    await ops.wait_invalidated()
    assert await sh("ls; ls dir; test ! -e new && cat dir/moved", mnt.path) == "dir\nmoved\ntwo\n"
    fs.setattr(f, mode=0o600, uid=42, mtime_ns=10**18)
    await ops.wait_invalidated()
    assert await sh("stat -c '%a %u %Y' dir/moved", mnt.path) == "600 42 1000000000\n"
    fs.truncate(f, 1)
    await ops.wait_invalidated()
    assert await sh("cat dir/moved; stat -c ' %s' dir/moved", mnt.path) == "t 1\n"
    assert ops.stats["invalidate_entry"] and ops.stats["invalidate_inode"]


async def test_fence_holds_a_reply_until_the_kernel_is_told(mnt: Mount) -> None:
    """Ramfs.after_published (what the VFS's replies go through): nothing
    pending runs at once; after a change to something the kernel caches, the
    callback runs only once that invalidation has gone out."""
    fs, ops = mnt.fs, mnt.ops
    ran: list[int] = []
    assert fs.after_published(lambda: ran.append(0)) is False     # nothing to wait for
    fs.mknod(fs.root, b"unseen", stat.S_IFREG | 0o644, 0, 0)       # root is always known
    await ops.wait_invalidated()
    await sh("printf abc > f; stat -c %s f", mnt.path)             # the kernel caches f
    f = fs.lookup(fs.root, b"f")
    sent = ops.stats["invalidate_inode"]
    fs.write(f, 0, b"abcdef")
    assert fs.after_published(lambda: ran.append(ops.stats["invalidate_inode"])) is True
    assert ran == []
    with trio.fail_after(10):
        while not ran:
            await trio.sleep(0.001)
    assert ran[0] > sent                                          # after, not before
    assert await sh("stat -c %s f; cat f", mnt.path) == "6\nabcdef"
    # an inode the kernel never looked up holds nothing
    g = fs.mknod(fs.mkdir(fs.root, b"d2", 0o755, 0, 0), b"g", stat.S_IFREG | 0o644, 0, 0)
    await ops.wait_invalidated()
    fs.write(g, 0, b"x")
    assert fs.after_published(lambda: None) is False


MMAP_READER = r"""
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
mm = mmap.mmap(fd, 8192, prot=mmap.PROT_READ)
print(mm[:4].decode(), flush=True)
sys.stdin.readline()
print(mm[:4].decode(), flush=True)
"""


async def test_invalidation_reaches_mapped_pages(mnt: Mount) -> None:
    """An mmap reads the kernel's cached pages without asking us: only an
    explicit invalidate_inode makes a XINIM-side write visible there.  (The
    mapping lives in a subprocess: a fault inside this process would wait for
    the server while holding the GIL the server needs.)"""
    fs = mnt.fs
    f = fs.mknod(fs.root, b"m", stat.S_IFREG | 0o644, 0, 0)
    fs.write(f, 0, b"A" * 8192)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", MMAP_READER, str(mnt.path / "m")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        with trio.fail_after(10):
            out = b""
            while out.count(b"\n") < 1:
                out += await proc.stdout.receive_some()
            assert out == b"AAAA\n"
            fs.write(f, 0, b"BBBB")
            await mnt.ops.wait_invalidated()
            await proc.stdin.send_all(b"go\n")
            while out.count(b"\n") < 2:
                chunk = await proc.stdout.receive_some()
                if not chunk:
                    break
                out += chunk
            assert out == b"AAAA\nBBBB\n"
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert mnt.ops.stats["invalidate_inode"] >= 1


async def test_mount_changes_visible_in_ramfs(mnt: Mount) -> None:
    await sh("echo data > m; mkdir md; ln -s m md/ml; ln m hl; chmod 640 m; "
             "mkfifo md/fifo", mnt.path)
    fs = mnt.fs
    m = fs.lookup(fs.root, b"m")
    assert fs.read(m, 0, 100) == b"data\n"
    assert m.nlink == 2 and fs.lookup(fs.root, b"hl") is m
    assert m.mode == stat.S_IFREG | 0o640
    md = fs.lookup(fs.root, b"md")
    assert fs.lookup(md, b"ml").target == b"m"
    assert stat.S_ISFIFO(fs.lookup(md, b"fifo").mode)
    assert mnt.ops.stats["invalidate_entry"] == 0   # our own changes need none


async def test_unlinked_open_file_lives_until_forget(mnt: Mount) -> None:
    fs = mnt.fs
    await sh("printf payload > gone", mnt.path)
    inode = fs.lookup(fs.root, b"gone")
    fd = await trio.to_thread.run_sync(os.open, mnt.path / "gone", os.O_RDWR)
    fs.unlink(fs.root, b"gone")          # a XINIM process removes it
    assert inode.ino in fs.inodes        # held: open handle and lookup count
    assert await trio.to_thread.run_sync(os.pread, fd, 100, 0) == b"payload"
    await trio.to_thread.run_sync(os.pwrite, fd, b"P", 0)
    assert fs.read(inode, 0, 100) == b"Payload"
    await trio.to_thread.run_sync(os.close, fd)
    # Our invalidate_entry unhashed the kernel's dentry; with the file closed
    # the kernel evicts the inode and its FORGET drops the last hold.
    with trio.fail_after(5):
        while inode.ino in fs.inodes:
            await trio.sleep(0.01)
    assert inode.holds == 0


async def test_unlink_through_mount_keeps_open_file(mnt: Mount) -> None:
    def work() -> bytes:
        p = mnt.path / "tmpfile"
        with open(p, "w+b") as f:
            f.write(b"x" * 10000)
            f.flush()
            os.unlink(p)
            assert not p.exists()
            f.seek(0)
            return f.read()
    assert await trio.to_thread.run_sync(work) == b"x" * 10000


async def test_readdir_offsets_stable_under_changes(mnt: Mount) -> None:
    fs = mnt.fs
    d = fs.mkdir(fs.root, b"big", 0o755, 0, 0)
    names = [b"f%05d" % i for i in range(3000)]
    for n in names:
        fs.mknod(d, n, stat.S_IFREG | 0o644, 0, 0)
    token = trio.lowlevel.current_trio_token()

    def churn() -> None:
        # Delete every other not-yet-seen... name and add new ones while
        # a listing is half done (as XINIM processes may).
        for n in names[1000:2000:2]:
            fs.unlink(d, n)
        for i in range(50):
            fs.mknod(d, b"new%03d" % i, stat.S_IFREG | 0o644, 0, 0)

    def listing() -> list[str]:
        seen = []
        with os.scandir(mnt.path / "big") as it:
            for i, e in enumerate(it):
                seen.append(e.name)
                if i == 100:
                    trio.from_thread.run_sync(churn, trio_token=token)
        return seen

    seen = await trio.to_thread.run_sync(listing)
    assert len(seen) == len(set(seen)), "an entry was listed twice"
    removed = {n.decode() for n in names[1000:2000:2]}
    survivors = {n.decode() for n in names} - removed
    assert survivors <= set(seen), "a surviving entry was skipped"
    assert not (set(seen) & removed - set(seen[:101]))
    assert (await sh("ls big | wc -l", mnt.path)).strip() == str(3000 - 500 + 50)
    await sh("rm -r big", mnt.path)
    assert b"big" not in fs.root.entries


def _renameat2(old: Path, new: Path, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD = -100
    if libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


async def test_rename_noreplace_and_exchange(mnt: Mount) -> None:
    await sh("echo A > a; echo B > b; mkdir d; echo C > d/c", mnt.path)
    with pytest.raises(OSError) as ei:
        await trio.to_thread.run_sync(_renameat2, mnt.path / "a", mnt.path / "b", 1)
    assert ei.value.errno == errno.EEXIST
    await trio.to_thread.run_sync(_renameat2, mnt.path / "a", mnt.path / "d", 2)
    assert await sh("cat d; cat a/c", mnt.path) == "A\nC\n"
    fs = mnt.fs
    assert fs.read(fs.lookup(fs.root, b"d"), 0, 10) == b"A\n"
    with pytest.raises(OSError) as ei:
        await trio.to_thread.run_sync(os.rename, mnt.path / "a", mnt.path / "a" / "sub")
    assert ei.value.errno == errno.EINVAL
    await trio.to_thread.run_sync(os.rename, mnt.path / "b", mnt.path / "d")
    assert await sh("cat d; ls", mnt.path) == "B\na\nd\n"


async def test_permissions_for_other_users(mnt: Mount) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv missing")
    await sh("echo s > secret; chmod 600 secret; echo p > public; mkdir ro; chmod 555 ro",
             mnt.path)
    out = await sh("setpriv --reuid=65534 --regid=65534 --clear-groups "
                   "bash -c 'cat public; cat secret; touch ro/x; echo end'", mnt.path,
                   check=False)
    assert out.startswith("p\n")
    assert "secret: Permission denied" in out
    assert "ro/x" in out and "Permission denied" in out.split("ro/x", 1)[1]
    assert out.rstrip().endswith("end") or "end" in out


async def test_statfs_and_big_writes(mnt: Mount) -> None:
    st = await trio.to_thread.run_sync(os.statvfs, mnt.path)
    assert st.f_namemax == 255
    data = os.urandom(3 << 20)

    def rw() -> bytes:
        p = mnt.path / "blob"
        with open(p, "wb") as f:
            f.write(data)
        with open(p, "rb") as f:
            return f.read()
    assert await trio.to_thread.run_sync(rw) == data
    assert mnt.fs.lookup(mnt.fs.root, b"blob").size == len(data)
    long = "n" * 256
    with pytest.raises(OSError) as ei:
        await trio.to_thread.run_sync(Path(mnt.path / long).write_text, "x")
    assert ei.value.errno == errno.ENAMETOOLONG


async def test_unmount_releases_everything(tmp_path: Path) -> None:
    fs = Ramfs()
    ops = RamfsFuse(fs)
    async with trio.open_nursery() as nursery:
        mp = await nursery.start(functools.partial(serve_fuse, fs, tmp_path / "m2", ops=ops))
        await sh("mkdir -p a/b; echo x > a/b/f; ls -R > /dev/null", mp)
        fd = await trio.to_thread.run_sync(os.open, mp / "a" / "b" / "f", os.O_RDONLY)
        fs.unlink(fs.lookup(fs.lookup(fs.root, b"a"), b"b"), b"f")
        nursery.cancel_scope.cancel()
    try:
        os.close(fd)
    except OSError:
        pass
    assert all(i.holds == 0 for i in fs.inodes.values())
    assert len(fs.inodes) == 3                     # root, a, b: f was freed
    assert not any(e.mountpoint == str(mp) for e in read_mountinfo())


async def test_one_mount_per_process(mnt: Mount, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="one mount per process"):
        await serve_fuse(Ramfs(), tmp_path / "other")


async def test_overwrite_truncates_and_appends(mnt: Mount) -> None:
    out = await sh("echo a-long-line > f; echo s > f; cat f; echo t >> f; cat f; "
                   ": > f; stat -c %s f; printf '%s' xyz | dd of=f bs=1 seek=5 "
                   "conv=notrunc status=none; od -An -c f", mnt.path)
    assert out == "s\ns\nt\n0\n  \\0  \\0  \\0  \\0  \\0   x   y   z\n"
    f = mnt.fs.lookup(mnt.fs.root, b"f")
    assert mnt.fs.read(f, 0, 100) == b"\0" * 5 + b"xyz"


async def test_unmount_from_outside_ends_serve(tmp_path: Path) -> None:
    fs = Ramfs()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            mp = await nursery.start(serve_fuse, fs, tmp_path / "ext")
            await sh("echo x > f", mp)
            await trio.run_process(["fusermount3", "-u", str(mp)])
        # serve_fuse returned on its own: no cancel needed
    assert not any(e.mountpoint == str(mp) for e in read_mountinfo())
    assert b"f" in fs.root.entries
    # and the next mount at the same place works
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_fuse, fs, mp)
        assert await sh("cat f", mp) == "x\n"
        nursery.cancel_scope.cancel()


async def test_refused_mountpoint_leaves_no_state(tmp_path: Path) -> None:
    d = tmp_path / "full"
    d.mkdir()
    (d / "keep").write_text("x")
    from xinim_host.vfs_fuse.mountpoint import MountpointError
    with pytest.raises(MountpointError):
        await serve_fuse(Ramfs(), d)
    fs = Ramfs()
    async with trio.open_nursery() as nursery:     # still usable afterwards
        await nursery.start(serve_fuse, fs, tmp_path / "ok")
        nursery.cancel_scope.cancel()
    assert (d / "keep").read_text() == "x"


async def test_concurrent_changes_on_both_sides(mnt: Mount) -> None:
    """XINIM-side churn while host tools work in the same directories: no
    deadlock between invalidations and requests, and both views agree after."""
    fs = mnt.fs
    d = fs.mkdir(fs.root, b"c", 0o755, 0, 0)
    stop = trio.Event()

    async def xinim_side() -> None:
        i = 0
        while not stop.is_set():
            name = b"x%d" % (i % 50)
            try:
                f = fs.mknod(d, name, stat.S_IFREG | 0o644, 0, 0)
                fs.write(f, 0, b"v%d\n" % i)
                if i % 3 == 0:
                    fs.rename(d, name, d, b"r%d" % (i % 7))
                elif i % 3 == 1:
                    fs.unlink(d, name)
            except Exception:
                pass
            i += 1
            await trio.sleep(0.0005)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(xinim_side)
            await sh("for i in $(seq 25); do ls -la c > /dev/null; cat c/* > /dev/null 2>&1; "
                     "echo h > c/h$i; mv c/h$i c/m$((i % 5)); ls -R > /dev/null; done; true",
                     mnt.path)
            stop.set()
        await mnt.ops.wait_invalidated()
    host = set((await sh("ls -A c", mnt.path)).split())
    assert host == {n.decode() for n in d.entries}
    for name, inode in list(d.entries.items()):
        assert (await sh(f"cat c/{name.decode()}", mnt.path)).encode() == fs.read(inode, 0, 100)


async def test_host_append_after_xinim_append(mnt: Mount) -> None:
    """O_APPEND writes land at the ramfs's end even when a XINIM process
    appended since the host's kernel last learned the size."""
    fs = mnt.fs
    fd = await trio.to_thread.run_sync(
        lambda: os.open(mnt.path / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
    try:
        await trio.to_thread.run_sync(os.write, fd, b"host1\n")
        log_inode = fs.lookup(fs.root, b"log")
        fs.write(log_inode, log_inode.size, b"xinim\n")
        await trio.to_thread.run_sync(os.write, fd, b"host2\n")
    finally:
        await trio.to_thread.run_sync(os.close, fd)
    assert fs.read(log_inode, 0, 100) == b"host1\nxinim\nhost2\n"
    assert await sh("cat log", mnt.path) == "host1\nxinim\nhost2\n"


@pytest.mark.parametrize("spin_s", [0.0, 30e-6])
async def test_request_loop_with_and_without_spin(tmp_path: Path, spin_s: float) -> None:
    """serve_fuse gives pyfuse3 the cheaper loop (fuse_loop: a lock without a
    scheduler turn, a short poll before sleeping) while it serves, and its
    own back afterwards; the answers are the same either way."""
    import pyfuse3

    from xinim_host.vfs_fuse import fuse_loop

    fs = Ramfs()
    async with trio.open_nursery() as nursery:
        mp = await nursery.start(functools.partial(serve_fuse, fs, tmp_path / "loop",
                                                   spin_s=spin_s))
        waiter = fuse_loop.installed()
        assert waiter is not None and pyfuse3.trio is not trio
        assert waiter.spin_s == spin_s
        out = await sh("for i in $(seq 50); do echo $i > f$i; cat f$i > /dev/null; "
                       "rm f$i; done; head -c 3000000 /dev/zero > big; "
                       "cat big | wc -c; rm big; ls", mp)
        assert out == "3000000\n"
        # every request the loop took went through one of the two paths
        assert waiter.fast + waiter.slow >= 50 * 3
        if not spin_s:
            assert waiter.fast == 0
        nursery.cancel_scope.cancel()
    assert fuse_loop.installed() is None and pyfuse3.trio is trio
    assert fs.root.entries == {}


async def test_big_files_through_the_mount_same_as_tmpfs(mnt: Mount) -> None:
    """1 MiB writes land in ramfs chunks and 1 MiB reads come back as slices
    of them; overwrites, truncates and appends in the middle of such files
    read back as on tmpfs."""
    script = ("seq 1 2000000 | head -c 5000000 > a; cp a b; "
              "dd if=a of=b bs=4096 skip=7 seek=3 count=10 conv=notrunc status=none; "
              "truncate -s 1234567 b; truncate -s 4194304 b; "
              "dd if=a of=b bs=1M count=2 seek=3 conv=notrunc status=none; "
              "printf xyz >> b; cat b b > c; md5sum a b c | cut -c1-32; stat -c %s a b c")
    tmpfs, xinim = await differential(script, mnt)
    assert xinim == tmpfs
    assert xinim.split()[-3:] == ["5000000", "5242883", "10485766"]
    fs = mnt.fs
    c = fs.lookup(fs.lookup(fs.lookup(fs.root, b"p"), b"w"), b"c")    # cat's big writes
    assert any(type(page) is memoryview for page in c.pages.values())   # chunked


class _CountingReads(RamfsFuse):
    """Counts READ requests (what the kernel could not serve from its pages)."""

    reads = 0

    async def read(self, fh: int, off: int, size: int):  # type: ignore[override]
        self.reads += 1
        return await super().read(fh, off, size)


async def test_reads_after_host_writes_come_from_page_cache(nursery: trio.Nursery,
                                                           tmp_path: Path) -> None:
    """auto_inval_data is off (fuse_conn): a file written through the mount is
    read back from the pages the writes filled, with no READ request; a
    same-size XINIM-side change (no size change for the kernel to notice) is
    still seen at once, through the explicit invalidation."""
    fs = Ramfs()
    ops = _CountingReads(fs)
    path = await nursery.start(functools.partial(serve_fuse, fs, tmp_path / "mnt", ops=ops))
    await sh("head -c 3145728 /dev/urandom > f && cmp f f && sync f", path)
    assert ops.auto_inval_data is False      # INIT was negotiated by now
    assert await sh("cat f | md5sum", path) == await sh("md5sum < f", path)
    assert ops.reads == 0
    f = fs.lookup(fs.root, b"f")
    fs.write(f, 4096, b"XINIM")
    await ops.wait_invalidated()
    assert await sh("dd if=f bs=1 skip=4096 count=5 status=none", path) == "XINIM"
    assert ops.reads >= 1
    data = await trio.to_thread.run_sync((path / "f").read_bytes)
    assert data == fs.read(f, 0, 3 << 20) and len(data) == 3 << 20
