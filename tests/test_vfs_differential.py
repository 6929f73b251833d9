"""Differential errno tests: the same call on a kernel tmpfs and through the VFS
server must fail (or succeed) the same way.  Each case gets a fresh tree."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from typing import Any, Callable

import pytest

from xinim_host.lib import protocol as p

from support.vfs import AT_FDCWD, Vfs, vfs  # noqa: F401 -- fixture

A = AT_FDCWD
RD, WR = os.O_RDONLY, os.O_WRONLY
CR, EX, DIR, NOF = os.O_CREAT, os.O_EXCL, os.O_DIRECTORY, os.O_NOFOLLOW

# (what, args): run natively with dir_fd=base, and through VFS after chdir(base)
CASES: list[tuple[str, tuple[Any, ...]]] = [
    ("open", ("nope", RD)), ("open", ("f/", RD)), ("open", ("d", WR)), ("open", ("d", RD)),
    ("open", ("f", RD | DIR)), ("open", ("l", RD | NOF)), ("open", ("dangling", RD)),
    ("open", ("dangling", WR | CR)), ("open", ("loop1", RD)), ("open", ("d/", WR | CR)),
    ("open", ("f", WR | CR | EX)), ("open", ("l", WR | CR | EX)), ("open", ("e/x/y", WR | CR)),
    ("open", ("f/x", RD)), ("open", (".", RD)), ("open", (".", WR | CR)), ("open", ("", RD)),
    ("open", ("dl/f", RD)), ("open", ("dl", RD | DIR | NOF)), ("open", ("d/..", WR)),
    ("open", ("e/", WR | CR)), ("open", ("newf", WR | CR | DIR)),
    ("mkdir", ("d",)), ("mkdir", ("f",)), ("mkdir", ("l",)), ("mkdir", ("dangling",)),
    ("mkdir", ("e/x/y",)), ("mkdir", ("f/x",)), ("mkdir", (".",)), ("mkdir", ("..",)),
    ("mkdir", ("new/",)), ("mkdir", ("loop1/x",)), ("mkdir", ("dl/sub",)), ("mkdir", ("",)),
    ("rmdir", ("f",)), ("rmdir", ("d",)), ("rmdir", ("e/.",)), ("rmdir", ("e/..",)),
    ("rmdir", ("l",)), ("rmdir", ("dl",)), ("rmdir", ("dl/",)), ("rmdir", ("nope",)),
    ("rmdir", ("f/",)), ("rmdir", ("e",)), ("rmdir", ("e/",)), ("rmdir", ("loop1/x",)),
    ("unlink", ("d",)), ("unlink", ("f/",)), ("unlink", ("dl/",)), ("unlink", ("nope",)),
    ("unlink", (".",)), ("unlink", ("e/",)), ("unlink", ("l",)), ("unlink", ("dl",)),
    ("unlink", ("loop1",)), ("unlink", ("loop1/x",)), ("unlink", ("f",)),
    ("rename", ("f", "d")), ("rename", ("d", "f")), ("rename", ("d", "d/sub")),
    ("rename", ("e", "d")), ("rename", ("f", "nope/x")), ("rename", ("nope", "x")),
    ("rename", ("f/", "g")), ("rename", ("e", "e2/")), ("rename", (".", "x")),
    ("rename", ("f", ".")), ("rename", ("d", "e")), ("rename", ("f", "l")),
    ("rename", ("l", "g")), ("rename", ("f", "f")), ("rename", ("f", "h")),
    ("rename", ("d/f", "f")), ("rename", ("e", "d/..")), ("rename", ("f", "g/")),
    ("rename", ("loop1/x", "y")), ("rename", ("dl", "e")), ("rename", ("e", "dl")),
    ("link", ("d", "x")), ("link", ("f", "d")), ("link", ("f", "f")), ("link", ("nope", "x")),
    ("link", ("f", "nope/x")), ("link", ("l", "x")), ("link", ("f", "x/")),
    ("link", ("loop1", "x")), ("link", ("f", "dangling")),
    ("symlink", ("t", "f")), ("symlink", ("t", "nope/x")), ("symlink", ("t", "dangling")),
    ("symlink", ("t", "new/")),
    ("readlink", ("f",)), ("readlink", ("l",)), ("readlink", ("nope",)),
    ("readlink", ("l/",)), ("readlink", ("dl/",)), ("readlink", ("loop1/x",)),
    ("stat", ("nope",)), ("stat", ("f/",)), ("stat", ("loop1",)), ("stat", ("dl/f",)),
    ("stat", ("l/",)), ("stat", ("dangling",)), ("stat", ("d/f/..",)),
    ("lstat", ("loop1",)), ("lstat", ("loop1/",)), ("lstat", ("dangling/",)),
    ("truncate", ("d",)), ("truncate", ("nope",)), ("truncate", ("l",)), ("truncate", ("f/",)),
    ("truncate", ("e/..",)), ("truncate", ("dangling",)),
    ("open", ("d", RD | CR)), ("open", ("f", os.O_RDWR | os.O_TRUNC)),
    ("open", ("dangling", WR | CR | NOF)), ("open", ("l/", WR | CR)), ("open", ("l", WR | CR)),
    ("open", ("dl/", RD)), ("open", ("dangling/", WR | CR)), ("open", ("loop1/", RD)),
    ("mkdir", ("dangling/",)), ("mkdir", ("l/",)), ("mkdir", ("dl/",)),
    ("rmdir", (".",)), ("rmdir", ("..",)), ("rmdir", ("",)), ("rmdir", ("d/f/",)),
    ("unlink", ("",)), ("unlink", ("d/f",)), ("unlink", ("..",)), ("unlink", ("dangling",)),
    ("rename", ("", "x")), ("rename", ("f", "")), ("rename", ("d", "d/")),
    ("rename", ("e", "d/f")), ("rename", ("d/f", "e")), ("rename", ("dl/", "x")),
    ("rename", ("l", "dl")), ("rename", ("dangling", "f")), ("rename", ("loop1", "loop2")),
    ("rename", ("d", "..")), ("rename", ("e", "dl/e")), ("rename", ("e", "nope/")),
    ("link", ("dl/", "x")), ("link", ("dangling", "x")), ("link", ("f", "e/")),
    ("link", ("", "x")), ("link", ("f", "")),
    ("symlink", ("", "x")), ("symlink", ("t", "")), ("symlink", ("t", "e/")),
    ("stat", ("e/../f/",)), ("stat", ("../../../../..",)), ("stat", ("",)),
    ("stat", ("dl/../f",)), ("lstat", ("dl/",)), ("lstat", ("l/.",)),
    ("readlink", ("",)), ("readlink", ("dangling",)), ("readlink", ("d",)),
]


def make_native(base: str) -> None:
    os.mkdir(f"{base}/d")
    with open(f"{base}/d/f", "w") as fh:
        fh.write("x")
    os.mkdir(f"{base}/e")
    with open(f"{base}/f", "w") as fh:
        fh.write("file")
    with open(f"{base}/h", "w") as fh:
        fh.write("h")
    os.symlink("f", f"{base}/l")
    os.symlink("d", f"{base}/dl")
    os.symlink("nowhere", f"{base}/dangling")
    os.symlink("loop2", f"{base}/loop1")
    os.symlink("loop1", f"{base}/loop2")


async def make_xinim(vfs: Vfs, base: bytes) -> None:
    await vfs.mkdir(base)
    await vfs.ok(p.VfsChdir(caller=1, path=base))
    await vfs.mkdir(b"d")
    await vfs.create(b"d/f", b"x")
    await vfs.mkdir(b"e")
    await vfs.create(b"f", b"file")
    await vfs.create(b"h", b"h")
    for target, name in ((b"f", b"l"), (b"d", b"dl"), (b"nowhere", b"dangling"),
                         (b"loop2", b"loop1"), (b"loop1", b"loop2")):
        await vfs.ok(p.VfsSymlink(caller=1, dirfd=A, target=target, path=name))


def native(base: str, what: str, args: tuple[Any, ...]) -> str:
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    ops: dict[str, Callable[..., Any]] = {
        "open": lambda path, flags: os.close(os.open(path, flags, 0o644, dir_fd=fd)),
        "mkdir": lambda path: os.mkdir(path, 0o755, dir_fd=fd),
        "rmdir": lambda path: os.rmdir(path, dir_fd=fd),
        "unlink": lambda path: os.unlink(path, dir_fd=fd),
        "rename": lambda a, b: os.rename(a, b, src_dir_fd=fd, dst_dir_fd=fd),
        "link": lambda a, b: os.link(a, b, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False),
        "symlink": lambda t, path: os.symlink(t, path, dir_fd=fd),
        "readlink": lambda path: os.readlink(path, dir_fd=fd),
        "stat": lambda path: os.stat(path, dir_fd=fd),
        "lstat": lambda path: os.stat(path, dir_fd=fd, follow_symlinks=False),
        "truncate": lambda path: os.truncate(os.path.join(base, path) if path else "", 0),
    }
    try:
        ops[what](*args)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    finally:
        os.close(fd)
    return "OK"


def message(what: str, args: tuple[Any, ...]) -> p.Payload:
    b = [a.encode() if isinstance(a, str) else a for a in args]
    return {
        "open": lambda: p.VfsOpen(caller=1, dirfd=A, flags=b[1], mode=0o644, path=b[0]),
        "mkdir": lambda: p.VfsMkdir(caller=1, dirfd=A, mode=0o755, path=b[0]),
        "rmdir": lambda: p.VfsRmdir(caller=1, dirfd=A, path=b[0]),
        "unlink": lambda: p.VfsUnlink(caller=1, dirfd=A, flags=0, path=b[0]),
        "rename": lambda: p.VfsRename(caller=1, olddirfd=A, newdirfd=A, flags=0,
                                      oldpath=b[0], newpath=b[1]),
        "link": lambda: p.VfsLink(caller=1, olddirfd=A, newdirfd=A, flags=0,
                                  oldpath=b[0], newpath=b[1]),
        "symlink": lambda: p.VfsSymlink(caller=1, dirfd=A, target=b[0], path=b[1]),
        "readlink": lambda: p.VfsReadlink(caller=1, dirfd=A, size=4096, path=b[0]),
        "stat": lambda: p.VfsStat(caller=1, dirfd=A, flags=0, path=b[0]),
        "lstat": lambda: p.VfsStat(caller=1, dirfd=A, flags=0x100, path=b[0]),
        "truncate": lambda: p.VfsTruncate(caller=1, dirfd=A, length=0, path=b[0]),
    }[what]()


@pytest.fixture(scope="module")
def native_results() -> dict[int, str]:
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    out = {}
    for i, (what, args) in enumerate(CASES):
        base = tempfile.mkdtemp(dir=shm, prefix="xinim-vfs-diff-")
        try:
            make_native(base)
            out[i] = native(base, what, args)
        finally:
            shutil.rmtree(base)
    return out


async def test_errno_matches_linux(vfs: Vfs, native_results: dict[int, str]) -> None:
    mismatches = []
    for i, (what, args) in enumerate(CASES):
        base = b"/diff%d" % i
        await make_xinim(vfs, base)
        got = await vfs.err(message(what, args))
        if got != native_results[i]:
            mismatches.append(f"{what}{args}: linux {native_results[i]}, xinim {got}")
    assert not mismatches, "\n".join(mismatches)


# --- as an unprivileged user (nobody) ---------------------------------------------------

NOBODY = 65534
# (what, args) run as uid/gid 65534 in a tree made by root
USER_CASES: list[tuple[str, tuple[Any, ...]]] = [
    ("open", ("f600", RD)), ("open", ("f644", WR)), ("open", ("f666", WR)),
    ("open", ("f644", RD)), ("open", ("noexec/y", RD)), ("stat", ("noexec/y",)),
    ("stat", ("noexec",)), ("open", ("ro/new", WR | CR)), ("open", ("ro/x", WR | CR)),
    ("mkdir", ("ro/new",)), ("mkdir", ("ro/x",)), ("unlink", ("ro/x",)),
    ("unlink", ("sticky/z",)), ("unlink", ("sticky/mine",)), ("rename", ("sticky/z", "z2")),
    ("rename", ("f644", "moved")), ("rename", ("ro/sub", "sub2")), ("rmdir", ("ro/sub",)),
    ("rmdir", ("ro",)), ("link", ("f644", "ln")), ("link", ("f666", "ln")),
    ("link", ("ro/x", "ln")), ("link", ("mine", "ln")), ("symlink", ("t", "ro/l")),
    ("truncate", ("f644",)), ("truncate", ("f666",)), ("truncate", ("mine",)),
    ("readlink", ("noexec/l",)), ("open", ("ro/sub/..", RD)),
    ("chmod", ("f644",)), ("chmod", ("mine",)), ("chown", ("mine",)), ("chown", ("f644",)),
    ("utime_now", ("f644",)), ("utime_now", ("f666",)), ("utime_set", ("f666",)),
    ("utime_set", ("mine",)),
]

_USER_SCRIPT = r"""
import json, os, sys, errno
os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
base, cases = sys.argv[1], json.loads(sys.argv[2])
fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
ops = {
    "open": lambda path, flags: os.close(os.open(path, flags, 0o644, dir_fd=fd)),
    "mkdir": lambda path: os.mkdir(path, 0o755, dir_fd=fd),
    "rmdir": lambda path: os.rmdir(path, dir_fd=fd),
    "unlink": lambda path: os.unlink(path, dir_fd=fd),
    "rename": lambda a, b: os.rename(a, b, src_dir_fd=fd, dst_dir_fd=fd),
    "link": lambda a, b: os.link(a, b, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False),
    "symlink": lambda t, path: os.symlink(t, path, dir_fd=fd),
    "readlink": lambda path: os.readlink(path, dir_fd=fd),
    "stat": lambda path: os.stat(path, dir_fd=fd),
    "truncate": lambda path: os.truncate(os.path.join(base, path), 0),
    "chmod": lambda path: os.chmod(path, 0o600, dir_fd=fd),
    "chown": lambda path: os.chown(path, 0, -1, dir_fd=fd),
    "utime_now": lambda path: os.utime(path, None, dir_fd=fd),
    "utime_set": lambda path: os.utime(path, ns=(1, 2), dir_fd=fd),
}
out = []
for what, args in cases:
    try:
        ops[what](*args)
        out.append("OK")
    except OSError as exc:
        out.append(errno.errorcode[exc.errno])
