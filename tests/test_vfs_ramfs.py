"""The ramfs on its own: the API the VFS server and the FUSE export share."""
from __future__ import annotations

import errno
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xinim_host.lib.errors import SysError
from xinim_host.vfs_fuse.ramfs import (PAGE, RENAME_EXCHANGE, RENAME_NOREPLACE, Inode, Ramfs)


def errno_of(fn, *args, **kw) -> str:
    try:
        fn(*args, **kw)
    except SysError as exc:
        return errno.errorcode[exc.errno]
    return "OK"


@pytest.fixture
def fs() -> Ramfs:
    return Ramfs()


def test_root(fs: Ramfs) -> None:
    assert fs.root.ino == 1 and fs.inodes[1] is fs.root
    assert stat.S_ISDIR(fs.root.mode) and fs.root.nlink == 2
    assert fs.lookup(fs.root, b"..") is fs.root and fs.lookup(fs.root, b".") is fs.root


def test_create_lookup_errors(fs: Ramfs) -> None:
    f = fs.mknod(fs.root, b"f", stat.S_IFREG | 0o644, 1000, 100)
    assert (f.uid, f.gid, f.nlink, f.size) == (1000, 100, 1, 0)
    assert fs.lookup(fs.root, b"f") is f
    assert errno_of(fs.lookup, fs.root, b"nope") == "ENOENT"
    assert errno_of(fs.lookup, f, b"x") == "ENOTDIR"
    assert errno_of(fs.mknod, fs.root, b"f", 0o644, 0, 0) == "EEXIST"
    assert errno_of(fs.mkdir, fs.root, b"f", 0o755, 0, 0) == "EEXIST"
    assert errno_of(fs.mknod, fs.root, b"n" * 256, 0o644, 0, 0) == "ENAMETOOLONG"
    assert errno_of(fs.mknod, fs.root, b"a/b", 0o644, 0, 0) == "EINVAL"
    assert errno_of(fs.mknod, fs.root, b"d", stat.S_IFDIR | 0o755, 0, 0) == "EINVAL"
    fifo = fs.mknod(fs.root, b"p", stat.S_IFIFO | 0o600, 0, 0)
    assert stat.S_ISFIFO(fifo.mode)
    chr_ = fs.mknod(fs.root, b"c", stat.S_IFCHR | 0o600, 0, 0, rdev=0x103)
    assert chr_.rdev == 0x103


def test_directory_nlink_and_parent_times(fs: Ramfs) -> None:
    d = fs.mkdir(fs.root, b"d", 0o755, 0, 0)
    assert fs.root.nlink == 3 and d.nlink == 2 and d.parent is fs.root
    t0 = d.mtime_ns
    e = fs.mkdir(d, b"e", 0o755, 0, 0)
    assert d.nlink == 3 and d.mtime_ns >= t0 and d.ctime_ns >= t0
    fs.mknod(d, b"f", 0o644, 0, 0)
    assert d.nlink == 3                                   # files do not count
    assert errno_of(fs.rmdir, fs.root, b"d") == "ENOTEMPTY"
    assert errno_of(fs.unlink, d, b"e") == "EISDIR"
    assert errno_of(fs.rmdir, d, b"f") == "ENOTDIR"
    fs.rmdir(d, b"e")
    assert d.nlink == 2 and e.nlink == 0 and e.ino not in fs.inodes
    fs.unlink(d, b"f")
    fs.rmdir(fs.root, b"d")
    assert fs.root.nlink == 2
    assert errno_of(fs.mknod, d, b"x", 0o644, 0, 0) == "ENOENT"   # creating in a removed dir


def test_links_and_ctime(fs: Ramfs) -> None:
    f = fs.mknod(fs.root, b"f", 0o644, 0, 0)
    d = fs.mkdir(fs.root, b"d", 0o755, 0, 0)
    c0 = f.ctime_ns
    fs.link(f, d, b"h")
    assert f.nlink == 2 and fs.lookup(d, b"h") is f and f.ctime_ns >= c0
    assert errno_of(fs.link, d, fs.root, b"d2") == "EPERM"
    fs.unlink(fs.root, b"f")
    assert f.nlink == 1 and f.ino in fs.inodes
    fs.unlink(d, b"h")
    assert f.ino not in fs.inodes


def test_hold_keeps_unlinked_inode(fs: Ramfs) -> None:
    f = fs.mknod(fs.root, b"f", 0o644, 0, 0)
    fs.write(f, 0, b"keep")
    fs.hold(f)
    fs.unlink(fs.root, b"f")
    assert f.ino in fs.inodes and fs.read(f, 0, 10) == b"keep"
    assert errno_of(fs.link, f, fs.root, b"again") == "ENOENT"
    fs.release(f)
    assert f.ino not in fs.inodes and fs.pages_used == 0
    with pytest.raises(ValueError):
        fs.release(f)


