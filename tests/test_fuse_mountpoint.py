"""Mount directory handling: the default place, refusing a non-empty directory,
and cleaning up the dead mount a killed server leaves behind."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from xinim_host.vfs_fuse.fuse_export import serve_fuse
from xinim_host.vfs_fuse.mountpoint import (MountpointError, cleanup_stale_mount,
                                            default_mount_dir, mounts_at,
                                            prepare_mountpoint)
from xinim_host.vfs_fuse.ramfs import Ramfs

needs_fuse = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or os.geteuid() != 0 or shutil.which("fusermount3") is None,
    reason="needs /dev/fuse, fuse3 and root")

SERVER = r"""
import sys, trio
from xinim_host.vfs_fuse.fuse_export import serve_fuse
from xinim_host.vfs_fuse.ramfs import Ramfs

async def main():
    fs = Ramfs()
    fs.mknod(fs.root, b"from-dead-server", 0o100644, 0, 0)
    async with trio.open_nursery() as n:
        await n.start(serve_fuse, fs, sys.argv[1])
        print("ready", flush=True)
trio.run(main)
"""


def test_default_mount_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_mount_dir() == tmp_path / "xinim" / "root"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    d = default_mount_dir()
    uid = os.getuid()
    assert d in (Path(f"/run/user/{uid}/xinim/root"), Path(f"/tmp/xinim-{uid}/root"))


def test_prepare_creates_and_refuses_non_empty(tmp_path: Path) -> None:
    p = prepare_mountpoint(tmp_path / "a" / "b")
    assert p.is_dir() and not any(p.iterdir())
    assert prepare_mountpoint(p) == p                 # empty dir: fine
    (p / "precious").write_text("keep me")
    with pytest.raises(MountpointError, match="non-empty"):
        prepare_mountpoint(p)
    (tmp_path / "file").write_text("")
    with pytest.raises(MountpointError, match="not a directory"):
        prepare_mountpoint(tmp_path / "file")


@needs_fuse
async def test_dead_mount_is_cleaned_up_by_next_mount(tmp_path: Path) -> None:
    mp = tmp_path / "mnt"
    proc = await trio.lowlevel.open_process([sys.executable, "-c", SERVER, str(mp)],
                                            stdout=subprocess.PIPE)
    try:
        with trio.fail_after(20):
            line = b""
            while b"\n" not in line:
                chunk = await proc.stdout.receive_some()
                assert chunk, "server died before mounting"
                line += chunk
        assert line.startswith(b"ready")
        listing = await trio.to_thread.run_sync(os.listdir, mp)
        assert listing == ["from-dead-server"]
    finally:
        proc.send_signal(signal.SIGKILL)            # no finally, no unmount
        await proc.wait()
    with pytest.raises(OSError) as ei:
        await trio.to_thread.run_sync(os.stat, mp)
    assert ei.value.errno == errno.ENOTCONN       # "Transport endpoint is not connected"
    assert mounts_at(mp)

    fs = Ramfs()
    fs.mknod(fs.root, b"fresh", 0o100644, 0, 0)
    async with trio.open_nursery() as nursery:
        got = await nursery.start(serve_fuse, fs, mp)
        assert got == mp
        assert await trio.to_thread.run_sync(os.listdir, mp) == ["fresh"]
        assert len([e for e in mounts_at(mp) if e.is_fuse]) == 1
        # A live mount is somebody's server: never unmounted behind its back.
        with pytest.raises(MountpointError, match="live FUSE mount"):
            await trio.to_thread.run_sync(cleanup_stale_mount, mp)
        nursery.cancel_scope.cancel()
    assert not mounts_at(mp)
    assert await trio.to_thread.run_sync(os.listdir, mp) == []


@needs_fuse
async def test_hung_server_is_refused_then_aborted(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from xinim_host.vfs_fuse import mountpoint as mpmod
    monkeypatch.setattr(mpmod, "PROBE_TIMEOUT", 0.3)
    mp = tmp_path / "mnt"
    proc = await trio.lowlevel.open_process([sys.executable, "-c", SERVER, str(mp)],
                                            stdout=subprocess.PIPE)
    try:
        with trio.fail_after(20):
            line = b""
            while b"\n" not in line:
                chunk = await proc.stdout.receive_some()
                assert chunk, "server died before mounting"
                line += chunk
        proc.send_signal(signal.SIGSTOP)           # alive but not answering
        with pytest.raises(MountpointError, match="does not answer"):
            await trio.to_thread.run_sync(cleanup_stale_mount, mp)
        assert await trio.to_thread.run_sync(mpmod.abort_fuse_connection, mp)
        with trio.fail_after(10):
            p = await trio.to_thread.run_sync(prepare_mountpoint, mp)   # now dead: detached
        assert p == mp and not mounts_at(mp)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.send_signal(signal.SIGCONT)
        await proc.wait()
