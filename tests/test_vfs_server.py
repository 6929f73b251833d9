"""The VFS server through its message API: the plan's §4.3/§8.1 cases, fd tables,
bad input, directories, attributes."""
from __future__ import annotations

import os
import stat
import struct

import pytest

from xinim_host.lib import protocol as p
from xinim_host.vfs_fuse.ramfs import PAGE

from support.vfs import AT_FDCWD, DIRENT, Vfs, parse_dirents, vfs  # noqa: F401 -- fixture

O_RDWR_CREAT = os.O_RDWR | os.O_CREAT


# --- the plan's cases -------------------------------------------------------------------

async def test_open_missing_is_enoent(vfs: Vfs) -> None:
    assert await vfs.open_err(b"/nonexistent") == "ENOENT"
    assert await vfs.open_err(b"/nodir/file") == "ENOENT"


async def test_create_write_seek_read(vfs: Vfs) -> None:
    fd = await vfs.open(b"/test.txt", O_RDWR_CREAT, 0o644)
    assert fd == 3                                    # 0 1 2 are the console
    assert await vfs.write(fd, b"0123456789") == 10
    assert (await vfs.ok(p.VfsLseek(caller=1, fd=fd, offset=0, whence=os.SEEK_SET))).result == 0
    assert await vfs.read(fd, 100) == b"0123456789"
    assert await vfs.read(fd, 100) == b""             # EOF at the position
    st = await vfs.stat(b"/test.txt")
    assert st.size == 10 and stat.S_ISREG(st.mode) and st.mode & 0o777 == 0o644
    await vfs.close(fd)
    assert await vfs.err(p.VfsClose(caller=1, fd=fd)) == "EBADF"


async def test_umask_applies_on_create(vfs: Vfs) -> None:
    assert (await vfs.ok(p.VfsUmask(caller=1, mask=0o077))).result == 0o022
    await vfs.create(b"/private", mode=0o666)
    await vfs.mkdir(b"/pdir", 0o777)
    assert (await vfs.stat(b"/private")).mode & 0o777 == 0o600
    assert (await vfs.stat(b"/pdir")).mode & 0o777 == 0o700