def test_sparse_gigabyte_costs_one_page(fs: Ramfs) -> None:
    f = fs.mknod(fs.root, b"big", 0o644, 0, 0)
    fs.truncate(f, 1 << 30)
    assert f.size == 1 << 30 and len(f.pages) == 0
    fs.write(f, (1 << 30) - 1, b"\x01")
    assert len(f.pages) == 1 and fs.pages_used == 1 and f.blocks == PAGE // 512
    assert fs.read(f, (1 << 30) - 2, 10) == b"\x00\x01"
    fs.truncate(f, 10**15)                                 # huge, still nothing allocated
    assert len(f.pages) == 1
    assert errno_of(fs.truncate, f, 1 << 63) == "EFBIG"
    fs.truncate(f, 5)
    assert len(f.pages) == 0 and fs.pages_used == 0


def test_truncate_zeroes_the_tail(fs: Ramfs) -> None:
    f = fs.mknod(fs.root, b"f", 0o644, 0, 0)
    fs.write(f, 0, b"abcdefgh")
    c0 = f.ctime_ns
    fs.truncate(f, 3)
    fs.truncate(f, 8)
    assert fs.read(f, 0, 100) == b"abc\0\0\0\0\0" and f.ctime_ns >= c0


def test_capacity_enospc() -> None:
    fs = Ramfs(capacity=4 * PAGE)
    f = fs.mknod(fs.root, b"f", 0o644, 0, 0)
    fs.write(f, 0, bytes(4 * PAGE))
    assert errno_of(fs.write, f, 4 * PAGE, b"x") == "ENOSPC"
    assert fs.statfs().f_bfree == 0 and fs.statfs().f_namemax == 255


def test_rename(fs: Ramfs) -> None:
    a = fs.mkdir(fs.root, b"a", 0o755, 0, 0)
    b = fs.mkdir(a, b"b", 0o755, 0, 0)
    f = fs.mknod(fs.root, b"f", 0o644, 0, 0)
    g = fs.mknod(fs.root, b"g", 0o644, 0, 0)
    assert errno_of(fs.rename, fs.root, b"a", b, b"x") == "EINVAL"        # own subtree
    assert errno_of(fs.rename, fs.root, b"a", a, b"x") == "EINVAL"
    assert errno_of(fs.rename, fs.root, b"f", fs.root, b"a") == "EISDIR"
    assert errno_of(fs.rename, fs.root, b"a", fs.root, b"f") == "ENOTDIR"
    assert errno_of(fs.rename, fs.root, b"f", fs.root, b"g", RENAME_NOREPLACE) == "EEXIST"
    assert errno_of(fs.rename, fs.root, b"f", fs.root, b"zz", RENAME_EXCHANGE) == "ENOENT"
    assert errno_of(fs.rename, fs.root, b"f", fs.root, b"g",
                    RENAME_EXCHANGE | RENAME_NOREPLACE) == "EINVAL"
    fs.rename(fs.root, b"f", fs.root, b"g", RENAME_EXCHANGE)
    assert fs.lookup(fs.root, b"f") is g and fs.lookup(fs.root, b"g") is f
    fs.rename(fs.root, b"g", fs.root, b"f")                     # replace
    assert fs.lookup(fs.root, b"f") is f and g.ino not in fs.inodes
    # a directory moves: nlink of both parents, its parent pointer
    fs.rename(a, b"b", fs.root, b"b")
    assert a.nlink == 2 and fs.root.nlink == 4 and b.parent is fs.root
    # replace an empty directory, not a full one
    c = fs.mkdir(fs.root, b"c", 0o755, 0, 0)
    fs.mknod(c, b"x", 0o644, 0, 0)
    assert errno_of(fs.rename, fs.root, b"a", fs.root, b"c") == "ENOTEMPTY"
    fs.rename(fs.root, b"c", fs.root, b"a")
    assert fs.lookup(fs.root, b"a") is c and a.nlink == 0 and fs.root.nlink == 4
    # exchange a file and a directory across directories
    fs.rename(fs.root, b"f", c, b"x", RENAME_EXCHANGE)
    assert fs.lookup(c, b"x") is f and stat.S_ISREG(fs.lookup(fs.root, b"f").mode)


