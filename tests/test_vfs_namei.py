"""Path resolution: symlinks and loops, '..' across mounts, host mounts that must
not be escaped, read-only and read-write binds, and the execve check."""
from __future__ import annotations

import os
import stat

import pytest

from xinim_host.lib import protocol as p
from xinim_host.lib.errors import SysError
from xinim_host.vfs_fuse.hostfs import open_beneath

from support.vfs import AT_FDCWD, Vfs, vfs  # noqa: F401 -- fixture


def symlink(target: bytes, path: bytes) -> p.VfsSymlink:
    return p.VfsSymlink(caller=1, dirfd=AT_FDCWD, target=target, path=path)


# --- symlinks ---------------------------------------------------------------------------

async def test_symlink_loops_give_eloop(vfs: Vfs) -> None:
    await vfs.ok(symlink(b"/loop2", b"/loop1"))
    await vfs.ok(symlink(b"loop1", b"/loop2"))
    await vfs.ok(symlink(b"self", b"/self"))
    st = lambda path, fl=0: p.VfsStat(caller=1, dirfd=AT_FDCWD, flags=fl, path=path)  # noqa: E731
    assert await vfs.err(st(b"/loop1")) == "ELOOP"
    assert await vfs.err(st(b"/self")) == "ELOOP"
    assert await vfs.err(st(b"/loop1", 0x100)) == "OK"            # lstat of the link itself
    assert await vfs.err(st(b"/loop1/x", 0x100)) == "ELOOP"       # lstat through it
    assert await vfs.open_err(b"/loop1") == "ELOOP"
    assert await vfs.open_err(b"/loop1", os.O_CREAT | os.O_WRONLY) == "ELOOP"
    for msg in (p.VfsMkdir(caller=1, dirfd=AT_FDCWD, mode=0o755, path=b"/loop1/x"),
                p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/loop1/x"),
                p.VfsUnlink(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/loop1/x"),
                p.VfsReadlink(caller=1, dirfd=AT_FDCWD, size=100, path=b"/loop1/x"),
                p.VfsLink(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD, flags=0,
                          oldpath=b"/loop1/x", newpath=b"/y"),
                p.VfsLink(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD, flags=0x400,
                          oldpath=b"/loop1", newpath=b"/y"),
                p.VfsRename(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD, flags=0,
                            oldpath=b"/loop1/x", newpath=b"/y"),
                p.VfsChdir(caller=1, path=b"/loop2"),
                p.VfsAccess(caller=1, dirfd=AT_FDCWD, mode=0, flags=0, path=b"/self"),
                p.VfsExecOpen(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/self")):
        assert await vfs.err(msg) == "ELOOP", msg
    # the links themselves can be read, renamed and removed
    assert (await vfs.ok(p.VfsReadlink(caller=1, dirfd=AT_FDCWD, size=100,
                                       path=b"/loop1"))).data == b"/loop2"
    await vfs.ok(p.VfsUnlink(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/self"))


async def test_forty_links_ok_forty_one_eloop(vfs: Vfs) -> None:
    await vfs.create(b"/end", b"end")
    await vfs.ok(symlink(b"/end", b"/l0"))
    for i in range(1, 41):
        await vfs.ok(symlink(b"/l%d" % (i - 1), b"/l%d" % i))
    assert await vfs.read(await vfs.open(b"/l39"), 10) == b"end"    # 40 links
    assert await vfs.open_err(b"/l40") == "ELOOP"                    # 41


async def test_relative_symlinks_and_trailing_slash(vfs: Vfs) -> None:
    await vfs.mkdir(b"/a")
    await vfs.mkdir(b"/a/b")
    await vfs.create(b"/a/b/f", b"F")
    await vfs.ok(symlink(b"b/f", b"/a/lf"))
    await vfs.ok(symlink(b"../a/b", b"/a/ld"))
    assert await vfs.read(await vfs.open(b"/a/lf"), 5) == b"F"
    assert await vfs.read(await vfs.open(b"/a/ld/f"), 5) == b"F"
    assert await vfs.open_err(b"/a/lf/") == "ENOTDIR"
    assert stat.S_ISDIR((await vfs.stat(b"/a/ld/")).mode)          # trailing / follows
    assert stat.S_ISLNK((await vfs.stat(b"/a/ld", flags=0x100)).mode)
    assert stat.S_ISDIR((await vfs.stat(b"/a/ld/", flags=0x100)).mode)
    assert await vfs.err(p.VfsUnlink(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/a/b/f/")) \
        == "ENOTDIR"
    assert (await vfs.stat(b"/a/./b/../b/f")).size == 1
    assert await vfs.err(p.VfsStat(caller=1, dirfd=AT_FDCWD, flags=0,
                                   path=b"/a/b/f/..")) == "ENOTDIR"


# --- mounts and the host -----------------------------------------------------------------

async def test_dotdot_crosses_mount_points(vfs: Vfs) -> None:
    root = await vfs.stat(b"/")
    usr = await vfs.stat(b"/usr")
    assert usr.dev != root.dev                                      # a host mount
    assert (await vfs.stat(b"/usr/bin/..")).ino == usr.ino
    assert (await vfs.stat(b"/usr/..")).ino == root.ino
    await vfs.ok(p.VfsChdir(caller=1, path=b"/usr/bin"))
    assert (await vfs.stat(b"../..")).ino == root.ino
    assert (await vfs.ok(p.VfsGetcwd(caller=1, size=100))).data == b"/usr/bin\0"


async def test_dotdot_at_mount_root_stays_in_xinim(vfs: Vfs) -> None:
    root = await vfs.stat(b"/")
    for path in (b"/host/..", b"/host/../..", b"/host/sub/../../../..", b"/../../host/.."):
        st = await vfs.stat(path)
        assert (st.dev, st.ino) == (root.dev, root.ino), path
    # the host directory that contains the mounted one is not reachable: '..' lists /
    assert await vfs.listdir(b"/host/..") == await vfs.listdir(b"/")
    await vfs.ok(p.VfsChdir(caller=1, path=b"/host/sub"))
    await vfs.ok(p.VfsChdir(caller=1, path=b"../../../.."))
    assert (await vfs.ok(p.VfsGetcwd(caller=1, size=100))).data == b"/\0"


async def test_host_symlinks_resolve_in_xinim(vfs: Vfs) -> None:
    # relative link climbing out of the mount: ../../.. from /host/sub is XINIM's /
    root = await vfs.stat(b"/")
    st = await vfs.stat(b"/host/sub/up")
    assert (st.dev, st.ino) == (root.dev, root.ino)
    # absolute link: XINIM's /tmp, not the host's
    assert not os.path.exists("/tmp/xinim-only")
    assert await vfs.open_err(b"/host/escape2") == "ENOENT"
    await vfs.create(b"/tmp/xinim-only", b"from ramfs")
    assert await vfs.read(await vfs.open(b"/host/escape2"), 100) == b"from ramfs"
    # a link to a host directory outside the mount names that path in XINIM
    assert await vfs.open_err(b"/host/outside/host/file.txt") == "ENOENT"
    # relative host links inside the mount work
    assert await vfs.read(await vfs.open(b"/host/rel"), 100) == b"inner\n"
    assert (await vfs.ok(p.VfsReadlink(caller=1, dirfd=AT_FDCWD, size=100,
                                       path=b"/host/rel"))).data == b"sub/inner"


def test_open_beneath_refuses_host_symlinks(tmp_path) -> None:
    """Even if a host directory is swapped for a symlink behind namei's back,
    content access cannot leave the host root."""
    (tmp_path / "root").mkdir()
    (tmp_path / "secret").write_text("secret")
    os.symlink(str(tmp_path), tmp_path / "root" / "dir")
    os.symlink("../secret", tmp_path / "root" / "rel")
    fd = os.open(tmp_path / "root", os.O_PATH | os.O_DIRECTORY)
    try:
        for rel in (b"dir/secret", b"rel", b"../secret"):
            with pytest.raises(SysError) as exc:
                open_beneath(fd, rel, os.O_RDONLY)
            assert exc.value.errno in (40, 18), rel                # ELOOP or EXDEV
    finally:
        os.close(fd)


async def test_host_files_read_and_stat(vfs: Vfs) -> None:
    assert await vfs.read(await vfs.open(b"/host/file.txt"), 100) == b"host data\n"
    hst = os.stat(vfs.host / "file.txt")
    st = await vfs.stat(b"/host/file.txt")
    assert (st.ino, st.size, st.mode) == (hst.st_ino, hst.st_size, hst.st_mode)
    fd = await vfs.open(b"/host/file.txt")
    assert await vfs.read(fd, 4, offset=5) == b"data"
    assert (await vfs.ok(p.VfsLseek(caller=1, fd=fd, offset=-2, whence=2))).result == 8
    assert await vfs.read(fd, 10) == b"a\n"
    assert await vfs.open_err(b"/host/nope") == "ENOENT"
    assert await vfs.open_err(b"/host/file.txt/x") == "ENOTDIR"


async def test_read_only_host_mount_erofs(vfs: Vfs) -> None:
    A = AT_FDCWD
    assert await vfs.open_err(b"/host/file.txt", os.O_WRONLY) == "EROFS"
    assert await vfs.open_err(b"/host/file.txt", os.O_RDONLY | os.O_TRUNC) == "EROFS"
    assert await vfs.open_err(b"/host/new", os.O_CREAT | os.O_WRONLY) == "EROFS"
    await vfs.open(b"/host/file.txt", os.O_RDONLY | os.O_CREAT)     # exists: fine
    for msg in (p.VfsMkdir(caller=1, dirfd=A, mode=0o755, path=b"/host/d"),
                p.VfsUnlink(caller=1, dirfd=A, flags=0, path=b"/host/file.txt"),
                p.VfsRmdir(caller=1, dirfd=A, path=b"/host/sub"),
                p.VfsRename(caller=1, olddirfd=A, newdirfd=A, flags=0,
                            oldpath=b"/host/file.txt", newpath=b"/host/f2"),
                p.VfsChmod(caller=1, dirfd=A, mode=0o777, flags=0, path=b"/host/file.txt"),
                p.VfsChown(caller=1, dirfd=A, uid=1, gid=1, flags=0, path=b"/host/file.txt"),
                p.VfsTruncate(caller=1, dirfd=A, length=0, path=b"/host/file.txt"),
                p.VfsUtimens(caller=1, dirfd=A, flags=0, path=b"/host/file.txt"),
                p.VfsSymlink(caller=1, dirfd=A, target=b"x", path=b"/host/sl"),
                p.VfsAccess(caller=1, dirfd=A, mode=2, flags=0, path=b"/host/file.txt"),
                p.VfsMkdir(caller=1, dirfd=A, mode=0o755, path=b"/usr/zzz")):
        assert await vfs.err(msg) == "EROFS", msg
    assert (vfs.host / "file.txt").read_bytes() == b"host data\n"
    assert await vfs.err(p.VfsMkdir(caller=1, dirfd=A, mode=0o755, path=b"/host/sub")) == \
        "EEXIST"


async def test_read_write_bind(vfs: Vfs) -> None:
    await vfs.create(b"/mnt/rw/made", b"written by xinim")
    assert (vfs.rw / "made").read_bytes() == b"written by xinim"
    fd = await vfs.open(b"/mnt/rw/existing", os.O_RDWR | os.O_APPEND)
    await vfs.write(fd, b"more\n")
    assert (vfs.rw / "existing").read_bytes() == b"rw file\nmore\n"
    await vfs.mkdir(b"/mnt/rw/dir")
    await vfs.ok(p.VfsRename(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD, flags=0,
                             oldpath=b"/mnt/rw/made", newpath=b"/mnt/rw/dir/moved"))
    assert (vfs.rw / "dir" / "moved").exists()
    await vfs.ok(p.VfsChmod(caller=1, dirfd=AT_FDCWD, mode=0o600, flags=0,
                            path=b"/mnt/rw/dir/moved"))
    assert stat.S_IMODE(os.stat(vfs.rw / "dir" / "moved").st_mode) == 0o600
    await vfs.ok(p.VfsUnlink(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/mnt/rw/dir/moved"))
    await vfs.ok(p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/mnt/rw/dir"))
    assert sorted(os.listdir(vfs.rw)) == ["existing"]
    assert await vfs.err(p.VfsRename(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD, flags=0,
                                     oldpath=b"/mnt/rw/existing", newpath=b"/tmp/x")) == "EXDEV"


# --- execve check --------------------------------------------------------------------------

def exec_open(path: bytes, pid: int = 1) -> p.VfsExecOpen:
    return p.VfsExecOpen(caller=pid, dirfd=AT_FDCWD, flags=0, path=path)


async def test_exec_open(vfs: Vfs) -> None:
    r = await vfs.ok(exec_open(b"/bin/ls"))
    assert r.host_path == os.fsencode(os.path.realpath("/bin/ls")) and r.script == 0
    r = await vfs.ok(exec_open(b"/host/script.sh"))
    assert (r.script, r.interp, r.interp_arg) == (1, b"/bin/sh", b"-e")
    assert r.host_path.endswith(b"/host/script.sh")
    assert await vfs.err(exec_open(b"/host/noexec.txt")) == "ENOEXEC"
    assert await vfs.err(exec_open(b"/host/file.txt")) == "EACCES"      # no x bit, even root
    assert await vfs.err(exec_open(b"/tmp")) == "EACCES"
    assert await vfs.err(exec_open(b"/dev/null")) == "EACCES"
    assert await vfs.err(exec_open(b"/nonexistent")) == "ENOENT"
    assert await vfs.err(exec_open(b"/host/file.txt/x")) == "ENOTDIR"
    # a ramfs program: identified by its inode, ETXTBSY while open for writing
    fd = await vfs.open(b"/tmp/prog", os.O_CREAT | os.O_WRONLY, 0o755)
    await vfs.write(fd, b"\x7fELF" + bytes(60))
    assert await vfs.err(exec_open(b"/tmp/prog")) == "ETXTBSY"
    await vfs.close(fd)
    r = await vfs.ok(exec_open(b"/tmp/prog"))
    assert r.host_path == b"" and r.ino == (await vfs.stat(b"/tmp/prog")).ino
    # a user without x permission
    await vfs.fork(1, 30)
    await vfs.setids(30, 1000, 1000)
    await vfs.ok(p.VfsChmod(caller=1, dirfd=AT_FDCWD, mode=0o744, flags=0, path=b"/tmp/prog"))
    assert await vfs.err(exec_open(b"/tmp/prog", pid=30)) == "EACCES"
    await vfs.create(b"/tmp/sh", b"#!/bin/sh\n", mode=0o755)
    r = await vfs.ok(exec_open(b"/tmp/sh", pid=30))
    assert (r.interp, r.interp_arg) == (b"/bin/sh", b"")


async def test_nested_host_mounts(nursery, lattice, console, tmp_path) -> None:
    from xinim_host.vfs_fuse.server import VfsServer
    from support.vfs import make_host_tree
    host, rw = make_host_tree(tmp_path)
    lattice.register(p.KERNEL_PID)
    srv = VfsServer(lattice, console=console, mounts=[
        (str(host), "/h", "ro"), (str(rw), "/h/sub", "rw"), (str(rw), "/h/missing", "rw")])
    lattice.connect_local(p.KERNEL_PID, p.VFS_PID)
    await nursery.start(srv.serve)
    v = Vfs(lattice, srv, host, rw)
    assert await v.read(await v.open(b"/h/sub/existing"), 100) == b"rw file\n"
    assert await v.open_err(b"/h/sub/inner") == "ENOENT"            # covered by the rw mount
    h = await v.stat(b"/h")
    assert (await v.stat(b"/h/sub/..")).ino == h.ino
    await v.create(b"/h/sub/new", b"n")                              # the rw mount is writable
    assert (rw / "new").read_bytes() == b"n"
    assert await v.err(p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/h/sub")) in ("EBUSY",
                                                                              "EROFS")
    await v.ok(p.VfsChdir(caller=1, path=b"/h/sub"))
    assert (await v.ok(p.VfsGetcwd(caller=1, size=100))).data == b"/h/sub\0"
    assert await v.open_err(b"/h/missing") == "ENOENT"               # skipped, with a warning
    srv.stop()