print(json.dumps(out))
"""


def make_user_tree_native(base: str) -> None:
    os.chmod(base, 0o777)
    for name, mode in (("f600", 0o600), ("f644", 0o644), ("f666", 0o666)):
        with open(f"{base}/{name}", "w") as fh:
            fh.write("data")
        os.chmod(f"{base}/{name}", mode)
    os.mkdir(f"{base}/ro")
    os.mkdir(f"{base}/ro/sub")
    with open(f"{base}/ro/x", "w") as fh:
        fh.write("x")
    os.chmod(f"{base}/ro", 0o555)
    os.mkdir(f"{base}/noexec")
    with open(f"{base}/noexec/y", "w") as fh:
        fh.write("y")
    os.symlink("y", f"{base}/noexec/l")
    os.chmod(f"{base}/noexec", 0o666)
    os.mkdir(f"{base}/sticky")
    os.chmod(f"{base}/sticky", 0o1777)
    with open(f"{base}/sticky/z", "w") as fh:
        fh.write("z")
    os.chmod(f"{base}/sticky/z", 0o666)
    for path in (f"{base}/sticky/mine", f"{base}/mine"):
        with open(path, "w") as fh:
            fh.write("m")
        os.chown(path, NOBODY, NOBODY)


async def make_user_tree_xinim(vfs: Vfs, base: bytes) -> None:
    await vfs.mkdir(base, 0o777)
    await vfs.ok(p.VfsChmod(caller=1, dirfd=A, mode=0o777, flags=0, path=base))
    await vfs.ok(p.VfsChdir(caller=1, path=base))
    chmod = lambda path, mode: vfs.ok(p.VfsChmod(caller=1, dirfd=A, mode=mode, flags=0,  # noqa
                                                 path=path))
    for name, mode in ((b"f600", 0o600), (b"f644", 0o644), (b"f666", 0o666)):
        await vfs.create(name, b"data")
        await chmod(name, mode)
    await vfs.mkdir(b"ro")
    await vfs.mkdir(b"ro/sub")
    await vfs.create(b"ro/x", b"x")
    await chmod(b"ro", 0o555)
    await vfs.mkdir(b"noexec")
    await vfs.create(b"noexec/y", b"y")
    await vfs.ok(p.VfsSymlink(caller=1, dirfd=A, target=b"y", path=b"noexec/l"))
    await chmod(b"noexec", 0o666)
    await vfs.mkdir(b"sticky")
    await chmod(b"sticky", 0o1777)
    await vfs.create(b"sticky/z", b"z")
    await chmod(b"sticky/z", 0o666)
    for path in (b"sticky/mine", b"mine"):
        await vfs.create(path, b"m")
        await vfs.ok(p.VfsChown(caller=1, dirfd=A, uid=NOBODY, gid=NOBODY, flags=0, path=path))


def user_message(what: str, args: tuple[Any, ...], pid: int) -> p.Payload:
    b = [a.encode() if isinstance(a, str) else a for a in args]
    if what == "chmod":
        return p.VfsChmod(caller=pid, dirfd=A, mode=0o600, flags=0, path=b[0])
    if what == "chown":
        return p.VfsChown(caller=pid, dirfd=A, uid=0, gid=-1, flags=0, path=b[0])
    if what == "utime_now":
        return p.VfsUtimens(caller=pid, dirfd=A, flags=0, path=b[0])
    if what == "utime_set":
        return p.VfsUtimens(caller=pid, dirfd=A, flags=0, atime_sec=0, atime_nsec=1,
                            mtime_sec=0, mtime_nsec=2, path=b[0])
    msg = message(what, args)
    return type(msg)(**{**{f: getattr(msg, f) for f in msg._FIXED_NAMES + tuple(
        n for n, _ in msg._VAR)}, "caller": pid})


@pytest.fixture(scope="module")
def native_user_results() -> list[str]:
    import json
    import subprocess
    import sys
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to nobody")
    out = []
    for what, args in USER_CASES:
        base = tempfile.mkdtemp(dir="/dev/shm", prefix="xinim-vfs-user-")
        try:
            make_user_tree_native(base)
            r = subprocess.run([sys.executable, "-c", _USER_SCRIPT, base,
                                json.dumps([[what, list(args)]])],
                               capture_output=True, text=True, check=True)
            out += json.loads(r.stdout)
        finally:
            shutil.rmtree(base)
    return out


async def test_errno_matches_linux_as_nobody(vfs: Vfs, native_user_results: list[str]) -> None:
    mismatches = []
    for i, (what, args) in enumerate(USER_CASES):
        pid = 100 + i
        base = b"/user%d" % i
        await make_user_tree_xinim(vfs, base)
        await vfs.fork(1, pid)
        await vfs.setids(pid, NOBODY, NOBODY)
        got = await vfs.err(user_message(what, args, pid))
        if got != native_user_results[i]:
            mismatches.append(f"{what}{args}: linux {native_user_results[i]}, xinim {got}")
    assert not mismatches, "\n".join(mismatches)