def test_listener_events(fs: Ramfs) -> None:
    events: list[tuple[str, int, int | None, bytes | None]] = []
    fs.add_listener(lambda ev, ino, parent, name: events.append(
        (ev, ino.ino, parent.ino if parent else None, name)))
    d = fs.mkdir(fs.root, b"d", 0o755, 0, 0)
    f = fs.mknod(d, b"f", 0o644, 0, 0)
    fs.write(f, 0, b"x")
    fs.setattr(f, mode=0o600)
    fs.rename(d, b"f", fs.root, b"g")
    fs.unlink(fs.root, b"g")
    assert events == [("create", d.ino, 1, b"d"), ("create", f.ino, d.ino, b"f"),
                      ("data", f.ino, None, None), ("attr", f.ino, None, None),
                      ("remove", f.ino, d.ino, b"f"), ("create", f.ino, 1, b"g"),
                      ("remove", f.ino, 1, b"g"), ("free", f.ino, None, None)]


def test_readdir_order_and_cookies(fs: Ramfs) -> None:
    for i in range(100):
        fs.mknod(fs.root, b"e%02d" % i, 0o644, 0, 0)
    names = [n for n, _ in fs.readdir(fs.root)]
    assert names == [b"e%02d" % i for i in range(100)]
    # continue after a cookie while entries disappear (and slots get compacted)
    it = fs.readdir_from(fs.root, 0)
    first = [next(it) for _ in range(10)]
    for i in range(10, 90):
        fs.unlink(fs.root, b"e%02d" % i)
    rest = list(it)
    assert [n for _, n, _ in first + rest] == [b"e%02d" % i for i in list(range(10)) +
                                               list(range(90, 100))]
    cookie = first[-1][0]
    assert [n for _, n, _ in fs.readdir_from(fs.root, cookie)][:1] == [b"e90"]


def test_setattr_and_setgid_inheritance(fs: Ramfs) -> None:
    d = fs.mkdir(fs.root, b"d", 0o2775, 0, 50)
    f = fs.mknod(d, b"f", 0o644, 1000, 1000)
    sub = fs.mkdir(d, b"s", 0o755, 1000, 1000)
    assert f.gid == 50 and sub.gid == 50 and sub.mode & stat.S_ISGID
    fs.setattr(f, mode=0o4711, uid=7, gid=8, atime_ns=1, mtime_ns=2)
    assert (f.mode & 0o7777, f.uid, f.gid, f.atime_ns, f.mtime_ns) == (0o4711, 7, 8, 1, 2)
    assert stat.S_ISREG(f.mode)
    fs.setattr(f, size=10000)
    assert f.size == 10000 and not f.pages
    assert errno_of(fs.setattr, d, size=0) == "EISDIR"


def test_symlink(fs: Ramfs) -> None:
    s = fs.symlink(fs.root, b"s", b"target/path", 3, 4)
    assert stat.S_ISLNK(s.mode) and s.target == b"target/path" and s.size == 11
    assert errno_of(fs.symlink, fs.root, b"e", b"", 0, 0) == "ENOENT"
    assert errno_of(fs.symlink, fs.root, b"l", b"x" * 4096, 0, 0) == "ENAMETOOLONG"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5 * PAGE), st.binary(max_size=3 * PAGE)),
                max_size=12),
       st.integers(0, 6 * PAGE))
def test_read_write_match_a_bytearray(ops: list[tuple[int, bytes]], cut: int) -> None:
    fs = Ramfs()
    f: Inode = fs.mknod(fs.root, b"f", 0o644, 0, 0)
    model = bytearray()
    for off, data in ops:
        fs.write(f, off, data)
        if data:
            if len(model) < off:
                model.extend(bytes(off - len(model)))
            model[off:off + len(data)] = data
    assert f.size == len(model)
    assert fs.read(f, 0, len(model) + 10) == bytes(model)
    fs.truncate(f, cut)
    model = model[:cut] + bytes(max(0, cut - len(model)))
    assert fs.read(f, 0, cut + 10) == bytes(model)
    for start in range(0, cut, 1000):
        assert fs.read(f, start, 777) == bytes(model[start:start + 777])
    assert fs.pages_used == len(f.pages)


def test_pinned_mount_points_are_busy(fs: Ramfs) -> None:
    usr = fs.mkdir(fs.root, b"usr", 0o755, 0, 0)
    fs.pin(usr)
    assert errno_of(fs.rmdir, fs.root, b"usr") == "EBUSY"
    assert errno_of(fs.rename, fs.root, b"usr", fs.root, b"usr2") == "EBUSY"
    d = fs.mkdir(fs.root, b"d", 0o755, 0, 0)
    assert errno_of(fs.rename, fs.root, b"d", fs.root, b"usr") == "EBUSY"
    fs.unpin(usr)
    fs.rmdir(fs.root, b"usr")
    assert d.ino in fs.inodes and usr.ino not in fs.inodes


