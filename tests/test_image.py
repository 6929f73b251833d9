"""Ramfs images: exact round trip, atomic save, refusal of bad files, and the
round trip of a tree written through the FUSE mount."""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest
import trio

from xinim_host.vfs_fuse import image as image_mod
from xinim_host.vfs_fuse.fuse_export import serve_fuse
from xinim_host.vfs_fuse.image import ImageError, load_image, save_image, verify_image
from xinim_host.vfs_fuse.ramfs import PAGE, Inode, Ramfs


def snapshot(fs: Ramfs) -> list[tuple]:
    """Everything an image must keep, with inode identity as first-seen order."""
    ids: dict[int, int] = {}
    out: list[tuple] = []

    def walk(d: Inode, path: bytes) -> None:
        for name, ino in d.entries.items():
            p = path + b"/" + name
            first = ino.ino not in ids
            ident = ids.setdefault(ino.ino, len(ids))
            row: tuple = (p, ident, ino.mode, ino.uid, ino.gid, ino.nlink, ino.rdev,
                          ino.size, ino.blocks, ino.atime_ns, ino.mtime_ns, ino.ctime_ns)
            if first and stat.S_ISREG(ino.mode):
                h = hashlib.sha256()
                for idx in sorted(ino.pages):
                    h.update(idx.to_bytes(8, "little"))
                    h.update(ino.pages[idx])
                row += (sorted(ino.pages)[:4], h.hexdigest())
            if stat.S_ISLNK(ino.mode):
                row += (ino.target,)
            out.append(row)
            if stat.S_ISDIR(ino.mode):
                walk(ino, p)

    r = fs.root
    out.append((b"/", r.mode, r.uid, r.gid, r.nlink, r.atime_ns, r.mtime_ns, r.ctime_ns))
    walk(fs.root, b"")
    return out


def sample_tree() -> Ramfs:
    fs = Ramfs()
    r = fs.root
    d = fs.mkdir(r, b"dir", 0o750, 1000, 100)
    sub = fs.mkdir(d, b"sub", 0o2775, 0, 50)
    f = fs.mknod(d, b"file", stat.S_IFREG | 0o4755, 7, 8)
    fs.write(f, 0, b"hello world\n")
    sparse = fs.mknod(r, b"sparse", stat.S_IFREG | 0o600, 0, 0)
    fs.write(sparse, (1 << 30) - 1, b"Z")                # 1 GiB, one page
    fs.write(sparse, 5 * PAGE + 17, b"middle")
    fs.link(f, sub, b"hardlink")
    fs.link(f, r, b"another")
    fs.symlink(r, b"sym", b"dir/file", 3, 4)
    fs.symlink(sub, b"dangling", b"/nowhere/" + b"x" * 200, 0, 0)
    fs.mknod(r, b"fifo", stat.S_IFIFO | 0o640, 0, 0)
    fs.mknod(r, b"null", stat.S_IFCHR | 0o666, 0, 0, os.makedev(1, 3))
    fs.mknod(r, b"blk", stat.S_IFBLK | 0o660, 0, 6, os.makedev(8, 1))
    fs.mknod(sub, b"empty", stat.S_IFREG | 0o444, 0, 0)
    fs.mknod(r, "ünï cödé\n name".encode(), stat.S_IFREG | 0o644, 0, 0)
    fs.truncate(fs.mknod(r, b"hole", stat.S_IFREG | 0o644, 0, 0), 3 * PAGE + 1)
    fs.setattr(f, atime_ns=123456789, mtime_ns=987654321012345678)
    fs.setattr(r, mode=0o1777)
    return fs


def test_round_trip_exact(tmp_path: Path) -> None:
    fs = sample_tree()
    img = tmp_path / "root.img"
    size = save_image(fs, img)
    assert img.stat().st_size == size
    assert size < 64 * 1024                       # the 1 GiB sparse file costs pages only
    fs2 = load_image(img)
    assert snapshot(fs2) == snapshot(fs)
    # saving the loaded tree gives the same bytes: the format is deterministic
    save_image(fs2, tmp_path / "again.img")
    assert (tmp_path / "again.img").read_bytes() == img.read_bytes()
    f2 = fs2.lookup(fs2.lookup(fs2.root, b"dir"), b"file")
    assert fs2.lookup(fs2.root, b"another") is f2 and f2.nlink == 3
    sparse = fs2.lookup(fs2.root, b"sparse")
    assert sparse.size == 1 << 30 and len(sparse.pages) == 2
    assert fs2.read(sparse, 5 * PAGE + 17, 6) == b"middle"
    assert fs2.pages_used == fs.pages_used


def test_load_into_given_empty_ramfs(tmp_path: Path) -> None:
    fs = sample_tree()
    save_image(fs, tmp_path / "i")
    target = Ramfs(capacity=1 << 30)
    assert load_image(tmp_path / "i", target) is target
    assert snapshot(target) == snapshot(fs)
    with pytest.raises(ValueError):
        load_image(tmp_path / "i", target)