async def test_mkdir_rmdir_enotempty(vfs: Vfs) -> None:
    await vfs.mkdir(b"/d")
    assert await vfs.err(p.VfsMkdir(caller=1, dirfd=AT_FDCWD, mode=0o755, path=b"/d")) == "EEXIST"
    await vfs.create(b"/d/f", b"x")
    assert await vfs.err(p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/d")) == "ENOTEMPTY"
    await vfs.ok(p.VfsUnlink(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/d/f"))
    await vfs.ok(p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/d"))
    assert await vfs.err(p.VfsStat(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/d")) == "ENOENT"


async def test_fd_tables_are_per_process(vfs: Vfs) -> None:
    await vfs.fork(1, 5)
    await vfs.fork(1, 6)
    await vfs.create(b"/a", b"AAAA")
    await vfs.create(b"/b", b"BBBB")
    fa = await vfs.open(b"/a", pid=5)
    fb = await vfs.open(b"/b", pid=6)
    assert fa == fb == 3                                # same number, different files
    assert await vfs.read(fa, 2, pid=5) == b"AA"
    assert await vfs.read(fb, 4, pid=6) == b"BBBB"
    assert await vfs.read(fa, 4, pid=5) == b"AA"        # 5's offset was not moved by 6
    await vfs.close(fa, pid=5)
    assert await vfs.err(p.VfsRead(caller=5, fd=fa, count=1)) == "EBADF"
    assert await vfs.read(fb, 4, pid=6, offset=0) == b"BBBB"


async def test_dup_shares_offset(vfs: Vfs) -> None:
    await vfs.create(b"/f", b"abcdefgh")
    fd = await vfs.open(b"/f")
    fd2 = (await vfs.ok(p.VfsDup(caller=1, fd=fd))).result
    assert fd2 == fd + 1
    assert await vfs.read(fd, 3) == b"abc"
    assert await vfs.read(fd2, 3) == b"def"
    await vfs.ok(p.VfsDup2(caller=1, oldfd=fd, newfd=10))
    assert await vfs.read(10, 2) == b"gh"
    await vfs.close(fd)
    assert (await vfs.ok(p.VfsLseek(caller=1, fd=fd2, offset=0, whence=os.SEEK_CUR))).result == 8


async def test_fork_shares_descriptions_and_exit_closes(vfs: Vfs) -> None:
    await vfs.create(b"/f", b"0123456789")
    fd = await vfs.open(b"/f")
    await vfs.fork(1, 7)
    assert await vfs.read(fd, 4, pid=7) == b"0123"
    assert await vfs.read(fd, 4) == b"4567"               # the parent sees the child's reads
    await vfs.ok(p.VfsExit(pid=7))
    assert await vfs.err(p.VfsRead(caller=7, fd=fd, count=1)) == "ESRCH"
    assert await vfs.read(fd, 4) == b"89"                 # still open in the parent


async def test_exec_closes_cloexec(vfs: Vfs) -> None:
    await vfs.fork(1, 8)
    a = await vfs.open(b"/dev/null", os.O_RDONLY | os.O_CLOEXEC, pid=8)
    b = await vfs.open(b"/dev/null", pid=8)
    assert (await vfs.ok(p.VfsFcntl(caller=8, fd=a, cmd=1, arg=0))).result == 1   # F_GETFD
    await vfs.ok(p.VfsExec(pid=8))
    assert await vfs.err(p.VfsFstat(caller=8, fd=a)) == "EBADF"
    await vfs.ok(p.VfsFstat(caller=8, fd=b))


async def test_committing_exec_check_closes_cloexec(vfs: Vfs) -> None:
    """PM's last exec check (EXEC_COMMIT) of an ELF file does VFS_EXEC's work in the
    same message; a script's check, a plain check or a failed one closes nothing,
    and only PM or a kernel may commit."""
    await vfs.create(b"/prog", b"\x7fELF" + bytes(60), mode=0o755)
    await vfs.create(b"/script", b"#!/prog\n", mode=0o755)
    await vfs.fork(1, 8)
    a = await vfs.open(b"/dev/null", os.O_RDONLY | os.O_CLOEXEC, pid=8)
    b = await vfs.open(b"/dev/null", pid=8)

    def check(path: bytes, flags: int = p.EXEC_COMMIT) -> p.Payload:
        return p.VfsExecOpen(caller=8, dirfd=AT_FDCWD, flags=flags, path=path)

    assert (await vfs.ok(check(b"/script"))).script == 1      # an interpreter follows
    await vfs.ok(check(b"/prog", 0))                          # not PM's last check
    assert await vfs.err(check(b"/missing")) == "ENOENT"
    vfs.lattice.register(9)
    vfs.lattice.connect_local(9, p.VFS_PID)
    assert await vfs.err(check(b"/prog"), src=9) == "EPERM"
    await vfs.ok(p.VfsFstat(caller=8, fd=a))                  # all of that closed nothing
    reply = await vfs.ok(check(b"/prog"))
    assert reply.script == 0 and reply.mode & 0o111
    assert await vfs.err(p.VfsFstat(caller=8, fd=a)) == "EBADF"
    await vfs.ok(p.VfsFstat(caller=8, fd=b))


async def test_notifications_only_from_pm_or_kernel(vfs: Vfs) -> None:
    vfs.lattice.register(9)
    vfs.lattice.connect_local(9, p.VFS_PID)
    assert await vfs.err(p.VfsFork(parent=1, child=10), src=9) == "EPERM"
    assert await vfs.err(p.VfsSetids(pid=1, uid=5), src=9) == "EPERM"
    # and a process speaking for itself on its own channel cannot claim another pid
    fd = await vfs.open(b"/dev/null")
    await vfs.fork(1, 9)
    assert await vfs.err(p.VfsClose(caller=1, fd=fd), src=9) == "OK"   # closes *9's* fd
    await vfs.ok(p.VfsFstat(caller=1, fd=fd))                           # 1's is still open


# --- open flags ----------------------------------------------------------------------------

async def test_open_flags(vfs: Vfs) -> None:
    await vfs.create(b"/f", b"hello")
    assert await vfs.open_err(b"/f", os.O_CREAT | os.O_EXCL | os.O_WRONLY) == "EEXIST"
    assert await vfs.open_err(b"/f", os.O_DIRECTORY) == "ENOTDIR"
    assert await vfs.open_err(b"/", os.O_WRONLY) == "EISDIR"
    assert await vfs.open_err(b"/f/", os.O_RDONLY) == "ENOTDIR"
    assert await vfs.open_err(b"/new/", os.O_CREAT | os.O_WRONLY) == "EISDIR"
    fd = await vfs.open(b"/f", os.O_WRONLY | os.O_APPEND)
    await vfs.write(fd, b" world")
    await vfs.write(fd, b"!", offset=0)                   # pwrite + O_APPEND appends (Linux)
    fd2 = await vfs.open(b"/f", os.O_RDONLY)
    assert await vfs.read(fd2, 100) == b"hello world!"
    await vfs.open(b"/f", os.O_WRONLY | os.O_TRUNC)
    assert (await vfs.stat(b"/f")).size == 0
    assert await vfs.err(p.VfsWrite(caller=1, fd=fd2, data=b"x")) == "EBADF"  # read-only fd
    assert await vfs.err(p.VfsRead(caller=1, fd=fd, count=1)) == "EBADF"      # write-only fd


async def test_nofollow_and_o_path(vfs: Vfs) -> None:
    await vfs.create(b"/target", b"t")
    await vfs.ok(p.VfsSymlink(caller=1, dirfd=AT_FDCWD, target=b"/target", path=b"/ln"))
    assert await vfs.open_err(b"/ln", os.O_RDONLY | os.O_NOFOLLOW) == "ELOOP"
    fd = await vfs.open(b"/ln", os.O_PATH | os.O_NOFOLLOW)
    st = await vfs.ok(p.VfsFstat(caller=1, fd=fd))
    assert stat.S_ISLNK(st.mode)
    r = await vfs.ok(p.VfsReadlink(caller=1, dirfd=fd, size=100, path=b""))
    assert r.data == b"/target"
    assert await vfs.err(p.VfsRead(caller=1, fd=fd, count=1)) == "EBADF"  # O_PATH: no I/O


async def test_creat_through_dangling_symlink(vfs: Vfs) -> None:
    await vfs.ok(p.VfsSymlink(caller=1, dirfd=AT_FDCWD, target=b"made", path=b"/dangle"))
    fd = await vfs.open(b"/dangle", os.O_CREAT | os.O_WRONLY)
    await vfs.write(fd, b"via link")
    assert (await vfs.stat(b"/made")).size == 8
    assert await vfs.open_err(b"/dangle", os.O_CREAT | os.O_EXCL | os.O_WRONLY) == "EEXIST"


async def test_openat_relative_to_dirfd(vfs: Vfs) -> None:
    await vfs.mkdir(b"/d")
    dfd = await vfs.open(b"/d", os.O_RDONLY | os.O_DIRECTORY)
    fd = await vfs.open(b"f", os.O_CREAT | os.O_WRONLY, dirfd=dfd)
    await vfs.write(fd, b"in d")
    assert (await vfs.stat(b"/d/f")).size == 4
    ffd = await vfs.open(b"/d/f")
    assert await vfs.open_err(b"x", os.O_RDONLY, dirfd=ffd) == "ENOTDIR"
    assert await vfs.open_err(b"x", os.O_RDONLY, dirfd=99) == "EBADF"
    await vfs.ok(p.VfsStat(caller=1, dirfd=ffd, flags=0x1000, path=b""))   # AT_EMPTY_PATH


async def test_fd_limit_emfile(vfs: Vfs) -> None:
    await vfs.fork(1, 11)
    await vfs.ok(p.VfsSetLimit(pid=11, resource=7, value=600))   # setrlimit(RLIMIT_NOFILE, 600)
    last = 0
    for _ in range(600 - 3):
        last = await vfs.open(b"/dev/null", pid=11)
    assert last == 599
    assert await vfs.open_err(b"/dev/null", pid=11) == "EMFILE"
    assert await vfs.err(p.VfsDup(caller=11, fd=0)) == "EMFILE"
    assert await vfs.err(p.VfsDup2(caller=11, oldfd=0, newfd=600)) == "EBADF"
    await vfs.close(500, pid=11)
    assert await vfs.open(b"/dev/null", pid=11) == 500       # lowest free fd
    # the kernel's hidden references are outside the table and its limit
    hidden = (await vfs.ok(p.VfsDup(caller=11, fd=0, min_fd=p.HIDDEN_FD_BASE))).result
    assert hidden >= p.HIDDEN_FD_BASE
    assert await vfs.open_err(b"/dev/null", pid=11) == "EMFILE"
    await vfs.close(hidden, pid=11)


async def test_fcntl(vfs: Vfs) -> None:
    fd = await vfs.open(b"/dev/null", os.O_RDWR)
    fl = (await vfs.ok(p.VfsFcntl(caller=1, fd=fd, cmd=3, arg=0))).result     # F_GETFL
    assert fl & os.O_ACCMODE == os.O_RDWR
    await vfs.ok(p.VfsFcntl(caller=1, fd=fd, cmd=4, arg=os.O_NONBLOCK | os.O_APPEND))
    fl = (await vfs.ok(p.VfsFcntl(caller=1, fd=fd, cmd=3, arg=0))).result
    assert fl & os.O_NONBLOCK and fl & os.O_APPEND and fl & os.O_ACCMODE == os.O_RDWR
    new = (await vfs.ok(p.VfsFcntl(caller=1, fd=fd, cmd=1030, arg=20))).result  # DUPFD_CLOEXEC
    assert new == 20
    assert (await vfs.ok(p.VfsFcntl(caller=1, fd=20, cmd=1, arg=0))).result == 1
    await vfs.ok(p.VfsFcntl(caller=1, fd=20, cmd=2, arg=0))                     # F_SETFD 0
    assert (await vfs.ok(p.VfsFcntl(caller=1, fd=20, cmd=1, arg=0))).result == 0
    # record locks (tests/test_run_file_abi.py has the conflicts): no one else's
    # lock is there, so F_GETLK answers F_UNLCK
    flock = struct.pack("<hh4xqqi4x", 1, 0, 0, 0, 0)                            # F_WRLCK
    r = await vfs.ok(p.VfsFcntl(caller=1, fd=fd, cmd=5, arg=0, data=flock))
    assert struct.unpack_from("<h", r.data)[0] == 2
    await vfs.ok(p.VfsFcntl(caller=1, fd=fd, cmd=6, arg=0, data=flock))
    rd = await vfs.open(b"/dev/null", os.O_RDONLY)
    assert await vfs.err(p.VfsFcntl(caller=1, fd=rd, cmd=6, arg=0, data=flock)) == "EBADF"
    assert await vfs.err(p.VfsFcntl(caller=1, fd=fd, cmd=9999, arg=0)) == "EINVAL"


async def test_ioctl(vfs: Vfs) -> None:
    await vfs.create(b"/f", b"12345")
    fd = await vfs.open(b"/f")
    assert await vfs.err(p.VfsIoctl(caller=1, fd=fd, request=0x5401, arg=0)) == "ENOTTY"
    r = await vfs.ok(p.VfsIoctl(caller=1, fd=fd, request=0x541B, arg=0))     # FIONREAD
    assert struct.unpack("<i", r.data[:4])[0] == 5
    # the console has no tty behind it here: ENOTTY from the console object
    assert await vfs.err(p.VfsIoctl(caller=1, fd=0, request=0x5401, arg=0)) == "ENOTTY"
    await vfs.ok(p.VfsIoctl(caller=1, fd=fd, request=0x5451, arg=0))          # FIOCLEX
    assert (await vfs.ok(p.VfsFcntl(caller=1, fd=fd, cmd=1, arg=0))).result == 1


async def test_console_fds(vfs: Vfs, console) -> None:
    await vfs.write(1, b"out ")
    await vfs.write(2, b"err")
    assert bytes(console.out) == b"out err"
    st = await vfs.ok(p.VfsFstat(caller=1, fd=0))
    assert stat.S_ISCHR(st.mode) and st.rdev == os.makedev(5, 1)
    assert await vfs.read(0, 10) == b""                     # FakeConsole: EOF
    assert await vfs.err(p.VfsLseek(caller=1, fd=1, offset=0, whence=0)) == "ESPIPE"


async def test_devices(vfs: Vfs) -> None:
    fd = await vfs.open(b"/dev/zero")
    assert await vfs.read(fd, 10) == bytes(10)
    fd = await vfs.open(b"/dev/null", os.O_RDWR)
    assert await vfs.write(fd, b"gone") == 4
    assert await vfs.read(fd, 10) == b""
    fd = await vfs.open(b"/dev/full", os.O_WRONLY)
    assert await vfs.err(p.VfsWrite(caller=1, fd=fd, data=b"x")) == "ENOSPC"
    fd = await vfs.open(b"/dev/urandom")
    assert len(await vfs.read(fd, 64)) == 64


# --- bad input -----------------------------------------------------------------------

async def test_long_names(vfs: Vfs) -> None:
    # a path beyond the wire limit (PATH_MAX less the NUL) is refused by the codec
    with pytest.raises(p.ProtocolError) as exc:
        await vfs.call(p.VfsOpen(caller=1, dirfd=AT_FDCWD, flags=0, mode=0, path=b"a" * 4096))
    assert exc.value.errno == 36
    await vfs.create(b"/" + b"n" * 254)                       # NAME_MAX-sized names work
    await vfs.create(b"/" + b"n" * 254 + b"", b"x")
    # over-long components reach namei through symlink targets (4095 bytes on the wire)
    long = b"/tmp/" + b"n" * 256
    await vfs.ok(p.VfsSymlink(caller=1, dirfd=AT_FDCWD, target=long, path=b"/sl"))
    await vfs.ok(p.VfsSymlink(caller=1, dirfd=AT_FDCWD, target=long + b"/x", path=b"/sl2"))
    assert await vfs.open_err(b"/sl") == "ENAMETOOLONG"
    assert await vfs.open_err(b"/sl", os.O_CREAT | os.O_WRONLY) == "ENAMETOOLONG"
    assert await vfs.err(p.VfsStat(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/sl")) == \
        "ENAMETOOLONG"
    assert await vfs.err(p.VfsMkdir(caller=1, dirfd=AT_FDCWD, mode=0o755, path=b"/sl2/y")) \
        == "ENAMETOOLONG"
    assert await vfs.err(p.VfsSymlink(caller=1, dirfd=AT_FDCWD, target=b"t" * 4096,
                                      path=b"/sl3")) == "ENAMETOOLONG"   # >= PATH_MAX
    await vfs.ok(p.VfsSymlink(caller=1, dirfd=AT_FDCWD, target=b"/" + b"x/" * 2000,
                              path=b"/huge"))
    assert await vfs.open_err(b"/huge") == "ENOENT"


async def test_bad_fds(vfs: Vfs) -> None:
    for msg in (p.VfsRead(caller=1, fd=77, count=1), p.VfsWrite(caller=1, fd=-1, data=b"x"),
                p.VfsClose(caller=1, fd=5000), p.VfsFstat(caller=1, fd=99),
                p.VfsLseek(caller=1, fd=42, offset=0, whence=0), p.VfsDup(caller=1, fd=66),
                p.VfsDup2(caller=1, oldfd=66, newfd=3), p.VfsFcntl(caller=1, fd=66, cmd=1, arg=0),
                p.VfsGetdents(caller=1, fd=66, count=4096), p.VfsFchdir(caller=1, fd=66)):
        assert await vfs.err(msg) == "EBADF", msg
    assert await vfs.err(p.VfsDup2(caller=1, oldfd=0, newfd=(1 << 20) + 1)) == "EBADF"


async def test_unknown_caller_is_esrch(vfs: Vfs) -> None:
    assert await vfs.err(p.VfsOpen(caller=4242, dirfd=AT_FDCWD, flags=0, mode=0,
                                   path=b"/")) == "ESRCH"


async def test_rename_into_own_subtree(vfs: Vfs) -> None:
    await vfs.mkdir(b"/a")
    await vfs.mkdir(b"/a/b")
    r = p.VfsRename(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD, flags=0,
                    oldpath=b"/a", newpath=b"/a/b/c")
    assert await vfs.err(r) == "EINVAL"
    assert await vfs.err(p.VfsRename(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD, flags=0,
                                     oldpath=b"/a", newpath=b"/a")) == "OK"   # same: no-op


async def test_rmdir_root_and_mountpoints(vfs: Vfs) -> None:
    assert await vfs.err(p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/")) == "EBUSY"
    assert await vfs.err(p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/usr")) == "EBUSY"
    assert await vfs.err(p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/tmp/.")) == "EINVAL"
    assert await vfs.err(p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/tmp/..")) == "ENOTEMPTY"
    assert await vfs.err(p.VfsUnlink(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/")) == "EISDIR"
    assert await vfs.err(p.VfsRename(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD, flags=0,
                                     oldpath=b"/usr", newpath=b"/usr2")) == "EBUSY"


async def test_malformed_message_gets_error_and_server_keeps_serving(vfs: Vfs) -> None:
    lat = vfs.lattice
    ep = lat.endpoints[p.KERNEL_PID]
    from xinim_host.lib.ipc import Pending
    for junk in (b"\x01", bytes(7), b"\xff" * 40):
        req_id = lat.new_req_id()
        pending = Pending()
        ep.pending[req_id] = pending
        header = struct.pack("<iiQ", 0, p.VFS_OPEN, req_id)
        lat.send_bytes(p.KERNEL_PID, p.VFS_PID, p.VFS_OPEN, header + junk)
        reply = await pending.wait()
        assert reply.body.error != 0
    # unknown type: ENOSYS-style error, still answered
    req_id = lat.new_req_id()
    pending = Pending()
    ep.pending[req_id] = pending
    lat.send_bytes(p.KERNEL_PID, p.VFS_PID, 149, struct.pack("<iiQ", 0, 149, req_id))
    assert (await pending.wait()).body.error != 0
    await vfs.create(b"/still-serving", b"yes")
    assert (await vfs.stat(b"/still-serving")).size == 3


# --- directories ---------------------------------------------------------------------------

async def test_getdents_large_directory(vfs: Vfs) -> None:
    await vfs.mkdir(b"/big")
    names = {b"file-%04d-%s" % (i, b"x" * (i % 40)) for i in range(600)}
    for name in names:
        fd = await vfs.open(b"/big/" + name, os.O_CREAT | os.O_WRONLY)
        await vfs.close(fd)
    fd = await vfs.open(b"/big", os.O_RDONLY | os.O_DIRECTORY)
    seen: list[bytes] = []
    replies = 0
    while True:
        r = await vfs.ok(p.VfsGetdents(caller=1, fd=fd, count=65536))
        assert len(r.data) <= 4096
        if not r.data:
            break
        replies += 1
        seen += [n for n, _, _ in parse_dirents(r.data)]
    assert replies > 1
    assert seen[:2] == [b".", b".."]
    assert sorted(seen[2:]) == sorted(names)


async def test_getdents_stable_while_removing(vfs: Vfs) -> None:
    """rm -r style: read a batch, unlink it, read on -- nothing skipped."""
    await vfs.mkdir(b"/rm")
    for i in range(300):
        await vfs.create(b"/rm/entry%03d" % i)
    fd = await vfs.open(b"/rm", os.O_RDONLY | os.O_DIRECTORY)
    removed = 0
    while True:
        r = await vfs.ok(p.VfsGetdents(caller=1, fd=fd, count=1024))
        if not r.data:
            break
        for name, _, dtype in parse_dirents(r.data):
            if name not in (b".", b".."):
                assert dtype == 8
                await vfs.ok(p.VfsUnlink(caller=1, dirfd=fd, flags=0, path=name))
                removed += 1
    assert removed == 300
    await vfs.ok(p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/rm"))


async def test_getdents_small_buffer_einval_and_rewind(vfs: Vfs) -> None:
    fd = await vfs.open(b"/", os.O_RDONLY | os.O_DIRECTORY)
    assert await vfs.err(p.VfsGetdents(caller=1, fd=fd, count=10)) == "EINVAL"
    first = await vfs.ok(p.VfsGetdents(caller=1, fd=fd, count=4096))
    await vfs.ok(p.VfsLseek(caller=1, fd=fd, offset=0, whence=0))
    again = await vfs.ok(p.VfsGetdents(caller=1, fd=fd, count=4096))
    assert first.data == again.data
    names = [n for n, _, _ in parse_dirents(first.data)]
    for want in (b"bin", b"etc", b"lib", b"usr", b"dev", b"tmp"):
        assert want in names
    f = await vfs.open(b"/dev/null")
    assert await vfs.err(p.VfsGetdents(caller=1, fd=f, count=4096)) == "ENOTDIR"


async def test_getdents_host_directory(vfs: Vfs) -> None:
    names = await vfs.listdir(b"/host", count=200)
    assert sorted(names) == sorted([b".", b"..", b"sub", b"file.txt", b"script.sh",
                                    b"noexec.txt", b"escape", b"rel", b"escape2",
                                    b"outside"])


async def test_getdents_host_records(vfs: Vfs) -> None:
    """A host directory's records (packed once per open from the host's getdents64):
    the host's names and inode numbers, d_off = index + 1, types kept for dirs,
    files and links (a FIFO shows 0, as before), zero padding; any buffer size
    resumes where the last one stopped, lseek to a d_off goes back there, and a
    buffer too small for the next record is EINVAL."""
    host = vfs.host / "many"
    host.mkdir()
    for i in range(300):
        (host / f"f{i:03d}-{'x' * (i % 13)}").write_bytes(b"")
    (host / "d").mkdir()
    os.symlink("d", host / "l")
    os.mkfifo(host / "fifo")
    want = {os.fsencode(e.name): e.inode() for e in os.scandir(host)}
    fd = await vfs.open(b"/host/many", os.O_RDONLY | os.O_DIRECTORY)
    whole = b""
    for count in (40, 100, 333, 4096):                 # every size: the same records
        await vfs.ok(p.VfsLseek(caller=1, fd=fd, offset=0, whence=0))
        buf = b""
        while r := (await vfs.ok(p.VfsGetdents(caller=1, fd=fd, count=count))).data:
            assert len(r) <= count
            buf += r
        whole = whole or buf
        assert buf == whole
    recs, pos = [], 0
    while pos < len(whole):
        ino, off, reclen, dtype = DIRENT.unpack_from(whole, pos)
        name, _, pad = whole[pos + DIRENT.size:pos + reclen].partition(b"\0")
        assert reclen % 8 == 0 and not pad.strip(b"\0")
        recs.append((name, ino, off, dtype))
        pos += reclen
    assert [r[2] for r in recs] == list(range(1, len(recs) + 1))
    assert [r[0] for r in recs[:2]] == [b".", b".."]
    assert {r[0]: r[1] for r in recs[2:]} == want
    types = {r[0]: r[3] for r in recs}
    assert (types[b"d"], types[b"l"], types[b"f000-"], types[b"fifo"]) == (4, 10, 8, 0)
    await vfs.ok(p.VfsLseek(caller=1, fd=fd, offset=recs[150][2], whence=0))
    r = (await vfs.ok(p.VfsGetdents(caller=1, fd=fd, count=4096))).data
    assert parse_dirents(r)[0][0] == recs[151][0]
    assert await vfs.err(p.VfsGetdents(caller=1, fd=fd, count=20)) == "EINVAL"
    await vfs.ok(p.VfsLseek(caller=1, fd=fd, offset=len(recs) + 5, whence=0))
    assert (await vfs.ok(p.VfsGetdents(caller=1, fd=fd, count=4096))).data == b""
    await vfs.close(fd)


async def test_cwd_chdir_getcwd(vfs: Vfs) -> None:
    await vfs.mkdir(b"/w")
    await vfs.mkdir(b"/w/x")
    await vfs.ok(p.VfsChdir(caller=1, path=b"/w/x"))
    r = await vfs.ok(p.VfsGetcwd(caller=1, size=4096))
    assert r.data == b"/w/x\0" and r.result == 5
    assert await vfs.err(p.VfsGetcwd(caller=1, size=4)) == "ERANGE"
    await vfs.create(b"rel", b"r")                             # relative to the cwd
    assert (await vfs.stat(b"/w/x/rel")).size == 1
    await vfs.ok(p.VfsChdir(caller=1, path=b".."))
    assert (await vfs.ok(p.VfsGetcwd(caller=1, size=100))).data == b"/w\0"
    assert await vfs.err(p.VfsChdir(caller=1, path=b"/w/x/rel")) == "ENOTDIR"
    fd = await vfs.open(b"/usr/bin", os.O_RDONLY | os.O_DIRECTORY)
    await vfs.ok(p.VfsFchdir(caller=1, fd=fd))
    assert (await vfs.ok(p.VfsGetcwd(caller=1, size=100))).data == b"/usr/bin\0"
    # a removed cwd: getcwd says ENOENT, like Linux
    await vfs.ok(p.VfsChdir(caller=1, path=b"/w/x"))
    await vfs.ok(p.VfsUnlink(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/w/x/rel"))
    await vfs.ok(p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/w/x"))
    assert await vfs.err(p.VfsGetcwd(caller=1, size=100)) == "ENOENT"
    assert await vfs.open_err(b"new", os.O_CREAT | os.O_WRONLY) == "ENOENT"


# --- links, rename, attributes ----------------------------------------------------------

async def test_links_and_rename(vfs: Vfs) -> None:
    await vfs.create(b"/f", b"data")
    await vfs.ok(p.VfsLink(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD, flags=0,
                           oldpath=b"/f", newpath=b"/h"))
    assert (await vfs.stat(b"/f")).nlink == 2
    await vfs.mkdir(b"/d")
    assert await vfs.err(p.VfsLink(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD, flags=0,
                                   oldpath=b"/d", newpath=b"/d2")) == "EPERM"
    assert await vfs.err(p.VfsLink(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD, flags=0,
                                   oldpath=b"/f", newpath=b"/usr/x")) == "EXDEV"
    rn = lambda a, b, fl=0: p.VfsRename(caller=1, olddirfd=AT_FDCWD, newdirfd=AT_FDCWD,  # noqa: E731
                                        flags=fl, oldpath=a, newpath=b)
    await vfs.ok(rn(b"/h", b"/d/h"))
    assert await vfs.err(rn(b"/f", b"/d")) == "EISDIR"
    assert await vfs.err(rn(b"/d", b"/f")) == "ENOTDIR"
    await vfs.create(b"/g", b"gg")
    assert await vfs.err(rn(b"/f", b"/g", 1)) == "EEXIST"           # RENAME_NOREPLACE
    await vfs.ok(rn(b"/f", b"/g", 2))                               # RENAME_EXCHANGE
    assert (await vfs.stat(b"/f")).size == 2 and (await vfs.stat(b"/g")).size == 4
    await vfs.ok(rn(b"/f", b"/g"))                                  # replace
    assert await vfs.err(p.VfsStat(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/f")) == "ENOENT"
    await vfs.mkdir(b"/e")
    await vfs.create(b"/e/x")
    assert await vfs.err(rn(b"/d", b"/e")) == "ENOTEMPTY"
    assert await vfs.err(rn(b"/g", b"/usr/g")) == "EXDEV"


async def test_directory_nlink_and_times(vfs: Vfs) -> None:
    await vfs.mkdir(b"/p")
    before = await vfs.stat(b"/p")
    assert before.nlink == 2
    await vfs.mkdir(b"/p/c1")
    await vfs.mkdir(b"/p/c2")
    await vfs.create(b"/p/file")
    after = await vfs.stat(b"/p")
    assert after.nlink == 4
    assert after.mtime_ns >= before.mtime_ns and after.ctime_ns >= before.ctime_ns


async def test_chmod_chown_permissions(vfs: Vfs) -> None:
    await vfs.create(b"/tmp/mine", b"x")
    await vfs.ok(p.VfsChmod(caller=1, dirfd=AT_FDCWD, mode=0o600, flags=0, path=b"/tmp/mine"))
    await vfs.fork(1, 20)
    await vfs.setids(20, 1000, 1000)
    assert await vfs.open_err(b"/tmp/mine", pid=20) == "EACCES"
    assert await vfs.err(p.VfsChmod(caller=20, dirfd=AT_FDCWD, mode=0o777, flags=0,
                                    path=b"/tmp/mine")) == "EPERM"
    assert await vfs.err(p.VfsChown(caller=20, dirfd=AT_FDCWD, uid=1000, gid=-1, flags=0,
                                    path=b"/tmp/mine")) == "EPERM"
    await vfs.ok(p.VfsChown(caller=1, dirfd=AT_FDCWD, uid=1000, gid=1000, flags=0,
                            path=b"/tmp/mine"))
    fd = await vfs.open(b"/tmp/mine", os.O_RDWR, pid=20)
    await vfs.ok(p.VfsFchmod(caller=20, fd=fd, mode=0o4755))
    await vfs.ok(p.VfsChown(caller=1, dirfd=AT_FDCWD, uid=0, gid=-1, flags=0,
                            path=b"/tmp/mine"))
    assert (await vfs.stat(b"/tmp/mine")).mode & 0o7777 == 0o755     # chown drops setuid
    # access(2) with the real ids; root has no x on a 0644 file
    await vfs.create(b"/tmp/plain", mode=0o644)
    assert await vfs.err(p.VfsAccess(caller=1, dirfd=AT_FDCWD, mode=1, flags=0,
                                     path=b"/tmp/plain")) == "EACCES"
    assert await vfs.err(p.VfsAccess(caller=1, dirfd=AT_FDCWD, mode=6, flags=0,
                                     path=b"/tmp/plain")) == "OK"
    assert await vfs.err(p.VfsAccess(caller=20, dirfd=AT_FDCWD, mode=2, flags=0,
                                     path=b"/tmp/plain")) == "EACCES"
    # search permission on a directory
    await vfs.mkdir(b"/tmp/closed", 0o700)
    await vfs.create(b"/tmp/closed/f")
    assert await vfs.err(p.VfsStat(caller=20, dirfd=AT_FDCWD, flags=0,
                                   path=b"/tmp/closed/f")) == "EACCES"
    # sticky /tmp: 1000 cannot remove root's file
    assert await vfs.err(p.VfsUnlink(caller=20, dirfd=AT_FDCWD, flags=0,
                                     path=b"/tmp/plain")) == "EPERM"
    # creating in / needs write permission on /
    assert await vfs.open_err(b"/nope", os.O_CREAT | os.O_WRONLY, pid=20) == "EACCES"


async def test_truncate_and_sparse_gigabyte(vfs: Vfs) -> None:
    fd = await vfs.open(b"/big", os.O_CREAT | os.O_RDWR)
    await vfs.ok(p.VfsFtruncate(caller=1, fd=fd, length=1 << 30))
    await vfs.write(fd, b"!", offset=(1 << 30) - 1)
    st = await vfs.stat(b"/big")
    assert st.size == 1 << 30
    assert st.blocks == PAGE // 512                             # one page allocated
    inode = vfs.srv.ramfs.lookup(vfs.srv.ramfs.root, b"big")
    assert len(inode.pages) == 1
    assert await vfs.read(fd, 4, offset=(1 << 30) - 3) == b"\0\0!"
    assert await vfs.read(fd, 4, offset=12345) == bytes(4)
    await vfs.ok(p.VfsTruncate(caller=1, dirfd=AT_FDCWD, length=10**15, path=b"/big"))
    assert (await vfs.stat(b"/big")).size == 10**15
    assert await vfs.err(p.VfsTruncate(caller=1, dirfd=AT_FDCWD, length=-1,
                                       path=b"/big")) == "EINVAL"
    assert await vfs.err(p.VfsTruncate(caller=1, dirfd=AT_FDCWD, length=0,
                                       path=b"/tmp")) == "EISDIR"
    ro = await vfs.open(b"/big")
    assert await vfs.err(p.VfsFtruncate(caller=1, fd=ro, length=0)) == "EINVAL"
    # SEEK_DATA / SEEK_HOLE
    await vfs.ok(p.VfsFtruncate(caller=1, fd=fd, length=1 << 30))
    assert (await vfs.ok(p.VfsLseek(caller=1, fd=fd, offset=0, whence=3))).result == \
        (1 << 30) - PAGE
    assert (await vfs.ok(p.VfsLseek(caller=1, fd=fd, offset=0, whence=4))).result == 0


async def test_utimensat(vfs: Vfs) -> None:
    await vfs.create(b"/t")
    await vfs.ok(p.VfsUtimens(caller=1, dirfd=AT_FDCWD, flags=0, atime_sec=100, atime_nsec=5,
                              mtime_sec=200, mtime_nsec=p.UTIME_OMIT, path=b"/t"))
    st = await vfs.stat(b"/t")
    assert st.atime_ns == 100_000_000_005 and st.mtime_ns > 200_000_000_000
    await vfs.ok(p.VfsUtimens(caller=1, dirfd=AT_FDCWD, flags=0, atime_nsec=p.UTIME_OMIT,
                              mtime_sec=200, mtime_nsec=0, path=b"/t"))
    st2 = await vfs.stat(b"/t")
    assert st2.mtime_ns == 200_000_000_000 and st2.atime_ns == st.atime_ns
    assert await vfs.err(p.VfsUtimens(caller=1, dirfd=AT_FDCWD, flags=0, atime_nsec=10**9,
                                      path=b"/t")) == "EINVAL"
    fd = await vfs.open(b"/t")
    await vfs.ok(p.VfsUtimens(caller=1, dirfd=fd, flags=0x1000, path=b""))    # futimens(NOW)
    assert (await vfs.stat(b"/t")).mtime_ns > 200_000_000_000


async def test_statfs(vfs: Vfs) -> None:
    r = await vfs.ok(p.VfsStatfs(caller=1, dirfd=AT_FDCWD, path=b"/"))
    assert r.namelen == 255 and r.type == 0x01021994 and r.bsize == 4096
    r = await vfs.ok(p.VfsStatfs(caller=1, dirfd=AT_FDCWD, path=b"/usr"))
    assert r.flags & 1                                              # ST_RDONLY
    fd = await vfs.open(b"/tmp", os.O_RDONLY)
    assert (await vfs.ok(p.VfsFstatfs(caller=1, fd=fd))).namelen == 255


async def test_mknod_and_readlink(vfs: Vfs) -> None:
    await vfs.ok(p.VfsMknod(caller=1, dirfd=AT_FDCWD, mode=stat.S_IFIFO | 0o644, dev=0,
                            path=b"/fifo"))
    assert stat.S_ISFIFO((await vfs.stat(b"/fifo")).mode)
    assert await vfs.err(p.VfsMknod(caller=1, dirfd=AT_FDCWD, mode=stat.S_IFDIR | 0o755, dev=0,
                                    path=b"/x")) == "EPERM"
    await vfs.ok(p.VfsMknod(caller=1, dirfd=AT_FDCWD, mode=stat.S_IFCHR | 0o666,
                            dev=os.makedev(1, 3), path=b"/mynull"))
    fd = await vfs.open(b"/mynull", os.O_WRONLY)
    assert await vfs.write(fd, b"abc") == 3
    await vfs.ok(p.VfsSymlink(caller=1, dirfd=AT_FDCWD, target=b"some/where", path=b"/sl"))
    r = await vfs.ok(p.VfsReadlink(caller=1, dirfd=AT_FDCWD, size=4, path=b"/sl"))
    assert r.data == b"some" and r.result == 4
    assert await vfs.err(p.VfsReadlink(caller=1, dirfd=AT_FDCWD, size=10,
                                       path=b"/fifo")) == "EINVAL"
    assert await vfs.err(p.VfsSymlink(caller=1, dirfd=AT_FDCWD, target=b"",
                                      path=b"/s2")) == "ENOENT"


async def test_unlinked_open_file_lives_on(vfs: Vfs) -> None:
    await vfs.create(b"/tmpf", b"still here")
    fd = await vfs.open(b"/tmpf")
    ino = (await vfs.stat(b"/tmpf")).ino
    await vfs.ok(p.VfsUnlink(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/tmpf"))
    assert ino in vfs.srv.ramfs.inodes
    assert await vfs.read(fd, 100) == b"still here"
    assert (await vfs.ok(p.VfsFstat(caller=1, fd=fd))).nlink == 0
    await vfs.close(fd)
    assert ino not in vfs.srv.ramfs.inodes