# ---------------------------------------------------------------- chunked pages
_OPS = st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(0, 3 << 20), st.integers(1, 1 << 20)),
    st.tuples(st.just("write"), st.integers(0, 3 << 20), st.integers(1, PAGE)),  # in-page
    st.tuples(st.just("write"), st.integers(0, 768).map(lambda p: p * PAGE),
              st.integers(1, 300).map(lambda p: p * PAGE)),
    st.tuples(st.just("punch"), st.integers(0, 3 << 20), st.integers(1, 1 << 20)),
    st.tuples(st.just("truncate"), st.integers(0, 4 << 20), st.just(0)),
    st.tuples(st.just("allocate"), st.integers(0, 3 << 20), st.integers(1, 1 << 19)),
), max_size=12)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, seed=st.integers(0, 255))
def test_chunked_pages_read_back_like_a_flat_file(ops: list[tuple[str, int, int]],
                                                  seed: int) -> None:
    """Big writes keep their pages as views of one buffer (ramfs._Chunk); every
    mix of writes, punched holes, truncates and fallocate reads back like a
    plain byte string, through Ramfs.read and the FUSE export's read (which
    answers a range inside one intact chunk with a slice of it), with the page
    accounting and the sparse layout of 4 KiB pages, and no chunk kept alive
    by fewer than half of its pages once it lost some."""
    from xinim_host.vfs_fuse.fuse_export import _read_pages
    from xinim_host.vfs_fuse.ramfs import _Chunk

    fs = Ramfs()
    f = fs.mknod(fs.root, b"f", stat.S_IFREG | 0o644, 0, 0)
    model = bytearray()
    for i, (op, off, n) in enumerate(ops):
        if op == "write":
            data = bytes([(seed + i) % 251 + 1]) * n
            fs.write(f, off, data)
            if len(model) < off + n:
                model.extend(bytes(off + n - len(model)))
            model[off:off + n] = data
        elif op == "punch":
            fs.punch_hole(f, off, n)
            hi = min(off + n, len(model))
            if hi > off:
                model[off:hi] = bytes(hi - off)
        elif op == "truncate":
            fs.truncate(f, off)
            del model[off:]
            model.extend(bytes(off - len(model)))
        else:
            fs.allocate(f, off, n, keep_size=False)
            if len(model) < off + n:
                model.extend(bytes(off + n - len(model)))
        assert f.size == len(model)
        assert fs.pages_used == len(f.pages)
        assert all(len(p) == PAGE for p in f.pages.values())
        # a non-intact chunk is held by at least half of its pages
        chunks: dict[int, list[int]] = {}
        for idx, p in f.pages.items():
            if type(p) is memoryview:
                assert isinstance(p.obj, _Chunk)
                chunks.setdefault(id(p.obj), []).append(idx)
                assert p.obj.base <= idx < p.obj.base + p.obj.npages
        for idx, p in f.pages.items():
            if type(p) is memoryview and not p.obj.intact:
                assert 2 * len(chunks[id(p.obj)]) >= p.obj.npages
    assert fs.read(f, 0, len(model) + 10) == bytes(model)
    for off in range(0, len(model) + (1 << 20), 1 << 20):     # the kernel's 1 MiB reads
        assert bytes(_read_pages(f, off, 1 << 20)) == bytes(model[off:off + (1 << 20)])
        assert fs.read(f, off, 1 << 20) == bytes(model[off:off + (1 << 20)])
    for off in (PAGE, 5 * PAGE + 7, 300 * PAGE):
        assert bytes(_read_pages(f, off, 70 * PAGE)) == bytes(model[off:off + 70 * PAGE])
        assert fs.read(f, off, 70 * PAGE) == bytes(model[off:off + 70 * PAGE])


def test_big_write_is_one_chunk_and_reads_without_copy(fs: Ramfs) -> None:
    from xinim_host.vfs_fuse.fuse_export import _read_pages

    f = fs.mknod(fs.root, b"f", stat.S_IFREG | 0o644, 0, 0)
    data = bytes(range(256)) * 4096                      # 1 MiB
    fs.write(f, 0, data)
    assert len(f.pages) == 256 and f.blocks == 256 * PAGE // 512
    view = _read_pages(f, 0, 1 << 20)
    assert isinstance(view, memoryview) and view == data
    fs.write(f, 10, b"xyz")                              # in place: the chunk stays whole
    assert isinstance(_read_pages(f, 0, 1 << 20), memoryview)
    assert fs.read(f, 8, 6) == data[8:10] + b"xyz" + data[13:14]
    fs.punch_hole(f, 0, 200 * PAGE)                      # most of it gone: survivors copied
    assert all(type(p) is bytearray for p in f.pages.values()) and len(f.pages) == 56
    assert fs.read(f, 0, 1 << 20) == bytes(200 * PAGE) + data[200 * PAGE:]