def test_truncated_image_refused_and_kept(tmp_path: Path) -> None:
    fs = sample_tree()
    img = tmp_path / "root.img"
    size = save_image(fs, img)
    full = img.read_bytes()
    for cut in (size - 1, size - 32, size // 2, 20, 9, 3, 0):
        img.write_bytes(full[:cut])
        with pytest.raises(ImageError, match="truncated|checksum|not a XINIM") as ei:
            load_image(img)
        assert str(img) in str(ei.value)
        assert img.exists() and img.stat().st_size == cut   # left untouched
    img.write_bytes(full)
    load_image(img)


def test_corrupt_and_foreign_images_refused(tmp_path: Path) -> None:
    fs = sample_tree()
    img = tmp_path / "root.img"
    save_image(fs, img)
    good = bytearray(img.read_bytes())
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x40
    img.write_bytes(bad)
    with pytest.raises(ImageError, match="corrupt"):
        load_image(img)
    assert img.read_bytes() == bad
    img.write_bytes(b"#!/bin/sh\necho this is not an image\n" * 10)
    with pytest.raises(ImageError, match="not a XINIM ramfs image"):
        load_image(img)
    future = bytearray(good)
    future[8] = 99                                # version field
    img.write_bytes(future)
    with pytest.raises(ImageError, match="version 99"):
        verify_image(img)
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.img")


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = sample_tree()
    img = tmp_path / "root.img"
    save_image(fs, img)
    before = img.read_bytes()
    fs.mknod(fs.root, b"later", stat.S_IFREG | 0o644, 0, 0)
    real = image_mod._write_tree

    def failing(ramfs: Ramfs, w: image_mod._HashingWriter) -> None:
        real(ramfs, w)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(image_mod, "_write_tree", failing)
    with pytest.raises(ImageError, match="No space left"):
        save_image(fs, img)
    assert img.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root.img"]   # no temp left
    monkeypatch.undo()
    save_image(fs, img)
    assert b"later" in load_image(img).root.entries


# ------------------------------------------------------------------ through FUSE
needs_fuse = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or os.geteuid() != 0 or shutil.which("fusermount3") is None,
    reason="needs /dev/fuse, fuse3 and root")

WRITE_TREE = """
set -e
mkdir -p etc/sub home/user
printf 'root:x:0:0\\n' > etc/passwd; chmod 644 etc/passwd
echo secret > home/user/key; chmod 600 home/user/key; chown 1000:1000 home/user home/user/key
echo tool > bin-tool; chmod 4755 bin-tool
ln -s ../etc/passwd etc/sub/link
ln etc/passwd etc/hard
mkfifo home/fifo
truncate -s 1G sparse; printf X | dd of=sparse bs=1 seek=12345678 conv=notrunc status=none
dd if=/dev/urandom of=big bs=1M count=100 status=none
touch -d '1999-12-31 23:59:59.5' etc/passwd
"""
MANIFEST = ("find . -printf '%p %y %m %U %G %n %s %b %T@ %C@ %l\\n' | sort; "
            "find . -type f -size -200M -print0 | sort -z | xargs -0 sha256sum; du -sk .; "
            "dd if=sparse bs=1 skip=12345678 count=1 status=none; echo")


async def _with_mount(fs: Ramfs, mp: Path, script: str) -> str:
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve_fuse, fs, mp))
        r = await trio.run_process(["bash", "-c", script], cwd=str(mp),
                                   capture_stdout=True, capture_stderr=True, check=False)
        nursery.cancel_scope.cancel()
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


@needs_fuse
async def test_image_round_trip_through_mount(tmp_path: Path) -> None:
    mp = tmp_path / "mnt"
    img = tmp_path / "xinim.img"
    fs = Ramfs()
    before = await _with_mount(fs, mp, WRITE_TREE + MANIFEST)
    await trio.to_thread.run_sync(save_image, fs, img)
    size = img.stat().st_size
    assert (100 << 20) < size < (101 << 20)
    fs2 = await trio.to_thread.run_sync(load_image, img)
    after = await _with_mount(fs2, mp, MANIFEST)
    assert after == before
    assert "./big f 644 0 0 1 104857600" in after
    assert "./etc/passwd f 644 0 0 2 11 8 946684799.5" in after
    assert "./sparse f 644 0 0 1 1073741824 8 " in after and after.endswith("X\n")
    assert "./bin-tool f 4755" in after
    # a truncated copy is refused and stays on disk
    with open(img, "r+b") as f:
        f.truncate(size // 3)
    with pytest.raises(ImageError):
        await trio.to_thread.run_sync(load_image, img)
    assert img.stat().st_size == size // 3


def test_save_and_load_stream(tmp_path: Path) -> None:
    """A big file is never held twice in memory: save streams page by page,
    load reads each page straight into the page the ramfs keeps."""
    import tracemalloc
    fs = Ramfs()
    f = fs.mknod(fs.root, b"big", stat.S_IFREG | 0o644, 0, 0)
    block = os.urandom(1 << 20)
    for i in range(48):
        fs.write(f, i << 20, block)
    img = tmp_path / "big.img"
    tracemalloc.start()
    try:
        save_image(fs, img)
        _, peak = tracemalloc.get_traced_memory()
        assert peak < 8 << 20, f"save peaked at {peak >> 20} MiB"
        tracemalloc.reset_peak()
        fs2 = load_image(img)
        current, peak = tracemalloc.get_traced_memory()
        assert current >= 48 << 20                  # the loaded pages themselves
        assert peak - current < 8 << 20, f"load overhead {(peak - current) >> 20} MiB"
    finally:
        tracemalloc.stop()
    assert fs2.read(fs2.lookup(fs2.root, b"big"), 47 << 20, 1 << 20) == block
